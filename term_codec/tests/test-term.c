/* Unit tests for term construction, access, ordering, hashing, maps, binaries and atoms. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <cmocka.h>

#include <girder/term.h>
#include "../src/term_int.h"

typedef struct vec {
    const char *name;
    const uint8_t *bytes;
    size_t len;
} vec;

static const vec vectors[] = {
#include "etf_vectors.h"
};

static const vec *find(const char *name)
{
    for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++)
        if (strcmp(vectors[i].name, name) == 0) return &vectors[i];
    return NULL;
}

static void test_immediates(void **state)
{
    (void)state;
    assert_int_equal(term_typeof(term_int(5)), TERM_T_INT);
    assert_int_equal(term_typeof(TERM_NIL), TERM_T_NIL);
    assert_int_equal(term_typeof(TERM_NONE), TERM_T_NONE);
    assert_int_equal(term_typeof(term_atom("x")), TERM_T_ATOM);
    assert_true(term_is_small(term_int(TERM_SMALL_MAX)));
    assert_true(term_is_small(term_int(TERM_SMALL_MIN)));
    term_t b = term_int(TERM_SMALL_MAX + 1);
    assert_true(term_is_bignum(b));
    int64_t v;
    assert_int_equal(term_get_int64(b, &v), 0);
    assert_true(v == TERM_SMALL_MAX + 1);
    term_free(b);
    b = term_int(INT64_MIN);
    assert_int_equal(term_get_int64(b, &v), 0);
    assert_true(v == INT64_MIN);
    term_free(b);
    b = term_uint(UINT64_MAX);
    uint64_t u;
    assert_int_equal(term_get_uint64(b, &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(term_get_int64(b, &v), TERM_ERANGE);
    term_free(b);
    assert_int_equal(term_get_int64(term_atom("x"), &v), TERM_ETYPE);
    assert_true(term_float(1.0 / 0.0) == TERM_NONE);
    term_free(TERM_NIL); /* no-ops */
    term_free(TERM_NONE);
}

static void test_atoms(void **state)
{
    (void)state;
    term_t a = term_atom("hello"), b = term_atom_n("hello", 5, NULL);
    assert_true(a == b);
    assert_string_equal(term_atom_name(a, NULL), "hello");
    assert_true(term_atom_existing("hello", 5) == a);
    assert_true(term_atom_existing("surely-not-an-atom-yet", 22) == TERM_NONE);
    char name[256 * 3 + 1];
    memset(name, 'a', 256); /* all 256 bytes read below are defined: too long, not bad UTF-8 */
    assert_true(term_atom_n(name, 255, NULL) != TERM_NONE);
    int err = 0;
    assert_true(term_atom_n(name, 256, &err) == TERM_NONE);
    assert_true(term_atom_n(NULL, 0, NULL) == term_atom(""));
    term_t empty_t = term_tuple(0, NULL), empty_m = term_map(0, NULL, NULL);
    assert_int_equal(term_tuple_arity(empty_t), 0);
    assert_int_equal(term_map_size(empty_m), 0);
    assert_true(term_list(0, NULL) == TERM_NIL);
    term_free(empty_t);
    term_free(empty_m);
    assert_int_equal(err, TERM_EATOM);
    /* 255 three-byte characters are fine: the limit is in characters */
    for (int i = 0; i < 255; i++) memcpy(name + 3 * i, "\xe2\x82\xac", 3);
    assert_true(term_atom_n(name, 765, NULL) != TERM_NONE);
    assert_true(term_atom_n("\xff", 1, &err) == TERM_NONE);
    assert_int_equal(err, TERM_EUTF8);
    assert_true(TERM_ATOM_TRUE == term_atom("true"));
    assert_true(TERM_ATOM_NONODE == term_atom("nonode@nohost"));
}

/* Rounds of 4 threads interning the same fresh names in the same order, started together so
** that one thread reads a name another is publishing: the name must be readable at once. */
#define ATOM_ROUNDS 20
#define ATOM_NAMES  5000
static pthread_barrier_t atom_barrier;

static void *atom_thread(void *arg)
{
    char buf[32];
    void *ret = NULL;
    for (int r = 0; r < ATOM_ROUNDS; r++) {
        pthread_barrier_wait(&atom_barrier); /* every round, even after a failure */
        for (int i = 0; i < ATOM_NAMES; i++) {
            snprintf(buf, sizeof buf, "thr_atom_%d_%d", r, i);
            term_t a = term_atom(buf);
            const char *name = a == TERM_NONE ? NULL : term_atom_name(a, NULL);
            if (!name || strcmp(name, buf) != 0) ret = arg;
        }
    }
    return ret;
}

/* A reader spinning on a name while a writer interns it sees the name at the first moment it
** can: an atom found by name must have its name readable then, not a moment later. */
#define SPIN_NAMES  3000
#define SPIN_ROUNDS 8
static _Atomic bool spin_writer_done;
static int spin_round;

static void *spin_writer(void *arg)
{
    (void)arg;
    char buf[32];
    for (int i = 0; i < SPIN_NAMES; i++) {
        snprintf(buf, sizeof buf, "spin_atom_%d_%d", spin_round, i);
        (void)term_atom(buf);
    }
    atomic_store(&spin_writer_done, true);
    return NULL;
}

static void *spin_reader(void *arg)
{
    char buf[32];
    void *ret = NULL;
    for (int i = 0; i < SPIN_NAMES; i++) {
        snprintf(buf, sizeof buf, "spin_atom_%d_%d", spin_round, i);
        term_t a;
        bool done;
        do {
            done = atomic_load(&spin_writer_done);
            a = term_atom_existing(buf, strlen(buf));
        } while (a == TERM_NONE && !done);
        const char *name = a == TERM_NONE ? NULL : term_atom_name(a, NULL);
        if (!name || strcmp(name, buf) != 0) ret = arg;
    }
    return ret;
}

/* Concurrent interning of the same names gives one atom per name. */
static void test_atoms_threads(void **state)
{
    (void)state;
    pthread_t th[4];
    pthread_barrier_init(&atom_barrier, NULL, 4);
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, atom_thread, (void *)1);
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_null(r);
    }
    pthread_barrier_destroy(&atom_barrier);
    for (spin_round = 0; spin_round < SPIN_ROUNDS; spin_round++) {
        pthread_t w, rd;
        void *r;
        atomic_store(&spin_writer_done, false);
        pthread_create(&rd, NULL, spin_reader, (void *)1);
        pthread_create(&w, NULL, spin_writer, NULL);
        pthread_join(w, NULL);
        pthread_join(rd, &r);
        assert_null(r);
    }
    assert_true(term_atom("thr_atom_3_7") == term_atom_existing("thr_atom_3_7", 12));
}

static void test_tuples_lists(void **state)
{
    (void)state;
    term_t t = term_tuplev(3, term_int(1), term_atom("a"), TERM_NIL);
    assert_int_equal(term_tuple_arity(t), 3);
    assert_true(term_tuple_elem(t, 1) == term_atom("a"));
    assert_true(term_tuple_elem(t, 3) == TERM_NONE);
    term_free(t);
    /* constructors consume even on failure */
    t = term_tuplev(2, term_binary("x", 1), TERM_NONE);
    assert_true(t == TERM_NONE);
    term_t l = term_string("hey", 3);
    assert_int_equal(term_list_length(l), 3);
    assert_true(term_hd(l) == term_int('h'));
    term_t imp = term_cons(term_int(1), term_int(2));
    assert_int_equal(term_list_length(imp), -1);
    assert_true(term_is_list(imp));
    term_free(imp);
    term_free(l);
    int err;
    l = term_string_utf8("a\xe2\x82\xac", 4, &err);
    assert_int_equal(term_list_length(l), 2);
    assert_true(term_hd(term_tl(l)) == term_int(0x20AC));
    term_free(l);
    assert_true(term_string_utf8("\xc3", 1, &err) == TERM_NONE);
    assert_int_equal(err, TERM_EUTF8);
}

static void test_maps(void **state)
{
    (void)state;
    term_t ks[4] = {term_atom("b"), term_int(1), term_float(1.0), term_atom("b")};
    term_t vs[4] = {term_int(1), term_int(2), term_int(3), term_int(4)};
    term_t m = term_map(4, ks, vs);
    assert_int_equal(term_map_size(m), 3);
    /* the later duplicate wins; 1 and 1.0 are distinct keys */
    assert_true(term_map_get(m, term_atom("b")) == term_int(4));
    term_t one_f = term_float(1.0);
    assert_true(term_map_get(m, one_f) == term_int(3));
    assert_true(term_map_get(m, term_int(1)) == term_int(2));
    /* key order: integers before floats, then atoms */
    assert_true(term_map_key(m, 0) == term_int(1));
    assert_true(term_is_float(term_map_key(m, 1)));
    term_t m2 = term_map_put(term_dup(m), term_atom("a"), term_int(9));
    assert_int_equal(term_map_size(m2), 4);
    assert_int_equal(term_map_size(m), 3); /* immutable: the original is unchanged */
    assert_true(term_map_key(m2, 2) == term_atom("a"));
    term_t m3 = term_map_put(term_dup(m2), term_atom("a"), term_int(10));
    assert_true(term_map_get(m3, term_atom("a")) == term_int(10));
    assert_true(term_map_get(m2, term_atom("a")) == term_int(9));
    term_t m4 = term_map_remove(term_dup(m3), one_f);
    assert_int_equal(term_map_size(m4), 3);
    assert_true(term_map_get(m4, one_f) == TERM_NONE);
    term_t m5 = term_map_remove(term_dup(m4), term_atom("zz"));
    assert_true(term_equal(m4, m5));
    term_free(one_f);
    term_free(m);
    term_free(m2);
    term_free(m3);
    term_free(m4);
    term_free(m5);
}

static void test_binaries(void **state)
{
    (void)state;
    uint8_t data[200];
    for (int i = 0; i < 200; i++) data[i] = (uint8_t)i;
    term_t b = term_binary(data, 200);
    assert_true(term_is_binary(b));
    assert_int_equal(term_binary_size(b), 200);
    /* sub-binary shares the bytes */
    term_t s = term_sub_binary(b, 8 * 10, 8 * 5);
    assert_true(term_binary_data(s) == term_binary_data(b) + 10);
    term_free(b); /* the sub-binary keeps the storage alive */
    assert_int_equal(term_binary_data(s)[0], 10);
    /* odd bit offset: 3 bits in, 12 bits long */
    term_t o = term_sub_binary(s, 3, 12);
    assert_true(term_is_bitstring(o));
    assert_false(term_is_binary(o));
    assert_null(term_binary_data(o));
    uint8_t out[2];
    term_bitstring_copy(o, out);
    /* bytes 10,11 = 00001010 00001011; bits 3..14 = 0101 0000 0101 -> 0x50 0x50 */
    assert_int_equal(out[0], 0x50);
    assert_int_equal(out[1], 0x50);
    term_t same = term_bitstring(out, 12);
    assert_true(term_equal(o, same));
    assert_int_equal(term_hash(o), term_hash(same));
    /* encode of the unaligned sub-bitstring equals the aligned one's */
    etf_buf e1 = {0}, e2 = {0};
    etf_encode(o, 0, &e1);
    etf_encode(same, 0, &e2);
    assert_int_equal(e1.len, e2.len);
    assert_memory_equal(e1.data, e2.data, e1.len);
    etf_buf_free(&e1);
    etf_buf_free(&e2);
    term_free(same);
    term_free(o);
    term_free(s);
    void *raw = term_alloc_raw(100);
    memset(raw, 7, 100);
    term_t a = term_binary_adopt(raw, 100);
    assert_true(term_binary_data(a) == raw);
    term_free(a);
    assert_true(term_sub_binary(TERM_NIL, 0, 0) == TERM_NONE);
}

static void test_pids_refs_ports_funs(void **state)
{
    (void)state;
    term_t n = term_atom("n@h");
    term_t p = term_pid(n, 1, 2, 3);
    term_pid_info pi;
    assert_int_equal(term_pid_get(p, &pi), 0);
    assert_true(pi.node == n && pi.id == 1 && pi.serial == 2 && pi.creation == 3);
    term_t r1 = term_ref(n, 1, 1, (uint32_t[]){5});
    term_t r3 = term_ref(n, 1, 3, (uint32_t[]){5, 0, 0});
    assert_true(term_equal(r1, r3)); /* as in Erlang: missing words are zero */
    assert_int_equal(term_hash(r1), term_hash(r3));
    assert_true(term_ref(n, 1, 6, (uint32_t[]){1, 2, 3, 4, 5, 6}) == TERM_NONE);
    term_t e = term_export_fun(term_atom("m"), term_atom("f"), 2);
    term_fun_info fi;
    assert_int_equal(term_fun_get(e, &fi), 0);
    assert_true(fi.is_export && fi.arity == 2);
    term_free(e);
    term_free(r1);
    term_free(r3);
    term_free(p);
}

static int qcmp(const void *a, const void *b)
{
    return term_compare(*(const term_t *)a, *(const term_t *)b);
}

/* Sorting a shuffled copy of Erlang's lists:sort result gives Erlang's order back. */
static void test_order_matches_erlang(void **state)
{
    (void)state;
    const vec *v = find("sorted");
    assert_non_null(v);
    term_t l = etf_decode(v->bytes, v->len, NULL, NULL, NULL);
    long n = term_list_length(l);
    assert_true(n > 40);
    term_t *a = malloc((size_t)n * sizeof(term_t)), *sh = malloc((size_t)n * sizeof(term_t));
    term_t x = l;
    for (long i = 0; i < n; i++, x = term_tl(x)) a[i] = term_hd(x);
    for (long i = 0; i + 1 < n; i++) {
        if (term_compare(a[i], a[i + 1]) >= 0) {
            fail_msg("element %ld (%s) should be before element %ld (%s)", i,
                     term_type_name(term_typeof(a[i])), i + 1,
                     term_type_name(term_typeof(a[i + 1])));
        }
        assert_true(term_compare(a[i + 1], a[i]) > 0);
    }
    srand(7);
    memcpy(sh, a, (size_t)n * sizeof(term_t));
    for (long i = n - 1; i > 0; i--) {
        long j = rand() % (i + 1);
        term_t t = sh[i];
        sh[i] = sh[j];
        sh[j] = t;
    }
    qsort(sh, (size_t)n, sizeof(term_t), qcmp);
    for (long i = 0; i < n; i++) assert_true(sh[i] == a[i]);
    free(a);
    free(sh);
    term_free(l);
}

static void test_number_order(void **state)
{
    (void)state;
    term_t one = term_int(1), onef = term_float(1.0), half = term_float(0.5);
    assert_int_equal(term_compare(one, onef), 0);   /* 1 == 1.0 */
    assert_true(term_compare_exact(one, onef) < 0); /* 1 =/= 1.0, integer first */
    assert_false(term_equal(one, onef));
    assert_true(term_equal_arith(one, onef));
    assert_true(term_compare(half, one) < 0);
    term_t z = term_float(0.0), nz = term_float(-0.0);
    assert_true(term_equal(z, nz)); /* OTP 25: -0.0 =:= 0.0 */
    assert_int_equal(term_hash(z), term_hash(nz));
    /* exactness beyond 2^53 */
    term_t big = term_int((1LL << 53) + 1), f53 = term_float(9007199254740992.0);
    assert_true(term_compare(big, f53) > 0);
    term_t huge = term_uint(UINT64_MAX), fhuge = term_float(18446744073709551616.0);
    assert_true(term_compare(huge, fhuge) < 0);
    assert_true(term_compare(fhuge, huge) > 0);
    /* doubles between 2^62 and 2^64 against small integers (once UB in the cast) */
    term_t f63 = term_float(9241047499231198616.0);
    assert_true(term_compare(term_int(9), f63) < 0);
    assert_true(term_compare(f63, term_int(TERM_SMALL_MAX)) > 0);
    term_free(f63);
    term_t fm = term_float(-1e300);
    assert_true(term_compare(fm, huge) < 0);
    term_t big2 = term__int_from_text(false, "18446744073709551616", 20, 10);
    assert_int_equal(term_compare(big2, fhuge), 0);
    term_t tuple1 = term_tuplev(1, term_int(1)), tuple1f = term_tuplev(1, term_float(1.0));
    assert_int_equal(term_compare(tuple1, tuple1f), 0);
    assert_true(term_compare_exact(tuple1, tuple1f) < 0);
    term_t m1 = term_map(1, (term_t[]){term_atom("a")}, (term_t[]){term_int(1)});
    term_t m1f = term_map(1, (term_t[]){term_atom("a")}, (term_t[]){term_float(1.0)});
    assert_int_equal(term_compare(m1, m1f), 0); /* values compare arithmetically */
    term_t mk = term_map(1, (term_t[]){term_int(1)}, (term_t[]){term_atom("a")});
    term_t mkf = term_map(1, (term_t[]){term_float(1.0)}, (term_t[]){term_atom("a")});
    assert_true(term_compare(mk, mkf) < 0); /* keys compare exactly */
    term_t all[] = {one, onef, half,   z,       nz, big, f53, huge, fhuge,
                    fm,  big2, tuple1, tuple1f, m1, m1f, mk,  mkf};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) term_free(all[i]);
}

static void test_bignum_text(void **state)
{
    (void)state;
    const char *digits = "123456789012345678901234567890123456789";
    term_t b = term__int_from_text(true, digits, strlen(digits), 10);
    etf_buf out = {0};
    assert_int_equal(term__int_to_text(b, 10, &out), 0);
    assert_int_equal(out.len, strlen(digits) + 1);
    assert_memory_equal(out.data, "-123456789012345678901234567890123456789", out.len);
    out.len = 0;
    assert_int_equal(term__int_to_text(b, 16, &out), 0);
    term_t c = term__int_from_text(true, (char *)out.data + 1, out.len - 1, 16);
    assert_true(term_equal(b, c));
    out.len = 0;
    term__int_to_text(term_int(-255), 2, &out);
    assert_memory_equal(out.data, "-11111111", 9);
    assert_true(term__int_from_text(false, "12a", 3, 10) == TERM_NONE);
    assert_true(term__int_from_text(false, "zz", 2, 36) == term_int(35 * 36 + 35));
    etf_buf_free(&out);
    term_free(b);
    term_free(c);
}

/* Sharing across threads: many threads dup and free the same term concurrently. */
static term_t shared;
static void *share_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++) term_free(term_dup(shared));
    return NULL;
}

static void test_shared_refcount(void **state)
{
    (void)state;
    shared = term_tuplev(2, term_binary("abc", 3), term_string("x", 1));
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, share_thread, NULL);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&term__box(shared)->rc), 1);
    term_free(shared);
}

/* The per-thread box cache: a freed box or decoded block is what the next one of its class
** gets back on the same thread. */
static void test_box_cache_reuse(void **state)
{
    (void)state;
    term_t a = term_tuplev(3, term_int(1), term_int(2), term_int(3));
    void *pa = term__box(a);
    term_free(a);
    term_t b = term_tuplev(3, term_int(4), term_int(5), term_int(6));
    assert_ptr_equal(term__box(b), pa);
    term_free(b);
    const uint8_t msg[] = {131, 104, 2, 100, 0, 2, 'o', 'k', 109, 0, 0, 0, 3, 'a', 'b', 'c'};
    term_t d = etf_decode(msg, sizeof msg, NULL, NULL, NULL);
    assert_true(d != TERM_NONE);
    void *blk = (uint64_t *)term__box(d) - term__box(d)->boff;
    term_free(d);
    term_t e = etf_decode(msg, sizeof msg, NULL, NULL, NULL);
    assert_ptr_equal((uint64_t *)term__box(e) - term__box(e)->boff, blk);
    assert_true(term_equal(term_tuple_elem(e, 0), term_atom("ok")));
    term_free(e);
}

/* With a hook installed, the hook sees every allocation and free even when the cache holds
** a block of the class; what it allocates is the class's size, so a box made under the hook
** and freed after it is removed can serve any request of its class. */
static size_t hk_allocs, hk_frees, hk_last;
static void *counting_hook(void *ud, void *p, size_t old, size_t n)
{
    (void)ud;
    (void)old;
    if (n == 0) {
        if (p) hk_frees++;
        free(p);
        return NULL;
    }
    if (!p) hk_allocs++;
    hk_last = n;
    return realloc(p, n);
}

static void test_box_cache_hook(void **state)
{
    (void)state;
    term_free(term_tuplev(4, TERM_NIL, TERM_NIL, TERM_NIL, TERM_NIL)); /* warms class 56 */
    hk_allocs = hk_frees = 0;
    term_set_allocator(counting_hook, NULL);
    term_t t = term_tuplev(4, TERM_NIL, TERM_NIL, TERM_NIL, TERM_NIL); /* 48 bytes */
    assert_int_equal(hk_allocs, 1);
    assert_int_equal(hk_last, 56);
    term_free(term_tuplev(4, TERM_NIL, TERM_NIL, TERM_NIL, TERM_NIL));
    assert_int_equal(hk_allocs, 2);
    assert_int_equal(hk_frees, 1);
    term_set_allocator(NULL, NULL);
    term_free(t); /* made by the hook, cached now */
    term_t u = term_tuplev(5, TERM_NIL, TERM_NIL, TERM_NIL, TERM_NIL, term_int(7)); /* 56 */
    assert_true(term_tuple_elem(u, 4) == term_int(7));
    term_free(u);
    assert_int_equal(hk_allocs, 2);
}

/* Large blocks (32 KB to 1 MiB) freed with the default allocator are kept and handed back to
** the next request they fit: a plain malloc in between does not get the freed block, the
** next term_alloc_raw() does. */
static void test_large_cache_reuse(void **state)
{
    (void)state;
    term_cache_release();
    assert_int_equal(term_cache_bytes(), 0);
    uint8_t *p = term_alloc_raw(64 << 10), *guard = term_alloc_raw(64 << 10);
    memset(p, 1, 64 << 10);
    term_free_raw(p, 64 << 10);
    assert_true(term_cache_bytes() >= (64u << 10));
    void *other = malloc(64 << 10); /* glibc would hand this one the freed chunk */
    assert_ptr_not_equal(other, p);
    uint8_t *q = term_alloc_raw(60 << 10); /* 64 KB is at most half as large again */
    assert_ptr_equal(q, p);
    assert_int_equal(term_cache_bytes(), 0);
    q[(60 << 10) - 1] = 2;
    /* a block more than half as large again as the request is not taken */
    term_free_raw(q, 60 << 10);
    uint8_t *r = term_alloc_raw(40 << 10);
    assert_ptr_not_equal(r, p);
    term_free_raw(r, 40 << 10);
    /* blocks below 32 KB or above 1 MiB go straight back */
    size_t before = term_cache_bytes();
    term_free_raw(term_alloc_raw(16 << 10), 16 << 10);
    term_free_raw(term_alloc_raw(2 << 20), 2 << 20);
    assert_int_equal(term_cache_bytes(), before);
    free(other);
    term_free_raw(guard, 64 << 10);
    term_cache_release();
    assert_int_equal(term_cache_bytes(), 0);
}

/* A buffer growing into the range moves into a kept block with its bytes; a shrink by less
** than a quarter keeps the block whole (its next use then fits it). */
static void test_large_cache_grow_shrink(void **state)
{
    (void)state;
    term_cache_release();
    uint8_t *k = term_alloc_raw(128 << 10);
    term_free_raw(k, 128 << 10);
    etf_buf b = {0};
    assert_int_equal(etf_buf_reserve(&b, 100), 0);
    memcpy(b.data, "girder", 6);
    b.len = 6;
    assert_int_equal(etf_buf_reserve(&b, 100 << 10), 0); /* 64 doubled: 128 KB */
    assert_ptr_equal(b.data, k);
    assert_memory_equal(b.data, "girder", 6);
    etf_buf_free(&b);
    uint8_t *m = term_alloc_raw(72 << 10);
    assert_ptr_equal(term_realloc_raw(m, 72 << 10, 66 << 10), m); /* kept whole */
    term_free_raw(m, 66 << 10);
    assert_ptr_equal(term_alloc_raw(72 << 10), m);        /* and fits a 72 KB request again */
    uint8_t *h = term_realloc_raw(m, 72 << 10, 40 << 10); /* a real shrink */
    assert_non_null(h);
    term_free_raw(h, 40 << 10);
    term_cache_release();
}

/* The bound: at most 32 MiB kept, the oldest given back first; term_cache_release_idle()
** gives everything back only after a call period without use. */
static void test_large_cache_bound_idle(void **state)
{
    (void)state;
    term_cache_release();
    enum { N = 600 };
    void **v = malloc(N * sizeof *v);
    for (int i = 0; i < N; i++) v[i] = term_alloc_raw(64 << 10);
    for (int i = 0; i < N; i++) term_free_raw(v[i], 64 << 10);
    size_t kept = term_cache_bytes();
    assert_true(kept <= (32u << 20));
    assert_true(kept >= (32u << 20) - (128u << 10));
    /* the newest are kept: the last freed comes back first */
    void *last = term_alloc_raw(64 << 10);
    assert_ptr_equal(last, v[N - 1]);
    term_free_raw(last, 64 << 10);
    free(v);
    assert_false(term_cache_release_idle()); /* used since the last call */
    assert_true(term_cache_bytes() > 0);
    assert_true(term_cache_release_idle()); /* unused for a period: given back */
    assert_int_equal(term_cache_bytes(), 0);
    assert_false(term_cache_release_idle());
}

/* With a hook installed nothing is kept: the hook sees the free. */
static void test_large_cache_hook(void **state)
{
    (void)state;
    term_cache_release();
    hk_frees = 0;
    term_set_allocator(counting_hook, NULL);
    term_free_raw(term_alloc_raw(64 << 10), 64 << 10);
    assert_int_equal(hk_frees, 1);
    term_set_allocator(NULL, NULL);
    assert_int_equal(term_cache_bytes(), 0);
}

/* Boxes made on one thread and freed on another, by threads that then exit: each thread's
** cache is given back at its exit (ASan's leak check fails otherwise) and no block is shared
** between two threads' caches (TSan). */
#define XFER 4096
static term_t xfer[XFER];
static void *cache_maker(void *arg)
{
    (void)arg;
    const uint8_t msg[] = {131, 104, 2, 100, 0, 2, 'o', 'k', 97, 7};
    for (int i = 0; i < XFER; i++) {
        term_t t = i % 2 ? etf_decode(msg, sizeof msg, NULL, NULL, NULL)
                         : term_tuplev(2, term_ref(term_atom("n@h"), 1, 3, (uint32_t[]){1, 2, 3}),
                                       term_int(i));
        term_free(term_tuplev(1, term_int(i))); /* churn on this thread's own cache */
        xfer[i] = t;
    }
    return NULL;
}
static void *cache_freer(void *arg)
{
    (void)arg;
    for (int i = 0; i < XFER; i++) {
        term_free(xfer[i]);
        term_free(term_tuplev(2, term_int(i), TERM_NIL));
    }
    return NULL;
}

static void test_box_cache_threads(void **state)
{
    (void)state;
    for (int round = 0; round < 4; round++) {
        pthread_t a, b;
        assert_int_equal(pthread_create(&a, NULL, cache_maker, NULL), 0);
        pthread_join(a, NULL);
        assert_int_equal(pthread_create(&b, NULL, cache_freer, NULL), 0);
        pthread_join(b, NULL);
    }
}

static void test_memory_and_errors(void **state)
{
    (void)state;
    term_t t = term_tuplev(2, term_binary("abc", 3), TERM_NIL);
    assert_true(term_memory(t) >= 3);
    term_free(t);
    assert_string_equal(term_err_name(TERM_ETRUNC), "ETRUNC");
    assert_string_equal(term_strerror(TERM_ETRUNC), "input ends too early");
    assert_string_equal(term_type_name(TERM_T_MAP), "map");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_immediates),
        cmocka_unit_test(test_atoms),
        cmocka_unit_test(test_atoms_threads),
        cmocka_unit_test(test_tuples_lists),
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_binaries),
        cmocka_unit_test(test_pids_refs_ports_funs),
        cmocka_unit_test(test_order_matches_erlang),
        cmocka_unit_test(test_number_order),
        cmocka_unit_test(test_bignum_text),
        cmocka_unit_test(test_shared_refcount),
        cmocka_unit_test(test_memory_and_errors),
        cmocka_unit_test(test_box_cache_reuse),
        cmocka_unit_test(test_box_cache_hook),
        cmocka_unit_test(test_box_cache_threads),
        cmocka_unit_test(test_large_cache_reuse),
        cmocka_unit_test(test_large_cache_grow_shrink),
        cmocka_unit_test(test_large_cache_bound_idle),
        cmocka_unit_test(test_large_cache_hook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
