/* BENCH trace_overhead: how much slower a message ring runs with every event traced, vs Erlang. */
#include "bench_args.h"
#include "nd_bench.h"
#include <girder/node_obs.h>
#include <pthread.h>
#include <stdatomic.h>

/*
** The ring of bench-ring (1000 processes pass a token), LAPS times round, run alternately with
** tracing off and on (best of ROUNDS each). "On" records every event of every kind (no rate
** limit, rings of 1M events, a thread draining them as a trace tool would); the default rate
** limit is also measured and printed on stderr. girder = time on / time off (the slowdown,
** lower is better); erlang = the same for Erlang/OTP with erlang:trace(new_processes, true,
** [send, 'receive', running, procs]) to a tracer process that discards what it gets; ratio =
** erlang / girder: how many times less tracing slows Girder down than it slows Erlang.
*/
#define N      1000
#define LAPS   300
#define ROUNDS 5

static double elapsed;

static void ring(void *arg)
{
    (void)arg;
    elapsed = nb_ring(N, LAPS);
}

/* The trace tool's side: drains the rings while the ring runs. */
static _Atomic int draining;
static _Atomic uint64_t drained;
static void *drainer(void *arg)
{
    (void)arg;
    static nd_event buf[65536];
    while (atomic_load(&draining)) {
        size_t n = nd_trace_drain(buf, 65536);
        atomic_fetch_add(&drained, n);
        if (n == 0) {
            struct timespec ts = {0, 200000};
            nanosleep(&ts, NULL);
        }
    }
    size_t n;
    while ((n = nd_trace_drain(buf, 65536)) > 0) atomic_fetch_add(&drained, n);
    return NULL;
}

/* One run with tracing under opts (NULL: off); returns seconds. */
static double run(const nd_trace_opts *opts, nd_trace_stats *st)
{
    pthread_t th;
    if (opts) {
        if (nd_trace_start(opts) != 0) abort();
        atomic_store(&draining, 1);
        pthread_create(&th, NULL, drainer, NULL);
    }
    nd_run(ring, NULL, ND_INFINITY, NULL);
    if (opts) {
        nd_trace_stop();
        atomic_store(&draining, 0);
        pthread_join(th, NULL);
        nd_trace_stats_get(st);
    }
    return elapsed;
}

static const char usage[] =
    "usage: bench-trace-overhead [-h | --help]\n"
    "Tracing's cost: a ring of 1,000 processes x 300 laps with tracing off and with every event\n"
    "recorded (best of 5 each); the slowdown (on / off), Girder against erlang:trace.\n"
    "One BENCH line (trace_overhead) on stdout, details on stderr.\n"
    "\n"
    "Environment:\n" BA_ENV_NO_ERLANG BA_ENV_LIBNODE BA_ERL_PATH;

int main(int argc, char **argv)
{
    ba_check(argc, argv, usage, NULL);
    bs_machine("bench-trace-overhead");
    if (nd_init(NULL) != 0) return 1;
    size_t base = nd_process_count();
    nd_trace_opts all = {0}, dflt = {0};
    all.max_rate = UINT64_MAX;
    all.ring_events = (size_t)1 << 20;
    double off = 1e9, on = 1e9, on_default = 1e9;
    nd_trace_stats before = {0}, st = {0};
    uint64_t rec_all = 0, drop_all = 0, rec_dflt = 0, drop_dflt = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double t = run(NULL, NULL);
        if (t < off) off = t;
        nd_trace_stats_get(&before);
        t = run(&all, &st);
        if (t < on) on = t;
        rec_all += st.recorded - before.recorded;
        drop_all += st.dropped_full + st.dropped_rate - before.dropped_full - before.dropped_rate;
        nd_trace_stats_get(&before);
        t = run(&dflt, &st);
        if (t < on_default) on_default = t;
        rec_dflt += st.recorded - before.recorded;
        drop_dflt += st.dropped_full + st.dropped_rate - before.dropped_full - before.dropped_rate;
    }
    bool clean = nb_none_left("bench-trace-overhead", base);
    nd_shutdown(10000);
    double hops = (double)N * LAPS;
    fprintf(stderr,
            "ring %d x %d, best of %d: off %.1f ns/hop; every event traced %.1f ns/hop (%.2fx), "
            "%.1f events/hop recorded, %.2f%% dropped; default rate limit %.1f ns/hop (%.2fx), "
            "%.2f%% of events dropped\n",
            N, LAPS, ROUNDS, off / hops * 1e9, on / hops * 1e9, on / off,
            (double)rec_all / ROUNDS / hops, 100.0 * drop_all / (rec_all + drop_all + 1e-9),
            on_default / hops * 1e9, on_default / off,
            100.0 * drop_dflt / (rec_dflt + drop_dflt + 1e-9));
    double erl = nb_erlang("libnode_bench:trace_overhead(1000, 300)", "");
    nb_print("trace_overhead", on / off, erl, "x_slower", false);
    return clean ? 0 : 1;
}
