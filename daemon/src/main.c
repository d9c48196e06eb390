/* girderd: a Girder node daemon — configuration, start-up, modules, control socket, signals,
 * shutdown. */
#include "control.h"
#include "daemon.h"
#include "log.h"
#include "mods.h"
#include "opts.h"

#include <errno.h>
#include <fcntl.h>
#include <girder/dist.h>
#include <girder/epmd.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

gd_daemon gd_self;

/* ---------------------------------------------------------------- stop requests */

static pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cv = PTHREAD_COND_INITIALIZER;
static atomic_bool stop_flag;
static char stop_why[64];
static atomic_int exit_status;

void gd_request_stop(const char *why)
{
    pthread_mutex_lock(&stop_mu);
    if (!atomic_load(&stop_flag)) {
        snprintf(stop_why, sizeof stop_why, "%s", why);
        atomic_store(&stop_flag, true);
        pthread_cond_broadcast(&stop_cv);
    }
    pthread_mutex_unlock(&stop_mu);
}

bool gd_stopping(void)
{
    return atomic_load(&stop_flag);
}

uint64_t gd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The process that ran init:stop (under stop_mu): its exit carries the caller's answer, so the
** shutdown lets it finish before distribution goes down (settle_dist). */
static term_t stop_caller = TERM_NONE;

/* init:stop/0 and init:stop/1 (an exit status 0..255), as the girder CLI stops nodes: answers
** ok, then the same graceful shutdown as SIGTERM. An Erlang node answers rpc:call(N, init,
** stop, []) with ok every time (its stop is asynchronous); so does this one: the answer (the
** DOWN of erpc's process, sent when this process exits) reaches the caller before the
** connection closes. */
static int init_stop(void *ud, term_t args, term_t *res)
{
    (void)ud;
    if (term_is_cons(args)) {
        int64_t st;
        if (term_get_int64(term_hd(args), &st) || st < 0 || st > 255) {
            *res = term_atom("badarg");
            return DIST_ERROR;
        }
        atomic_store(&exit_status, (int)st);
    }
    pthread_mutex_lock(&stop_mu);
    if (stop_caller == TERM_NONE && !atomic_load(&stop_flag)) stop_caller = term_dup(nd_self());
    pthread_mutex_unlock(&stop_mu);
    gd_request_stop("init:stop");
    *res = TERM_ATOM_OK;
    return DIST_RETURN;
}

/*
** Before distribution stops, when init:stop asked for the stop: waits for its process to be gone
** (its exit signals, the rpc answer among them, are then handed to distribution), then for one
** round trip with every connected node (a ping sent after them on the same connection: its
** answer means the peer has read everything sent before it; the caller's node is among them).
** At most SETTLE_MS in all; a peer that does not answer only shortens the wait of the others.
** Other stops (signals, node.stop) owe no answer over distribution and do not wait, as Erlang.
*/
#define SETTLE_MS 2000
static void settle_dist(void)
{
    uint64_t end = gd_now_ms() + SETTLE_MS;
    pthread_mutex_lock(&stop_mu);
    term_t caller = stop_caller;
    stop_caller = TERM_NONE;
    pthread_mutex_unlock(&stop_mu);
    if (caller == TERM_NONE) return;
    nd_proc_info pi;
    while (nd_process_info(caller, &pi) == 0) { /* ND_ST_EXITING: still sending its exit */
        nd_proc_info_free(&pi);
        if (gd_now_ms() >= end) break;
        usleep(1000);
    }
    term_free(caller);
    term_t nodes = dist_nodes(DIST_CONNECTED);
    for (term_t l = nodes; term_is_cons(l); l = term_tl(l)) {
        uint64_t now = gd_now_ms();
        if (now >= end) break;
        if (dist_ping(term_hd(l), (int64_t)(end - now)) != 0)
            gd_log(GD_DEBUG, "event=stop_flush_failed node=%s", term_atom_name(term_hd(l), NULL));
    }
    term_free(nodes);
}

/* ---------------------------------------------------------------- signals */

static sigset_t sigs;

/* The signal thread: SIGHUP reopens the log; SIGTERM/SIGINT ask for the graceful stop, and one
** more during the shutdown ends the process at once. */
static void *signal_main(void *arg)
{
    (void)arg;
    for (;;) {
        int sig;
        if (sigwait(&sigs, &sig) != 0) continue;
        if (sig == SIGHUP) {
            int rc = gd_log_reopen();
            if (rc)
                gd_log(GD_ERROR, "event=log_reopen_failed reason=\"%s\"", strerror(-rc));
            else
                gd_log(GD_NOTICE, "event=log_reopened");
            continue;
        }
        const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
        if (!gd_stopping()) {
            gd_request_stop(name);
        } else {
            gd_log(GD_WARNING, "event=forced_exit signal=%s", name);
            _exit(1);
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- systemd, pid file */

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET (a path, or @abstract). */
static void notify(const char *msg)
{
    const char *p = getenv("NOTIFY_SOCKET");
    if (!p || !*p) return;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(p);
    if (n >= sizeof sa.sun_path) return;
    memcpy(sa.sun_path, p, n);
    if (sa.sun_path[0] == '@') sa.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    ssize_t w = sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    if (w < 0) gd_log(GD_WARNING, "event=notify_failed reason=\"%s\"", strerror(errno));
    close(fd);
}

/* Writes the pid through a temporary file and a rename, so a reader never sees half of it. */
static int write_pid_file(const char *path)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    int rc = write(fd, buf, (size_t)n) == n ? 0 : -EIO;
    if (close(fd) != 0 && !rc) rc = -errno;
    if (!rc && rename(tmp, path) != 0) rc = -errno;
    if (rc) unlink(tmp);
    return rc;
}

/* ---------------------------------------------------------------- logs from the libraries */

/* dist's lines come with an Erlang logger level, numbered as girderd's own. */
static void dist_log(void *ud, int level, const char *line)
{
    (void)ud;
    gd_logc(level, "dist", "%s", line);
}

/* libnode's lines (mailbox limits): called on the sending thread, must not block for long */
static void node_log(void *ud, int level, const char *line)
{
    (void)ud;
    gd_logc(level, "libnode", "%s", line);
}

static void long_schedule(term_t pid, uint64_t ns, void *ud)
{
    (void)ud;
    char *p = term_to_string(pid, TERM_PRINT_W);
    gd_logc(GD_WARNING, "libnode", "event=long_schedule pid=%s ms=%llu", p ? p : "?",
            (unsigned long long)(ns / 1000000));
    free(p);
}

/* ---------------------------------------------------------------- start-up checks */

static bool log_to_file;

/* A start-up failure: one line on stderr (and in the log file, if there is one). */
static void startup_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void startup_error(const char *fmt, ...)
{
    char msg[1024], q[1100];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "girderd: %s\n", msg);
    if (log_to_file) gd_log(GD_ERROR, "event=start_failed reason=%s", gd_q(q, sizeof q, msg));
}

/* Starts girder-epmd (next to this executable) as a daemon on port, as erl starts epmd. */
static int start_epmd(uint16_t port, char *path, size_t pathlen)
{
    char exe[PATH_MAX], portstr[16];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = 0;
    snprintf(path, pathlen, "%s/girder-epmd", exe);
    snprintf(portstr, sizeof portstr, "%u", port);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        /* girderd blocks SIGTERM/SIGINT/SIGHUP for its signal thread; a blocked mask survives
        ** exec, and the port mapper must stay stoppable with a plain kill. */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execl(path, "girder-epmd", "-daemon", "-port", portstr, (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0); /* -daemon detaches: the parent returns at once */
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
    for (int i = 0; i < 50; i++) {
        epmd_name_list nl;
        if (epmd_names(NULL, port, 200, &nl) == 0) {
            epmd_names_free(&nl);
            return 0;
        }
        usleep(20000);
    }
    return -1;
}

static int ensure_epmd(const gd_config *cfg)
{
    uint16_t port = (uint16_t)cfg->epmd_port;
    epmd_name_list nl;
    int rc = epmd_names(NULL, port, 2000, &nl);
    if (rc == 0) {
        epmd_names_free(&nl);
        return 0;
    }
    if (rc != EPMD_ECONNREFUSED) {
        startup_error("the port mapper on port %u does not answer: %s", port, epmd_strerror(rc));
        return -1;
    }
    if (!cfg->start_epmd) {
        startup_error("no port mapper on port %u (and start_epmd is false)", port);
        return -1;
    }
    char path[PATH_MAX + 16];
    if (start_epmd(port, path, sizeof path) != 0) {
        startup_error("no port mapper on port %u, and %s did not start one", port, path);
        return -1;
    }
    gd_log(GD_INFO, "event=epmd_started port=%u", port);
    return 0;
}

/* The name must not be registered already: erl says "the name ... seems to be in use". */
static int check_name_free(const gd_config *cfg)
{
    const char *full = cfg->sname ? cfg->sname : cfg->name;
    char alive[256];
    size_t n = strcspn(full, "@");
    if (n >= sizeof alive) n = sizeof alive - 1;
    memcpy(alive, full, n);
    alive[n] = 0;
    epmd_node_info info;
    if (epmd_port_please(NULL, (uint16_t)cfg->epmd_port, alive, 2000, &info) == 0) {
        startup_error("the name %s seems to be in use by another node (registered with the port "
                      "mapper on port %lld, distribution port %u)",
                      alive, cfg->epmd_port, info.port);
        return -1;
    }
    return 0;
}

static int check_port_free(const gd_config *cfg)
{
    if (!cfg->listen_port) return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->listen_port)};
    if (cfg->listen_addr && inet_pton(AF_INET, cfg->listen_addr, &sa.sin_addr) != 1) {
        startup_error("listen_addr %s is not a numeric IPv4 address", cfg->listen_addr);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0) return 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa), e = errno;
    close(fd);
    if (rc != 0) {
        startup_error("cannot listen on distribution port %lld: %s", cfg->listen_port, strerror(e));
        return -1;
    }
    return 0;
}

static const char *module_dir_default(char *buf, size_t n)
{
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return NULL;
    exe[k] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return NULL;
    *slash = 0;
    if (snprintf(buf, n, "%.*s/%s", (int)(n > 128 ? n - 128 : 0), exe, GIRDERD_MODULE_DIR_REL) >=
        (int)n)
        return NULL;
    return buf;
}

/* ---------------------------------------------------------------- main */

/* glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB), after
** which blocks below it come from the freeing thread's arena, whose top is never given back
** while it is smaller than the trim threshold (raised with it). One hostile 64 MiB message then
** leaves each decoder thread ~32 MiB larger for good. A fixed threshold keeps large blocks
** mapped and unmapped when freed; a threshold the user set (environment) is left alone. */
static void malloc_policy(void)
{
#ifdef __GLIBC__
    const char *tun = getenv("GLIBC_TUNABLES");
    if (getenv("MALLOC_MMAP_THRESHOLD_") || (tun && strstr(tun, "mmap_threshold"))) return;
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
}

static bool is_dynamic(const char *name)
{
    return !strcmp(name, "undefined") || !strncmp(name, "undefined@", 10);
}

int main(int argc, char **argv)
{
    gd_config cfg;
    int rc = gd_config_load(&cfg, argc, argv, stdout, stderr);
    if (rc != GD_RUN) {
        gd_config_free(&cfg);
        return rc == GD_EXIT_OK ? 0 : 2;
    }
    if (cfg.check_only) {
        gd_config_print(&cfg, stdout);
        gd_config_free(&cfg);
        return 0;
    }
    if (cfg.log_file) {
        if ((rc = gd_log_open(cfg.log_file)) != 0) {
            fprintf(stderr, "girderd: log file %s: %s\n", cfg.log_file, strerror(-rc));
            gd_config_free(&cfg);
            return 1;
        }
        log_to_file = true;
    }
    malloc_policy();
    int status = 1;
    bool nd_up = false, dist_up = false, mods_up = false, ctl_up = false, pid_written = false;

    /* Every thread inherits this mask; the signal thread takes the signals with sigwait. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_t sig_thread;
    if (pthread_create(&sig_thread, NULL, signal_main, NULL) != 0) {
        startup_error("cannot start the signal thread");
        goto out;
    }
    pthread_detach(sig_thread);

    const char *nm = cfg.sname ? cfg.sname : cfg.name;
    bool dynamic = is_dynamic(nm);
    if (!dynamic && (ensure_epmd(&cfg) || check_name_free(&cfg) || check_port_free(&cfg))) goto out;

    long online = sysconf(_SC_NPROCESSORS_ONLN);
    gd_self.schedulers =
        cfg.schedulers ? (unsigned)cfg.schedulers : (unsigned)(online > 0 ? online : 1);
    gd_self.hidden = cfg.hidden || dynamic;
    gd_self.tls = !strcmp(cfg.proto_dist, "inet_tls");
    gd_self.start_ms = gd_now_ms();
    nd_config nc = {0};
    nc.schedulers = gd_self.schedulers;
    nc.long_schedule = long_schedule;
    nc.log = node_log;
    nc.mailbox_limit = cfg.mailbox_limit ? (size_t)cfg.mailbox_limit : ND_MBOX_UNLIMITED;
    nc.mailbox_policy = !strcmp(cfg.mailbox_policy, "kill")          ? ND_MBOX_KILL
                        : !strcmp(cfg.mailbox_policy, "drop_newest") ? ND_MBOX_DROP_NEWEST
                                                                     : ND_MBOX_REPORT;
    if ((rc = nd_init(&nc)) != 0) {
        startup_error("the runtime did not start: %s", nd_strerror(rc));
        goto out;
    }
    nd_up = true;

    dist_config dc = {0};
    dc.name = nm;
    dc.longnames = cfg.name != NULL;
    dc.connect = cfg.connect;
    dc.cookie = cfg.cookie;
    dc.hidden = cfg.hidden;
    dc.listen_addr = cfg.listen_addr;
    dc.listen_port = (uint16_t)cfg.listen_port;
    dc.epmd_port = (uint16_t)cfg.epmd_port;
    dc.ticktime_s = (unsigned)cfg.ticktime;
    dc.handshake_timeout_ms = (int)cfg.setuptime * 1000;
    dc.max_new_atoms = (size_t)cfg.max_new_atoms;
    dc.atom_reserve = (size_t)cfg.atom_reserve;
    dc.max_handshakes_per_addr = (unsigned)cfg.max_handshakes_per_addr;
    dc.max_handshakes = (unsigned)cfg.max_handshakes;
    dc.atoms_disconnect = cfg.atoms_disconnect;
    dc.log = dist_log;
    dc.proto_dist = cfg.proto_dist;
    dc.ssl_dist_optfile = cfg.ssl_dist_optfile;
    dc.ssl_dist_opt = (const char *const *)cfg.ssl_dist_opt.v;
    dc.ssl_dist_opt_count = (int)cfg.ssl_dist_opt.n;
    dc.sabotage_down_one_in = cfg.sabotage_down_one_in;
    if (cfg.sabotage_down_one_in)
        gd_log(GD_WARNING, "event=sabotage drop_down_one_in=%u", cfg.sabotage_down_one_in);
    if ((rc = dist_start(&dc)) != 0) {
        if (rc == DIST_EEPMD)
            startup_error("registration with the port mapper on port %lld failed (name %s in "
                          "use?)",
                          cfg.epmd_port, nm);
        else if (rc == DIST_ETLSCONF)
            startup_error(
                "TLS distribution did not start: %s (the log line event=tls_config_failed "
                "says which file, option or key)",
                dist_strerror(rc));
        else if (rc == DIST_ENOCONN && dynamic)
            startup_error("%s (the node that names this one) is not reachable", cfg.connect);
        else
            startup_error("distribution did not start: %s", dist_strerror(rc));
        goto out;
    }
    dist_up = true;
    const char *node = term_atom_name(nd_node(), NULL);
    gd_self.node = node;
    dist_export(term_atom("init"), term_atom("stop"), 0, init_stop, NULL);
    dist_export(term_atom("init"), term_atom("stop"), 1, init_stop, NULL);

    char mdir[PATH_MAX], mdir2[PATH_MAX];
    const char *module_dir =
        cfg.module_dir ? cfg.module_dir : module_dir_default(mdir2, sizeof mdir2);
    if ((rc = gd_mods_start(node, module_dir)) != 0) {
        startup_error("the root supervisor did not start: %s", nd_strerror(rc));
        goto out;
    }
    mods_up = true;
    /* A module that fails to load is logged and left out: the node runs without it. */
    char err[512];
    /* the demo module is part of the installation, wherever module_dir points */
    char demo[PATH_MAX + 16];
    const char *ddir = module_dir_default(mdir, sizeof mdir);
    if (cfg.demo && ddir) {
        snprintf(demo, sizeof demo, "%s/demo.so", ddir);
        gd_mods_load(demo, false, err, sizeof err, NULL);
    }
    for (size_t i = 0; i < cfg.modules.n; i++)
        gd_mods_load(cfg.modules.v[i], false, err, sizeof err, NULL);
    gd_mods_start_apps(cfg.apps.v, cfg.apps.n);

    char sock[PATH_MAX];
    const char *sockpath = cfg.control_socket;
    bool make_dir = false;
    if (!sockpath) {
        if (gd_default_control_socket(node, (unsigned)cfg.epmd_port, sock, sizeof sock) == 0) {
            sockpath = sock;
            make_dir = true;
        } else {
            gd_log(GD_WARNING, "event=no_control_socket reason=\"path too long\"");
        }
    }
    if (sockpath && *sockpath) {
        gd_control_cfg cc = {sockpath, make_dir, (size_t)cfg.control_max_clients,
                             (size_t)cfg.control_max_request, (unsigned)cfg.control_idle_timeout};
        if (gd_control_start(&cc, err, sizeof err) != 0) {
            startup_error("%s", err);
            goto out;
        }
        ctl_up = true;
    }
    if (cfg.pid_file && (rc = write_pid_file(cfg.pid_file)) != 0) {
        startup_error("pid file %s: %s", cfg.pid_file, strerror(-rc));
        goto out;
    }
    pid_written = cfg.pid_file != NULL;
    char q[PATH_MAX + 8];
    gd_log(GD_INFO, "event=ready node=%s port=%u control=%s schedulers=%u", node,
           dist_listen_port(), gd_q(q, sizeof q, ctl_up ? sockpath : "none"), gd_self.schedulers);
    notify("READY=1");

    pthread_mutex_lock(&stop_mu);
    while (!atomic_load(&stop_flag)) pthread_cond_wait(&stop_cv, &stop_mu);
    pthread_mutex_unlock(&stop_mu);
    gd_log(GD_INFO, "event=stopping reason=%s", stop_why);
    notify("STOPPING=1");
    status = atomic_load(&exit_status);

out:
    if (status != 0 && !gd_stopping()) gd_request_stop("start_failed");
    if (ctl_up) gd_control_stop();
    if (mods_up) gd_mods_stop();
    if (dist_up) {
        settle_dist();
        dist_stop(5000);
    }
    if (nd_up && nd_shutdown(5000) != 0) gd_log(GD_WARNING, "event=shutdown_timeout");
    if (nd_up) {
        gd_control_free();
        gd_mods_free();
    }
    if (pid_written) unlink(cfg.pid_file);
    if (dist_up || status == 0) gd_log(GD_INFO, "event=stopped status=%d", status);
    gd_config_free(&cfg);
    gd_log_close();
    return status;
}
