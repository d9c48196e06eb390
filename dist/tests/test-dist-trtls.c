/* Unit tests of the TLS transport: the state machine over TLS over the in-memory transport. */
#include "chan_harness.h"
#include "tls.h"

#include <sys/stat.h>
#include <unistd.h>

#ifndef GIRDER_MAKE_CERTS
#error "GIRDER_MAKE_CERTS (the path of tests/integration/tls/make-certs.sh) must be defined"
#endif

static char dir[256]; /* the certificates of this run, for host "h" (the in-memory host) */
static char paths[64][320];
static int npaths;

static char *P(const char *name)
{
    snprintf(paths[npaths % 64], sizeof paths[0], "%s/%s", dir, name);
    return paths[npaths++ % 64];
}

static int make_certs(void **s)
{
    (void)s;
    char cmd[600];
    snprintf(dir, sizeof dir, "/tmp/girder-trtls-test-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(cmd, sizeof cmd, "sh %s %s h >/dev/null", GIRDER_MAKE_CERTS, dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int remove_certs(void **s)
{
    (void)s;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* One role: certificate `cert` (NULL: none), trusting ca.pem, verify_peer, versions v. */
static dist_tls_role role(const char *cert, unsigned v)
{
    dist_tls_role r;
    char name[64];
    dist__tls_role_defaults(&r);
    r.given = true;
    if (cert) {
        snprintf(name, sizeof name, "%s.pem", cert);
        r.certfile = P(name);
        snprintf(name, sizeof name, "%s.key", cert);
        r.keyfile = P(name);
    }
    r.cacertfile = P("ca.pem");
    r.verify_peer = true;
    r.versions = v;
    return r;
}

static dist_tls_ctx *ctx(const dist_tls_role *r, bool server)
{
    dist_tls_ctx *c = NULL;
    char err[600];
    int rc = dist__tls_ctx_new(r, server, &c, err, sizeof err);
    if (rc) fprintf(stderr, "ctx: %s\n", err);
    assert_int_equal(rc, 0);
    return c;
}

static char tls_logs[8192];

static void tls_log(void *ud, int level, const char *line)
{
    size_t l = strlen(tls_logs);
    (void)level;
    snprintf(tls_logs + l, sizeof tls_logs - l, "[%s] %s\n", (const char *)ud, line);
    if (getenv("CHAN_VERBOSE")) fprintf(stderr, "[%s tls] %s\n", (const char *)ud, line);
}

/* A node over TLS: server and client roles (mutual TLS, fail_if_no_peer_cert) with certificate
** cert and versions v; rekey13/rekey12 > 0 lower the re-keying points. */
static void tls_node(tnode *n, const char *alive, const char *cert, unsigned v, uint64_t rekey13,
                     uint64_t rekey12)
{
    dist_tls_role sr = role(cert, v), cr = role(cert, v);
    sr.fail_if_no_peer_cert = true;
    dist_tls_ctx *s = ctx(&sr, true), *c = ctx(&cr, false);
    if (rekey13 || rekey12) {
        dist__tls_ctx_set_rekey(s, rekey13, rekey12);
        dist__tls_ctx_set_rekey(c, rekey13, rekey12);
    }
    dist_tr *tr = dist__tls_tr_new(dist__mem_new(net, "h", NULL), s, c, tls_log, (void *)alive);
    assert_non_null(tr);
    dist__tls_ctx_free(s); /* the transport holds its own references */
    dist__tls_ctx_free(c);
    node_up_tr(n, alive, "cookie", tr);
    assert_string_equal(n->tr->ops->name, "tls");
    assert_int_equal(n->tr->ops->handshake_plen, 4);
}

static int tsetup(void **s)
{
    tls_logs[0] = 0;
    return setup(s);
}

/* ================================================================ handshakes and data */

/* The distribution handshake inside TLS, frames both ways, both versions, mutual TLS. */
static void up_and_talk(unsigned v, const char *version)
{
    tls_node(&A, "a", "node", v, 0, 0);
    tls_node(&B, "b", "node", v, 0, 0);
    dist_peer *ab = dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    dist_peer *ba = rec(&B, "a");
    assert_non_null(ba);
    assert_int_equal(ab->state, PEER_UP);
    assert_int_equal(ba->state, PEER_UP);
    assert_int_equal(ab->creation, B.creation);
    assert_int_equal(ba->creation, A.creation);
    send_frame(&A, ab, "hello");
    send_frame(&B, ba, "world!");
    dist__mem_run(net, SIZE_MAX);
    assert_int_equal(ba->nframes, 1);
    assert_memory_equal(ba->rx + 4, "hello", 5);
    assert_int_equal(ab->nframes, 1);
    assert_memory_equal(ab->rx + 4, "world!", 6);
    char want[64];
    snprintf(want, sizeof want, "role=client version=%s", version);
    assert_non_null(strstr(tls_logs, want));
    snprintf(want, sizeof want, "role=server version=%s", version);
    assert_non_null(strstr(tls_logs, want));
    assert_non_null(strstr(tls_logs, "peer_cert=\"CN=h\""));
    dist_sm_stats st;
    dist__sm_stats(A.sm, &st);
    assert_int_equal(st.layer_failures, 0);
}

static void test_tls12(void **s)
{
    (void)s;
    up_and_talk(DIST_TLS_V12, "TLSv1.2");
}

static void test_tls13(void **s)
{
    (void)s;
    up_and_talk(DIST_TLS_V13, "TLSv1.3");
}

/* Fills n frames of size len with a pattern seeded by seed, queued on p. */
static void send_big(tnode *n, dist_peer *p, size_t len, int frames, uint8_t seed)
{
    uint8_t *b = malloc(len + 4);
    assert_non_null(b);
    for (int f = 0; f < frames; f++) {
        girder__put32(b, (uint32_t)len);
        for (size_t i = 0; i < len; i++) b[4 + i] = (uint8_t)(seed + f + i * 7);
        enqueue(p, b, len + 4);
        p->out_frames++;
    }
    free(b);
    dist__sm_kick(n->sm, p);
}

static void check_big(dist_peer *p, size_t len, int frames, uint8_t seed)
{
    assert_int_equal(p->nframes, (size_t)frames);
    for (int f = 0; f < frames; f++) {
        const uint8_t *b = p->rx + (size_t)f * (len + 4);
        assert_int_equal(girder__get32(b), len);
        for (size_t i = 0; i < len; i++)
            if (b[4 + i] != (uint8_t)(seed + f + i * 7)) fail_msg("frame %d byte %zu", f, i);
    }
}

/* Megabytes both ways at once, delivered in odd pieces, with re-keying (a KeyUpdate every
** 64 KiB on 1.3, a renegotiation every 8 records on 1.2) on the way. */
static void big_both_ways(unsigned v)
{
    tls_node(&A, "a", "node", v, 65536, 8);
    tls_node(&B, "b", "node", v, 65536, 8);
    dist__mem_set_delivery(net, 4093, 11);
    dist_peer *ab = dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    dist_peer *ba = rec(&B, "a");
    assert_int_equal(ab->state, PEER_UP);
    send_big(&A, ab, 1 << 20, 3, 1);
    send_big(&B, ba, 300000, 5, 2);
    send_frame(&A, ab, "after");
    dist__mem_run(net, SIZE_MAX);
    assert_int_equal(ab->state, PEER_UP);
    assert_int_equal(ba->state, PEER_UP);
    assert_int_equal(ba->nframes, 4);
    ba->nframes = 3;
    check_big(ba, 1 << 20, 3, 1);
    assert_memory_equal(ba->rx + 3 * ((1 << 20) + 4) + 4, "after", 5);
    check_big(ab, 300000, 5, 2);
}

static void test_big_tls12(void **s)
{
    (void)s;
    big_both_ways(DIST_TLS_V12);
}

static void test_big_tls13(void **s)
{
    (void)s;
    big_both_ways(DIST_TLS_V13);
}

/* Ticks are empty frames inside TLS records: a minute of silence keeps the connection. */
static void test_ticks(void **s)
{
    (void)s;
    tls_node(&A, "a", "node", DIST_TLS_V13, 0, 0);
    tls_node(&B, "b", "node", DIST_TLS_V13, 0, 0);
    dist_peer *ab = dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    dist__mem_advance(net, 60000);
    assert_int_equal(ab->state, PEER_UP);
    dist_sm_stats st;
    dist__sm_stats(A.sm, &st);
    assert_in_range(st.ticks_in, 59, 60);
    /* then b goes silent: a sees nothing for 4 checks and drops it, as over TCP */
    dist__mem_silence(net, "h", "h", true);
    dist__mem_advance(net, 5000);
    assert_int_equal(ab->state, PEER_DOWN);
    assert_int_equal(ab->err, DIST_ETIMEOUT);
    dist__sm_stats(A.sm, &st);
    assert_int_equal(st.layer_failures, 0); /* a dead peer is not a TLS failure */
}

/* ================================================================ failures */

/* Counts the lines of logs containing both a and b. */
static int lines_with(const char *logs, const char *a, const char *b)
{
    int k = 0;
    for (const char *l = logs; *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l);
        char line[1200];
        snprintf(line, sizeof line, "%.*s", (int)n, l);
        if (strstr(line, a) && (!b || strstr(line, b))) k++;
        l += n + (e ? 1 : 0);
    }
    return k;
}

/* a's client certificate comes from another CA: b refuses it, one tls_failed line each side,
** and b goes on serving a good node. */
static void test_unknown_ca(void **s)
{
    (void)s;
    tnode C;
    tls_node(&A, "a", "rogue", DIST_TLS_V12, 0, 0);
    tls_node(&B, "b", "node", DIST_TLS_V12, 0, 0);
    dist_peer *ab = dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    assert_int_equal(ab->state, PEER_DOWN);
    assert_int_equal(ab->ups, 0);
    assert_int_equal(ab->err, DIST_ETLS);
    assert_non_null(strstr(ab->why, "unknown ca"));
    assert_int_equal(lines_with(B.logs, "event=tls_failed", "unable to get local issuer"), 1);
    assert_int_equal(lines_with(A.logs, "event=tls_failed", "node=b@h"), 1);
    assert_int_equal(lines_with(A.logs, "event=handshake_failed", NULL), 0);
    assert_int_equal(lines_with(B.logs, "event=handshake_failed", NULL), 0);
    dist_sm_stats st;
    dist__sm_stats(B.sm, &st);
    assert_int_equal(st.layer_failures, 1);
    assert_int_equal(st.handshakes_failed, 1);
    /* b still serves a good peer */
    tls_node(&C, "c", "node", DIST_TLS_V12, 0, 0);
    dist_peer *cb = dial(&C, "b");
    dist__mem_run(net, SIZE_MAX);
    assert_int_equal(cb->state, PEER_UP);
    node_free(&C);
}

/* The server's certificate does not name host h: the client refuses it. */
static void test_host_mismatch(void **s)
{
    (void)s;
    tls_node(&A, "a", "node", DIST_TLS_V13, 0, 0);
    tls_node(&B, "b", "otherhost", DIST_TLS_V13, 0, 0);
    dist_peer *ab = dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    assert_int_equal(ab->state, PEER_DOWN);
    assert_int_equal(ab->err, DIST_ETLS);
    assert_int_equal(lines_with(A.logs, "event=tls_failed",
                                "'h' is not a DNS name of CN=h (DNS names: other.invalid)"),
                     1);
    assert_true(rec(&B, "a") == NULL); /* b never learnt who dialled */
    assert_int_equal(
        lines_with(B.logs, "event=tls_failed", "received fatal alert 'bad certificate'"), 1);
}

/* A plain node dials a TLS node, and a TLS node dials a plain one. */
static void test_plain_against_tls(void **s)
{
    (void)s;
    tls_node(&A, "a", "node", DIST_TLS_V12, 0, 0);
    node_up(&B, "b", "cookie");
    dist_peer *ba = dial(&B, "a"); /* plain -> TLS: a sees a non-TLS record at once */
    dist__mem_run(net, SIZE_MAX);
    assert_int_equal(lines_with(A.logs, "event=tls_failed", "wrong version number"), 1);
    assert_int_equal(ba->state, PEER_DOWN);
    /* TLS -> plain: b reads the ClientHello's first bytes as the length of a name message
    ** (0x1603, over its limit) and closes */
    dist_peer *ab = dial(&A, "b");
    dist__mem_advance(net, 7000);
    assert_int_equal(ab->state, PEER_DOWN);
    assert_int_equal(ab->err, DIST_ENOCONN);
    assert_int_equal(lines_with(B.logs, "event=handshake_failed", "handshake packet too large"), 1);
    assert_int_equal(lines_with(A.logs, "event=tls_failed",
                                "TLS handshake not finished (0 bytes from the peer): connection "
                                "closed by peer"),
                     1);
}

/* A peer that accepts and never answers: the TLS handshake ends at the setup time. */
static void test_stalled(void **s)
{
    (void)s;
    tls_node(&A, "a", "node", DIST_TLS_V13, 0, 0);
    tls_node(&B, "b", "node", DIST_TLS_V13, 0, 0);
    dist__mem_blackhole(net, "hole", "h", 6);
    dist_peer *p = dial(&A, "hole");
    dist__mem_advance(net, 6999);
    assert_int_equal(p->state, PEER_PENDING);
    dist__mem_advance(net, 1);
    assert_int_equal(p->state, PEER_DOWN);
    assert_int_equal(lines_with(A.logs, "event=tls_failed", "node=hole@h"), 1);
}

/* TLS 1.2 only against TLS 1.3 only: a protocol version alert. */
static void test_version_mismatch(void **s)
{
    (void)s;
    tls_node(&A, "a", "node", DIST_TLS_V13, 0, 0);
    tls_node(&B, "b", "node", DIST_TLS_V12, 0, 0);
    dist_peer *ab = dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    assert_int_equal(ab->state, PEER_DOWN);
    assert_int_equal(lines_with(A.logs, "event=tls_failed", "protocol version"), 1);
    assert_int_equal(lines_with(B.logs, "event=tls_failed", "unsupported protocol"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tls12, tsetup, teardown),
        cmocka_unit_test_setup_teardown(test_tls13, tsetup, teardown),
        cmocka_unit_test_setup_teardown(test_big_tls12, tsetup, teardown),
        cmocka_unit_test_setup_teardown(test_big_tls13, tsetup, teardown),
        cmocka_unit_test_setup_teardown(test_ticks, tsetup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_ca, tsetup, teardown),
        cmocka_unit_test_setup_teardown(test_host_mismatch, tsetup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_against_tls, tsetup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled, tsetup, teardown),
        cmocka_unit_test_setup_teardown(test_version_mismatch, tsetup, teardown),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
