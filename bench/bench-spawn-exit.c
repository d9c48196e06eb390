/* BENCH spawn_exit: spawn 200,000 processes that exit at once (per second), vs Erlang. */
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
    double v = N / (nb_now() - t0);
    if (v > result) result = v;
}

int main(void)
{
    if (nd_init(NULL) != 0) return 1;
    for (int i = 0; i < 3; i++) nd_run(bench, NULL, ND_INFINITY, NULL); /* best of 3 */
    nd_shutdown(10000);
    double erl = nb_erlang("libnode_bench:spawn_exit(200000)", "");
    nb_print("spawn_exit", result, erl, "spawns/s", true);
    return 0;
}
