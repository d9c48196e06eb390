/* Shared by libnode's benchmarks: run the Erlang side (bench/erl/libnode_bench.erl) and print. */
#ifndef ND_BENCH_H
#define ND_BENCH_H
#include <girder/node.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_child.h"
#include "bench_stats.h"

static inline double nb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
** The ring of bench-ring and bench-trace-overhead: the caller spawns n - 1 processes in a ring
** through itself, passes a token round it `laps` times and returns the seconds that took. The
** token counts the hops down, and the caller is the one that takes the last 0; a further lap of
** 0 (not timed) then ends every ring process, which would otherwise wait for ever: each round
** left n - 1 waiting processes behind, whose stacks the next rounds' parking sweeps then gave
** back while those rounds ran. The Erlang side (libnode_bench:ring1) does the same.
*/
static inline void nb_ring_node(void *arg)
{
    term_t next = (term_t)(uintptr_t)arg;
    for (;;) {
        term_t m;
        nd_receive(ND_INFINITY, &m);
        int64_t k = term_small_value(m);
        nd_send(next, m == term_int(0) ? m : term_int(k - 1));
        if (k == 0) break;
    }
    term_free(next);
}

static inline double nb_ring(int n, long laps)
{
    term_t next = term_dup(nd_self());
    for (int i = 0; i < n - 1; i++) {
        term_t pid;
        nd_spawn(nb_ring_node, (void *)(uintptr_t)next, NULL, &pid);
        next = pid;
    }
    term_t first = next, m;
    long hops = (long)n * laps;
    double t0 = nb_now();
    nd_send(first, term_int(hops - 1));
    for (;;) {
        nd_receive(ND_INFINITY, &m);
        int64_t k = term_small_value(m);
        if (k == 0) break;
        nd_send(first, term_int(k - 1));
    }
    double t = nb_now() - t0;
    nd_send(first, term_int(0));
    nd_receive(ND_INFINITY, &m); /* the 0 back: every ring process has forwarded it and ends */
    term_free(first);
    return t;
}

/* Whether every process the rounds started has ended (nd_process_count() back to `base`,
** taken after nd_init; the last exits get up to 2 s): says so on stderr if not, since processes
** left behind would stand in the next rounds' way (their stacks parked while those run). */
static inline bool nb_none_left(const char *prog, size_t base)
{
    for (int i = 0; i < 200 && nd_process_count() > base; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    size_t left = nd_process_count();
    if (left <= base) return true;
    fprintf(stderr, "%s: %zu processes of the rounds are still alive\n", prog, left - base);
    return false;
}

/* Compiles libnode_bench.erl into a temp dir and evaluates `call` there with `flags`; returns the
** number the Erlang function printed, or -1. */
static inline double nb_erlang(const char *call, const char *flags)
{
    if (getenv("ND_BENCH_NO_ERLANG")) return -1;
    char dir[] = "/tmp/nd-bench-XXXXXX";
    if (!mkdtemp(dir)) return -1;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "erlc -o %s %s/libnode_bench.erl && erl -noshell %s -pa %s -eval '%s, halt().'; "
             "rm -rf %s",
             dir, BENCH_ERL_DIR, flags, dir, call, dir);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    double v = -1;
    char line[256];
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "%lf", &v) == 1) break;
    while (fgets(line, sizeof line, f))
        ;
    pclose(f);
    return v;
}

/* A running `erl` that runs one round of `fun_body` (an Erlang expression giving a number) per
** bench_round (libnode_bench:serve). pid is -1 when ND_BENCH_NO_ERLANG is set or erlc fails. */
typedef struct nb_erl {
    bench_child c;
    char dir[32];
} nb_erl;

static inline nb_erl nb_erl_start(const char *fun_body, const char *flags)
{
    nb_erl e = {{-1, NULL, NULL}, ""};
    if (getenv("ND_BENCH_NO_ERLANG")) return e;
    snprintf(e.dir, sizeof e.dir, "/tmp/nd-bench-XXXXXX");
    if (!mkdtemp(e.dir)) return e;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "erlc -o %s %s/libnode_bench.erl", e.dir, BENCH_ERL_DIR);
    if (system(cmd) != 0) return e;
    snprintf(cmd, sizeof cmd,
             "exec erl -noshell %s -pa %s -eval 'libnode_bench:serve(fun() -> %s end), halt().'",
             flags, e.dir, fun_body);
    e.c = bench_spawn_io(cmd);
    return e;
}

static inline double nb_erl_round(nb_erl *e)
{
    return e->c.pid > 0 ? bench_round(&e->c) : -1;
}

/* bs_rounds() rounds of fn (run as a process by nd_run; it leaves its figure in *result, -1 if
** it failed) and of e's Erlang side, interleaved, the side that goes first alternating: the
** figures go to g[] and er[] (64 at most); returns the count. */
/* Between rounds: lets the side that just ran go idle (erl's schedulers spin a while after
** their work runs out, Girder's idle ones 50 us) so that it does not run beside the other. */
static inline void nb_settle(void)
{
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static inline int nb_interleave(nb_erl *e, nd_entry_fn fn, double *result, double g[64],
                                double er[64])
{
    int n = bs_rounds();
    for (int i = 0; i < n; i++) {
        if (i % 2) er[i] = nb_erl_round(e), nb_settle();
        *result = -1;
        nd_run(fn, NULL, ND_INFINITY, NULL);
        g[i] = *result;
        nb_settle();
        if (!(i % 2)) er[i] = nb_erl_round(e), nb_settle();
    }
    return n;
}

static inline void nb_erl_stop(nb_erl *e)
{
    if (e->c.pid > 0) bench_stop(&e->c, SIGTERM);
    if (e->dir[0]) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
        if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", e->dir);
    }
}

/* bs_print(): a side that failed or did not run (a value <= 0) prints "failed" and no ratio. */
static inline void nb_print(const char *name, double girder, double erlang, const char *unit,
                            bool higher_is_better)
{
    bs_print(name, girder, erlang, unit, higher_is_better);
}
#endif
