/* The copies TLS adds to the data path, counted: at most OpenSSL's record layer's, 2 each way. */
#include "chan_harness.h"
#include "tls.h"

#include <unistd.h>

#ifndef GIRDER_MAKE_CERTS
#error "GIRDER_MAKE_CERTS (the path of tests/integration/tls/make-certs.sh) must be defined"
#endif

/*
** This program defines memcpy and memmove (and their fortified forms) itself, so that every
** call of them in the process lands here: Girder's code (linked statically) and OpenSSL's (the
** executable's definitions come first for the shared libraries too). Calls of BIG bytes or more
** are counted while `counting` is on. 16 frames of 1 MiB then go from one state machine to
** another over the in-memory transport, once plain and once over TLS; the in-memory transport's
** copies and the harness's own (a received frame is copied out) are the same in both runs. The
** difference is what TLS adds: docs/tls.md ("Copies per byte") says 2 on the sending side
** (OpenSSL copies the plaintext into its record buffer and encrypts it there; the engine's BIO
** copies the record into its output chunk) and 2 on the receiving side (the BIO copies the record
** into OpenSSL's buffer, where it is decrypted; SSL_read copies the plaintext out).
*/

#define BIG 512

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1 /* the sanitizers own memcpy: nothing to count here (skipped) */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

static int counting;
static uint64_t copied, shifted;

#ifndef SANITIZED
static const unsigned char *last_src; /* the last memcpy's source and length */
static size_t last_n;

typedef uint64_t __attribute__((may_alias, aligned(1))) u64u;

/* plain loops (that the compiler must not turn back into calls of memcpy) */
#ifdef __clang__
#define NOLIB __attribute__((no_builtin))
#else
#define NOLIB __attribute__((optimize("no-tree-loop-distribute-patterns")))
#endif

NOLIB static void fwd(unsigned char *d, const unsigned char *s, size_t n)
{
    for (; n >= 8; n -= 8, d += 8, s += 8) *(u64u *)d = *(const u64u *)s;
    while (n--) *d++ = *s++;
}

NOLIB static void bwd(unsigned char *d, const unsigned char *s, size_t n)
{
    d += n;
    s += n;
    for (; n >= 8; n -= 8) {
        d -= 8;
        s -= 8;
        *(u64u *)d = *(const u64u *)s;
    }
    while (n--) *--d = *--s;
}

static void count(size_t n)
{
    if (counting && n >= BIG) copied += n;
}

void *memcpy(void *restrict d, const void *restrict s, size_t n)
{
    count(n);
    last_src = s;
    last_n = n;
    fwd(d, s, n);
    return d;
}

void *memmove(void *d, const void *s, size_t n)
{
    if (d == last_src && (const unsigned char *)s == last_src + last_n) {
        /* the in-memory transport's delivery: memcpy(buf, in, k), then memmove(in, in + k, rest)
        ** shifts what is left. How much that is depends on how the bytes were cut, not on what
        ** a real socket would copy: kept apart. */
        if (counting) shifted += n;
    } else {
        count(n);
    }
    last_src = NULL;
    if ((uintptr_t)d - (uintptr_t)s >= n)
        fwd(d, s, n);
    else
        bwd(d, s, n);
    return d;
}

void *__memcpy_chk(void *restrict d, const void *restrict s, size_t n, size_t cap);
void *__memcpy_chk(void *restrict d, const void *restrict s, size_t n, size_t cap)
{
    if (n > cap) abort();
    return memcpy(d, s, n);
}

void *__memmove_chk(void *d, const void *s, size_t n, size_t cap);
void *__memmove_chk(void *d, const void *s, size_t n, size_t cap)
{
    if (n > cap) abort();
    return memmove(d, s, n);
}
#endif

/* ---------------------------------------------------------------- certificates, nodes */

static char dir[256];
static char paths[16][320];
static int npaths;

static char *P(const char *name)
{
    snprintf(paths[npaths % 16], sizeof paths[0], "%s/%s", dir, name);
    return paths[npaths++ % 16];
}

static int make_certs(void **s)
{
    (void)s;
    char cmd[600];
    snprintf(dir, sizeof dir, "/tmp/girder-tlscopies-test-XXXXXX");
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

static dist_tls_ctx *ctx(unsigned v, bool server)
{
    dist_tls_role r;
    dist__tls_role_defaults(&r);
    r.given = true;
    r.certfile = P("node.pem");
    r.keyfile = P("node.key");
    r.cacertfile = P("ca.pem");
    r.verify_peer = true;
    r.fail_if_no_peer_cert = server;
    r.versions = v;
    dist_tls_ctx *c = NULL;
    char err[600];
    int rc = dist__tls_ctx_new(&r, server, &c, err, sizeof err);
    if (rc) fprintf(stderr, "ctx: %s\n", err);
    assert_int_equal(rc, 0);
    return c;
}

/* A node over the in-memory transport: plain (v 0) or TLS with versions v (mutual TLS). */
static void up(tnode *n, const char *alive, unsigned v)
{
    if (!v) {
        node_up(n, alive, "cookie");
        return;
    }
    dist_tls_ctx *s = ctx(v, true), *c = ctx(v, false);
    dist_tr *tr = dist__tls_tr_new(dist__mem_new(net, "h", NULL), s, c, NULL, NULL);
    assert_non_null(tr);
    dist__tls_ctx_free(s);
    dist__tls_ctx_free(c);
    node_up_tr(n, alive, "cookie", tr);
}

#define FRAME  (1u << 20)
#define FRAMES 16

/* Bytes copied (by calls of BIG bytes or more) per payload byte, while FRAMES frames of FRAME
** bytes go from a to b: plain (v 0) or over TLS. */
static double copies_per_byte(unsigned v)
{
    setup(NULL);
    up(&A, "a", v);
    up(&B, "b", v);
    dist_peer *ab = dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    dist_peer *ba = rec(&B, "a");
    assert_non_null(ba);
    assert_int_equal(ab->state, PEER_UP);
    uint8_t *f = malloc(FRAME + 4);
    assert_non_null(f);
    girder__put32(f, FRAME);
    for (size_t i = 0; i < FRAME; i++) f[4 + i] = (uint8_t)(i * 13 + 5);
    for (int i = 0; i < FRAMES; i++) {
        enqueue(ab, f, FRAME + 4); /* the sender's encoded frame: not counted */
        ab->out_frames++;
    }
    copied = shifted = 0;
    counting = 1;
    dist__sm_kick(A.sm, ab);
    dist__mem_run(net, SIZE_MAX);
    counting = 0;
    send_frame(&A, ab, "after"); /* and the connection still carries frames */
    dist__mem_run(net, SIZE_MAX);
    assert_int_equal(ba->nframes, FRAMES + 1);
    assert_memory_equal(ba->rx + (size_t)FRAMES * (FRAME + 4) + 4, "after", 5);
    for (int i = 0; i < FRAMES; i++)
        assert_memory_equal(ba->rx + (size_t)i * (FRAME + 4), f, FRAME + 4);
    free(f);
    teardown(NULL);
    printf("%s: %.3f copies per payload byte (and %.3f shifted by the in-memory transport)\n",
           v == DIST_TLS_V12   ? "TLS 1.2"
           : v == DIST_TLS_V13 ? "TLS 1.3"
                               : "plain",
           (double)copied / ((double)FRAME * FRAMES), (double)shifted / ((double)FRAME * FRAMES));
    return (double)copied / ((double)FRAME * FRAMES);
}

static void check(unsigned v, const char *name)
{
    double plain = copies_per_byte(0), tls = copies_per_byte(v);
    printf("%s adds %.3f copies per payload byte to the plain path\n", name, tls - plain);
    /* the counting works: the in-memory transport's write and read copy each byte once */
    assert_true(plain >= 1.99);
    /* TLS adds OpenSSL's record layer's 2 copies each way and nothing else. A little more is
    ** allowed for record overhead on the wire and for the machine moving a partial frame when
    ** records cut frames (a few hundredths); one more copy would be 1 */
    assert_true(tls - plain <= 4.2);
}

static void test_tls12(void **s)
{
    (void)s;
    check(DIST_TLS_V12, "TLS 1.2");
}

static void test_tls13(void **s)
{
    (void)s;
    check(DIST_TLS_V13, "TLS 1.3");
}

int main(void)
{
#ifdef SANITIZED
    printf("skipped: a sanitizer build intercepts memcpy itself\n");
    return 77;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls12),
        cmocka_unit_test(test_tls13),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
