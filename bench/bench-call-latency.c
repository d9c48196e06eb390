/* BENCH call_latency: round trip of a server call (microseconds), vs gen_server:call. */
#include "bench_args.h"
#include "nd_bench.h"

#define N 200000

/* Interned once, as the caller's ping is (Erlang's pong is a literal in the module). */
static term_t pong;

static int s_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    *reply = pong;
    return ND_REPLY;
}

static const nd_server_ops ops = {NULL, s_call, NULL, NULL, NULL};
static double result;

static void bench(void *arg)
{
    term_t srv, r;
    nd_server_start(&ops, NULL, NULL, &srv, NULL);
    term_t ping = term_atom("ping");
    pong = term_atom("pong");
    for (int i = 0; i < 1000; i++) nd_call(srv, ping, 5000, &r);
    double t0 = nb_now();
    for (int i = 0; i < N; i++) nd_call(srv, ping, 5000, &r);
    result = (nb_now() - t0) * 1e6 / N;
    nd_server_stop(srv, term_atom("normal"), 5000);
    term_free(srv);
}

static const char usage[] =
    "usage: bench-call-latency [-h | --help]\n"
    "Server calls: 200,000 calls to a server that replies pong, after 1,000 warm-up calls\n"
    "(microseconds per call), Girder's nd_call against gen_server:call, rounds interleaved.\n"
    "One BENCH line (call_latency) on stdout, the machine and every round on stderr.\n"
    "\n"
    "Environment:\n" BA_ENV_ROUNDS BA_ENV_NO_ERLANG
    "  ND_BENCH_STATS=1        also Girder's context switches and steals on stderr\n" BA_ENV_LIBNODE
        BA_ERL_PATH;

int main(int argc, char **argv)
{
    ba_check(argc, argv, usage, NULL);
    bs_machine("bench-call-latency");
    if (nd_init(NULL) != 0) return 1;
    nb_erl e = nb_erl_start("libnode_bench:call_latency1(200000)", "");
    double g[64], er[64];
    int n = nb_interleave(&e, bench, &result, g, er);
    nd_stats st;
    nd_get_stats(&st);
    if (getenv("ND_BENCH_STATS"))
        fprintf(stderr, "switches=%llu steals=%llu\n", (unsigned long long)st.context_switches,
                (unsigned long long)st.steals);
    nd_shutdown(10000);
    nb_erl_stop(&e);
    bs_report("call_latency", g, n, er, n, "us", false);
    return 0;
}
