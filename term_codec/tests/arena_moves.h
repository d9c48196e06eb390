/* Inputs that make the decoder's arena move at every point of an erl vector's boxes, and the
** check over them, shared by test-etf (interned atoms) and test-term-foreign (every atom
** foreign). Included after cmocka.h and girder/term.h. */
#ifndef GIRDER_TEST_ARENA_MOVES_H
#define GIRDER_TEST_ARENA_MOVES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The pads: past the stack arena (2 KB) in small steps, then on to the heap arena's doubling. */
#define MOVES_PAD_END 5000
static inline size_t moves_next_pad(size_t pad)
{
    return pad + (pad < 2600 ? 24 : 200);
}

/*
** The bytes of [<<Pad>>, V, #{a => V, b => V}] for the vector bytes v[0..vlen) (131 first),
** and of a lone binary of the same length (decoded first, so that the list starts in the
** binary's predicted block and outgrows it). Both malloc'd, *len bytes each; NULL on ENOMEM.
*/
static inline uint8_t *moves_input(const uint8_t *v, size_t vlen, size_t pad, uint8_t **lone,
                                   size_t *len)
{
    const uint8_t *body = v + 1;
    size_t blen = vlen - 1;
    size_t n = 6 + 5 + pad + blen + 5 + 2 * (4 + blen) + 1;
    uint8_t *in = malloc(n), *lo = malloc(n);
    if (!in || !lo) {
        free(in);
        free(lo);
        return NULL;
    }
    size_t k = 0;
    in[k++] = 131, in[k++] = 108, in[k++] = 0, in[k++] = 0, in[k++] = 0, in[k++] = 3;
    in[k++] = 109;
    in[k++] = (uint8_t)(pad >> 24), in[k++] = (uint8_t)(pad >> 16);
    in[k++] = (uint8_t)(pad >> 8), in[k++] = (uint8_t)pad;
    for (size_t j = 0; j < pad; j++) in[k++] = (uint8_t)(j * 7);
    memcpy(in + k, body, blen), k += blen;
    in[k++] = 116, in[k++] = 0, in[k++] = 0, in[k++] = 0, in[k++] = 2;
    for (uint8_t key = 'a'; key <= 'b'; key++) {
        in[k++] = 100, in[k++] = 0, in[k++] = 1, in[k++] = key;
        memcpy(in + k, body, blen), k += blen;
    }
    in[k++] = 106;
    size_t m = n - 6;
    lo[0] = 131, lo[1] = 109;
    lo[2] = (uint8_t)(m >> 24), lo[3] = (uint8_t)(m >> 16);
    lo[4] = (uint8_t)(m >> 8), lo[5] = (uint8_t)m;
    memset(lo + 6, 'x', m);
    *lone = lo;
    *len = n;
    return in;
}

/* A decoder under test: the term of in[0..len), or TERM_NONE with *e set. */
typedef term_t (*moves_decoder)(const uint8_t *in, size_t len, etf_error *e);

/* For every pad: the lone binary decoded (etf_decode), then the padded list with decode, which
** must succeed and re-encode to exactly its input; name says which vector failed. */
static inline void moves_check(const char *name, const uint8_t *v, size_t vlen,
                               moves_decoder decode)
{
    for (size_t pad = 0; pad < MOVES_PAD_END; pad = moves_next_pad(pad)) {
        uint8_t *lone = NULL;
        size_t len = 0;
        uint8_t *in = moves_input(v, vlen, pad, &lone, &len);
        assert_non_null(in);
        term_free(etf_decode(lone, len, NULL, NULL, NULL));
        etf_error e = {0, 0};
        term_t t = decode(in, len, &e);
        if (t == TERM_NONE)
            fail_msg("%s after a pad of %zu: error %d at %zu", name, pad, e.code, e.offset);
        etf_buf b = {0};
        assert_int_equal(etf_encode(t, 0, &b), 0);
        if (b.len != len || memcmp(b.data, in, len) != 0)
            fail_msg("%s after a pad of %zu: the bytes differ", name, pad);
        etf_buf_free(&b);
        term_free(t);
        free(in);
        free(lone);
    }
}

#endif
