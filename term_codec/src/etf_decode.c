/* External term format decoder: validate and size in one pass, build into one block in another. */
#include "term_int.h"
#include "etf_tags.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

/*
** Pass 1 walks the bytes with a counter of terms still expected (no stack, whatever the
** nesting), checks every length against the bytes left, interns atoms (bounded by the
** options) and adds up the box bytes the term needs. Pass 2 allocates one block of that
** size and builds the term in pre-order with an explicit stack of slots to fill, bounded by
** the pending count pass 1 measured. Allocation is at most ~32 bytes per input byte.
*/

typedef struct dctx {
    const uint8_t *b;
    size_t len, pos;
    const etf_decode_opts *opts;
    size_t new_atoms;
    size_t box_bytes;
    size_t max_pending;
    size_t nmaps;
    /* atoms met in pass 1, replayed in order by pass 2 */
    term_t *atoms;
    size_t natoms, atoms_cap;
    int err;
    size_t err_off;
    term_t atoms_small[32];
} dctx;

static inline uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t get32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t get64(const uint8_t *p)
{
    return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

static int fail(dctx *c, int code, size_t off)
{
    if (!c->err) {
        c->err = code;
        c->err_off = off;
    }
    return code;
}

/* Ensures n more bytes are available at the current position. */
static inline int need(dctx *c, size_t n)
{
    return c->len - c->pos >= n ? 0 : fail(c, TERM_ETRUNC, c->len);
}

static inline size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static int record_atom(dctx *c, term_t a)
{
    if (c->natoms == c->atoms_cap) {
        size_t ncap = c->atoms_cap * 2;
        term_t *na;
        if (c->atoms == c->atoms_small) {
            na = term__alloc(ncap * sizeof(term_t));
            if (na) memcpy(na, c->atoms_small, sizeof c->atoms_small);
        } else {
            na = term__realloc(c->atoms, c->atoms_cap * sizeof(term_t), ncap * sizeof(term_t));
        }
        if (!na) return fail(c, TERM_ENOMEM, c->pos);
        c->atoms = na;
        c->atoms_cap = ncap;
    }
    c->atoms[c->natoms++] = a;
    return 0;
}

/* PROTOTYPE: a per-thread direct-mapped cache name -> atom. Atoms are never freed and never
** renamed, so an entry can never go stale. Keyed on (len, first 8, last 8 bytes), loaded
** straight from the input (no copy: a byte-wise copy then a word load stalls forwarding). */
typedef struct acache_ent {
    uint64_t first, last;
    uint32_t len;
    const char *name;
    term_t atom;
} acache_ent;
static _Thread_local acache_ent acache[512];

static inline void atom_key(const char *s, size_t len, uint64_t *first, uint64_t *last)
{
    if (len >= 8) {
        memcpy(first, s, 8);
        memcpy(last, s + len - 8, 8);
        return;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) v |= (uint64_t)(uint8_t)s[i] << (8 * i);
    *first = v;
    *last = 0;
}

static inline term_t cached_atom(const char *name, size_t len)
{
    uint64_t f, l;
    atom_key(name, len, &f, &l);
    uint64_t h = ((f ^ (l * 0x9E3779B97F4A7C15ull) ^ len) * 0xff51afd7ed558ccdull) >> 55;
    acache_ent *e = &acache[h];
    if (e->atom && e->len == len && e->first == f && e->last == l &&
        (len <= 16 || memcmp(e->name, name, len) == 0))
        return e->atom;
    term_t a = term_atom_existing(name, len);
    if (a != TERM_NONE) {
        e->first = f;
        e->last = l;
        e->len = (uint32_t)len;
        e->name = term_atom_name(a, NULL);
        e->atom = a;
    }
    return a;
}

/* Pass 1: reads an atom in any of its encodings at pos, interns and records it. */
static int p1_atom(dctx *c)
{
    size_t start = c->pos;
    if (need(c, 1)) return c->err;
    uint8_t tag = c->b[c->pos++];
    size_t n;
    bool utf8;
    switch (tag) {
    case ATOM_EXT:
    case ATOM_UTF8_EXT:
        if (need(c, 2)) return c->err;
        n = get16(c->b + c->pos);
        c->pos += 2;
        utf8 = tag == ATOM_UTF8_EXT;
        break;
    case SMALL_ATOM_EXT:
    case SMALL_ATOM_UTF8_EXT:
        if (need(c, 1)) return c->err;
        n = c->b[c->pos++];
        utf8 = tag == SMALL_ATOM_UTF8_EXT;
        break;
    case ATOM_CACHE_REF: {
        if (need(c, 1)) return c->err;
        uint8_t idx = c->b[c->pos++];
        term_t a = c->opts && c->opts->cache ? c->opts->cache->atoms[idx] : TERM_NONE;
        if (!term_is_atom(a)) return fail(c, TERM_ECACHE, start);
        return record_atom(c, a);
    }
    default:
        return fail(c, TERM_EATOM, start);
    }
    if (need(c, n)) return c->err;
    const uint8_t *s = c->b + c->pos;
    c->pos += n;
    char conv[512];
    const char *name = (const char *)s;
    size_t nlen = n;
    if (!utf8) {
        if (n > 255) return fail(c, TERM_EATOM, start);
        bool ascii = true;
        for (size_t i = 0; i < n; i++) ascii &= s[i] < 0x80;
        if (!ascii) {
            nlen = term__latin1_to_utf8(s, n, conv);
            name = conv;
        }
    }
    term_t a = cached_atom(name, nlen);
    if (a == TERM_NONE) {
        size_t max = c->opts ? c->opts->max_new_atoms : 0;
        if (max && c->new_atoms >= max) return fail(c, TERM_EATOMLIMIT, start);
        int err = 0;
        a = term_atom_n(name, nlen, &err);
        if (a == TERM_NONE) return fail(c, err == TERM_EUTF8 ? TERM_EATOM : err, start);
        c->new_atoms++;
    }
    return record_atom(c, a);
}

/* Pass 1: an integer field (fun OldIndex/OldUniq): small, 32-bit or a bignum. */
static int p1_int_field(dctx *c)
{
    size_t start = c->pos;
    if (need(c, 1)) return c->err;
    uint8_t tag = c->b[c->pos++];
    switch (tag) {
    case SMALL_INTEGER_EXT:
        return need(c, 1) ? c->err : (c->pos += 1, 0);
    case INTEGER_EXT:
        return need(c, 4) ? c->err : (c->pos += 4, 0);
    case SMALL_BIG_EXT: {
        if (need(c, 2)) return c->err;
        size_t n = c->b[c->pos];
        c->pos += 2;
        if (need(c, n)) return c->err;
        c->pos += n;
        c->box_bytes += sizeof(box_big) + align8(n);
        return 0;
    }
    }
    return fail(c, TERM_ETYPE, start);
}

/* Pass 1: a pid (NEW_PID_EXT or PID_EXT) at pos, as fun fields need. */
static int p1_pid(dctx *c)
{
    size_t start = c->pos;
    if (need(c, 1)) return c->err;
    uint8_t tag = c->b[c->pos++];
    if (tag != NEW_PID_EXT && tag != PID_EXT) return fail(c, TERM_ETYPE, start);
    if (p1_atom(c)) return c->err;
    size_t n = tag == NEW_PID_EXT ? 12 : 9;
    if (need(c, n)) return c->err;
    c->pos += n;
    c->box_bytes += sizeof(box_pid);
    return 0;
}

/* Pass 1 over the whole term. */
static int pass1(dctx *c)
{
    size_t pending = 1;
    while (pending > 0) {
        pending--;
        size_t start = c->pos;
        if (need(c, 1)) return c->err;
        uint8_t tag = c->b[c->pos++];
        size_t kids = 0;
        switch (tag) {
        case SMALL_INTEGER_EXT:
            if (need(c, 1)) return c->err;
            c->pos += 1;
            break;
        case INTEGER_EXT:
            if (need(c, 4)) return c->err;
            c->pos += 4;
            break;
        case NEW_FLOAT_EXT: {
            if (need(c, 8)) return c->err;
            uint64_t bits = get64(c->b + c->pos);
            if (((bits >> 52) & 0x7FF) == 0x7FF) return fail(c, TERM_EFLOAT, start);
            c->pos += 8;
            c->box_bytes += sizeof(box_float);
            break;
        }
        case FLOAT_EXT: {
            if (need(c, 31)) return c->err;
            char tmp[32];
            memcpy(tmp, c->b + c->pos, 31);
            tmp[31] = 0;
            char *end;
            double d = strtod(tmp, &end);
            if (end == tmp || !isfinite(d)) return fail(c, TERM_EFLOAT, start);
            for (char *p = end; *p; p++)
                if (*p != ' ') return fail(c, TERM_EFLOAT, start);
            c->pos += 31;
            c->box_bytes += sizeof(box_float);
            break;
        }
        case ATOM_EXT:
        case SMALL_ATOM_EXT:
        case ATOM_UTF8_EXT:
        case SMALL_ATOM_UTF8_EXT:
        case ATOM_CACHE_REF:
            c->pos = start;
            if (p1_atom(c)) return c->err;
            break;
        case SMALL_TUPLE_EXT:
            if (need(c, 1)) return c->err;
            kids = c->b[c->pos++];
            c->box_bytes += sizeof(box_tuple) + kids * sizeof(term_t);
            break;
        case LARGE_TUPLE_EXT:
            if (need(c, 4)) return c->err;
            kids = get32(c->b + c->pos);
            c->pos += 4;
            if (kids > c->len - c->pos) return fail(c, TERM_ESIZE, start);
            c->box_bytes += sizeof(box_tuple) + kids * sizeof(term_t);
            break;
        case MAP_EXT: {
            if (need(c, 4)) return c->err;
            size_t n = get32(c->b + c->pos);
            c->pos += 4;
            if (n > (c->len - c->pos) / 2) return fail(c, TERM_ESIZE, start);
            kids = 2 * n;
            c->box_bytes += sizeof(box_map) + kids * sizeof(term_t);
            c->nmaps++;
            break;
        }
        case NIL_EXT:
            break;
        case STRING_EXT: {
            if (need(c, 2)) return c->err;
            size_t n = get16(c->b + c->pos);
            c->pos += 2;
            if (need(c, n)) return c->err;
            c->pos += n;
            c->box_bytes += n * sizeof(box_cons);
            break;
        }
        case LIST_EXT: {
            if (need(c, 4)) return c->err;
            size_t n = get32(c->b + c->pos);
            c->pos += 4;
            if (n >= c->len - c->pos) return fail(c, TERM_ESIZE, start);
            kids = n + 1;
            c->box_bytes += n * sizeof(box_cons);
            break;
        }
        case BINARY_EXT: {
            if (need(c, 4)) return c->err;
            size_t n = get32(c->b + c->pos);
            c->pos += 4;
            if (need(c, n)) return c->err;
            c->pos += n;
            c->box_bytes += sizeof(box_bin) + align8(n);
            break;
        }
        case BIT_BINARY_EXT: {
            if (need(c, 5)) return c->err;
            size_t n = get32(c->b + c->pos);
            uint8_t bits = c->b[c->pos + 4];
            if (n == 0 ? bits != 0 : (bits < 1 || bits > 8)) return fail(c, TERM_EBITS, start);
            c->pos += 5;
            if (need(c, n)) return c->err;
            c->pos += n;
            c->box_bytes += sizeof(box_bin) + align8(n);
            break;
        }
        case SMALL_BIG_EXT:
        case LARGE_BIG_EXT: {
            size_t n;
            if (tag == SMALL_BIG_EXT) {
                if (need(c, 2)) return c->err;
                n = c->b[c->pos];
                c->pos += 2;
            } else {
                if (need(c, 5)) return c->err;
                n = get32(c->b + c->pos);
                c->pos += 5;
            }
            if (need(c, n)) return c->err;
            c->pos += n;
            c->box_bytes += sizeof(box_big) + align8(n);
            break;
        }
        case NEW_PID_EXT:
        case PID_EXT:
            c->pos = start;
            if (p1_pid(c)) return c->err;
            break;
        case NEW_PORT_EXT:
        case V4_PORT_EXT:
        case PORT_EXT:
            if (p1_atom(c)) return c->err;
            if (need(c, tag == V4_PORT_EXT ? 12 : tag == NEW_PORT_EXT ? 8 : 5)) return c->err;
            c->pos += tag == V4_PORT_EXT ? 12 : tag == NEW_PORT_EXT ? 8 : 5;
            c->box_bytes += sizeof(box_port);
            break;
        case REFERENCE_EXT:
            if (p1_atom(c) || need(c, 5)) return c->err;
            c->pos += 5;
            c->box_bytes += sizeof(box_ref);
            break;
        case NEW_REFERENCE_EXT:
        case NEWER_REFERENCE_EXT: {
            if (need(c, 2)) return c->err;
            size_t n = get16(c->b + c->pos);
            c->pos += 2;
            if (n < 1 || n > 5) return fail(c, TERM_ESIZE, start);
            if (p1_atom(c)) return c->err;
            size_t cr = tag == NEWER_REFERENCE_EXT ? 4 : 1;
            if (need(c, cr + 4 * n)) return c->err;
            c->pos += cr + 4 * n;
            c->box_bytes += sizeof(box_ref);
            break;
        }
        case EXPORT_EXT:
            if (p1_atom(c) || p1_atom(c)) return c->err;
            if (need(c, 2)) return c->err;
            if (c->b[c->pos] != SMALL_INTEGER_EXT) return fail(c, TERM_ETYPE, c->pos);
            c->pos += 2;
            c->box_bytes += sizeof(box_export);
            break;
        case NEW_FUN_EXT: {
            /* Size(4) Arity(1) Uniq(16) Index(4) NumFree(4) Module OldIndex OldUniq Pid Free */
            if (need(c, 29)) return c->err;
            size_t size = get32(c->b + c->pos);
            if (size > c->len - start - 1 || size < 29) return fail(c, TERM_ESIZE, start);
            kids = get32(c->b + c->pos + 25);
            c->pos += 29;
            if (p1_atom(c) || p1_int_field(c) || p1_int_field(c) || p1_pid(c)) return c->err;
            if (kids > c->len - c->pos) return fail(c, TERM_ESIZE, start);
            c->box_bytes += sizeof(box_fun) + kids * sizeof(term_t);
            break;
        }
        case FUN_EXT:
            /* NumFree(4) Pid Module Index Uniq Free */
            if (need(c, 4)) return c->err;
            kids = get32(c->b + c->pos);
            c->pos += 4;
            if (p1_pid(c) || p1_atom(c) || p1_int_field(c) || p1_int_field(c)) return c->err;
            if (kids > c->len - c->pos) return fail(c, TERM_ESIZE, start);
            c->box_bytes += sizeof(box_fun) + kids * sizeof(term_t);
            break;
        case LOCAL_EXT:
            /* Only the node that produced a LOCAL_EXT can decode it (OTP 26 erl_ext_dist). */
            return fail(c, TERM_ENOTSUP, start);
        default:
            return fail(c, TERM_ETAG, start);
        }
        pending += kids;
        if (pending > c->len - c->pos) return fail(c, TERM_ETRUNC, c->len);
        if (pending > c->max_pending) c->max_pending = pending;
    }
    return 0;
}

/* ==================================================================== pass 2 */

typedef struct bctx {
    const uint8_t *b;
    size_t pos;
    box_block *block;
    uint8_t *next; /* bump pointer into the block */
    const term_t *atoms;
    size_t ai;
    box_map **maps;
    size_t *map_off; /* input offset of each map, for errors */
    size_t nmaps;
    term_t **slots; /* stack of slots to fill */
    size_t nslots;
} bctx;

static inline void *carve(bctx *c, int type, size_t size)
{
    term_box *h = (term_box *)(void *)c->next;
    c->next += align8(size);
    atomic_init(&h->rc, 0);
    h->boff = (uint32_t)(((uint8_t *)h - (uint8_t *)c->block) / 8);
    h->type = (uint8_t)type;
    h->flags = BOXF_INBLOCK;
    h->aux = 0;
    h->n = 0;
    return h;
}

/* Replays one atom recorded by pass 1, skipping its bytes. */
static term_t p2_atom(bctx *c)
{
    uint8_t tag = c->b[c->pos++];
    switch (tag) {
    case ATOM_EXT:
    case ATOM_UTF8_EXT:
        c->pos += 2 + get16(c->b + c->pos);
        break;
    case SMALL_ATOM_EXT:
    case SMALL_ATOM_UTF8_EXT:
        c->pos += 1 + c->b[c->pos];
        break;
    case ATOM_CACHE_REF:
        c->pos += 1;
        break;
    }
    return c->atoms[c->ai++];
}

static term_t p2_big(bctx *c, size_t n, bool neg)
{
    const uint8_t *d = c->b + c->pos;
    c->pos += n;
    while (n > 0 && d[n - 1] == 0) n--;
    if (n <= 8) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) v |= (uint64_t)d[i] << (8 * i);
        if (!neg && v <= (uint64_t)TERM_SMALL_MAX) return term__make_small((int64_t)v);
        if (neg && v <= (uint64_t)TERM_SMALL_MAX + 1) return term__make_small((int64_t)(0 - v));
    }
    size_t nl = (n + 7) / 8;
    box_big *g = carve(c, BOX_BIG, sizeof(box_big) + nl * 8);
    g->h.n = (uint32_t)nl;
    if (neg) g->h.flags |= BOXF_NEG;
    memset(g->limbs, 0, nl * 8);
    for (size_t i = 0; i < n; i++) g->limbs[i / 8] |= (uint64_t)d[i] << (8 * (i % 8));
    return term__from_box(g);
}

static term_t p2_int_field(bctx *c)
{
    uint8_t tag = c->b[c->pos++];
    if (tag == SMALL_INTEGER_EXT) return term__make_small(c->b[c->pos++]);
    if (tag == INTEGER_EXT) {
        int32_t v = (int32_t)get32(c->b + c->pos);
        c->pos += 4;
        return term__make_small(v);
    }
    size_t n = c->b[c->pos];
    bool neg = c->b[c->pos + 1] != 0;
    c->pos += 2;
    return p2_big(c, n, neg);
}

static term_t p2_pid(bctx *c)
{
    uint8_t tag = c->b[c->pos++];
    box_pid *p = carve(c, BOX_PID, sizeof(box_pid));
    p->node = p2_atom(c);
    p->id = get32(c->b + c->pos);
    p->serial = get32(c->b + c->pos + 4);
    if (tag == NEW_PID_EXT) {
        p->creation = get32(c->b + c->pos + 8);
        c->pos += 12;
    } else {
        p->creation = c->b[c->pos + 8];
        c->pos += 9;
    }
    return term__from_box(p);
}

static term_t p2_bin(bctx *c, size_t n, unsigned lastbits)
{
    box_bin *bb = carve(c, BOX_BIN, sizeof(box_bin) + n);
    memcpy(bb->inl, c->b + c->pos, n);
    c->pos += n;
    bb->data = bb->inl;
    bb->owner = TERM_NONE;
    bb->nbits = (uint64_t)n * 8;
    if (lastbits && lastbits < 8) {
        bb->nbits -= 8 - lastbits;
        bb->inl[n - 1] &= (uint8_t)(0xFF << (8 - lastbits));
    }
    return term__from_box(bb);
}

static inline void push_slot(bctx *c, term_t *slot)
{
    c->slots[c->nslots++] = slot;
}

/* Builds the term; input already validated by pass 1, so no bounds checks here. */
static void pass2(bctx *c, term_t *result)
{
    push_slot(c, result);
    while (c->nslots > 0) {
        term_t *slot = c->slots[--c->nslots];
        uint8_t tag = c->b[c->pos];
        switch (tag) {
        case SMALL_INTEGER_EXT:
            *slot = term__make_small(c->b[c->pos + 1]);
            c->pos += 2;
            break;
        case INTEGER_EXT:
            *slot = term__make_small((int32_t)get32(c->b + c->pos + 1));
            c->pos += 5;
            break;
        case NEW_FLOAT_EXT: {
            box_float *f = carve(c, BOX_FLOAT, sizeof(box_float));
            uint64_t bits = get64(c->b + c->pos + 1);
            memcpy(&f->d, &bits, 8);
            c->pos += 9;
            *slot = term__from_box(f);
            break;
        }
        case FLOAT_EXT: {
            char tmp[32];
            memcpy(tmp, c->b + c->pos + 1, 31);
            tmp[31] = 0;
            box_float *f = carve(c, BOX_FLOAT, sizeof(box_float));
            f->d = strtod(tmp, NULL);
            c->pos += 32;
            *slot = term__from_box(f);
            break;
        }
        case ATOM_EXT:
        case SMALL_ATOM_EXT:
        case ATOM_UTF8_EXT:
        case SMALL_ATOM_UTF8_EXT:
        case ATOM_CACHE_REF:
            *slot = p2_atom(c);
            break;
        case SMALL_TUPLE_EXT:
        case LARGE_TUPLE_EXT: {
            size_t n;
            if (tag == SMALL_TUPLE_EXT)
                n = c->b[c->pos + 1], c->pos += 2;
            else
                n = get32(c->b + c->pos + 1), c->pos += 5;
            box_tuple *t = carve(c, BOX_TUPLE, sizeof(box_tuple) + n * sizeof(term_t));
            t->h.n = (uint32_t)n;
            for (size_t i = n; i-- > 0;) push_slot(c, &t->e[i]);
            *slot = term__from_box(t);
            break;
        }
        case MAP_EXT: {
            size_t n = get32(c->b + c->pos + 1);
            c->pos += 5;
            box_map *m = carve(c, BOX_MAP, sizeof(box_map) + 2 * n * sizeof(term_t));
            m->h.n = (uint32_t)n;
            /* Keep the input order's position in aux-free storage: pairs land in place and
            ** are sorted once all maps are complete. */
            for (size_t i = n; i-- > 0;) {
                push_slot(c, &m->kv[n + i]);
                push_slot(c, &m->kv[i]);
            }
            c->map_off[c->nmaps] = c->pos - 5;
            c->maps[c->nmaps++] = m;
            *slot = term__from_box(m);
            break;
        }
        case NIL_EXT:
            *slot = TERM_NIL;
            c->pos += 1;
            break;
        case STRING_EXT: {
            size_t n = get16(c->b + c->pos + 1);
            const uint8_t *s = c->b + c->pos + 3;
            c->pos += 3 + n;
            if (n == 0) {
                *slot = TERM_NIL;
                break;
            }
            box_cons *cells = carve(c, BOX_CONS, n * sizeof(box_cons));
            for (size_t i = 0; i < n; i++) {
                if (i) {
                    term_box *h = &cells[i].h;
                    atomic_init(&h->rc, 0);
                    h->boff = (uint32_t)(((uint8_t *)h - (uint8_t *)c->block) / 8);
                    h->type = BOX_CONS;
                    h->flags = BOXF_INBLOCK;
                    h->aux = 0;
                    h->n = 0;
                }
                cells[i].hd = term__make_small(s[i]);
                cells[i].tl = i + 1 < n ? term__from_box(&cells[i + 1]) : TERM_NIL;
            }
            *slot = term__from_box(cells);
            break;
        }
        case LIST_EXT: {
            size_t n = get32(c->b + c->pos + 1);
            c->pos += 5;
            if (n == 0) { /* degenerate: just the tail */
                push_slot(c, slot);
                break;
            }
            box_cons *cells = carve(c, BOX_CONS, n * sizeof(box_cons));
            for (size_t i = 0; i < n; i++) {
                term_box *h = &cells[i].h;
                atomic_init(&h->rc, 0);
                h->boff = (uint32_t)(((uint8_t *)h - (uint8_t *)c->block) / 8);
                h->type = BOX_CONS;
                h->flags = BOXF_INBLOCK;
                h->aux = 0;
                h->n = 0;
                if (i + 1 < n) cells[i].tl = term__from_box(&cells[i + 1]);
            }
            push_slot(c, &cells[n - 1].tl);
            for (size_t i = n; i-- > 0;) push_slot(c, &cells[i].hd);
            *slot = term__from_box(cells);
            break;
        }
        case BINARY_EXT: {
            size_t n = get32(c->b + c->pos + 1);
            c->pos += 5;
            *slot = p2_bin(c, n, 0);
            break;
        }
        case BIT_BINARY_EXT: {
            size_t n = get32(c->b + c->pos + 1);
            unsigned bits = c->b[c->pos + 5];
            c->pos += 6;
            *slot = p2_bin(c, n, bits);
            break;
        }
        case SMALL_BIG_EXT: {
            size_t n = c->b[c->pos + 1];
            bool neg = c->b[c->pos + 2] != 0;
            c->pos += 3;
            *slot = p2_big(c, n, neg);
            break;
        }
        case LARGE_BIG_EXT: {
            size_t n = get32(c->b + c->pos + 1);
            bool neg = c->b[c->pos + 5] != 0;
            c->pos += 6;
            *slot = p2_big(c, n, neg);
            break;
        }
        case NEW_PID_EXT:
        case PID_EXT:
            *slot = p2_pid(c);
            break;
        case NEW_PORT_EXT:
        case V4_PORT_EXT:
        case PORT_EXT: {
            c->pos++;
            box_port *p = carve(c, BOX_PORT, sizeof(box_port));
            p->node = p2_atom(c);
            if (tag == V4_PORT_EXT) {
                p->id = get64(c->b + c->pos);
                p->creation = get32(c->b + c->pos + 8);
                c->pos += 12;
            } else if (tag == NEW_PORT_EXT) {
                p->id = get32(c->b + c->pos);
                p->creation = get32(c->b + c->pos + 4);
                c->pos += 8;
            } else {
                p->id = get32(c->b + c->pos);
                p->creation = c->b[c->pos + 4];
                c->pos += 5;
            }
            *slot = term__from_box(p);
            break;
        }
        case REFERENCE_EXT: {
            c->pos++;
            box_ref *r = carve(c, BOX_REF, sizeof(box_ref));
            r->node = p2_atom(c);
            memset(r->words, 0, sizeof r->words);
            r->words[0] = get32(c->b + c->pos);
            r->creation = c->b[c->pos + 4];
            r->h.aux = 1;
            c->pos += 5;
            *slot = term__from_box(r);
            break;
        }
        case NEW_REFERENCE_EXT:
        case NEWER_REFERENCE_EXT: {
            size_t n = get16(c->b + c->pos + 1);
            c->pos += 3;
            box_ref *r = carve(c, BOX_REF, sizeof(box_ref));
            r->node = p2_atom(c);
            if (tag == NEWER_REFERENCE_EXT)
                r->creation = get32(c->b + c->pos), c->pos += 4;
            else
                r->creation = c->b[c->pos], c->pos += 1;
            memset(r->words, 0, sizeof r->words);
            for (size_t i = 0; i < n; i++) r->words[i] = get32(c->b + c->pos + 4 * i);
            c->pos += 4 * n;
            r->h.aux = (uint16_t)n;
            *slot = term__from_box(r);
            break;
        }
        case EXPORT_EXT: {
            c->pos++;
            box_export *e = carve(c, BOX_EXPORT, sizeof(box_export));
            e->module = p2_atom(c);
            e->function = p2_atom(c);
            e->arity = c->b[c->pos + 1];
            c->pos += 2;
            *slot = term__from_box(e);
            break;
        }
        case NEW_FUN_EXT: {
            const uint8_t *p = c->b + c->pos + 1;
            size_t nfree = get32(p + 25);
            box_fun *f = carve(c, BOX_FUN, sizeof(box_fun) + nfree * sizeof(term_t));
            f->h.n = (uint32_t)nfree;
            f->arity = p[4];
            memcpy(f->uniq, p + 5, 16);
            f->index = get32(p + 21);
            c->pos += 30;
            f->module = p2_atom(c);
            f->old_index = p2_int_field(c);
            f->old_uniq = p2_int_field(c);
            f->pid = p2_pid(c);
            for (size_t i = nfree; i-- > 0;) push_slot(c, &f->free[i]);
            *slot = term__from_box(f);
            break;
        }
        case FUN_EXT: {
            size_t nfree = get32(c->b + c->pos + 1);
            c->pos += 5;
            box_fun *f = carve(c, BOX_FUN, sizeof(box_fun) + nfree * sizeof(term_t));
            f->h.n = (uint32_t)nfree;
            f->h.flags |= BOXF_OLDFUN;
            f->arity = 0;
            f->index = 0;
            memset(f->uniq, 0, 16);
            f->pid = p2_pid(c);
            f->module = p2_atom(c);
            f->old_index = p2_int_field(c);
            f->old_uniq = p2_int_field(c);
            for (size_t i = nfree; i-- > 0;) push_slot(c, &f->free[i]);
            *slot = term__from_box(f);
            break;
        }
        }
    }
}

/* Sorts each map's pairs (inner maps first) and refuses duplicate keys; *off gets the
** offending map's offset. */
static int finish_maps(bctx *c, size_t *off)
{
    for (size_t i = c->nmaps; i-- > 0;) {
        box_map *m = c->maps[i];
        size_t n = m->h.n;
        if (n < 2) continue;
        bool sorted = true;
        for (size_t j = 1; j < n && sorted; j++)
            sorted = term_compare_exact(m->kv[j - 1], m->kv[j]) < 0;
        if (!sorted) {
            term__map_sort(m->kv, m->kv + n, n);
            for (size_t j = 1; j < n; j++)
                if (term_compare_exact(m->kv[j - 1], m->kv[j]) == 0) {
                    *off = c->map_off[i];
                    return TERM_EDUPKEY;
                }
        }
    }
    return 0;
}

/* Inflates a compressed term into a fresh buffer of exactly the declared size. */
static uint8_t *inflate_term(const uint8_t *src, size_t srclen, size_t outlen, int *err)
{
    uint8_t *out = term__alloc(outlen);
    if (!out) {
        *err = TERM_ENOMEM;
        return NULL;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK) {
        term__dealloc(out, outlen);
        *err = TERM_ENOMEM;
        return NULL;
    }
    zs.next_in = (Bytef *)src;
    zs.avail_in = (uInt)srclen;
    zs.next_out = out;
    zs.avail_out = (uInt)outlen;
    int zr = inflate(&zs, Z_FINISH);
    bool ok = zr == Z_STREAM_END && zs.total_out == outlen;
    inflateEnd(&zs);
    if (!ok) {
        term__dealloc(out, outlen);
        *err = TERM_EZLIB;
        return NULL;
    }
    return out;
}

static term_t decode_plain(const uint8_t *buf, size_t len, const etf_decode_opts *opts,
                           size_t *used, etf_error *err, size_t base_off)
{
    dctx c;
    memset(&c, 0, offsetof(dctx, atoms_small));
    c.atoms = c.atoms_small;
    c.atoms_cap = 32;
    c.b = buf;
    c.len = len;
    c.opts = opts;
    term_t result = TERM_NONE;
    bctx bc;
    memset(&bc, 0, sizeof bc);
    if (pass1(&c) != 0) goto out;
    if (c.pos != len && !(opts && opts->allow_trailing) && !used) {
        fail(&c, TERM_ETRAILING, c.pos);
        goto out;
    }
    if (c.box_bytes == 0) {
        /* An immediate: replay without a block. */
        bc.b = buf;
        bc.atoms = c.atoms;
        term_t *slotv[1];
        bc.slots = slotv;
        pass2(&bc, &result);
        goto out;
    }
    size_t total = align8(sizeof(box_block)) + c.box_bytes;
    box_block *blk = term__alloc(total);
    term_t *slots_small[64];
    box_map *maps_small[16];
    bool slots_heap = c.max_pending + 1 > 64;
    term_t **slots = slots_heap ? term__alloc((c.max_pending + 1) * sizeof(term_t *)) : slots_small;
    size_t maps_size = c.nmaps * (sizeof(box_map *) + sizeof(size_t));
    bool maps_heap = maps_size > sizeof maps_small;
    box_map **maps = maps_heap ? term__alloc(maps_size) : maps_small;
    if (!blk || !slots || !maps) {
        term__dealloc(blk, total);
        if (slots_heap) term__dealloc(slots, (c.max_pending + 1) * sizeof(term_t *));
        if (maps_heap) term__dealloc(maps, maps_size);
        fail(&c, TERM_ENOMEM, 0);
        goto out;
    }
    atomic_init(&blk->h.rc, 1);
    blk->h.boff = 0;
    blk->h.type = BOX_BLOCK;
    blk->h.flags = 0;
    blk->h.aux = 0;
    blk->h.n = 0;
    blk->size = total;
    bc.b = buf;
    bc.block = blk;
    bc.next = (uint8_t *)blk + align8(sizeof(box_block));
    bc.atoms = c.atoms;
    bc.maps = maps;
    bc.map_off = (size_t *)(void *)(maps + c.nmaps);
    bc.slots = slots;
    pass2(&bc, &result);
    size_t bad_off = 0;
    int rc = finish_maps(&bc, &bad_off);
    if (slots_heap) term__dealloc(slots, (c.max_pending + 1) * sizeof(term_t *));
    if (maps_heap) term__dealloc(maps, maps_size);
    if (rc) {
        term__dealloc(blk, total);
        result = TERM_NONE;
        fail(&c, rc, bad_off);
        goto out;
    }
    if (!term_is_boxed(result)) {
        /* e.g. a bignum that normalised to a small integer: the block is not needed */
        term__dealloc(blk, total);
    } else {
        /* The reference the caller gets is the block's first reference. */
    }
out:
    if (c.atoms != c.atoms_small) term__dealloc(c.atoms, c.atoms_cap * sizeof(term_t));
    if (c.err) {
        if (err) {
            err->code = c.err;
            err->offset = base_off + c.err_off;
        }
        return TERM_NONE;
    }
    if (used) *used = c.pos;
    if (err) err->code = 0, err->offset = 0;
    return result;
}

term_t etf_decode(const uint8_t *buf, size_t len, const etf_decode_opts *opts, size_t *used,
                  etf_error *err)
{
    size_t off = 0;
    if (!opts || !opts->no_version) {
        if (len < 1) {
            if (err) err->code = TERM_ETRUNC, err->offset = 0;
            return TERM_NONE;
        }
        if (buf[0] != ETF_VERSION) {
            if (err) err->code = TERM_EVERSION, err->offset = 0;
            return TERM_NONE;
        }
        off = 1;
    }
    if (len > off && buf[off] == COMPRESSED) {
        if (len - off < 5) {
            if (err) err->code = TERM_ETRUNC, err->offset = len;
            return TERM_NONE;
        }
        size_t ulen = get32(buf + off + 1);
        size_t max = opts && opts->max_uncompressed ? opts->max_uncompressed : (size_t)64 << 20;
        size_t clen = len - off - 5;
        /* zlib cannot expand more than ~1032:1; a larger claim is a bomb or a lie. */
        if (ulen > max || ulen > clen * 1032 + 64 || ulen == 0) {
            if (err) err->code = ulen > max ? TERM_ESIZE : TERM_EZLIB, err->offset = off + 1;
            return TERM_NONE;
        }
        int zerr = 0;
        uint8_t *raw = inflate_term(buf + off + 5, clen, ulen, &zerr);
        if (!raw) {
            if (err) err->code = zerr, err->offset = off + 5;
            return TERM_NONE;
        }
        etf_decode_opts o = opts ? *opts : (etf_decode_opts){0};
        o.allow_trailing = false;
        etf_error e2;
        term_t t = decode_plain(raw, ulen, &o, NULL, &e2, 0);
        term__dealloc(raw, ulen);
        if (t == TERM_NONE) {
            /* Offsets inside compressed data refer to the inflated bytes; say so by code. */
            if (err) err->code = e2.code, err->offset = off + 5;
            return TERM_NONE;
        }
        if (used) *used = len;
        if (err) err->code = 0, err->offset = 0;
        return t;
    }
    size_t u = 0;
    term_t t = decode_plain(buf + off, len - off, opts, used ? &u : NULL, err, off);
    if (t != TERM_NONE && used) *used = off + u;
    return t;
}
