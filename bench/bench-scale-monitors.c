/* SCALE monitors: N processes on one node monitored from another over one connection; kill -9
** of the monitored node -> time until every DOWN is delivered. Girder pairs vs erl pairs. */
#include <girder/dist.h>
#include <girder/epmd.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_args.h"
#include "bench_child.h"
#include "bench_stats.h"

#define A(s) term_atom(s)

static const char *cookie = "girder_bench_mon";
static char host[256], tmpdir[64], bindir[PATH_MAX], exe[PATH_MAX];
static uint16_t eport;

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

static void waiter(void *arg)
{
    (void)arg;
    term_t m;
    nd_receive(ND_INFINITY, &m);
    term_free(m);
}

/* bench_mvictim: spawns n waiting processes; {From, pids} -> From ! {pids, [Pid...]};
** {From, sync} -> From ! sync. */
static void mvictim(void *arg)
{
    long n = (long)(intptr_t)arg;
    term_t *pids = malloc(sizeof(term_t) * (size_t)n);
    if (!pids) nd_exit(A("enomem"));
    for (long i = 0; i < n; i++) nd_spawn(waiter, NULL, NULL, &pids[i]);
    for (;;) {
        term_t m;
        nd_receive(ND_INFINITY, &m);
        if (term_is_tuple(m) && term_tuple_arity(m) == 2) {
            term_t what = term_tuple_elem(m, 1);
            if (what == A("pids")) {
                term_t l = TERM_NIL;
                for (long i = n; i-- > 0;) l = term_cons(term_dup(pids[i]), l);
                nd_send(term_tuple_elem(m, 0), term_tuplev(2, A("pids"), l));
            } else {
                nd_send(term_tuple_elem(m, 0), A("sync"));
            }
        }
        term_free(m);
    }
}

static int victim_main(const char *name, long n)
{
    if (start_node(name) != 0) return 1;
    nd_spawn_opts o = {0};
    o.name = A("bench_mvictim");
    nd_spawn(mvictim, (void *)(intptr_t)n, &o, NULL);
    printf("READY\n");
    fflush(stdout);
    for (;;) pause(); /* until kill -9 */
}

/* ---------------------------------------------------------------- Girder watcher */

typedef struct wjob {
    const char *node;
    long n;
} wjob;

/* Monitors every process of the victim, a round trip so that the monitors are in place, READY;
** then DOWN once n DOWN messages with noconnection have arrived. */
static void watch_body(void *arg)
{
    wjob *j = arg;
    term_t node = A(j->node), m;
    if (dist_ping(node, 5000) != 0) nd_exit(A("no_victim"));
    term_t to = term_tuplev(2, A("bench_mvictim"), node);
    nd_send(to, term_tuplev(2, term_dup(nd_self()), A("pids")));
    if (nd_receive(60000, &m) < 0) nd_exit(A("no_pids"));
    long got = 0;
    for (term_t l = term_tuple_elem(m, 1); term_is_cons(l); l = term_tl(l)) {
        term_t ref;
        if (nd_monitor(term_hd(l), &ref) == 0) got++;
        term_free(ref);
    }
    term_free(m);
    if (got != j->n) nd_exit(A("monitors"));
    nd_send(to, term_tuplev(2, term_dup(nd_self()), A("sync")));
    if (nd_receive(60000, &m) < 0) nd_exit(A("no_sync"));
    term_free(m);
    term_free(to);
    printf("READY\n");
    fflush(stdout);
    /* interned once, as erl's compiled pattern has its atoms ready: not per message */
    const term_t down = A("DOWN"), noconnection = A("noconnection");
    long downs = 0;
    while (downs < j->n) {
        if (nd_receive(120000, &m) < 0) nd_exit(A("timeout"));
        if (term_is_tuple(m) && term_tuple_arity(m) == 5 && term_tuple_elem(m, 0) == down &&
            term_tuple_elem(m, 4) == noconnection)
            downs++;
        term_free(m);
    }
    printf("DOWN\n");
    fflush(stdout);
}

static int watcher_main(const char *name, const char *victim_node, long n)
{
    if (start_node(name) != 0) return 1;
    wjob j = {victim_node, n};
    nd_run(watch_body, &j, 600000, NULL);
    _exit(0);
}

/* ---------------------------------------------------------------- one measurement */

/* Starts a victim with n processes and a watcher (both Girder or both erl), kills the victim
** with SIGKILL and times until the watcher prints DOWN. Milliseconds, or -1. */
static double one_run(bool erlang, long n, int i)
{
    char cmd[2 * PATH_MAX + 512], vname[64], wname[64];
    snprintf(vname, sizeof vname, "bsm_v%c_%d_%d", erlang ? 'e' : 'g', (int)getpid(), i);
    snprintf(wname, sizeof wname, "bsm_w%c_%d_%d", erlang ? 'e' : 'g', (int)getpid(), i);
    if (erlang)
        snprintf(cmd, sizeof cmd,
                 "ERL_EPMD_PORT=%u exec erl +P 4000000 -sname %s -setcookie %s -noshell -pa %s "
                 "-eval 'dist_bench:mvictim(%ld)'",
                 eport, vname, cookie, tmpdir, n);
    else
        snprintf(cmd, sizeof cmd, "exec %s --victim %s %u %ld", exe, vname, eport, n);
    bench_child v = bench_spawn(cmd);
    if (bench_read_until(&v, "READY", NULL) != 0) {
        bench_stop(&v, SIGKILL);
        return -1;
    }
    if (erlang)
        snprintf(cmd, sizeof cmd,
                 "ERL_EPMD_PORT=%u exec erl +P 4000000 -sname %s -setcookie %s -noshell -pa %s "
                 "-eval 'dist_bench:mwatch(%s@%s, %ld), halt().'",
                 eport, wname, cookie, tmpdir, vname, host, n);
    else
        snprintf(cmd, sizeof cmd, "exec %s --watch %s %s@%s %u %ld", exe, wname, vname, host, eport,
                 n);
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
    "usage: bench-scale-monitors [-h | --help]\n"
    "A cost curve: a node with N waiting processes and a watcher on another node that monitors\n"
    "them all over one connection; kill -9 of the first node -> time until every DOWN (ms).\n"
    "Girder pairs against erl pairs on a private port mapper. One SCALE line per size on stdout,\n"
    "and a BENCH line (scale_monitors_100k) when N = 100000 is among the sizes.\n"
    "  --victim NAME PORT N    (internal) the Girder node with N processes that is killed\n"
    "  --watch NAME VICTIM PORT N  (internal) the Girder node that monitors them\n"
    "\n"
    "Environment:\n"
    "  BENCH_SCALE_NS=N,N,...  the sizes (default 1000,10000,100000; at most 8)\n"
    "  BENCH_SCALE_ROUNDS=N    runs per side and size (default 5, at most 64)\n" BA_ENV_LIBNODE
        BA_ERL_EPMD_PATH;

int main(int argc, char **argv)
{
    static const ba_mode modes[] = {{"--victim", 3, 3}, {"--watch", 4, 4}, {NULL, 0, 0}};
    ba_check(argc, argv, usage, modes);
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return 1;
    exe[k] = 0;
    snprintf(bindir, sizeof bindir, "%s", exe);
    *strrchr(bindir, '/') = 0;
    gethostname(host, sizeof host);
    if (strchr(host, '.')) *strchr(host, '.') = 0;
    if (argc == 5 && !strcmp(argv[1], "--victim")) {
        eport = (uint16_t)atoi(argv[3]);
        return victim_main(argv[2], atol(argv[4]));
    }
    if (argc == 6 && !strcmp(argv[1], "--watch")) {
        eport = (uint16_t)atoi(argv[4]);
        return watcher_main(argv[2], argv[3], atol(argv[5]));
    }
    long sizes[8] = {1000, 10000, 100000};
    int nsizes = bs_scale_sizes(sizes, 3);
    int rounds = bs_scale_rounds();
    bs_machine("bench-scale-monitors");
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/scale-mon-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    bench_tmpdir_at_exit(tmpdir);
    char cmd[2 * PATH_MAX + 256];
    snprintf(cmd, sizeof cmd, "erlc -o %s %s/dist_bench.erl", tmpdir, BENCH_ERL_DIR);
    if (system(cmd) != 0) return 1;
    bench_child epmd = bench_start_epmd(bindir, (unsigned)getpid() * 17u, &eport);
    if (epmd.pid < 0) return 1;
    for (int s = 0; s < nsizes; s++) {
        double g[64], e[64];
        for (int r = 0; r < rounds; r++) {
            if (r % 2) e[r] = one_run(true, sizes[s], r);
            g[r] = one_run(false, sizes[s], r);
            if (!(r % 2)) e[r] = one_run(true, sizes[s], r);
            fprintf(stderr, "%ld monitors: girder %.1f ms, erlang %.1f ms (load %s)\n", sizes[s],
                    g[r], e[r], bs_load());
        }
        char name[64];
        snprintf(name, sizeof name, "scale_monitors_%ld", sizes[s]);
        double gm = bs_side(name, "girder", g, rounds, "ms");
        double em = bs_side(name, "erlang", e, rounds, "ms");
        printf("SCALE monitors_nodedown n=%ld rounds=%d girder_ms=%.1f erlang_ms=%.1f\n", sizes[s],
               rounds, gm, em);
        fflush(stdout);
        if (sizes[s] == 100000) {
            fprintf(stderr, "scale_monitors_100k: load at the end %s\n", bs_load());
            bs_print("scale_monitors_100k", gm, em, "ms", false);
        }
    }
    bench_stop(&epmd, SIGTERM);
    return bench_tmpdir_remove() == 0 ? 0 : 1;
}
