/* Internal layout of boxed terms, shared by the files of term_codec (not a public API). */
#ifndef GIRDER_TERM_INT_H
#define GIRDER_TERM_INT_H

#include <girder/term.h>
#include <stdatomic.h>
#include <string.h>

/*
** Every boxed term starts with a 16-byte header. A box is either standalone (its own
** reference count in rc) or a member of a block (BOXF_INBLOCK): one allocation made by the
** decoder that holds a whole term, whose members point only inside the block or at
** immediates. References to any member count on the block, so freeing a decoded message is
** one free() however large it is.
*/
enum {
    BOX_BIG = 1, /* n limbs, BOXF_NEG */
    BOX_FLOAT,
    BOX_TUPLE, /* n elements */
    BOX_CONS,
    BOX_MAP, /* n entries: keys[n] then values[n], keys sorted by exact order */
    BOX_BIN, /* bitstring; data either inline, in a block, or owned by `owner` */
    BOX_RAW, /* adopted byte buffer backing BOX_BINs */
    BOX_PID,
    BOX_PORT,
    BOX_REF, /* aux = number of words */
    BOX_FUN, /* local fun */
    BOX_EXPORT,
    BOX_BLOCK, /* decoder block header; n = foreign atoms it holds (its last n words) */
    BOX_FATOM  /* foreign atom: a term__atom_entry follows the header; never in a block */
};
_Static_assert(BOX_FATOM == TERM__BOX_FATOM, "term.h's term_is_atom() reads this type");

enum { BOXF_INBLOCK = 1, BOXF_NEG = 2, BOXF_OLDFUN = 4 };

typedef struct term_box {
    _Atomic uint32_t rc; /* standalone: references; in block: unused */
    uint32_t boff;       /* in block: offset of this box from the block start, in 8 bytes */
    uint8_t type;
    uint8_t flags;
    uint16_t aux;
    uint32_t n;
} term_box;

typedef struct {
    term_box h;
    uint64_t limbs[];
} box_big;
typedef struct {
    term_box h;
    double d;
} box_float;
typedef struct {
    term_box h;
    term_t e[];
} box_tuple;
/* h.n = 0, or the length of a string run starting at this cell: this cell and the h.n - 1
** following it in memory each hold a small integer 0..255 as head, and each but the last has
** the next as tail. Only the decoder makes runs (from STRING_EXT); the encoder copies a run's
** bytes without testing each cell. Terms are immutable, so a run stays one. */
typedef struct {
    term_box h;
    term_t hd, tl;
} box_cons;
typedef struct {
    term_box h;
    term_t kv[]; /* keys[0..n) then values[0..n) */
} box_map;
typedef struct {
    term_box h; /* aux = bit offset (0..7) of the first bit within data[0] */
    uint64_t nbits;
    const uint8_t *data;
    term_t owner; /* TERM_NONE when data lives in this box or its block */
    uint8_t inl[];
} box_bin;
typedef struct {
    term_box h;
    uint64_t size;
    uint8_t *data;
} box_raw;
typedef struct {
    term_box h;
    term_t node;
    uint32_t id, serial, creation;
} box_pid;
typedef struct {
    term_box h;
    term_t node;
    uint64_t id;
    uint32_t creation;
} box_port;
typedef struct {
    term_box h; /* aux = nwords */
    term_t node;
    uint32_t creation;
    uint32_t words[5];
} box_ref;
typedef struct {
    term_box h; /* n = number of free variables; BOXF_OLDFUN for FUN_EXT */
    term_t module, old_index, old_uniq, pid;
    uint32_t arity, index;
    uint8_t uniq[16];
    term_t free[];
} box_fun;
typedef struct {
    term_box h;
    term_t module, function;
    uint32_t arity;
} box_export;
typedef struct {
    term_box h; /* rc counts references to any member; n = foreign atoms held at the end */
    size_t size;
} box_block;
_Static_assert(offsetof(term_box, type) == 8, "term.h's term_is_atom() reads byte 8");

static inline term_box *term__box(term_t t)
{
    return (term_box *)(uintptr_t)t;
}
static inline term_t term__from_box(const void *b)
{
    return (term_t)(uintptr_t)b;
}
static inline int term__box_type(term_t t)
{
    return term_is_boxed(t) ? term__box(t)->type : 0;
}
/* A small integer from a value the caller knows to be in range (no check, unlike term_small). */
static inline term_t term__make_small(int64_t v)
{
    return ((uint64_t)v << 2) | 1;
}
static inline term_t term__make_atom(uint32_t index)
{
    return ((term_t)index << 3) | 2;
}

/* Branch hints for failure paths on hot loops (bounds, capacity). */
#define TERM__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TERM__LIKELY(x)   __builtin_expect(!!(x), 1)

/* Copies n bytes that do not overlap, the short ones (binaries of a message: names, ids,
** hashes) inline as two possibly overlapping loads and stores each reading and writing only
** inside [0, n), instead of a call to memcpy that costs more than such a copy. */
static inline void term__copy(void *dst, const void *src, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    uint64_t a, b;
    if (n > 16) {
        if (n > 32) {
            memcpy(d, s, n);
            return;
        }
        uint64_t c, e;
        memcpy(&a, s, 8), memcpy(&b, s + 8, 8);
        memcpy(&c, s + n - 16, 8), memcpy(&e, s + n - 8, 8);
        memcpy(d, &a, 8), memcpy(d + 8, &b, 8);
        memcpy(d + n - 16, &c, 8), memcpy(d + n - 8, &e, 8);
    } else if (n >= 8) {
        memcpy(&a, s, 8), memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8), memcpy(d + n - 8, &b, 8);
    } else if (n >= 4) {
        uint32_t x, y;
        memcpy(&x, s, 4), memcpy(&y, s + n - 4, 4);
        memcpy(d, &x, 4), memcpy(d + n - 4, &y, 4);
    } else {
        for (size_t i = 0; i < n; i++) d[i] = s[i];
    }
}

/* Allocation through the hook (term_set_allocator). */
void *term__alloc(size_t n);
void *term__realloc(void *p, size_t old, size_t n);
void term__dealloc(void *p, size_t n);

/* A fresh standalone box of `size` bytes with rc 1 (from the per-thread cache when it fits
** a class; its header's boff records the class). */
void *term__new_box(int type, size_t size);
/* A block of at least n bytes for a decoded term, from the same cache; *cls receives the
** class to store in the block header's boff (0: none, freed by its size). */
void *term__block_alloc(size_t n, uint32_t *cls);
/* Frees a standalone box or a block header made by either of the above. */
void term__box_dealloc(term_box *b);
/* Gives back a block of class c (1..TERM__TC_CLASSES-1) that term__tc_take() returned. */
void term__block_free(void *p, unsigned c);

/* The per-thread cache behind the three above (term.c): class c holds blocks of 16c + 8
** bytes, glibc's usable sizes. Exposed so the decoder can take a block of a class it predicts
** and build in it. */
#define TERM__TC_CLASSES 129 /* up to 2,056 bytes */
typedef struct term__tcache {
    void *head[TERM__TC_CLASSES];
    uint8_t room[TERM__TC_CLASSES]; /* blocks the class may still take */
    uint8_t state;
} term__tcache;
extern _Thread_local term__tcache term__tc __attribute__((tls_model("initial-exec")));
extern bool term__hooked; /* a term_set_allocator() hook is installed */
static inline unsigned term__tc_class(size_t n)
{
    return (unsigned)((n + 7) >> 4);
}
static inline size_t term__tc_size(unsigned c)
{
    return 16 * (size_t)c + 8;
}
#if defined(__SANITIZE_ADDRESS__) || defined(GIRDER_ASAN)
#include <sanitizer/asan_interface.h>
/* A cached block is poisoned past its link word, so a use after free is still reported. */
#define TERM__TC_POISON(p, c)   ASAN_POISON_MEMORY_REGION((char *)(p) + 8, term__tc_size(c) - 8)
#define TERM__TC_UNPOISON(p, c) ASAN_UNPOISON_MEMORY_REGION((p), term__tc_size(c))
#else
#define TERM__TC_POISON(p, c)   ((void)0)
#define TERM__TC_UNPOISON(p, c) ((void)0)
#endif
/* A cached block of class c (0 < c < TERM__TC_CLASSES), or NULL: none cached, or a hook is
** installed (the hook then sees the allocation the caller falls back to). */
static inline void *term__tc_take(unsigned c)
{
    if (TERM__UNLIKELY(term__hooked)) return NULL;
    void *p = term__tc.head[c];
    if (p) {
        TERM__TC_UNPOISON(p, c);
        term__tc.head[c] = *(void **)p;
        term__tc.room[c]++;
    }
    return p;
}
/* Size in bytes of a box (for freeing and memory accounting). */
size_t term__box_size(const term_box *b);

/* Sorts parallel key/value arrays by exact term order (stable). */
void term__map_sort(term_t *keys, term_t *vals, size_t n);

/* Bignums: magnitude in 64-bit limbs, least significant first, normalised (top limb != 0).
** term__int_from_limbs() returns a small integer when the value fits. */
term_t term__int_from_limbs(bool neg, const uint64_t *limbs, size_t n);
/* Decimal text of an integer into out (base 2..36). */
int term__int_to_text(term_t t, unsigned base, etf_buf *out);
/* Integer from digits in base 2..36 (no sign, no separators); TERM_NONE on error. */
term_t term__int_from_text(bool neg, const char *digits, size_t len, unsigned base);
/* Compares integer a (small or big) with double d exactly: <0, 0, >0. */
int term__cmp_int_float(term_t a, double d);
int term__cmp_int_int(term_t a, term_t b);

/* Atom internals. Entries never move or change once published; a name is followed by zero
** bytes up to at least TERM__ATOM_PAD bytes in all, so a name of up to 32 bytes (node names
** included) can be copied or compared as whole words. */
#define TERM__ATOM_CHUNK_BITS 12
#define TERM__ATOM_PAD        32
typedef struct term__atom_entry {
    uint32_t len;
    uint32_t hash;
    bool latin1; /* every code point < 256: encodable as ATOM_EXT */
    bool ascii;  /* the UTF-8 and Latin-1 bytes are the same */
    char name[];
} term__atom_entry;
extern _Atomic(term__atom_entry *) *term__atom_chunks[];
/* The entry of an existing atom (index below term_atom_count()). */
static inline const term__atom_entry *term__atom_entry_of(uint32_t index)
{
    _Atomic(term__atom_entry *) *c = term__atom_chunks[index >> TERM__ATOM_CHUNK_BITS];
    return atomic_load_explicit(&c[index & ((1u << TERM__ATOM_CHUNK_BITS) - 1)],
                                memory_order_acquire);
}
/* A foreign atom's box: the header, then its entry (name padded as in the table). */
static inline const term__atom_entry *term__fatom_entry(const term_box *b)
{
    return (const term__atom_entry *)(const void *)(b + 1);
}
static inline size_t term__fatom_size(size_t len)
{
    size_t nbytes = len + 1 > TERM__ATOM_PAD ? len + 1 : TERM__ATOM_PAD;
    return sizeof(term_box) + offsetof(term__atom_entry, name) + nbytes;
}
/* The entry of any atom, interned or foreign. */
static inline const term__atom_entry *term__atom_entry_any(term_t t)
{
    if (term_atom_is_interned(t)) return term__atom_entry_of((uint32_t)(t >> 3));
    return term__fatom_entry(term__box(t));
}
/* The UTF-8 name and its byte length. */
const char *term__atom_name(uint32_t index, size_t *len);
/* Checks an atom name (valid UTF-8, at most 255 code points) and classifies it. */
int term__atom_check(const char *s, size_t len, bool *latin1, bool *ascii);
/* The table's hash of a name (keyed per process: names cannot be chosen to collide). */
uint32_t term__atom_hash(const char *s, size_t len);
/* A 64-bit keyed hash of bytes (SipHash-1-3 under the process's random key). */
uint64_t term__keyed_hash(const void *p, size_t len);
/* A new foreign atom (rc 1) for a name that passed term__atom_check(); TERM_NONE on ENOMEM. */
term_t term__fatom_new(const char *s, size_t len, uint32_t h, bool latin1, bool ascii);
/* For decodes: the interned atom for a checked name, creating it within the external quota
** and the table limit; TERM_NONE with *err (EATOMLIMIT or ENOMEM) otherwise. *created tells
** whether this call added it. */
term_t term__atom_intern_external(const char *s, size_t len, uint32_t h, bool latin1, bool ascii,
                                  int *err, bool *created);
/* Looks up a name with its table hash; TERM_NONE if not interned. */
term_t term__atom_lookup(const char *s, size_t len, uint32_t h);
/* For tests: how many atoms this thread's decodes took past the per-thread atom cache (the
** slow path: every encoding but a cached SMALL_ATOM_UTF8_EXT). */
extern _Thread_local size_t term__atom_slow_calls;
/* etf_decode() with opts->share set (etf_decode_share.c): buf without the version byte, whose
** offsets in errors and *used are shifted by base_off. */
term_t term__etf_decode_shared(const uint8_t *buf, size_t len, const etf_decode_opts *opts,
                               size_t *used, etf_error *err, size_t base_off);
/* For tests and fuzzing: etf_decode() (without used) where every atom written out, interned
** or not, becomes a foreign atom (one per distinct name), so any term has a foreign twin. */
term_t term__etf_decode_all_foreign(const uint8_t *buf, size_t len, const etf_decode_opts *opts,
                                    etf_error *err);
/* Validates UTF-8 and counts code points; false if invalid. */
bool term__utf8_count(const uint8_t *s, size_t len, size_t *chars);
/* Appends latin-1 bytes converted to UTF-8 into buf (2*len bytes room). Returns length. */
size_t term__latin1_to_utf8(const uint8_t *s, size_t len, char *buf);

/* Buffer helpers. */
static inline int term__buf_put(etf_buf *b, const void *p, size_t n)
{
    if (b->cap - b->len < n && etf_buf_reserve(b, n) != 0) return TERM_ENOMEM;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}
int term__buf_printf(etf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A growable stack of words used by every traversal so that nesting never uses the C stack. */
typedef struct term__stack {
    uintptr_t *v;
    size_t n, cap;
    uintptr_t small[64];
} term__stack;
static inline void term__stack_init(term__stack *s)
{
    s->v = s->small;
    s->n = 0;
    s->cap = 64;
}
int term__stack_grow(term__stack *s);
static inline int term__stack_push(term__stack *s, uintptr_t x)
{
    if (s->n == s->cap && term__stack_grow(s) != 0) return TERM_ENOMEM;
    s->v[s->n++] = x;
    return 0;
}
static inline void term__stack_free(term__stack *s)
{
    if (s->v != s->small) term__dealloc(s->v, s->cap * sizeof(uintptr_t));
}

#endif
