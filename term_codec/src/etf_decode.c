/* External term format decoder: one validating pass that builds into scratch, then one copy. */
#include "term_int.h"
#include "etf_tags.h"
#include "girder_be.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <zlib.h>

/*
** One pass walks the bytes in pre-order with an explicit stack of slots still to fill (no C
** recursion, whatever the nesting), checks every tag and length against the bytes left, and
** builds the boxes as it goes into an arena laid out exactly as the final block will be,
** with every box word an absolute pointer into the arena. The arena is first a cached block
** of the class the last input of this length needed (size_pred below): when the prediction
** holds, that block is the result and nothing is copied or relocated. Otherwise the arena is
** on the C stack for small terms and on the heap beyond, and at the end one allocation of the
** exact size receives it in one memcpy. Whenever the arena moves (the predicted block or the
** stack arena is outgrown, the heap arena doubles, the final copy), relocate() walks the
** boxes built so far by their headers and moves each word that points into the old arena;
** no list of such words is kept while building, which keeps the hot loop's stores to one per
** box word. Slots not filled yet are walked too: whatever they hold is moved or not, and
** they are written before anything reads them.
**
** Bounds: a count of elements that cannot fit in the bytes left is refused before anything
** is pushed or allocated, so the slot stack holds at most one entry per input byte, the block
** at most 32 bytes per input byte (a cons cell per STRING_EXT byte), and the arena, which
** doubles, at most twice that while decoding.
**
** Foreign atoms (new names past the atom budget, with opts->foreign_atoms) are boxes of their
** own, outside the arena: the decode keeps one reference to each distinct one in a set keyed
** by name, and hands them to the block, which lists them in its last words and drops them
** when it is freed. Words that point at them lie outside every arena, so never move. A
** distinct name takes at least 3 input bytes, and its atom 26 bytes plus the name padded to at
** least 32, plus a word in the block: the bounds above still hold.
*/

/*
** This file is compiled twice. As itself it is the decoder. etf_decode_share.c includes it with
** ETF_DECODE_SHARE set to 1, which makes a second copy of the pass, term__etf_decode_shared(),
** for etf_decode_opts.share: there a large binary may point into the input's storage instead
** of being copied. A copy of its own, because one pass that tested for it at run time (or one
** made twice from a flag in this unit) measured 1-2 % more instructions per term on
** bench-etf-codec, where no binary is shared. The thread-local tables are one set, this
** unit's.
*/
#ifndef ETF_DECODE_SHARE
#define ETF_DECODE_SHARE 0
#define ETF_TLS          __attribute__((visibility("hidden"))) _Thread_local
#else
#define ETF_TLS extern __attribute__((visibility("hidden"))) _Thread_local
#endif

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "etf_decode.c writes box headers as little-endian words"
#endif
_Static_assert(sizeof(term_box) == 16 && offsetof(term_box, boff) == 4 &&
                   offsetof(term_box, type) == 8 && offsetof(term_box, flags) == 9 &&
                   offsetof(term_box, aux) == 10 && offsetof(term_box, n) == 12,
               "box header layout assumed by put_hdr()");

#define BLK_HDR     ((sizeof(box_block) + 7) & ~(size_t)7)
#define ROOT_OFF    offsetof(box_block, size) /* holds the root term while building */
#define ARENA_SMALL 2048
#define SLOTS_SMALL 64
#define MAPS_SMALL  8

/* Second header word of a block member: type, flags, aux, n. */
#define HW(type, flags, aux, n)                                                           \
    ((uint64_t)(type) | (uint64_t)(BOXF_INBLOCK | (flags)) << 8 | (uint64_t)(aux) << 16 | \
     (uint64_t)(n) << 32)

/* An entry of the per-thread atom cache (see acache below). */
typedef struct acache_ent {
    uint64_t w0, w1;
    const char *name;
    term_t atom;
} acache_ent;

/* The new atoms of one decode, made at its first new name (off the common path): how many it
** interned, and its foreign atoms, one reference each, found by name through an
** open-addressing index (slot = atom's table hash, which is keyed, so names cannot be made to
** collide). */
typedef struct fset {
    size_t interned; /* new atoms this decode interned (its budget) */
    term_t *v;       /* the foreign atoms */
    size_t n, cap;   /* v's length and capacity */
    uint32_t *idx;   /* position in v + 1, or 0; mask + 1 slots */
    size_t mask;
} fset;

typedef struct dec {
    const uint8_t *b, *end; /* the input */
    const etf_decode_opts *opts;
    uint8_t *arena; /* the block being built */
    size_t hp, cap; /* used and allocated bytes of the arena */
    size_t *slots;  /* arena offsets of the slots still to fill */
    size_t scap;
    size_t *maps;            /* pairs: arena offset of a map box, input offset of its tag */
    size_t nmaps, mcap;      /* mcap counts words */
    acache_ent (*acache)[2]; /* this thread's atom cache (below), looked up once */
    fset *fs;                /* NULL until the decode meets a new name */
    int err;
    size_t err_off;
    uint8_t heap;      /* HEAP_* bits: what is on the heap (one test at the end) */
    uint8_t *spec;     /* the arena when it is a cached block of a predicted class */
    unsigned spec_cls; /* that class */
    uint8_t *small;    /* the stack arena */
} dec;

/* dec.heap: the arena, the slot stack or the map list moved to
** the heap; HEAP_FSET: the decode made a set of new atoms; HEAP_SHARE: a binary points into
** opts->share's storage (share_owner(), referenced once the block is sealed). */
enum { HEAP_ARENA = 1, HEAP_SLOTS = 2, HEAP_MAPS = 4, HEAP_FSET = 8, HEAP_SHARE = 16 };

static inline uint64_t load64(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void store64(void *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static inline size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static int fail(dec *d, int code, size_t off)
{
    if (!d->err) {
        d->err = code;
        d->err_off = off;
    }
    return code;
}

/* Writes the 16-byte header of a block member at off (reference count unused, 0). */
static inline void put_hdr(uint8_t *arena, size_t off, uint64_t w1)
{
    uint64_t w[2] = {(uint64_t)off << 29, w1}; /* boff = off / 8 in the high half; off % 8 == 0 */
    memcpy(arena + off, w, 16);
}

static inline void set_slot(uint8_t *arena, size_t slot, term_t v)
{
    memcpy(arena + slot, &v, sizeof v);
}

/* Writes the box at arena offset v into slot. */
static inline void set_box(dec *d, size_t slot, term_t v)
{
    set_slot(d->arena, slot, term__from_box(d->arena + v));
}

/* Moves the word at w by delta when it points into [old, old + cap): a box of the arena, or a
** binary's data. Immediates are not multiples of 8, other pointers are outside. */
static inline void move_word(uint64_t *w, uintptr_t old, size_t cap, uintptr_t delta)
{
    if ((*w & 7) == 0 && *w - old < cap) *w += delta;
}

#if ETF_DECODE_SHARE
/* A BINARY_EXT longer than this may point into opts->share (erts, too, makes a binary of more
** than 64 bytes a reference-counted one) */
#define SHARE_MIN 64

/* What keeps the bytes of the binary share alive: its owner, or itself. */
static inline term_t share_owner(term_t share)
{
    const box_bin *sb = (const box_bin *)term__box(share);
    return sb->owner != TERM_NONE ? sb->owner : share;
}

/* Whether n bytes at p may stay where they are, in opts->share's bytes: they lie inside them
** and are more than a quarter of them (so what a kept binary holds on to is bounded). Then
** the storage is to be held (HEAP_SHARE), and its term is returned; else TERM_NONE. */
static __attribute__((noinline)) term_t can_share(dec *d, const uint8_t *p, size_t n)
{
    term_t sh = d->opts->share;
    if (term__box_type(sh) != BOX_BIN) return TERM_NONE;
    const box_bin *sb = (const box_bin *)term__box(sh);
    if (sb->h.aux != 0 || sb->nbits % 8) return TERM_NONE;
    size_t size = (size_t)(sb->nbits / 8);
    if (p < sb->data || n > size || (size_t)(p - sb->data) > size - n || n <= size / 4)
        return TERM_NONE;
    d->heap |= HEAP_SHARE;
    return share_owner(sh);
}
#endif

/*
** The arena was copied from old (cap bytes) to blk: moves the root and every box word of the
** boxes in [BLK_HDR, end) by delta (blk - old). Boxes are walked by their headers, which the
** builder writes as it allocates each box, before anything else is allocated.
*/
static __attribute__((noinline)) void relocate(uint8_t *blk, size_t end, uintptr_t old, size_t cap,
                                               uintptr_t delta)
{
    move_word((uint64_t *)(void *)(blk + ROOT_OFF), old, cap, delta);
    for (size_t off = BLK_HDR; off < end;) {
        term_box *b = (term_box *)(void *)(blk + off);
        uint64_t *w = (uint64_t *)(void *)(b + 1); /* the words after the header */
        size_t nw = 0, size;                       /* w[0..nw) are terms */
        switch (b->type) {
        case BOX_TUPLE:
            nw = b->n;
            size = sizeof(box_tuple) + nw * 8;
            break;
        case BOX_CONS:
            nw = 2;
            size = sizeof(box_cons);
            break;
        case BOX_MAP:
            nw = 2 * (size_t)b->n;
            size = sizeof(box_map) + nw * 8;
            break;
        case BOX_BIN: {
            box_bin *x = (box_bin *)b;
            uint64_t data = (uint64_t)(uintptr_t)x->data;
            move_word(&data, old, cap, delta);
            x->data = (const uint8_t *)(uintptr_t)data;
#if ETF_DECODE_SHARE
            if (x->owner != TERM_NONE) { /* shared: the bytes are elsewhere */
                size = sizeof(box_bin);
                break;
            }
#endif
            size = align8(sizeof(box_bin) + (size_t)((x->nbits + 7) / 8));
            break;
        }
        case BOX_FLOAT:
            size = sizeof(box_float);
            break;
        case BOX_BIG:
            size = sizeof(box_big) + (size_t)b->n * 8;
            break;
        case BOX_PID:
            nw = 1; /* node */
            size = sizeof(box_pid);
            break;
        case BOX_REF:
            nw = 1;
            size = sizeof(box_ref);
            break;
        case BOX_PORT:
            nw = 1;
            size = sizeof(box_port);
            break;
        case BOX_EXPORT:
            nw = 2; /* module, function */
            size = sizeof(box_export);
            break;
        case BOX_FUN: {
            box_fun *x = (box_fun *)b;
            move_word(&x->module, old, cap, delta);
            move_word(&x->old_index, old, cap, delta);
            move_word(&x->old_uniq, old, cap, delta);
            move_word(&x->pid, old, cap, delta);
            w = x->free;
            nw = b->n;
            size = sizeof(box_fun) + nw * 8;
            break;
        }
        default: /* the builder makes no other box */
            abort();
        }
        for (size_t i = 0; i < nw; i++) move_word(&w[i], old, cap, delta);
        off += size;
    }
}

/* ==================================================================== scratch */

/* Makes room for need (a multiple of 8) more bytes at d->hp: a copy of the arena, relocated. */
static int arena_grow(dec *d, size_t need)
{
    if (TERM__UNLIKELY(d->spec != NULL) && d->hp + need <= ARENA_SMALL) {
        /* the predicted block is too small: go on in the stack arena */
        memcpy(d->small, d->arena, d->hp);
        relocate(d->small, d->hp, (uintptr_t)d->arena, d->cap,
                 (uintptr_t)d->small - (uintptr_t)d->arena);
        term__block_free(d->spec, d->spec_cls);
        d->spec = NULL;
        d->arena = d->small;
        d->cap = ARENA_SMALL;
        return 0;
    }
    if (d->opts && d->opts->max_heap && d->hp + need > d->opts->max_heap)
        return fail(d, GIRDER_EHEAP, 0);
    size_t ncap = d->cap * 2;
    size_t bound = BLK_HDR + 32 * (size_t)(d->end - d->b); /* the largest block it can need */
    if (ncap > bound) ncap = bound;
    if (d->opts && d->opts->max_heap && ncap > d->opts->max_heap) ncap = d->opts->max_heap;
    if (ncap < d->hp + need) ncap = d->hp + need;
    if (ncap / 8 > UINT32_MAX) return fail(d, TERM_ESIZE, 0); /* boff is 32 bits of words */
    uint8_t *na = term__alloc(ncap);
    if (!na) return fail(d, TERM_ENOMEM, 0);
    memcpy(na, d->arena, d->hp);
    relocate(na, d->hp, (uintptr_t)d->arena, d->cap, (uintptr_t)na - (uintptr_t)d->arena);
    if (d->heap & HEAP_ARENA) {
        term__dealloc(d->arena, d->cap);
    } else if (d->spec) {
        term__block_free(d->spec, d->spec_cls);
        d->spec = NULL;
    }
    d->arena = na;
    d->cap = ncap;
    d->heap |= HEAP_ARENA;
    return 0;
}

/* Reserves size bytes in the arena; their offset, or 0 with d->err set. */
static inline size_t d_alloc(dec *d, size_t size)
{
    size = align8(size);
    if (d->cap - d->hp < size && arena_grow(d, size)) return 0;
    size_t off = d->hp;
    d->hp += size;
    return off;
}

/* Grows a stack of words to hold at least need entries; bit is its HEAP_* bit. */
static int stack_grow(dec *d, size_t **v, size_t *cap, unsigned bit, size_t used, size_t need)
{
    size_t ncap = *cap * 2 > need ? *cap * 2 : need;
    size_t *nv = term__alloc(ncap * sizeof(size_t));
    if (!nv) return fail(d, TERM_ENOMEM, 0);
    memcpy(nv, *v, used * sizeof(size_t));
    if (d->heap & bit) term__dealloc(*v, *cap * sizeof(size_t));
    *v = nv;
    *cap = ncap;
    d->heap |= (uint8_t)bit;
    return 0;
}

/* ==================================================================== atoms */

/*
** A per-thread cache from atom name to atom: atoms are never freed or renamed, so an entry
** can never go stale. It holds names of 1..31 bytes, keyed on the bytes that follow the tag
** of a SMALL_ATOM_UTF8_EXT: the length byte and the name. w0 is the first 8 of them (zero
** beyond the name), w1 the name's last 8 bytes when it has at least 8 (else 0); with the
** length in w0 that decides names of up to 15 bytes, and a hit on a longer one compares its
** middle too. The length byte is never 0, so the zeroed table matches nothing. Two ways per
** set: a pair of hot atoms that hash alike (there are always a few among the hundred or so a
** node uses all the time) must not evict each other on every message.
*/
#define ACACHE_BITS 8
#define ACACHE_MAX  31
ETF_TLS acache_ent term__etf_acache[1u << ACACHE_BITS][2];

static const uint64_t low_bytes[9] = {0,
                                      0xFF,
                                      0xFFFF,
                                      0xFFFFFF,
                                      0xFFFFFFFF,
                                      0xFFFFFFFFFFull,
                                      0xFFFFFFFFFFFFull,
                                      0xFFFFFFFFFFFFFFull,
                                      0xFFFFFFFFFFFFFFFFull};

/* Each decode finds the thread's cache once (d->acache): in a shared library every access to
** thread-local storage is a call, which the atoms of one term must not pay again and again. */
static inline acache_ent *acache_set(const dec *d, uint64_t w0, uint64_t w1)
{
    return d->acache[((w0 ^ w1) * 0x9E3779B97F4A7C15ull) >> (64 - ACACHE_BITS)];
}

/* A hit on e for the name s of n bytes: the key matches, and for names over 15 bytes the
** bytes 7..n-8 the key leaves out match too (two words cover them up to 31 bytes). */
static inline bool acache_hit(const acache_ent *e, uint64_t w0, uint64_t w1, const uint8_t *s,
                              size_t n)
{
    return e->w0 == w0 && e->w1 == w1 &&
           (n <= 15 || (load64(e->name + 7) == load64(s + 7) &&
                        load64(e->name + n - 16) == load64(s + n - 16)));
}

/* ---------------------------------------------------------------- foreign atoms */

/* Tests: every atom written out decodes foreign (term__etf_decode_all_foreign()). */
#define all_foreign term__etf_all_foreign
ETF_TLS bool all_foreign;

/*
** Per thread, by input length (mod SIZE_PRED): the class of the block the last decode of that
** length needed (0: none, or larger than the stack arena). A decode takes a cached block of
** that class as its arena, so when the prediction holds (messages of one shape have one
** length) the arena is the block and the final copy is skipped; when the term turns out
** larger it moves to the stack arena, when smaller it is copied into a block of its own class
** as before, so a block never holds more than its class (the same memory as malloc gave).
*/
#define SIZE_PRED 256
#define size_pred term__etf_size_pred
ETF_TLS uint8_t size_pred[SIZE_PRED];

static __attribute__((noinline)) void fset_free(fset *fs)
{
    for (size_t i = 0; i < fs->n; i++) term_free(fs->v[i]);
    term__dealloc(fs->v, fs->cap * sizeof(term_t));
    term__dealloc(fs->idx, (fs->mask + 1) * sizeof(uint32_t));
    term__dealloc(fs, sizeof *fs);
}

/* The decode's set, made at first use: NULL with d->err set on ENOMEM. */
static fset *fset_of(dec *d, size_t off)
{
    if (!d->fs) {
        d->fs = term__alloc(sizeof *d->fs);
        if (!d->fs) return fail(d, TERM_ENOMEM, off), NULL;
        memset(d->fs, 0, sizeof *d->fs);
        d->heap |= HEAP_FSET;
    }
    return d->fs;
}

/* The foreign atom of this decode named s (len bytes, table hash h), or TERM_NONE. */
static term_t fset_find(const fset *fs, const char *s, size_t len, uint32_t h)
{
    if (!fs || !fs->n) return TERM_NONE;
    for (size_t i = h & fs->mask;; i = (i + 1) & fs->mask) {
        uint32_t k = fs->idx[i];
        if (!k) return TERM_NONE;
        const term__atom_entry *e = term__atom_entry_any(fs->v[k - 1]);
        if (e->hash == h && e->len == len && memcmp(e->name, s, len) == 0) return fs->v[k - 1];
    }
}

/* Adds a (a reference the set takes over, or drops on failure): 0 or ENOMEM / ESIZE. */
static int fset_add(fset *fs, term_t a)
{
    if (fs->n == fs->cap) {
        size_t ncap = fs->cap ? fs->cap * 2 : 8;
        if (ncap > UINT32_MAX) goto size; /* block headers count them in 32 bits */
        term_t *nv = term__realloc(fs->v, fs->cap * sizeof(term_t), ncap * sizeof(term_t));
        if (!nv) goto nomem;
        fs->v = nv;
        fs->cap = ncap;
    }
    if (2 * (fs->n + 1) > fs->mask + 1 || !fs->idx) { /* at most half full */
        size_t nslots = fs->idx ? 2 * (fs->mask + 1) : 32;
        uint32_t *ni = term__alloc(nslots * sizeof(uint32_t));
        if (!ni) goto nomem;
        memset(ni, 0, nslots * sizeof(uint32_t));
        for (size_t k = 0; k < fs->n; k++) {
            size_t i = term__atom_entry_any(fs->v[k])->hash & (nslots - 1);
            while (ni[i]) i = (i + 1) & (nslots - 1);
            ni[i] = (uint32_t)(k + 1);
        }
        term__dealloc(fs->idx, (fs->mask + 1) * sizeof(uint32_t));
        fs->idx = ni;
        fs->mask = nslots - 1;
    }
    size_t i = term__atom_entry_any(a)->hash & fs->mask;
    while (fs->idx[i]) i = (i + 1) & fs->mask;
    fs->idx[i] = (uint32_t)(fs->n + 1);
    fs->v[fs->n++] = a;
    return 0;
nomem:
    term_free(a);
    return TERM_ENOMEM;
size:
    term_free(a);
    return TERM_ESIZE;
}

/* An atom from the atom cache that is foreign: this decode's atom of that name (so one per
** name), taking a reference of its own. 0 or an error code. */
static int cached_foreign(dec *d, term_t *a, size_t off)
{
    const term__atom_entry *e = term__atom_entry_any(*a);
    term_t f = fset_find(d->fs, e->name, e->len, e->hash);
    if (f != TERM_NONE) {
        *a = f;
        return 0;
    }
    fset *fs = fset_of(d, off);
    int rc = fs ? fset_add(fs, term_dup(*a)) : TERM_ENOMEM;
    return rc ? fail(d, rc, off) : 0;
}

/*
** A name not found interned: interned within the budget (opts->max_new_atoms), the external
** quota and the table, else a foreign atom with opts->foreign_atoms, else EATOMLIMIT. A name
** met before in this decode as a foreign atom gets that atom. 0 or an error code.
*/
static __attribute__((noinline)) int new_atom(dec *d, const char *name, size_t len, uint32_t h,
                                              size_t off, term_t *out)
{
    fset *fs = fset_of(d, off);
    if (!fs) return d->err;
    term_t a = fset_find(fs, name, len, h);
    if (a != TERM_NONE) {
        *out = a;
        return 0;
    }
    const etf_decode_opts *o = d->opts;
    bool foreign = o && o->foreign_atoms;
    size_t max = o ? o->max_new_atoms : 0;
    bool latin1, ascii;
    if (term__atom_check(name, len, &latin1, &ascii)) return fail(d, TERM_EATOM, off);
    if (all_foreign) {
        /* no interning at all */
    } else if (foreign ? fs->interned < max : (max == 0 || fs->interned < max)) {
        int err = 0;
        bool created = false;
        a = term__atom_intern_external(name, len, h, latin1, ascii, &err, &created);
        if (a != TERM_NONE) {
            fs->interned += created;
            if (o && o->stats) o->stats->interned += created;
            *out = a;
            return 0;
        }
        if (err != TERM_EATOMLIMIT || !foreign) return fail(d, err, off);
    } else if (!foreign) {
        return fail(d, TERM_EATOMLIMIT, off);
    }
    a = term__fatom_new(name, len, h, latin1, ascii);
    if (a == TERM_NONE) return fail(d, TERM_ENOMEM, off);
    int rc = fset_add(fs, a);
    if (rc) return fail(d, rc, off);
    if (o && o->stats) o->stats->foreign++;
    *out = a;
    return 0;
}

/* ---------------------------------------------------------------- any atom */

#if !ETF_DECODE_SHARE
_Thread_local size_t term__atom_slow_calls;
#endif

/* Any atom encoding at p, or an atom cache reference: the new position, or NULL with d->err
** set. Finds, or creates within the budget, the atom and remembers it in the cache. */
static const uint8_t *atom_slow(dec *d, const uint8_t *p, term_t *out)
{
    term__atom_slow_calls++;
    const uint8_t *start = p, *end = d->end;
    size_t off = (size_t)(start - d->b), n;
    bool utf8;
    if (p == end) goto trunc;
    uint8_t tag = *p++;
    switch (tag) {
    case ATOM_EXT:
    case ATOM_UTF8_EXT:
        if (end - p < 2) goto trunc;
        n = girder__get16(p);
        p += 2;
        utf8 = tag == ATOM_UTF8_EXT;
        break;
    case SMALL_ATOM_EXT:
    case SMALL_ATOM_UTF8_EXT:
        if (p == end) goto trunc;
        n = *p++;
        utf8 = tag == SMALL_ATOM_UTF8_EXT;
        break;
    case ATOM_CACHE_REF: {
        if (p == end) goto trunc;
        term_t a = d->opts && d->opts->cache ? d->opts->cache->atoms[*p] : TERM_NONE;
        if (!term_is_atom(a)) return fail(d, TERM_ECACHE, off), NULL;
        if (!term_atom_is_interned(a) && cached_foreign(d, &a, off)) return NULL;
        *out = a;
        return p + 1;
    }
    default:
        return fail(d, TERM_EATOM, off), NULL;
    }
    if ((size_t)(end - p) < n) goto trunc;
    const uint8_t *s = p;
    p += n;
    char conv[512];
    const char *name = (const char *)s;
    size_t len = n;
    if (!utf8) {
        if (n > 255) return fail(d, TERM_EATOM, off), NULL;
        bool ascii = true;
        for (size_t i = 0; i < n; i++) ascii &= s[i] < 0x80;
        if (!ascii) {
            len = term__latin1_to_utf8(s, n, conv);
            name = conv;
        }
    }
    acache_ent *e = NULL;
    uint64_t w0 = 0, w1 = 0;
    if (len >= 1 && len <= ACACHE_MAX) {
        uint8_t kb[1 + ACACHE_MAX + 8] = {(uint8_t)len}; /* as after the tag of a small atom */
        memcpy(kb + 1, name, len);
        w0 = load64(kb) & low_bytes[len < 8 ? len + 1 : 8];
        if (len >= 8) w1 = load64(kb + 1 + len - 8);
        e = acache_set(d, w0, w1);
        for (int way = 0; way < 2; way++)
            if (acache_hit(&e[way], w0, w1, (const uint8_t *)name, len)) {
                *out = e[way].atom;
                return p;
            }
    }
    uint32_t h = term__atom_hash(name, len);
    term_t a = all_foreign ? TERM_NONE : term__atom_lookup(name, len, h);
    if (a == TERM_NONE && new_atom(d, name, len, h, off, &a)) return NULL;
    if (e && term_atom_is_interned(a)) { /* foreign atoms die: never cached */
        e[1] = e[0]; /* the newest goes first, the older one stays as second way */
        e->w0 = w0;
        e->w1 = w1;
        e->name = term_atom_name(a, NULL);
        e->atom = a;
    }
    *out = a;
    return p;
trunc:
    return fail(d, TERM_ETRUNC, (size_t)(end - d->b)), NULL;
}

/* The k (1..8) little-endian bytes at s as a word: one load of the 8 bytes that end at s + k
** when they all lie in the input (from d->b on), else byte by byte. */
static inline uint64_t load_partial(const dec *d, const uint8_t *s, size_t k)
{
    if ((size_t)(s - d->b) + k >= 8) return load64(s + k - 8) >> (64 - 8 * k);
    uint64_t v = 0;
    for (size_t i = 0; i < k; i++) v |= (uint64_t)s[i] << (8 * i);
    return v;
}

/*
** The common case: a SMALL_ATOM_UTF8_EXT (distribution and OTP 26) of 1..31 bytes that is
** in the cache. Its end, or NULL for anything else (without error: atom_slow decides).
*/
static inline __attribute__((always_inline)) const uint8_t *
atom_fast(const dec *d, const uint8_t *p, const uint8_t *end, term_t *out)
{
    const uint8_t *s = p + 2;
    const acache_ent *e;
    uint64_t w0;
    size_t n;
    if (TERM__LIKELY(end - p >= 9)) {
        /* far from the end: a name of up to 7 bytes and its key's 8 bytes are all there */
        if (p[0] != SMALL_ATOM_UTF8_EXT) return NULL;
        n = p[1];
        if (n - 1 < 7) { /* n - 1 wraps for 0 */
            w0 = load64(p + 1) & low_bytes[n + 1];
            goto short_name;
        }
    } else {
        if (end - p < 2 || p[0] != SMALL_ATOM_UTF8_EXT) return NULL;
        n = p[1];
        if (n - 1 < 7) {
            /* near the end: the length byte and the name, in one load when the input has 8
            ** bytes ending there, else (a bare atom such as ok as a whole message) byte by
            ** byte (written out: through load_partial() GCC 12's code cost ~8 more per item) */
            if ((size_t)(end - s) < n) return NULL;
            if ((size_t)(s - d->b) + n >= 8) {
                w0 = load64(s + n - 8) >> (56 - 8 * n);
            } else {
                w0 = n;
                for (size_t i = 0; i < n; i++) w0 |= (uint64_t)s[i] << (8 * i + 8);
            }
            goto short_name;
        }
    }
    if (n - 1 >= ACACHE_MAX || (size_t)(end - s) < n) return NULL;
    /* 8..31 bytes */
    w0 = load64(p + 1);
    uint64_t w1 = load64(s + n - 8);
    e = acache_set(d, w0, w1);
    if (!acache_hit(e, w0, w1, s, n) && !acache_hit(++e, w0, w1, s, n)) return NULL;
    *out = e->atom;
    return s + n;
short_name:
    /* w0 holds the length byte and the whole name: equal w0, equal name (and w1 is 0) */
    e = acache_set(d, w0, 0);
    if (e->w0 != w0 && (++e)->w0 != w0) return NULL;
    *out = e->atom;
    return s + n;
}

/* Any atom at p: its end, or NULL with d->err set. */
static inline const uint8_t *read_atom(dec *d, const uint8_t *p, term_t *out)
{
    const uint8_t *q = atom_fast(d, p, d->end, out);
    return q ? q : atom_slow(d, p, out);
}

/*
** A leaf that needs no allocation at p: a small integer, [] or an atom atom_fast() finds.
** Its end, or NULL for anything else (left to the main loop, which also reports errors).
** Containers decode runs of such elements in place, without a trip through the slot stack.
*/
static inline __attribute__((always_inline)) const uint8_t *leaf(const dec *d, const uint8_t *p,
                                                                 const uint8_t *end, term_t *v)
{
    /* tests, not a jump table: the main loop already has one for everything else */
    if (TERM__LIKELY(end - p >= 9)) { /* far from the end: no leaf needs a bounds check */
        uint8_t tag = *p;
        if (tag == SMALL_ATOM_UTF8_EXT) return atom_fast(d, p, end, v);
        if (tag == SMALL_INTEGER_EXT) {
            *v = term__make_small(p[1]);
            return p + 2;
        }
        if (tag == INTEGER_EXT) {
            *v = term__make_small((int32_t)girder__get32(p + 1));
            return p + 5;
        }
        if (tag == NIL_EXT) {
            *v = TERM_NIL;
            return p + 1;
        }
        return NULL;
    }
    if (p == end) return NULL;
    uint8_t tag = *p;
    if (tag == SMALL_ATOM_UTF8_EXT) return atom_fast(d, p, end, v);
    if (tag == SMALL_INTEGER_EXT && end - p >= 2) {
        *v = term__make_small(p[1]);
        return p + 2;
    }
    if (tag == INTEGER_EXT && end - p >= 5) {
        *v = term__make_small((int32_t)girder__get32(p + 1));
        return p + 5;
    }
    if (tag == NIL_EXT) {
        *v = TERM_NIL;
        return p + 1;
    }
    return NULL;
}

/* ==================================================================== leaves */

/* A bignum magnitude of n bytes at p (little-endian), normalised to a small integer when it
** fits. NULL on allocation failure. */
static const uint8_t *read_big(dec *d, const uint8_t *p, size_t n, bool neg, term_t *out)
{
    const uint8_t *m = p;
    p += n;
    while (n > 0 && m[n - 1] == 0) n--;
    if (n <= 8) {
        uint64_t v = n == 8 ? load64(m) : n ? load_partial(d, m, n) : 0;
        if (!neg && v <= (uint64_t)TERM_SMALL_MAX) {
            *out = term__make_small((int64_t)v);
            return p;
        }
        if (neg && v <= (uint64_t)TERM_SMALL_MAX + 1) {
            *out = term__make_small((int64_t)(0 - v));
            return p;
        }
    }
    size_t nl = (n + 7) / 8;
    size_t off = d_alloc(d, sizeof(box_big) + nl * 8);
    if (!off) return NULL;
    box_big *g = (box_big *)(void *)(d->arena + off);
    put_hdr(d->arena, off, HW(BOX_BIG, neg ? BOXF_NEG : 0, 0, nl));
    /* little-endian bytes are little-endian limbs: whole limbs are one load */
    for (size_t i = 0; i < n / 8; i++) g->limbs[i] = load64(m + 8 * i);
    if (n % 8) g->limbs[n / 8] = load_partial(d, m + (n & ~(size_t)7), n % 8);
    *out = off;
    return p;
}

/* A fun's OldIndex or OldUniq: a small, 32-bit or SMALL_BIG integer. */
static const uint8_t *read_int_field(dec *d, const uint8_t *p, term_t *out)
{
    const uint8_t *end = d->end;
    size_t off = (size_t)(p - d->b);
    if (p == end) goto trunc;
    switch (*p) {
    case SMALL_INTEGER_EXT:
        if (end - p < 2) goto trunc;
        *out = term__make_small(p[1]);
        return p + 2;
    case INTEGER_EXT:
        if (end - p < 5) goto trunc;
        *out = term__make_small((int32_t)girder__get32(p + 1));
        return p + 5;
    case SMALL_BIG_EXT:
        if (end - p < 3 || (size_t)(end - p - 3) < p[1]) goto trunc;
        return read_big(d, p + 3, p[1], p[2] != 0, out);
    }
    return fail(d, TERM_ETYPE, off), NULL;
trunc:
    return fail(d, TERM_ETRUNC, (size_t)(end - d->b)), NULL;
}

/* A pid (NEW_PID_EXT or PID_EXT) at p; the tag is checked by the caller when needed. */
static inline __attribute__((always_inline)) const uint8_t *read_pid(dec *d, const uint8_t *p,
                                                                     term_t *out)
{
    uint8_t tag = *p;
    term_t node;
    if (!(p = read_atom(d, p + 1, &node))) return NULL;
    size_t k = tag == NEW_PID_EXT ? 12 : 9;
    if ((size_t)(d->end - p) < k) return fail(d, TERM_ETRUNC, (size_t)(d->end - d->b)), NULL;
    size_t off = d_alloc(d, sizeof(box_pid));
    if (!off) return NULL;
    box_pid *x = (box_pid *)(void *)(d->arena + off);
    put_hdr(d->arena, off, HW(BOX_PID, 0, 0, 0));
    x->node = node;
    x->id = girder__get32(p);
    x->serial = girder__get32(p + 4);
    x->creation = k == 12 ? girder__get32(p + 8) : p[8];
    *out = off;
    return p + k;
}

static const uint8_t *read_pid_field(dec *d, const uint8_t *p, term_t *out)
{
    if (p == d->end) return fail(d, TERM_ETRUNC, (size_t)(d->end - d->b)), NULL;
    if (*p != NEW_PID_EXT && *p != PID_EXT) return fail(d, TERM_ETYPE, (size_t)(p - d->b)), NULL;
    return read_pid(d, p, out);
}

/* A reference of any of the three forms at p. */
static inline __attribute__((always_inline)) const uint8_t *read_ref(dec *d, const uint8_t *p,
                                                                     term_t *out)
{
    const uint8_t *start = p, *end = d->end;
    uint8_t tag = *p++;
    size_t n = 1;
    if (tag != REFERENCE_EXT) {
        if (end - p < 2) goto trunc;
        n = girder__get16(p);
        p += 2;
        if (n < 1 || n > 5) return fail(d, TERM_ESIZE, (size_t)(start - d->b)), NULL;
    }
    term_t node;
    if (!(p = read_atom(d, p, &node))) return NULL;
    size_t cr = tag == NEWER_REFERENCE_EXT ? 4 : 1;
    if ((size_t)(end - p) < cr + 4 * n) goto trunc;
    size_t off = d_alloc(d, sizeof(box_ref));
    if (!off) return NULL;
    box_ref *r = (box_ref *)(void *)(d->arena + off);
    put_hdr(d->arena, off, HW(BOX_REF, 0, n, 0));
    r->node = node;
    memset(r->words, 0, sizeof r->words);
    if (tag == REFERENCE_EXT) {
        r->words[0] = girder__get32(p);
        r->creation = p[4];
        *out = off;
        return p + 5;
    }
    r->creation = cr == 4 ? girder__get32(p) : p[0];
    p += cr;
    for (size_t i = 0; i < n; i++) r->words[i] = girder__get32(p + 4 * i);
    *out = off;
    return p + 4 * n;
trunc:
    return fail(d, TERM_ETRUNC, (size_t)(end - d->b)), NULL;
}

/* A port of any of the three forms at p. */
static const uint8_t *read_port(dec *d, const uint8_t *p, term_t *out)
{
    uint8_t tag = *p;
    term_t node;
    if (!(p = read_atom(d, p + 1, &node))) return NULL;
    size_t k = tag == V4_PORT_EXT ? 12 : tag == NEW_PORT_EXT ? 8 : 5;
    if ((size_t)(d->end - p) < k) return fail(d, TERM_ETRUNC, (size_t)(d->end - d->b)), NULL;
    size_t off = d_alloc(d, sizeof(box_port));
    if (!off) return NULL;
    box_port *x = (box_port *)(void *)(d->arena + off);
    put_hdr(d->arena, off, HW(BOX_PORT, 0, 0, 0));
    x->node = node;
    if (tag == V4_PORT_EXT) {
        x->id = girder__get64(p);
        x->creation = girder__get32(p + 8);
    } else {
        x->id = girder__get32(p);
        x->creation = tag == NEW_PORT_EXT ? girder__get32(p + 4) : p[4];
    }
    *out = off;
    return p + k;
}

/* EXPORT_EXT at p: module and function atoms, then the arity as a SMALL_INTEGER_EXT. */
static const uint8_t *read_export(dec *d, const uint8_t *p, term_t *out)
{
    term_t m, f;
    if (!(p = read_atom(d, p + 1, &m)) || !(p = read_atom(d, p, &f))) return NULL;
    if (d->end - p < 2) return fail(d, TERM_ETRUNC, (size_t)(d->end - d->b)), NULL;
    if (*p != SMALL_INTEGER_EXT) return fail(d, TERM_ETYPE, (size_t)(p - d->b)), NULL;
    size_t off = d_alloc(d, sizeof(box_export));
    if (!off) return NULL;
    box_export *x = (box_export *)(void *)(d->arena + off);
    put_hdr(d->arena, off, HW(BOX_EXPORT, 0, 0, 0));
    x->module = m;
    x->function = f;
    x->arity = p[1];
    *out = off;
    return p + 2;
}

/* FLOAT_EXT: 31 bytes of printf text. */
static const uint8_t *read_old_float(dec *d, const uint8_t *p, term_t *out)
{
    size_t start = (size_t)(p - d->b);
    if (d->end - p < 32) return fail(d, TERM_ETRUNC, (size_t)(d->end - d->b)), NULL;
    char tmp[32];
    memcpy(tmp, p + 1, 31);
    tmp[31] = 0;
    char *e;
    double v = strtod(tmp, &e);
    if (e == tmp || !isfinite(v)) return fail(d, TERM_EFLOAT, start), NULL;
    for (; *e; e++)
        if (*e != ' ') return fail(d, TERM_EFLOAT, start), NULL;
    size_t off = d_alloc(d, sizeof(box_float));
    if (!off) return NULL;
    put_hdr(d->arena, off, HW(BOX_FLOAT, 0, 0, 0));
    memcpy(d->arena + off + offsetof(box_float, d), &v, 8);
    *out = off;
    return p + 32;
}

/*
** NEW_FUN_EXT or FUN_EXT at p: the fixed fields are read here; the free variables become
** slots for the main loop, whose offset and count go to *frees and *nfree.
*/
static const uint8_t *read_fun(dec *d, const uint8_t *p, term_t *out, size_t *frees, size_t *nfree)
{
    const uint8_t *start = p, *end = d->end;
    size_t soff = (size_t)(start - d->b), n;
    term_t module, oidx, ouniq, pid;
    uint32_t arity = 0, index = 0;
    const uint8_t *uniq = NULL;
    if (*p == NEW_FUN_EXT) {
        /* Size(4) Arity(1) Uniq(16) Index(4) NumFree(4) Module OldIndex OldUniq Pid Free */
        if (end - p < 30) goto trunc;
        size_t size = girder__get32(p + 1);
        if (size > (size_t)(end - start) - 1 || size < 29) return fail(d, TERM_ESIZE, soff), NULL;
        arity = p[5];
        uniq = p + 6;
        index = girder__get32(p + 22);
        n = girder__get32(p + 26);
        p += 30;
        if (!(p = read_atom(d, p, &module)) || !(p = read_int_field(d, p, &oidx)) ||
            !(p = read_int_field(d, p, &ouniq)) || !(p = read_pid_field(d, p, &pid)))
            return NULL;
    } else {
        /* NumFree(4) Pid Module Index Uniq Free */
        if (end - p < 5) goto trunc;
        n = girder__get32(p + 1);
        p += 5;
        if (!(p = read_pid_field(d, p, &pid)) || !(p = read_atom(d, p, &module)) ||
            !(p = read_int_field(d, p, &oidx)) || !(p = read_int_field(d, p, &ouniq)))
            return NULL;
    }
    if (n > (size_t)(end - p)) return fail(d, TERM_ESIZE, soff), NULL;
    size_t off = d_alloc(d, sizeof(box_fun) + n * sizeof(term_t));
    if (!off) return NULL;
    box_fun *f = (box_fun *)(void *)(d->arena + off);
    put_hdr(d->arena, off, HW(BOX_FUN, uniq ? 0 : BOXF_OLDFUN, 0, n));
    f->module = module;
    f->old_index = oidx;
    f->old_uniq = ouniq;
    if (!(oidx & 7)) set_box(d, off + offsetof(box_fun, old_index), oidx);
    if (!(ouniq & 7)) set_box(d, off + offsetof(box_fun, old_uniq), ouniq);
    set_box(d, off + offsetof(box_fun, pid), pid);
    f->arity = arity;
    f->index = index;
    if (uniq)
        memcpy(f->uniq, uniq, 16);
    else
        memset(f->uniq, 0, 16);
    *out = off;
    *frees = off + offsetof(box_fun, free);
    *nfree = n;
    return p;
trunc:
    return fail(d, TERM_ETRUNC, (size_t)(end - d->b)), NULL;
}

/* ==================================================================== the pass */

/*
** Decodes one term at d->b into the arena (root at ROOT_OFF); the end position, or NULL with
** d->err set. The hot state lives in locals: arena stores are 8-byte words, which C lets
** alias any size_t field of *d, so fields would be reloaded after every store.
*/
static const uint8_t *build(dec *d)
{
    const uint8_t *p = d->b, *const end = d->end;
    uint8_t *arena = d->arena;
    size_t hp = d->hp, *slots = d->slots, ns = 0, scap = d->scap;
    size_t slot = ROOT_OFF;
    const uint8_t *start, *q;
    size_t n, m, off, last;
    term_t v;  /* helpers' results: its address goes to functions not inlined */
    term_t lv; /* leaf()'s results, kept apart so that it can live in a register */

/* Fails with ETRUNC unless k bytes are left. */
#define NEED(k)                                                  \
    do {                                                         \
        if (TERM__UNLIKELY((size_t)(end - p) < (k))) goto trunc; \
    } while (0)
/* off = room for size bytes in the arena. */
#define ALLOC(size)                              \
    do {                                         \
        size_t sz_ = align8(size);               \
        if (TERM__UNLIKELY(d->cap - hp < sz_)) { \
            d->hp = hp;                          \
            if (arena_grow(d, sz_)) return NULL; \
            arena = d->arena;                    \
        }                                        \
        off = hp;                                \
        hp += sz_;                               \
    } while (0)
/* Room for k more slots; refuses counts the bytes left cannot hold (one byte a term). */
#define PUSHN(k)                                                                           \
    do {                                                                                   \
        if (TERM__UNLIKELY(ns + (k) > (size_t)(end - p))) goto trunc; /* k <= 2^33 */      \
        if (TERM__UNLIKELY(ns + (k) > scap)) {                                             \
            if (stack_grow(d, &d->slots, &d->scap, HEAP_SLOTS, ns, ns + (k))) return NULL; \
            slots = d->slots;                                                              \
            scap = d->scap;                                                                \
        }                                                                                  \
    } while (0)
/* Calls a helper that may allocate, with the arena state handed over and back. */
#define HELPER(call)                    \
    do {                                \
        d->hp = hp;                     \
        if (!(p = (call))) return NULL; \
        hp = d->hp;                     \
        arena = d->arena;               \
    } while (0)
/* Writes the box at arena offset v into slot at. */
#define SETBOX(at, v) set_slot(arena, (at), term__from_box(arena + (v)))
/* Writes any term into slot at: a boxed one (an arena offset) as a pointer. */
#define SETANY(at, v)                  \
    do {                               \
        term_t v_ = (v);               \
        if (v_ & 7)                    \
            set_slot(arena, (at), v_); \
        else                           \
            SETBOX(at, v_);            \
    } while (0)

    for (;;) {
        start = p;
        if (p == end) goto trunc;
        switch (*p) {
        case SMALL_INTEGER_EXT:
            NEED(2);
            set_slot(arena, slot, term__make_small(p[1]));
            p += 2;
            break;
        case INTEGER_EXT:
            NEED(5);
            set_slot(arena, slot, term__make_small((int32_t)girder__get32(p + 1)));
            p += 5;
            break;
        case SMALL_ATOM_UTF8_EXT:
        case ATOM_EXT:
        case SMALL_ATOM_EXT:
        case ATOM_UTF8_EXT:
        case ATOM_CACHE_REF:
            if (!(p = read_atom(d, p, &v))) return NULL;
            set_slot(arena, slot, v);
            break;
        case NIL_EXT:
            set_slot(arena, slot, TERM_NIL);
            p += 1;
            break;
        case SMALL_TUPLE_EXT:
            NEED(2);
            n = p[1];
            p += 2;
            goto tuple;
        case LARGE_TUPLE_EXT:
            NEED(5);
            n = girder__get32(p + 1);
            p += 5;
            if (n > (size_t)(end - p)) return fail(d, TERM_ESIZE, (size_t)(start - d->b)), NULL;
        tuple:
            PUSHN(n);
            ALLOC(sizeof(box_tuple) + n * sizeof(term_t));
            put_hdr(arena, off, HW(BOX_TUPLE, 0, 0, n));
            SETBOX(slot, off);
            off += sizeof(box_tuple);
            for (; n > 0; n--, off += sizeof(term_t)) {
                if (!(q = leaf(d, p, end, &lv))) break;
                set_slot(arena, off, lv);
                p = q;
            }
            if (n == 0) break;
            /* the rest pushed last to first; the first of them is decoded next */
            for (size_t i = n - 1; i > 0; i--) slots[ns++] = off + i * sizeof(term_t);
            slot = off;
            continue;
        case MAP_EXT:
            NEED(5);
            n = girder__get32(p + 1);
            p += 5;
            if (n > (size_t)(end - p) / 2) return fail(d, TERM_ESIZE, (size_t)(start - d->b)), NULL;
            PUSHN(2 * n);
            ALLOC(sizeof(box_map) + 2 * n * sizeof(term_t));
            put_hdr(arena, off, HW(BOX_MAP, 0, 0, n));
            SETBOX(slot, off);
            if (2 * d->nmaps + 2 > d->mcap &&
                stack_grow(d, &d->maps, &d->mcap, HEAP_MAPS, 2 * d->nmaps, 2 * d->nmaps + 2))
                return NULL;
            d->maps[2 * d->nmaps] = off;
            d->maps[2 * d->nmaps + 1] = (size_t)(start - d->b);
            d->nmaps++;
            /* keys[i] and values[i] alternate in the input (j = 2i, 2i + 1); they are sorted
            ** once the whole term is built */
            off += sizeof(box_map);
#define KV(j) (off + (((j) >> 1) + ((j)&1) * n) * sizeof(term_t))
            for (m = 0; m < 2 * n; m++) {
                if (!(q = leaf(d, p, end, &lv))) break;
                set_slot(arena, KV(m), lv);
                p = q;
            }
            if (m == 2 * n) break;
            for (size_t j = 2 * n - 1; j > m; j--) slots[ns++] = KV(j);
            slot = KV(m);
#undef KV
            continue;
        case STRING_EXT: {
            NEED(3);
            n = girder__get16(p + 1);
            p += 3;
            NEED(n);
            const uint8_t *s = p;
            p += n;
            if (n == 0) {
                set_slot(arena, slot, TERM_NIL);
                break;
            }
            ALLOC(n * sizeof(box_cons));
            SETBOX(slot, off);
            /* Cell i's header counts the n - i string cells from it to the end (see
            ** box_cons): its four words come from running values. */
            uint8_t *c = arena + off;
            uint64_t w0 = (uint64_t)off << 29, w1 = HW(BOX_CONS, 0, 0, n);
            term_t tl = term__from_box(c + sizeof(box_cons));
            const uint64_t dw0 = (uint64_t)(sizeof(box_cons) / 8) << 32, dw1 = (uint64_t)1 << 32;
            size_t i = 0;
            /* two cells a step: the loop's own instructions are shared */
            for (; i + 2 < n; i += 2, c += 2 * sizeof(box_cons)) {
                store64(c, w0);
                store64(c + 8, w1);
                store64(c + 16, term__make_small(s[i]));
                store64(c + 24, tl);
                store64(c + 32, w0 + dw0);
                store64(c + 40, w1 - dw1);
                store64(c + 48, term__make_small(s[i + 1]));
                store64(c + 56, tl + sizeof(box_cons));
                w0 += 2 * dw0;
                w1 -= 2 * dw1;
                tl += 2 * sizeof(box_cons);
                __asm__("" : "+r"(c)); /* no vectorising: 16-byte lanes cost more here */
            }
            if (i + 1 < n) {
                store64(c, w0);
                store64(c + 8, w1);
                store64(c + 16, term__make_small(s[i]));
                store64(c + 24, tl);
                w0 += dw0;
                w1 -= dw1;
                c += sizeof(box_cons);
            }
            store64(c, w0);
            store64(c + 8, w1);
            store64(c + 16, term__make_small(s[n - 1]));
            store64(c + 24, TERM_NIL);
            break;
        }
        case LIST_EXT:
            NEED(5);
            n = girder__get32(p + 1);
            p += 5;
            if (n >= (size_t)(end - p)) return fail(d, TERM_ESIZE, (size_t)(start - d->b)), NULL;
            PUSHN(n + 1);
            if (n == 0) { /* degenerate: just the tail, into this same slot */
                slots[ns++] = slot;
                break;
            }
            ALLOC(n * sizeof(box_cons));
            SETBOX(slot, off);
            /* one pass over the cells: header, link to the next, and the head while heads
            ** are leaves; m ends at the first cell whose head is left to the main loop */
            last = off + (n - 1) * sizeof(box_cons);
            for (m = off;; m += sizeof(box_cons)) {
                put_hdr(arena, m, HW(BOX_CONS, 0, 0, 0));
                if (m == last) {
                    if ((q = leaf(d, p, end, &lv))) {
                        set_slot(arena, m + offsetof(box_cons, hd), lv);
                        p = q;
                        m += sizeof(box_cons);
                    }
                    break;
                }
                SETBOX(m + offsetof(box_cons, tl), m + sizeof(box_cons));
                if (!(q = leaf(d, p, end, &lv))) break;
                set_slot(arena, m + offsetof(box_cons, hd), lv);
                p = q;
            }
            /* the tail is filled last: pushed first (unless it is next), then the heads */
            slot = last + offsetof(box_cons, tl);
            if (m > last) continue;
            for (size_t c = m + sizeof(box_cons); c <= last; c += sizeof(box_cons)) {
                put_hdr(arena, c, HW(BOX_CONS, 0, 0, 0));
                if (c != last) SETBOX(c + offsetof(box_cons, tl), c + sizeof(box_cons));
            }
            slots[ns++] = slot;
            for (size_t c = last; c > m; c -= sizeof(box_cons))
                slots[ns++] = c + offsetof(box_cons, hd);
            slot = m + offsetof(box_cons, hd);
            continue;
        case BINARY_EXT:
        case BIT_BINARY_EXT: {
            unsigned bits = 8;
            NEED(5);
            n = girder__get32(p + 1);
            p += 5;
            if (*start == BIT_BINARY_EXT) {
                NEED(1);
                bits = *p++;
                if (n == 0 ? bits != 0 : (bits < 1 || bits > 8))
                    return fail(d, TERM_EBITS, (size_t)(start - d->b)), NULL;
            }
            NEED(n);
#if ETF_DECODE_SHARE
            term_t own;
            if (n > SHARE_MIN && bits == 8 && (own = can_share(d, p, n)) != TERM_NONE) {
                ALLOC(sizeof(box_bin));
                put_hdr(arena, off, HW(BOX_BIN, 0, 0, 0));
                box_bin *sb = (box_bin *)(void *)(arena + off);
                sb->nbits = (uint64_t)n * 8;
                sb->owner = own;
                sb->data = p; /* outside the arena: relocations leave it */
                SETBOX(slot, off);
                p += n;
                break;
            }
#endif
            ALLOC(sizeof(box_bin) + n);
            put_hdr(arena, off, HW(BOX_BIN, 0, 0, 0));
            box_bin *b = (box_bin *)(void *)(arena + off);
            b->nbits = n == 0 ? 0 : (uint64_t)n * 8 - (8 - bits);
            b->owner = TERM_NONE;
            term__copy(b->inl, p, n);
            if (bits < 8 && n) b->inl[n - 1] &= (uint8_t)(0xFF << (8 - bits));
            SETBOX(off + offsetof(box_bin, data), off + offsetof(box_bin, inl)); /* data */
            SETBOX(slot, off);
            p += n;
            break;
        }
        case NEW_FLOAT_EXT: {
            NEED(9);
            uint64_t bits = girder__get64(p + 1);
            if (((bits >> 52) & 0x7FF) == 0x7FF)
                return fail(d, TERM_EFLOAT, (size_t)(start - d->b)), NULL;
            ALLOC(sizeof(box_float));
            put_hdr(arena, off, HW(BOX_FLOAT, 0, 0, 0));
            memcpy(arena + off + offsetof(box_float, d), &bits, 8);
            SETBOX(slot, off);
            p += 9;
            break;
        }
        case SMALL_BIG_EXT:
            NEED(3);
            n = p[1];
            p += 3;
            NEED(n);
            /* Up to two limbs with a non-zero top byte (what erts writes) in place; the rest
            ** by read_big(). */
            if (n - 1 < 16 && p[n - 1] != 0) {
                bool neg = start[2] != 0;
                uint64_t lo = n >= 8 ? load64(p) : load_partial(d, p, n);
                if (n <= 8 && lo <= (uint64_t)TERM_SMALL_MAX + neg) {
                    set_slot(arena, slot, term__make_small(neg ? (int64_t)(0 - lo) : (int64_t)lo));
                    p += n;
                    break;
                }
                m = n > 8 ? 2 : 1; /* limbs */
                ALLOC(sizeof(box_big) + m * 8);
                put_hdr(arena, off, HW(BOX_BIG, neg ? BOXF_NEG : 0, 0, m));
                store64(arena + off + offsetof(box_big, limbs), lo);
                if (m == 2)
                    store64(arena + off + offsetof(box_big, limbs) + 8,
                            load64(p + n - 8) >> (64 - 8 * (n - 8)));
                SETBOX(slot, off);
                p += n;
                break;
            }
            HELPER(read_big(d, p, n, start[2] != 0, &v));
            SETANY(slot, v);
            break;
        case LARGE_BIG_EXT:
            NEED(6);
            n = girder__get32(p + 1);
            p += 6;
            NEED(n);
            HELPER(read_big(d, p, n, start[5] != 0, &v));
            SETANY(slot, v);
            break;
        case NEW_PID_EXT:
        case PID_EXT:
            HELPER(read_pid(d, p, &v));
            SETBOX(slot, v);
            break;
        case NEWER_REFERENCE_EXT:
        case NEW_REFERENCE_EXT:
        case REFERENCE_EXT:
            HELPER(read_ref(d, p, &v));
            SETBOX(slot, v);
            break;
        case NEW_PORT_EXT:
        case V4_PORT_EXT:
        case PORT_EXT:
            HELPER(read_port(d, p, &v));
            SETBOX(slot, v);
            break;
        case EXPORT_EXT:
            HELPER(read_export(d, p, &v));
            SETBOX(slot, v);
            break;
        case FLOAT_EXT:
            HELPER(read_old_float(d, p, &v));
            SETBOX(slot, v);
            break;
        case NEW_FUN_EXT:
        case FUN_EXT: {
            size_t frees;
            HELPER(read_fun(d, p, &v, &frees, &n));
            SETBOX(slot, v);
            PUSHN(n);
            for (size_t e = frees + n * sizeof(term_t); n > 0; n--)
                slots[ns++] = e -= sizeof(term_t);
            break;
        }
        case LOCAL_EXT:
            /* Only the node that produced a LOCAL_EXT can decode it (OTP 26 erl_ext_dist). */
            return fail(d, TERM_ENOTSUP, (size_t)(start - d->b)), NULL;
        default:
            return fail(d, TERM_ETAG, (size_t)(start - d->b)), NULL;
        }
        if (ns == 0) break;
        slot = slots[--ns];
    }
    d->hp = hp;
    return p;
trunc:
    return fail(d, TERM_ETRUNC, (size_t)(end - d->b)), NULL;
#undef NEED
#undef ALLOC
#undef PUSHN
#undef HELPER
#undef SETBOX
#undef SETANY
}

/* ==================================================================== the block */

/* Whether key a orders strictly before key b. Two interned atoms whose names differ in their
** first 8 bytes (zero-padded) are decided here, as compare.c orders names; the rest, and
** every tie, by term_compare_exact(). Atom keys are the common case (records as maps). */
static inline bool key_before(term_t a, term_t b)
{
    if (term_atom_is_interned(a) && term_atom_is_interned(b) && a != b) {
        uint64_t wa = load64(term__atom_entry_of((uint32_t)(a >> 3))->name);
        uint64_t wb = load64(term__atom_entry_of((uint32_t)(b >> 3))->name);
        if (wa != wb) return __builtin_bswap64(wa) < __builtin_bswap64(wb);
    }
    return term_compare_exact(a, b) < 0;
}

/* Sorts each map's pairs (inner maps first: they were recorded after their parents) and
** refuses duplicate keys; *off gets the offending map's input offset. */
static int finish_maps(const dec *d, uint8_t *blk, size_t *off)
{
    for (size_t i = d->nmaps; i-- > 0;) {
        box_map *m = (box_map *)(void *)(blk + d->maps[2 * i]);
        size_t n = m->h.n;
        if (n < 2) continue;
        bool sorted = true;
        for (size_t j = 1; j < n && sorted; j++) sorted = key_before(m->kv[j - 1], m->kv[j]);
        if (!sorted) {
            term__map_sort(m->kv, m->kv + n, n);
            for (size_t j = 1; j < n; j++)
                if (term_compare_exact(m->kv[j - 1], m->kv[j]) == 0) {
                    *off = d->maps[2 * i + 1];
                    return TERM_EDUPKEY;
                }
        }
    }
    return 0;
}

/* Makes the built block a block box of class cls holding size bytes (reference count 1: the
** caller's) and returns its root, which the walk left in the size word. */
static inline term_t seal_block(box_block *blk, uint32_t cls, size_t size)
{
    term_t root;
    memcpy(&root, &blk->size, sizeof root);
    uint64_t w[2] = {1 | (uint64_t)cls << 32, BOX_BLOCK}; /* rc 1, boff = class, the rest 0 */
    memcpy(blk, w, 16);
    blk->size = size;
    return root;
}

/* finish_maps() on the sealed block; on a failure the block is freed and the decode fails. */
static inline bool maps_ok(dec *d, box_block *blk)
{
    size_t bad_off = 0;
    int rc = finish_maps(d, (uint8_t *)blk, &bad_off);
    if (!rc) return true;
    term__box_dealloc(&blk->h);
    fail(d, rc, bad_off);
    return false;
}

#if !ETF_DECODE_SHARE
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
#endif

/* Frees what a decode put on the heap (d->heap). */
static __attribute__((noinline)) void release(dec *d)
{
    if (d->heap & HEAP_ARENA) term__dealloc(d->arena, d->cap);
    if (d->heap & HEAP_SLOTS) term__dealloc(d->slots, d->scap * sizeof(size_t));
    if (d->heap & HEAP_MAPS) term__dealloc(d->maps, d->mcap * sizeof(size_t));
    if (d->fs) fset_free(d->fs);
}

/*
** Decodes buf[0..len) (no version byte); offsets in errors and *used are shifted by base_off.
** The result is an immediate, or a member of one block holding the whole term.
*/
static term_t decode_plain(const uint8_t *buf, size_t len, const etf_decode_opts *opts,
                           size_t *used, etf_error *err, size_t base_off)
{
    _Alignas(16) uint8_t arena_small[ARENA_SMALL];
    size_t slots_small[SLOTS_SMALL], maps_small[2 * MAPS_SMALL];
    /* field by field: a designated initialiser zeroes the gaps with a string store, whose
    ** start-up costs more than the few words it clears */
    dec d;
    d.b = buf;
    d.end = buf + len;
    d.opts = opts;
    /* build straight into a cached block of the class the last input of this length needed */
    unsigned pc = size_pred[len & (SIZE_PRED - 1)];
    d.spec = pc ? term__tc_take(pc) : NULL;
    d.spec_cls = pc;
    d.small = arena_small;
    d.arena = d.spec ? d.spec : arena_small;
    d.cap = d.spec ? term__tc_size(pc) : ARENA_SMALL;
    d.hp = BLK_HDR;
    d.slots = slots_small;
    d.scap = SLOTS_SMALL;
    d.maps = maps_small;
    d.nmaps = 0;
    d.mcap = 2 * MAPS_SMALL;
    d.acache = term__etf_acache;
    d.fs = NULL;
    d.err = 0; /* d.err_off is set with it */
    d.heap = 0;
    term_t result = TERM_NONE;
    const uint8_t *stop = build(&d);
    if (!stop) goto out;
    if (stop != d.end && !(opts && opts->allow_trailing) && !used) {
        fail(&d, TERM_ETRAILING, (size_t)(stop - buf));
        goto out;
    }
    if (TERM__LIKELY(d.spec != NULL) && term__tc_class(d.hp) == d.spec_cls && !d.heap) {
        /* The common case, finished here: the term is in the predicted block (so it holds
        ** boxes: the class of a block of only its header is never predicted, and its words
        ** are absolute), with no foreign atom and nothing on the heap; the prediction stays
        ** as it is. */
        box_block *blk = (box_block *)(void *)d.spec;
        d.spec = NULL;
        term_t root = seal_block(blk, d.spec_cls, d.hp);
        if (d.nmaps && !maps_ok(&d, blk)) goto out;
        if (used) *used = base_off + (size_t)(stop - buf);
        if (err) err->code = 0, err->offset = 0;
        return root;
    }
    term_t root;
    memcpy(&root, d.arena + ROOT_OFF, sizeof root);
    unsigned need_cls = term__tc_class(d.hp);
    size_pred[len & (SIZE_PRED - 1)] =
        (uint8_t)(d.hp > BLK_HDR && term__tc_size(need_cls) <= ARENA_SMALL ? need_cls : 0);
    if (d.hp == BLK_HDR) {
        /* an immediate or a foreign atom: every box is reachable from the root, so the set
        ** holds at most the root, whose reference goes to the caller */
        result = root;
        if (TERM__UNLIKELY(d.fs != NULL)) term_dup(root);
        goto out;
    }
    /* the block's foreign atoms (and with a shared binary, its storage) go in its last words,
    ** reserved in the arena */
    size_t atoms_at = 0;
#if ETF_DECODE_SHARE
    size_t nheld = (d.fs ? d.fs->n : 0) + (d.heap & HEAP_SHARE ? 1 : 0);
    if (nheld && !(atoms_at = d_alloc(&d, nheld * 8))) goto out;
#else
    if (TERM__UNLIKELY(d.fs != NULL) && d.fs->n && !(atoms_at = d_alloc(&d, d.fs->n * 8))) goto out;
#endif
    uint32_t cls;
    box_block *blk;
    if (d.spec && term__tc_class(d.hp) == d.spec_cls) { /* the prediction held: no copy */
        blk = (box_block *)(void *)d.spec;
        cls = d.spec_cls;
        d.spec = NULL;
    } else {
        blk = term__block_alloc(d.hp, &cls);
        if (!blk) {
            fail(&d, TERM_ENOMEM, 0);
            goto out;
        }
        memcpy(blk, d.arena, d.hp);
        /* the foreign atoms' words, not filled yet, are not boxes */
        relocate((uint8_t *)blk, atoms_at ? atoms_at : d.hp, (uintptr_t)d.arena, d.cap,
                 (uintptr_t)blk - (uintptr_t)d.arena);
    }
    root = seal_block(blk, cls, d.hp);
    if (!maps_ok(&d, blk)) goto out;
    if (TERM__UNLIKELY(atoms_at != 0)) { /* the set's references become the block's */
#if ETF_DECODE_SHARE
        term_t *held = (term_t *)(void *)((uint8_t *)blk + atoms_at);
        size_t k = 0;
        if (d.fs && d.fs->n) {
            memcpy(held, d.fs->v, d.fs->n * sizeof(term_t));
            k = d.fs->n;
            d.fs->n = 0;
        }
        if (d.heap & HEAP_SHARE) held[k++] = term_dup(share_owner(opts->share));
        blk->h.n = (uint32_t)k;
#else
        memcpy((uint8_t *)blk + atoms_at, d.fs->v, d.fs->n * sizeof(term_t));
        blk->h.n = (uint32_t)d.fs->n;
        d.fs->n = 0;
#endif
    }
    /* The reference the caller gets is the block's first reference. */
    result = root;
out:
    if (d.spec) term__block_free(d.spec, d.spec_cls);
    if (TERM__UNLIKELY(d.heap)) release(&d);
    if (d.err) {
        if (err) {
            err->code = d.err;
            err->offset = base_off + d.err_off;
        }
        return TERM_NONE;
    }
    if (used) *used = base_off + (size_t)(stop - buf);
    if (err) err->code = 0, err->offset = 0;
    return result;
}

#if ETF_DECODE_SHARE
term_t term__etf_decode_shared(const uint8_t *buf, size_t len, const etf_decode_opts *opts,
                               size_t *used, etf_error *err, size_t base_off)
{
    return decode_plain(buf, len, opts, used, err, base_off);
}
#else
/* A compressed term (tag 80) at buf + off: checked, inflated, then decoded. Out of line so
** that the common path of etf_decode() needs no stack frame. */
static __attribute__((noinline)) term_t decode_compressed(const uint8_t *buf, size_t len,
                                                          size_t off, const etf_decode_opts *opts,
                                                          size_t *used, etf_error *err)
{
    if (len - off < 5) {
        if (err) err->code = TERM_ETRUNC, err->offset = len;
        return TERM_NONE;
    }
    size_t ulen = girder__get32(buf + off + 1);
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

term_t etf_decode(const uint8_t *buf, size_t len, const etf_decode_opts *opts, size_t *used,
                  etf_error *err)
{
    size_t off = 0;
    int code;
    if (opts && TERM__UNLIKELY(opts->stats != NULL)) *opts->stats = (etf_decode_stats){0, 0};
    if (!opts || !opts->no_version) {
        if (len < 1) {
            code = TERM_ETRUNC;
            goto fail;
        }
        if (buf[0] != ETF_VERSION) {
            code = TERM_EVERSION;
            goto fail;
        }
        off = 1;
    }
    if (len > off && buf[off] == COMPRESSED) {
        if (opts && opts->no_compressed) {
            if (err) err->code = GIRDER_ECOMPRESSED, err->offset = off;
            return TERM_NONE;
        }
        return decode_compressed(buf, len, off, opts, used, err);
    }
    if (opts && TERM__UNLIKELY(opts->share != TERM_NONE))
        return term__etf_decode_shared(buf + off, len - off, opts, used, err, off);
    return decode_plain(buf + off, len - off, opts, used, err, off);
fail:
    if (err) err->code = code, err->offset = 0;
    return TERM_NONE;
}

term_t term__etf_decode_all_foreign(const uint8_t *buf, size_t len, const etf_decode_opts *opts,
                                    etf_error *err)
{
    /* the per-thread cache would answer with interned atoms before the slow path is asked,
    ** and nothing enters it meanwhile: foreign atoms are never cached */
    memset(term__etf_acache, 0, sizeof term__etf_acache);
    all_foreign = true;
    term_t t = etf_decode(buf, len, opts, NULL, err);
    all_foreign = false;
    return t;
}
#endif /* !ETF_DECODE_SHARE */
