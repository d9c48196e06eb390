/* Unit tests for the sending side of the atom cache: header bytes, reuse, long atoms, round trips.
 */
#include "dist_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define A(s) term_atom(s)
#define FL   (DIST_OUR_FLAGS)

static term_t pid(const char *node, uint32_t id)
{
    return term_pid(A(node), id, 0, 1);
}

/* Encodes {2, '', Pid} + msg, applies the cache, returns the frame in b. */
static void frame_of(dist_acache *ac, term_t msg, etf_buf *b)
{
    term_t ctl = term_tuplev(3, term_int(DOP_SEND), A(""), pid("a@h", 7));
    b->len = 0;
    assert_int_equal(dist__frame_encode(ctl, msg, FL, 0, 1, b), 0);
    assert_int_equal(dist__acache_apply(ac, b), 0);
    term_free(ctl);
}

/* The nibble of reference i in a 131,68 header at f (f[2] = count). */
static unsigned nibble(const uint8_t *f, size_t i)
{
    return (f[3 + i / 2] >> ((i & 1) ? 4 : 0)) & 0xF;
}

/* Decodes the frame (after its 4-byte length) with rx and checks it gives back msg. */
static void decodes_to(dist_rx *rx, const etf_buf *b, term_t msg)
{
    dist_ctl c;
    const char *why = NULL;
    assert_int_equal(dist__rx_frame(rx, b->data + 4, b->len - 4, &c, &why), 1);
    assert_int_equal(c.op, DOP_SEND);
    assert_true(term_equal(c.payload, msg));
    dist__ctl_free(&c);
}

static void test_header_bytes(void **s)
{
    (void)s;
    dist_acache ac;
    memset(&ac, 0, sizeof ac);
    dist_rx rx;
    dist__rx_init(&rx, 0, 0, 0, true);
    etf_buf b = {0};
    term_t msg = term_tuplev(3, A("hello"), A("world"), A("hello"));
    frame_of(&ac, msg, &b);
    const uint8_t *f = b.data + 4;
    assert_int_equal(f[0], 131);
    assert_int_equal(f[1], 68);
    /* '', 'a@h' (the pid's node), hello, world: four references, all new entries */
    assert_int_equal(f[2], 4);
    for (size_t i = 0; i < 4; i++) assert_true(nibble(f, i) & 8);
    assert_int_equal(nibble(f, 4) & 1, 0); /* no long atoms */
    /* first reference: segment from the nibble, then index, length, text ('') */
    size_t p = 3 + 4 / 2 + 1;
    p += 1;
    assert_int_equal(f[p], 0); /* '' has length 0 */
    p += 1;
    p += 1; /* 'a@h' */
    assert_int_equal(f[p], 3);
    assert_memory_equal(f + p + 1, "a@h", 3);
    /* the body references them: SEND's '' is ATOM_CACHE_REF 0 */
    assert_int_equal(
        ((size_t)b.data[0] << 24 | (size_t)b.data[1] << 16 | (size_t)b.data[2] << 8 | b.data[3]) +
            4,
        b.len);
    decodes_to(&rx, &b, msg);
    /* the same message again: references only, no texts */
    size_t first = b.len;
    frame_of(&ac, msg, &b);
    f = b.data + 4;
    assert_int_equal(f[2], 4);
    for (size_t i = 0; i < 4; i++) assert_int_equal(nibble(f, i) & 8, 0);
    assert_true(b.len < first);
    /* header 3 + 3 flag bytes + 4 indexes; {2, '', Pid}: 2 + 2 + 2 + (1 + 2 + 12); payload 2 + 6 */
    assert_int_equal(b.len - 4, 10 + 21 + 8);
    decodes_to(&rx, &b, msg);
    term_free(msg);
    etf_buf_free(&b);
    dist__acache_free(&ac);
    dist__rx_free(&rx);
}

/* Builds {SEND_SENDER, From, To} + msg with dist__acache_frame (the payload encoded after a gap
** first, as send.c does); returns where the frame starts in b. */
static size_t ctl_frame(dist_acache *ac, term_t from, term_t to, term_t msg, etf_buf *b)
{
    term_t el[3] = {term_int(DOP_SEND_SENDER), from, to};
    b->len = 0;
    assert_int_equal(etf_buf_reserve(b, 512), 0);
    b->len = 512;
    assert_int_equal(etf_encode(msg, ETF_ENC_UTF8_ATOMS | ETF_ENC_NO_VERSION, b), 0);
    long at = dist__acache_frame(ac, el, 3, b, 512);
    assert_true(at >= 0 && at < 512);
    return (size_t)at;
}

/* The control message's atoms (the pids' nodes) become references; the payload's stay inline;
** the frame decodes to what was sent; a second frame refers to the entries without texts. */
static void test_ctl_frame(void **s)
{
    (void)s;
    dist_acache ac;
    memset(&ac, 0, sizeof ac);
    dist_rx rx;
    dist__rx_init(&rx, 0, 0, 0, true);
    etf_buf b = {0};
    term_t from = pid("sender@host", 5), to = pid("receiver@host", 9);
    term_t msg = term_tuplev(3, A("hello"), from, term_int(12345));
    for (int round = 0; round < 2; round++) {
        size_t at = ctl_frame(&ac, from, to, msg, &b);
        const uint8_t *f = b.data + at + 4;
        size_t len = b.len - at - 4;
        assert_int_equal(girder__get32(b.data + at), len);
        assert_int_equal(f[0], 131);
        assert_int_equal(f[1], 68);
        assert_int_equal(f[2], 2); /* two nodes; 'hello' and the payload's pid stay inline */
        for (size_t i = 0; i < 2; i++) assert_int_equal((nibble(f, i) & 8) != 0, round == 0);
        dist_ctl c;
        const char *why = NULL;
        assert_int_equal(dist__rx_frame(&rx, f, len, &c, &why), 1);
        assert_int_equal(c.op, DOP_SEND);
        assert_true(term_equal(c.from, from));
        assert_true(term_equal(c.to, to));
        assert_true(term_equal(c.payload, msg));
        dist__ctl_free(&c);
    }
    /* no room before the payload: refused, nothing changed */
    term_t el[3] = {term_int(DOP_SEND_SENDER), from, to};
    b.len = 8;
    assert_int_equal(dist__acache_frame(&ac, el, 3, &b, 8), -1);
    term_free(msg);
    term_free(to);
    etf_buf_free(&b);
    dist__acache_free(&ac);
    dist__rx_free(&rx);
}

/* A 300-byte atom sets the LongAtoms flag and a two-byte length. */
static void test_long_atom(void **s)
{
    (void)s;
    dist_acache ac;
    memset(&ac, 0, sizeof ac);
    dist_rx rx;
    dist__rx_init(&rx, 0, 0, 0, true);
    etf_buf b = {0};
    char name[200 * 2 + 1];
    for (int i = 0; i < 200; i++) memcpy(name + 2 * i, "\xc3\xa4", 2); /* 200 x U+00E4 */
    int err = 0;
    term_t msg = term_atom_n(name, 400, &err);
    assert_true(term_is_atom(msg));
    frame_of(&ac, msg, &b);
    const uint8_t *f = b.data + 4;
    assert_int_equal(f[2], 3);
    assert_int_equal(nibble(f, 3) & 1, 1);
    /* '' : index, then a two-byte length 0 */
    size_t p = 3 + 3 / 2 + 1 + 1;
    assert_int_equal(f[p], 0);
    assert_int_equal(f[p + 1], 0);
    decodes_to(&rx, &b, msg);
    etf_buf_free(&b);
    dist__acache_free(&ac);
    dist__rx_free(&rx);
}

/* Many frames with many atoms (more than 255 in one, slot collisions) decode to what was sent. */
static void test_many_atoms(void **s)
{
    (void)s;
    dist_acache ac;
    memset(&ac, 0, sizeof ac);
    dist_rx rx;
    dist__rx_init(&rx, 0, 0, 0, true);
    etf_buf b = {0};
    for (int round = 0; round < 6; round++) {
        term_t elems[400];
        size_t n = round == 0 ? 400 : 50 + 60 * (size_t)round;
        for (size_t i = 0; i < n; i++) {
            char nm[32];
            snprintf(nm, sizeof nm, "atom_%d_%zu", round % 3, i * 7);
            elems[i] = term_tuplev(2, A(nm), pid(i % 2 ? "x@h" : "y@h", (uint32_t)i));
        }
        term_t msg = term_list(n, elems);
        frame_of(&ac, msg, &b);
        assert_true(b.data[5] == 68);
        assert_true(b.data[6] > 0 && b.data[6] <= 255);
        decodes_to(&rx, &b, msg);
        term_free(msg);
    }
    /* frames other than an unfragmented 131,68 frame are left alone */
    uint8_t tick[4] = {0, 0, 0, 0};
    etf_buf t = {0};
    etf_buf_reserve(&t, 4);
    memcpy(t.data, tick, 4);
    t.len = 4;
    assert_int_equal(dist__acache_apply(&ac, &t), 0);
    assert_int_equal(t.len, 4);
    etf_buf_free(&t);
    etf_buf_free(&b);
    dist__acache_free(&ac);
    dist__rx_free(&rx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_bytes),
        cmocka_unit_test(test_long_atom),
        cmocka_unit_test(test_ctl_frame),
        cmocka_unit_test(test_many_atoms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
