/* Unit tests for the TLS engine: two engines back to back in memory, certificates made at test
 * time. */
#include "tls.h"

#include <girder/dist.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#ifndef GIRDER_MAKE_CERTS
#error "GIRDER_MAKE_CERTS (the path of tests/integration/tls/make-certs.sh) must be defined"
#endif

static char dir[256]; /* the certificates of this run */
static char paths[64][320];
static int npaths;

/* DIR/name, kept for the whole run */
static char *P(const char *name)
{
    snprintf(paths[npaths % 64], sizeof paths[0], "%s/%s", dir, name);
    return paths[npaths++ % 64];
}

static int make_certs(void **s)
{
    (void)s;
    char cmd[600];
    snprintf(dir, sizeof dir, "/tmp/girder-tls-test-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(cmd, sizeof cmd, "sh %s %s localhost 127.0.0.1 girder-a.test >/dev/null",
             GIRDER_MAKE_CERTS, dir);
    if (system(cmd) != 0) return -1;
    mkdir(P("emptycrls"), 0700);
    return 0;
}

static int remove_certs(void **s)
{
    (void)s;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A role with the node certificate signed by ca, verify_peer, TLS versions v. */
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

/* ---------------------------------------------------------------- a wire between two engines */

typedef struct end {
    dist_tls *t;
    int hs; /* last handshake result */
    int rd; /* last read result that was not AGAIN */
    uint8_t *got;
    size_t got_len, got_cap;
} end;

static size_t chunk_sizes[] = {1, 7, 13, 1021, 4093, 16411, 65521, 3};
static _Thread_local size_t split; /* 0: move everything at once; else cycle through odd sizes */
static _Thread_local size_t split_i;

/* Moves a's pending output into b, in pieces when split is on. */
static bool carry(end *a, end *b)
{
    struct iovec iov[16];
    bool moved = false;
    while (dist__tls_tx_pending(a->t)) {
        int k = dist__tls_tx_iov(a->t, iov, 16);
        assert_true(k > 0);
        size_t n = iov[0].iov_len;
        if (split) n = n < chunk_sizes[split_i % 8] ? n : chunk_sizes[split_i++ % 8];
        size_t took = dist__tls_feed(b->t, iov[0].iov_base, n);
        if (took == 0) break;
        dist__tls_tx_consume(a->t, took);
        moved = true;
    }
    return moved;
}

/* Lets e's engine use its input: handshake, then read all plaintext into e->got. */
static void run(end *e)
{
    if (!dist__tls_established(e->t)) {
        e->hs = dist__tls_handshake(e->t);
        if (e->hs != 0) return;
    }
    if (e->rd == DIST_EPROTO || e->rd == DIST_TLS_EOF) return;
    for (;;) {
        if (e->got_cap - e->got_len < 65536) {
            e->got_cap = e->got_cap * 2 + 65536;
            e->got = realloc(e->got, e->got_cap);
            assert_non_null(e->got);
        }
        size_t n;
        int rc = dist__tls_read(e->t, e->got + e->got_len, e->got_cap - e->got_len, &n);
        e->got_len += n;
        if (rc == DIST_TLS_AGAIN) break;
        if (rc != 0) {
            e->rd = rc;
            break;
        }
    }
}

/* Shuttles bytes until nothing moves. */
static void pump(end *c, end *s)
{
    for (int round = 0; round < 100000; round++) {
        run(c);
        run(s);
        bool m1 = carry(c, s), m2 = carry(s, c);
        if (!m1 && !m2) {
            run(c);
            run(s);
            if (!dist__tls_tx_pending(c->t) && !dist__tls_tx_pending(s->t)) return;
        }
    }
    fail_msg("the engines never settled");
}

static void pair(end *c, end *s, dist_tls_ctx *cc, dist_tls_ctx *sc, const char *host)
{
    memset(c, 0, sizeof *c);
    memset(s, 0, sizeof *s);
    c->t = dist__tls_new(cc, host);
    s->t = dist__tls_new(sc, NULL);
    assert_non_null(c->t);
    assert_non_null(s->t);
    c->hs = s->hs = DIST_TLS_AGAIN;
    split = 0;
}

static void unpair(end *c, end *s)
{
    dist__tls_free(c->t);
    dist__tls_free(s->t);
    free(c->got);
    free(s->got);
}

/* Writes all of p (retrying while a re-key waits for the peer). */
static void send_all(end *from, end *to, const void *p, size_t n)
{
    size_t off = 0;
    for (int i = 0; off < n && i < 100000; i++) {
        struct iovec v = {(uint8_t *)p + off, n - off};
        size_t k;
        int rc = dist__tls_writev(from->t, &v, 1, &k);
        off += k;
        assert_true(rc == 0 || rc == DIST_TLS_AGAIN);
        if (from == to) continue;
        pump(from, to);
    }
    assert_int_equal(off, n);
}

/* A handshake that must succeed between cc and sc. */
static void must_connect(end *c, end *s, dist_tls_ctx *cc, dist_tls_ctx *sc, const char *host)
{
    pair(c, s, cc, sc, host);
    pump(c, s);
    if (c->hs || s->hs)
        fprintf(stderr, "client: %s\nserver: %s\n", dist__tls_why(c->t), dist__tls_why(s->t));
    assert_int_equal(c->hs, 0);
    assert_int_equal(s->hs, 0);
}

/* A handshake that must fail; returns with both ends alive (caller unpairs). The side that
** detects the problem names it: its reason must contain want. */
static void must_fail(end *c, end *s, dist_tls_ctx *cc, dist_tls_ctx *sc, const char *host,
                      end **detector, const char *want)
{
    pair(c, s, cc, sc, host);
    pump(c, s);
    bool cf = c->hs == DIST_EPROTO, sf = s->hs == DIST_EPROTO || s->rd == DIST_EPROTO;
    if (!cf && c->rd == DIST_EPROTO) cf = true;
    assert_true(cf || sf);
    end *d = *detector;
    const char *why = dist__tls_why(d->t);
    if (!strstr(why, want))
        fprintf(stderr, "wanted '%s' in: %s\n(other side: %s)\n", want, why,
                dist__tls_why(d == c ? s->t : c->t));
    assert_non_null(strstr(why, want));
}

/* ---------------------------------------------------------------- handshakes */

static void handshake_ok(unsigned v, const char *version)
{
    dist_tls_role cr = role("node", v), sr = role("node", v);
    sr.fail_if_no_peer_cert = true;
    dist_tls_ctx *cc = ctx(&cr, false), *sc = ctx(&sr, true);
    end c, s;
    must_connect(&c, &s, cc, sc, "localhost");
    assert_string_equal(dist__tls_version(c.t), version);
    assert_string_equal(dist__tls_version(s.t), version);
    char subj[200];
    assert_int_equal(dist__tls_peer_subject(c.t, subj, sizeof subj), 0);
    assert_string_equal(subj, "CN=localhost");
    assert_int_equal(dist__tls_peer_subject(s.t, subj, sizeof subj), 0); /* mutual */
    assert_string_equal(subj, "CN=localhost");
    if (v == DIST_TLS_V12) /* what an OTP 25 client and server agree on with these keys */
        assert_string_equal(dist__tls_cipher(c.t), "ECDHE-ECDSA-AES256-GCM-SHA384");
    else
        assert_string_equal(dist__tls_cipher(c.t), "TLS_AES_256_GCM_SHA384");
    /* a little data both ways */
    send_all(&c, &s, "hello", 5);
    send_all(&s, &c, "world!", 6);
    assert_int_equal(s.got_len, 5);
    assert_memory_equal(s.got, "hello", 5);
    assert_int_equal(c.got_len, 6);
    /* close_notify ends the other side's reads cleanly */
    assert_int_equal(dist__tls_close(c.t), 0);
    pump(&c, &s);
    assert_int_equal(s.rd, DIST_TLS_EOF);
    size_t n;
    struct iovec iov = {"x", 1};
    assert_int_equal(dist__tls_writev(c.t, &iov, 1, &n), DIST_EPROTO);
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
}

static void test_handshake_12(void **st)
{
    (void)st;
    handshake_ok(DIST_TLS_V12, "TLSv1.2");
}

static void test_handshake_13(void **st)
{
    (void)st;
    handshake_ok(DIST_TLS_V13, "TLSv1.3");
}

static void test_versions(void **st)
{
    (void)st;
    /* both allowed on both sides: 1.3 wins; 1.2-only server and 1.3-only client: refused */
    dist_tls_role both = role("node", DIST_TLS_V12 | DIST_TLS_V13),
                  only12 = role("node", DIST_TLS_V12), only13 = role("node", DIST_TLS_V13);
    dist_tls_ctx *cb = ctx(&both, false), *s12 = ctx(&only12, true), *c13 = ctx(&only13, false);
    end c, s, *d = &s;
    must_connect(&c, &s, cb, s12, "localhost");
    assert_string_equal(dist__tls_version(c.t), "TLSv1.2");
    unpair(&c, &s);
    must_fail(&c, &s, c13, s12, "localhost", &d, "unsupported protocol");
    unpair(&c, &s);
    dist__tls_ctx_free(cb);
    dist__tls_ctx_free(s12);
    dist__tls_ctx_free(c13);
}

/* ---------------------------------------------------------------- refusals */

static void refusal(unsigned v, const char *ccert, const char *scert, bool fail_if_no,
                    const char *host, bool server_detects, const char *want)
{
    dist_tls_role cr = role(ccert, v), sr = role(scert, v);
    sr.fail_if_no_peer_cert = fail_if_no;
    dist_tls_ctx *cc = ctx(&cr, false), *sc = ctx(&sr, true);
    end c, s;
    end *d = server_detects ? &s : &c;
    must_fail(&c, &s, cc, sc, host, &d, want);
    /* the other side learns it from the alert */
    end *o = server_detects ? &c : &s;
    assert_true(o->hs == DIST_EPROTO || o->rd == DIST_EPROTO);
    assert_non_null(strstr(dist__tls_why(o->t), "alert"));
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
}

static void test_no_client_certificate(void **st)
{
    (void)st;
    refusal(DIST_TLS_V12, NULL, "node", true, "localhost", true,
            "peer did not return a certificate");
    refusal(DIST_TLS_V13, NULL, "node", true, "localhost", true,
            "peer did not return a certificate");
    /* without fail_if_no_peer_cert a client without a certificate is let in */
    dist_tls_role cr = role(NULL, DIST_TLS_V12), sr = role("node", DIST_TLS_V12);
    dist_tls_ctx *cc = ctx(&cr, false), *sc = ctx(&sr, true);
    end c, s;
    must_connect(&c, &s, cc, sc, "localhost");
    char subj[100];
    assert_int_equal(dist__tls_peer_subject(s.t, subj, sizeof subj), DIST_EINVAL);
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
}

static void test_unknown_ca(void **st)
{
    (void)st;
    refusal(DIST_TLS_V12, "rogue", "node", true, "localhost", true,
            "unable to get local issuer certificate");
    refusal(DIST_TLS_V12, "node", "rogue", true, "localhost", false,
            "unable to get local issuer certificate");
    refusal(DIST_TLS_V13, "node", "self", true, "localhost", false, "self-signed certificate");
}

static void test_expired(void **st)
{
    (void)st;
    refusal(DIST_TLS_V12, "expired", "node", true, "localhost", true, "certificate has expired");
    refusal(DIST_TLS_V13, "node", "expired", true, "localhost", false, "certificate has expired");
}

static void test_host_mismatch(void **st)
{
    (void)st;
    refusal(DIST_TLS_V12, "node", "otherhost", true, "localhost", false,
            "'localhost' is not a DNS name");
    refusal(DIST_TLS_V13, "node", "node", true, "elsewhere.test", false, "host name mismatch");
    /* IP SANs are not consulted (OTP checks the host as a DNS name) */
    refusal(DIST_TLS_V12, "node", "ipsan", true, "127.0.0.1", false, "host name mismatch");
    /* a DNS SAN spelled like the address works, in any case of letters for names */
    dist_tls_role cr = role("node", DIST_TLS_V12), sr = role("node", DIST_TLS_V12);
    dist_tls_ctx *cc = ctx(&cr, false), *sc = ctx(&sr, true);
    end c, s;
    must_connect(&c, &s, cc, sc, "127.0.0.1");
    unpair(&c, &s);
    must_connect(&c, &s, cc, sc, "GIRDER-A.test");
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
    /* verify_none: no check at all (OTP's default) */
    cr.verify_peer = false;
    cc = ctx(&cr, false);
    sr = role("otherhost", DIST_TLS_V12);
    sc = ctx(&sr, true);
    must_connect(&c, &s, cc, sc, "localhost");
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
}

static bool host_ok(const char *cert, const char *host)
{
    FILE *f = fopen(P(cert), "rb");
    char buf[8192];
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return dist__tls_host_matches(buf, n, host);
}

static void test_host_rule_is_otps(void **st)
{
    (void)st;
    assert_true(host_ok("node.pem", "localhost"));
    assert_true(host_ok("node.pem", "LocalHost"));
    assert_true(host_ok("node.pem", "127.0.0.1")); /* DNS:127.0.0.1 */
    assert_true(host_ok("node.pem", "girder-a.test"));
    assert_false(host_ok("node.pem", "girder-a"));
    assert_false(host_ok("node.pem", "localhost.")); /* no trailing-dot folding */
    assert_false(host_ok("ipsan.pem", "127.0.0.1")); /* IP SAN only */
    /* no SAN: the CN, with a wildcard in its first label */
    assert_true(host_ok("nosan.pem", "localhost"));
    assert_false(host_ok("nosan.pem", "127.0.0.1"));
    assert_true(host_ok("wildcn.pem", "a.girder.test"));
    assert_true(host_ok("wildcn.pem", "A.Girder.Test"));
    assert_false(host_ok("wildcn.pem", "a.b.girder.test"));
    assert_false(host_ok("wildcn.pem", "girder.test"));
    assert_false(host_ok("wildcn.pem", "*.girder.test"));
    assert_false(host_ok("otherhost.pem", "localhost"));
}

static void test_garbage_and_plaintext(void **st)
{
    (void)st;
    dist_tls_role sr = role("node", DIST_TLS_V12);
    dist_tls_ctx *sc = ctx(&sr, true);
    /* a plain-TCP distribution handshake packet (2-byte length, 'N', ...) */
    static const uint8_t name_msg[] = {0, 23,   'N', 0, 0,   0,   1,   7,   0xdf, 0x7f, 0xbd, 0,  0,
                                       4, 0xd2, 0,   8, 'p', 'r', 'o', 'b', 'e',  '@',  'v',  'm'};
    dist_tls *t = dist__tls_new(sc, NULL);
    assert_int_equal(dist__tls_feed(t, name_msg, sizeof name_msg), sizeof name_msg);
    assert_int_equal(dist__tls_handshake(t), DIST_EPROTO);
    assert_non_null(strstr(dist__tls_why(t), "wrong version number"));
    dist__tls_free(t);
    /* random bytes */
    uint8_t junk[3000];
    srand(7);
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)rand();
    junk[0] = 0x16; /* looks like a handshake record, then nonsense */
    t = dist__tls_new(sc, NULL);
    dist__tls_feed(t, junk, sizeof junk);
    assert_int_equal(dist__tls_handshake(t), DIST_EPROTO);
    assert_true(strlen(dist__tls_why(t)) > 20);
    dist__tls_free(t);
    /* an HTTP request */
    t = dist__tls_new(sc, NULL);
    dist__tls_feed(t, "GET / HTTP/1.0\r\n\r\n", 18);
    assert_int_equal(dist__tls_handshake(t), DIST_EPROTO);
    assert_non_null(strstr(dist__tls_why(t), "http request"));
    dist__tls_free(t);
    /* a client given garbage by its "server" */
    dist_tls_role cr = role("node", DIST_TLS_V12);
    dist_tls_ctx *cc = ctx(&cr, false);
    t = dist__tls_new(cc, "localhost");
    assert_int_equal(dist__tls_handshake(t), DIST_TLS_AGAIN);
    assert_true(dist__tls_tx_pending(t) > 0); /* the ClientHello */
    dist__tls_feed(t, name_msg, sizeof name_msg);
    assert_int_equal(dist__tls_handshake(t), DIST_EPROTO);
    dist__tls_free(t);
    /* a client needs the peer's host */
    assert_null(dist__tls_new(cc, NULL));
    assert_null(dist__tls_new(cc, ""));
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
}

/* ---------------------------------------------------------------- data */

static uint8_t pattern(size_t i, unsigned seed)
{
    return (uint8_t)((i * 2654435761u + seed) >> 7);
}

static void big_transfer(unsigned v, size_t total)
{
    dist_tls_role cr = role("node", v), sr = role("node", v);
    dist_tls_ctx *cc = ctx(&cr, false), *sc = ctx(&sr, true);
    end c, s;
    must_connect(&c, &s, cc, sc, "localhost");
    uint8_t *a = malloc(total), *b = malloc(total);
    for (size_t i = 0; i < total; i++) {
        a[i] = pattern(i, 1);
        b[i] = pattern(i, 2);
    }
    split = 1; /* odd cuts of the ciphertext from now on */
    /* both directions at once, in pieces of odd sizes, some as vectors */
    size_t oa = 0, ob = 0, step = 0;
    static const size_t piece[] = {1, 3, 100, 5000, 70001, 2047, 2048, 16384, 16385, 999983};
    while (oa < total || ob < total) {
        size_t pa = piece[step % 10], pb = piece[(step + 3) % 10];
        step++;
        if (oa < total) {
            size_t n = pa < total - oa ? pa : total - oa, k;
            struct iovec iov[3] = {
                {a + oa, n / 3}, {a + oa + n / 3, n / 3}, {a + oa + 2 * (n / 3), n - 2 * (n / 3)}};
            assert_int_equal(dist__tls_writev(c.t, iov, 3, &k), 0);
            assert_int_equal(k, n);
            oa += n;
        }
        if (ob < total) {
            size_t n = pb < total - ob ? pb : total - ob, k;
            struct iovec iov = {b + ob, n};
            assert_int_equal(dist__tls_writev(s.t, &iov, 1, &k), 0);
            ob += n;
        }
        pump(&c, &s);
    }
    assert_int_equal(s.got_len, total);
    assert_int_equal(c.got_len, total);
    assert_memory_equal(s.got, a, total);
    assert_memory_equal(c.got, b, total);
    free(a);
    free(b);
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
}

static void test_10mb_both_ways_12(void **st)
{
    (void)st;
    big_transfer(DIST_TLS_V12, 10u << 20);
}

static void test_10mb_both_ways_13(void **st)
{
    (void)st;
    big_transfer(DIST_TLS_V13, 10u << 20);
}

static void test_small_pieces_are_gathered(void **st)
{
    (void)st;
    dist_tls_role cr = role("node", DIST_TLS_V13), sr = role("node", DIST_TLS_V13);
    dist_tls_ctx *cc = ctx(&cr, false), *sc = ctx(&sr, true);
    end c, s;
    must_connect(&c, &s, cc, sc, "localhost");
    /* 1000 frames as (4-byte header, 20-byte body) pairs: one or two records, not 2000 */
    static uint8_t hdr[4] = {0, 0, 0, 20}, body[20];
    struct iovec iov[2000];
    for (int i = 0; i < 2000; i += 2) {
        iov[i] = (struct iovec){hdr, 4};
        iov[i + 1] = (struct iovec){body, 20};
    }
    size_t n;
    assert_int_equal(dist__tls_writev(c.t, iov, 2000, &n), 0);
    assert_int_equal(n, 24000);
    size_t wire = dist__tls_tx_pending(c.t);
    assert_true(wire < 24000 + 2 * 30); /* two records' overhead at most */
    pump(&c, &s);
    assert_int_equal(s.got_len, 24000);
    /* a tick alone is one small record */
    struct iovec tick = {hdr, 4};
    assert_int_equal(dist__tls_writev(c.t, &tick, 1, &n), 0);
    assert_true(dist__tls_tx_pending(c.t) <= 4 + 22);
    pump(&c, &s);
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
}

static void test_output_memory_stays_put(void **st)
{
    (void)st;
    dist_tls_role cr = role("node", DIST_TLS_V12), sr = role("node", DIST_TLS_V12);
    dist_tls_ctx *cc = ctx(&cr, false), *sc = ctx(&sr, true);
    end c, s;
    must_connect(&c, &s, cc, sc, "localhost");
    static uint8_t data[300000];
    struct iovec v = {data, sizeof data}, out[64];
    size_t n;
    assert_int_equal(dist__tls_writev(c.t, &v, 1, &n), 0);
    int k = dist__tls_tx_iov(c.t, out, 64);
    assert_true(k > 1);
    void *first = out[0].iov_base;
    uint8_t keep[64];
    memcpy(keep, first, sizeof keep);
    /* more output while the first bytes are "in flight" */
    assert_int_equal(dist__tls_writev(c.t, &v, 1, &n), 0);
    int k2 = dist__tls_tx_iov(c.t, out, 64);
    assert_true(k2 > k);
    assert_ptr_equal(out[0].iov_base, first);
    assert_memory_equal(first, keep, sizeof keep);
    pump(&c, &s);
    assert_int_equal(s.got_len, 2 * sizeof data);
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
}

/* ---------------------------------------------------------------- re-keying */

static void rekey_mid_stream(unsigned v, bool client_starts)
{
    dist_tls_role cr = role("node", v), sr = role("node", v);
    sr.fail_if_no_peer_cert = true;
    dist_tls_ctx *cc = ctx(&cr, false), *sc = ctx(&sr, true);
    end c, s;
    must_connect(&c, &s, cc, sc, "localhost");
    static uint8_t blob[200000];
    for (size_t i = 0; i < sizeof blob; i++) blob[i] = pattern(i, 5);
    send_all(&c, &s, blob, 100000);
    end *starter = client_starts ? &c : &s, *other = client_starts ? &s : &c;
    assert_int_equal(dist__tls_rekey(starter->t), 0);
    /* data keeps flowing both ways while (and after) the peer answers */
    send_all(&c, &s, blob + 100000, 50000);
    send_all(&s, &c, blob, 70000);
    send_all(&c, &s, blob + 150000, 50000);
    assert_int_equal(s.got_len, 200000);
    assert_memory_equal(s.got, blob, 200000);
    assert_int_equal(c.got_len, 70000);
    assert_memory_equal(c.got, blob, 70000);
    if (v == DIST_TLS_V12) {
        assert_int_equal(dist__tls_handshakes(c.t), 2);
        assert_int_equal(dist__tls_handshakes(s.t), 2);
    } else {
        assert_int_equal(dist__tls_key_updates(other->t), 1);
        assert_int_equal(dist__tls_key_updates(starter->t), 1); /* update_requested: answered */
    }
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
}

static void test_renegotiation_12(void **st)
{
    (void)st;
    rekey_mid_stream(DIST_TLS_V12, true);  /* a client starts it, as OTP does at 2^28 records */
    rekey_mid_stream(DIST_TLS_V12, false); /* HelloRequest from the server */
}

static void test_key_update_13(void **st)
{
    (void)st;
    rekey_mid_stream(DIST_TLS_V13, true);
    rekey_mid_stream(DIST_TLS_V13, false);
}

static void test_automatic_rekey(void **st)
{
    (void)st;
    for (unsigned v = DIST_TLS_V12; v <= DIST_TLS_V13; v++) {
        dist_tls_role cr = role("node", v), sr = role("node", v);
        dist_tls_ctx *cc = ctx(&cr, false), *sc = ctx(&sr, true);
        dist__tls_ctx_set_rekey(cc, 100000, 10); /* instead of OTP's 2^38.5 bytes, 2^28 records */
        end c, s;
        must_connect(&c, &s, cc, sc, "localhost");
        static uint8_t blob[1 << 20];
        for (size_t i = 0; i < sizeof blob; i += 16384) send_all(&c, &s, blob + i, 16384);
        assert_int_equal(s.got_len, sizeof blob);
        if (v == DIST_TLS_V12)
            assert_true(dist__tls_handshakes(s.t) >= 5);
        else
            assert_true(dist__tls_key_updates(s.t) >= 5);
        unpair(&c, &s);
        dist__tls_ctx_free(cc);
        dist__tls_ctx_free(sc);
    }
}

/* ---------------------------------------------------------------- sessions, options */

static void test_session_reuse(void **st)
{
    (void)st;
    dist_tls_role cr = role("node", DIST_TLS_V12), sr = role("node", DIST_TLS_V12);
    sr.fail_if_no_peer_cert = true;
    dist_tls_ctx *cc = ctx(&cr, false), *sc = ctx(&sr, true);
    end c, s;
    must_connect(&c, &s, cc, sc, "localhost");
    assert_false(dist__tls_resumed(c.t));
    unpair(&c, &s);
    must_connect(&c, &s, cc, sc, "localhost");
    assert_true(dist__tls_resumed(c.t)); /* reuse_sessions (OTP's default) */
    assert_true(dist__tls_resumed(s.t));
    char subj[100]; /* the client's identity survives resumption */
    assert_int_equal(dist__tls_peer_subject(s.t, subj, sizeof subj), 0);
    assert_string_equal(subj, "CN=localhost");
    unpair(&c, &s);
    must_connect(&c, &s, cc, sc, "127.0.0.1"); /* another host: a full handshake */
    assert_false(dist__tls_resumed(c.t));
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    cr.reuse_sessions = false;
    cc = ctx(&cr, false);
    must_connect(&c, &s, cc, sc, "localhost");
    unpair(&c, &s);
    must_connect(&c, &s, cc, sc, "localhost");
    assert_false(dist__tls_resumed(c.t));
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
    /* TLS 1.3: no tickets, as OTP 25 (session_tickets disabled) */
    cr = role("node", DIST_TLS_V13);
    sr = role("node", DIST_TLS_V13);
    cc = ctx(&cr, false);
    sc = ctx(&sr, true);
    must_connect(&c, &s, cc, sc, "localhost");
    unpair(&c, &s);
    must_connect(&c, &s, cc, sc, "localhost");
    assert_false(dist__tls_resumed(c.t));
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
}

static void test_depth(void **st)
{
    (void)st;
    dist_tls_role cr = role("node", DIST_TLS_V12), sr = role("node", DIST_TLS_V12);
    sr.certfile = P("leafi-chain.pem"); /* leaf, intermediate; the root is trusted */
    sr.keyfile = P("leafi.key");
    dist_tls_ctx *sc = ctx(&sr, true), *cc;
    end c, s, *d = &c;
    cr.depth = 1;
    cc = ctx(&cr, false);
    must_connect(&c, &s, cc, sc, "localhost");
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    cr.depth = 0; /* OTP: the peer must be signed by the trusted root itself */
    cc = ctx(&cr, false);
    must_fail(&c, &s, cc, sc, "localhost", &d, "certificate chain too long");
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
}

static void test_crl(void **st)
{
    (void)st;
    dist_tls_role cr = role("node", DIST_TLS_V12), sr = role("revoked", DIST_TLS_V12);
    dist_tls_ctx *sc = ctx(&sr, true), *cc;
    end c, s, *d = &c;
    cr.crl_check = DIST_TLS_CRL_PEER;
    cr.crl_dir = P("crls");
    cc = ctx(&cr, false);
    must_fail(&c, &s, cc, sc, "localhost", &d, "certificate revoked");
    unpair(&c, &s);
    dist__tls_ctx_free(sc);
    sr = role("node", DIST_TLS_V12);
    sc = ctx(&sr, true);
    must_connect(&c, &s, cc, sc, "localhost"); /* a good certificate passes the same check */
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    cr.crl_check = DIST_TLS_CRL_ALL;
    cr.crl_dir = P("emptycrls");
    cc = ctx(&cr, false);
    must_fail(&c, &s, cc, sc, "localhost", &d, "unable to get certificate CRL");
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    cr.crl_check = DIST_TLS_CRL_BEST_EFFORT; /* no CRL to be found is no failure */
    cc = ctx(&cr, false);
    must_connect(&c, &s, cc, sc, "localhost");
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
}

static void ctx_refused(dist_tls_role *r, bool server, const char *frag)
{
    dist_tls_ctx *c = NULL;
    char err[600] = "";
    assert_int_equal(dist__tls_ctx_new(r, server, &c, err, sizeof err), DIST_EINVAL);
    assert_null(c);
    if (!strstr(err, frag)) fprintf(stderr, "wanted '%s' in: %s\n", frag, err);
    assert_non_null(strstr(err, frag));
}

static void test_ctx_errors(void **st)
{
    (void)st;
    dist_tls_role r = role("node", DIST_TLS_V12);
    r.certfile = P("missing.pem");
    ctx_refused(&r, true, "option certfile: cannot read");
    ctx_refused(&r, true, "missing.pem: No such file or directory");
    r = role("node", DIST_TLS_V12);
    r.keyfile = P("rogue.key");
    ctx_refused(&r, true, "option keyfile");
    r = role("node", DIST_TLS_V12);
    r.keyfile = P("node-enc.key");
    ctx_refused(&r, false, "cannot use the private key"); /* no password: never prompts */
    r.password = "wrong";
    ctx_refused(&r, false, "wrong password");
    r.password = "girder-pw";
    dist_tls_ctx *c = ctx(&r, false);
    dist__tls_ctx_free(c);
    r = role("node", DIST_TLS_V12);
    r.cacertfile = P("missing-ca.pem");
    ctx_refused(&r, true, "option cacertfile: cannot read");
    r = role("node", DIST_TLS_V12);
    r.ciphers12 = "ECDHE-ECDSA-AES128-GCM-SHA256:NO-SUCH-CIPHER";
    ctx_refused(&r, true, "'NO-SUCH-CIPHER' is not a TLS 1.2 cipher");
    r.ciphers12 = "HIGH"; /* an OpenSSL alias, not a suite */
    ctx_refused(&r, true, "'HIGH'");
    r.ciphers12 = "ECDHE-ECDSA-AES128-GCM-SHA256";
    c = ctx(&r, true);
    dist__tls_ctx_free(c);
    r = role("node", DIST_TLS_V12);
    r.dhfile = P("node.pem");
    ctx_refused(&r, true, "option dhfile");
    r = role("node", DIST_TLS_V12);
    r.crl_check = DIST_TLS_CRL_PEER;
    r.crl_dir = P("crls");
    c = ctx(&r, true);
    dist__tls_ctx_free(c);
}

static void test_chosen_ciphers(void **st)
{
    (void)st;
    dist_tls_role cr = role("node", DIST_TLS_V12 | DIST_TLS_V13), sr = role("node", DIST_TLS_V12);
    cr.ciphers12 = "ECDHE-ECDSA-CHACHA20-POLY1305";
    dist_tls_ctx *cc = ctx(&cr, false), *sc = ctx(&sr, true);
    end c, s;
    must_connect(&c, &s, cc, sc, "localhost");
    assert_string_equal(dist__tls_cipher(s.t), "ECDHE-ECDSA-CHACHA20-POLY1305");
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
    cr = role("node", DIST_TLS_V13);
    sr = role("node", DIST_TLS_V13);
    cr.ciphers13 = "TLS_CHACHA20_POLY1305_SHA256";
    cc = ctx(&cr, false);
    sc = ctx(&sr, true);
    must_connect(&c, &s, cc, sc, "localhost");
    assert_string_equal(dist__tls_cipher(s.t), "TLS_CHACHA20_POLY1305_SHA256");
    unpair(&c, &s);
    dist__tls_ctx_free(cc);
    dist__tls_ctx_free(sc);
}

/* ---------------------------------------------------------------- threads */

static dist_tls_ctx *shared_c, *shared_s;

/* Connections of shared contexts on several threads at once (the session cache is shared). */
static void *conn_thread(void *arg)
{
    static uint8_t blob[70000];
    const char *host = arg;
    for (int i = 0; i < 15; i++) {
        end c, s;
        must_connect(&c, &s, shared_c, shared_s, host);
        send_all(&c, &s, blob, sizeof blob);
        send_all(&s, &c, blob, 1000);
        assert_int_equal(s.got_len, sizeof blob);
        unpair(&c, &s);
    }
    return NULL;
}

static void test_threads_share_contexts(void **st)
{
    (void)st;
    dist_tls_role cr = role("node", DIST_TLS_V12), sr = role("node", DIST_TLS_V12);
    sr.fail_if_no_peer_cert = true;
    shared_c = ctx(&cr, false);
    shared_s = ctx(&sr, true);
    pthread_t th[4];
    static const char *hosts[] = {"localhost", "127.0.0.1", "girder-a.test", "localhost"};
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, conn_thread, (void *)hosts[i]);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    dist__tls_ctx_free(shared_c);
    dist__tls_ctx_free(shared_s);
}

/* ---------------------------------------------------------------- cost */

/* Not an assertion on speed: prints what docs/tls.md quotes (MB/s of one engine each way). */
static void test_measure_cost(void **st)
{
    (void)st;
    for (unsigned v = DIST_TLS_V12; v <= DIST_TLS_V13; v++) {
        dist_tls_role cr = role("node", v), sr = role("node", v);
        dist_tls_ctx *cc = ctx(&cr, false), *sc = ctx(&sr, true);
        end c, s;
        must_connect(&c, &s, cc, sc, "localhost");
        size_t total = 64u << 20, frame = 65536;
        static uint8_t data[65536], plain[65536];
        double enc = 0, dec = 0;
        struct timespec t0, t1, t2;
        for (size_t done = 0; done < total; done += frame) {
            struct iovec v1 = {data, frame}, out[8];
            size_t n;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            dist__tls_writev(c.t, &v1, 1, &n);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            int k = dist__tls_tx_iov(c.t, out, 8);
            for (int i = 0; i < k; i++) {
                uint8_t *dst;
                size_t cap, off = 0;
                while (off < out[i].iov_len) { /* as a transport reading into rx_space */
                    dst = dist__tls_rx_space(s.t, &cap);
                    size_t m = out[i].iov_len - off < cap ? out[i].iov_len - off : cap;
                    memcpy(dst, (uint8_t *)out[i].iov_base + off, m);
                    dist__tls_rx_commit(s.t, m);
                    off += m;
                    size_t got;
                    while (dist__tls_read(s.t, plain, sizeof plain, &got) == 0) {
                    }
                }
            }
            dist__tls_tx_consume(c.t, dist__tls_tx_pending(c.t));
            clock_gettime(CLOCK_MONOTONIC, &t2);
            enc += (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
            dec += (double)(t2.tv_sec - t1.tv_sec) + (double)(t2.tv_nsec - t1.tv_nsec) / 1e9;
        }
        printf("TLS engine %s %s: encrypt %.0f MB/s (%.2f ns/byte), decrypt %.0f MB/s "
               "(%.2f ns/byte; the decrypt figure includes one memcpy standing for the socket "
               "read)\n",
               dist__tls_version(c.t), dist__tls_cipher(c.t), total / enc / 1e6, enc * 1e9 / total,
               total / dec / 1e6, dec * 1e9 / total);
        unpair(&c, &s);
        dist__tls_ctx_free(cc);
        dist__tls_ctx_free(sc);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_12),
        cmocka_unit_test(test_handshake_13),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_no_client_certificate),
        cmocka_unit_test(test_unknown_ca),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_host_mismatch),
        cmocka_unit_test(test_host_rule_is_otps),
        cmocka_unit_test(test_garbage_and_plaintext),
        cmocka_unit_test(test_10mb_both_ways_12),
        cmocka_unit_test(test_10mb_both_ways_13),
        cmocka_unit_test(test_small_pieces_are_gathered),
        cmocka_unit_test(test_output_memory_stays_put),
        cmocka_unit_test(test_renegotiation_12),
        cmocka_unit_test(test_key_update_13),
        cmocka_unit_test(test_automatic_rekey),
        cmocka_unit_test(test_session_reuse),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_crl),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_chosen_ciphers),
        cmocka_unit_test(test_threads_share_contexts),
        cmocka_unit_test(test_measure_cost),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
