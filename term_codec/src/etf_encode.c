/* External term format encoder: the bytes OTP 25's term_to_binary/1,2 produce, iteratively. */
#include "term_int.h"
#include "etf_tags.h"
#include "girder_be.h"

#include <zlib.h>

/*
** One loop over the term with an explicit stack of frames, so nesting costs no C stack: a
** frame is a run of terms still to encode (tuple elements, map keys and values, the cells of
** a list) or a size to patch once its contents are out. The output position and limit live
** in locals; before each term SLACK bytes are made free, which covers every fixed-size
** encoding (and short atom names copied as whole words), and longer ones reserve their size.
*/
#define SLACK 40
_Static_assert(SLACK >= 3 + TERM__ATOM_PAD, "an atom of up to TERM__ATOM_PAD bytes fits SLACK");
_Static_assert(SLACK >= 3 + 16, "a two-limb SMALL_BIG_EXT fits SLACK");

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "etf_encode.c stores bignum limbs as little-endian bytes"
#endif

enum { F_SEQ, F_MAP, F_LIST, F_PATCH };

typedef struct eframe {
    union {
        const term_t *p; /* F_SEQ: next term; F_MAP: the keys (values follow n further) */
        size_t at;       /* F_LIST, F_PATCH: output offset of the header to patch */
    };
    size_t n;    /* F_SEQ: terms left; F_MAP: pairs; F_LIST: cells so far */
    uintptr_t x; /* F_MAP: next of the 2n keys and values; F_LIST: the next cell */
    int kind;
} eframe;

typedef struct enc {
    eframe *fs, *fend; /* the frame stack */
    eframe small[32];
} enc;

/* Boxed, for a term inside another: constructors refuse TERM_NONE elements, so unlike
** term_is_boxed() this need not test for it (one test and branch less per term; the root is
** tested on entry). Used in the list walk only: in the other loops of encode_body() GCC 12
** allocated registers worse with it, and the whole cost more instructions (callgrind). */
static inline bool inner_boxed(term_t t)
{
    return (t & 7) == 0;
}
static inline int inner_box_type(term_t t)
{
    return inner_boxed(t) ? term__box(t)->type : 0;
}

/* Makes k bytes free at p (o->len is brought up to p first); the new p, or NULL. */
static uint8_t *grow(etf_buf *o, uint8_t *p, size_t k, uint8_t **lim)
{
    o->len = (size_t)(p - o->data);
    if (etf_buf_reserve(o, k) != 0) return NULL;
    *lim = o->data + o->cap;
    return o->data + o->len;
}

static int frames_grow(enc *e, eframe **fp)
{
    size_t n = (size_t)(e->fend - e->fs), used = (size_t)(*fp - e->fs);
    eframe *nf = term__alloc(2 * n * sizeof(eframe));
    if (!nf) return TERM_ENOMEM;
    memcpy(nf, e->fs, used * sizeof(eframe));
    if (e->fs != e->small) term__dealloc(e->fs, n * sizeof(eframe));
    e->fs = nf;
    e->fend = nf + 2 * n;
    *fp = nf + used;
    return 0;
}

/* Bytes an atom's encoding may take, SLACK beyond it included (names of up to
** TERM__ATOM_PAD bytes are copied as that many). */
static inline size_t atom_room(const term__atom_entry *a)
{
    return a->len + 3 + SLACK;
}

/*
** Atoms: ATOM_EXT with Latin-1 bytes when every character fits (what term_to_binary does
** before OTP 26), else SMALL_ATOM_UTF8_EXT / ATOM_UTF8_EXT; ETF_ENC_UTF8_ATOMS always UTF-8.
** Room for atom_room() bytes must be there.
*/
static inline uint8_t *put_atom(uint8_t *p, const term__atom_entry *a, unsigned flags)
{
    size_t len = a->len;
    if ((flags & ETF_ENC_UTF8_ATOMS) || !a->latin1) {
        if (len < 256) {
            p[0] = SMALL_ATOM_UTF8_EXT;
            p[1] = (uint8_t)len;
            p += 2;
        } else {
            p[0] = ATOM_UTF8_EXT;
            girder__put16(p + 1, (unsigned)len);
            p += 3;
        }
    } else {
        p[0] = ATOM_EXT;
        p += 3;
        if (!a->ascii) {
            size_t n = 0;
            for (size_t i = 0; i < len; i++) {
                uint8_t ch = (uint8_t)a->name[i];
                if (ch >= 0x80) {
                    ch = (uint8_t)(((ch & 0x03) << 6) | ((uint8_t)a->name[i + 1] & 0x3F));
                    i++;
                }
                p[n++] = ch;
            }
            girder__put16(p - 2, (unsigned)n);
            return p + n;
        }
        girder__put16(p - 2, (unsigned)len);
    }
    if (len <= TERM__ATOM_PAD) /* names are zero-padded that far */
        memcpy(p, a->name, TERM__ATOM_PAD);
    else
        memcpy(p, a->name, len);
    return p + len;
}

/* Interned or foreign: both encode from the same kind of entry, so to the same bytes. */
static inline const term__atom_entry *atom_entry(term_t a)
{
    return term__atom_entry_any(a);
}

/* SMALL_BIG_EXT or LARGE_BIG_EXT of a magnitude; room for 6 + 8 * nl bytes must be there. */
static uint8_t *put_magnitude(uint8_t *p, bool neg, const uint64_t *limbs, size_t nl)
{
    while (nl > 0 && limbs[nl - 1] == 0) nl--; /* bignums are normalised; stay safe anyway */
    size_t nbytes = nl ? (nl - 1) * 8 + (size_t)(64 - __builtin_clzll(limbs[nl - 1]) + 7) / 8 : 0;
    if (nbytes < 256) {
        p[0] = SMALL_BIG_EXT;
        p[1] = (uint8_t)nbytes;
        p[2] = neg;
        p += 3;
    } else {
        p[0] = LARGE_BIG_EXT;
        girder__put32(p + 1, (uint32_t)nbytes);
        p[5] = neg;
        p += 6;
    }
    /* little-endian limbs are the little-endian bytes wanted: whole limbs are one store each
    ** (the top one may write zero bytes past nbytes, inside the room asked for) */
    for (size_t i = 0; i < nl; i++) memcpy(p + 8 * i, &limbs[i], 8);
    return p + nbytes;
}

/* A small integer (SLACK covers it). */
static inline uint8_t *put_small(uint8_t *p, int64_t v)
{
    if ((uint64_t)v <= 255) {
        p[0] = SMALL_INTEGER_EXT;
        p[1] = (uint8_t)v;
        return p + 2;
    }
    if (v >= INT32_MIN && v <= INT32_MAX) {
        p[0] = INTEGER_EXT;
        girder__put32(p + 1, (uint32_t)(int32_t)v);
        return p + 5;
    }
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    return put_magnitude(p, v < 0, &mag, 1);
}

/* NEW_PID_EXT; room for 13 + atom_room(node) bytes must be there. */
static uint8_t *put_pid(uint8_t *p, const box_pid *x, unsigned flags)
{
    *p++ = NEW_PID_EXT;
    p = put_atom(p, atom_entry(x->node), flags);
    girder__put32(p, x->id);
    girder__put32(p + 4, x->serial);
    girder__put32(p + 8, x->creation);
    return p + 12;
}

/*
** Appends the encoding of t (with the version byte unless ETF_ENC_NO_VERSION) to o: 0, or an
** error with o->len as it was.
*/
static int encode_body(etf_buf *o, term_t t, unsigned flags)
{
    if (t == TERM_NONE) return TERM_EINVAL;
    size_t start = o->len;
    enc e;
    e.fs = e.small;
    e.fend = e.small + sizeof e.small / sizeof e.small[0];
    eframe *fp = e.fs;
    int rc = 0;
    if (o->cap - o->len < SLACK + 1 && etf_buf_reserve(o, SLACK + 1) != 0) return TERM_ENOMEM;
    uint8_t *p = o->data + o->len, *lim = o->data + o->cap;
    if (!(flags & ETF_ENC_NO_VERSION)) *p++ = ETF_VERSION;

#define ENSURE(k)                                              \
    do {                                                       \
        if (TERM__UNLIKELY((size_t)(lim - p) < (size_t)(k))) { \
            if (!(p = grow(o, p, (k), &lim))) goto nomem;      \
        }                                                      \
    } while (0)
#define PUSH(k, ptr_or_at, n_, x_)                                            \
    do {                                                                      \
        if (TERM__UNLIKELY(fp == e.fend) && frames_grow(&e, &fp)) goto nomem; \
        fp->kind = (k);                                                       \
        fp->n = (n_);                                                         \
        fp->x = (x_);                                                         \
        ptr_or_at;                                                            \
        fp++;                                                                 \
    } while (0)

/* Writes the immediate x: a small integer, an atom or [] (anything else is no term). */
#define PUT_IMM(x)                                                                 \
    do {                                                                           \
        term_t x_ = (x);                                                           \
        ENSURE(SLACK);                                                             \
        if (term_is_small(x_)) {                                                   \
            p = put_small(p, term_small_value(x_));                                \
        } else if (term_atom_is_interned(x_)) {                                    \
            const term__atom_entry *a_ = term__atom_entry_of((uint32_t)(x_ >> 3)); \
            if (a_->len > TERM__ATOM_PAD) ENSURE(atom_room(a_));                   \
            p = put_atom(p, a_, flags);                                            \
        } else if (x_ == TERM_NIL) {                                               \
            *p++ = NIL_EXT;                                                        \
        } else {                                                                   \
            rc = TERM_EINVAL;                                                      \
            goto out;                                                              \
        }                                                                          \
    } while (0)

    /* t is the term to encode next; seq[0..left) a run of terms after it (tuple elements). */
    const term_t *seq;
    size_t left;
    eframe *f;
    for (;;) {
        if (!term_is_boxed(t)) {
            PUT_IMM(t);
            goto next;
        }
        ENSURE(SLACK);
        const term_box *b = term__box(t);
        size_t n = b->n;
        switch (b->type) {
        case BOX_TUPLE: {
            const term_t *el = ((const box_tuple *)b)->e;
            if (n <= 255) {
                p[0] = SMALL_TUPLE_EXT;
                p[1] = (uint8_t)n;
                p += 2;
            } else {
                p[0] = LARGE_TUPLE_EXT;
                girder__put32(p + 1, (uint32_t)n);
                p += 5;
            }
            seq = el;
            left = n;
            goto run;
        }
        case BOX_MAP: {
            const term_t *kv = ((const box_map *)b)->kv;
            p[0] = MAP_EXT;
            girder__put32(p + 1, (uint32_t)n);
            p += 5;
            if (n == 0) goto next;
            PUSH(F_MAP, fp->p = kv, n, 0);
            goto map_run;
        }
        case BOX_CONS: {
            /* Optimistically a string: bytes go out as they come and are widened into
            ** SMALL_INTEGER_EXTs in place if the list turns out not to be one. */
            size_t at = (size_t)(p - o->data), k;
            p += 3;
            term_t x = t;
            {
                /* stop: where the room or the 65,535 bytes of a STRING_EXT end, whichever is
                ** first; one test per byte for both */
                uint8_t *s0 = p, *stop = (size_t)(lim - p) > 65535 ? p + 65535 : lim;
                while (term_is_boxed(x)) {
                    const box_cons *c = (const box_cons *)term__box(x);
                    if (c->h.type != BOX_CONS) break;
                    size_t r = c->h.n; /* a run of string cells from here (see box_cons) */
                    if (r > 1 && r <= (size_t)(stop - p)) {
                        /* four cells a step: the loop's own instructions cost as much as
                        ** the load, shift and store of a byte */
                        size_t i = 0;
                        for (; i + 4 <= r; i += 4) {
                            p[i] = (uint8_t)(c[i].hd >> 2);
                            p[i + 1] = (uint8_t)(c[i + 1].hd >> 2);
                            p[i + 2] = (uint8_t)(c[i + 2].hd >> 2);
                            p[i + 3] = (uint8_t)(c[i + 3].hd >> 2);
                        }
                        for (; i < r; i++) p[i] = (uint8_t)(c[i].hd >> 2);
                        p += r;
                        x = c[r - 1].tl;
                        continue;
                    }
                    term_t h = c->hd;
                    /* a small integer 0..255 is 0..255 << 2 | 1: one mask tells */
                    if ((h & ~(term_t)0x3FC) != 1) break;
                    if (TERM__UNLIKELY(p == stop)) {
                        if (p - s0 == 65535) break;
                        ENSURE(1);
                        s0 = o->data + at + 3;
                        stop = (size_t)(lim - s0) > 65535 ? s0 + 65535 : lim;
                    }
                    *p++ = (uint8_t)(h >> 2);
                    x = c->tl;
                }
                k = (size_t)(p - s0);
            }
            uint8_t *h = o->data + at;
            if (x == TERM_NIL) {
                h[0] = STRING_EXT;
                girder__put16(h + 1, (unsigned)k);
                goto next;
            }
            ENSURE(2 + k);
            h = o->data + at;
            for (size_t i = k; i-- > 0;) {
                h[6 + 2 * i] = h[3 + i];
                h[5 + 2 * i] = SMALL_INTEGER_EXT;
            }
            h[0] = LIST_EXT;
            p += 2 + k;
            if (term__box_type(x) != BOX_CONS) { /* improper, after k bytes */
                girder__put32(h + 1, (uint32_t)k);
                t = x;
                continue;
            }
            PUSH(F_LIST, fp->at = at, k, x);
            goto list_run;
        }
        case BOX_BIN: {
            const box_bin *bb = (const box_bin *)b;
            size_t nb = (size_t)((bb->nbits + 7) / 8);
            unsigned last = (unsigned)(bb->nbits % 8);
            if (nb > UINT32_MAX) {
                rc = TERM_ESIZE;
                goto out;
            }
            ENSURE(6 + nb);
            p[0] = last ? BIT_BINARY_EXT : BINARY_EXT;
            girder__put32(p + 1, (uint32_t)nb);
            p += 5;
            if (last) *p++ = (uint8_t)last;
            if (bb->h.aux == 0 && !last)
                term__copy(p, bb->data, nb);
            else
                term_bitstring_copy(t, p);
            p += nb;
            goto next;
        }
        case BOX_FLOAT: {
            uint64_t bits;
            memcpy(&bits, &((const box_float *)b)->d, 8);
            p[0] = NEW_FLOAT_EXT;
            girder__put64(p + 1, bits);
            p += 9;
            goto next;
        }
        case BOX_FATOM: {
            const term__atom_entry *a = term__fatom_entry(b);
            ENSURE(atom_room(a));
            p = put_atom(p, a, flags);
            goto next;
        }
        case BOX_BIG: {
            const uint64_t *l = ((const box_big *)b)->limbs;
            if (n - 1 < 2 && l[n - 1] != 0) { /* one or two limbs, normalised: SLACK covers it */
                size_t nb = (n - 1) * 8 + (size_t)(71 - __builtin_clzll(l[n - 1])) / 8;
                p[0] = SMALL_BIG_EXT;
                p[1] = (uint8_t)nb;
                p[2] = (b->flags & BOXF_NEG) != 0;
                memcpy(p + 3, l, 8);
                if (n == 2) memcpy(p + 11, l + 1, 8);
                p += 3 + nb;
                goto next;
            }
            ENSURE(6 + 8 * (size_t)n);
            p = put_magnitude(p, b->flags & BOXF_NEG, l, n);
            goto next;
        }
        case BOX_PID: {
            const box_pid *x = (const box_pid *)b;
            ENSURE(13 + atom_room(atom_entry(x->node)));
            p = put_pid(p, x, flags);
            goto next;
        }
        case BOX_REF: {
            const box_ref *x = (const box_ref *)b;
            size_t nw = x->h.aux;
            ENSURE(3 + atom_room(atom_entry(x->node)) + 4 + 4 * nw);
            p[0] = NEWER_REFERENCE_EXT;
            girder__put16(p + 1, (unsigned)nw);
            p = put_atom(p + 3, atom_entry(x->node), flags);
            girder__put32(p, x->creation);
            for (size_t i = 0; i < nw; i++) girder__put32(p + 4 + 4 * i, x->words[i]);
            p += 4 + 4 * nw;
            goto next;
        }
        case BOX_PORT: {
            const box_port *x = (const box_port *)b;
            /* Like erts: numbers past the 28 bits of the old port format go out as V4. */
            bool v4 = x->id > 0x0FFFFFFF;
            ENSURE(1 + atom_room(atom_entry(x->node)) + 12);
            *p = v4 ? V4_PORT_EXT : NEW_PORT_EXT;
            p = put_atom(p + 1, atom_entry(x->node), flags);
            if (v4) {
                girder__put64(p, x->id);
                girder__put32(p + 8, x->creation);
                p += 12;
            } else {
                girder__put32(p, (uint32_t)x->id);
                girder__put32(p + 4, x->creation);
                p += 8;
            }
            goto next;
        }
        case BOX_EXPORT: {
            const box_export *x = (const box_export *)b;
            ENSURE(1 + atom_room(atom_entry(x->module)) + atom_room(atom_entry(x->function)) + 2);
            *p = EXPORT_EXT;
            p = put_atom(p + 1, atom_entry(x->module), flags);
            p = put_atom(p, atom_entry(x->function), flags);
            p[0] = SMALL_INTEGER_EXT;
            p[1] = (uint8_t)x->arity;
            p += 2;
            goto next;
        }
        case BOX_FUN: {
            const box_fun *fn = (const box_fun *)b;
            if (fn->h.flags & BOXF_OLDFUN) {
                /* FUN_EXT: NumFree Pid Module OldIndex OldUniq Free... */
                const box_pid *pid = (const box_pid *)term__box(fn->pid);
                ENSURE(5 + 13 + atom_room(atom_entry(pid->node)) +
                       atom_room(atom_entry(fn->module)));
                p[0] = FUN_EXT;
                girder__put32(p + 1, (uint32_t)n);
                p = put_pid(p + 5, pid, flags);
                p = put_atom(p, atom_entry(fn->module), flags);
                if (n) PUSH(F_SEQ, fp->p = fn->free, n, 0);
                PUSH(F_SEQ, fp->p = &fn->old_uniq, 1, 0);
            } else {
                /* NEW_FUN_EXT: Size Arity Uniq Index NumFree Module OldIndex OldUniq Pid
                ** Free...; the size is patched when the frame below it is reached. */
                ENSURE(30 + atom_room(atom_entry(fn->module)));
                size_t at = (size_t)(p - o->data);
                p[0] = NEW_FUN_EXT;
                p[5] = (uint8_t)fn->arity;
                memcpy(p + 6, fn->uniq, 16);
                girder__put32(p + 22, fn->index);
                girder__put32(p + 26, (uint32_t)n);
                p = put_atom(p + 30, atom_entry(fn->module), flags);
                PUSH(F_PATCH, fp->at = at, 0, 0);
                if (n) PUSH(F_SEQ, fp->p = fn->free, n, 0);
                PUSH(F_SEQ, fp->p = &fn->old_uniq, 2, 0); /* old_uniq, pid */
            }
            t = fn->old_index;
            continue;
        }
        default:
            rc = TERM_EINVAL;
            goto out;
        }
    next:
        if (fp == e.fs) goto out;
        f = fp - 1;
        switch (f->kind) {
        case F_SEQ:
            seq = f->p;
            left = f->n;
            fp--;
            goto run;
        case F_MAP:
            goto map_run;
        case F_LIST:
            goto list_run;
        default: /* F_PATCH */
            girder__put32(o->data + f->at + 1, (uint32_t)((size_t)(p - o->data) - f->at - 1));
            fp--;
            goto next;
        }
    /* Immediates of a run go out here; the first boxed term is descended into, the rest of
    ** the run kept in a frame. */
    run:
        while (left > 0) {
            t = *seq++;
            left--;
            if (term_is_boxed(t)) {
                if (left > 0) PUSH(F_SEQ, fp->p = seq, left, 0);
                goto descend;
            }
            PUT_IMM(t);
        }
        goto next;
    map_run:
        f = fp - 1;
        for (size_t i = f->x, nk = f->n; i < 2 * nk; i++) {
            t = f->p[(i >> 1) + (i & 1) * nk]; /* key i / 2, then its value */
            if (term_is_boxed(t)) {
                f->x = i + 1;
                goto descend;
            }
            PUT_IMM(t);
        }
        fp--;
        goto next;
    list_run:
        /* the cell and the count in locals: byte stores through p may alias the frame */
        f = fp - 1;
        for (term_t x = f->x, k = f->n;;) {
            if (inner_box_type(x) != BOX_CONS) { /* the tail, in place of this frame */
                girder__put32(o->data + f->at + 1, (uint32_t)k);
                fp--;
                t = x;
                goto descend;
            }
            const box_cons *c = (const box_cons *)term__box(x);
            t = c->hd;
            x = c->tl;
            k++;
            if (inner_boxed(t)) {
                f->x = x;
                f->n = k;
                goto descend;
            }
            PUT_IMM(t);
        }
    descend:;
    }
nomem:
    rc = TERM_ENOMEM;
out:
    o->len = rc ? start : (size_t)(p - o->data);
    if (e.fs != e.small) term__dealloc(e.fs, (size_t)(e.fend - e.fs) * sizeof(eframe));
    return rc;
#undef ENSURE
#undef PUSH
#undef PUT_IMM
}

/* Deflates the plain encoding (level 6 as term_to_binary's default) and keeps it only when
** it is smaller, as term_to_binary does. Out of line: etf_encode() then needs no frame. */
static __attribute__((noinline)) int encode_compressed(term_t t, unsigned flags, etf_buf *out)
{
    size_t start = out->len;
    if (!(flags & ETF_ENC_NO_VERSION)) {
        if (etf_buf_reserve(out, 1) != 0) return TERM_ENOMEM;
        out->data[out->len++] = ETF_VERSION;
    }
    etf_buf plain = {0};
    int rc = encode_body(&plain, t, flags | ETF_ENC_NO_VERSION);
    if (rc == 0 && plain.len > UINT32_MAX) rc = TERM_ESIZE;
    if (rc == 0) {
        uLongf clen = compressBound((uLong)plain.len);
        if (etf_buf_reserve(out, 5 + clen) != 0) {
            rc = TERM_ENOMEM;
        } else {
            uint8_t *p = out->data + out->len;
            if (compress2(p + 5, &clen, plain.data, (uLong)plain.len, 6) != Z_OK) {
                rc = TERM_EZLIB;
            } else if (5 + clen < plain.len) {
                p[0] = COMPRESSED;
                girder__put32(p + 1, (uint32_t)plain.len);
                out->len += 5 + clen;
            } else {
                rc = term__buf_put(out, plain.data, plain.len);
            }
        }
    }
    etf_buf_free(&plain);
    if (rc) out->len = start;
    return rc;
}

int etf_encode(term_t t, unsigned flags, etf_buf *out)
{
    if (flags & ETF_ENC_COMPRESSED) return encode_compressed(t, flags, out);
    return encode_body(out, t, flags);
}

long long etf_encoded_size(term_t t, unsigned flags)
{
    etf_buf b = {0};
    int rc = etf_encode(t, flags & ~(unsigned)ETF_ENC_COMPRESSED, &b);
    long long n = rc ? rc : (long long)b.len;
    etf_buf_free(&b);
    return n;
}
