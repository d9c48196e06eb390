/* libFuzzer target: ETF decoding of arbitrary bytes, then encode/decode round trips. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <girder/term.h>

static etf_atom_cache cache;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cache.atoms[0]) {
        cache.atoms[0] = term_atom("cached0");
        cache.atoms[7] = term_atom("cached7");
    }
    /* The first byte picks the options, so the fuzzer explores all of them. */
    etf_decode_opts o = {0};
    if (size > 0) {
        o.cache = (data[0] & 1) ? &cache : NULL;
        o.no_version = (data[0] & 2) != 0;
        o.allow_trailing = (data[0] & 4) != 0;
        o.max_new_atoms = (data[0] & 8) ? 3 : 0;
        o.max_uncompressed = 1 << 20;
        data++, size--;
    }
    etf_error err;
    size_t used = 0;
    term_t t = etf_decode(data, size, &o, (o.allow_trailing ? &used : NULL), &err);
    if (t == TERM_NONE) {
        if (err.code >= 0 || err.offset > size) abort();
        return 0;
    }
    /* Encoding must succeed and decode back to an equal term, compressed or not. */
    for (unsigned flags = 0; flags < 4; flags++) {
        etf_buf b = {0};
        if (etf_encode(t, flags == 3 ? ETF_ENC_UTF8_ATOMS : flags, &b) != 0) abort();
        term_t u = etf_decode(b.data, b.len, NULL, NULL, NULL);
        if (u == TERM_NONE || !term_equal(t, u) || term_hash(t) != term_hash(u)) abort();
        if (term_compare(t, u) != 0) abort();
        term_free(u);
        etf_buf_free(&b);
    }
    term_free(t);
    return 0;
}
