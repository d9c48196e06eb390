/* External term format encoder: the bytes OTP 25's term_to_binary/1,2 produce, iteratively. */
#include "term_int.h"
#include "etf_tags.h"

#include <zlib.h>

static inline void put8(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)v;
}
static inline void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* Reserves n bytes and returns a pointer to them (advancing len), or NULL. */
static inline uint8_t *grab(etf_buf *o, size_t n)
{
    if (o->cap - o->len < n && etf_buf_reserve(o, n) != 0) return NULL;
    uint8_t *p = o->data + o->len;
    o->len += n;
    return p;
}

/*
** Atoms: ATOM_EXT with Latin-1 bytes when every character fits (what term_to_binary does
** before OTP 26), else SMALL_ATOM_UTF8_EXT / ATOM_UTF8_EXT; ETF_ENC_UTF8_ATOMS always UTF-8.
*/
static int enc_atom(etf_buf *o, term_t a, unsigned flags)
{
    size_t len;
    const char *nm = term__atom_name(term_atom_index(a), &len);
    if (!(flags & ETF_ENC_UTF8_ATOMS) && term__atom_is_latin1(term_atom_index(a))) {
        uint8_t *p = grab(o, 3 + len);
        if (!p) return TERM_ENOMEM;
        p[0] = ATOM_EXT;
        size_t n = 0;
        for (size_t i = 0; i < len; i++) {
            uint8_t ch = (uint8_t)nm[i];
            if (ch >= 0x80) {
                ch = (uint8_t)(((ch & 0x03) << 6) | ((uint8_t)nm[i + 1] & 0x3F));
                i++;
            }
            p[3 + n++] = ch;
        }
        put16(p + 1, (unsigned)n);
        o->len -= len - n; /* multi-byte characters shrank */
        return 0;
    }
    uint8_t *p = grab(o, (len < 256 ? 2 : 3) + len);
    if (!p) return TERM_ENOMEM;
    if (len < 256) {
        p[0] = SMALL_ATOM_UTF8_EXT;
        p[1] = (uint8_t)len;
        memcpy(p + 2, nm, len);
    } else {
        p[0] = ATOM_UTF8_EXT;
        put16(p + 1, (unsigned)len);
        memcpy(p + 3, nm, len);
    }
    return 0;
}

static int enc_magnitude(etf_buf *o, bool neg, const uint64_t *limbs, size_t nl)
{
    size_t nbytes = nl * 8;
    while (nbytes > 0 && ((limbs[(nbytes - 1) / 8] >> (8 * ((nbytes - 1) % 8))) & 0xFF) == 0)
        nbytes--;
    uint8_t *p = grab(o, (nbytes < 256 ? 3 : 6) + nbytes);
    if (!p) return TERM_ENOMEM;
    if (nbytes < 256) {
        p[0] = SMALL_BIG_EXT;
        p[1] = (uint8_t)nbytes;
        p[2] = neg;
        p += 3;
    } else {
        p[0] = LARGE_BIG_EXT;
        put32(p + 1, (uint32_t)nbytes);
        p[5] = neg;
        p += 6;
    }
    for (size_t i = 0; i < nbytes; i++) p[i] = (uint8_t)(limbs[i / 8] >> (8 * (i % 8)));
    return 0;
}

static int enc_small(etf_buf *o, int64_t v)
{
    if (v >= 0 && v <= 255) {
        uint8_t *p = grab(o, 2);
        if (!p) return TERM_ENOMEM;
        p[0] = SMALL_INTEGER_EXT;
        p[1] = (uint8_t)v;
        return 0;
    }
    if (v >= INT32_MIN && v <= INT32_MAX) {
        uint8_t *p = grab(o, 5);
        if (!p) return TERM_ENOMEM;
        p[0] = INTEGER_EXT;
        put32(p + 1, (uint32_t)(int32_t)v);
        return 0;
    }
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    return enc_magnitude(o, v < 0, &mag, 1);
}

static int enc_pid(etf_buf *o, const box_pid *p, unsigned flags)
{
    uint8_t *q = grab(o, 1);
    if (!q) return TERM_ENOMEM;
    *q = NEW_PID_EXT;
    if (enc_atom(o, p->node, flags)) return TERM_ENOMEM;
    q = grab(o, 12);
    if (!q) return TERM_ENOMEM;
    put32(q, p->id);
    put32(q + 4, p->serial);
    put32(q + 8, p->creation);
    return 0;
}

/* Stack entries are terms, or a marker (low bits 11) asking to patch a NEW_FUN_EXT size. */
#define FUN_SIZE_MARK(pos) (((uintptr_t)(pos) << 2) | 3)

/* A proper list of at most 65535 small integers 0..255 goes out as STRING_EXT. */
static bool as_string(term_t t, size_t *n)
{
    size_t k = 0;
    while (term_is_cons(t)) {
        box_cons *c = (box_cons *)term__box(t);
        if (!term_is_small(c->hd) || (uint64_t)term_small_value(c->hd) > 255 || k == 65535)
            return false;
        k++;
        t = c->tl;
    }
    *n = k;
    return t == TERM_NIL;
}

static int enc_one(etf_buf *o, term__stack *s, term_t t, unsigned flags)
{
    if (term_is_small(t)) return enc_small(o, term_small_value(t));
    if (term_is_atom(t)) return enc_atom(o, t, flags);
    if (t == TERM_NIL) {
        uint8_t *p = grab(o, 1);
        if (!p) return TERM_ENOMEM;
        *p = NIL_EXT;
        return 0;
    }
    if (!term_is_boxed(t)) return TERM_EINVAL;
    term_box *b = term__box(t);
    uint8_t *p;
    switch (b->type) {
    case BOX_BIG:
        return enc_magnitude(o, b->flags & BOXF_NEG, ((box_big *)b)->limbs, b->n);
    case BOX_FLOAT: {
        if (!(p = grab(o, 9))) return TERM_ENOMEM;
        uint64_t bits;
        memcpy(&bits, &((box_float *)b)->d, 8);
        p[0] = NEW_FLOAT_EXT;
        put64(p + 1, bits);
        return 0;
    }
    case BOX_TUPLE: {
        size_t n = b->n;
        if (n <= 255) {
            if (!(p = grab(o, 2))) return TERM_ENOMEM;
            p[0] = SMALL_TUPLE_EXT;
            p[1] = (uint8_t)n;
        } else {
            if (!(p = grab(o, 5))) return TERM_ENOMEM;
            p[0] = LARGE_TUPLE_EXT;
            put32(p + 1, (uint32_t)n);
        }
        box_tuple *x = (box_tuple *)b;
        for (size_t i = n; i-- > 0;)
            if (term__stack_push(s, x->e[i])) return TERM_ENOMEM;
        return 0;
    }
    case BOX_MAP: {
        size_t n = b->n;
        if (!(p = grab(o, 5))) return TERM_ENOMEM;
        p[0] = MAP_EXT;
        put32(p + 1, (uint32_t)n);
        box_map *m = (box_map *)b;
        for (size_t i = n; i-- > 0;)
            if (term__stack_push(s, m->kv[n + i]) || term__stack_push(s, m->kv[i]))
                return TERM_ENOMEM;
        return 0;
    }
    case BOX_CONS: {
        size_t n;
        if (as_string(t, &n)) {
            if (!(p = grab(o, 3 + n))) return TERM_ENOMEM;
            p[0] = STRING_EXT;
            put16(p + 1, (unsigned)n);
            for (size_t i = 0; i < n; i++) {
                box_cons *c = (box_cons *)term__box(t);
                p[3 + i] = (uint8_t)term_small_value(c->hd);
                t = c->tl;
            }
            return 0;
        }
        n = 0;
        term_t x = t;
        while (term_is_cons(x)) {
            n++;
            x = ((box_cons *)term__box(x))->tl;
        }
        if (n > UINT32_MAX) return TERM_ESIZE;
        if (!(p = grab(o, 5))) return TERM_ENOMEM;
        p[0] = LIST_EXT;
        put32(p + 1, (uint32_t)n);
        /* Tail first (popped last), then the elements reversed in place. */
        if (term__stack_push(s, x)) return TERM_ENOMEM;
        size_t mark = s->n;
        for (x = t; term_is_cons(x); x = ((box_cons *)term__box(x))->tl)
            if (term__stack_push(s, ((box_cons *)term__box(x))->hd)) return TERM_ENOMEM;
        for (size_t i = mark, j = s->n - 1; i < j; i++, j--) {
            uintptr_t tmp = s->v[i];
            s->v[i] = s->v[j];
            s->v[j] = tmp;
        }
        return 0;
    }
    case BOX_BIN: {
        box_bin *bb = (box_bin *)b;
        size_t n = (size_t)((bb->nbits + 7) / 8);
        unsigned last = (unsigned)(bb->nbits % 8);
        if (n > UINT32_MAX) return TERM_ESIZE;
        if (!(p = grab(o, (last ? 6 : 5) + n))) return TERM_ENOMEM;
        p[0] = last ? BIT_BINARY_EXT : BINARY_EXT;
        put32(p + 1, (uint32_t)n);
        if (last) p[5] = (uint8_t)last;
        term_bitstring_copy(t, p + (last ? 6 : 5));
        return 0;
    }
    case BOX_PID:
        return enc_pid(o, (box_pid *)b, flags);
    case BOX_PORT: {
        box_port *x = (box_port *)b;
        /* Like erts: numbers past the 28 bits of the old port format go out as V4. */
        bool v4 = x->id > 0x0FFFFFFF;
        if (!(p = grab(o, 1))) return TERM_ENOMEM;
        *p = v4 ? V4_PORT_EXT : NEW_PORT_EXT;
        if (enc_atom(o, x->node, flags)) return TERM_ENOMEM;
        if (!(p = grab(o, v4 ? 12 : 8))) return TERM_ENOMEM;
        if (v4)
            put64(p, x->id), put32(p + 8, x->creation);
        else
            put32(p, (uint32_t)x->id), put32(p + 4, x->creation);
        return 0;
    }
    case BOX_REF: {
        box_ref *x = (box_ref *)b;
        if (!(p = grab(o, 3))) return TERM_ENOMEM;
        p[0] = NEWER_REFERENCE_EXT;
        put16(p + 1, x->h.aux);
        if (enc_atom(o, x->node, flags)) return TERM_ENOMEM;
        if (!(p = grab(o, 4 + 4 * (size_t)x->h.aux))) return TERM_ENOMEM;
        put32(p, x->creation);
        for (int i = 0; i < x->h.aux; i++) put32(p + 4 + 4 * i, x->words[i]);
        return 0;
    }
    case BOX_EXPORT: {
        box_export *x = (box_export *)b;
        if (!(p = grab(o, 1))) return TERM_ENOMEM;
        *p = EXPORT_EXT;
        if (enc_atom(o, x->module, flags) || enc_atom(o, x->function, flags)) return TERM_ENOMEM;
        if (!(p = grab(o, 2))) return TERM_ENOMEM;
        p[0] = SMALL_INTEGER_EXT;
        p[1] = (uint8_t)x->arity;
        return 0;
    }
    case BOX_FUN: {
        box_fun *f = (box_fun *)b;
        if (f->h.flags & BOXF_OLDFUN) {
            if (!(p = grab(o, 5))) return TERM_ENOMEM;
            p[0] = FUN_EXT;
            put32(p + 1, f->h.n);
            if (enc_pid(o, (box_pid *)term__box(f->pid), flags) || enc_atom(o, f->module, flags))
                return TERM_ENOMEM;
        } else {
            size_t start = o->len;
            if (!(p = grab(o, 30))) return TERM_ENOMEM;
            p[0] = NEW_FUN_EXT;
            put8(p + 5, f->arity);
            memcpy(p + 6, f->uniq, 16);
            put32(p + 22, f->index);
            put32(p + 26, f->h.n);
            if (enc_atom(o, f->module, flags)) return TERM_ENOMEM;
            /* Old index, old uniq and pid come next; then the free variables; the size is
            ** patched when the marker below is popped after the last free variable. */
            if (term__stack_push(s, FUN_SIZE_MARK(start))) return TERM_ENOMEM;
            for (size_t i = f->h.n; i-- > 0;)
                if (term__stack_push(s, f->free[i])) return TERM_ENOMEM;
            if (term__stack_push(s, f->pid) || term__stack_push(s, f->old_uniq) ||
                term__stack_push(s, f->old_index))
                return TERM_ENOMEM;
            return 0;
        }
        /* FUN_EXT: Index, Uniq, then free variables */
        for (size_t i = f->h.n; i-- > 0;)
            if (term__stack_push(s, f->free[i])) return TERM_ENOMEM;
        if (term__stack_push(s, f->old_uniq) || term__stack_push(s, f->old_index))
            return TERM_ENOMEM;
        return 0;
    }
    }
    return TERM_EINVAL;
}

/*
** Fast path: plain recursion over the common shapes, which is about twice as quick as the
** explicit stack. Depth is capped; a deeper subterm (and any local fun) is handed to the
** iterative encoder, so crafted nesting still costs no C stack.
*/
#define FAST_MAX_DEPTH 64

static int encode_plain(term_t t, unsigned flags, etf_buf *out);

static int enc_fast(etf_buf *o, term_t t, unsigned flags, int depth)
{
    for (;;) {
        if (term_is_small(t)) return enc_small(o, term_small_value(t));
        if (term_is_atom(t)) return enc_atom(o, t, flags);
        uint8_t *p;
        if (t == TERM_NIL) {
            if (!(p = grab(o, 1))) return TERM_ENOMEM;
            *p = NIL_EXT;
            return 0;
        }
        if (!term_is_boxed(t)) return TERM_EINVAL;
        if (depth >= FAST_MAX_DEPTH) return encode_plain(t, flags, o);
        term_box *b = term__box(t);
        switch (b->type) {
        case BOX_TUPLE: {
            size_t n = b->n;
            if (n <= 255) {
                if (!(p = grab(o, 2))) return TERM_ENOMEM;
                p[0] = SMALL_TUPLE_EXT;
                p[1] = (uint8_t)n;
            } else {
                if (!(p = grab(o, 5))) return TERM_ENOMEM;
                p[0] = LARGE_TUPLE_EXT;
                put32(p + 1, (uint32_t)n);
            }
            const term_t *e = ((box_tuple *)b)->e;
            for (size_t i = 0; i < n; i++) {
                int rc = enc_fast(o, e[i], flags, depth + 1);
                if (rc) return rc;
            }
            return 0;
        }
        case BOX_MAP: {
            size_t n = b->n;
            if (!(p = grab(o, 5))) return TERM_ENOMEM;
            p[0] = MAP_EXT;
            put32(p + 1, (uint32_t)n);
            const term_t *kv = ((box_map *)b)->kv;
            for (size_t i = 0; i < n; i++) {
                int rc = enc_fast(o, kv[i], flags, depth + 1);
                if (!rc) rc = enc_fast(o, kv[n + i], flags, depth + 1);
                if (rc) return rc;
            }
            return 0;
        }
        case BOX_CONS: {
            /* One walk finds the length and whether the list is a byte string. */
            size_t n = 0;
            bool bytes = true;
            term_t x = t;
            while (term__box_type(x) == BOX_CONS) {
                term_t h = ((box_cons *)term__box(x))->hd;
                bytes = bytes && term_is_small(h) && (uint64_t)term_small_value(h) <= 255;
                n++;
                x = ((box_cons *)term__box(x))->tl;
            }
            if (bytes && x == TERM_NIL && n <= 65535) {
                if (!(p = grab(o, 3 + n))) return TERM_ENOMEM;
                p[0] = STRING_EXT;
                put16(p + 1, (unsigned)n);
                p += 3;
                for (x = t; x != TERM_NIL; x = ((box_cons *)term__box(x))->tl)
                    *p++ = (uint8_t)term_small_value(((box_cons *)term__box(x))->hd);
                return 0;
            }
            if (n > UINT32_MAX) return TERM_ESIZE;
            if (!(p = grab(o, 5))) return TERM_ENOMEM;
            p[0] = LIST_EXT;
            put32(p + 1, (uint32_t)n);
            for (x = t; term__box_type(x) == BOX_CONS; x = ((box_cons *)term__box(x))->tl) {
                int rc = enc_fast(o, ((box_cons *)term__box(x))->hd, flags, depth + 1);
                if (rc) return rc;
            }
            t = x; /* the tail, in this same frame */
            continue;
        }
        case BOX_FUN:
            return encode_plain(t, flags, o);
        default: {
            /* Leaves: enc_one pushes nothing for them. */
            term__stack none;
            term__stack_init(&none);
            return enc_one(o, &none, t, flags);
        }
        }
    }
}

static int encode_plain(term_t t, unsigned flags, etf_buf *out)
{
    if (t == TERM_NONE) return TERM_EINVAL;
    term__stack s;
    term__stack_init(&s);
    int rc = term__stack_push(&s, t);
    while (rc == 0 && s.n > 0) {
        uintptr_t x = s.v[--s.n];
        if ((x & 3) == 3) {
            size_t start = (size_t)(x >> 2);
            put32(out->data + start + 1, (uint32_t)(out->len - start - 1));
            continue;
        }
        rc = enc_one(out, &s, (term_t)x, flags);
    }
    term__stack_free(&s);
    return rc;
}

int etf_encode(term_t t, unsigned flags, etf_buf *out)
{
    size_t start = out->len;
    if (!(flags & ETF_ENC_NO_VERSION)) {
        uint8_t *p = grab(out, 1);
        if (!p) return TERM_ENOMEM;
        *p = ETF_VERSION;
    }
    if (!(flags & ETF_ENC_COMPRESSED)) {
        int rc = t == TERM_NONE ? TERM_EINVAL : enc_fast(out, t, flags, 0);
        if (rc) out->len = start;
        return rc;
    }
    /* Compressed: deflate the plain encoding (level 6 as term_to_binary's default) and keep
    ** it only when it is smaller, as term_to_binary does. */
    etf_buf plain = {0};
    int rc = t == TERM_NONE ? TERM_EINVAL : enc_fast(&plain, t, flags, 0);
    if (rc == 0 && plain.len > UINT32_MAX) rc = TERM_ESIZE;
    if (rc == 0) {
        uLongf clen = compressBound((uLong)plain.len);
        uint8_t *p = grab(out, 5 + clen);
        if (!p) {
            rc = TERM_ENOMEM;
        } else if (compress2(p + 5, &clen, plain.data, (uLong)plain.len, 6) != Z_OK) {
            rc = TERM_EZLIB;
        } else if (5 + clen < plain.len) {
            p[0] = COMPRESSED;
            put32(p + 1, (uint32_t)plain.len);
            out->len = (size_t)(p - out->data) + 5 + clen;
        } else {
            out->len = (size_t)(p - out->data);
            rc = term__buf_put(out, plain.data, plain.len);
        }
    }
    etf_buf_free(&plain);
    if (rc) out->len = start;
    return rc;
}

long long etf_encoded_size(term_t t, unsigned flags)
{
    etf_buf b = {0};
    int rc = etf_encode(t, flags & ~(unsigned)ETF_ENC_COMPRESSED, &b);
    long long n = rc ? rc : (long long)b.len;
    etf_buf_free(&b);
    return n;
}
