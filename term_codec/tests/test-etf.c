/* Unit tests for the external term format codec, against bytes produced by real Erlang. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <cmocka.h>

#include <girder/term.h>
#include "../src/term_int.h" /* term__atom_slow_calls */

#include "arena_moves.h"

typedef struct vec {
    const char *name;
    const uint8_t *bytes;
    size_t len;
} vec;

static const vec vectors[] = {
#include "etf_vectors.h"
};
#define NVEC (sizeof vectors / sizeof vectors[0])

static const vec *find(const char *name)
{
    for (size_t i = 0; i < NVEC; i++)
        if (strcmp(vectors[i].name, name) == 0) return &vectors[i];
    fail_msg("no vector %s", name);
    return NULL;
}

static term_t dec(const uint8_t *b, size_t n)
{
    etf_error e;
    term_t t = etf_decode(b, n, NULL, NULL, &e);
    if (t == TERM_NONE) fail_msg("decode failed: %s at %zu", term_strerror(e.code), e.offset);
    return t;
}

static void assert_encodes_to(term_t t, const vec *v)
{
    etf_buf b = {0};
    assert_int_equal(etf_encode(t, 0, &b), 0);
    if (b.len != v->len || memcmp(b.data, v->bytes, v->len) != 0)
        fail_msg("%s: encoding differs from Erlang's (%zu vs %zu bytes)", v->name, b.len, v->len);
    assert_int_equal(etf_encoded_size(t, 0), (long long)v->len);
    etf_buf_free(&b);
}

/* Every vector decodes and re-encodes to exactly Erlang's bytes. */
static void test_roundtrip_erlang_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVEC; i++) {
        term_t t = dec(vectors[i].bytes, vectors[i].len);
        assert_encodes_to(t, &vectors[i]);
        term_free(t);
    }
}

/* Terms built in C encode to exactly what Erlang produced for the same value. */
static void test_constructed_terms(void **state)
{
    (void)state;
    term_t t;
    assert_encodes_to(term_int(42), find("small"));
    assert_encodes_to(term_int(-1), find("neg"));
    assert_encodes_to(term_int(100000), find("int32"));
    assert_encodes_to(term_int(INT32_MIN), find("int32min"));
    t = term_int(2147483648LL);
    assert_encodes_to(t, find("big1"));
    term_free(t);
    uint8_t mag[9] = {0, 0, 0, 0, 0, 0, 0, 0, 1};
    t = term_big_from_bytes(true, mag, 9);
    assert_true(term_is_bignum(t));
    assert_encodes_to(t, find("big2"));
    term_free(t);
    t = term_float(3.14);
    assert_encodes_to(t, find("float"));
    term_free(t);
    t = term_float(-0.0);
    assert_encodes_to(t, find("negzero"));
    term_free(t);
    assert_encodes_to(term_atom("hello"), find("atom"));
    assert_encodes_to(term_atom("\xc3\xa4"), find("latin1atom"));
    assert_encodes_to(term_atom("\xe2\x82\xac"), find("utf8atom"));
    t = term_tuplev(3, term_int(1), term_atom("a"), term_string("s", 1));
    assert_encodes_to(t, find("tuple"));
    term_free(t);
    assert_encodes_to(TERM_NIL, find("nil"));
    t = term_string("abc", 3);
    assert_encodes_to(t, find("string"));
    term_free(t);
    term_t el[3] = {term_int(1), term_int(1000), term_atom("a")};
    t = term_list(3, el);
    assert_encodes_to(t, find("list"));
    term_free(t);
    t = term_cons(term_int(1), term_int(2));
    assert_encodes_to(t, find("improper"));
    term_free(t);
    t = term_binary("\1\2\3", 3);
    assert_encodes_to(t, find("bin"));
    term_free(t);
    uint8_t five = 5 << 5;
    t = term_bitstring(&five, 3);
    assert_encodes_to(t, find("bits"));
    term_free(t);
    term_t ks[5] = {term_atom("b"), term_atom("a"), term_int(1), term_float(1.0),
                    term_tuplev(1, term_atom("t"))};
    term_t vs[5] = {term_int(2), term_int(1), term_atom("x"), term_atom("y"), term_atom("z")};
    t = term_map(5, ks, vs);
    assert_int_equal(term_map_size(t), 5);
    assert_encodes_to(t, find("map"));
    term_free(t);
    term_t node = term_atom("a@b.c");
    t = term_pid(node, 7, 1, 0xFFFFFFFFu);
    assert_encodes_to(t, find("pid"));
    term_free(t);
    t = term_ref(node, 9, 3, (uint32_t[]){1, 2, 3});
    assert_encodes_to(t, find("ref"));
    term_free(t);
    t = term_port(node, 5, 3);
    assert_encodes_to(t, find("port"));
    term_free(t);
    t = term_port(node, (1ULL << 32) | 5, 3);
    assert_encodes_to(t, find("port4"));
    term_free(t);
    t = term_export_fun(term_atom("lists"), term_atom("map"), 2);
    assert_encodes_to(t, find("export"));
    term_free(t);
    t = term_map(0, NULL, NULL);
    assert_encodes_to(t, find("emptymap"));
    term_free(t);
    t = term_binary(NULL, 0);
    assert_encodes_to(t, find("emptybin"));
    term_free(t);
}

/* Old and alternative encodings decode to the same values as the new ones. */
static void test_old_forms(void **state)
{
    (void)state;
    /* PID_EXT with SMALL_ATOM_EXT node */
    const uint8_t oldpid[] = {131, 103, 115, 5, 'a', '@', 'b', '.', 'c', 0, 0, 0, 7, 0, 0, 0, 1, 2};
    term_t t = dec(oldpid, sizeof oldpid);
    term_pid_info pi;
    assert_int_equal(term_pid_get(t, &pi), 0);
    assert_int_equal(pi.id, 7);
    assert_int_equal(pi.serial, 1);
    assert_int_equal(pi.creation, 2);
    assert_string_equal(term_atom_name(pi.node, NULL), "a@b.c");
    term_free(t);
    /* FLOAT_EXT */
    uint8_t oldfloat[33] = {131, 99};
    snprintf((char *)oldfloat + 2, 31, "%.20e", 3.14);
    t = dec(oldfloat, sizeof oldfloat);
    assert_true(term_is_float(t));
    assert_true(term_float_value(t) == 3.14);
    assert_encodes_to(t, find("float"));
    term_free(t);
    /* NEW_REFERENCE_EXT (1-byte creation), REFERENCE_EXT, PORT_EXT */
    const uint8_t newref[] = {131, 114, 0, 1, 100, 0, 1, 'n', 3, 0, 0, 0, 42};
    t = dec(newref, sizeof newref);
    term_ref_info ri;
    assert_int_equal(term_ref_get(t, &ri), 0);
    assert_int_equal(ri.nwords, 1);
    assert_int_equal(ri.words[0], 42);
    assert_int_equal(ri.creation, 3);
    term_free(t);
    const uint8_t oldref[] = {131, 101, 100, 0, 1, 'n', 0, 0, 0, 42, 3};
    t = dec(oldref, sizeof oldref);
    assert_int_equal(term_ref_get(t, &ri), 0);
    assert_int_equal(ri.words[0], 42);
    term_free(t);
    const uint8_t oldport[] = {131, 102, 100, 0, 1, 'n', 0, 0, 0, 9, 1};
    t = dec(oldport, sizeof oldport);
    term_port_info po;
    assert_int_equal(term_port_get(t, &po), 0);
    assert_int_equal(po.id, 9);
    term_free(t);
    /* SMALL_ATOM_UTF8_EXT and ATOM_UTF8_EXT give the same atom as ATOM_EXT */
    const uint8_t a1[] = {131, 119, 2, 'o', 'k'}, a2[] = {131, 118, 0, 2, 'o', 'k'},
                  a3[] = {131, 115, 2, 'o', 'k'};
    assert_true(dec(a1, sizeof a1) == TERM_ATOM_OK);
    assert_true(dec(a2, sizeof a2) == TERM_ATOM_OK);
    assert_true(dec(a3, sizeof a3) == TERM_ATOM_OK);
    /* A non-normalised bignum decodes to a small integer. */
    const uint8_t nb[] = {131, 110, 2, 0, 5, 0};
    assert_true(dec(nb, sizeof nb) == term_int(5));
    /* LIST_EXT of bytes decodes equal to STRING_EXT */
    const uint8_t l[] = {131, 108, 0, 0, 0, 2, 97, 'a', 97, 'b', 106};
    term_t x = dec(l, sizeof l), y = term_string("ab", 2);
    assert_true(term_equal(x, y));
    term_free(x);
    term_free(y);
}

/* Local funs decode and re-encode byte for byte, and expose their fields. */
static void test_funs(void **state)
{
    (void)state;
    /* fun(X) -> X + Y end with Y = 7, compiled in gen_vectors.erl */
    const vec *v = find("closure");
    const uint8_t *f = v->bytes;
    term_t t = dec(f, v->len);
    term_fun_info fi;
    assert_int_equal(term_fun_get(t, &fi), 0);
    assert_false(fi.is_export);
    assert_int_equal(fi.arity, 1);
    assert_int_equal(fi.nfree, 1);
    assert_true(fi.free[0] == term_int(7));
    assert_string_equal(term_atom_name(fi.module, NULL), "gen_vectors");
    assert_true(term_is_pid(fi.pid));
    etf_buf b = {0};
    assert_int_equal(etf_encode(t, 0, &b), 0);
    assert_int_equal(b.len, v->len);
    assert_memory_equal(b.data, f, v->len);
    /* Rebuilt from its fields, it is the same fun. */
    term_t g = term_local_fun(&fi);
    assert_true(term_equal(t, g));
    etf_buf_free(&b);
    term_free(g);
    term_free(t);
}

static void expect_error(const uint8_t *b, size_t n, int code, size_t off)
{
    etf_error e = {0};
    term_t t = etf_decode(b, n, NULL, NULL, &e);
    assert_true(t == TERM_NONE);
    if (e.code != code || e.offset != off)
        fail_msg("expected %s at %zu, got %s at %zu", term_err_name(code), off,
                 term_err_name(e.code), e.offset);
}

/* The per-thread atom cache never answers with another atom: for every cached length (1..31
** bytes), names over a two-letter alphabet (so that many agree on all but a byte or two and
** share a cache set: the sets are few), decoded again and again inside a term and at the
** very end of a buffer. */
#define CACHE_PER_LEN 256
static void test_atom_cache_names(void **state)
{
    (void)state;
    enum { NNAMES = 31 * CACHE_PER_LEN };
    static char names[NNAMES][32];
    uint64_t x = 0x9E3779B97F4A7C15ull; /* xorshift: the same names every run */
    size_t nn = 0;
    for (size_t len = 1; len <= 31; len++)
        for (int v = 0; v < CACHE_PER_LEN; v++, nn++) {
            for (size_t k = 0; k < len; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                names[nn][k] = (char)('a' + (x & 1));
            }
            names[nn][len] = 0;
        }
    static uint8_t b[6 + NNAMES * 33];
    for (size_t round = 0; round < 3; round++) {
        /* a tuple of all the names, in a different order each round */
        size_t k = 0, stride = 2 * round + 1; /* 1, 3, 5: coprime with 31 * 256 */
        b[k++] = 131, b[k++] = 105, b[k++] = 0, b[k++] = 0;
        b[k++] = (uint8_t)(NNAMES >> 8), b[k++] = (uint8_t)NNAMES;
        for (size_t i = 0; i < NNAMES; i++) {
            const char *nm = names[(i * stride) % NNAMES];
            b[k++] = 119, b[k++] = (uint8_t)strlen(nm);
            memcpy(b + k, nm, strlen(nm)), k += strlen(nm);
        }
        term_t t = dec(b, k);
        for (size_t i = 0; i < NNAMES; i++) {
            size_t len;
            const char *got = term_atom_name(term_tuple_elem(t, i), &len);
            const char *want = names[(i * stride) % NNAMES];
            assert_int_equal(len, strlen(want));
            assert_memory_equal(got, want, len);
        }
        term_free(t);
        /* each name alone: the atom ends the buffer */
        for (size_t i = 0; i < NNAMES; i++) {
            size_t len = strlen(names[i]);
            uint8_t one[3 + 31] = {131, 119, (uint8_t)len};
            memcpy(one + 3, names[i], len);
            t = dec(one, 3 + len);
            assert_true(term_atom(names[i]) == t);
        }
    }
}

/* SMALL_BIG_EXT of every magnitude length 1..20, both signs, after a version byte and at the
** very start of a buffer (no_version: fewer than 8 bytes precede the digits): values that
** fit 8 bytes equal term_int() of them, longer ones encode back to the same bytes. */
static void test_bigs_all_lengths(void **state)
{
    (void)state;
    for (int nv = 0; nv < 2; nv++)
        for (size_t n = 1; n <= 20; n++)
            for (int neg = 0; neg < 2; neg++) {
                uint8_t b[32];
                size_t k = 0;
                if (!nv) b[k++] = 131;
                b[k++] = 110, b[k++] = (uint8_t)n, b[k++] = (uint8_t)neg;
                uint64_t v = 0;
                for (size_t i = 0; i < n; i++) {
                    b[k + i] = (uint8_t)(i * 37 + 11 + n);
                    if (i < 8) v |= (uint64_t)b[k + i] << (8 * i);
                }
                b[k + n - 1] |= 0x80; /* normalised: the top byte is not 0 */
                if (n <= 8) v |= (uint64_t)0x80 << (8 * (n - 1));
                k += n;
                etf_decode_opts o = {.no_version = nv};
                etf_error e;
                term_t t = etf_decode(b, k, &o, NULL, &e);
                assert_true(t != TERM_NONE);
                if (n < 8 || (n == 8 && v <= (uint64_t)INT64_MAX)) {
                    int64_t want = neg ? -(int64_t)v : (int64_t)v;
                    assert_true(term_equal(t, term_int(want)));
                } else {
                    etf_buf out = {0};
                    assert_int_equal(etf_encode(t, nv ? ETF_ENC_NO_VERSION : 0, &out), 0);
                    assert_int_equal(out.len, k);
                    assert_memory_equal(out.data, b, k);
                    etf_buf_free(&out);
                }
                term_free(t);
            }
}

/* Lists of small integers: STRING_EXT only while every element is 0..255. */
static void test_byte_lists(void **state)
{
    (void)state;
    static const struct {
        int64_t v[3];
        size_t n, len;
        uint8_t bytes[24];
    } cases[] = {
        {{1, 2, 255}, 3, 7, {131, 107, 0, 3, 1, 2, 255}},
        {{1, -1}, 2, 14, {131, 108, 0, 0, 0, 2, 97, 1, 98, 255, 255, 255, 255, 106}},
        {{255, 256}, 2, 14, {131, 108, 0, 0, 0, 2, 97, 255, 98, 0, 0, 1, 0, 106}},
        {{-4, 0}, 2, 14, {131, 108, 0, 0, 0, 2, 98, 255, 255, 255, 252, 97, 0, 106}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        term_t l = TERM_NIL;
        for (size_t j = cases[i].n; j-- > 0;) l = term_cons(term_small(cases[i].v[j]), l);
        etf_buf b = {0};
        assert_int_equal(etf_encode(l, 0, &b), 0);
        assert_int_equal(b.len, cases[i].len);
        assert_memory_equal(b.data, cases[i].bytes, cases[i].len);
        etf_buf_free(&b);
        term_free(l);
    }
}

/* Byte lists around STRING_EXT's 65,535: up to it one STRING_EXT, past it a LIST_EXT of
** SMALL_INTEGER_EXTs, as term_to_binary; the buffer grows while the bytes go out. */
static void test_long_byte_lists(void **state)
{
    (void)state;
    static const size_t lens[] = {100, 65534, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = lens[i];
        term_t l = TERM_NIL;
        for (size_t j = n; j-- > 0;) l = term_cons(term_small((int64_t)('a' + j % 26)), l);
        etf_buf b = {0};
        assert_int_equal(etf_encode(l, 0, &b), 0);
        if (n <= 65535) {
            assert_int_equal(b.len, 4 + n);
            assert_int_equal(b.data[1], 107);
            assert_int_equal((size_t)b.data[2] << 8 | b.data[3], n);
            for (size_t j = 0; j < n; j++) assert_int_equal(b.data[4 + j], 'a' + j % 26);
        } else {
            assert_int_equal(b.len, 6 + 2 * n + 1);
            assert_int_equal(b.data[1], 108);
            for (size_t j = 0; j < n; j++) {
                assert_int_equal(b.data[6 + 2 * j], 97);
                assert_int_equal(b.data[7 + 2 * j], 'a' + j % 26);
            }
            assert_int_equal(b.data[b.len - 1], 106);
        }
        term_t back = etf_decode(b.data, b.len, NULL, NULL, NULL);
        assert_true(back != TERM_NONE);
        assert_int_equal(term_compare(back, l), 0);
        term_free(back);
        etf_buf_free(&b);
        term_free(l);
    }
}

/* Encodes t and checks the bytes against want[0..n); buf is the buffer to encode into. */
static void assert_bytes(term_t t, etf_buf *b, const uint8_t *want, size_t n)
{
    b->len = 0;
    assert_int_equal(etf_encode(t, 0, b), 0);
    assert_int_equal(b->len, n);
    assert_memory_equal(b->data, want, n);
}

/* Every length from 1 to 70 (the decoder builds cells two at a time and the encoder copies
** them four at a time, each with a rest): the cells hold the bytes in order, and the string
** and each of its suffixes encode as their own STRING_EXT, so every cell's run count is
** right. */
static void test_string_lengths(void **state)
{
    (void)state;
    uint8_t in[4 + 70], want[4 + 70];
    etf_buf b = {0};
    for (size_t n = 1; n <= 70; n++) {
        in[0] = 131, in[1] = 107, in[2] = 0, in[3] = (uint8_t)n;
        for (size_t i = 0; i < n; i++) in[4 + i] = (uint8_t)(n * 7 + i * 13);
        term_t t = dec(in, 4 + n), x = t;
        for (size_t k = 0; k < n; k++, x = term_tl(x)) {
            assert_true(term_is_cons(x));
            assert_int_equal(term_small_value(term_hd(x)), in[4 + k]);
            want[0] = 131, want[1] = 107, want[2] = 0, want[3] = (uint8_t)(n - k);
            memcpy(want + 4, in + 4 + k, n - k);
            assert_bytes(x, &b, want, 4 + n - k);
        }
        assert_true(x == TERM_NIL);
        term_free(t);
    }
    etf_buf_free(&b);
}

/* A decoded STRING_EXT is a run of cells the encoder copies at once (box_cons): the run, any
** suffix of it, and lists that reach it through other cells encode as term_to_binary would
** ([$x | "hello"] is a string, [1000 | "hello"] is not), including a run that no longer fits
** STRING_EXT's 65,535 bytes once a cell is put in front, and runs longer than the room left
** in the output buffer. */
static void test_decoded_string_runs(void **state)
{
    (void)state;
    static const uint8_t hello[] = {131, 107, 0, 5, 'h', 'e', 'l', 'l', 'o'};
    static const uint8_t ello[] = {131, 107, 0, 4, 'e', 'l', 'l', 'o'};
    static const uint8_t xhello[] = {131, 107, 0, 6, 'x', 'h', 'e', 'l', 'l', 'o'};
    static const uint8_t big_hello[] = {131, 108, 0,  0,   0,  6,   98, 0,   0,  3,   232,
                                        97,  'h', 97, 'e', 97, 'l', 97, 'l', 97, 'o', 106};
    etf_buf b = {0};
    term_t t = dec(hello, sizeof hello);
    assert_bytes(t, &b, hello, sizeof hello);
    assert_bytes(term_tl(t), &b, ello, sizeof ello);
    term_t x = term_cons(term_small('x'), term_dup(t));
    assert_bytes(x, &b, xhello, sizeof xhello);
    term_free(x);
    x = term_cons(term_small(1000), term_dup(t));
    assert_bytes(x, &b, big_hello, sizeof big_hello);
    term_free(x);
    /* in a tuple, between other elements: {"hello", "hello", 7} */
    static const uint8_t tup[] = {131, 104, 3, 107, 0,   5,   'h', 'e', 'l', 'l', 'o',
                                  107, 0,   5, 'h', 'e', 'l', 'l', 'o', 97,  7};
    term_t tt = dec(tup, sizeof tup);
    assert_bytes(tt, &b, tup, sizeof tup);
    term_free(tt);
    term_free(t);
    etf_buf_free(&b);

    /* 65,535 bytes: one STRING_EXT, into an empty buffer and into one with room for it all */
    size_t n = 65535;
    uint8_t *in = malloc(4 + n), *want = malloc(6 + 2 * (n + 1) + 1);
    assert_non_null(in);
    assert_non_null(want);
    in[0] = 131, in[1] = 107, in[2] = 0xFF, in[3] = 0xFF;
    for (size_t i = 0; i < n; i++) in[4 + i] = (uint8_t)('a' + i % 26);
    t = dec(in, 4 + n);
    etf_buf small = {0}, roomy = {0};
    assert_bytes(t, &small, in, 4 + n);
    assert_int_equal(etf_buf_reserve(&roomy, 2 * n + 64), 0);
    assert_bytes(t, &roomy, in, 4 + n);
    /* one more cell in front: 65,536 bytes are a LIST_EXT of SMALL_INTEGER_EXTs */
    size_t k = 0;
    want[k++] = 131, want[k++] = 108;
    want[k++] = 0, want[k++] = 1, want[k++] = 0, want[k++] = 0;
    want[k++] = 97, want[k++] = '!';
    for (size_t i = 0; i < n; i++) want[k++] = 97, want[k++] = in[4 + i];
    want[k++] = 106;
    x = term_cons(term_small('!'), term_dup(t));
    assert_bytes(x, &small, want, k);
    assert_bytes(x, &roomy, want, k);
    term_free(x);
    term_free(t);
    etf_buf_free(&small);
    etf_buf_free(&roomy);
    free(in);
    free(want);
}

/* MAP_EXT bytes of atom keys (SMALL_ATOM_UTF8_EXT) in the given order, values 0..n-1. */
static size_t atom_key_map(uint8_t *b, const char *const *keys, size_t n)
{
    size_t k = 0;
    b[k++] = 131;
    b[k++] = 116;
    b[k++] = 0, b[k++] = 0, b[k++] = 0, b[k++] = (uint8_t)n;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(keys[i]);
        b[k++] = 119;
        b[k++] = (uint8_t)len;
        memcpy(b + k, keys[i], len);
        k += len;
        b[k++] = 97;
        b[k++] = (uint8_t)i;
    }
    return k;
}

/* Atom keys are ordered by name whatever order they come in, including names that tie in
** their first 8 bytes, prefixes, and keys of other types; duplicates are refused. */
static void test_map_key_order(void **state)
{
    (void)state;
    static const char *const in[] = {"beta", "abcdefghij", "abcdefgh", "alpha", "abcdefghia", "b"};
    static const char *const sorted[] = {"abcdefgh", "abcdefghia", "abcdefghij",
                                         "alpha",    "b",          "beta"};
    static const int value_of[] = {2, 4, 1, 3, 5, 0}; /* position in `in` of sorted[i] */
    uint8_t b[256];
    for (int pass = 0; pass < 2; pass++) {
        size_t n = atom_key_map(b, pass ? sorted : in, 6);
        term_t m = dec(b, n);
        assert_int_equal(term_map_size(m), 6);
        for (size_t i = 0; i < 6; i++) {
            assert_true(term_equal(term_map_key(m, i), term_atom(sorted[i])));
            assert_true(
                term_equal(term_map_value(m, i), term_small(pass ? (int64_t)i : value_of[i])));
        }
        term_free(m);
    }
    /* descending, no two names alike in their first 8 bytes: decided by the fast path */
    static const char *const desc[] = {"beta", "b", "alpha", "abcdefgh"};
    term_t d = dec(b, atom_key_map(b, desc, 4));
    for (size_t i = 0; i < 4; i++)
        assert_true(term_equal(term_map_key(d, i), term_atom(desc[3 - i])));
    term_free(d);
    /* a duplicate that ties with its neighbour beyond 8 bytes */
    static const char *const dup[] = {"abcdefghij", "alpha", "abcdefghij"};
    size_t n = atom_key_map(b, dup, 3);
    etf_error e;
    assert_true(etf_decode(b, n, NULL, NULL, &e) == TERM_NONE);
    assert_int_equal(e.code, TERM_EDUPKEY);
    /* #{a => 0, 1 => 1}: the integer orders first */
    static const uint8_t mixed[] = {131, 116, 0, 0, 0, 2, 119, 1, 'a', 97, 0, 97, 1, 97, 1};
    term_t m = dec(mixed, sizeof mixed);
    assert_true(term_equal(term_map_key(m, 0), term_small(1)));
    assert_true(term_equal(term_map_key(m, 1), term_atom("a")));
    term_free(m);
}

/* Bad input gets a precise error and offset, never a crash. */
static void test_errors(void **state)
{
    (void)state;
    expect_error((const uint8_t[]){130, 97, 1}, 3, TERM_EVERSION, 0);
    expect_error((const uint8_t[]){131}, 1, TERM_ETRUNC, 1);
    expect_error((const uint8_t[]){131, 97}, 2, TERM_ETRUNC, 2);
    expect_error((const uint8_t[]){131, 200}, 2, TERM_ETAG, 1);
    expect_error((const uint8_t[]){131, 97, 1, 0}, 4, TERM_ETRAILING, 3);
    expect_error((const uint8_t[]){131, 104, 2, 97, 1}, 5, TERM_ETRUNC, 5);
    expect_error((const uint8_t[]){131, 104, 1, 200}, 4, TERM_ETAG, 3);
    /* a list claiming 2^32-1 elements in 10 bytes: refused before any allocation */
    expect_error((const uint8_t[]){131, 108, 255, 255, 255, 255, 106, 106, 106, 106}, 10,
                 TERM_ESIZE, 1);
    expect_error((const uint8_t[]){131, 105, 255, 255, 255, 255, 106}, 7, TERM_ESIZE, 1);
    expect_error((const uint8_t[]){131, 116, 0, 0, 0, 2, 97, 1, 97, 2, 97, 1, 97, 3}, 14,
                 TERM_EDUPKEY, 1);
    expect_error((const uint8_t[]){131, 70, 0x7F, 0xF0, 0, 0, 0, 0, 0, 0}, 10, TERM_EFLOAT, 1);
    expect_error((const uint8_t[]){131, 77, 0, 0, 0, 1, 9, 0}, 8, TERM_EBITS, 1);
    expect_error((const uint8_t[]){131, 82, 3}, 3, TERM_ECACHE, 1);
    expect_error((const uint8_t[]){131, 119, 2, 0xC3, 0x28}, 5, TERM_EATOM, 1);
    expect_error((const uint8_t[]){131, 121, 0}, 3, TERM_ENOTSUP, 1);
    /* EXPORT_EXT whose arity is not a small integer */
    expect_error((const uint8_t[]){131, 113, 100, 0, 1, 'm', 100, 0, 1, 'f', 98, 0, 0, 0, 1}, 15,
                 TERM_ETYPE, 10);
    /* 256-character atom */
    uint8_t big[300] = {131, 100, 1, 0};
    memset(big + 4, 'a', 256);
    expect_error(big, 260, TERM_EATOM, 1);
}

/* The atom cache and the new-atom budget (used by distribution). */
/* A short atom in a short input (a bare `ok` as a whole message, {a, 1}) is found in the
** per-thread atom cache like any other: once a decode has met the name, the next decodes of
** it take no slow lookup, however close the name lies to the input's start and end. Every
** name of 1 to 7 bytes, bare and in a pair. */
static void test_short_inputs_hit_atom_cache(void **state)
{
    (void)state;
    static const char *names[] = {"o", "ok", "abc", "stop", "hello", "normal", "timeout"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        size_t n = strlen(names[k]);
        uint8_t bare[3 + 7], pair[5 + 7 + 2];
        bare[0] = 131, bare[1] = 119, bare[2] = (uint8_t)n;
        memcpy(bare + 3, names[k], n);
        pair[0] = 131, pair[1] = 104, pair[2] = 2, pair[3] = 119, pair[4] = (uint8_t)n;
        memcpy(pair + 5, names[k], n);
        pair[5 + n] = 97, pair[6 + n] = 1; /* {Name, 1} */
        term_t a = term_atom(names[k]);
        term_t t = dec(bare, 3 + n); /* the first may take the slow path and fills the cache */
        assert_true(t == a);
        size_t before = term__atom_slow_calls;
        for (int i = 0; i < 3; i++) {
            t = dec(bare, 3 + n);
            assert_true(t == a);
            t = dec(pair, 7 + n);
            assert_true(term_tuple_elem(t, 0) == a);
            assert_int_equal(term_small_value(term_tuple_elem(t, 1)), 1);
            term_free(t);
        }
        assert_int_equal(term__atom_slow_calls, before);
    }
}

static void test_atom_cache_and_budget(void **state)
{
    (void)state;
    static etf_atom_cache cache;
    cache.atoms[3] = term_atom("cached");
    etf_decode_opts o = {.cache = &cache};
    term_t t = etf_decode((const uint8_t[]){131, 82, 3}, 3, &o, NULL, NULL);
    assert_true(t == term_atom("cached"));
    etf_decode_opts b = {.max_new_atoms = 1};
    const uint8_t two[] = {131, 104, 2, 100, 0, 2, 'q', '1', 100, 0, 2, 'q', '2'};
    etf_error e;
    assert_true(etf_decode(two, sizeof two, &b, NULL, &e) == TERM_NONE);
    assert_int_equal(e.code, TERM_EATOMLIMIT);
    assert_int_equal(e.offset, 8);
    b.max_new_atoms = 0;
    t = etf_decode(two, sizeof two, &b, NULL, NULL);
    assert_int_equal(term_tuple_arity(t), 2);
    term_free(t);
}

/* A million-deep nest decodes, encodes, compares and frees without C recursion. */
/* Leaves of 1 KB in a tuple, as map values and as list heads, encoded after a prefix into a
** buffer that starts small: the output grows in the middle of each run, and the bytes are
** the ones term_to_binary gives (built here by hand: BINARY_EXT, MAP_EXT, LIST_EXT). */
static void test_leaves_grow_buffer(void **state)
{
    (void)state;
    enum { N = 40, SZ = 1024 };
    static uint8_t data[N][SZ];
    term_t el[N], el2[N], el3[N], keys[N]; /* the builders consume their elements */
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < SZ; j++) data[i][j] = (uint8_t)(i * 31 + j);
        el[i] = term_binary(data[i], SZ);
        el2[i] = term_dup(el[i]);
        el3[i] = term_dup(el[i]);
        keys[i] = term_int((int64_t)i);
    }
    term_t tup = term_tuple(N, el), lst = term_list(N, el2), map = term_map(N, keys, el3);
    for (int kind = 0; kind < 3; kind++) {
        etf_buf b = {0};
        assert_int_equal(etf_buf_reserve(&b, 3), 0);
        memcpy(b.data, "pre", 3); /* the encoding is appended after what is there */
        b.len = 3;
        size_t cap0 = b.cap;
        term_t t = kind == 0 ? tup : kind == 1 ? lst : map;
        assert_int_equal(etf_encode(t, 0, &b), 0);
        assert_true(b.cap > cap0);
        /* expected: 131, the header, then per element (key 97 i for the map) 109 len32 bytes */
        size_t n = 3, want = 3 + 1 + (kind == 0 ? 2 : 5) + N * (5 + SZ) + (kind == 1) +
                             (kind == 2 ? N * 2 : 0);
        assert_int_equal(b.len, want);
        assert_memory_equal(b.data, "pre", 3);
        assert_int_equal(b.data[n++], 131);
        if (kind == 0) {
            assert_int_equal(b.data[n++], 104);
            assert_int_equal(b.data[n++], N);
        } else {
            assert_int_equal(b.data[n], kind == 1 ? 108 : 116);
            const uint8_t cnt[4] = {0, 0, 0, N};
            assert_memory_equal(b.data + n + 1, cnt, 4);
            n += 5;
        }
        for (size_t i = 0; i < N; i++) {
            if (kind == 2) {
                assert_int_equal(b.data[n++], 97);
                assert_int_equal(b.data[n++], i);
            }
            const uint8_t hdr[5] = {109, 0, 0, SZ >> 8, SZ & 255};
            assert_memory_equal(b.data + n, hdr, 5);
            assert_memory_equal(b.data + n + 5, data[i], SZ);
            n += 5 + SZ;
        }
        if (kind == 1) assert_int_equal(b.data[n++], 106);
        assert_int_equal(n, b.len);
        assert_int_equal(etf_encoded_size(t, 0), (long long)(want - 3));
        etf_buf_free(&b);
    }
    term_free(tup);
    term_free(lst);
    term_free(map);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    size_t depth = 1000000;
    uint8_t *b = malloc(1 + depth * 5 + 1);
    b[0] = 131;
    /* each level is LIST_EXT with one element (the next level) and a NIL tail */
    size_t pos = 1;
    for (size_t i = 0; i < depth; i++) {
        b[pos++] = 108;
        b[pos++] = 0, b[pos++] = 0, b[pos++] = 0, b[pos++] = 1;
    }
    b[pos++] = 106; /* innermost [] */
    /* tails: one NIL per level after the innermost */
    b = realloc(b, pos + depth);
    memset(b + pos, 106, depth);
    pos += depth;
    term_t t = dec(b, pos);
    term_t u = dec(b, pos);
    assert_true(term_equal(t, u));
    assert_int_equal(term_hash(t), term_hash(u));
    etf_buf out = {0};
    assert_int_equal(etf_encode(t, 0, &out), 0);
    assert_int_equal(out.len, pos);
    assert_memory_equal(out.data, b, pos);
    etf_buf_free(&out);
    term_free(u);
    /* a C-built deep nest frees iteratively too */
    term_t acc = TERM_NIL;
    for (size_t i = 0; i < depth; i++) acc = term_tuplev(1, acc);
    assert_false(term_equal(acc, t));
    term_free(acc);
    term_free(t);
    free(b);
}

/* Compressed output decodes to the same term; bombs and lies are refused. */
static void test_compression(void **state)
{
    (void)state;
    term_t t = term_string(NULL, 0);
    char s[4000];
    memset(s, 'z', sizeof s);
    t = term_binary(s, sizeof s);
    etf_buf b = {0};
    assert_int_equal(etf_encode(t, ETF_ENC_COMPRESSED, &b), 0);
    assert_int_equal(b.data[1], 80);
    assert_true(b.len < 200);
    term_t u = dec(b.data, b.len);
    assert_true(term_equal(t, u));
    term_free(u);
    /* small terms stay uncompressed, as term_to_binary does */
    etf_buf c = {0};
    assert_int_equal(etf_encode(TERM_ATOM_OK, ETF_ENC_COMPRESSED, &c), 0);
    assert_int_equal(c.data[1], 100);
    etf_buf_free(&c);
    /* declared size larger than the data can inflate to */
    uint8_t lie[64];
    memcpy(lie, b.data, 6);
    lie[2] = 0x7F; /* ~2 GB */
    etf_error e;
    assert_true(etf_decode(lie, 6, NULL, NULL, &e) == TERM_NONE);
    assert_int_equal(e.code, TERM_ESIZE);
    /* declared size wrong by one */
    uint8_t *w = malloc(b.len);
    memcpy(w, b.data, b.len);
    w[5] += 1;
    assert_true(etf_decode(w, b.len, NULL, NULL, &e) == TERM_NONE);
    assert_int_equal(e.code, TERM_EZLIB);
    /* a real bomb: 50 MB of zeros in a few KB, refused by the bound */
    size_t big = 50u << 20;
    uint8_t *zeros = calloc(1, big);
    zeros[0] = 109;
    zeros[1] = (uint8_t)((big - 5) >> 24), zeros[2] = (uint8_t)((big - 5) >> 16);
    zeros[3] = (uint8_t)((big - 5) >> 8), zeros[4] = (uint8_t)(big - 5);
    uLongf cl = compressBound(big);
    uint8_t *bomb = malloc(6 + cl);
    bomb[0] = 131, bomb[1] = 80;
    bomb[2] = (uint8_t)(big >> 24), bomb[3] = (uint8_t)(big >> 16);
    bomb[4] = (uint8_t)(big >> 8), bomb[5] = (uint8_t)big;
    compress2(bomb + 6, &cl, zeros, big, 9);
    etf_decode_opts lim = {.max_uncompressed = 1 << 20};
    assert_true(etf_decode(bomb, 6 + cl, &lim, NULL, &e) == TERM_NONE);
    assert_int_equal(e.code, TERM_ESIZE);
    /* with a large enough bound it is a legitimate 50 MB binary */
    lim.max_uncompressed = 64u << 20;
    u = etf_decode(bomb, 6 + cl, &lim, NULL, &e);
    assert_int_equal(term_binary_size(u), big - 5);
    term_free(u);
    free(zeros);
    free(bomb);
    free(w);
    etf_buf_free(&b);
    term_free(t);
}

/* Decoding a prefix with `used`, and payloads without the version byte. */
static void test_used_and_no_version(void **state)
{
    (void)state;
    const uint8_t two[] = {131, 97, 1, 97, 2};
    size_t used;
    term_t t = etf_decode(two, sizeof two, NULL, &used, NULL);
    assert_true(t == term_int(1));
    assert_int_equal(used, 3);
    etf_decode_opts o = {.no_version = true};
    t = etf_decode(two + 3, 2, &o, &used, NULL);
    assert_true(t == term_int(2));
    assert_int_equal(used, 2);
    etf_buf b = {0};
    assert_int_equal(etf_encode(term_atom("x"), ETF_ENC_NO_VERSION | ETF_ENC_UTF8_ATOMS, &b), 0);
    assert_int_equal(b.len, 3);
    assert_int_equal(b.data[0], 119);
    etf_buf_free(&b);
}

/* Inputs of one length whose terms need blocks of different sizes: the decoder builds in a
** block of the class the last input of that length needed, so each case here meets a
** prediction that holds, one too small (moving to the stack arena, or to the heap past it)
** and one too large (copied into a block of its own class). Each term must encode back to
** its input. */
static void roundtrip(const uint8_t *in, size_t len)
{
    term_t t = etf_decode(in, len, NULL, NULL, NULL);
    assert_true(t != TERM_NONE);
    etf_buf b = {0};
    assert_int_equal(etf_encode(t, 0, &b), 0);
    assert_int_equal(b.len, len);
    assert_memory_equal(b.data, in, len);
    etf_buf_free(&b);
    term_free(t);
}

/*
** Every erl vector in a list after a binary of pad bytes, [<<Pad>>, V, #{a => V, b => V}]: as
** the pad
** grows past the stack arena and beyond, the arena moves (the predicted block to the stack
** arena or the heap, the stack arena to the heap, the heap arena doubling, the final copy) at
** every point of V's boxes, and each move relocates the boxes built so far. Before each, a
** lone binary of the same length is decoded, so that the list starts in that binary's
** predicted block and outgrows it. Each decode must re-encode to its input.
*/
static term_t decode_interned(const uint8_t *in, size_t len, etf_error *e)
{
    return etf_decode(in, len, NULL, NULL, e);
}

static void test_arena_moves(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVEC; i++)
        moves_check(vectors[i].name, vectors[i].bytes, vectors[i].len, decode_interned);
}

/* ---------------------------------------------------------------- containers of mixed elements */

/* Input bytes built by hand, so that the decoder is checked against no other code of ours. */
typedef struct bb {
    uint8_t b[16384];
    size_t n;
} bb;

static void bb_put(bb *x, const void *p, size_t n)
{
    assert_true(x->n + n <= sizeof x->b);
    memcpy(x->b + x->n, p, n);
    x->n += n;
}
static void bb_u8(bb *x, uint8_t v)
{
    bb_put(x, &v, 1);
}
static void bb_u32(bb *x, uint32_t v)
{
    uint8_t w[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    bb_put(x, w, 4);
}
static void bb_atom(bb *x, const char *a)
{
    bb_u8(x, 119);
    bb_u8(x, (uint8_t)strlen(a));
    bb_put(x, a, strlen(a));
}
static void bb_tuple(bb *x, uint32_t n)
{
    if (n < 256) {
        bb_u8(x, 104);
        bb_u8(x, (uint8_t)n);
    } else {
        bb_u8(x, 105);
        bb_u32(x, n);
    }
}
static void bb_float(bb *x, double d)
{
    uint64_t v;
    memcpy(&v, &d, 8);
    bb_u8(x, 70);
    bb_u32(x, (uint32_t)(v >> 32));
    bb_u32(x, (uint32_t)v);
}
/* <<0, 1, ..., n - 1>> (mod 256) */
static void bb_bin(bb *x, uint32_t n)
{
    bb_u8(x, 109);
    bb_u32(x, n);
    for (uint32_t i = 0; i < n; i++) bb_u8(x, (uint8_t)i);
}
/* 1 bsl 64 + v, a SMALL_BIG_EXT of 9 bytes */
static void bb_big(bb *x, uint8_t v)
{
    const uint8_t b[] = {110, 9, 0, v, 0, 0, 0, 0, 0, 0, 0, 1};
    bb_put(x, b, sizeof b);
}
/* <'n@h':7.ID.3> */
static void bb_pid(bb *x, uint32_t id)
{
    bb_u8(x, 88);
    bb_atom(x, "n@h");
    bb_u32(x, id);
    bb_u32(x, 3);
    bb_u32(x, 7);
}

/* x (with its version byte) decodes to the term the text t denotes, and back to x. */
static void check_decodes_to(const bb *x, const char *t)
{
    term_parse_error pe;
    term_t want = term_parse(t, strlen(t), NULL, &pe);
    if (want == TERM_NONE) fail_msg("bad expected term at %zu: %s", pe.offset, pe.what);
    term_t got = dec(x->b, x->n);
    if (!term_equal(got, want)) {
        char *g = term_to_string(got, TERM_PRINT_W);
        fail_msg("decoded %s, expected %s", g, t);
    }
    etf_buf out = {0};
    assert_int_equal(etf_encode(got, ETF_ENC_UTF8_ATOMS, &out), 0);
    assert_int_equal(out.len, x->n);
    assert_memory_equal(out.data, x->b, x->n);
    etf_buf_free(&out);
    term_free(got);
    term_free(want);
}

/* Boxed scalars among the leaves of a tuple (floats, binaries, bignums, pids), at its start,
** middle and end, one after the other, and runs of them cut by containers at several depths. */
static void test_tuple_scalars_and_containers(void **state)
{
    (void)state;
    bb x = {.b = {131}, .n = 1};
    /* {point, 1.5, -2.25, 3.0e10, ok} */
    bb_tuple(&x, 5), bb_atom(&x, "point"), bb_float(&x, 1.5), bb_float(&x, -2.25);
    bb_float(&x, 3.0e10), bb_atom(&x, "ok");
    check_decodes_to(&x, "{point, 1.5, -2.25, 3.0e10, ok}");
    /* scalars first and last, a leaf between them */
    x.n = 1;
    bb_tuple(&x, 4), bb_bin(&x, 3), bb_big(&x, 5), bb_u8(&x, 97), bb_u8(&x, 9);
    bb_pid(&x, 42);
    check_decodes_to(&x, "{<<0,1,2>>, 18446744073709551621, 9, <'n@h':7.42.3>}");
    /* {a, 0.5, {b, 1.5, {c, 2.5, <<0>>}, 3.5, [4.5, d | 5.5]}, 6.5, <<>>, e}: runs cut by
    ** tuples and a list at three depths, each going on after the container ends */
    x.n = 1;
    bb_tuple(&x, 6), bb_atom(&x, "a"), bb_float(&x, 0.5);
    bb_tuple(&x, 5), bb_atom(&x, "b"), bb_float(&x, 1.5);
    bb_tuple(&x, 3), bb_atom(&x, "c"), bb_float(&x, 2.5), bb_bin(&x, 1);
    bb_float(&x, 3.5);
    bb_u8(&x, 108), bb_u32(&x, 2), bb_float(&x, 4.5), bb_atom(&x, "d"), bb_float(&x, 5.5);
    bb_float(&x, 6.5), bb_bin(&x, 0), bb_atom(&x, "e");
    check_decodes_to(&x, "{a, 0.5, {b, 1.5, {c, 2.5, <<0>>}, 3.5, [4.5, d | 5.5]}, 6.5, <<>>, e}");
    /* a map and a list cutting a run, scalars on both sides */
    x.n = 1;
    bb_tuple(&x, 5), bb_float(&x, 1.0);
    bb_u8(&x, 116), bb_u32(&x, 1), bb_atom(&x, "k"), bb_float(&x, 2.0);
    bb_pid(&x, 1);
    bb_u8(&x, 108), bb_u32(&x, 1), bb_pid(&x, 2), bb_u8(&x, 106);
    bb_big(&x, 0);
    check_decodes_to(&x,
                     "{1.0, #{k => 2.0}, <'n@h':7.1.3>, [<'n@h':7.2.3>], 18446744073709551616}");
    /* tuples nested 200 deep, each {F, Inner, F}: every level's run resumes after the next */
    x.n = 1;
    char *want = malloc(200 * 16 + 8), *w = want;
    for (int i = 0; i < 200; i++) {
        bb_tuple(&x, 3), bb_float(&x, i + 0.5);
        w += sprintf(w, "{%d.5, ", i);
    }
    bb_u8(&x, 106), w += sprintf(w, "[]");
    for (int i = 199; i >= 0; i--) {
        bb_float(&x, i + 0.25);
        w += sprintf(w, ", %d.25}", i);
    }
    check_decodes_to(&x, want);
    free(want);
}

/* SMALL_BIG_EXT of 1 to 16 bytes, both signs, is read in place; the same magnitude with a
** zero top byte (not what erts writes, but valid) goes the general way. Both must give the
** same integer, the fitting ones small (2^61 - 1 and -2^61 are, 2^61 and -2^61 - 1 are not),
** and re-encode as the normalised input; 300 of them in a list outgrow the stack arena. */
static void test_small_big_forms(void **state)
{
    (void)state;
    uint8_t in[8 + 17], pad[8 + 18];
    etf_buf b = {0};
    uint32_t seed = 12345;
    for (size_t n = 1; n <= 16; n++)
        for (int neg = 0; neg <= 1; neg++)
            for (int r = 0; r < 6; r++) {
                /* bare (the magnitude 3 bytes into the term: too close to the start for one
                ** backward load when n < 5) or as {Big} (5 bytes in) */
                bool tup = r & 1;
                size_t h = tup ? 3 : 1, len = h + 3 + n; /* h: where the 110 tag is */
                in[0] = 131, in[1] = 104, in[2] = 1;
                in[h] = 110, in[h + 1] = (uint8_t)n, in[h + 2] = (uint8_t)neg;
                uint8_t *m = in + h + 3;
                for (size_t i = 0; i < n; i++)
                    m[i] = (uint8_t)((seed = seed * 1103515245 + 12345) >> 16);
                if (m[n - 1] == 0) m[n - 1] = 1;
                if (n == 8 && r >= 4) { /* 2^61 - 1, 2^61 */
                    memset(m, r == 4 ? 0xFF : 0, 7);
                    m[7] = r == 4 ? 0x1F : 0x20;
                }
                memcpy(pad, in, len);
                pad[h + 1] = (uint8_t)(n + 1);
                pad[len] = 0; /* a zero top byte: the general way */
                /* from exact-size copies: a load before the input's start is a heap
                ** overflow under ASan */
                uint8_t *ci = malloc(len), *cp = malloc(len + 1);
                assert_non_null(ci);
                assert_non_null(cp);
                memcpy(ci, in, len);
                memcpy(cp, pad, len + 1);
                term_t t = dec(ci, len), u = dec(cp, len + 1);
                free(ci);
                free(cp);
                assert_int_equal(term_compare_exact(t, u), 0);
                term_t x = tup ? term_tuple_elem(t, 0) : t;
                bool fits = n < 8 || (n == 8 && (m[7] < 0x20 || (neg && r == 5)));
                assert_int_equal(term_is_small(x), fits);
                if (n == 8 && r == 4)
                    assert_true(term_small_value(x) == (neg ? -TERM_SMALL_MAX : TERM_SMALL_MAX));
                if (n == 8 && r == 5 && neg) assert_true(term_small_value(x) == TERM_SMALL_MIN);
                if (!fits) assert_bytes(t, &b, in, len);
                term_free(t);
                term_free(u);
            }
    /* [Big, ...] of 300 two-limb magnitudes: 300 boxes of 32 bytes, past the stack arena */
    size_t cnt = 300, len = 1 + 5 + cnt * 19 + 1;
    uint8_t *lst = malloc(len), *q = lst;
    assert_non_null(lst);
    *q++ = 131, *q++ = 108, *q++ = 0, *q++ = 0, *q++ = (uint8_t)(cnt >> 8), *q++ = (uint8_t)cnt;
    for (size_t i = 0; i < cnt; i++) {
        *q++ = 110, *q++ = 16, *q++ = (uint8_t)(i & 1);
        for (size_t j = 0; j < 16; j++) *q++ = j == 15 ? (uint8_t)(0x80 | i) : (uint8_t)(i + j);
    }
    *q++ = 106;
    assert_int_equal((size_t)(q - lst), len);
    term_t t = dec(lst, len);
    assert_bytes(t, &b, lst, len);
    term_free(t);
    free(lst);
    etf_buf_free(&b);
}

/* A tuple whose scalars outgrow the 2 KB stack arena in the middle of the tuple: the slots
** still to fill move with the arena. */
static void test_tuple_arena_growth(void **state)
{
    (void)state;
    bb x = {.b = {131}, .n = 1};
    enum { N = 300 }; /* 300 floats of 24 bytes: 7.2 KB of boxes */
    char *want = malloc(N * 32 + 32), *w = want;
    bb_tuple(&x, N + 2), bb_atom(&x, "t"), w += sprintf(w, "{t");
    for (int i = 0; i < N; i++) {
        if (i % 50 == 7) {
            bb_bin(&x, 40), w += sprintf(w, ", <<");
            for (int k = 0; k < 40; k++) w += sprintf(w, k ? ",%d" : "%d", k);
            w += sprintf(w, ">>");
        } else {
            bb_float(&x, i * 0.5 + 0.25), w += sprintf(w, ", %.2f", i * 0.5 + 0.25);
        }
    }
    bb_tuple(&x, 2), bb_float(&x, 1.75), bb_atom(&x, "z"), w += sprintf(w, ", {1.75, z}}");
    assert_true(x.n > 2048);
    check_decodes_to(&x, want); /* twice: the second decode builds in a predicted block */
    check_decodes_to(&x, want);
    free(want);
}

/* Truncated in the middle of a tuple, at every byte; and counts no input can hold. */
static void test_tuple_truncated_and_hostile(void **state)
{
    (void)state;
    bb x = {.b = {131}, .n = 1};
    bb_tuple(&x, 6), bb_atom(&x, "a"), bb_float(&x, 0.5), bb_bin(&x, 3);
    bb_tuple(&x, 2), bb_float(&x, 1.5), bb_pid(&x, 9);
    bb_big(&x, 1), bb_float(&x, 2.5);
    for (size_t n = 1; n < x.n; n++) expect_error(x.b, n, TERM_ETRUNC, n);
    check_decodes_to(&x, "{a, 0.5, <<0,1,2>>, {1.5, <'n@h':7.9.3>}, 18446744073709551617, 2.5}");
    /* a float's 9 bytes then an arity larger than the bytes left, at depth 2 */
    x.n = 1;
    bb_tuple(&x, 3), bb_float(&x, 0.5), bb_tuple(&x, 200), bb_float(&x, 1.5);
    bb_float(&x, 2.5);
    expect_error(x.b, x.n, TERM_ETRUNC, x.n);
    /* arities that only the bytes after their parent's can refuse: {F, {F, ...}, F, F} */
    x.n = 1;
    bb_tuple(&x, 4), bb_float(&x, 0.5), bb_tuple(&x, 3), bb_float(&x, 1.5);
    expect_error(x.b, x.n, TERM_ETRUNC, x.n);
    x.n = 1;
    bb_tuple(&x, 3), bb_float(&x, 0.5), bb_u8(&x, 105), bb_u32(&x, 0xFFFFFFFF);
    bb_float(&x, 1.5);
    expect_error(x.b, x.n, TERM_ESIZE, 12);
    /* a bad float and an unknown tag in the middle of a run */
    x.n = 1;
    bb_tuple(&x, 3), bb_float(&x, 0.5), bb_u8(&x, 70), bb_u32(&x, 0x7FF00000), bb_u32(&x, 0);
    bb_u8(&x, 106);
    expect_error(x.b, x.n, TERM_EFLOAT, 12);
    x.n = 1;
    bb_tuple(&x, 3), bb_float(&x, 0.5), bb_u8(&x, 200), bb_u8(&x, 106);
    expect_error(x.b, x.n, TERM_ETAG, 12);
}

static void test_size_prediction(void **state)
{
    (void)state;
    enum { L = 80 };
    uint8_t bin[L] = {131, 109, 0, 0, 0, L - 6}, nils[L] = {131, 108, 0, 0, 0, L - 7};
    uint8_t str[L] = {131, 107, 0, L - 4}, tup[L] = {131, 104};
    uint8_t half[L] = {131, 108, 0, 0, 0, 30};
    for (size_t i = 6; i < L; i++) bin[i] = (uint8_t)i, nils[i] = 106;
    for (size_t i = 4; i < L; i++) str[i] = (uint8_t)('a' + i % 26);
    /* tup: 36 small integers and one INTEGER_EXT */
    tup[2] = 37;
    for (size_t i = 3; i < 75; i += 2) tup[i] = 97, tup[i + 1] = (uint8_t)i;
    tup[75] = 98, tup[78] = 1, tup[79] = 7; /* 263: stays INTEGER_EXT */
    /* half: 30 cells of [] whose tail is a tuple of 21 small integers */
    for (size_t i = 6; i < 36; i++) half[i] = 106;
    half[36] = 104, half[37] = 21;
    for (size_t i = 38; i < L; i += 2) half[i] = 97, half[i + 1] = (uint8_t)i;
    const uint8_t *seq[] = {bin, bin, bin, nils, bin, bin, str, str, tup, bin, half, half, tup};
    for (size_t k = 0; k < sizeof seq / sizeof seq[0]; k++) roundtrip(seq[k], L);
}

/* Maps decoded into a predicted block (the second decode of a length on): their keys are
** still sorted, and a duplicate key is still refused (the block given back: ASan's leak check). */
static void test_size_prediction_maps(void **state)
{
    (void)state;
    /* #{b => 1, a => 2} with its keys out of order, and #{a => 1, a => 2} */
    const uint8_t unsorted[] = {131, 116, 0, 0, 0, 2, 119, 1, 'b', 97, 1, 119, 1, 'a', 97, 2};
    const uint8_t sorted[] = {131, 116, 0, 0, 0, 2, 119, 1, 'a', 97, 2, 119, 1, 'b', 97, 1};
    const uint8_t dup[] = {131, 116, 0, 0, 0, 2, 119, 1, 'a', 97, 1, 119, 1, 'a', 97, 2};
    for (int round = 0; round < 3; round++) {
        term_t t = etf_decode(unsorted, sizeof unsorted, NULL, NULL, NULL);
        assert_true(t != TERM_NONE);
        etf_buf b = {0};
        assert_int_equal(etf_encode(t, ETF_ENC_UTF8_ATOMS, &b), 0);
        assert_int_equal(b.len, sizeof sorted);
        assert_memory_equal(b.data, sorted, sizeof sorted);
        etf_buf_free(&b);
        term_free(t);
        etf_error e;
        assert_true(etf_decode(dup, sizeof dup, NULL, NULL, &e) == TERM_NONE);
        assert_int_equal(e.code, TERM_EDUPKEY);
        assert_int_equal(e.offset, 1);
    }
}

/* The storage behind a binary (an adopted buffer's BOX_RAW), its reference count. */
static uint32_t storage_rc(term_t bin)
{
    term_t o = ((const box_bin *)term__box(bin))->owner;
    return atomic_load(&term__box(o)->rc);
}

/* Encodes t (consumed) into a buffer from term_alloc_raw(), adopted as a binary. */
static term_t encode_adopted(term_t t, unsigned flags, const uint8_t **bytes, size_t *len)
{
    etf_buf b = {0};
    assert_int_equal(etf_encode(t, flags, &b), 0);
    term_free(t);
    uint8_t *raw = term_alloc_raw(b.len);
    memcpy(raw, b.data, b.len);
    *bytes = raw;
    *len = b.len;
    etf_buf_free(&b);
    return term_binary_adopt(raw, *len);
}

static bool points_into(term_t bin, const uint8_t *buf, size_t len)
{
    const uint8_t *d = term_binary_data(bin);
    return d >= buf && d < buf + len;
}

/* etf_decode_opts.share: a binary of more than 64 bytes and more than a quarter of the input
** points into the input's storage, which the decoded term keeps alive; anything else is
** copied as before. */
static void test_shared_binaries(void **state)
{
    (void)state;
    uint8_t big[1000], mid[200], small[64];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7);
    memset(mid, 0xAB, sizeof mid);
    memset(small, 0x5A, sizeof small);
    const uint8_t *raw;
    size_t len;
    term_t sh =
        encode_adopted(term_tuplev(4, term_atom("data"), term_binary(big, sizeof big),
                                   term_binary(mid, sizeof mid), term_binary(small, sizeof small)),
                       0, &raw, &len);
    assert_int_equal(storage_rc(sh), 1);
    etf_decode_opts o = {0};
    o.share = sh;
    term_t t = etf_decode(raw, len, &o, NULL, NULL);
    assert_true(t != TERM_NONE);
    term_t b1 = term_tuple_elem(t, 1), b2 = term_tuple_elem(t, 2), b3 = term_tuple_elem(t, 3);
    assert_true(points_into(b1, raw, len));  /* 1000 bytes of ~1300: shared */
    assert_false(points_into(b2, raw, len)); /* 200: not more than a quarter */
    assert_false(points_into(b3, raw, len)); /* 64: not more than 64 */
    assert_int_equal(storage_rc(sh), 2);     /* the block's one reference */
    /* a sub-binary of the shared one holds the storage too */
    term_t sub = term_sub_binary(b1, 8, 80);
    assert_int_equal(storage_rc(sh), 3);
    term_free(sh); /* the input's own reference goes: its bytes stay while the term lives */
    assert_int_equal(storage_rc(b1), 2);
    assert_int_equal(term_binary_size(b1), sizeof big);
    assert_memory_equal(term_binary_data(b1), big, sizeof big);
    assert_memory_equal(term_binary_data(b2), mid, sizeof mid);
    assert_memory_equal(term_binary_data(b3), small, sizeof small);
    assert_encodes_to(t, &(vec){"shared", raw, len}); /* the same bytes out as in */
    term_free(t);
    assert_int_equal(atomic_load(&term__box(((const box_bin *)term__box(sub))->owner)->rc), 1);
    assert_memory_equal(term_binary_data(sub), big + 1, 10);
    term_free(sub); /* the last reference: ASan's leak check sees the storage freed */

    /* input outside the shared storage (a copy of its bytes), or inflated from tag 80: copied */
    sh =
        encode_adopted(term_tuplev(2, term_atom("z"), term_binary(mid, sizeof mid)), 0, &raw, &len);
    uint8_t *copy = malloc(len);
    memcpy(copy, raw, len);
    o.share = sh;
    t = etf_decode(copy, len, &o, NULL, NULL);
    assert_true(t != TERM_NONE);
    assert_false(points_into(term_tuple_elem(t, 1), copy, len));
    assert_int_equal(storage_rc(sh), 1);
    term_free(t);
    free(copy);
    term_free(sh);
    uint8_t zeros[4000] = {0};
    sh = encode_adopted(term_binary(zeros, sizeof zeros), ETF_ENC_COMPRESSED, &raw, &len);
    assert_int_equal(raw[1], 80);
    o.share = sh;
    t = etf_decode(raw, len, &o, NULL, NULL);
    assert_true(t != TERM_NONE);
    assert_int_equal(term_binary_size(t), sizeof zeros);
    assert_int_equal(storage_rc(sh), 1);
    term_free(t);
    term_free(sh);

    /* the arena moves after the shared binary was built (a long list behind it), and the
    ** block also holds a foreign atom: both references are the block's */
    term_t cells[600];
    for (size_t i = 0; i < 600; i++) cells[i] = term_int((int64_t)(i % 200));
    sh = encode_adopted(term_tuplev(3, term_binary(big, sizeof big), term_list(600, cells),
                                    term_atom("share_fq_only_here")),
                        0, &raw, &len);
    /* the atom was interned by term_atom() above: make the decode see it as new */
    etf_decode_stats st;
    o = (etf_decode_opts){.share = sh, .foreign_atoms = true, .stats = &st};
    t = term__etf_decode_all_foreign(raw, len, &o, NULL);
    assert_true(t != TERM_NONE);
    assert_int_equal(st.foreign, 1);
    assert_true(points_into(term_tuple_elem(t, 0), raw, len));
    assert_memory_equal(term_binary_data(term_tuple_elem(t, 0)), big, sizeof big);
    assert_int_equal(term_list_length(term_tuple_elem(t, 1)), 600);
    assert_false(term_atom_is_interned(term_tuple_elem(t, 2)));
    assert_int_equal(storage_rc(sh), 2);
    term_free(sh);
    assert_encodes_to(t, &(vec){"shared, relocated", raw, len});
    term_free(t);
}

/* Every allocation failure is survived: fail the Nth allocation for every N. */
static size_t alloc_count, alloc_fail_at;
static void *failing_alloc(void *ud, void *p, size_t old, size_t n)
{
    (void)ud;
    (void)old;
    if (n == 0) {
        free(p);
        return NULL;
    }
    if (++alloc_count == alloc_fail_at) return NULL;
    return realloc(p, n);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    const vec *v = find("nested");
    const vec *m = find("map");
    for (size_t k = 1; k < 200; k++) {
        alloc_count = 0;
        alloc_fail_at = k;
        term_set_allocator(failing_alloc, NULL);
        term_t t = etf_decode(v->bytes, v->len, NULL, NULL, NULL);
        term_t u = etf_decode(m->bytes, m->len, NULL, NULL, NULL);
        etf_buf b = {0};
        if (t != TERM_NONE) etf_encode(t, ETF_ENC_COMPRESSED, &b);
        term_t ks[2] = {term_int(1), term_atom("k")};
        term_t vs[2] = {term_binary("x", 1), term_tuplev(2, term_int(1), term_float(2.0))};
        term_t mm = term_map(2, ks, vs);
        mm = term_map_put(mm, term_int(9), term_int(9));
        etf_buf_free(&b);
        term_free(t);
        term_free(u);
        term_free(mm);
        term_set_allocator(NULL, NULL);
    }
}

/* Tracks the largest single allocation while it is installed. */
static size_t biggest;
static void *tracking_alloc(void *ud, void *p, size_t old, size_t n)
{
    (void)ud;
    (void)old;
    if (n == 0) {
        free(p);
        return NULL;
    }
    if (n > biggest) biggest = n;
    return realloc(p, n);
}

/* max_heap: a term that would need more memory is refused before it is allocated, and a
** compressed input explodes no further; no_compressed refuses tag 80 altogether. */
static void test_heap_limit(void **state)
{
    (void)state;
    /* a list of 20000 strings of 60000 characters: 1.2 GB of cons cells from 1.2 MB */
    size_t nstr = 20000, slen = 60000, len = 1 + 5 + nstr * (3 + slen) + 1;
    uint8_t *b = malloc(len), *p = b;
    *p++ = 131;
    *p++ = 108; /* LIST_EXT */
    *p++ = (uint8_t)(nstr >> 24), *p++ = (uint8_t)(nstr >> 16);
    *p++ = (uint8_t)(nstr >> 8), *p++ = (uint8_t)nstr;
    for (size_t i = 0; i < nstr; i++) {
        *p++ = 107; /* STRING_EXT */
        *p++ = (uint8_t)(slen >> 8), *p++ = (uint8_t)slen;
        memset(p, 'a', slen);
        p += slen;
    }
    *p++ = 106;
    assert_int_equal((size_t)(p - b), len);
    etf_decode_opts o = {.max_heap = 16u << 20};
    etf_error e;
    biggest = 0;
    term_set_allocator(tracking_alloc, NULL);
    assert_true(etf_decode(b, len, &o, NULL, &e) == TERM_NONE);
    term_set_allocator(NULL, NULL);
    assert_int_equal(e.code, GIRDER_EHEAP);
    assert_true(biggest <= (16u << 20));
    /* the same cap lets a term that fits through */
    term_t small =
        etf_decode(b, 1 + 5 + 2 * (3 + slen),
                   &(etf_decode_opts){.allow_trailing = true, .max_heap = 16u << 20}, NULL, &e);
    assert_true(small == TERM_NONE); /* the list is cut: truncated, not a heap error */
    assert_int_equal(e.code, TERM_ETRUNC);
    /* compressed: 64 MB of one string inflated then refused by the heap cap */
    etf_buf c = {0};
    term_t str = term_string("b", 1);
    term_t l = TERM_NIL;
    for (int i = 0; i < 100; i++) l = term_cons(term_dup(str), l);
    assert_int_equal(etf_encode(l, ETF_ENC_COMPRESSED, &c), 0);
    assert_int_equal(c.data[1], 80);
    o.max_heap = 1024;
    assert_true(etf_decode(c.data, c.len, &o, NULL, &e) == TERM_NONE);
    assert_int_equal(e.code, GIRDER_EHEAP);
    o.max_heap = 0;
    o.no_compressed = true;
    assert_true(etf_decode(c.data, c.len, &o, NULL, &e) == TERM_NONE);
    assert_int_equal(e.code, GIRDER_ECOMPRESSED);
    o.no_compressed = false;
    term_t back = etf_decode(c.data, c.len, &o, NULL, &e);
    assert_true(term_equal(back, l));
    term_free(back);
    term_free(l);
    term_free(str);
    etf_buf_free(&c);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_erlang_vectors),
        cmocka_unit_test(test_constructed_terms),
        cmocka_unit_test(test_old_forms),
        cmocka_unit_test(test_funs),
        cmocka_unit_test(test_atom_cache_names),
        cmocka_unit_test(test_bigs_all_lengths),
        cmocka_unit_test(test_byte_lists),
        cmocka_unit_test(test_long_byte_lists),
        cmocka_unit_test(test_decoded_string_runs),
        cmocka_unit_test(test_string_lengths),
        cmocka_unit_test(test_map_key_order),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_atom_cache_and_budget),
        cmocka_unit_test(test_short_inputs_hit_atom_cache),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_leaves_grow_buffer),
        cmocka_unit_test(test_compression),
        cmocka_unit_test(test_used_and_no_version),
        cmocka_unit_test(test_size_prediction),
        cmocka_unit_test(test_arena_moves),
        cmocka_unit_test(test_size_prediction_maps),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_heap_limit),
        cmocka_unit_test(test_shared_binaries),
        cmocka_unit_test(test_tuple_scalars_and_containers),
        cmocka_unit_test(test_tuple_arena_growth),
        cmocka_unit_test(test_small_big_forms),
        cmocka_unit_test(test_tuple_truncated_and_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
