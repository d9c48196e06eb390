/* Unit tests for frames: the atom cache header, fragments (OTP's documented example), round trips.
 */
#include "dist_int.h"
#include "chan.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <unistd.h>

#define A(s) term_atom(s)

static dist_rx rx;

static int setup(void **s)
{
    (void)s;
    dist__rx_init(&rx, 0, 0, 0, true);
    return 0;
}
static int teardown(void **s)
{
    (void)s;
    dist__rx_free(&rx);
    return 0;
}

/* The fragmented REG_SEND of erl_ext_dist.md ("Distribution Header for fragmented messages"). */
static void test_doc_example(void **s)
{
    (void)s;
    uint8_t f1[400], f2[64];
    size_t n = 0;
    static const uint8_t head[] = {
        131, 69,  0,   0,   2,   168, 0,   0,   5,   83,  0,   0,   0,   0,   0,   0,
        0,   2,   5,   4,   137, 9,   10,  5,   236, 3,   114, 101, 103, 9,   4,   99,
        97,  108, 108, 238, 13,  115, 101, 116, 95,  103, 101, 116, 95,  115, 116, 97,
        116, 101, 104, 4,   97,  6,   103, 82,  0,   0,   0,   0,   85,  0,   0,   0,
        0,   2,   82,  1,   82,  2,   104, 3,   82,  3,   103, 82,  0,   0,   0,   0,
        245, 0,   0,   0,   2,   2,   104, 2,   82,  4,   109, 0,   0,   0,   128};
    memcpy(f1, head, sizeof head);
    n = sizeof head;
    memset(f1 + n, 0, 103);
    n += 103;
    static const uint8_t cont[] = {131, 70, 0, 0, 2, 168, 0, 0, 5, 83, 0, 0, 0, 0, 0, 0, 0, 1};
    memcpy(f2, cont, sizeof cont);
    memset(f2 + sizeof cont, 0, 25);
    /* the first two references are old cache entries (the node names) */
    rx.cache.atoms[4 * 256 + 10] = A("a@host");
    rx.cache.atoms[5] = A("b@host");
    dist_ctl c;
    const char *why = NULL;
    assert_int_equal(dist__rx_frame(&rx, f1, n, &c, &why), 0);
    int rc = dist__rx_frame(&rx, f2, sizeof cont + 25, &c, &why);
    if (rc < 0) fprintf(stderr, "why: %s\n", why);
    assert_int_equal(rc, 1);
    assert_int_equal(c.op, DOP_REG_SEND);
    assert_true(c.to == A("reg"));
    assert_true(term_is_pid(c.from));
    term_pid_info pi;
    term_pid_get(c.from, &pi);
    assert_true(pi.node == A("a@host"));
    assert_int_equal(pi.id, 85);
    /* {call, Pid, {set_get_state, <<0:1024>>}} */
    term_t m = c.payload;
    assert_true(term_is_tuple(m) && term_tuple_arity(m) == 3);
    assert_true(term_tuple_elem(m, 0) == A("call"));
    term_t inner = term_tuple_elem(m, 2);
    assert_true(term_tuple_elem(inner, 0) == A("set_get_state"));
    assert_int_equal(term_binary_size(term_tuple_elem(inner, 1)), 128);
    /* the new entries stay cached: a later header may refer to them */
    assert_true(rx.cache.atoms[1 * 256 + 236] == A("reg"));
    dist__ctl_free(&c);
}

static term_t pid(const char *node, uint32_t id)
{
    return term_pid(A(node), id, 0, 3);
}

/* Feeds the frames in b from byte pos on, each after its 4-byte length, to r; the last result
** (1: a message in *c) and how many frames there were. */
static int feed_frames(dist_rx *r, const etf_buf *b, size_t pos, dist_ctl *c, int *frames)
{
    int rc = 0;
    for (*frames = 0; pos < b->len; (*frames)++) {
        size_t len = girder__get32(b->data + pos);
        const char *why = NULL;
        rc = dist__rx_frame(r, b->data + pos + 4, len, c, &why);
        if (rc < 0) fprintf(stderr, "why: %s\n", why);
        assert_true(rc >= 0);
        pos += 4 + len;
    }
    return rc;
}

/* Encodes ctl+payload with the given flags and fragment size, decodes frame by frame. */
static void roundtrip(term_t ctl, term_t payload, uint64_t flags, size_t frag, int want_op)
{
    etf_buf b = {0};
    assert_int_equal(dist__frame_encode(ctl, payload, flags, frag, 77, &b), 0);
    /* the control tuple given as its elements encodes to the same bytes */
    size_t n = term_tuple_arity(ctl);
    term_t el[8];
    assert_true(n >= 1 && n <= 8);
    for (size_t i = 0; i < n; i++) el[i] = term_tuple_elem(ctl, i);
    etf_buf bv = {0};
    assert_int_equal(dist__frame_encode_v(el, n, payload, flags, frag, 77, &bv), 0);
    assert_int_equal(bv.len, b.len);
    assert_memory_equal(bv.data, b.data, b.len);
    etf_buf_free(&bv);
    dist_rx r;
    dist__rx_init(&r, 0, 0, 0, (flags & DFLAG_DIST_HDR_ATOM_CACHE) != 0);
    int frames = 0;
    dist_ctl c;
    int rc = feed_frames(&r, &b, 0, &c, &frames);
    if (rc != 1) fprintf(stderr, "frames %d bytes %zu frag %zu\n", frames, b.len, frag);
    assert_int_equal(rc, 1);
    assert_int_equal(c.op, want_op);
    assert_true(term_equal(c.ctl_term, ctl));
    if (payload != TERM_NONE) assert_true(term_equal(c.payload, payload));
    if (frag && payload != TERM_NONE && (flags & DFLAG_FRAGMENTS) &&
        etf_encoded_size(payload, ETF_ENC_NO_VERSION) > (long long)frag)
        assert_true(frames > 1);
    dist__ctl_free(&c);
    dist__rx_free(&r);
    etf_buf_free(&b);
    term_free(ctl);
    term_free(payload);
}

static void test_roundtrips(void **s)
{
    (void)s;
    uint64_t fl = DIST_OUR_FLAGS;
    term_t big = term_binary(NULL, 0);
    term_free(big);
    uint8_t *bytes = malloc(300000);
    for (size_t i = 0; i < 300000; i++) bytes[i] = (uint8_t)(i * 7);
    roundtrip(term_tuplev(3, term_int(DOP_SEND_SENDER), pid("a@h", 1), pid("b@h", 2)), A("hello"),
              fl, 65536, DOP_SEND);
    roundtrip(term_tuplev(3, term_int(DOP_SEND_SENDER), pid("a@h", 1), pid("b@h", 2)),
              term_tuplev(2, A("big"), term_binary(bytes, 300000)), fl, 1000, DOP_SEND);
    /* pass-through frames when the peer has no distribution header */
    roundtrip(term_tuplev(3, term_int(DOP_SEND), A(""), pid("b@h", 2)), A("x"),
              fl & ~DFLAG_DIST_HDR_ATOM_CACHE, 0, DOP_SEND);
    roundtrip(term_tuplev(4, term_int(DOP_REG_SEND), pid("a@h", 1), A(""), A("kv")),
              term_list(0, NULL), fl, 64, DOP_REG_SEND);
    roundtrip(term_tuplev(3, term_int(DOP_PAYLOAD_EXIT), pid("a@h", 1), pid("b@h", 2)), A("boom"),
              fl, 0, DOP_EXIT);
    roundtrip(term_tuplev(4, term_int(DOP_EXIT2), pid("a@h", 1), pid("b@h", 2), A("kill")),
              TERM_NONE, fl, 0, DOP_EXIT2);
    roundtrip(term_tuplev(3, term_int(DOP_LINK), pid("a@h", 1), pid("b@h", 2)), TERM_NONE, fl, 0,
              DOP_LINK);
    roundtrip(term_tuplev(4, term_int(DOP_UNLINK_ID), term_uint(UINT64_MAX), pid("a@h", 1),
                          pid("b@h", 2)),
              TERM_NONE, fl, 0, DOP_UNLINK_ID);
    term_t ref = term_ref(A("a@h"), 3, 3, (uint32_t[]){1, 2, 3});
    roundtrip(term_tuplev(4, term_int(DOP_MONITOR_P), pid("a@h", 1), A("echo"), term_dup(ref)),
              TERM_NONE, fl, 0, DOP_MONITOR_P);
    roundtrip(term_tuplev(4, term_int(DOP_PAYLOAD_MONITOR_P_EXIT), A("echo"), pid("a@h", 1),
                          term_dup(ref)),
              A("normal"), fl, 0, DOP_MONITOR_P_EXIT);
    roundtrip(term_tuplev(6, term_int(DOP_SPAWN_REQUEST), term_dup(ref), pid("a@h", 1),
                          pid("a@h", 1), term_tuplev(3, A("demo"), A("echo"), term_int(0)),
                          term_list(1, (term_t[]){A("monitor")})),
              TERM_NIL, fl, 0, DOP_SPAWN_REQUEST);
    roundtrip(term_tuplev(5, term_int(DOP_SPAWN_REPLY), term_dup(ref), pid("a@h", 1), term_int(3),
                          pid("b@h", 9)),
              TERM_NONE, fl, 0, DOP_SPAWN_REPLY);
    roundtrip(term_tuplev(3, term_int(DOP_ALIAS_SEND), pid("a@h", 1), term_dup(ref)), A("m"), fl, 0,
              DOP_ALIAS_SEND);
    term_free(ref);
    free(bytes);
}

/*
** ALTACT_SIG_SEND (OTP 28), bytes written by hand from erl_dist_protocol.md: a pass-through
** frame (112), the control tuple {37, Flags, SenderPid, To [, Token]} and the payload.
*/
static size_t put_pid(uint8_t *p, const char *node)
{
    size_t n = 0, nl = strlen(node);
    p[n++] = 88; /* NEW_PID_EXT */
    p[n++] = 119;
    p[n++] = (uint8_t)nl;
    memcpy(p + n, node, nl);
    n += nl;
    static const uint8_t rest[12] = {0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, 7};
    memcpy(p + n, rest, 12);
    return n + 12;
}

static size_t altact(uint8_t *f, int flags, int to_kind, bool token, const char *payload_atom)
{
    size_t n = 0;
    f[n++] = 112;
    f[n++] = 131;
    f[n++] = 104;
    f[n++] = token ? 5 : 4;
    f[n++] = 97;
    f[n++] = 37;
    f[n++] = 97;
    f[n++] = (uint8_t)flags;
    n += put_pid(f + n, "a@h");
    if (to_kind == 0) {
        n += put_pid(f + n, "b@h");
    } else if (to_kind == 1) { /* NEWER_REFERENCE_EXT, 3 words */
        static const uint8_t ref[] = {90, 0, 3, 119, 3, 'b', '@', 'h', 0, 0, 0, 7,
                                      0,  0, 0, 1,   0, 0,   0,   2,   0, 0, 0, 3};
        memcpy(f + n, ref, sizeof ref);
        n += sizeof ref;
    } else {
        static const uint8_t name[] = {119, 4, 'k', 'e', 'e', 'p'};
        memcpy(f + n, name, sizeof name);
        n += sizeof name;
    }
    if (token) {
        f[n++] = 97;
        f[n++] = 9;
    }
    f[n++] = 131;
    f[n++] = 119;
    f[n++] = (uint8_t)strlen(payload_atom);
    memcpy(f + n, payload_atom, strlen(payload_atom));
    return n + strlen(payload_atom);
}

static void test_altact_sig_send(void **s)
{
    (void)s;
    uint8_t f[256];
    dist_ctl c;
    const char *why = NULL;
    /* a message to an alias */
    size_t n = altact(f, 4, 1, false, "hi");
    assert_int_equal(dist__rx_frame(&rx, f, n, &c, &why), 1);
    assert_int_equal(c.op, DOP_ALTACT_SIG_SEND);
    assert_int_equal(c.id, ALTACT_ALIAS);
    assert_true(term_is_pid(c.from) && term_is_ref(c.to));
    assert_true(c.payload == A("hi"));
    dist__ctl_free(&c);
    /* a priority message to a name, with a trace token */
    n = altact(f, ALTACT_PRIO | ALTACT_NAME | ALTACT_TOKEN, 2, true, "m");
    assert_int_equal(dist__rx_frame(&rx, f, n, &c, &why), 1);
    assert_true(c.to == A("keep") && c.token == term_int(9) && c.payload == A("m"));
    dist__ctl_free(&c);
    /* an exit signal to a pid and through an alias: the payload is the reason */
    n = altact(f, ALTACT_EXIT, 0, false, "bye");
    assert_int_equal(dist__rx_frame(&rx, f, n, &c, &why), 1);
    assert_true(term_is_pid(c.to) && c.payload == A("bye") && (c.id & ALTACT_EXIT));
    dist__ctl_free(&c);
    n = altact(f, ALTACT_EXIT | ALTACT_ALIAS | ALTACT_PRIO, 1, false, "bye");
    assert_int_equal(dist__rx_frame(&rx, f, n, &c, &why), 1);
    dist__ctl_free(&c);
    /* malformed: To not matching the flags, both ALIAS and NAME, unknown bits, a token flag
    ** without a token, an exit to a name */
    static const struct {
        int flags, to_kind;
        bool token;
    } bad[] = {{ALTACT_ALIAS, 0, false},
               {0, 1, false},
               {ALTACT_NAME, 0, false},
               {ALTACT_ALIAS | ALTACT_NAME, 1, false},
               {1 << 5, 0, false},
               {ALTACT_TOKEN, 0, false},
               {0, 0, true},
               {ALTACT_EXIT | ALTACT_NAME, 2, false}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = altact(f, bad[i].flags, bad[i].to_kind, bad[i].token, "x");
        assert_int_equal(dist__rx_frame(&rx, f, n, &c, &why), DIST_EPROTO);
    }
    /* without a payload */
    n = altact(f, 0, 0, false, "x") - 4;
    assert_int_equal(dist__rx_frame(&rx, f, n, &c, &why), DIST_EPROTO);
    /* the flag is offered (only) now that the message is handled */
    assert_true(DIST_OUR_FLAGS & DFLAG_ALTACT_SIG);
    assert_int_equal(DFLAG_ALTACT_SIG, 0x20ULL << 32);
}

static int frame(const uint8_t *f, size_t n, const char **why)
{
    dist_ctl c;
    int rc = dist__rx_frame(&rx, f, n, &c, why);
    if (rc == 1) dist__ctl_free(&c);
    return rc;
}

static void test_malformed(void **s)
{
    (void)s;
    const char *why;
    static const uint8_t empty_ref[] = {131, 68, 1, 0x00, 200, 104, 1, 82, 0};
    rx.cache.atoms[200] = TERM_NONE;
    assert_int_equal(frame(empty_ref, sizeof empty_ref, &why), DIST_EPROTO);
    static const uint8_t trunc[] = {131, 68, 3, 0x88};
    assert_int_equal(frame(trunc, sizeof trunc, &why), DIST_EPROTO);
    static const uint8_t unknown_op[] = {131, 68, 0, 104, 1, 97, 99};
    assert_int_equal(frame(unknown_op, sizeof unknown_op, &why), DIST_EPROTO);
    static const uint8_t bad_arity[] = {131, 68, 0, 104, 2, 97, 1, 97, 1};
    assert_int_equal(frame(bad_arity, sizeof bad_arity, &why), DIST_EPROTO);
    static const uint8_t cont_unknown[] = {131, 70, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(frame(cont_unknown, sizeof cont_unknown, &why), DIST_EPROTO);
    static const uint8_t junk[] = {7, 7, 7};
    assert_int_equal(frame(junk, sizeof junk, &why), DIST_EPROTO);
    /* a stray ATOM_CACHE_REF beyond this header's references */
    static const uint8_t stray[] = {131, 68, 0, 104, 1, 82, 5};
    assert_int_equal(frame(stray, sizeof stray, &why), DIST_EPROTO);
    /* out-of-order fragments */
    static const uint8_t start[] = {131, 69, 0, 0, 0, 0, 0, 0,   0, 5,  0, 0,
                                    0,   0,  0, 0, 0, 3, 0, 104, 3, 97, 2};
    assert_int_equal(frame(start, sizeof start, &why), 0);
    static const uint8_t skip[] = {131, 70, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(frame(skip, sizeof skip, &why), DIST_EPROTO);
    dist__rx_free(&rx);
    /* an empty first fragment (found by the fuzzer: memcpy into a NULL buffer) */
    static const uint8_t e1[] = {131, 69, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 2, 0};
    assert_int_equal(frame(e1, sizeof e1, &why), 0);
    static const uint8_t e2[] = {131, 70, 0, 0, 0, 0, 0, 0,   0, 6,  0,
                                 0,   0,  0, 0, 0, 0, 1, 104, 1, 97, 5};
    assert_int_equal(frame(e2, sizeof e2, &why), 1); /* {5}: NODE_LINK */
    dist__rx_free(&rx);
}

/* A REG_SEND frame whose header caches the fresh atom name at index i and whose payload is it. */
static size_t budget_frame(uint8_t *f, int i, char *name, size_t cap)
{
    int n = snprintf(name, cap, "budget_%d_%d", (int)getpid(), i);
    size_t k = 0;
    f[k++] = 131, f[k++] = 68, f[k++] = 1, f[k++] = 0x08, f[k++] = (uint8_t)i;
    f[k++] = (uint8_t)n;
    memcpy(f + k, name, (size_t)n);
    k += (size_t)n;
    etf_buf b = {0};
    term_t ctl = term_tuplev(4, term_int(DOP_REG_SEND), pid("a@h", 1), A(""), A("x"));
    etf_encode(ctl, ETF_ENC_NO_VERSION, &b);
    memcpy(f + k, b.data, b.len);
    k += b.len;
    f[k++] = 82, f[k++] = 0; /* payload: the cached atom */
    etf_buf_free(&b);
    term_free(ctl);
    return k;
}

/* With atoms_disconnect, the first name past the budget is a protocol error with its reason. */
static void test_atom_budget_disconnect(void **s)
{
    (void)s;
    dist_rx r;
    dist__rx_init(&r, 0, 0, 5, true);
    r.atoms_disconnect = true;
    char name[32];
    uint8_t f[128];
    int rc = 0, ok = 0;
    const char *why = NULL;
    for (int i = 0; i < 10 && rc >= 0; i++) {
        size_t k = budget_frame(f, i, name, sizeof name);
        dist_ctl c;
        rc = dist__rx_frame(&r, f, k, &c, &why);
        if (rc == 1) ok++, dist__ctl_free(&c);
    }
    assert_int_equal(rc, DIST_EPROTO);
    assert_int_equal(ok, 5);
    assert_non_null(strstr(why, "max_new_atoms"));
    assert_true(atomic_load(&r.budget->over_budget));
    dist__rx_free(&r);
}

/*
** By default names past the budget decode as foreign atoms: every frame is delivered with its
** name intact, the atom table grows by the budget only, and the budget is spent exactly.
*/
static void test_atom_budget_foreign(void **s)
{
    (void)s;
    dist_rx r;
    dist__rx_init(&r, 0, 0, 5, true);
    char name[32];
    uint8_t f[128];
    size_t before = term_atom_count();
    for (int i = 0; i < 10; i++) {
        size_t k = budget_frame(f, 100 + i, name, sizeof name);
        dist_ctl c;
        const char *why = NULL;
        assert_int_equal(dist__rx_frame(&r, f, k, &c, &why), 1);
        assert_true(term_is_atom(c.payload));
        assert_int_equal(term_atom_is_interned(c.payload), i < 5);
        size_t len;
        const char *got = term_atom_name(c.payload, &len);
        assert_int_equal(len, strlen(name));
        assert_memory_equal(got, name, len);
        dist__ctl_free(&c);
    }
    assert_int_equal(atomic_load(&r.budget->interned), 5);
    assert_int_equal(term_atom_count() - before, 5);
    assert_true(atomic_load(&r.budget->over_budget));
    /* once a foreign name is interned by local code, the cached entry decodes to that atom */
    snprintf(name, sizeof name, "budget_%d_%d", (int)getpid(), 107);
    term_t local = term_atom(name);
    static const uint8_t again_hdr[] = {131, 68, 1, 0x00, 107};
    uint8_t g[128];
    memcpy(g, again_hdr, sizeof again_hdr);
    size_t k = sizeof again_hdr;
    etf_buf b = {0};
    term_t ctl = term_tuplev(4, term_int(DOP_REG_SEND), pid("a@h", 1), A(""), A("x"));
    etf_encode(ctl, ETF_ENC_NO_VERSION, &b);
    memcpy(g + k, b.data, b.len);
    k += b.len;
    g[k++] = 82, g[k++] = 0;
    dist_ctl c;
    const char *why = NULL;
    assert_int_equal(dist__rx_frame(&r, g, k, &c, &why), 1);
    assert_true(c.payload == local);
    dist__ctl_free(&c);
    etf_buf_free(&b);
    term_free(ctl);
    dist__rx_free(&r);
}

/* A fragmented message's large binary is not copied out of the reassembled buffer: it points
** into it, and keeps it alive after the message's own reference is gone. A small one is copied. */
static void test_fragmented_binary_shared(void **state)
{
    (void)state;
    size_t size = 70000;
    uint8_t *bytes = malloc(size);
    for (size_t i = 0; i < size; i++) bytes[i] = (uint8_t)(i * 13);
    term_t ctl = term_tuplev(4, term_int(DOP_REG_SEND), pid("a@h", 1), A(""), A("sink"));
    term_t payload = term_tuplev(3, A("big"), term_binary(bytes, size), term_binary(bytes, 100));
    etf_buf b = {0};
    assert_int_equal(dist__frame_encode(ctl, payload, DIST_OUR_FLAGS, 65536, 9, &b), 0);
    dist_rx r;
    dist__rx_init(&r, 0, 0, 0, true);
    dist_rxmsg m;
    int rc = 0, frames = 0;
    for (size_t pos = 0; pos < b.len; frames++) {
        size_t len = girder__get32(b.data + pos);
        const char *why = NULL;
        rc = dist__rx_message(&r, b.data + pos + 4, len, &m, &why);
        assert_true(rc >= 0);
        pos += 4 + len;
    }
    assert_int_equal(frames, 2);
    assert_int_equal(rc, 1);
    assert_true(m.own != TERM_NONE);
    assert_int_equal(term_binary_size(m.own), m.len); /* trimmed to the message */
    const uint8_t *lo = term_binary_data(m.own), *hi = lo + m.len;
    dist_ctl c;
    const char *why = NULL;
    assert_int_equal(dist__rx_decode(&r, &m, false, &c, &why), 0);
    dist__rxmsg_release(&m); /* the message's reference to the buffer goes */
    term_t big = term_tuple_elem(c.payload, 1), small = term_tuple_elem(c.payload, 2);
    const uint8_t *d = term_binary_data(big);
    assert_true(d >= lo && d + size <= hi);
    d = term_binary_data(small);
    assert_false(d >= lo && d < hi);
    assert_int_equal(term_binary_size(big), size);
    assert_memory_equal(term_binary_data(big), bytes, size);
    assert_memory_equal(term_binary_data(small), bytes, 100);
    assert_true(term_equal(c.payload, payload));
    dist__ctl_free(&c); /* the buffer's last reference: ASan's leak check sees it freed */
    dist__rx_free(&r);
    etf_buf_free(&b);
    term_free(ctl);
    term_free(payload);
    free(bytes);
}

/* dist__frame_fragment, built around a payload encoded after a gap, makes exactly the bytes of
** dist__frame_encode_v, at every boundary of the fragment count; a control message that does
** not fit in the gap is refused with the payload left as it was. */
static void test_fragment_around_payload(void **state)
{
    (void)state;
    uint8_t *bytes = malloc(5000);
    for (size_t i = 0; i < 5000; i++) bytes[i] = (uint8_t)(i * 11);
    term_t el[4] = {term_int(DOP_REG_SEND), pid("a@h", 1), A(""), A("sink")};
    const size_t frag = 256, gap = 512;
    /* payloads of one fragment's size, one byte more, two fragments' and one byte more, and
    ** many fragments (the tuple, the atom and the binary's header take 12 bytes) */
    size_t sizes[] = {frag - 12, frag - 11, 2 * frag - 12, 2 * frag - 11, 4900};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        term_t payload = term_tuplev(2, A("big"), term_binary(bytes, sizes[i]));
        etf_buf want = {0}, b = {0};
        assert_int_equal(dist__frame_encode_v(el, 4, payload, DIST_OUR_FLAGS, frag, 5, &want), 0);
        assert_int_equal(etf_buf_reserve(&b, gap), 0);
        b.len = gap;
        assert_int_equal(etf_encode(payload, ETF_ENC_UTF8_ATOMS | ETF_ENC_NO_VERSION, &b), 0);
        size_t plen = b.len - gap, at = 99;
        int rc = dist__frame_fragment(el, 4, frag, 5, &b, gap, &at);
        if (plen <= frag) {
            assert_int_equal(rc, DIST_EINVAL); /* one frame: nothing to fragment */
            assert_int_equal(b.len, gap + plen);
        } else {
            assert_int_equal(rc, 0);
            assert_true(at < gap);
            assert_int_equal(b.len - at, want.len);
            assert_memory_equal(b.data + at, want.data, want.len);
            /* and it decodes, frame by frame, to the message */
            dist_rx r;
            dist__rx_init(&r, 0, 0, 0, true);
            dist_ctl c;
            int frames = 0;
            assert_int_equal(feed_frames(&r, &b, at, &c, &frames), 1);
            assert_int_equal(frames, (int)((plen + frag - 1) / frag));
            assert_true(term_equal(c.payload, payload));
            dist__ctl_free(&c);
            dist__rx_free(&r);
        }
        etf_buf_free(&want);
        etf_buf_free(&b);
        term_free(payload);
    }
    /* a control message longer than the gap: refused, the payload untouched */
    char name[600];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    term_t long_el[4] = {el[0], el[1], el[2], term_atom(name)};
    etf_buf b = {0};
    assert_int_equal(etf_buf_reserve(&b, gap), 0);
    b.len = gap;
    term_t payload = term_binary(bytes, 3000);
    assert_int_equal(etf_encode(payload, ETF_ENC_UTF8_ATOMS | ETF_ENC_NO_VERSION, &b), 0);
    size_t len = b.len, at = 0;
    assert_int_equal(dist__frame_fragment(long_el, 4, frag, 5, &b, gap, &at), DIST_EINVAL);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data + gap + 5, bytes, 3000);
    etf_buf_free(&b);
    term_free(payload);
    for (size_t i = 0; i < 4; i++) term_free(el[i]);
    free(bytes);
}

/* First fragments of several sequences: together their buffers may not pass max_message. */
static void test_fragment_memory_bound(void **state)
{
    (void)state;
    dist_rx r;
    dist__rx_init(&r, 1 << 20, 0, 0, true);
    size_t chunk = 300 << 10;
    uint8_t *f = calloc(1, 19 + chunk);
    f[0] = 131;
    f[1] = 69;
    int rc = 0;
    const char *why = NULL;
    size_t seqs = 0;
    for (uint64_t seq = 1; seq <= 10 && rc == 0; seq++) {
        girder__put64(f + 2, seq);
        girder__put64(f + 10, 3); /* the first of three fragments */
        f[18] = 0;                /* no atom cache references */
        dist_ctl ctl;
        rc = dist__rx_frame(&r, f, 19 + chunk, &ctl, &why);
        if (rc == 0) seqs++;
        assert_true(r.frag_bytes <= (1u << 20));
    }
    assert_int_equal(rc, DIST_EPROTO);
    assert_non_null(strstr(why, "reassembly"));
    assert_true(seqs >= 1 && seqs < 4);
    dist__rx_free(&r);
    assert_int_equal(r.frag_bytes, 0);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_doc_example, setup, teardown),
        cmocka_unit_test(test_roundtrips),
        cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
        cmocka_unit_test(test_atom_budget_disconnect),
        cmocka_unit_test(test_atom_budget_foreign),
        cmocka_unit_test(test_fragment_memory_bound),
        cmocka_unit_test(test_fragmented_binary_shared),
        cmocka_unit_test(test_fragment_around_payload),
        cmocka_unit_test_setup_teardown(test_altact_sig_send, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
