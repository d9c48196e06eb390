/* girder chaos: the local backend — girderd and erl processes on this machine, each in a network
 * namespace of its own when possible, all behind the relay. */
#include "chaos.h"
#include "cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/*
** Two shapes, chosen by --netns (auto: namespaces when root and `ip netns` works):
**
** namespaces: a hub namespace with a bridge (10.77.0.1) and, per node, a namespace with a veth
**   to it (10.77.0.11, .12, ...), its own girder-epmd on 4369, and the node. Both veth ends are
**   made inside namespaces, so nothing appears in the host's; the runner itself moves into the
**   hub (the relay listens there). Every fault is possible: packet filters run in the victim's
**   namespace with iptables.
** loopback: one girder-epmd on 127.0.0.1:E, the relay's port mapper front on 127.0.0.2:E, nodes
**   named NAME@127.0.0.2 listening on 127.0.0.1. No root needed; partitions are played by the
**   relay (bytes left unread), and packet loss is not possible.
** Either way nodes are named NAME@<relay address>, so every connection goes through the relay.
*/

typedef struct local {
    bool netns;
    char id[16];
    char hub[64];
    int home_ns; /* the runner's own namespace, to return to */
    uint16_t epmd_port;
    int epmd_pid; /* loopback mode */
} local;

static local *L(chaos_run *r)
{
    return r->be_state;
}

static int ip(char *const *argv)
{
    return chaos_cmd(argv, 10000, true);
}

static bool port_free(const char *addr, uint16_t port)
{
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, addr, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    bool ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

/* Forks argv with stdout and stderr appended to log, in namespace ns ("" none), with the extra
** environment env (NULL-terminated "K=V" strings). The child's pid, or -1. */
static int spawn_in(const char *ns, char *const argv[], const char *log, char *const env[])
{
    int nsfd = -1;
    if (ns && *ns) {
        char p[128];
        snprintf(p, sizeof p, "/run/netns/%s", ns);
        if ((nsfd = open(p, O_RDONLY | O_CLOEXEC)) < 0) return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        if (nsfd >= 0) close(nsfd);
        return -1;
    }
    if (pid == 0) {
        if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) != 0) _exit(126);
        setsid();
        int nul = open("/dev/null", O_RDONLY);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(nul, 0);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        for (size_t i = 0; env && env[i]; i++) putenv(env[i]);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (nsfd >= 0) close(nsfd);
    return pid;
}

static void stop_pid(int *pid, int64_t grace_ms)
{
    if (*pid <= 0) return;
    kill(*pid, SIGCONT);
    kill(*pid, SIGTERM);
    if (!chaos_wait_pid(*pid, grace_ms)) {
        kill(*pid, SIGKILL);
        chaos_wait_pid(*pid, 5000);
    }
    *pid = 0;
}

/* ---------------------------------------------------------------- setup */

static int make_namespaces(chaos_run *r, local *l)
{
    char *add_hub[] = {"ip", "netns", "add", l->hub, NULL};
    if (ip(add_hub) != 0) return -1;
    char *cmds[][12] = {
        {"ip", "-n", l->hub, "link", "set", "lo", "up", NULL},
        {"ip", "-n", l->hub, "link", "add", "br0", "type", "bridge", NULL},
        {"ip", "-n", l->hub, "addr", "add", "10.77.0.1/24", "dev", "br0", NULL},
        {"ip", "-n", l->hub, "link", "set", "br0", "up", NULL},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (ip(cmds[i]) != 0) return -1;
    for (size_t i = 0; i < r->nn; i++) {
        chaos_node *n = &r->node[i];
        char veth[16], addr[48], ns[sizeof n->ns];
        /* through a local: source and destination are members of the same *r (-Wrestrict) */
        snprintf(ns, sizeof ns, "gc%s-%s", l->id, n->alive);
        memcpy(n->ns, ns, sizeof ns);
        snprintf(n->ip, sizeof n->ip, "10.77.0.%u", 11 + (unsigned)i % 100);
        snprintf(veth, sizeof veth, "v%u", (unsigned)i % 100);
        snprintf(addr, sizeof addr, "%s/24", n->ip);
        char *nc[][14] = {
            {"ip", "netns", "add", n->ns, NULL},
            {"ip", "-n", l->hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
             "netns", n->ns, NULL},
            {"ip", "-n", l->hub, "link", "set", veth, "master", "br0", NULL},
            {"ip", "-n", l->hub, "link", "set", veth, "up", NULL},
            {"ip", "-n", n->ns, "addr", "add", addr, "dev", "eth0", NULL},
            {"ip", "-n", n->ns, "link", "set", "eth0", "up", NULL},
            {"ip", "-n", n->ns, "link", "set", "lo", "up", NULL},
        };
        for (size_t k = 0; k < sizeof nc / sizeof nc[0]; k++)
            if (ip(nc[k]) != 0) return -1;
    }
    return 0;
}

static int local_setup(chaos_run *r)
{
    local *l = calloc(1, sizeof *l);
    if (!l) return -1;
    r->be_state = l;
    l->home_ns = -1;
    snprintf(l->id, sizeof l->id, "%04llx",
             (unsigned long long)((r->seed ^ (uint64_t)getpid()) & 0xffff));
    snprintf(l->hub, sizeof l->hub, "gc%s-hub", l->id);
    /* the nodes */
    for (long i = 0; i < r->n_girder + r->n_erlang; i++) {
        chaos_node *n = &r->node[r->nn++];
        n->erlang = i >= r->n_girder;
        snprintf(n->alive, sizeof n->alive, "%c%ld", n->erlang ? 'e' : 'g',
                 n->erlang ? i - r->n_girder + 1 : i + 1);
    }
    bool want = !r->netns || strcmp(r->netns, "off");
    bool must = r->netns && !strcmp(r->netns, "on");
    if (want && geteuid() == 0) {
        if (make_namespaces(r, l) == 0) {
            l->netns = true;
        } else {
            char *del[] = {"ip", "netns", "del", l->hub, NULL};
            ip(del);
            for (size_t i = 0; i < r->nn; i++)
                if (r->node[i].ns[0]) {
                    char *d[] = {"ip", "netns", "del", r->node[i].ns, NULL};
                    ip(d);
                    r->node[i].ns[0] = 0;
                }
        }
    }
    if (must && !l->netns) {
        snprintf(r->err, sizeof r->err,
                 "--netns on: network namespaces cannot be made here "
                 "(needs root and ip netns)");
        return -1;
    }
    char logs[4096 + 64];
    chaos_upstream ups[CHAOS_MAX_NODES];
    if (l->netns) {
        snprintf(r->host, sizeof r->host, "10.77.0.1");
        l->epmd_port = 4369;
        for (size_t i = 0; i < r->nn; i++) {
            chaos_node *n = &r->node[i];
            snprintf(logs, sizeof logs, "%s/logs/epmd-%s.log", r->outdir, n->alive);
            char *argv[] = {r->epmd, "-port", "4369", NULL};
            n->epmd_pid = spawn_in(n->ns, argv, logs, NULL);
            if (n->epmd_pid < 0) {
                snprintf(r->err, sizeof r->err, "cannot start %.400s", r->epmd);
                return -1;
            }
            ups[i] = (chaos_upstream){n->alive, n->ip, 4369};
        }
        /* the runner joins the hub, where the relay listens; it comes back at teardown */
        char p[128];
        snprintf(p, sizeof p, "/run/netns/%s", l->hub);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        l->home_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || l->home_ns < 0 || setns(fd, CLONE_NEWNET) != 0) {
            if (fd >= 0) close(fd);
            snprintf(r->err, sizeof r->err, "cannot enter namespace %.200s", l->hub);
            return -1;
        }
        close(fd);
    } else {
        snprintf(r->host, sizeof r->host, "127.0.0.2");
        uint64_t s = r->seed ^ (uint64_t)getpid();
        for (int tries = 0; tries < 100 && !l->epmd_port; tries++) {
            s = s * 6364136223846793005u + 1442695040888963407u;
            uint16_t p = (uint16_t)(20000 + (s >> 33) % 12000);
            if (port_free("127.0.0.1", p) && port_free("127.0.0.2", p)) l->epmd_port = p;
        }
        if (!l->epmd_port) {
            snprintf(r->err, sizeof r->err, "no free port for the port mappers");
            return -1;
        }
        char port[16];
        snprintf(port, sizeof port, "%u", l->epmd_port);
        snprintf(logs, sizeof logs, "%s/logs/epmd.log", r->outdir);
        char *argv[] = {r->epmd, "-port", port, NULL};
        char *env[] = {"ERL_EPMD_ADDRESS=127.0.0.1", NULL};
        l->epmd_pid = spawn_in("", argv, logs, env);
        if (l->epmd_pid < 0) {
            snprintf(r->err, sizeof r->err, "cannot start %.400s", r->epmd);
            return -1;
        }
        for (size_t i = 0; i < r->nn; i++)
            ups[i] = (chaos_upstream){r->node[i].alive, "127.0.0.1", l->epmd_port};
    }
    for (size_t i = 0; i < r->nn; i++) {
        chaos_node *n = &r->node[i];
        char name[sizeof n->name], hist[sizeof n->hist];
        snprintf(name, sizeof name, "%s@%s", n->alive, r->host);
        snprintf(hist, sizeof hist, "%s/%s.jsonl", r->histdir, n->alive);
        memcpy(n->name, name, sizeof name);
        memcpy(n->hist, hist, sizeof hist);
    }
    r->proxy = chaos_proxy_start(r->host, l->epmd_port, ups, r->nn, r->err, sizeof r->err);
    if (!r->proxy) return -1;
    usleep(300000); /* the port mappers open their sockets */
    fprintf(stderr, "chaos: local cluster, %s; relay at %s:%u\n",
            l->netns ? "a network namespace per node" : "loopback (no namespaces)", r->host,
            l->epmd_port);
    return 0;
}

/* ---------------------------------------------------------------- nodes */

static int local_start(chaos_run *r, chaos_node *n)
{
    local *l = L(r);
    char logs[4096 + 64], tick[16], setup[16], port[16], peers[CHAOS_MAX_NODES * 170] = "";
    snprintf(logs, sizeof logs, "%s/logs/%s.log", r->outdir, n->alive);
    snprintf(tick, sizeof tick, "%ld", r->ticktime_s);
    snprintf(setup, sizeof setup, "%ld", r->setuptime_s);
    snprintf(port, sizeof port, "%u", l->epmd_port);
    for (size_t i = 0; i < r->nn; i++)
        snprintf(peers + strlen(peers), sizeof peers - strlen(peers), "%s%s", i ? "," : "",
                 r->node[i].name);
    char e_hist[sizeof n->hist + 16], e_peers[sizeof peers + 16], e_seed[48], e_port[32];
    snprintf(e_hist, sizeof e_hist, "CHAOS_HISTORY=%s", n->hist);
    snprintf(e_peers, sizeof e_peers, "CHAOS_PEERS=%s", peers);
    snprintf(e_seed, sizeof e_seed, "CHAOS_SEED=%llu",
             (unsigned long long)(r->seed % 1000000007u) + (unsigned long long)(n - r->node));
    snprintf(e_port, sizeof e_port, "ERL_EPMD_PORT=%u", l->epmd_port);
    char *env[] = {e_hist, e_peers, e_seed, e_port, NULL};
    int pid;
    if (!n->erlang) {
        char *argv[32];
        int k = 0;
        argv[k++] = r->girderd;
        argv[k++] = "--name";
        argv[k++] = n->name;
        argv[k++] = "--cookie";
        argv[k++] = r->cookie;
        argv[k++] = "--ticktime";
        argv[k++] = tick;
        argv[k++] = "--setuptime";
        argv[k++] = setup;
        argv[k++] = "--epmd-port";
        argv[k++] = port;
        argv[k++] = "--no-start-epmd";
        argv[k++] = "--no-demo";
        argv[k++] = "--control-socket=";
        argv[k++] = "--module";
        argv[k++] = r->module;
        if (!l->netns) {
            argv[k++] = "--listen-addr";
            argv[k++] = "127.0.0.1";
        }
        if (r->sabotage) {
            argv[k++] = "--sabotage";
            argv[k++] = (char *)r->sabotage;
        }
        argv[k] = NULL;
        pid = spawn_in(n->ns, argv, logs, env);
    } else {
        char *argv[40];
        int k = 0;
        argv[k++] = r->erl;
        argv[k++] = "-name";
        argv[k++] = n->name;
        argv[k++] = "-setcookie";
        argv[k++] = r->cookie;
        argv[k++] = "-noshell";
        argv[k++] = "-noinput";
        argv[k++] = "-start_epmd";
        argv[k++] = "false";
        argv[k++] = "-pa";
        argv[k++] = r->beamdir;
        argv[k++] = "-kernel";
        argv[k++] = "net_ticktime";
        argv[k++] = tick;
        argv[k++] = "-kernel";
        argv[k++] = "net_setuptime";
        argv[k++] = setup;
        argv[k++] = "-kernel";
        argv[k++] = "prevent_overlapping_partitions";
        argv[k++] = "false";
        if (!l->netns) {
            argv[k++] = "-kernel";
            argv[k++] = "inet_dist_use_interface";
            argv[k++] = "{127,0,0,1}";
        }
        argv[k++] = "-eval";
        argv[k++] = "chaos_workload:start()";
        argv[k] = NULL;
        pid = spawn_in(n->ns, argv, logs, env);
    }
    if (pid < 0) {
        snprintf(r->err, sizeof r->err, "cannot start %.200s", n->name);
        return -1;
    }
    n->pid = pid;
    return 0;
}

static int local_kill(chaos_run *r, chaos_node *n)
{
    (void)r;
    if (n->pid <= 0) return -1;
    kill(n->pid, SIGKILL);
    chaos_wait_pid(n->pid, 5000);
    n->pid = 0;
    return 0;
}

static int local_stop(chaos_run *r, chaos_node *n)
{
    (void)r;
    if (n->pid <= 0) return -1;
    stop_pid(&n->pid, 15000);
    return 0;
}

static int local_pause(chaos_run *r, chaos_node *n, bool on)
{
    (void)r;
    return n->pid > 0 && kill(n->pid, on ? SIGSTOP : SIGCONT) == 0 ? 0 : -1;
}

static int local_filter(chaos_run *r, chaos_node *n, bool add, const char *chain, const char *rule)
{
    if (!L(r)->netns) return -1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", rule);
    char *argv[32];
    int k = 0;
    argv[k++] = "ip";
    argv[k++] = "netns";
    argv[k++] = "exec";
    argv[k++] = n->ns;
    argv[k++] = "iptables";
    argv[k++] = "-w";
    argv[k++] = add ? "-I" : "-D";
    argv[k++] = (char *)chain;
    char *save = NULL;
    for (char *t = strtok_r(buf, " ", &save); t && k < 31; t = strtok_r(NULL, " ", &save))
        argv[k++] = t;
    argv[k] = NULL;
    return chaos_cmd(argv, 10000, !r->verbose) == 0 ? 0 : -1;
}

static int local_shape(chaos_run *r, chaos_node *n, const chaos_shape *s)
{
    return chaos_proxy_shape(r->proxy, n->alive, s);
}

static unsigned local_faults(chaos_run *r)
{
    unsigned all = (1u << NFAULTS) - 1;
    return L(r) && L(r)->netns ? all : all & ~(1u << F_LOSS);
}

static void local_teardown(chaos_run *r)
{
    local *l = L(r);
    for (size_t i = 0; i < r->nn; i++) {
        if (r->node[i].pid > 0) chaos_event(r, "node_stop", ",\"victim\":\"%s\"", r->node[i].name);
        stop_pid(&r->node[i].pid, 10000);
    }
    if (!l) return;
    for (size_t i = 0; i < r->nn; i++) stop_pid(&r->node[i].epmd_pid, 5000);
    stop_pid(&l->epmd_pid, 5000);
    chaos_proxy_stop(r->proxy);
    r->proxy = NULL;
    if (l->home_ns >= 0) {
        setns(l->home_ns, CLONE_NEWNET);
        close(l->home_ns);
    }
    if (l->netns) {
        for (size_t i = 0; i < r->nn; i++) {
            char *d[] = {"ip", "netns", "del", r->node[i].ns, NULL};
            ip(d);
        }
        char *d[] = {"ip", "netns", "del", l->hub, NULL};
        ip(d);
    }
    free(l);
    r->be_state = NULL;
}

const chaos_backend chaos_backend_local = {
    "local",     local_setup,  local_start, local_kill,     local_stop,
    local_pause, local_filter, local_shape, local_teardown, local_faults,
};
