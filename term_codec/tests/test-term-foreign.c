/* Unit tests for foreign atoms: the same atom as an interned one in every way but identity. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include <girder/term.h>
#include "../src/term_int.h"
#include "arena_moves.h"

/* ---------------------------------------------------------------- helpers */

typedef struct vec {
    const char *name;
    const uint8_t *bytes;
    size_t len;
} vec;

static const vec vectors[] = {
#include "etf_vectors.h"
};

/* A foreign atom named s (a reference). */
static term_t fa(const char *s)
{
    int err = 0;
    term_t a = term_atom_foreign_new(s, strlen(s), &err);
    if (a == TERM_NONE) fail_msg("term_atom_foreign_new(%s): %s", s, term_err_name(err));
    return a;
}

static uint32_t rc_of(term_t t)
{
    return atomic_load(&term__box(t)->rc);
}

static void assert_same_bytes(term_t a, term_t b, unsigned flags)
{
    etf_buf x = {0}, y = {0};
    assert_int_equal(etf_encode(a, flags, &x), 0);
    assert_int_equal(etf_encode(b, flags, &y), 0);
    if (x.len != y.len || memcmp(x.data, y.data, x.len) != 0)
        fail_msg("encodings differ (flags %u): %zu vs %zu bytes", flags, x.len, y.len);
    assert_int_equal(etf_encoded_size(a, flags), etf_encoded_size(b, flags));
    etf_buf_free(&x);
    etf_buf_free(&y);
}

static void assert_same_text(term_t a, term_t b, unsigned flags, const term_text_ctx *ctx)
{
    etf_buf x = {0}, y = {0};
    assert_int_equal(term_print(a, flags, ctx, &x), 0);
    assert_int_equal(term_print(b, flags, ctx, &y), 0);
    if (x.len != y.len || memcmp(x.data, y.data, x.len) != 0)
        fail_msg("texts differ: %s vs %s", (char *)x.data, (char *)y.data);
    etf_buf_free(&x);
    etf_buf_free(&y);
}

/* a and b are the same term seen every way: =:=, ==, order, hash, bytes, text. */
static void assert_same_term(term_t a, term_t b)
{
    assert_true(term_equal(a, b));
    assert_true(term_equal_arith(a, b));
    assert_int_equal(term_compare(a, b), 0);
    assert_int_equal(term_compare(b, a), 0);
    assert_int_equal(term_compare_exact(a, b), 0);
    assert_true(term_hash(a) == term_hash(b));
    static const unsigned enc[] = {0, ETF_ENC_UTF8_ATOMS, ETF_ENC_COMPRESSED,
                                   ETF_ENC_NO_VERSION | ETF_ENC_UTF8_ATOMS};
    for (size_t i = 0; i < sizeof enc / sizeof enc[0]; i++) assert_same_bytes(a, b, enc[i]);
    static const unsigned pr[] = {TERM_PRINT_W, TERM_PRINT_P, TERM_PRINT_EXPLICIT};
    for (size_t i = 0; i < sizeof pr / sizeof pr[0]; i++) assert_same_text(a, b, pr[i], NULL);
}

/* A tiny ETF writer for inputs whose atoms must not be interned before the decode. */
typedef struct wr {
    uint8_t b[4096];
    size_t n;
} wr;
static void w1(wr *w, unsigned v)
{
    w->b[w->n++] = (uint8_t)v;
}
static void w2(wr *w, unsigned v)
{
    w1(w, v >> 8), w1(w, v & 0xff);
}
static void w4(wr *w, uint32_t v)
{
    w2(w, v >> 16), w2(w, v & 0xffff);
}
static void wbytes(wr *w, const void *p, size_t n)
{
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void watom(wr *w, const char *s) /* SMALL_ATOM_UTF8_EXT */
{
    w1(w, 119), w1(w, (unsigned)strlen(s)), wbytes(w, s, strlen(s));
}
static void watom_latin1(wr *w, const char *s) /* ATOM_EXT with the bytes as given */
{
    w1(w, 100), w2(w, (unsigned)strlen(s)), wbytes(w, s, strlen(s));
}

static term_t dec(const wr *w, const etf_decode_opts *o, etf_error *e)
{
    return etf_decode(w->b, w->n, o, NULL, e);
}

/* ---------------------------------------------------------------- the atom itself */

static void test_basics(void **state)
{
    (void)state;
    term_t f = fa("fq_basic");
    assert_true(term_is_atom(f));
    assert_true(term_is_boxed(f));
    assert_false(term_atom_is_interned(f));
    assert_int_equal(term_typeof(f), TERM_T_ATOM);
    assert_true(term_atom_index(f) == TERM_ATOM_NO_INDEX);
    size_t len;
    assert_string_equal(term_atom_name(f, &len), "fq_basic");
    assert_int_equal(len, 8);
    assert_true(term_memory(f) >= 8);
    /* not interned by being made, and not found by the table */
    assert_true(term_atom_existing("fq_basic", 8) == TERM_NONE);
    size_t before = term_atom_count();
    term_t g = fa("fq_basic");
    assert_true(g != f); /* two foreign atoms of one name: equal, not identical */
    assert_same_term(f, g);
    assert_int_equal(term_atom_count(), before);
    /* canonical: itself (a new reference) while the name is not interned */
    term_t c = term_atom_canonical(f);
    assert_true(c == f);
    assert_int_equal(rc_of(f), 2);
    term_free(c);
    assert_int_equal(rc_of(f), 1);
    /* interned afterwards: the same atom as the foreign ones, and now canonical */
    term_t i = term_atom("fq_basic");
    assert_true(term_atom_is_interned(i));
    assert_same_term(f, i);
    assert_true(term_atom_canonical(f) == i);
    assert_true(term_atom_canonical(i) == i);
    assert_true(term_atom_canonical(term_int(1)) == TERM_NONE);
    assert_true(term_atom_name(term_int(1), NULL) == NULL);
    /* invalid names are refused as by term_atom_n */
    int err = 0;
    assert_true(term_atom_foreign_new("\xff", 1, &err) == TERM_NONE);
    assert_int_equal(err, TERM_EUTF8);
    char big[256];
    memset(big, 'x', sizeof big);
    assert_true(term_atom_foreign_new(big, 256, &err) == TERM_NONE);
    assert_int_equal(err, TERM_EATOM);
    term_free(f);
    term_free(g);
}

/* Erlang's order among atoms is by name; class order around them holds for foreign ones. */
static int cmp_terms(const void *a, const void *b)
{
    return term_compare(*(const term_t *)a, *(const term_t *)b);
}

static void test_order_and_sorting(void **state)
{
    (void)state;
    const char *names[] = {
        "fq_m", "fq_a", "fq_z",    "fq_ab", "fq_", "fq_\xc3\xa9", "fq_\xe2\x82\xac",
        "fq_b", "",     "fq_a\x01"};
    size_t n = sizeof names / sizeof names[0];
    term_t v[20];
    for (size_t i = 0; i < n; i++) {
        /* every other one foreign, the rest interned */
        v[i] = i % 2 ? fa(names[i]) : term_atom(names[i]);
        v[n + i] = i % 2 ? term_atom(names[i]) : fa(names[i]);
    }
    qsort(v, 2 * n, sizeof v[0], cmp_terms);
    for (size_t i = 1; i < 2 * n; i++) {
        size_t la, lb;
        const char *a = term_atom_name(v[i - 1], &la), *b = term_atom_name(v[i], &lb);
        int c = memcmp(a, b, la < lb ? la : lb);
        assert_true(c < 0 || (c == 0 && la <= lb)); /* byte order is code point order */
        if (c == 0 && la == lb) assert_int_equal(term_compare(v[i - 1], v[i]), 0);
    }
    term_t f = fa("fq_m");
    assert_true(term_compare(term_int(5), f) < 0); /* number < atom */
    /* [] (tag 110) is no atom (tag 010), whichever representation the atom has: atom < nil */
    for (size_t i = 0; i < 2 * n; i++) {
        assert_true(term_compare(v[i], TERM_NIL) < 0);
        assert_true(term_compare(TERM_NIL, v[i]) > 0);
        assert_true(term_compare_exact(TERM_NIL, v[i]) > 0);
        assert_false(term_equal(TERM_NIL, v[i]));
    }
    term_t r = term_ref(f, 1, 1, (uint32_t[]){1});
    assert_true(term_compare(f, r) < 0); /* atom < reference */
    term_t t = term_tuplev(1, term_dup(f));
    assert_true(term_compare(f, t) < 0);
    term_t lf = term_list(2, (term_t[]){term_dup(f), term_atom("fq_z")});
    term_t li = term_list(2, (term_t[]){term_atom("fq_m"), fa("fq_z")});
    assert_same_term(lf, li);
    for (size_t i = 0; i < 2 * n; i++) term_free(v[i]);
    term_free(f);
    term_free(r);
    term_free(t);
    term_free(lf);
    term_free(li);
}

/* Text and ETF bytes of foreign atoms are those of the interned atom, in every encoding. */
static void test_print_and_encode(void **state)
{
    (void)state;
    char long_utf8[255 * 3 + 1], long_latin1[255 * 2 + 1];
    for (int i = 0; i < 255; i++) memcpy(long_utf8 + 3 * i, "\xe2\x82\xac", 3);
    long_utf8[255 * 3] = 0;
    for (int i = 0; i < 255; i++) memcpy(long_latin1 + 2 * i, "\xc3\xa9", 2);
    long_latin1[255 * 2] = 0;
    const char *names[] = {"fq_plain",
                           "Fq_quoted",
                           "fq with space",
                           "fq\\'esc\n",
                           "fq_h\xc3\xa9llo", /* Latin-1: ATOM_EXT with one byte for é */
                           "fq_\xe2\x98\xba", /* beyond Latin-1: UTF-8 encodings */
                           "fq_a_name_longer_than_thirty_two_bytes_for_sure",
                           "",
                           "and",
                           long_utf8,
                           long_latin1};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        term_t f = fa(names[k]), i = term_atom(names[k]);
        assert_true(i != TERM_NONE);
        assert_same_term(f, i);
        term_free(f);
    }
    /* atoms inside every kind of term that holds one */
    const char *nm = "fq_node@host";
    term_t fnode = fa(nm), inode = term_atom(nm);
    term_t mk[2];
    for (int side = 0; side < 2; side++) {
        term_t a = side ? inode : fnode;
        term_t mod = side ? term_atom("fq_mod") : fa("fq_mod");
        term_t fun = side ? term_atom("fq_fun") : fa("fq_fun");
        term_t pid = term_pid(a, 5, 6, 7);
        term_fun_info fi = {.module = mod,
                            .arity = 2,
                            .index = 3,
                            .old_index = term_int(4),
                            .old_uniq = term_int(5),
                            .pid = pid,
                            .nfree = 1,
                            .free = (term_t[]){a}};
        memset(fi.uniq, 0xab, 16);
        term_t lfun = term_local_fun(&fi);
        fi.old_form = true; /* FUN_EXT carries no index, uniq or arity */
        fi.index = fi.arity = 0;
        memset(fi.uniq, 0, 16);
        term_t ofun = term_local_fun(&fi);
        term_t e[] = {term_dup(pid),
                      term_port(a, 9, 7),
                      term_port(a, (uint64_t)1 << 40, 7),
                      term_ref(a, 7, 3, (uint32_t[]){1, 2, 3}),
                      term_export_fun(mod, fun, 3),
                      lfun,
                      ofun,
                      term_dup(a),
                      term_map(1, (term_t[]){term_dup(a)}, (term_t[]){term_dup(fun)})};
        mk[side] = term_tuple(sizeof e / sizeof e[0], e);
        assert_true(mk[side] != TERM_NONE);
        term_free(pid);
        term_free(mod);
        term_free(fun);
    }
    assert_same_term(mk[0], mk[1]);
    /* the context node prints as 0 whichever representation the pid's node has */
    term_text_ctx ctx = {.node = inode, .creation = 7};
    assert_same_text(mk[0], mk[1], TERM_PRINT_W, &ctx);
    term_t pid = term_pid(fnode, 5, 6, 7);
    char *txt = NULL;
    etf_buf b = {0};
    assert_int_equal(term_print(pid, 0, &ctx, &b), 0);
    txt = (char *)b.data;
    assert_string_equal(txt, "<0.5.6>");
    etf_buf_free(&b);
    term_text_ctx fctx = {.node = fnode, .creation = 7}; /* and the other way round */
    term_t ipid = term_pid(inode, 5, 6, 7);
    assert_int_equal(term_print(ipid, 0, &fctx, &b), 0);
    assert_string_equal((char *)b.data, "<0.5.6>");
    etf_buf_free(&b);
    term_free(ipid);
    /* the text reads back as the interned atom */
    assert_int_equal(term_print(fnode, 0, NULL, &b), 0);
    assert_string_equal((char *)b.data, "fq_node@host");
    term_parse_error pe;
    assert_true(term_parse((char *)b.data, b.len, NULL, &pe) == inode);
    etf_buf_free(&b);
    /* decoding the bytes of a foreign-atom term gives the interned atoms back */
    assert_int_equal(etf_encode(mk[0], 0, &b), 0);
    term_t back = etf_decode(b.data, b.len, NULL, NULL, NULL);
    assert_true(term_atom_is_interned(term_tuple_elem(back, 7)));
    assert_same_term(back, mk[0]);
    etf_buf_free(&b);
    term_free(back);
    term_free(pid);
    term_free(mk[0]);
    term_free(mk[1]);
    term_free(fnode);
}

/* Every vector made by real Erlang has a foreign twin (all its atoms foreign) that is the same
** term, prints the same and encodes to Erlang's very bytes. */
static void test_erlang_vectors_twin(void **state)
{
    (void)state;
    size_t foreign = 0;
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
        const vec *v = &vectors[i];
        etf_decode_stats st;
        etf_decode_opts o = {.stats = &st};
        etf_error e;
        term_t f = term__etf_decode_all_foreign(v->bytes, v->len, &o, &e);
        if (f == TERM_NONE) fail_msg("%s: %s at %zu", v->name, term_err_name(e.code), e.offset);
        foreign += st.foreign;
        term_t t = etf_decode(v->bytes, v->len, NULL, NULL, NULL);
        assert_same_term(f, t);
        etf_buf b = {0};
        assert_int_equal(etf_encode(f, 0, &b), 0);
        if (b.len != v->len || memcmp(b.data, v->bytes, v->len) != 0)
            fail_msg("%s: the twin's bytes differ from Erlang's", v->name);
        etf_buf_free(&b);
        term_free(f);
        term_free(t);
    }
    assert_true(foreign >= 40); /* 48 with today's vectors */
}

/* The foreign twins of test-etf's test_arena_moves inputs: every atom is a box outside the
** arena that the block lists in its last words, so the moves must leave those words alone and
** the final copy must not walk the list as boxes. */
static term_t decode_foreign(const uint8_t *in, size_t len, etf_error *e)
{
    return term__etf_decode_all_foreign(in, len, NULL, e);
}

static void test_twins_in_moving_arenas(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++)
        moves_check(vectors[i].name, vectors[i].bytes, vectors[i].len, decode_foreign);
}

/* Map keys: a foreign key and the interned key of the same name are the same key. */
static void test_maps(void **state)
{
    (void)state;
    term_t f = fa("fq_key_b");
    term_t m = term_map(3, (term_t[]){term_atom("fq_key_c"), term_dup(f), term_atom("fq_key_a")},
                        (term_t[]){term_int(3), term_int(2), term_int(1)});
    assert_int_equal(term_map_size(m), 3);
    assert_true(term_map_key(m, 0) == term_atom("fq_key_a"));
    assert_true(term_map_key(m, 1) == f); /* sorted by name among interned ones */
    assert_true(term_map_key(m, 2) == term_atom("fq_key_c"));
    term_t ikey = term_atom("fq_key_b");
    assert_true(term_map_get(m, ikey) == term_int(2));
    term_t fkey = fa("fq_key_c");
    assert_true(term_map_get(m, fkey) == term_int(3));
    /* put with the other representation replaces, not adds */
    m = term_map_put(m, term_dup(fkey), term_int(30));
    assert_int_equal(term_map_size(m), 3);
    assert_true(term_map_get(m, term_atom("fq_key_c")) == term_int(30));
    m = term_map_put(m, ikey, term_int(20));
    assert_int_equal(term_map_size(m), 3);
    assert_true(term_map_get(m, f) == term_int(20));
    m = term_map_remove(m, fkey);
    assert_int_equal(term_map_size(m), 2);
    /* building from both representations keeps one key: the later value wins */
    term_t d = term_map(2, (term_t[]){term_dup(f), term_atom("fq_key_b")},
                        (term_t[]){term_int(1), term_int(2)});
    assert_int_equal(term_map_size(d), 1);
    assert_true(term_map_get(d, f) == term_int(2));
    /* equal maps whichever representation their keys have */
    term_t m1 = term_map(1, (term_t[]){term_dup(f)}, (term_t[]){term_int(7)});
    term_t m2 = term_map(1, (term_t[]){term_atom("fq_key_b")}, (term_t[]){term_int(7)});
    assert_same_term(m1, m2);
    term_free(m1);
    term_free(m2);
    term_free(d);
    term_free(m);
    term_free(fkey);
    term_free(f);
}

/* A pattern's atom literals match foreign atoms; bindings of foreign atoms compare by name. */
static void test_patterns(void **state)
{
    (void)state;
    const char *src = "{fq_hello, X, #{fq_key := V}, [fq_tail | _], {X, X}}";
    term_parse_error pe;
    term_pattern *p = term_pattern_compile(src, strlen(src), NULL, &pe);
    assert_non_null(p);
    term_t fx = fa("fq_x");
    term_t t = term_tuplev(5, fa("fq_hello"), term_dup(fx),
                           term_map(1, (term_t[]){fa("fq_key")}, (term_t[]){fa("fq_v")}),
                           term_list(1, (term_t[]){fa("fq_tail")}),
                           term_tuplev(2, term_atom("fq_x"), fa("fq_x")));
    term_t vars[2] = {TERM_NONE, TERM_NONE};
    assert_true(term_match(p, t, vars));
    assert_true(vars[term_pattern_var(p, "X")] == fx);
    assert_string_equal(term_atom_name(vars[term_pattern_var(p, "V")], NULL), "fq_v");
    /* pre-bound to the interned atom: still the same atom */
    vars[0] = term_atom("fq_x"), vars[1] = TERM_NONE;
    assert_true(term_match(p, t, vars));
    term_t u = term_tuplev(5, fa("fq_hello"), fa("fq_y"), term_map(0, NULL, NULL), TERM_NIL,
                           term_tuplev(0));
    vars[0] = vars[1] = TERM_NONE;
    assert_false(term_match(p, u, vars));
    assert_true(vars[0] == TERM_NONE);
    term_free(u);
    term_free(t);
    term_free(fx);
    term_pattern_free(p);
}

/* References: containers hold one on each foreign atom they carry, and drop it when freed. */
static void test_refcounts(void **state)
{
    (void)state;
    term_t f = fa("fq_rc");
    assert_int_equal(rc_of(f), 1);
    term_t pid = term_pid(f, 1, 2, 3), port = term_port(f, 1, 3);
    term_t ref = term_ref(f, 3, 1, (uint32_t[]){1}), ex = term_export_fun(f, f, 1);
    assert_int_equal(rc_of(f), 6); /* node/module/function: borrowed, held by dup */
    term_fun_info fi = {.module = f,
                        .old_index = term_int(0),
                        .old_uniq = term_int(0),
                        .pid = pid,
                        .nfree = 1,
                        .free = &f};
    term_t lf = term_local_fun(&fi);
    assert_int_equal(rc_of(f), 8);
    term_t tup = term_tuplev(2, term_dup(f), pid); /* consumes: pid moves into it */
    assert_int_equal(rc_of(f), 9);
    term_free(tup);
    term_free(port);
    term_free(ref);
    term_free(ex);
    assert_int_equal(rc_of(f), 4); /* the pid's node, the fun's module and free variable, ours */
    term_free(lf);
    assert_int_equal(rc_of(f), 1);
    term_t c = term_atom_canonical(f); /* a reference too */
    assert_int_equal(rc_of(f), 2);
    term_free(c);
    term_free(f); /* the last: ASan reports a leak if it survived, a use-after-free if not */
}

/* ---------------------------------------------------------------- the decoder */

/* Interned up to the budget, foreign beyond, one foreign atom per distinct name. */
static void test_decode_budget(void **state)
{
    (void)state;
    wr w = {.n = 0};
    w1(&w, 131), w1(&w, 104), w1(&w, 8);
    watom(&w, "fq_d1"), watom(&w, "fq_d2"), watom(&w, "fq_d3"), watom(&w, "fq_d1");
    watom(&w, "fq_d4"), watom(&w, "fq_d3"), watom(&w, "true");
    w1(&w, 88), watom(&w, "fq_d4"), w4(&w, 1), w4(&w, 2), w4(&w, 3); /* NEW_PID_EXT */
    size_t before = term_atom_count(), ext = term_atom_external_count();
    etf_decode_stats st = {99, 99};
    /* the old behaviour stays: past the budget, EATOMLIMIT */
    etf_decode_opts o = {.max_new_atoms = 2, .stats = &st};
    etf_error e;
    assert_true(dec(&w, &o, &e) == TERM_NONE);
    assert_int_equal(e.code, TERM_EATOMLIMIT);
    assert_int_equal(e.offset, 17); /* the third name */
    assert_int_equal(st.interned, 2);
    assert_int_equal(st.foreign, 0);
    assert_int_equal(term_atom_count(), before + 2);
    assert_int_equal(term_atom_external_count(), ext + 2);
    /* with foreign atoms: fq_d1 and fq_d2 are interned now, two more new names are foreign */
    o.foreign_atoms = true;
    o.max_new_atoms = 0;
    term_t t = dec(&w, &o, &e);
    assert_true(t != TERM_NONE);
    assert_int_equal(st.interned, 0);
    assert_int_equal(st.foreign, 2);
    assert_int_equal(term_atom_count(), before + 2);
    assert_true(term_atom_is_interned(term_tuple_elem(t, 0)));
    assert_true(term_atom_is_interned(term_tuple_elem(t, 1)));
    assert_true(term_tuple_elem(t, 0) == term_tuple_elem(t, 3));
    term_t d3 = term_tuple_elem(t, 2), d4 = term_tuple_elem(t, 4);
    assert_false(term_atom_is_interned(d3));
    assert_false(term_atom_is_interned(d4));
    assert_true(term_tuple_elem(t, 5) == d3); /* shared within the decode */
    assert_true(term_tuple_elem(t, 6) == TERM_ATOM_TRUE);
    term_pid_info pi;
    assert_int_equal(term_pid_get(term_tuple_elem(t, 7), &pi), 0);
    assert_true(pi.node == d4);
    assert_true(term_atom_existing("fq_d3", 5) == TERM_NONE);
    /* it re-encodes to the very bytes it came from */
    etf_buf b = {0};
    assert_int_equal(etf_encode(t, ETF_ENC_UTF8_ATOMS, &b), 0);
    assert_int_equal(b.len, w.n);
    assert_memory_equal(b.data, w.b, w.n);
    etf_buf_free(&b);
    /* a sub-term kept alive: the atom has its own count, the block holds one reference */
    term_t keep = term_dup(d3);
    assert_int_equal(rc_of(d3), 2);
    term_free(t);
    assert_int_equal(rc_of(keep), 1);
    assert_string_equal(term_atom_name(keep, NULL), "fq_d3");
    /* interned after: the same atom */
    term_t i3 = term_atom("fq_d3");
    assert_same_term(keep, i3);
    term_free(keep);
    /* now fq_d3 decodes interned; a budget of 1 interns fq_d4 too */
    o.max_new_atoms = 1;
    t = dec(&w, &o, &e);
    assert_int_equal(st.interned, 1);
    assert_int_equal(st.foreign, 0);
    assert_true(term_tuple_elem(t, 2) == i3);
    assert_true(term_atom_is_interned(term_tuple_elem(t, 4)));
    term_free(t);
}

/* Every place an atom can sit in ETF yields the one foreign atom of its name. */
static void test_decode_everywhere(void **state)
{
    (void)state;
    wr w = {.n = 0};
    const char *nm = "fq_every@where";
    w1(&w, 131), w1(&w, 108), w4(&w, 7); /* a list of 7 and a tail */
    watom(&w, nm);
    w1(&w, 88), watom(&w, nm), w4(&w, 1), w4(&w, 2), w4(&w, 3);            /* NEW_PID_EXT */
    w1(&w, 89), watom(&w, nm), w4(&w, 1), w4(&w, 2);                       /* NEW_PORT_EXT */
    w1(&w, 90), w2(&w, 2), watom(&w, nm), w4(&w, 5), w4(&w, 6), w4(&w, 7); /* ref */
    w1(&w, 113), watom(&w, nm), watom(&w, nm), w1(&w, 97), w1(&w, 2);      /* EXPORT_EXT */
    w1(&w, 116), w4(&w, 1), watom(&w, nm), watom(&w, "fq_val");            /* MAP_EXT */
    w1(&w, 120), watom(&w, nm), w4(&w, 1), w4(&w, 0), w4(&w, 1);           /* V4_PORT_EXT */
    watom(&w, nm);                                                         /* the tail */
    etf_decode_stats st;
    etf_decode_opts o = {.foreign_atoms = true, .stats = &st};
    etf_error e;
    term_t t = dec(&w, &o, &e);
    if (t == TERM_NONE) fail_msg("%s at %zu", term_err_name(e.code), e.offset);
    assert_int_equal(st.foreign, 2);
    term_t a = term_hd(t);
    assert_false(term_atom_is_interned(a));
    assert_int_equal(rc_of(a), 1); /* the block's one reference */
    for (term_t x = t; term_is_cons(x); x = term_tl(x)) {
        term_t h = term_hd(x);
        term_pid_info pi;
        term_ref_info ri;
        term_port_info po;
        term_fun_info fi;
        if (term_pid_get(h, &pi) == 0) assert_true(pi.node == a);
        if (term_ref_get(h, &ri) == 0) assert_true(ri.node == a);
        if (term_port_get(h, &po) == 0) assert_true(po.node == a);
        if (term_fun_get(h, &fi) == 0) assert_true(fi.module == a && fi.function == a);
        if (term_is_map(h)) assert_true(term_map_key(h, 0) == a);
    }
    term_t tail = t;
    for (int i = 0; i < 7; i++) tail = term_tl(tail);
    assert_true(tail == a);
    etf_buf b = {0};
    assert_int_equal(etf_encode(t, ETF_ENC_UTF8_ATOMS, &b), 0);
    assert_int_equal(b.len, w.n);
    assert_memory_equal(b.data, w.b, w.n);
    etf_buf_free(&b);
    term_free(t);
    /* a term that is just a foreign atom */
    wr one = {.n = 0};
    w1(&one, 131), watom(&one, "fq_alone");
    t = dec(&one, &o, &e);
    assert_false(term_atom_is_interned(t));
    assert_int_equal(rc_of(t), 1);
    assert_string_equal(term_atom_name(t, NULL), "fq_alone");
    term_free(t);
    /* compressed: the inflated term decodes under the same options */
    term_t big = term_tuplev(3, fa("fq_zipped"), fa("fq_zipped"), term_binary(NULL, 0));
    term_t pad = term_string("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 61);
    term_t z = term_tuplev(2, big, pad);
    assert_int_equal(etf_encode(z, ETF_ENC_COMPRESSED, &b), 0);
    assert_int_equal(b.data[1], 80);
    t = etf_decode(b.data, b.len, &o, NULL, &e);
    assert_int_equal(st.foreign, 1);
    term_t inner = term_tuple_elem(t, 0);
    assert_true(term_tuple_elem(inner, 0) == term_tuple_elem(inner, 1));
    assert_false(term_atom_is_interned(term_tuple_elem(inner, 0)));
    assert_same_term(t, z);
    etf_buf_free(&b);
    term_free(t);
    term_free(z);
}

/* Latin-1 (ATOM_EXT) and UTF-8 spellings of one name are one atom; bad names stay errors. */
static void test_decode_latin1_utf8(void **state)
{
    (void)state;
    wr w = {.n = 0};
    w1(&w, 131), w1(&w, 104), w1(&w, 4);
    watom_latin1(&w, "fq_\xe9t\xe9");                              /* é as one Latin-1 byte */
    watom(&w, "fq_\xc3\xa9t\xc3\xa9");                             /* é in UTF-8 */
    w1(&w, 115), w1(&w, 6), wbytes(&w, "fq_\xe9t\xe9", 6);         /* SMALL_ATOM_EXT */
    w1(&w, 118), w2(&w, 8), wbytes(&w, "fq_\xc3\xa9t\xc3\xa9", 8); /* ATOM_UTF8_EXT */
    etf_decode_stats st;
    etf_decode_opts o = {.foreign_atoms = true, .stats = &st};
    term_t t = dec(&w, &o, NULL);
    assert_true(t != TERM_NONE);
    assert_int_equal(st.foreign, 1);
    term_t a = term_tuple_elem(t, 0);
    for (int i = 1; i < 4; i++) assert_true(term_tuple_elem(t, (size_t)i) == a);
    assert_string_equal(term_atom_name(a, NULL), "fq_\xc3\xa9t\xc3\xa9");
    /* all Latin-1: term_to_binary's ATOM_EXT with single bytes, as for the interned atom */
    etf_buf b = {0};
    assert_int_equal(etf_encode(a, 0, &b), 0);
    assert_int_equal(b.len, 1 + 3 + 6);
    assert_int_equal(b.data[1], 100);
    assert_memory_equal(b.data + 4, "fq_\xe9t\xe9", 6);
    etf_buf_free(&b);
    term_free(t);
    /* invalid UTF-8 and over-long names are refused as before, foreign or not */
    wr bad = {.n = 0};
    w1(&bad, 131), w1(&bad, 119), w1(&bad, 2), w1(&bad, 0xc3), w1(&bad, 0x28);
    etf_error e;
    assert_true(dec(&bad, &o, &e) == TERM_NONE);
    assert_int_equal(e.code, TERM_EATOM);
    assert_int_equal(st.foreign, 0);
}

/* Foreign atoms from the atom cache: shared with the same name written out, counted. */
static void test_decode_cache(void **state)
{
    (void)state;
    static etf_atom_cache cache;
    cache.atoms[5] = fa("fq_cached");
    wr w = {.n = 0};
    w1(&w, 131), w1(&w, 104), w1(&w, 3);
    watom(&w, "fq_cached"), w1(&w, 82), w1(&w, 5), w1(&w, 82), w1(&w, 5);
    etf_decode_stats st;
    etf_decode_opts o = {.cache = &cache, .foreign_atoms = true, .stats = &st};
    term_t t = dec(&w, &o, NULL);
    assert_true(t != TERM_NONE);
    assert_int_equal(st.foreign, 1); /* the written-out one; the cached one was not made here */
    term_t a = term_tuple_elem(t, 0);
    assert_true(term_tuple_elem(t, 1) == a && term_tuple_elem(t, 2) == a);
    assert_true(a != cache.atoms[5]); /* the first one met is this decode's */
    assert_same_term(a, cache.atoms[5]);
    term_free(t);
    /* cache first: the decode takes a reference on the cache's atom */
    w.n = 0;
    w1(&w, 131), w1(&w, 104), w1(&w, 2);
    w1(&w, 82), w1(&w, 5), watom(&w, "fq_cached");
    t = dec(&w, &o, NULL);
    assert_int_equal(st.foreign, 0);
    assert_true(term_tuple_elem(t, 0) == cache.atoms[5]);
    assert_true(term_tuple_elem(t, 1) == cache.atoms[5]);
    assert_int_equal(rc_of(cache.atoms[5]), 2);
    term_t keep = term_dup(t);
    term_free(t);
    assert_int_equal(rc_of(cache.atoms[5]), 2);
    term_free(keep);
    assert_int_equal(rc_of(cache.atoms[5]), 1);
    /* without foreign_atoms, a foreign cache entry still decodes (the cache is the caller's) */
    o.foreign_atoms = false;
    t = dec(&w, &o, NULL);
    assert_true(term_tuple_elem(t, 0) == cache.atoms[5]);
    term_free(t);
    term_free(cache.atoms[5]);
    cache.atoms[5] = TERM_NONE;
}

/* A decode that fails after making foreign atoms drops them (ASan: no leak). */
static void test_decode_errors_release(void **state)
{
    (void)state;
    wr w = {.n = 0};
    w1(&w, 131), w1(&w, 116), w4(&w, 2); /* a map with a duplicate key, decided at the end */
    watom(&w, "fq_dup"), watom(&w, "fq_v1"), watom(&w, "fq_dup"), watom(&w, "fq_v2");
    etf_decode_stats st;
    etf_decode_opts o = {.foreign_atoms = true, .stats = &st};
    etf_error e;
    assert_true(dec(&w, &o, &e) == TERM_NONE);
    assert_int_equal(e.code, TERM_EDUPKEY);
    assert_int_equal(st.foreign, 3);
    w.n -= 3; /* truncated in the last name */
    assert_true(dec(&w, &o, &e) == TERM_NONE);
    assert_int_equal(e.code, TERM_ETRUNC);
    assert_true(term_atom_existing("fq_dup", 6) == TERM_NONE);
}

/* The node-wide external quota and a full table: foreign beyond them, local atoms unhindered. */
static void test_external_quota(void **state)
{
    (void)state;
    wr w = {.n = 0};
    w1(&w, 131), w1(&w, 104), w1(&w, 5);
    watom(&w, "fq_q1"), watom(&w, "fq_q2"), watom(&w, "fq_q3"), watom(&w, "fq_q4");
    watom(&w, "fq_q5");
    assert_true(term_atom_external_quota() == SIZE_MAX);
    size_t ext = term_atom_external_count();
    term_atom_set_external_quota(ext + 3);
    assert_true(term_atom_external_quota() == ext + 3);
    etf_decode_stats st;
    etf_decode_opts o = {.stats = &st}; /* no per-decode budget: only the quota */
    etf_error e;
    assert_true(dec(&w, &o, &e) == TERM_NONE);
    assert_int_equal(e.code, TERM_EATOMLIMIT);
    assert_int_equal(st.interned, 3);
    assert_int_equal(term_atom_external_count(), ext + 3);
    o.foreign_atoms = true;
    o.max_new_atoms = SIZE_MAX;
    term_t t = dec(&w, &o, &e);
    assert_true(t != TERM_NONE);
    assert_int_equal(st.interned, 0);
    assert_int_equal(st.foreign, 2);
    assert_false(term_atom_is_interned(term_tuple_elem(t, 4)));
    /* local code still interns past the quota, and that does not count against it */
    term_t local = term_atom("fq_q5");
    assert_true(local != TERM_NONE);
    assert_int_equal(term_atom_external_count(), ext + 3);
    assert_same_term(local, term_tuple_elem(t, 4));
    term_free(t);
    term_atom_set_external_quota(SIZE_MAX);
    /* a full table: decodes go foreign, term_atom() fails as it always did */
    size_t n = term_atom_count();
    term_atom_set_limit(n + 1);
    assert_int_equal(term_atom_limit(), n + 1);
    w.n = 0;
    w1(&w, 131), w1(&w, 104), w1(&w, 3);
    watom(&w, "fq_full1"), watom(&w, "fq_full2"), watom(&w, "fq_full3");
    o.max_new_atoms = SIZE_MAX;
    t = dec(&w, &o, &e);
    assert_true(t != TERM_NONE);
    assert_int_equal(st.interned, 1);
    assert_int_equal(st.foreign, 2);
    int err = 0;
    assert_true(term_atom_n("fq_full4", 8, &err) == TERM_NONE);
    assert_int_equal(err, TERM_EATOMLIMIT);
    term_free(t);
    term_atom_set_limit(1048576);
    assert_true(term_atom("fq_full4") != TERM_NONE);
}

/* term_atom_from_outside: interned names as they are, new ones within the budget and the
** quota, foreign past either, invalid names refused. */
static void test_from_outside(void **state)
{
    (void)state;
    size_t budget = 1;
    bool made = true;
    int err = 0;
    term_t ok = term_atom_from_outside("ok", 2, &budget, &made, &err);
    assert_true(ok == TERM_ATOM_OK);
    assert_false(made);
    assert_int_equal(budget, 1);
    size_t ext = term_atom_external_count();
    term_t a = term_atom_from_outside("fo_new1", 7, &budget, &made, &err);
    assert_true(term_atom_is_interned(a));
    assert_true(made);
    assert_int_equal(budget, 0);
    assert_int_equal(term_atom_external_count(), ext + 1);
    assert_true(term_atom_existing("fo_new1", 7) == a);
    term_t f = term_atom_from_outside("fo_new2", 7, &budget, &made, &err);
    assert_false(term_atom_is_interned(f));
    assert_false(made);
    assert_true(term_atom_existing("fo_new2", 7) == TERM_NONE);
    assert_string_equal(term_atom_name(f, NULL), "fo_new2");
    term_free(f);
    /* the quota wins over the budget */
    budget = 5;
    term_atom_set_external_quota(term_atom_external_count());
    f = term_atom_from_outside("fo_new3", 7, &budget, &made, &err);
    assert_false(term_atom_is_interned(f));
    assert_int_equal(budget, 5);
    term_free(f);
    term_atom_set_external_quota(SIZE_MAX);
    /* NULL budget: nothing new interned */
    f = term_atom_from_outside("fo_new4", 7, NULL, NULL, &err);
    assert_false(term_atom_is_interned(f));
    term_free(f);
    assert_true(term_atom_from_outside("\xff\xfe", 2, &budget, &made, &err) == TERM_NONE);
    assert_int_equal(err, TERM_EUTF8);
    assert_int_equal(budget, 5);
}

/* ---------------------------------------------------------------- failures and threads */

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

/* Every allocation failure on the foreign paths is survived without a leak. */
/* term_atom_interned: interned atoms as they are; a foreign one looked up, or interned on demand.
 */
static void test_interned(void **state)
{
    (void)state;
    term_t a = term_atom("interned_known");
    assert_true(term_atom_interned(a, false) == a);
    assert_true(term_atom_interned(term_int(1), true) == TERM_NONE);
    term_t f = term_atom_foreign_new("interned_known", 14, NULL);
    assert_true(term_atom_interned(f, false) == a);
    term_free(f);
    char name[40];
    snprintf(name, sizeof name, "interned_fresh_%d", (int)getpid());
    f = term_atom_foreign_new(name, strlen(name), NULL);
    size_t before = term_atom_count();
    assert_true(term_atom_interned(f, false) == TERM_NONE);
    assert_int_equal(term_atom_count(), before);
    term_t made = term_atom_interned(f, true);
    assert_true(term_atom_is_interned(made));
    assert_int_equal(term_atom_count(), before + 1);
    assert_true(term_atom_interned(f, false) == made);
    term_free(f);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    wr w = {.n = 0};
    w1(&w, 131), w1(&w, 108), w4(&w, 40);
    char nm[32];
    for (int i = 0; i < 40; i++) { /* 20 distinct names, each twice: the set grows and rehashes */
        snprintf(nm, sizeof nm, "fq_fail_%d", i % 20);
        if (i % 3 == 1) {
            w1(&w, 88), watom(&w, nm), w4(&w, 1), w4(&w, 2), w4(&w, 3);
        } else {
            watom(&w, nm);
        }
    }
    w1(&w, 106);
    size_t passes = 0;
    for (size_t k = 1; k < 400; k++) {
        alloc_count = 0;
        alloc_fail_at = k;
        term_set_allocator(failing_alloc, NULL);
        etf_decode_opts o = {.foreign_atoms = true};
        term_t t = dec(&w, &o, NULL);
        etf_buf b = {0};
        if (t != TERM_NONE) {
            etf_encode(t, ETF_ENC_COMPRESSED, &b);
            etf_buf_free(&b);
            term_t x = term_atom_canonical(term_hd(t));
            term_t pid = term_pid(x, 1, 1, 1);
            term_t m = term_map(1, (term_t[]){term_dup(x)}, (term_t[]){term_dup(t)});
            m = term_map_put(m, term_dup(term_hd(term_tl(t))), pid);
            term_hash(m);
            term_free(m);
            term_free(x);
            term_free(t);
        }
        term_t f = term_atom_foreign_new("fq_alloc", 8, NULL);
        term_t tu = term_tuplev(2, f, term_export_fun(f, f, 1));
        term_free(tu);
        term_set_allocator(NULL, NULL);
        if (t != TERM_NONE && alloc_count < k) passes++;
    }
    assert_true(passes > 0); /* the last runs saw no failure at all */
    assert_true(term_atom_existing("fq_fail_0", 9) == TERM_NONE);
}

static term_t shared;
static const uint8_t *shared_bytes;
static size_t shared_len;

static void *share_thread(void *arg)
{
    (void)arg;
    uint64_t h = term_hash(shared);
    etf_decode_opts o = {.foreign_atoms = true};
    for (int i = 0; i < 20000; i++) {
        term_t a = term_dup(term_tuple_elem(shared, 0));
        term_t mine = etf_decode(shared_bytes, shared_len, &o, NULL, NULL);
        if (mine == TERM_NONE || !term_equal(mine, shared) || term_hash(mine) != h) return arg;
        term_t k = term_dup(term_tuple_elem(mine, 0)); /* outlives its block */
        term_free(mine);
        if (term_compare(k, a) != 0) return arg;
        term_free(k);
        term_free(a);
    }
    return NULL;
}

/* Foreign atoms shared between threads: dup, free, compare and decode at once (TSan). */
static void test_threads(void **state)
{
    (void)state;
    wr w = {.n = 0};
    w1(&w, 131), w1(&w, 104), w1(&w, 2), watom(&w, "fq_thr"), watom(&w, "fq_thr2");
    etf_decode_opts o = {.foreign_atoms = true};
    shared = dec(&w, &o, NULL);
    shared_bytes = w.b;
    shared_len = w.n;
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, share_thread, (void *)1);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_null(r);
    }
    assert_int_equal(rc_of(term_tuple_elem(shared, 0)), 1);
    term_free(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_order_and_sorting),
        cmocka_unit_test(test_print_and_encode),
        cmocka_unit_test(test_erlang_vectors_twin),
        cmocka_unit_test(test_twins_in_moving_arenas),
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_patterns),
        cmocka_unit_test(test_refcounts),
        cmocka_unit_test(test_decode_budget),
        cmocka_unit_test(test_decode_everywhere),
        cmocka_unit_test(test_decode_latin1_utf8),
        cmocka_unit_test(test_decode_cache),
        cmocka_unit_test(test_decode_errors_release),
        cmocka_unit_test(test_external_quota),
        cmocka_unit_test(test_from_outside),
        cmocka_unit_test(test_interned),
        cmocka_unit_test(test_alloc_failures),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
