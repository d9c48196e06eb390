/* BENCH ring: 1000 processes pass a token 1000 laps (msgs/s), Girder vs Erlang in the same run. */
#include "bench_args.h"
#include "nd_bench.h"

#define N    1000
#define LAPS 1000

static void node_loop(void *arg)
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

static double result;

static void bench(void *arg)
{
    term_t next = term_dup(nd_self());
    for (int i = 0; i < N - 1; i++) {
        term_t pid;
        nd_spawn(node_loop, (void *)(uintptr_t)next, NULL, &pid);
        next = pid;
    }
    term_t first = next;
    long hops = (long)N * LAPS;
    double t0 = nb_now();
    nd_send(first, term_int(hops - 1));
    for (;;) {
        term_t m;
        nd_receive(ND_INFINITY, &m);
        int64_t k = term_small_value(m);
        if (k == 0) break;
        nd_send(first, term_int(k - 1));
    }
    result = (double)hops / (nb_now() - t0);
    term_free(first);
}

static const char usage[] =
    "usage: bench-ring [-h | --help]\n"
    "Message passing: a ring of 1,000 processes passes a token 1,000 laps (messages/s), Girder\n"
    "(libnode) against Erlang (bench/erl/libnode_bench.erl), rounds interleaved in one run.\n"
    "One BENCH line (ring) on stdout, the machine and every round on stderr.\n"
    "\n"
    "Environment:\n" BA_ENV_ROUNDS BA_ENV_NO_ERLANG BA_ENV_LIBNODE BA_ERL_PATH;

int main(int argc, char **argv)
{
    ba_check(argc, argv, usage, NULL);
    bs_machine("bench-ring");
    if (nd_init(NULL) != 0) return 1;
    nb_erl e = nb_erl_start("libnode_bench:ring1(1000, 1000)", "");
    double g[64], er[64];
    int n = nb_interleave(&e, bench, &result, g, er);
    nd_shutdown(10000);
    nb_erl_stop(&e);
    bs_report("ring", g, n, er, n, "msgs/s", true);
    return 0;
}
