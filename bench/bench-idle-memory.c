/* BENCH idle_process_memory: bytes per idle process over 1,000,000 server-behaviour processes,
** and per plain process blocked in receive (idle_process_memory_plain, after the settle period
** in which idle stacks are parked), vs Erlang. */
#include "bench_args.h"
#include "nd_bench.h"
#include <girder/node_obs.h>
#include <stdatomic.h>
#include <unistd.h>

#define N_SERVER      1000000
#define PARK_AFTER_MS 250    /* nd_config.park_after_ms: its default, set explicitly */
static long n_plain = 25000; /* BENCH_IDLE_PLAIN overrides */

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

/* The process's page tables now (VmPTE of /proc/self/status), bytes; 0 if unknown. */
static size_t page_tables(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmPTE: %zu kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

/* The process's memory mappings now (lines of /proc/self/maps). */
static long maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    if (!f) return -1;
    while ((c = fgetc(f)) != EOF)
        if (c == '\n') n++;
    fclose(f);
    return n;
}

static const nd_server_ops idle_ops = {NULL, NULL, NULL, NULL, NULL};
static double per_proc;
static term_t *pids;
static _Atomic long plain_up;

static void idle_plain(void *arg)
{
    (void)arg;
    atomic_fetch_add(&plain_up, 1);
    term_t m;
    nd_receive(ND_INFINITY, &m);
    term_free(m);
}

static void bench_server(void *arg)
{
    (void)arg;
    pids = malloc(sizeof(term_t) * N_SERVER);
    size_t r0 = rss();
    for (int i = 0; i < N_SERVER; i++)
        if (nd_server_start(&idle_ops, NULL, NULL, &pids[i], NULL) != 0) {
            fprintf(stderr, "server start %d failed\n", i);
            exit(1);
        }
    nd_sleep(200);
    per_proc = (double)(rss() - r0) / N_SERVER;
    for (int i = 0; i < N_SERVER; i++) {
        nd_exit_signal(pids[i], term_atom("kill"));
        term_free(pids[i]);
    }
    free(pids);
}

static void bench_plain(void *arg)
{
    (void)arg;
    pids = malloc(sizeof(term_t) * (size_t)n_plain);
    size_t r0 = rss(), pt0 = page_tables();
    long m0 = maps();
    for (long i = 0; i < n_plain; i++)
        if (nd_spawn(idle_plain, NULL, NULL, &pids[i]) != 0) {
            fprintf(stderr, "plain spawn %ld failed\n", i);
            exit(1);
        }
    for (int i = 0; i < 6000 && atomic_load(&plain_up) < n_plain; i++) nd_sleep(5);
    nd_sleep(50);
    /* resident pages and the page tables that map them: a stack's guard is a page-table entry
    ** (a guard region) or a mapping of its own, and 132 KiB-spaced stacks need a page-table page
    ** per 15 processes, which Erlang's heaps do not */
    double at_once = (double)(rss() + page_tables() - r0 - pt0) / (double)n_plain;
    /* A process that has waited between one and two sweep periods (nd_config.park_after_ms,
    ** 250 ms by default) has its stack parked: the figure is taken after the settle period of
    ** two periods and a margin, as a node's idle processes are; the figure at once is shown. */
    nd_sleep(2 * PARK_AFTER_MS + 200);
    size_t pt = page_tables();
    per_proc = (double)(rss() + pt - r0 - pt0) / (double)n_plain;
    nd_metrics mt;
    uint64_t parked = 0, kept = 0;
    if (nd_metrics_get(&mt) == 0) {
        parked = mt.processes_parked;
        kept = mt.memory.parked_stacks;
        nd_metrics_free(&mt);
    }
    fprintf(stderr,
            "%ld plain processes waiting: %.0f bytes each at once, %.0f after %d ms (%llu "
            "stacks parked, %.0f bytes of each kept), page tables included (%.0f bytes each); "
            "%ld more memory mappings\n",
            n_plain, at_once, per_proc, 2 * PARK_AFTER_MS + 200, (unsigned long long)parked,
            parked ? (double)kept / (double)parked : 0.0, (double)(pt - pt0) / (double)n_plain,
            maps() - m0);
    for (long i = 0; i < n_plain; i++) {
        nd_send(pids[i], term_atom("stop"));
        term_free(pids[i]);
    }
    free(pids);
}

/* Runs `exe --round kind` in a fresh process (so no round sees memory an earlier one freed) and
** returns the number it prints, or -1. */
static double girder_round(const char *exe, const char *kind)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "exec %s --round %s", exe, kind);
    bench_child c = bench_spawn(cmd);
    double v = -1;
    if (bench_read_until(&c, NULL, &v) != 0) v = -1;
    bench_stop(&c, SIGTERM);
    return v;
}

static const char usage[] =
    "usage: bench-idle-memory [-h | --help]\n"
    "Resident bytes per idle process: 1,000,000 server-behaviour processes against as many idle\n"
    "gen_servers, and plain processes blocked in receive against as many Erlang ones; every\n"
    "round of either side in a fresh process. Two BENCH lines (idle_process_memory,\n"
    "idle_process_memory_plain) on stdout, details on stderr. Heavy: minutes.\n"
    "  --round server|plain    (internal) one Girder round in this process: prints bytes\n"
    "\n"
    "Environment:\n" BA_ENV_ROUNDS
    "  BENCH_IDLE_PLAIN=N      plain processes (default 25000)\n" BA_ENV_NO_ERLANG BA_ENV_LIBNODE
        BA_ERL_PATH;

int main(int argc, char **argv)
{
    static const ba_mode modes[] = {{"--round", 1, 1}, {NULL, 0, 0}};
    ba_check(argc, argv, usage, modes);
    n_plain = bs_env_count("BENCH_IDLE_PLAIN", n_plain, 10000000);
    if (argc == 3 && !strcmp(argv[1], "--round")) {
        nd_config c = {0};
        c.park_after_ms = PARK_AFTER_MS;
        if (nd_init(&c) != 0) return 1;
        nd_run(strcmp(argv[2], "plain") ? bench_server : bench_plain, NULL, ND_INFINITY, NULL);
        printf("%f\n", per_proc);
        fflush(stdout);
        _exit(0); /* the measurement is out; a million processes need no orderly shutdown */
    }
    bs_machine("bench-idle-memory");
    char exe[4096];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return 1;
    exe[k] = 0;
    int n = bs_rounds();
    double gs[64], gp[64], es[64], ep[64];
    char call[128];
    snprintf(call, sizeof call, "io:format(\"~f~n\", [libnode_bench:idle_plain1(%ld)])", n_plain);
    for (int i = 0; i < n; i++) { /* each round a fresh process on either side */
        gs[i] = girder_round(exe, "server");
        es[i] =
            nb_erlang("io:format(\"~f~n\", [libnode_bench:idle_memory1(1000000)])", "+P 2000000");
        gp[i] = girder_round(exe, "plain");
        ep[i] = nb_erlang(call, "+P 2000000");
    }
    bs_report("idle_process_memory", gs, n, es, n, "bytes", false);
    bs_report("idle_process_memory_plain", gp, n, ep, n, "bytes", false);
    return 0;
}
