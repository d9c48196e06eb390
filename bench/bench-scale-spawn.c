/* SCALE spawn: time and memory to spawn N plain processes that wait in receive, and to stop
** them, for N up to 1,000,000, Girder vs Erlang (a cost curve: docs/performance.md). */
#include "bench_args.h"
#include "nd_bench.h"
#include <stdatomic.h>
#include <unistd.h>

static long n_proc;
static _Atomic long up;
static double t_spawn, t_stop, per_proc;

static size_t rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

static void waiter(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&up, 1, memory_order_relaxed);
    term_t m;
    nd_receive(ND_INFINITY, &m);
    term_free(m);
}

static void bench(void *arg)
{
    (void)arg;
    term_t *pids = malloc(sizeof(term_t) * (size_t)n_proc);
    if (!pids) exit(1);
    size_t base = nd_process_count();
    size_t r0 = rss();
    double t0 = nb_now();
    for (long i = 0; i < n_proc; i++)
        if (nd_spawn(waiter, NULL, NULL, &pids[i]) != 0) {
            fprintf(stderr, "spawn %ld failed\n", i);
            exit(1);
        }
    while (atomic_load(&up) < n_proc) nd_yield();
    double t1 = nb_now();
    per_proc = (double)(rss() - r0) / (double)n_proc;
    for (long i = 0; i < n_proc; i++) {
        nd_send(pids[i], term_atom("stop"));
        term_free(pids[i]);
    }
    while (nd_process_count() > base) nd_yield();
    t_spawn = t1 - t0;
    t_stop = nb_now() - t1;
    free(pids);
}

/* One Girder measurement in a fresh process: "spawn_s bytes stop_s" on stdout. */
static int round_main(long n)
{
    n_proc = n;
    if (nd_init(NULL) != 0) return 1;
    nd_run(bench, NULL, ND_INFINITY, NULL);
    printf("%f %f %f\n", t_spawn, per_proc, t_stop);
    fflush(stdout);
    _exit(0);
}

/* Runs cmd and reads "a b c" from it; false if it did not print three numbers. */
static bool triple(const char *cmd, double v[3])
{
    FILE *f = popen(cmd, "r");
    if (!f) return false;
    char line[256];
    bool ok = false;
    while (fgets(line, sizeof line, f))
        if (!ok && sscanf(line, "%lf %lf %lf", &v[0], &v[1], &v[2]) == 3) ok = true;
    return pclose(f) == 0 && ok;
}

static const char usage[] =
    "usage: bench-scale-spawn [-h | --help]\n"
    "A cost curve: spawn N plain processes that wait in receive, time until all have run,\n"
    "resident bytes each, then stop them and time until the count is back; Girder against\n"
    "Erlang, each measurement a fresh process. One SCALE line per size (the medians) on stdout,\n"
    "and a BENCH line (scale_spawn_1m) when N = 1000000 is among the sizes.\n"
    "  --round N               (internal) one Girder measurement in this process\n"
    "\n"
    "Environment:\n"
    "  BENCH_SCALE_NS=N,N,...  the sizes (default 10000,100000,1000000; at most 8)\n"
    "  BENCH_SCALE_ROUNDS=N    rounds per side and size (default 5, at most 64)\n"
    "  ND_BENCH_NO_ERLANG=1    no Erlang side (its SCALE figures are -1, no ratio)\n" BA_ENV_LIBNODE
        BA_ERL_PATH;

int main(int argc, char **argv)
{
    static const ba_mode modes[] = {{"--round", 1, 1}, {NULL, 0, 0}};
    ba_check(argc, argv, usage, modes);
    if (argc == 3 && !strcmp(argv[1], "--round")) return round_main(atol(argv[2]));
    long sizes[8] = {10000, 100000, 1000000};
    int nsizes = bs_scale_sizes(sizes, 3);
    int rounds = bs_scale_rounds();
    bs_machine("bench-scale-spawn");
    char exe[4096];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return 1;
    exe[k] = 0;
    char dir[] = "/tmp/nd-scale-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    bench_tmpdir_at_exit(dir);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "erlc -o %s %s/libnode_bench.erl", dir, BENCH_ERL_DIR);
    bool erl_ok = !getenv("ND_BENCH_NO_ERLANG") && system(cmd) == 0;
    fprintf(stderr, "%10s %6s | %12s %12s %10s | %12s %12s %10s\n", "N", "round", "girder s",
            "bytes/proc", "stop s", "erlang s", "bytes/proc", "stop s");
    for (int i = 0; i < nsizes; i++) {
        /* [0] spawn time, [1] resident bytes per process, [2] stop time; rows are rounds */
        double gv[3][64], ev[3][64];
        for (int r = 0; r < rounds; r++) {
            double g[3] = {-1, -1, -1}, e[3] = {-1, -1, -1};
            char ecmd[sizeof dir + 256];
            snprintf(cmd, sizeof cmd, "exec %s --round %ld", exe, sizes[i]);
            snprintf(ecmd, sizeof ecmd,
                     "exec erl -noshell +P 2000000 -pa %s -eval 'libnode_bench:scale_spawn(%ld), "
                     "halt().'",
                     dir, sizes[i]);
            /* interleaved: odd rounds start with erl */
            if (r % 2 && (!erl_ok || !triple(ecmd, e))) e[0] = -1;
            if (!triple(cmd, g)) g[0] = -1;
            if (!(r % 2) && (!erl_ok || !triple(ecmd, e))) e[0] = -1;
            fprintf(stderr, "%10ld %6d | %12.4f %12.0f %10.4f | %12.4f %12.0f %10.4f  (load %s)\n",
                    sizes[i], r + 1, g[0], g[1], g[2], e[0], e[1], e[2], bs_load());
            for (int f = 0; f < 3; f++) {
                gv[f][r] = g[0] > 0 ? g[f] : -1;
                ev[f][r] = e[0] > 0 ? e[f] : -1;
            }
        }
        /* median and spread of each figure, each side; the SCALE line has the medians */
        static const char *what[3] = {"spawn", "bytes_per_process", "stop"};
        static const char *unit[3] = {"s", "bytes", "s"};
        double gm[3], em[3];
        for (int f = 0; f < 3; f++) {
            char name[64];
            /* the 1M spawn time is also the BENCH line's, under its name */
            if (f == 0 && sizes[i] == 1000000)
                snprintf(name, sizeof name, "scale_spawn_1m");
            else
                snprintf(name, sizeof name, "scale_%s_%ld", what[f], sizes[i]);
            gm[f] = bs_side(name, "girder", gv[f], rounds, unit[f]);
            em[f] = bs_side(name, "erlang", ev[f], rounds, unit[f]);
        }
        printf("SCALE spawn_wait n=%ld rounds=%d girder_s=%.4f girder_bytes=%.0f "
               "girder_stop_s=%.4f erlang_s=%.4f erlang_bytes=%.0f erlang_stop_s=%.4f\n",
               sizes[i], rounds, gm[0], gm[1], gm[2], em[0], em[1], em[2]);
        fflush(stdout);
        if (sizes[i] == 1000000) bs_print("scale_spawn_1m", gm[0], em[0], "s", false);
    }
    return bench_tmpdir_remove() == 0 ? 0 : 1;
}
