/* girderd: a Girder node daemon — libnode + Erlang distribution + the demo module. */
#include "demo.h"

#include <errno.h>
#include <girder/dist.h>
#include <girder/epmd.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: girderd --sname NAME | --name NAME@HOST [--cookie C] [--hidden]\n"
            "               [--listen-port P] [--ticktime S] [--setuptime S] [--schedulers N]\n"
            "       girderd --sname undefined --connect NODE ...  (a dynamic name given by NODE)\n"
            "  cookie: --cookie, else ~/.erlang.cookie; port mapper: ERL_EPMD_PORT or 4369\n"
            "  (girder-epmd is started when no port mapper answers). SIGTERM stops cleanly.\n");
}

static void log_line(void *ud, int level, const char *line)
{
    (void)ud;
    (void)level;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ girderd %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
            line);
    fflush(stderr);
}

/* Starts girder-epmd (next to this executable) as a daemon on port, as erl starts epmd. */
static int start_epmd(uint16_t port)
{
    char exe[PATH_MAX], path[PATH_MAX + 32], portstr[16];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return -1;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return -1;
    *slash = 0;
    snprintf(path, sizeof path, "%s/girder-epmd", exe);
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

int main(int argc, char **argv)
{
    dist_config cfg = {0};
    unsigned scheds = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--sname") && v) {
            cfg.name = v;
            i++;
        } else if (!strcmp(a, "--name") && v) {
            cfg.name = v;
            cfg.longnames = true;
            i++;
        } else if (!strcmp(a, "--cookie") && v) {
            cfg.cookie = v;
            i++;
        } else if (!strcmp(a, "--connect") && v) {
            cfg.connect = v;
            i++;
        } else if (!strcmp(a, "--hidden")) {
            cfg.hidden = true;
        } else if (!strcmp(a, "--listen-port") && v) {
            cfg.listen_port = (uint16_t)atoi(v);
            i++;
        } else if (!strcmp(a, "--ticktime") && v) {
            cfg.ticktime_s = (unsigned)atoi(v);
            i++;
        } else if (!strcmp(a, "--setuptime") && v) {
            cfg.handshake_timeout_ms = atoi(v) * 1000;
            i++;
        } else if (!strcmp(a, "--schedulers") && v) {
            scheds = (unsigned)atoi(v);
            i++;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!cfg.name) {
        usage(stderr);
        return 2;
    }
    if ((!strcmp(cfg.name, "undefined") || !strncmp(cfg.name, "undefined@", 10)) && !cfg.connect) {
        fprintf(stderr, "girderd: a dynamic name (undefined) needs --connect NODE\n");
        return 2;
    }
    if (cfg.longnames && !strchr(cfg.name, '@') && !cfg.connect) {
        fprintf(stderr, "girderd: --name needs NAME@HOST\n");
        return 2;
    }
    cfg.log = log_line;
    /* Every thread inherits this mask; the main thread takes the signals with sigwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    uint16_t eport = epmd_default_port();
    epmd_name_list nl;
    int erc = epmd_names(NULL, eport, 1000, &nl);
    if (erc == 0) {
        epmd_names_free(&nl);
    } else if (erc == EPMD_ECONNREFUSED) {
        if (start_epmd(eport) != 0) {
            fprintf(stderr, "girderd: no port mapper on %u and girder-epmd did not start\n", eport);
            return 1;
        }
        log_line(NULL, DIST_LOG_NOTICE, "event=epmd_started");
    }
    nd_config nc = {0};
    nc.schedulers = scheds;
    if (nd_init(&nc) != 0) {
        fprintf(stderr, "girderd: runtime did not start\n");
        return 1;
    }
    int rc = dist_start(&cfg);
    if (rc) {
        fprintf(stderr, "girderd: distribution did not start: %s\n", dist_strerror(rc));
        nd_shutdown(2000);
        return 1;
    }
    term_t sup = TERM_NONE;
    if ((rc = demo_start(&sup)) != 0) {
        fprintf(stderr, "girderd: demo supervisor did not start (%d)\n", rc);
        dist_stop(2000);
        nd_shutdown(2000);
        return 1;
    }
    log_line(NULL, DIST_LOG_NOTICE, "event=ready");
    int sig = 0;
    while (sigwait(&set, &sig) == 0 && sig == SIGHUP) {
    }
    char line[64];
    snprintf(line, sizeof line, "event=stopping signal=%d", sig);
    log_line(NULL, DIST_LOG_NOTICE, line);
    nd_server_stop(sup, term_atom("shutdown"), 5000);
    term_free(sup);
    dist_stop(5000);
    nd_shutdown(5000);
    log_line(NULL, DIST_LOG_NOTICE, "event=stopped");
    return 0;
}
