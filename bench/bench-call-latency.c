/* BENCH call_latency: round trip of a server call (microseconds), vs gen_server:call. */
#include "nd_bench.h"

#define N 200000

static int s_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    *reply = term_atom("pong");
    return ND_REPLY;
}

static const nd_server_ops ops = {NULL, s_call, NULL, NULL, NULL};
static double result;

static void bench(void *arg)
{
    term_t srv, r;
    nd_server_start(&ops, NULL, NULL, &srv, NULL);
    term_t ping = term_atom("ping");
    for (int i = 0; i < 1000; i++) nd_call(srv, ping, 5000, &r);
    double t0 = nb_now();
    for (int i = 0; i < N; i++) nd_call(srv, ping, 5000, &r);
    double v = (nb_now() - t0) * 1e6 / N;
    if (result == 0 || v < result) result = v;
    nd_server_stop(srv, term_atom("normal"), 5000);
    term_free(srv);
}

int main(void)
{
    if (nd_init(NULL) != 0) return 1;
    for (int i = 0; i < 3; i++) nd_run(bench, NULL, ND_INFINITY, NULL); /* best of 3 */
    nd_stats st;
    nd_get_stats(&st);
    if (getenv("ND_BENCH_STATS"))
        fprintf(stderr, "switches=%llu steals=%llu\n", (unsigned long long)st.context_switches,
                (unsigned long long)st.steals);
    nd_shutdown(10000);
    double erl = nb_erlang("libnode_bench:call_latency(200000)", "");
    nb_print("call_latency", result, erl, "us", false);
    return 0;
}
