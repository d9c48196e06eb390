/* Term construction, access, reference counting and freeing. */
#include "term_int.h"

#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==================================================================== allocation */

static void *default_alloc(void *ud, void *p, size_t old, size_t n)
{
    (void)ud;
    (void)old;
    if (n == 0) {
        free(p);
        return NULL;
    }
    return p ? realloc(p, n) : malloc(n); /* malloc is the fast path of every decode */
}

static term_alloc_fn alloc_fn = default_alloc;
static void *alloc_ud;
bool term__hooked;

void term_set_allocator(term_alloc_fn fn, void *ud)
{
    alloc_fn = fn ? fn : default_alloc;
    alloc_ud = fn ? ud : NULL;
    term__hooked = fn != NULL;
}

/* ==================================================================== large blocks kept */

/*
** Distribution's large buffers (the frame of a 64 KB message on its way out, a message being
** reassembled on its way in) are made, filled and freed at the rate of messages, often by
** different threads, with megabytes in flight (a connection queues up to 8 MB). glibc gives
** back the pages of a heap's free top past its trim threshold (128 KB, raised with its mmap
** threshold), and the next buffers fault them in again: 2.4 page faults per message in
** bench-scale-dist's 64 KB cells, each 11-15 us on a paravirtualised guest, half the node
** pair's time. So blocks of KEEP_MIN to KEEP_MAX bytes freed with the default allocator are
** kept here for any thread: at most KEEP_N blocks and KEEP_BYTES in all (the oldest goes back
** to malloc first), all given back by term_cache_release() or, through
** term_cache_release_idle(), after a period without use. A request takes the newest kept block
** that holds it and is at most half as large again; a buffer growing into the range (etf_buf)
** moves into one.
*/
#define KEEP_MIN   ((size_t)32 << 10)
#define KEEP_MAX   ((size_t)1 << 20)
#define KEEP_N     512
#define KEEP_BYTES ((size_t)32 << 20)
#define KEEP_SCAN  16 /* newest blocks looked at per request */
#if defined(__SANITIZE_ADDRESS__) || defined(GIRDER_ASAN)
#define KEEP_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n)) /* a use after free still shows */
#define KEEP_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define KEEP_POISON(p, n)   ((void)0)
#define KEEP_UNPOISON(p, n) ((void)0)
#endif
static pthread_mutex_t keep_mu = PTHREAD_MUTEX_INITIALIZER;
typedef struct kept {
    void *p;
    size_t cap;
} kept;
static kept keep[KEEP_N]; /* a ring: keep_old is the oldest, keep_n blocks */
static unsigned keep_old, keep_n;
static size_t keep_bytes;
static unsigned long keep_uses, keep_uses_seen; /* takes and puts, for ..._release_idle() */

static inline bool keep_fits(size_t n)
{
    return n >= KEEP_MIN && n <= KEEP_MAX;
}

/* Takes the oldest kept block off the ring (keep_mu held, keep_n > 0). */
static kept keep_pop_old(void)
{
    kept o = keep[keep_old];
    keep_bytes -= o.cap;
    keep_old = (keep_old + 1) % KEEP_N;
    keep_n--;
    return o;
}

/* A kept block for n bytes, or NULL. */
static __attribute__((noinline)) void *keep_take(size_t n)
{
    void *p = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&keep_mu);
    unsigned top = (keep_old + keep_n - 1) % KEEP_N;
    for (unsigned k = 0; k < keep_n && k < KEEP_SCAN; k++) {
        unsigned i = (keep_old + keep_n - 1 - k) % KEEP_N;
        if (keep[i].cap < n || keep[i].cap > n + n / 2) continue;
        p = keep[i].p;
        cap = keep[i].cap;
        keep_bytes -= cap;
        keep[i] = keep[top]; /* the newest fills the hole */
        keep_n--;
        keep_uses++;
        break;
    }
    pthread_mutex_unlock(&keep_mu);
    if (p) KEEP_UNPOISON(p, cap);
    return p;
}

/* Keeps p (from malloc) if its size is in range, else frees it; frees the oldest kept blocks
** that no longer fit. */
static __attribute__((noinline)) void keep_put(void *p)
{
    size_t cap = malloc_usable_size(p);
    kept out[8];
    unsigned n_out = 0;
    if (keep_fits(cap)) {
        KEEP_POISON(p, cap);
        pthread_mutex_lock(&keep_mu);
        while (keep_n && n_out < 8 && (keep_n == KEEP_N || keep_bytes + cap > KEEP_BYTES))
            out[n_out++] = keep_pop_old();
        if (keep_n < KEEP_N && keep_bytes + cap <= KEEP_BYTES) {
            unsigned i = (keep_old + keep_n++) % KEEP_N;
            keep[i].p = p;
            keep[i].cap = cap;
            keep_bytes += cap;
            keep_uses++;
            p = NULL;
        }
        pthread_mutex_unlock(&keep_mu);
        if (p) KEEP_UNPOISON(p, cap);
    }
    while (n_out) {
        n_out--;
        KEEP_UNPOISON(out[n_out].p, out[n_out].cap);
        free(out[n_out].p);
    }
    free(p);
}

size_t term_cache_bytes(void)
{
    pthread_mutex_lock(&keep_mu);
    size_t n = keep_bytes;
    pthread_mutex_unlock(&keep_mu);
    return n;
}

static void keep_release_locked(void)
{
    while (keep_n) {
        kept o = keep_pop_old();
        KEEP_UNPOISON(o.p, o.cap);
        free(o.p);
    }
}

void term_cache_release(void)
{
    pthread_mutex_lock(&keep_mu);
    keep_release_locked();
    pthread_mutex_unlock(&keep_mu);
}

bool term_cache_release_idle(void)
{
    pthread_mutex_lock(&keep_mu);
    bool idle = keep_uses == keep_uses_seen, any = idle && keep_n > 0;
    keep_uses_seen = keep_uses;
    if (any) keep_release_locked();
    pthread_mutex_unlock(&keep_mu);
    return any;
}

void *term__alloc(size_t n)
{
    if (alloc_fn == default_alloc) { /* no indirect call when unhooked */
        void *p = keep_fits(n) ? keep_take(n) : NULL;
        return p ? p : malloc(n ? n : 1);
    }
    return alloc_fn(alloc_ud, NULL, 0, n ? n : 1);
}

void *term__realloc(void *p, size_t old, size_t n)
{
    if (alloc_fn == default_alloc && n >= KEEP_MIN) {
        /* a shrink by less than a quarter (a reassembled message trimmed to its length) keeps
        ** the block whole, so that it fits the next one of its size once kept */
        if (p && n < old && n >= old - old / 4) return p;
        void *q = n > old && keep_fits(n) ? keep_take(n) : NULL;
        if (q) {
            if (p) {
                size_t had = malloc_usable_size(p);
                memcpy(q, p, old < had ? old : had);
            }
            term__dealloc(p, old);
            return q;
        }
    }
    return alloc_fn(alloc_ud, p, old, n ? n : 1);
}

void term__dealloc(void *p, size_t n)
{
    if (alloc_fn == default_alloc) {
        if (p && n >= KEEP_MIN)
            keep_put(p);
        else
            free(p);
    } else if (p) {
        alloc_fn(alloc_ud, p, n, 0);
    }
}

void *term_alloc_raw(size_t n)
{
    return term__alloc(n);
}

void *term_realloc_raw(void *p, size_t old, size_t n)
{
    return term__realloc(p, old, n);
}

void term_free_raw(void *p, size_t n)
{
    term__dealloc(p, n);
}

/* ==================================================================== per-thread box cache */

/*
** Boxes and decoded blocks are freed and made again at the rate of messages, mostly by the
** same threads (a scheduler frees the call it handled and builds the reply; a decoder frees
** the last message and decodes the next). A small cache per thread in front of malloc keeps
** them off glibc's paths. Class k holds blocks of 16k + 8 bytes, which are exactly glibc's
** usable sizes on 64 bits, so a box costs the same memory whether it came from the cache or
** not. A box records its class in its header's boff (unused outside blocks; 0 = no class,
** freed by size), so freeing never trusts a size computed later.
**
** Only with the default allocator: with a hook installed, every allocation and free goes to
** the hook (tests fail the Nth), with the class's size, so that a box made under a hook and
** freed after it is removed is as large as its class says. A box freed on a thread other
** than the one that made it goes to the freeing thread's cache. Each class holds at most
** TC_BYTES bytes (at least one block, at most TC_MAX_BLOCKS), so a thread holds at most
** ~280 KB; a thread's cache is given back at its exit (a pthread key's destructor), after
** which its frees go straight to free(). The main thread's cache lives until exit, reachable
** from its TLS.
*/
#define TC_BYTES      2048
#define TC_MAX_BLOCKS 32
#define TC_CLASSES    TERM__TC_CLASSES
enum { TC_FRESH, TC_LIVE, TC_DEAD };
_Thread_local term__tcache term__tc __attribute__((tls_model("initial-exec")));
static pthread_key_t tc_key;
static pthread_once_t tc_once = PTHREAD_ONCE_INIT;

static inline unsigned tc_class(size_t n)
{
    return term__tc_class(n);
}
static inline size_t tc_size(unsigned c)
{
    return term__tc_size(c);
}
#define TC_POISON   TERM__TC_POISON
#define TC_UNPOISON TERM__TC_UNPOISON

static void tc_drain(void *arg)
{
    term__tcache *t = arg;
    t->state = TC_DEAD;
    for (unsigned c = 0; c < TC_CLASSES; c++) {
        t->room[c] = 0;
        while (t->head[c]) {
            void *p = t->head[c];
            TC_UNPOISON(p, c);
            t->head[c] = *(void **)p;
            free(p);
        }
    }
}

static void tc_key_create(void)
{
    if (pthread_key_create(&tc_key, tc_drain) != 0) abort(); /* only EAGAIN: keys exhausted */
}

/* A free that found its class full, or the thread's cache not started or already given back. */
static __attribute__((noinline)) void tc_free_slow(void *p, unsigned c)
{
    if (term__tc.state == TC_FRESH) {
        pthread_once(&tc_once, tc_key_create);
        if (pthread_setspecific(tc_key, &term__tc) == 0) {
            term__tc.state = TC_LIVE;
            for (unsigned k = 0; k < TC_CLASSES; k++) {
                size_t r = TC_BYTES / tc_size(k);
                term__tc.room[k] = (uint8_t)(r < 1 ? 1 : r > TC_MAX_BLOCKS ? TC_MAX_BLOCKS : r);
            }
        } else {
            term__tc.state = TC_DEAD; /* no destructor: never cache on this thread */
        }
        if (term__tc.room[c]) {
            term__tc.room[c]--;
            *(void **)p = term__tc.head[c];
            term__tc.head[c] = p;
            TC_POISON(p, c);
            return;
        }
    }
    free(p);
}

/* A block for a box or a decoded term of n bytes; *cls receives its class (0: none). */
static inline void *box_alloc(size_t n, uint32_t *cls)
{
    unsigned c = tc_class(n);
    if (TERM__UNLIKELY(c >= TC_CLASSES)) {
        *cls = 0;
        return term__alloc(n);
    }
    *cls = c;
    if (TERM__UNLIKELY(term__hooked)) return alloc_fn(alloc_ud, NULL, 0, tc_size(c));
    void *p = term__tc_take(c);
    return p ? p : malloc(tc_size(c));
}

void *term__block_alloc(size_t n, uint32_t *cls)
{
    return box_alloc(n, cls);
}

/* Frees a box of class c (0: none, freed by its size). */
static inline void box_free(term_box *b, unsigned c)
{
    if (TERM__UNLIKELY(c == 0)) {
        term__dealloc(b, term__box_size(b));
    } else if (TERM__UNLIKELY(alloc_fn != default_alloc)) {
        alloc_fn(alloc_ud, b, tc_size(c), 0);
    } else if (term__tc.room[c]) {
        term__tc.room[c]--;
        *(void **)(void *)b = term__tc.head[c];
        term__tc.head[c] = b;
        TC_POISON(b, c);
    } else {
        tc_free_slow(b, c);
    }
}

void term__box_dealloc(term_box *b)
{
    box_free(b, b->boff);
}

void term__block_free(void *p, unsigned c)
{
    box_free(p, c);
}

void *term__new_box(int type, size_t size)
{
    uint32_t cls;
    term_box *b = box_alloc(size, &cls);
    if (!b) return NULL;
    atomic_init(&b->rc, 1);
    b->boff = cls;
    b->type = (uint8_t)type;
    b->flags = 0;
    b->aux = 0;
    b->n = 0;
    return b;
}

int term__stack_grow(term__stack *s)
{
    size_t ncap = s->cap * 2;
    uintptr_t *nv;
    if (s->v == s->small) {
        nv = term__alloc(ncap * sizeof(uintptr_t));
        if (nv) memcpy(nv, s->small, s->n * sizeof(uintptr_t));
    } else {
        nv = term__realloc(s->v, s->cap * sizeof(uintptr_t), ncap * sizeof(uintptr_t));
    }
    if (!nv) return TERM_ENOMEM;
    s->v = nv;
    s->cap = ncap;
    return 0;
}

/* ==================================================================== buffers */

void etf_buf_free(etf_buf *b)
{
    term__dealloc(b->data, b->cap);
    b->data = NULL;
    b->len = b->cap = 0;
}

int etf_buf_reserve(etf_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    size_t need = b->len + extra;
    if (need < b->len) return TERM_ENOMEM;
    size_t ncap = b->cap ? b->cap : 64;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) {
            ncap = need;
            break;
        }
        ncap *= 2;
    }
    uint8_t *nd = term__realloc(b->data, b->cap, ncap);
    if (!nd) return TERM_ENOMEM;
    b->data = nd;
    b->cap = ncap;
    return 0;
}

int term__buf_printf(etf_buf *b, const char *fmt, ...)
{
    va_list ap;
    char tmp[256];
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return TERM_EINVAL;
    if ((size_t)n < sizeof tmp) return term__buf_put(b, tmp, (size_t)n);
    if (etf_buf_reserve(b, (size_t)n + 1) != 0) return TERM_ENOMEM;
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

/* ==================================================================== types */

term_type term_typeof(term_t t)
{
    if (t == TERM_NONE) return TERM_T_NONE;
    if (term_is_small(t)) return TERM_T_INT;
    if (term_is_atom(t)) return TERM_T_ATOM;
    if (t == TERM_NIL) return TERM_T_NIL;
    if (!term_is_boxed(t)) return TERM_T_NONE;
    switch (term__box(t)->type) {
    case BOX_BIG:
        return TERM_T_INT;
    case BOX_FLOAT:
        return TERM_T_FLOAT;
    case BOX_TUPLE:
        return TERM_T_TUPLE;
    case BOX_CONS:
        return TERM_T_LIST;
    case BOX_MAP:
        return TERM_T_MAP;
    case BOX_BIN:
        return TERM_T_BITSTRING;
    case BOX_PID:
        return TERM_T_PID;
    case BOX_PORT:
        return TERM_T_PORT;
    case BOX_REF:
        return TERM_T_REF;
    case BOX_FUN:
    case BOX_EXPORT:
        return TERM_T_FUN;
    case BOX_FATOM:
        return TERM_T_ATOM;
    }
    return TERM_T_NONE;
}

const char *term_type_name(term_type ty)
{
    static const char *const names[] = {"none", "integer", "float",    "atom",  "reference",
                                        "fun",  "port",    "pid",      "tuple", "map",
                                        "nil",  "list",    "bitstring"};
    return (unsigned)ty < sizeof names / sizeof names[0] ? names[ty] : "?";
}

/* ==================================================================== reference counting */

static inline _Atomic uint32_t *rc_of(term_box *b)
{
    if (b->flags & BOXF_INBLOCK) return &((term_box *)((uint64_t *)b - b->boff))->rc;
    return &b->rc;
}

term_t term_dup(term_t t)
{
    if (term_is_boxed(t)) atomic_fetch_add_explicit(rc_of(term__box(t)), 1, memory_order_relaxed);
    return t;
}

size_t term__box_size(const term_box *b)
{
    switch (b->type) {
    case BOX_BIG:
        return sizeof(box_big) + b->n * sizeof(uint64_t);
    case BOX_FLOAT:
        return sizeof(box_float);
    case BOX_TUPLE:
        return sizeof(box_tuple) + b->n * sizeof(term_t);
    case BOX_CONS:
        return sizeof(box_cons);
    case BOX_MAP:
        return sizeof(box_map) + 2 * (size_t)b->n * sizeof(term_t);
    case BOX_BIN: {
        const box_bin *bb = (const box_bin *)b;
        if (bb->owner != TERM_NONE || bb->data != bb->inl) return sizeof(box_bin);
        return sizeof(box_bin) + (size_t)((bb->nbits + 7) / 8);
    }
    case BOX_RAW:
        return sizeof(box_raw);
    case BOX_PID:
        return sizeof(box_pid);
    case BOX_PORT:
        return sizeof(box_port);
    case BOX_REF:
        return sizeof(box_ref);
    case BOX_FUN:
        return sizeof(box_fun) + b->n * sizeof(term_t);
    case BOX_EXPORT:
        return sizeof(box_export);
    case BOX_BLOCK:
        return ((const box_block *)b)->size;
    case BOX_FATOM:
        return term__fatom_size(b->n);
    }
    return sizeof(term_box);
}

/* Drops one reference on t; a box that dies is pushed on *dead (linked through its first
** word, which nobody reads once the count is zero; its class moves from boff to aux). */
static inline void release(term_t t, term_box **dead)
{
    if (!term_is_boxed(t)) return;
    term_box *b = term__box(t);
    if (b->flags & BOXF_INBLOCK) b = (term_box *)((uint64_t *)b - b->boff);
    /* A count of 1 is our own reference (no other thread can dup or drop one): no locked
    ** decrement. acq_rel: the last owner must see every other owner's reads done. */
    if (atomic_load_explicit(&b->rc, memory_order_acquire) != 1 &&
        atomic_fetch_sub_explicit(&b->rc, 1, memory_order_acq_rel) != 1)
        return;
    b->aux = (uint16_t)b->boff; /* the class, kept where nothing reads it once dead */
    *(term_box **)(void *)b = *dead;
    *dead = b;
}

/* The foreign atoms a block holds a reference to: its last h.n words. */
static inline term_t *block_atoms(box_block *blk)
{
    return (term_t *)(void *)((char *)blk + blk->size) - blk->h.n;
}

/* Frees a block that holds foreign atoms (out of line: the common free stays a tail call). */
static __attribute__((noinline)) void free_block_with_atoms(box_block *blk)
{
    term_t *a = block_atoms(blk);
    for (uint32_t i = 0; i < blk->h.n; i++) term_free(a[i]);
    box_free(&blk->h, blk->h.boff);
}

/*
** Frees iteratively: dying boxes form an intrusive stack, so a list or a nest a million deep
** costs no C stack. Block members point only inside their block, at immediates, or at the
** foreign atoms the block holds a reference to.
*/
static __attribute__((noinline)) void free_dead(term_box *top)
{
    term_box *dead = top;
    top->aux = (uint16_t)top->boff; /* as release() leaves a dying box */
    *(term_box **)(void *)top = NULL;
    while (dead) {
        term_box *b = dead;
        dead = *(term_box **)(void *)b;
        switch (b->type) {
        case BOX_TUPLE: {
            box_tuple *x = (box_tuple *)b;
            for (uint32_t i = 0; i < b->n; i++) release(x->e[i], &dead);
            break;
        }
        case BOX_CONS:
            release(((box_cons *)b)->hd, &dead);
            release(((box_cons *)b)->tl, &dead);
            break;
        case BOX_MAP: {
            box_map *x = (box_map *)b;
            for (size_t i = 0; i < 2 * (size_t)b->n; i++) release(x->kv[i], &dead);
            break;
        }
        case BOX_BIN:
            release(((box_bin *)b)->owner, &dead);
            break;
        case BOX_RAW:
            term__dealloc(((box_raw *)b)->data, ((box_raw *)b)->size);
            break;
        case BOX_FUN: {
            box_fun *x = (box_fun *)b;
            release(x->module, &dead);
            release(x->old_index, &dead);
            release(x->old_uniq, &dead);
            release(x->pid, &dead);
            for (uint32_t i = 0; i < b->n; i++) release(x->free[i], &dead);
            break;
        }
        /* node, module and function atoms may be foreign (boxed) */
        case BOX_PID:
            release(((box_pid *)b)->node, &dead);
            break;
        case BOX_PORT:
            release(((box_port *)b)->node, &dead);
            break;
        case BOX_REF:
            release(((box_ref *)b)->node, &dead);
            break;
        case BOX_EXPORT:
            release(((box_export *)b)->module, &dead);
            release(((box_export *)b)->function, &dead);
            break;
        case BOX_BLOCK: {
            box_block *blk = (box_block *)b;
            term_t *a = block_atoms(blk);
            for (uint32_t i = 0; i < blk->h.n; i++) release(a[i], &dead);
            break;
        }
        default:
            break;
        }
        box_free(b, b->aux);
    }
}

/* The decoded-message case and a drop that leaves the box alive stay leaves: no frame. */
void term_free(term_t t)
{
    if (!term_is_boxed(t)) return;
    term_box *m = term__box(t);
    if (!(m->flags & BOXF_INBLOCK)) {
        /* the drop that does not kill (most of them) returns without a frame */
        if (atomic_load_explicit(&m->rc, memory_order_acquire) == 1 ||
            atomic_fetch_sub_explicit(&m->rc, 1, memory_order_acq_rel) == 1)
            free_dead(m);
        return;
    }
    /* A decoded term: members of a block point only inside it, so the whole is one free. */
    box_block *blk = (box_block *)(void *)((uint64_t *)m - m->boff);
    /* A count of 1 is our own reference: no other thread can dup or drop one, so the locked
    ** decrement is skipped; acquire still orders the other owners' releases. */
    if (atomic_load_explicit(&blk->h.rc, memory_order_acquire) == 1 ||
        atomic_fetch_sub_explicit(&blk->h.rc, 1, memory_order_acq_rel) == 1) {
        if (TERM__UNLIKELY(blk->h.n))
            free_block_with_atoms(blk);
        else
            box_free(&blk->h, blk->h.boff);
    }
}

/* ==================================================================== numbers */

term_t term_int(int64_t v)
{
    if (v >= TERM_SMALL_MIN && v <= TERM_SMALL_MAX) return term__make_small(v);
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    return term__int_from_limbs(v < 0, &mag, 1);
}

term_t term_uint(uint64_t v)
{
    if (v <= (uint64_t)TERM_SMALL_MAX) return term__make_small((int64_t)v);
    return term__int_from_limbs(false, &v, 1);
}

term_t term__int_from_limbs(bool neg, const uint64_t *limbs, size_t n)
{
    while (n > 0 && limbs[n - 1] == 0) n--;
    if (n == 0) return term__make_small(0);
    if (n == 1) {
        if (!neg && limbs[0] <= (uint64_t)TERM_SMALL_MAX)
            return term__make_small((int64_t)limbs[0]);
        if (neg && limbs[0] <= (uint64_t)TERM_SMALL_MAX + 1)
            return term__make_small((int64_t)(0 - limbs[0]));
    }
    if (n > UINT32_MAX) return TERM_NONE;
    box_big *b = term__new_box(BOX_BIG, sizeof(box_big) + n * sizeof(uint64_t));
    if (!b) return TERM_NONE;
    b->h.n = (uint32_t)n;
    if (neg) b->h.flags |= BOXF_NEG;
    memcpy(b->limbs, limbs, n * sizeof(uint64_t));
    return term__from_box(b);
}

term_t term_big_from_bytes(bool negative, const uint8_t *le, size_t n)
{
    size_t nl = (n + 7) / 8;
    uint64_t small[4];
    uint64_t *limbs = nl <= 4 ? small : term__alloc(nl * sizeof(uint64_t));
    if (!limbs) return TERM_NONE;
    memset(limbs, 0, nl * sizeof(uint64_t));
    for (size_t i = 0; i < n; i++) limbs[i / 8] |= (uint64_t)le[i] << (8 * (i % 8));
    term_t t = term__int_from_limbs(negative, limbs, nl);
    if (limbs != small) term__dealloc(limbs, nl * sizeof(uint64_t));
    return t;
}

bool term_is_int(term_t t)
{
    return term_is_small(t) || term__box_type(t) == BOX_BIG;
}

bool term_is_bignum(term_t t)
{
    return term__box_type(t) == BOX_BIG;
}

int term_get_int64(term_t t, int64_t *out)
{
    if (term_is_small(t)) {
        *out = term_small_value(t);
        return 0;
    }
    if (term__box_type(t) != BOX_BIG) return TERM_ETYPE;
    box_big *b = (box_big *)term__box(t);
    if (b->h.n != 1) return TERM_ERANGE;
    uint64_t m = b->limbs[0];
    if (b->h.flags & BOXF_NEG) {
        if (m > (uint64_t)INT64_MAX + 1) return TERM_ERANGE;
        *out = (int64_t)(0 - m);
    } else {
        if (m > (uint64_t)INT64_MAX) return TERM_ERANGE;
        *out = (int64_t)m;
    }
    return 0;
}

int term_get_uint64(term_t t, uint64_t *out)
{
    if (term_is_small(t)) {
        if (term_small_value(t) < 0) return TERM_ERANGE;
        *out = (uint64_t)term_small_value(t);
        return 0;
    }
    if (term__box_type(t) != BOX_BIG) return TERM_ETYPE;
    box_big *b = (box_big *)term__box(t);
    if (b->h.n != 1 || (b->h.flags & BOXF_NEG)) return TERM_ERANGE;
    *out = b->limbs[0];
    return 0;
}

int term_big_view(term_t t, bool *negative, const uint64_t **limbs, size_t *nlimbs)
{
    if (term__box_type(t) != BOX_BIG) return TERM_ETYPE;
    box_big *b = (box_big *)term__box(t);
    *negative = (b->h.flags & BOXF_NEG) != 0;
    *limbs = b->limbs;
    *nlimbs = b->h.n;
    return 0;
}

term_t term_float(double d)
{
    if (!isfinite(d)) return TERM_NONE;
    box_float *b = term__new_box(BOX_FLOAT, sizeof(box_float));
    if (!b) return TERM_NONE;
    b->d = d;
    return term__from_box(b);
}

bool term_is_float(term_t t)
{
    return term__box_type(t) == BOX_FLOAT;
}

double term_float_value(term_t t)
{
    return term_is_float(t) ? ((box_float *)term__box(t))->d : 0.0;
}

/* ==================================================================== tuples */

static void free_all(size_t n, const term_t *v)
{
    if (v)
        for (size_t i = 0; i < n; i++) term_free(v[i]);
}

term_t term_tuple(size_t n, const term_t *elems)
{
    box_tuple *b =
        n <= UINT32_MAX ? term__new_box(BOX_TUPLE, sizeof(box_tuple) + n * sizeof(term_t)) : NULL;
    if (!b) {
        free_all(n, elems);
        return TERM_NONE;
    }
    b->h.n = (uint32_t)n;
    bool bad = false;
    for (size_t i = 0; i < n; i++) {
        b->e[i] = elems[i];
        bad |= elems[i] == TERM_NONE;
    }
    if (bad) {
        term_free(term__from_box(b));
        return TERM_NONE;
    }
    return term__from_box(b);
}

term_t term_tuplev(size_t n, ...)
{
    term_t small[16];
    term_t *v = n <= 16 ? small : term__alloc(n * sizeof(term_t));
    va_list ap;
    va_start(ap, n);
    for (size_t i = 0; i < n; i++) {
        term_t x = va_arg(ap, term_t);
        if (v)
            v[i] = x;
        else
            term_free(x);
    }
    va_end(ap);
    if (!v) return TERM_NONE;
    term_t t = term_tuple(n, v);
    if (v != small) term__dealloc(v, n * sizeof(term_t));
    return t;
}

bool term_is_tuple(term_t t)
{
    return term__box_type(t) == BOX_TUPLE;
}

size_t term_tuple_arity(term_t t)
{
    return term_is_tuple(t) ? term__box(t)->n : 0;
}

term_t term_tuple_elem(term_t t, size_t i)
{
    if (!term_is_tuple(t) || i >= term__box(t)->n) return TERM_NONE;
    return ((box_tuple *)term__box(t))->e[i];
}

/* ==================================================================== lists */

term_t term_cons(term_t head, term_t tail)
{
    box_cons *b = NULL;
    if (head != TERM_NONE && tail != TERM_NONE) b = term__new_box(BOX_CONS, sizeof(box_cons));
    if (!b) {
        term_free(head);
        term_free(tail);
        return TERM_NONE;
    }
    b->hd = head;
    b->tl = tail;
    return term__from_box(b);
}

term_t term_list_tail(size_t n, const term_t *elems, term_t tail)
{
    term_t acc = tail;
    size_t i = n;
    while (i > 0) {
        i--;
        acc = term_cons(elems[i], acc);
        if (acc == TERM_NONE) {
            free_all(i, elems);
            return TERM_NONE;
        }
    }
    return acc;
}

term_t term_list(size_t n, const term_t *elems)
{
    return term_list_tail(n, elems, TERM_NIL);
}

bool term_is_cons(term_t t)
{
    return term__box_type(t) == BOX_CONS;
}

bool term_is_list(term_t t)
{
    return t == TERM_NIL || term_is_cons(t);
}

term_t term_hd(term_t t)
{
    return term_is_cons(t) ? ((box_cons *)term__box(t))->hd : TERM_NONE;
}

term_t term_tl(term_t t)
{
    return term_is_cons(t) ? ((box_cons *)term__box(t))->tl : TERM_NONE;
}

long term_list_length(term_t t)
{
    long n = 0;
    while (term_is_cons(t)) {
        n++;
        t = ((box_cons *)term__box(t))->tl;
    }
    return t == TERM_NIL ? n : -1;
}

term_t term_string(const char *s, size_t len)
{
    term_t acc = TERM_NIL;
    while (len > 0) {
        len--;
        acc = term_cons(term__make_small((uint8_t)s[len]), acc);
        if (acc == TERM_NONE) return TERM_NONE;
    }
    return acc;
}

/* Decodes one UTF-8 sequence at s (validated); returns its length, 0 if invalid. */
static size_t utf8_decode(const uint8_t *s, size_t len, uint32_t *cp)
{
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0)
        n = 2, v = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0)
        n = 3, v = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0)
        n = 4, v = c & 0x07, min = 0x10000;
    else
        return 0;
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

bool term__utf8_count(const uint8_t *s, size_t len, size_t *chars)
{
    size_t n = 0, i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            i++;
        } else {
            uint32_t cp;
            size_t k = utf8_decode(s + i, len - i, &cp);
            if (!k) return false;
            i += k;
        }
        n++;
    }
    *chars = n;
    return true;
}

size_t term__latin1_to_utf8(const uint8_t *s, size_t len, char *buf)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x80) {
            buf[o++] = (char)s[i];
        } else {
            buf[o++] = (char)(0xC0 | (s[i] >> 6));
            buf[o++] = (char)(0x80 | (s[i] & 0x3F));
        }
    }
    return o;
}

term_t term_string_utf8(const char *s, size_t len, int *err)
{
    size_t n;
    if (!term__utf8_count((const uint8_t *)s, len, &n)) {
        if (err) *err = TERM_EUTF8;
        return TERM_NONE;
    }
    term_t *cps = term__alloc((n ? n : 1) * sizeof(term_t));
    if (!cps) {
        if (err) *err = TERM_ENOMEM;
        return TERM_NONE;
    }
    size_t i = 0, k = 0;
    while (i < len) {
        uint32_t cp;
        i += utf8_decode((const uint8_t *)s + i, len - i, &cp);
        cps[k++] = term__make_small(cp);
    }
    term_t t = term_list(n, cps);
    term__dealloc(cps, (n ? n : 1) * sizeof(term_t));
    if (t == TERM_NONE && err) *err = TERM_ENOMEM;
    return t;
}

/* ==================================================================== maps */

/* Sorts keys (with their values) by exact order; returns false on duplicates when
** keep_last is false. Insertion sort for small maps, merge sort otherwise. */
static void sort_kv(term_t *k, term_t *v, size_t n)
{
    if (n < 2) return;
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            term_t kk = k[i], vv = v[i];
            size_t j = i;
            while (j > 0 && term_compare_exact(k[j - 1], kk) > 0) {
                k[j] = k[j - 1];
                v[j] = v[j - 1];
                j--;
            }
            k[j] = kk;
            v[j] = vv;
        }
        return;
    }
    size_t h = n / 2;
    sort_kv(k, v, h);
    sort_kv(k + h, v + h, n - h);
    term_t *tk = term__alloc(n * sizeof(term_t) * 2);
    if (!tk) {
        /* fall back to an in-place insertion sort: slow but correct */
        for (size_t i = 1; i < n; i++) {
            term_t kk = k[i], vv = v[i];
            size_t j = i;
            while (j > 0 && term_compare_exact(k[j - 1], kk) > 0) {
                k[j] = k[j - 1];
                v[j] = v[j - 1];
                j--;
            }
            k[j] = kk;
            v[j] = vv;
        }
        return;
    }
    term_t *tv = tk + n;
    size_t a = 0, b = h, o = 0;
    while (a < h && b < n) {
        if (term_compare_exact(k[a], k[b]) <= 0)
            tk[o] = k[a], tv[o++] = v[a++];
        else
            tk[o] = k[b], tv[o++] = v[b++];
    }
    while (a < h) tk[o] = k[a], tv[o++] = v[a++];
    while (b < n) tk[o] = k[b], tv[o++] = v[b++];
    memcpy(k, tk, n * sizeof(term_t));
    memcpy(v, tv, n * sizeof(term_t));
    term__dealloc(tk, n * sizeof(term_t) * 2);
}

void term__map_sort(term_t *keys, term_t *vals, size_t n)
{
    sort_kv(keys, vals, n);
}

term_t term_map(size_t n, const term_t *keys, const term_t *vals)
{
    bool bad = n > UINT32_MAX;
    for (size_t i = 0; i < n && !bad; i++) bad |= keys[i] == TERM_NONE || vals[i] == TERM_NONE;
    term_t *tmp = bad ? NULL : term__alloc(2 * n * sizeof(term_t));
    if (!tmp) {
        free_all(n, keys);
        free_all(n, vals);
        return TERM_NONE;
    }
    term_t *k = tmp, *v = tmp + n;
    if (n) {
        memcpy(k, keys, n * sizeof(term_t));
        memcpy(v, vals, n * sizeof(term_t));
    }
    sort_kv(k, v, n); /* stable: among equal keys the last given stays last */
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o > 0 && term_compare_exact(k[o - 1], k[i]) == 0) {
            term_free(k[o - 1]);
            term_free(v[o - 1]);
            o--;
        }
        k[o] = k[i];
        v[o] = v[i];
        o++;
    }
    box_map *b = term__new_box(BOX_MAP, sizeof(box_map) + 2 * o * sizeof(term_t));
    if (b) {
        b->h.n = (uint32_t)o;
        memcpy(b->kv, k, o * sizeof(term_t));
        memcpy(b->kv + o, v, o * sizeof(term_t));
    } else {
        free_all(o, k);
        free_all(o, v);
    }
    term__dealloc(tmp, 2 * n * sizeof(term_t));
    return b ? term__from_box(b) : TERM_NONE;
}

bool term_is_map(term_t t)
{
    return term__box_type(t) == BOX_MAP;
}

size_t term_map_size(term_t t)
{
    return term_is_map(t) ? term__box(t)->n : 0;
}

/* Binary search in the sorted keys; returns the index or -(insertion point) - 1. */
static long map_find(const box_map *m, term_t key)
{
    size_t lo = 0, hi = m->h.n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = term_compare_exact(m->kv[mid], key);
        if (c == 0) return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(long)lo - 1;
}

term_t term_map_get(term_t map, term_t key)
{
    if (!term_is_map(map)) return TERM_NONE;
    box_map *m = (box_map *)term__box(map);
    long i = map_find(m, key);
    return i >= 0 ? m->kv[m->h.n + (size_t)i] : TERM_NONE;
}

term_t term_map_key(term_t map, size_t i)
{
    if (!term_is_map(map) || i >= term__box(map)->n) return TERM_NONE;
    return ((box_map *)term__box(map))->kv[i];
}

term_t term_map_value(term_t map, size_t i)
{
    if (!term_is_map(map) || i >= term__box(map)->n) return TERM_NONE;
    box_map *m = (box_map *)term__box(map);
    return m->kv[m->h.n + i];
}

/* Copies map m into a new box of n entries leaving a gap at `at` (insert) or dropping
** entry `at` (remove), with every kept entry dup'ed. */
static box_map *map_copy(const box_map *m, size_t at, bool insert)
{
    size_t on = m->h.n, nn = insert ? on + 1 : on - 1;
    box_map *b = term__new_box(BOX_MAP, sizeof(box_map) + 2 * nn * sizeof(term_t));
    if (!b) return NULL;
    b->h.n = (uint32_t)nn;
    size_t o = 0;
    for (size_t i = 0; i < on; i++) {
        if (i == at) {
            if (insert)
                o++;
            else
                continue;
        }
        b->kv[o] = term_dup(m->kv[i]);
        b->kv[nn + o] = term_dup(m->kv[on + i]);
        o++;
    }
    return b;
}

term_t term_map_put(term_t map, term_t key, term_t val)
{
    if (!term_is_map(map) || key == TERM_NONE || val == TERM_NONE) goto fail;
    box_map *m = (box_map *)term__box(map);
    long i = map_find(m, key);
    box_map *b;
    if (i >= 0) {
        size_t n = m->h.n;
        b = term__new_box(BOX_MAP, sizeof(box_map) + 2 * n * sizeof(term_t));
        if (!b) goto fail;
        b->h.n = (uint32_t)n;
        for (size_t j = 0; j < n; j++) {
            b->kv[j] = term_dup(m->kv[j]);
            b->kv[n + j] = j == (size_t)i ? val : term_dup(m->kv[n + j]);
        }
        term_free(key);
    } else {
        size_t at = (size_t)(-i - 1);
        b = map_copy(m, at, true);
        if (!b) goto fail;
        b->kv[at] = key;
        b->kv[b->h.n + at] = val;
    }
    term_free(map);
    return term__from_box(b);
fail:
    term_free(map);
    term_free(key);
    term_free(val);
    return TERM_NONE;
}

term_t term_map_remove(term_t map, term_t key)
{
    if (!term_is_map(map)) {
        term_free(map);
        return TERM_NONE;
    }
    box_map *m = (box_map *)term__box(map);
    long i = map_find(m, key);
    if (i < 0) return map;
    box_map *b = map_copy(m, (size_t)i, false);
    term_free(map);
    return b ? term__from_box(b) : TERM_NONE;
}

/* ==================================================================== binaries */

static box_bin *new_bin_inline(size_t nbytes)
{
    box_bin *b = term__new_box(BOX_BIN, sizeof(box_bin) + nbytes);
    if (!b) return NULL;
    b->nbits = (uint64_t)nbytes * 8;
    b->data = b->inl;
    b->owner = TERM_NONE;
    return b;
}

term_t term_binary(const void *data, size_t len)
{
    box_bin *b = new_bin_inline(len);
    if (!b) return TERM_NONE;
    if (len) memcpy(b->inl, data, len);
    return term__from_box(b);
}

term_t term_bitstring(const void *data, size_t nbits)
{
    size_t nbytes = (nbits + 7) / 8;
    box_bin *b = new_bin_inline(nbytes);
    if (!b) return TERM_NONE;
    if (nbytes) {
        memcpy(b->inl, data, nbytes);
        if (nbits % 8) b->inl[nbytes - 1] &= (uint8_t)(0xFF << (8 - nbits % 8));
    }
    b->nbits = nbits;
    return term__from_box(b);
}

term_t term_binary_adopt(void *data, size_t len)
{
    box_raw *r = term__new_box(BOX_RAW, sizeof(box_raw));
    box_bin *b = r ? term__new_box(BOX_BIN, sizeof(box_bin)) : NULL;
    if (!b) {
        if (r) term__box_dealloc(&r->h);
        term__dealloc(data, len);
        return TERM_NONE;
    }
    r->size = len;
    r->data = data;
    b->nbits = (uint64_t)len * 8;
    b->data = data;
    b->owner = term__from_box(r);
    return term__from_box(b);
}

term_t term_sub_binary(term_t bin, size_t bit_offset, size_t nbits)
{
    if (!term_is_bitstring(bin)) return TERM_NONE;
    box_bin *p = (box_bin *)term__box(bin);
    if (bit_offset > p->nbits || nbits > p->nbits - bit_offset) return TERM_NONE;
    size_t abs = p->h.aux + bit_offset;
    box_bin *b = term__new_box(BOX_BIN, sizeof(box_bin));
    if (!b) return TERM_NONE;
    b->nbits = nbits;
    b->data = p->data + abs / 8;
    b->h.aux = (uint16_t)(abs % 8);
    /* Keep the storage alive: the owner of p's bytes, or p itself. */
    b->owner = term_dup(p->owner != TERM_NONE ? p->owner : bin);
    return term__from_box(b);
}

bool term_is_bitstring(term_t t)
{
    return term__box_type(t) == BOX_BIN;
}

bool term_is_binary(term_t t)
{
    return term_is_bitstring(t) && ((box_bin *)term__box(t))->nbits % 8 == 0;
}

size_t term_bitstring_bits(term_t t)
{
    return term_is_bitstring(t) ? (size_t)((box_bin *)term__box(t))->nbits : 0;
}

size_t term_binary_size(term_t t)
{
    return (term_bitstring_bits(t) + 7) / 8;
}

const uint8_t *term_binary_data(term_t t)
{
    if (!term_is_bitstring(t)) return NULL;
    box_bin *b = (box_bin *)term__box(t);
    return b->h.aux == 0 ? b->data : NULL;
}

void term_bitstring_copy(term_t t, uint8_t *out)
{
    if (!term_is_bitstring(t)) return;
    box_bin *b = (box_bin *)term__box(t);
    size_t nbytes = (size_t)((b->nbits + 7) / 8);
    unsigned off = b->h.aux;
    if (nbytes == 0) return;
    if (off == 0) {
        memcpy(out, b->data, nbytes);
    } else {
        size_t avail = (size_t)((off + b->nbits + 7) / 8); /* bytes touched in data */
        for (size_t i = 0; i < nbytes; i++) {
            unsigned hi = b->data[i], lo = i + 1 < avail ? b->data[i + 1] : 0;
            out[i] = (uint8_t)((hi << off) | (lo >> (8 - off)));
        }
    }
    if (b->nbits % 8) out[nbytes - 1] &= (uint8_t)(0xFF << (8 - b->nbits % 8));
}

/* ==================================================================== pids, ports, refs */

term_t term_pid(term_t node, uint32_t id, uint32_t serial, uint32_t creation)
{
    if (!term_is_atom(node)) return TERM_NONE;
    box_pid *b = term__new_box(BOX_PID, sizeof(box_pid));
    if (!b) return TERM_NONE;
    b->node = term_dup(node);
    b->id = id;
    b->serial = serial;
    b->creation = creation;
    return term__from_box(b);
}

term_t term_port(term_t node, uint64_t id, uint32_t creation)
{
    if (!term_is_atom(node)) return TERM_NONE;
    box_port *b = term__new_box(BOX_PORT, sizeof(box_port));
    if (!b) return TERM_NONE;
    b->node = term_dup(node);
    b->id = id;
    b->creation = creation;
    return term__from_box(b);
}

term_t term_ref(term_t node, uint32_t creation, size_t nwords, const uint32_t *words)
{
    if (!term_is_atom(node) || nwords < 1 || nwords > 5) return TERM_NONE;
    box_ref *b = term__new_box(BOX_REF, sizeof(box_ref));
    if (!b) return TERM_NONE;
    b->node = term_dup(node);
    b->creation = creation;
    b->h.aux = (uint16_t)nwords;
    memset(b->words, 0, sizeof b->words);
    memcpy(b->words, words, nwords * sizeof(uint32_t));
    return term__from_box(b);
}

bool term_is_pid(term_t t)
{
    return term__box_type(t) == BOX_PID;
}
bool term_is_port(term_t t)
{
    return term__box_type(t) == BOX_PORT;
}
bool term_is_ref(term_t t)
{
    return term__box_type(t) == BOX_REF;
}

int term_pid_get(term_t t, term_pid_info *out)
{
    if (!term_is_pid(t)) return TERM_ETYPE;
    box_pid *b = (box_pid *)term__box(t);
    out->node = b->node;
    out->id = b->id;
    out->serial = b->serial;
    out->creation = b->creation;
    return 0;
}

int term_port_get(term_t t, term_port_info *out)
{
    if (!term_is_port(t)) return TERM_ETYPE;
    box_port *b = (box_port *)term__box(t);
    out->node = b->node;
    out->id = b->id;
    out->creation = b->creation;
    return 0;
}

int term_ref_get(term_t t, term_ref_info *out)
{
    if (!term_is_ref(t)) return TERM_ETYPE;
    box_ref *b = (box_ref *)term__box(t);
    out->node = b->node;
    out->creation = b->creation;
    out->nwords = b->h.aux;
    memcpy(out->words, b->words, sizeof out->words);
    return 0;
}

/* ==================================================================== funs */

term_t term_export_fun(term_t module, term_t function, uint32_t arity)
{
    if (!term_is_atom(module) || !term_is_atom(function) || arity > 255) return TERM_NONE;
    box_export *b = term__new_box(BOX_EXPORT, sizeof(box_export));
    if (!b) return TERM_NONE;
    b->module = term_dup(module);
    b->function = term_dup(function);
    b->arity = arity;
    return term__from_box(b);
}

term_t term_local_fun(const term_fun_info *info)
{
    if (info->is_export) return term_export_fun(info->module, info->function, info->arity);
    if (!term_is_atom(info->module) || !term_is_int(info->old_index) ||
        !term_is_int(info->old_uniq) || !term_is_pid(info->pid) || info->arity > 255 ||
        info->nfree > UINT32_MAX)
        return TERM_NONE;
    for (size_t i = 0; i < info->nfree; i++)
        if (info->free[i] == TERM_NONE) return TERM_NONE;
    box_fun *b = term__new_box(BOX_FUN, sizeof(box_fun) + info->nfree * sizeof(term_t));
    if (!b) return TERM_NONE;
    b->h.n = (uint32_t)info->nfree;
    if (info->old_form) b->h.flags |= BOXF_OLDFUN;
    b->module = term_dup(info->module);
    b->old_index = term_dup(info->old_index);
    b->old_uniq = term_dup(info->old_uniq);
    b->pid = term_dup(info->pid);
    b->arity = info->arity;
    b->index = info->index;
    memcpy(b->uniq, info->uniq, 16);
    for (size_t i = 0; i < info->nfree; i++) b->free[i] = term_dup(info->free[i]);
    return term__from_box(b);
}

bool term_is_fun(term_t t)
{
    int ty = term__box_type(t);
    return ty == BOX_FUN || ty == BOX_EXPORT;
}

int term_fun_get(term_t t, term_fun_info *out)
{
    memset(out, 0, sizeof *out);
    int ty = term__box_type(t);
    if (ty == BOX_EXPORT) {
        box_export *b = (box_export *)term__box(t);
        out->is_export = true;
        out->module = b->module;
        out->function = b->function;
        out->arity = b->arity;
        return 0;
    }
    if (ty != BOX_FUN) return TERM_ETYPE;
    box_fun *b = (box_fun *)term__box(t);
    out->module = b->module;
    out->function = TERM_NONE;
    out->arity = b->arity;
    out->old_form = (b->h.flags & BOXF_OLDFUN) != 0;
    memcpy(out->uniq, b->uniq, 16);
    out->index = b->index;
    out->old_index = b->old_index;
    out->old_uniq = b->old_uniq;
    out->pid = b->pid;
    out->nfree = b->h.n;
    out->free = b->free;
    return 0;
}
