/* BENCH dist_tcp_throughput and dist_roundtrip (or, built with BENCH_TLS, their TLS twins):
 * Girder<->Girder vs erl<->erl on loopback, same run. */
#include <girder/dist.h>
#include <girder/epmd.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_args.h"
#include "bench_child.h"
#include "bench_stats.h"

#define A(s) term_atom(s)

static const char *cookie = "girder_bench";
static char host[256], tmpdir[64], bindir[PATH_MAX];
static uint16_t eport;
static long n_msgs = 300000, n_rt = 20000;

/* Over TLS every node, Girder's and erl's, uses one optfile (mutual TLS with certificates made
** for this run by make-certs.sh); over TCP, none. */
#ifdef BENCH_TLS
#define PROTO         "tls"
#define NAME_TP       "dist_tls_throughput"
#define NAME_RT       "dist_tls_roundtrip"
#define NAME_MIXED_TP "dist_tls_mixed_throughput"
#define NAME_MIXED_RT "dist_tls_mixed_roundtrip"
static char optfile[PATH_MAX]; /* "": TCP */
#else
#define PROTO         "tcp"
#define NAME_TP       "dist_tcp_throughput"
#define NAME_RT       "dist_roundtrip"
#define NAME_MIXED_TP "dist_mixed_throughput"
#define NAME_MIXED_RT "dist_mixed_roundtrip"
static char optfile[PATH_MAX] = "";
#endif

/* erl's flags for the protocol */
static const char *erl_proto(void)
{
    static char buf[PATH_MAX + 64];
    if (!optfile[0]) return "";
    snprintf(buf, sizeof buf, "-proto_dist inet_tls -ssl_dist_optfile %s", optfile);
    return buf;
}

/* ---------------------------------------------------------------- Girder receiver node */

static void sink(void *arg)
{
    (void)arg;
    for (;;) {
        term_t m;
        nd_receive(ND_INFINITY, &m);
        if (!term_is_tuple(m) || term_tuple_arity(m) != 3 || term_tuple_elem(m, 0) != A("start")) {
            term_free(m);
            continue;
        }
        int64_t n;
        term_get_int64(term_tuple_elem(m, 1), &n);
        term_t from = term_dup(term_tuple_elem(m, 2));
        term_free(m);
        nd_send(from, term_tuplev(2, A("ready"), term_dup(nd_self())));
        for (int64_t i = 0; i < n; i++) {
            nd_receive(ND_INFINITY, &m);
            term_free(m);
        }
        nd_send(from, term_tuplev(2, A("done"), term_int(n)));
        term_free(from);
    }
}

static void pong(void *arg)
{
    (void)arg;
    for (;;) {
        term_t m;
        nd_receive(ND_INFINITY, &m);
        if (term_is_tuple(m) && term_tuple_arity(m) == 2)
            nd_send(term_tuple_elem(m, 0), term_dup(term_tuple_elem(m, 1)));
        term_free(m);
    }
}

static int start_girder_node(const char *name, bool receiver)
{
    nd_config nc = {0};
    if (nd_init(&nc) != 0) return -1;
    dist_config dc = {0};
    dc.name = name;
    dc.cookie = cookie;
    dc.epmd_port = eport;
    dc.log = NULL;
    if (optfile[0]) {
        dc.proto_dist = "inet_tls";
        dc.ssl_dist_optfile = optfile;
    }
    if (dist_start(&dc) != 0) return -1;
    if (receiver) {
        nd_spawn_opts o = {0};
        o.name = A("bench_sink");
        nd_spawn(sink, NULL, &o, NULL);
        o.name = A("bench_pong");
        nd_spawn(pong, NULL, &o, NULL);
    }
    return 0;
}

static int node_main(const char *name)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (start_girder_node(name, true) != 0) return 1;
    printf("READY\n");
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    dist_stop(2000);
    nd_shutdown(2000);
    return 0;
}

/* ---------------------------------------------------------------- Girder sender */

typedef struct job {
    term_t node;
    long n;
    double result;
} job;

static void tp_body(void *arg)
{
    job *j = arg;
    term_t sinkname = term_tuplev(2, A("bench_sink"), j->node);
    uint8_t bin[32] = {0};
    term_t msg = term_tuplev(3, A("hello"), term_int(12345), term_binary(bin, 32));
    double best = -1;
    for (int run = 0; run < 1; run++) { /* one round per call: the caller interleaves */
        nd_send(sinkname, term_tuplev(3, A("start"), term_int(j->n), term_dup(nd_self())));
        term_t m;
        if (nd_receive(10000, &m) < 0) break;
        term_t sinkpid = term_dup(term_tuple_elem(m, 1));
        term_free(m);
        double t0 = bench_now();
        for (long i = 0; i < j->n; i++) nd_send(sinkpid, term_dup(msg));
        if (nd_receive(120000, &m) < 0) break;
        term_free(m);
        double r = (double)j->n / (bench_now() - t0);
        if (r > best) best = r;
        term_free(sinkpid);
    }
    term_free(msg);
    term_free(sinkname);
    j->result = best;
}

static void rt_body(void *arg)
{
    job *j = arg;
    term_t to = term_tuplev(2, A("bench_pong"), j->node);
    term_t m;
    for (int i = 0; i < 1000; i++) {
        nd_send(to, term_tuplev(2, term_dup(nd_self()), A("ping")));
        nd_receive(5000, &m);
        term_free(m);
    }
    double t0 = bench_now();
    for (long i = 0; i < j->n; i++) {
        nd_send(to, term_tuplev(2, term_dup(nd_self()), A("ping")));
        if (nd_receive(5000, &m) < 0) break;
        term_free(m);
    }
    j->result = (bench_now() - t0) * 1e6 / (double)j->n;
    term_free(to);
}

static double girder_run(nd_entry_fn fn, const char *node, long n)
{
    job j = {A(node), n, -1};
    if (dist_ping(j.node, 5000) != 0) return -1;
    nd_run(fn, &j, 300000, NULL);
    return j.result;
}

#ifdef BENCH_SCALE_DIST
static long scale_only;  /* BENCH_SCALE_SIZE: 0, 1024 or 65536 */
static int scale_rounds; /* BENCH_SCALE_ROUNDS (bs_scale_rounds()) */

/* ---------------------------------------------------------------- scale: senders x sizes */

/* One round of the scale matrix: `senders` processes share n messages of `size` bytes each
** ({hello, 12345, <<size bytes>>}) to one sink over one connection. */
typedef struct mjob {
    term_t node;
    long n;
    int senders;
    size_t size;
    double result;
} mjob;

typedef struct msender {
    term_t to, msg;
    long n;
} msender;

static void m_sender(void *arg)
{
    msender *m = arg;
    for (long i = 0; i < m->n; i++) nd_send(m->to, term_dup(m->msg));
}

static void tp_multi_body(void *arg)
{
    mjob *j = arg;
    j->result = -1;
    term_t sinkname = term_tuplev(2, A("bench_sink"), j->node);
    long per = j->n / j->senders, total = per * j->senders;
    nd_send(sinkname, term_tuplev(3, A("start"), term_int(total), term_dup(nd_self())));
    term_free(sinkname);
    term_t m;
    if (nd_receive(10000, &m) < 0) return;
    term_t sinkpid = term_dup(term_tuple_elem(m, 1));
    term_free(m);
    uint8_t *bin = calloc(1, j->size);
    if (!bin) return;
    term_t msg = term_tuplev(3, A("hello"), term_int(12345), term_binary(bin, j->size));
    free(bin);
    /* not on this process's stack: the senders read their job while this process waits, and
    ** a waiting process's stack may be parked (its pages given back: docs/processes.md) */
    static msender ms[64];
    double t0 = bench_now();
    for (int i = 0; i < j->senders && i < 64; i++) {
        ms[i] = (msender){sinkpid, msg, per};
        nd_spawn(m_sender, &ms[i], NULL, NULL);
    }
    if (nd_receive(300000, &m) == 0) {
        j->result = (double)total / (bench_now() - t0);
        term_free(m);
    }
    term_free(msg);
    term_free(sinkpid);
}

static double erl_scale_tp(const char *target, long n, int senders, size_t size)
{
    if (getenv("BENCH_DIST_GIRDER_ONLY")) return -1;
    char cmd[2 * PATH_MAX + 1024];
    snprintf(cmd, sizeof cmd,
             "ERL_EPMD_PORT=%u exec erl -sname bscale_erl_%d -setcookie %s -noshell -pa %s %s "
             "-eval 'dist_bench:scale_tp(%s@%s, %ld, %d, %zu), halt().'",
             eport, (int)getpid(), cookie, tmpdir, erl_proto(), target, host, n, senders, size);
    bench_child c = bench_spawn(cmd);
    double v = -1;
    bench_read_until(&c, NULL, &v);
    bench_stop(&c, SIGTERM);
    return v;
}

/* The matrix: 1, 4, 16 senders x 1 KB, 64 KB messages, Girder<->Girder and erl<->erl in
** interleaved rounds (bs_scale_rounds()); medians and spreads on stderr, SCALE lines (the
** medians) on stdout. */
static void scale_matrix(const char *gname, const char *erecv)
{
    static const int senders[] = {1, 4, 16};
    static const size_t sizes[] = {1024, 65536};
    int rounds = scale_rounds;
    char full[320];
    snprintf(full, sizeof full, "%s@%s", gname, host);
    /* BENCH_SCALE_SIZE (for profilers): only the cells of that message size */
    long only = scale_only;
    for (size_t z = 0; z < 2; z++)
        for (size_t k = 0; k < 3; k++) {
            if (only > 0 && (size_t)only != sizes[z]) continue;
            long n = sizes[z] >= 65536 ? 8000 : 160000; /* about 160 / 520 MB a round */
            double g[64], e[64];
            for (int r = 0; r < rounds; r++) {
                if (r % 2) e[r] = erl_scale_tp(erecv, n, senders[k], sizes[z]);
                mjob j = {A(full), n, senders[k], sizes[z], -1};
                nd_run(tp_multi_body, &j, 600000, NULL);
                g[r] = j.result;
                if (!(r % 2)) e[r] = erl_scale_tp(erecv, n, senders[k], sizes[z]);
                fprintf(stderr,
                        "scale %2d senders x %6zu B: girder %.0f msgs/s (%.1f MB/s), "
                        "erlang %.0f msgs/s (%.1f MB/s), load %s\n",
                        senders[k], sizes[z], g[r], g[r] * (double)sizes[z] / 1e6, e[r],
                        e[r] * (double)sizes[z] / 1e6, bs_load());
            }
            char name[64];
            snprintf(name, sizeof name, "scale_dist_%ds_%zub", senders[k], sizes[z]);
            double gm = bs_side(name, "girder", g, rounds, "msgs/s");
            double em = bs_side(name, "erlang", e, rounds, "msgs/s");
            printf("SCALE dist_throughput senders=%d size=%zu rounds=%d girder_msgs_s=%.0f "
                   "erlang_msgs_s=%.0f girder_mb_s=%.1f erlang_mb_s=%.1f\n",
                   senders[k], sizes[z], rounds, gm, em, gm * (double)sizes[z] / 1e6,
                   em * (double)sizes[z] / 1e6);
            fflush(stdout);
        }
}

#endif

/* ---------------------------------------------------------------- child processes */

static bench_child erl_receiver(const char *name)
{
    char cmd[2 * PATH_MAX + 1024];
    snprintf(cmd, sizeof cmd,
             "ERL_EPMD_PORT=%u exec erl -sname %s -setcookie %s -noshell -pa %s %s "
             "-eval 'io:format(\"READY~n\"), dist_bench:receiver().'",
             eport, name, cookie, tmpdir, erl_proto());
    bench_child c = bench_spawn(cmd);
    bench_read_until(&c, "READY", NULL);
    return c;
}

static double erl_sender(const char *fn, const char *target, long n)
{
    char cmd[2 * PATH_MAX + 1024];
    snprintf(cmd, sizeof cmd,
             "ERL_EPMD_PORT=%u exec erl -sname bsend_erl_%d -setcookie %s -noshell -pa %s %s "
             "-eval 'dist_bench:%s(%s@%s, %ld), halt().'",
             eport, (int)getpid(), cookie, tmpdir, erl_proto(), fn, target, host, n);
    bench_child c = bench_spawn(cmd);
    double v = -1;
    bench_read_until(&c, NULL, &v);
    bench_stop(&c, SIGTERM);
    return v;
}

/* An erl sender that runs one round of `kind` against the receiver `target` per bench_round. */
static bench_child erl_server(const char *kind, const char *target, long n)
{
    char cmd[2 * PATH_MAX + 1024];
    snprintf(cmd, sizeof cmd,
             "ERL_EPMD_PORT=%u exec erl -sname bsrv_%s_%d -setcookie %s -noshell -pa %s %s "
             "-eval 'dist_bench:serve(%s, %s@%s, %ld), halt().'",
             eport, kind, (int)getpid(), cookie, tmpdir, erl_proto(), kind, target, host, n);
    return bench_spawn_io(cmd);
}

/* Usage of each build: the TCP and TLS pairs, or the scale matrix. */
#define USAGE_NODE                                                                                \
    "  --node NAME PORT [OPTFILE]  (internal) the receiving Girder node, on the port mapper at\n" \
    "                          PORT (over TLS with erl's OPTFILE)\n"
#define USAGE_TAIL BA_ENV_LIBNODE BA_ERL_EPMD_PATH
#if defined BENCH_SCALE_DIST
static const char usage[] =
    "usage: bench-scale-dist [-h | --help]\n"
    "A cost curve: 1, 4 and 16 sender processes share 160,000 messages of 1 KB, or 8,000 of\n"
    "64 KB, to one sink over one connection (msgs/s, MB/s), Girder<->Girder against erl<->erl on\n"
    "a private port mapper. One SCALE line per cell on stdout, node logs on stderr.\n" USAGE_NODE
    "\n"
    "Environment:\n"
    "  BENCH_SCALE_ROUNDS=N    rounds per side and cell (default 5, at most 64)\n"
    "  BENCH_SCALE_SIZE=BYTES  only the cells of that message size (1024 or 65536)\n"
    "  BENCH_DIST_GIRDER_ONLY=1  no erl senders (their figures are -1)\n" USAGE_TAIL;
#else
static const char usage[] =
#ifdef BENCH_TLS
    "usage: bench-dist-tls [-h | --help]\n"
    "Distribution over mutual TLS (certificates made for the run by\n"
    "tests/integration/tls/make-certs.sh): throughput of {hello, 12345, <<32 bytes>>} messages\n"
#else
    "usage: bench-dist-tcp [-h | --help]\n"
    "Distribution over TCP: throughput of {hello, 12345, <<32 bytes>>} messages\n"
#endif
    "(msgs/s) and ping-pong round trip (us), Girder<->Girder against erl<->erl on a private port\n"
    "mapper, rounds interleaved; before them Girder->erl and erl->Girder, one run each.\n"
    "Two BENCH lines and two INFO lines on stdout, node logs on stderr.\n" USAGE_NODE "\n"
    "Environment:\n" BA_ENV_ROUNDS
    "  BENCH_DIST_MSGS=N       messages per throughput round (default 300000)\n"
    "  BENCH_DIST_RT=N         round trips per round (default 20000)\n"
    "  BENCH_DIST_GIRDER_ONLY=1  Girder<->Girder alone: no erl side, no ratio\n" USAGE_TAIL;
#endif

int main(int argc, char **argv)
{
    static const ba_mode modes[] = {{"--node", 2, 3}, {NULL, 0, 0}};
    ba_check(argc, argv, usage, modes);
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return 1;
    exe[k] = 0;
    snprintf(bindir, sizeof bindir, "%s", exe);
    *strrchr(bindir, '/') = 0;
    gethostname(host, sizeof host);
    if (strchr(host, '.')) *strchr(host, '.') = 0;
    if ((argc == 4 || argc == 5) && !strcmp(argv[1], "--node")) {
        eport = (uint16_t)atoi(argv[3]);
        if (argc == 5) snprintf(optfile, sizeof optfile, "%s", argv[4]);
        return node_main(argv[2]);
    }
    n_msgs = bs_env_count("BENCH_DIST_MSGS", n_msgs, 100000000);
    n_rt = bs_env_count("BENCH_DIST_RT", n_rt, 100000000);
#ifdef BENCH_SCALE_DIST
    scale_only = bs_env_count("BENCH_SCALE_SIZE", 0, 65536);
    if (scale_only && scale_only != 1024 && scale_only != 65536) {
        fprintf(stderr, "BENCH_SCALE_SIZE=%ld: expected 1024 or 65536\n", scale_only);
        return 2;
    }
    scale_rounds = bs_scale_rounds();
#endif
    bs_machine(argv[0]);
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/dist-bench-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    bench_tmpdir_at_exit(tmpdir);
    char cmd[2 * PATH_MAX + 256];
    snprintf(cmd, sizeof cmd, "erlc -o %s %s/dist_bench.erl", tmpdir, BENCH_ERL_DIR);
    if (system(cmd) != 0) return 1;
#ifdef BENCH_TLS
    /* certificates for this host, and the optfile every node of the run uses */
    snprintf(cmd, sizeof cmd, "sh %s %s/certs >/dev/null", BENCH_MAKE_CERTS, tmpdir);
    if (system(cmd) != 0) return 1;
    snprintf(optfile, sizeof optfile, "%s/tls.conf", tmpdir);
    FILE *of = fopen(optfile, "w");
    if (!of) return 1;
    fprintf(of,
            "[{server, [{certfile, \"%s/certs/node.pem\"}, {keyfile, \"%s/certs/node.key\"},\n"
            "           {cacertfile, \"%s/certs/ca.pem\"}, {verify, verify_peer},\n"
            "           {fail_if_no_peer_cert, true}]},\n"
            " {client, [{certfile, \"%s/certs/node.pem\"}, {keyfile, \"%s/certs/node.key\"},\n"
            "           {cacertfile, \"%s/certs/ca.pem\"}, {verify, verify_peer}]}].\n",
            tmpdir, tmpdir, tmpdir, tmpdir, tmpdir, tmpdir);
    fclose(of);
#endif
    /* a private port mapper on a random port */
    bench_child epmd = bench_start_epmd(bindir, (unsigned)getpid() * 7u, &eport);
    if (epmd.pid < 0) return 1;
    char gname[64], ename[64], erecv[64];
    snprintf(gname, sizeof gname, "brecv_g_%d", (int)getpid());
    snprintf(erecv, sizeof erecv, "brecv_e_%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "exec %s --node %s %u %s", exe, gname, eport, optfile);
    bench_child grecv = bench_spawn(cmd);
    bench_read_until(&grecv, "READY", NULL);
    bench_child ercv = erl_receiver(erecv);

    /* the mixed pairs, one run each (INFO lines), while this process is not yet a node */
    /* BENCH_DIST_GIRDER_ONLY (for profilers): Girder<->Girder alone, no ratio */
    bool only_g = getenv("BENCH_DIST_GIRDER_ONLY") != NULL;
#ifdef BENCH_SCALE_DIST
    only_g = true; /* this build runs the scale matrix only */
#endif
    double ge_tp_e2g = only_g ? -1 : erl_sender("throughput", gname, n_msgs);
    double ge_rt_e2g = only_g ? -1 : erl_sender("roundtrip", gname, n_rt);

    snprintf(ename, sizeof ename, "bsend_g_%d", (int)getpid());
    if (start_girder_node(ename, false) != 0) return 1;
    char full[320];
    snprintf(full, sizeof full, "%s@%s", erecv, host);
    double ge_tp_g2e = only_g ? -1 : girder_run(tp_body, full, n_msgs);
    double ge_rt_g2e = only_g ? -1 : girder_run(rt_body, full, n_rt);
#ifdef BENCH_SCALE_DIST
    snprintf(full, sizeof full, "%s@%s", gname, host);
    if (dist_ping(A(full), 5000) != 0) return 1;
    scale_matrix(gname, erecv);
    dist_stop(2000);
    nd_shutdown(2000);
    bench_stop(&grecv, SIGTERM);
    bench_stop(&ercv, SIGTERM);
    bench_stop(&epmd, SIGTERM);
    return bench_tmpdir_remove() == 0 ? 0 : 1;
#endif

    /* Girder<->Girder and erl<->erl in interleaved rounds, the side that goes first alternating */
    bench_child etp = {-1, NULL, NULL}, ert = {-1, NULL, NULL};
    if (!only_g) {
        etp = erl_server("throughput", erecv, n_msgs);
        ert = erl_server("roundtrip", erecv, n_rt);
    }
    snprintf(full, sizeof full, "%s@%s", gname, host);
    int rounds = bs_rounds();
    double g_tp[64], e_tp[64], g_rt[64], e_rt[64];
    for (int i = 0; i < rounds; i++) {
        if (i % 2) e_tp[i] = bench_round(&etp);
        g_tp[i] = girder_run(tp_body, full, n_msgs);
        if (!(i % 2)) e_tp[i] = bench_round(&etp);
        if (i % 2) e_rt[i] = bench_round(&ert);
        g_rt[i] = girder_run(rt_body, full, n_rt);
        if (!(i % 2)) e_rt[i] = bench_round(&ert);
    }
    bench_stop(&etp, SIGTERM);
    bench_stop(&ert, SIGTERM);

    bs_report(NAME_TP, g_tp, rounds, e_tp, rounds, "msgs/s", true);
    bs_report(NAME_RT, g_rt, rounds, e_rt, rounds, "us", false);
    printf("INFO %s girder_to_erlang=%.1f erlang_to_girder=%.1f unit=msgs/s\n", NAME_MIXED_TP,
           ge_tp_g2e, ge_tp_e2g);
    printf("INFO %s girder_to_erlang=%.1f erlang_to_girder=%.1f unit=us\n", NAME_MIXED_RT,
           ge_rt_g2e, ge_rt_e2g);
    fprintf(stderr, "bench-dist (%s): %ld messages, %ld round trips\n", PROTO, n_msgs, n_rt);
    fflush(stdout);
    dist_stop(2000);
    nd_shutdown(2000);
    bench_stop(&grecv, SIGTERM);
    bench_stop(&ercv, SIGTERM);
    bench_stop(&epmd, SIGTERM);
    return bench_tmpdir_remove() == 0 ? 0 : 1;
}
