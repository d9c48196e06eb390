/* girder-epmd: drop-in Erlang port mapper daemon and tool, with Erlang's epmd flags. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "epmd_int.h"
#include "girder_deadline.h"

#define CLI_TIMEOUT_MS 10000

typedef struct opts {
    uint16_t port;
    const char *addresses;
    int debug;
    int daemon;
    int relaxed;
    int packet_timeout;
    long max_conns;
    enum { RUN, NAMES, STARTED, DUMP, KILL, STOP } cmd;
    const char *stop_name;
} opts;

static int g_debug;
static int g_syslog;

static void usage(void)
{
    fprintf(
        stderr,
        "usage: girder-epmd [-d|-debug] [-port No] [-address List] [-daemon]\n"
        "                   [-relaxed_command_check] [-packet_timeout Seconds]\n"
        "                   [-max_connections N]\n"
        "       girder-epmd [-d|-debug] [-port No] [-names|-started|-dump|-kill|-stop Name]\n"
        "\n"
        "A drop-in replacement for Erlang's epmd; see docs/epmd.md.\n"
        "  -port No                 listen on / talk to port No (default: ERL_EPMD_PORT or 4369)\n"
        "  -address List            listen only on these addresses (comma-separated; loopback\n"
        "                           is always added; default: ERL_EPMD_ADDRESS or all)\n"
        "  -daemon                  detach and log to syslog\n"
        "  -relaxed_command_check   allow -kill with live nodes and -stop (also\n"
        "                           ERL_EPMD_RELAXED_COMMAND_CHECK)\n"
        "  -packet_timeout Seconds  time a non-registration connection may take (default 60)\n"
        "  -max_connections N       connections held at once (default: file limit - 32)\n"
        "  -d, -debug               more log lines (repeat for more)\n"
        "  -names                   list names registered with the running epmd\n"
        "  -started                 like -names, silently: exit status says if epmd runs\n"
        "  -dump                    dump the running epmd's tables\n"
        "  -kill                    stop the running epmd (if no live nodes, or relaxed)\n"
        "  -stop Name               unregister Name (needs relaxed command check)\n");
    exit(1);
}

/* One line per event in Girder's log format (girder_log.h): on stderr, or to syslog with
** -daemon (which stamps the time itself, so the line goes without it, at the same priority).
** Notice and above are shown; -d adds info, -d -d debug. */
static void log_line(void *arg, int level, const char *fmt, va_list ap)
{
    (void)arg;
    if (level > GIRDER_LOG_NOTICE + g_debug) return;
    char line[2048];
    size_t n = girder__log_vformat(line, sizeof line, girder__now_ns(CLOCK_REALTIME), level, "epmd",
                                   fmt, ap);
    if (g_syslog) {
        const char *lv = strchr(line, ' '); /* after the time */
        syslog(level, "%s", lv ? lv + 1 : line);
        return;
    }
    line[n] = '\n';
    fwrite(line, 1, n + 1, stderr);
}

static void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(NULL, level, fmt, ap);
    va_end(ap);
}

/* Parses a positive decimal no larger than max, else 0. */
static long positive(const char *s, long max)
{
    char *end;
    long v = strtol(s, &end, 10);
    return (*s && *end == 0 && v > 0 && v <= max) ? v : 0;
}

static void parse_args(int argc, char **argv, opts *o)
{
    memset(o, 0, sizeof *o);
    o->port = epmd_default_port();
    o->addresses = getenv("ERL_EPMD_ADDRESS");
    o->relaxed = getenv("ERL_EPMD_RELAXED_COMMAND_CHECK") != NULL;
    o->packet_timeout = 60;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-d") || !strcmp(a, "-debug")) {
            o->debug++;
        } else if (!strcmp(a, "-port")) {
            long p = v ? positive(v, 65535) : 0;
            if (!p) usage();
            o->port = (uint16_t)p;
            i++;
        } else if (!strcmp(a, "-address")) {
            if (!v) usage();
            o->addresses = v;
            i++;
        } else if (!strcmp(a, "-daemon")) {
            o->daemon = 1;
        } else if (!strcmp(a, "-relaxed_command_check")) {
            o->relaxed = 1;
        } else if (!strcmp(a, "-packet_timeout")) {
            if (!v || !(o->packet_timeout = (int)positive(v, 86400))) usage();
            i++;
        } else if (!strcmp(a, "-delay_accept") || !strcmp(a, "-delay_write")) {
            /* Erlang's test-only busy-server simulation; accepted and ignored. */
            if (!v || !positive(v, 86400)) usage();
            i++;
        } else if (!strcmp(a, "-max_connections")) {
            if (!v || !(o->max_conns = positive(v, 10000000))) usage();
            i++;
        } else if (!strcmp(a, "-names") || !strcmp(a, "-started") || !strcmp(a, "-dump") ||
                   !strcmp(a, "-kill")) {
            o->cmd = !strcmp(a, "-names")     ? NAMES
                     : !strcmp(a, "-started") ? STARTED
                     : !strcmp(a, "-dump")    ? DUMP
                                              : KILL;
        } else if (!strcmp(a, "-stop")) {
            if (!v) usage();
            o->cmd = STOP;
            o->stop_name = v;
            i++;
        } else if (!strcmp(a, "-systemd")) {
            fprintf(stderr, "girder-epmd: -systemd is not supported\n");
            exit(1);
        } else {
            usage();
        }
    }
}

/* The tool side: talk to the running epmd on loopback, print what Erlang's epmd prints. */
static int run_command(const opts *o)
{
    int r;
    if (o->cmd == NAMES || o->cmd == STARTED || o->cmd == DUMP) {
        uint32_t port = 0;
        char *text = NULL;
        size_t len = 0;
        if (o->cmd == DUMP) {
            r = epmd_dump(NULL, o->port, CLI_TIMEOUT_MS, &port, &text, &len);
        } else {
            epmd_name_list n;
            r = epmd_names(NULL, o->port, CLI_TIMEOUT_MS, &n);
            if (r == 0) {
                port = n.epmd_port;
                text = n.text;
                len = n.text_len;
                n.text = NULL;
                epmd_names_free(&n);
            }
        }
        if (r) {
            if (o->cmd == STARTED) return 1;
            if (r == EPMD_ECONNREFUSED || r == EPMD_EHOSTUNREACH)
                fprintf(stderr, "epmd: Cannot connect to local epmd\n");
            else
                printf("epmd: no response from local epmd (%s)\n", epmd_strerror(r));
            return 1;
        }
        if (o->cmd != STARTED) {
            printf("epmd: up and running on port %u with data:\n", port);
            fwrite(text, 1, len, stdout);
        }
        free(text);
        return 0;
    }
    if (o->cmd == KILL) {
        r = epmd_kill(NULL, o->port, CLI_TIMEOUT_MS);
        if (r == 0) {
            printf("Killed\n");
            return 0;
        }
        if (r == EPMD_EPERM)
            printf("Killing not allowed - living nodes in database.\n");
        else if (r == EPMD_ECONNREFUSED || r == EPMD_EHOSTUNREACH)
            fprintf(stderr, "epmd: Cannot connect to local epmd\n");
        else
            printf("epmd: failed to read answer from local epmd (%s)\n", epmd_strerror(r));
        return 1;
    }
    /* STOP */
    if (strlen(o->stop_name) > 1000) {
        printf("epmd: Name too long!");
        return 1;
    }
    r = epmd_stop(NULL, o->port, o->stop_name, CLI_TIMEOUT_MS);
    if (r == 0 || r == EPMD_ENOENT) {
        printf("%s\n", r == 0 ? "STOPPED" : "NOEXIST");
        return 0;
    }
    if (r == EPMD_ECONNREFUSED || r == EPMD_EHOSTUNREACH)
        fprintf(stderr, "epmd: Cannot connect to local epmd\n");
    else
        printf("epmd: local epmd responded with <>\n");
    return 1;
}

/* Detaches like Erlang's epmd -daemon: two forks, new session, / as cwd, stdio to /dev/null. */
static void daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0) exit(1);
    if (pid > 0) exit(0);
    if (setsid() < 0) exit(1);
    signal(SIGHUP, SIG_IGN);
    pid = fork();
    if (pid < 0) exit(1);
    if (pid > 0) exit(0);
    if (chdir("/") != 0) exit(1);
    umask(022);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2) close(fd);
    }
    openlog("girder-epmd", LOG_PID, LOG_DAEMON);
    g_syslog = 1;
}

static uv_signal_t g_sigterm, g_sigint;

static void on_stopped(epmd__server *s)
{
    (void)s;
    uv_close((uv_handle_t *)&g_sigterm, NULL);
    uv_close((uv_handle_t *)&g_sigint, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
    epmd__server *s = h->data;
    log_msg(GIRDER_LOG_NOTICE, "event=stopping signal=%d", signum);
    epmd__server_close(s, on_stopped);
}

/* Connections need descriptors: use the whole hard limit, keep a few for the rest. */
static size_t raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1000;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY ? 65536 : rl.rlim_max;
        struct rlimit nl = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0) rl.rlim_cur = want;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1000000) return 1000000;
    return rl.rlim_cur > 64 ? (size_t)rl.rlim_cur - 32 : 16;
}

int main(int argc, char **argv)
{
    opts o;
    parse_args(argc, argv, &o);
    g_debug = o.debug;
    if (o.cmd != RUN) return run_command(&o);

    signal(SIGPIPE, SIG_IGN);
    size_t max_conns = raise_fd_limit();
    if (o.max_conns > 0 && (size_t)o.max_conns < max_conns) max_conns = (size_t)o.max_conns;
    if (o.daemon) daemonize();

    uv_loop_t *loop = uv_default_loop();
    static epmd__server srv;
    epmd__server_config cfg = {
        .port = o.port,
        .addresses = o.addresses,
        .relaxed = o.relaxed,
        .debug = o.debug,
        .packet_timeout_s = o.packet_timeout,
        .max_conns = max_conns,
        .log = log_line,
    };
    int r = epmd__server_start(&srv, loop, &cfg);
    if (r) {
        uv_run(loop, UV_RUN_DEFAULT); /* finish closing what was opened */
        uv_loop_close(loop);
        /* Like Erlang's epmd: finding one already running is not a failure (erl relies on it). */
        return r == EPMD_EADDRINUSE ? 0 : 1;
    }
    log_msg(GIRDER_LOG_NOTICE,
            "event=started port=%u relaxed_command_check=%d max_connections=%zu pid=%ld",
            srv.bound_port, o.relaxed, max_conns, (long)getpid());
    uv_signal_init(loop, &g_sigterm);
    uv_signal_init(loop, &g_sigint);
    g_sigterm.data = g_sigint.data = &srv;
    uv_signal_start(&g_sigterm, on_signal, SIGTERM);
    uv_signal_start(&g_sigint, on_signal, SIGINT);
    /* A KILL request closes the server without the signal handles: close them too. */
    srv.close_cb = on_stopped;
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    log_msg(GIRDER_LOG_NOTICE, "event=stopped kill_req=%s", srv.killed ? "true" : "false");
    return 0;
}
