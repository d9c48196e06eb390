/* BENCH ring: 1000 processes pass a token 1000 laps (msgs/s), Girder vs Erlang in the same run. */
#include "bench_args.h"
#include "nd_bench.h"

#define N    1000
#define LAPS 1000

static double result;

static void bench(void *arg)
{
    (void)arg;
    result = (double)N * LAPS / nb_ring(N, LAPS);
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
    size_t base = nd_process_count();
    nb_erl e = nb_erl_start("libnode_bench:ring1(1000, 1000)", "");
    double g[64], er[64];
    int n = nb_interleave(&e, bench, &result, g, er);
    bool clean = nb_none_left("bench-ring", base);
    nd_shutdown(10000);
    nb_erl_stop(&e);
    bs_report("ring", g, n, er, n, "msgs/s", true);
    return clean ? 0 : 1;
}
