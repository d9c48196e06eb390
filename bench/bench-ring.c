/* BENCH ring: 1000 processes pass a token 1000 laps (msgs/s), Girder vs Erlang in the same run. */
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
    double v = (double)hops / (nb_now() - t0);
    if (v > result) result = v;
    term_free(first);
}

int main(void)
{
    if (nd_init(NULL) != 0) return 1;
    for (int i = 0; i < 3; i++) nd_run(bench, NULL, ND_INFINITY, NULL); /* best of 3 */
    nd_shutdown(10000);
    double erl = nb_erlang("libnode_bench:ring(1000, 1000)", "");
    nb_print("ring", result, erl, "msgs/s", true);
    return 0;
}
