/* BENCH dist_nodedown_latency: kill -9 of a node -> a linked and monitoring process elsewhere sees
 * noconnection. */
#include <girder/dist.h>
#include <girder/epmd.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_args.h"
#include "bench_child.h"
#include "bench_stats.h"

#define A(s) term_atom(s)

static const char *cookie = "girder_bench_nd";
static char host[256], tmpdir[64], bindir[PATH_MAX], exe[PATH_MAX];
static uint16_t eport;
static int runs = 9;

static void quiet(void *ud, int level, const char *line)
{
    (void)ud;
    (void)level;
    (void)line;
}

static int start_node(const char *name)
{
    nd_config nc = {0};
    if (nd_init(&nc) != 0) return -1;
    dist_config dc = {0};
    dc.name = name;
    dc.cookie = cookie;
    dc.epmd_port = eport;
    dc.log = quiet;
    return dist_start(&dc) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- Girder victim */

/* bench_victim: {From, whoami} -> From ! {victim, self()}; otherwise waits. */
static void victim(void *arg)
{
    (void)arg;
    for (;;) {
        term_t m;
        nd_receive(ND_INFINITY, &m);
        if (term_is_tuple(m) && term_tuple_arity(m) == 2)
            nd_send(term_tuple_elem(m, 0), term_tuplev(2, A("victim"), term_dup(nd_self())));
        term_free(m);
    }
}

static int victim_main(const char *name)
{
    if (start_node(name) != 0) return 1;
    nd_spawn_opts o = {0};
    o.name = A("bench_victim");
    nd_spawn(victim, NULL, &o, NULL);
    printf("READY\n");
    fflush(stdout);
    for (;;) pause(); /* until kill -9 */
}

/* ---------------------------------------------------------------- Girder watcher */

/* Links to and monitors the victim's process (trapping exits), says READY, and prints DOWN once
** both the exit signal and the DOWN with noconnection have arrived. */
static void watch_body(void *arg)
{
    term_t node = A((const char *)arg), m;
    if (dist_ping(node, 5000) != 0) nd_exit(A("no_victim"));
    term_t to = term_tuplev(2, A("bench_victim"), node);
    nd_send(to, term_tuplev(2, term_dup(nd_self()), A("whoami")));
    term_free(to);
    if (nd_receive(5000, &m) < 0) nd_exit(A("no_whoami"));
    term_t pid = term_dup(term_tuple_elem(m, 1));
    term_free(m);
    nd_trap_exit(true);
    term_t ref;
    nd_link(pid);
    nd_monitor(pid, &ref);
    /* a round trip so that the link and monitor are in place on the victim before READY */
    to = term_tuplev(2, A("bench_victim"), node);
    nd_send(to, term_tuplev(2, term_dup(nd_self()), A("whoami")));
    term_free(to);
    if (nd_receive(5000, &m) < 0) nd_exit(A("no_whoami"));
    term_free(m);
    printf("READY\n");
    fflush(stdout);
    bool ex = false, dn = false;
    while (!ex || !dn) {
        if (nd_receive(30000, &m) < 0) nd_exit(A("timeout"));
        if (term_is_tuple(m) && term_tuple_elem(m, 0) == A("EXIT") &&
            term_tuple_elem(m, 2) == A("noconnection"))
            ex = true;
        if (term_is_tuple(m) && term_tuple_elem(m, 0) == A("DOWN") &&
            term_tuple_elem(m, 4) == A("noconnection"))
            dn = true;
        term_free(m);
    }
    printf("DOWN\n");
    fflush(stdout);
    term_free(pid);
    term_free(ref);
}

static int watcher_main(const char *name, const char *victim_node)
{
    if (start_node(name) != 0) return 1;
    nd_run(watch_body, (void *)victim_node, 60000, NULL);
    dist_stop(2000);
    nd_shutdown(2000);
    return 0;
}

/* ---------------------------------------------------------------- child processes */

/*
** One measurement: starts a victim and a watcher (both Girder or both erl), kills the victim
** with SIGKILL (its process alone: `exec` makes the node the child itself) and times until the
** watcher prints DOWN. Milliseconds, or -1.
*/
static double one_run(bool erlang, int i)
{
    char cmd[2 * PATH_MAX + 512], vname[64], wname[64];
    snprintf(vname, sizeof vname, "bnd_v%c_%d_%d", erlang ? 'e' : 'g', (int)getpid(), i);
    snprintf(wname, sizeof wname, "bnd_w%c_%d_%d", erlang ? 'e' : 'g', (int)getpid(), i);
    if (erlang)
        snprintf(cmd, sizeof cmd,
                 "ERL_EPMD_PORT=%u exec erl -sname %s -setcookie %s -noshell -pa %s "
                 "-eval 'dist_bench:victim()'",
                 eport, vname, cookie, tmpdir);
    else
        snprintf(cmd, sizeof cmd, "exec %s --victim %s %u", exe, vname, eport);
    bench_child v = bench_spawn(cmd);
    if (bench_read_until(&v, "READY", NULL) != 0) {
        bench_stop(&v, SIGKILL);
        return -1;
    }
    if (erlang)
        snprintf(cmd, sizeof cmd,
                 "ERL_EPMD_PORT=%u exec erl -sname %s -setcookie %s -noshell -pa %s "
                 "-eval 'dist_bench:watch(%s@%s), halt().'",
                 eport, wname, cookie, tmpdir, vname, host);
    else
        snprintf(cmd, sizeof cmd, "exec %s --watch %s %s@%s %u", exe, wname, vname, host, eport);
    bench_child w = bench_spawn(cmd);
    double ms = -1;
    if (bench_read_until(&w, "READY", NULL) == 0) {
        usleep(100000); /* let both sides settle */
        double t0 = bench_now();
        kill(v.pid, SIGKILL);
        if (bench_read_until(&w, "DOWN", NULL) == 0) ms = (bench_now() - t0) * 1000;
    }
    bench_stop(&v, SIGKILL);
    bench_stop(&w, SIGTERM);
    return ms;
}

static const char usage[] =
    "usage: bench-dist-nodedown [-h | --help]\n"
    "Node-down latency: kill -9 of a node -> time until a process on another node that links to\n"
    "and monitors one there (trapping exits) has both noconnection signals (ms); Girder pairs\n"
    "against erl pairs, a fresh pair per run, on a private port mapper, runs interleaved.\n"
    "One BENCH line (dist_nodedown_latency) on stdout, every run on stderr.\n"
    "  --victim NAME PORT      (internal) the Girder node that is killed\n"
    "  --watch NAME VICTIM PORT  (internal) the Girder node that watches VICTIM\n"
    "\n"
    "Environment:\n"
    "  BENCH_NODEDOWN_RUNS=N   runs per side (default 9, at most 64)\n" BA_ENV_LIBNODE
        BA_ERL_EPMD_PATH;

int main(int argc, char **argv)
{
    static const ba_mode modes[] = {{"--victim", 2, 2}, {"--watch", 3, 3}, {NULL, 0, 0}};
    ba_check(argc, argv, usage, modes);
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return 1;
    exe[k] = 0;
    snprintf(bindir, sizeof bindir, "%s", exe);
    *strrchr(bindir, '/') = 0;
    gethostname(host, sizeof host);
    if (strchr(host, '.')) *strchr(host, '.') = 0;
    if (argc == 4 && !strcmp(argv[1], "--victim")) {
        eport = (uint16_t)atoi(argv[3]);
        return victim_main(argv[2]);
    }
    if (argc == 5 && !strcmp(argv[1], "--watch")) {
        eport = (uint16_t)atoi(argv[4]);
        return watcher_main(argv[2], argv[3]);
    }
    if (getenv("BENCH_NODEDOWN_RUNS")) runs = atoi(getenv("BENCH_NODEDOWN_RUNS"));
    if (runs < 1) runs = 1;
    bs_machine("bench-dist-nodedown");
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dist-nd-bench-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    bench_tmpdir_at_exit(tmpdir);
    char cmd[2 * PATH_MAX + 256];
    snprintf(cmd, sizeof cmd, "erlc -o %s %s/dist_bench.erl", tmpdir, BENCH_ERL_DIR);
    if (system(cmd) != 0) return 1;
    bench_child epmd = bench_start_epmd(bindir, (unsigned)getpid() * 13u, &eport);
    if (epmd.pid < 0) return 1;
    /* interleaved runs, the side that goes first alternating; a failed run counts as failed */
    double ev[64], gv[64];
    if (runs > 64) runs = 64;
    for (int i = 0; i < runs; i++) {
        if (i % 2) ev[i] = one_run(true, i);
        gv[i] = one_run(false, i);
        if (!(i % 2)) ev[i] = one_run(true, i);
    }
    double g = bs_side("dist_nodedown_latency", "girder", gv, runs, "ms");
    double e = bs_side("dist_nodedown_latency", "erlang", ev, runs, "ms");
    fprintf(stderr, "dist_nodedown_latency: load at the end %s\n", bs_load());
    bs_print("dist_nodedown_latency", g, e, "ms", false);
    bench_stop(&epmd, SIGTERM);
    return bench_tmpdir_remove() == 0 && g > 0 && e > 0 ? 0 : 1;
}
