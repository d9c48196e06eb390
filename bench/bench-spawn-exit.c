/* BENCH spawn_exit: spawn 200,000 processes that exit at once (per second), vs Erlang. */
#include "bench_args.h"
#include "nd_bench.h"

#define N 200000

static void nothing(void *arg) {}

static double result;

static void bench(void *arg)
{
    size_t base = nd_process_count();
    double t0 = nb_now();
    for (int i = 0; i < N; i++) nd_spawn(nothing, NULL, NULL, NULL);
    while (nd_process_count() > base) nd_yield();
    result = N / (nb_now() - t0);
}

static const char usage[] =
    "usage: bench-spawn-exit [-h | --help]\n"
    "Spawning: 200,000 processes that exit at once, timed until the count is back (spawns/s),\n"
    "Girder (libnode) against Erlang (bench/erl/libnode_bench.erl), rounds interleaved.\n"
    "One BENCH line (spawn_exit) on stdout, the machine and every round on stderr.\n"
    "\n"
    "Environment:\n" BA_ENV_ROUNDS BA_ENV_NO_ERLANG BA_ENV_LIBNODE BA_ERL_PATH;

int main(int argc, char **argv)
{
    ba_check(argc, argv, usage, NULL);
    bs_machine("bench-spawn-exit");
    if (nd_init(NULL) != 0) return 1;
    nb_erl e = nb_erl_start("libnode_bench:spawn_exit1(200000)", "");
    double g[64], er[64];
    int n = nb_interleave(&e, bench, &result, g, er);
    nd_shutdown(10000);
    nb_erl_stop(&e);
    bs_report("spawn_exit", g, n, er, n, "spawns/s", true);
    return 0;
}
