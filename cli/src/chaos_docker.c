/* girder chaos: the docker backend — the compose cluster of docker/ (girderd and erl containers
 * behind a relay container), faults through the docker CLI and the containers' namespaces. */
#include "chaos.h"
#include "cli.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/*
** The compose file's contract (docker/docker-compose.yml is one): a service `proxy` running
** `girder chaos proxy ... --control /chaos/proxy.sock`, and node services whose names start
** with g (girderd) or e (erl), each running the workload with CHAOS_HISTORY=/chaos/<service>.jsonl
** and named <service>@proxy; /chaos is the bind mount of $CHAOS_DIR. The runner passes
** CHAOS_DIR, GIRDER_COOKIE, CHAOS_TICKTIME, CHAOS_SETUPTIME, CHAOS_SEED, CHAOS_PEERS and
** GIRDER_SABOTAGE in the environment of docker-compose.
** Faults: docker kill / start, docker stop / start, docker pause / unpause, iptables run with
** nsenter in the container's network namespace (so the engine must be on this machine), and
** the relay's control socket.
*/

typedef struct dock {
    char project[64], compose[4096];
    bool up;
} dock;

static dock *D(chaos_run *r)
{
    return r->be_state;
}

static int compose(chaos_run *r, int64_t timeout_ms, bool quiet, const char *a1, const char *a2,
                   const char *a3, const char *a4, const char *a5, const char *a6)
{
    dock *d = D(r);
    char *argv[16];
    int k = 0;
    argv[k++] = "docker-compose";
    argv[k++] = "-p";
    argv[k++] = d->project;
    argv[k++] = "-f";
    argv[k++] = d->compose;
    const char *a[] = {a1, a2, a3, a4, a5, a6};
    for (int i = 0; i < 6 && a[i]; i++) argv[k++] = (char *)a[i];
    argv[k] = NULL;
    return chaos_cmd(argv, timeout_ms, quiet);
}

static int docker(chaos_run *r, const char *a1, const char *a2, const char *a3, const char *a4)
{
    char *argv[8] = {"docker", (char *)a1, (char *)a2, (char *)a3, (char *)a4, NULL};
    return chaos_cmd(argv, 60000, !r->verbose);
}

static int docker_setup(chaos_run *r)
{
    dock *d = calloc(1, sizeof *d);
    if (!d) return -1;
    r->be_state = d;
    snprintf(d->project, sizeof d->project, "%s", r->project ? r->project : "girderchaos");
    const char *cf = r->compose ? r->compose : "docker/docker-compose.yml";
    if (cf[0] == '/' || !getcwd(d->compose, sizeof d->compose - 1024))
        snprintf(d->compose, sizeof d->compose, "%s", cf);
    else
        snprintf(d->compose + strlen(d->compose), sizeof d->compose - strlen(d->compose), "/%s",
                 cf);
    if (access(d->compose, R_OK) != 0) {
        snprintf(r->err, sizeof r->err, "compose file %.200s: %.200s", d->compose, strerror(errno));
        return -1;
    }
    char *info[] = {"docker", "info", NULL};
    if (chaos_cmd(info, 30000, true) != 0) {
        snprintf(r->err, sizeof r->err,
                 "no Docker engine answers (DOCKER_HOST=%.200s); make chaos "
                 "starts a private one",
                 getenv("DOCKER_HOST") ? getenv("DOCKER_HOST") : "default");
        return -1;
    }
    /* the services, from the compose file */
    char services[1024];
    char *cfg[] = {"docker-compose", "-p",     d->project,   "-f",
                   d->compose,       "config", "--services", NULL};
    if (chaos_cmd_out(cfg, 60000, services, sizeof services) != 0) {
        snprintf(r->err, sizeof r->err, "docker-compose config --services failed on %.200s",
                 d->compose);
        return -1;
    }
    snprintf(r->host, sizeof r->host, "proxy");
    char *save = NULL;
    for (char *s = strtok_r(services, "\n", &save); s; s = strtok_r(NULL, "\n", &save)) {
        if ((s[0] != 'g' && s[0] != 'e') || r->nn == CHAOS_MAX_NODES) continue;
        chaos_node *n = &r->node[r->nn++];
        n->erlang = s[0] == 'e';
        snprintf(n->service, sizeof n->service, "%s", s);
        snprintf(n->alive, sizeof n->alive, "%s", s);
        snprintf(n->name, sizeof n->name, "%s@%s", s, r->host);
        snprintf(n->hist, sizeof n->hist, "%s/%s.jsonl", r->histdir, s);
    }
    if (r->nn < 2) {
        snprintf(r->err, sizeof r->err, "%.200s has fewer than two node services (g*, e*)",
                 d->compose);
        return -1;
    }
    char peers[CHAOS_MAX_NODES * 170] = "", v[64];
    for (size_t i = 0; i < r->nn; i++)
        snprintf(peers + strlen(peers), sizeof peers - strlen(peers), "%s%s", i ? "," : "",
                 r->node[i].name);
    setenv("CHAOS_DIR", r->histdir, 1);
    setenv("CHAOS_PEERS", peers, 1);
    setenv("GIRDER_COOKIE", r->cookie, 1);
    snprintf(v, sizeof v, "%ld", r->ticktime_s);
    setenv("CHAOS_TICKTIME", v, 1);
    snprintf(v, sizeof v, "%ld", r->setuptime_s);
    setenv("CHAOS_SETUPTIME", v, 1);
    snprintf(v, sizeof v, "%llu", (unsigned long long)(r->seed % 1000000007u));
    setenv("CHAOS_SEED", v, 1);
    setenv("GIRDER_SABOTAGE", r->sabotage ? r->sabotage : "", 1);
    fprintf(stderr, "chaos: docker-compose up (project %s)\n", d->project);
    if (compose(r, 900000, !r->verbose, "up", "-d", NULL, NULL, NULL, NULL) != 0) {
        snprintf(r->err, sizeof r->err, "docker-compose up failed (run it with --verbose)");
        d->up = true; /* whatever came up comes down */
        return -1;
    }
    d->up = true;
    for (size_t i = 0; i < r->nn; i++) {
        chaos_node *n = &r->node[i];
        char *ps[] = {"docker-compose", "-p", d->project, "-f", d->compose, "ps", "-q",
                      n->service,       NULL};
        if (chaos_cmd_out(ps, 30000, n->cid, sizeof n->cid) != 0 || !n->cid[0]) {
            snprintf(r->err, sizeof r->err, "no container for service %.200s", n->service);
            return -1;
        }
    }
    return 0;
}

/* The compose file started the nodes; a later start is a start of the stopped container. */
static int docker_start(chaos_run *r, chaos_node *n)
{
    char st[64];
    char *argv[] = {"docker", "inspect", "-f", "{{.State.Running}}", n->cid, NULL};
    if (chaos_cmd_out(argv, 30000, st, sizeof st) == 0 && !strcmp(st, "true")) return 0;
    return docker(r, "start", n->cid, NULL, NULL) == 0 ? 0 : -1;
}

static int docker_kill(chaos_run *r, chaos_node *n)
{
    return docker(r, "kill", "-s", "KILL", n->cid) == 0 ? 0 : -1;
}

static int docker_stop(chaos_run *r, chaos_node *n)
{
    return docker(r, "stop", "-t", "15", n->cid) == 0 ? 0 : -1;
}

static int docker_pause(chaos_run *r, chaos_node *n, bool on)
{
    return docker(r, on ? "pause" : "unpause", n->cid, NULL, NULL) == 0 ? 0 : -1;
}

static int docker_filter(chaos_run *r, chaos_node *n, bool add, const char *chain, const char *rule)
{
    char pid[32];
    char *insp[] = {"docker", "inspect", "-f", "{{.State.Pid}}", n->cid, NULL};
    if (chaos_cmd_out(insp, 30000, pid, sizeof pid) != 0 || !strcmp(pid, "0")) return -1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", rule);
    char *argv[32];
    int k = 0;
    argv[k++] = "nsenter";
    argv[k++] = "-t";
    argv[k++] = pid;
    argv[k++] = "-n";
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

/* One line to the relay's control socket (in the bind mount), one line back. */
static int docker_shape(chaos_run *r, chaos_node *n, const chaos_shape *s)
{
    char line[256], ans[256] = "";
    if (!s)
        snprintf(line, sizeof line, "clear %s\n", n->alive);
    else if (s->block_in || s->block_out)
        snprintf(line, sizeof line, "block %s %s\n", n->alive,
                 s->block_in && s->block_out ? "both"
                 : s->block_in               ? "in"
                                             : "out");
    else
        snprintf(line, sizeof line, "shape %s %u %u %u %u\n", n->alive, s->latency_ms, s->jitter_ms,
                 s->slice_bytes, s->slice_gap_us);
    struct sockaddr_un sa = {0};
    sa.sun_family = AF_UNIX;
    if (snprintf(sa.sun_path, sizeof sa.sun_path, "%s/proxy.sock", r->histdir) >=
        (int)sizeof sa.sun_path) {
        snprintf(r->err, sizeof r->err, "%.200s/proxy.sock: path too long for a socket",
                 r->histdir);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0) close(fd);
        snprintf(r->err, sizeof r->err, "relay control %.200s: %.200s", sa.sun_path,
                 strerror(errno));
        return -1;
    }
    ssize_t w = write(fd, line, strlen(line));
    size_t k = 0;
    while (w > 0 && k < sizeof ans - 1) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 5000) <= 0) break;
        ssize_t got = read(fd, ans + k, sizeof ans - 1 - k);
        if (got <= 0) break;
        k += (size_t)got;
        if (memchr(ans, '\n', k)) break;
    }
    ans[k] = 0;
    close(fd);
    return !strncmp(ans, "ok", 2) ? 0 : -1;
}

static unsigned docker_faults(chaos_run *r)
{
    (void)r;
    return (1u << NFAULTS) - 1;
}

static void docker_teardown(chaos_run *r)
{
    dock *d = D(r);
    if (!d) return;
    if (d->up) {
        for (size_t i = 0; i < r->nn; i++) {
            docker(r, "unpause", r->node[i].cid, NULL, NULL); /* a paused container cannot stop */
            chaos_event(r, "node_stop", ",\"victim\":\"%s\"", r->node[i].name);
        }
        fprintf(stderr, "chaos: docker-compose down\n");
        compose(r, 300000, !r->verbose, "down", "-v", "--remove-orphans", "-t", "10", NULL);
    }
    free(d);
    r->be_state = NULL;
}

const chaos_backend chaos_backend_docker = {
    "docker",     docker_setup,  docker_start, docker_kill,     docker_stop,
    docker_pause, docker_filter, docker_shape, docker_teardown, docker_faults,
};
