/* libFuzzer target: ETF decoding of arbitrary bytes, then encode/decode round trips. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <girder/term.h>
#include "../term_codec/src/term_int.h" /* term__etf_decode_all_foreign */

static etf_atom_cache cache;

/* a and b must be the same term every way there is to look at one. */
static void same_term(term_t a, term_t b)
{
    if (!term_equal(a, b) || !term_equal_arith(a, b) || term_compare(a, b) != 0 ||
        term_compare(b, a) != 0 || term_hash(a) != term_hash(b))
        abort();
    static const unsigned enc[] = {0, ETF_ENC_UTF8_ATOMS, ETF_ENC_NO_VERSION};
    for (size_t i = 0; i < sizeof enc / sizeof enc[0]; i++) {
        etf_buf x = {0}, y = {0};
        if (etf_encode(a, enc[i], &x) || etf_encode(b, enc[i], &y)) abort();
        if (x.len != y.len || memcmp(x.data, y.data, x.len) != 0) abort();
        etf_buf_free(&x);
        etf_buf_free(&y);
    }
    etf_buf x = {0}, y = {0};
    if (term_print(a, TERM_PRINT_P, NULL, &x) || term_print(b, TERM_PRINT_P, NULL, &y)) abort();
    if (x.len != y.len || memcmp(x.data, y.data, x.len) != 0) abort();
    etf_buf_free(&x);
    etf_buf_free(&y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cache.atoms[0]) {
        cache.atoms[0] = term_atom("cached0");
        cache.atoms[7] = term_atom("cached7");
        cache.atoms[9] = term_atom_foreign_new("cached9", 7, NULL); /* a foreign cache entry */
    }
    /* The first byte picks the options, so the fuzzer explores all of them: 1 atom cache,
    ** 2 no version byte, 4 trailing bytes allowed, 8 a budget of 3 new atoms, 16 foreign
    ** atoms past the budget (so with 8 clear, every new atom is foreign), 32 decode once more
    ** from a copy adopted as a binary, with etf_decode_opts.share. */
    etf_decode_opts o = {0};
    bool share = false;
    if (size > 0) {
        share = (data[0] & 32) != 0;
        o.cache = (data[0] & 1) ? &cache : NULL;
        o.no_version = (data[0] & 2) != 0;
        o.allow_trailing = (data[0] & 4) != 0;
        o.max_new_atoms = (data[0] & 8) ? 3 : 0;
        o.foreign_atoms = (data[0] & 16) != 0;
        o.max_uncompressed = 1 << 20;
        data++, size--;
    }
    etf_error err;
    size_t used = 0;
    term_t t = etf_decode(data, size, &o, (o.allow_trailing ? &used : NULL), &err);
    if (o.foreign_atoms) {
        /* Differential: interning every new atom instead must give the same term, or fail
        ** the same way (unless the table fills up). Names foreign in t are interned now. */
        etf_decode_opts oi = o;
        oi.foreign_atoms = false;
        oi.max_new_atoms = 0;
        etf_error ei;
        size_t used_i = 0;
        term_t ti = etf_decode(data, size, &oi, (o.allow_trailing ? &used_i : NULL), &ei);
        if (ti == TERM_NONE) {
            if (ei.code != TERM_EATOMLIMIT &&
                (t != TERM_NONE || ei.code != err.code || ei.offset != err.offset))
                abort();
        } else {
            if (t == TERM_NONE || used_i != used) abort();
            same_term(t, ti);
            term_free(ti);
        }
    }
    if (share) {
        /* Differential: decoding from storage the large binaries may point into gives the
        ** same term, or fails the same way (atoms t interned are there now, so no budget is
        ** spent twice); the storage outlives the input's own reference to it. */
        uint8_t *raw = term_alloc_raw(size ? size : 1);
        if (!raw) abort();
        if (size) memcpy(raw, data, size);
        term_t sh = term_binary_adopt(raw, size);
        etf_decode_opts os = o;
        os.share = sh;
        etf_error es;
        size_t used_s = 0;
        term_t ts = etf_decode(raw, size, &os, (o.allow_trailing ? &used_s : NULL), &es);
        term_free(sh);
        if (t != TERM_NONE) {
            if (ts == TERM_NONE || used_s != used) abort();
            same_term(t, ts);
        } else if (ts != TERM_NONE) {
            if (err.code != TERM_EATOMLIMIT) abort();
        } else if (es.code != err.code && err.code != TERM_EATOMLIMIT) {
            abort();
        }
        term_free(ts);
    }
    if (t == TERM_NONE) {
        if (err.code >= 0 || err.offset > size) abort();
        return 0;
    }
    /* Encoding must succeed and decode back to an equal term, compressed or not. */
    etf_decode_opts back = {.foreign_atoms = o.foreign_atoms};
    for (unsigned flags = 0; flags < 4; flags++) {
        etf_buf b = {0};
        if (etf_encode(t, flags == 3 ? ETF_ENC_UTF8_ATOMS : flags, &b) != 0) abort();
        term_t u = etf_decode(b.data, b.len, &back, NULL, NULL);
        if (u == TERM_NONE || !term_equal(t, u) || term_hash(t) != term_hash(u)) abort();
        if (term_compare(t, u) != 0) abort();
        term_free(u);
        if (o.foreign_atoms && flags == 0) {
            /* the twin with every atom foreign is the same term too */
            term_t f = term__etf_decode_all_foreign(b.data, b.len, NULL, NULL);
            if (f == TERM_NONE) abort();
            same_term(t, f);
            if (term_is_atom(f)) {
                term_t c = term_atom_canonical(f);
                if (!term_equal(c, t)) abort();
                term_free(c);
            }
            term_free(f);
        }
        etf_buf_free(&b);
    }
    term_free(t);
    return 0;
}
