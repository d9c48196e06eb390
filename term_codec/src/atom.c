/* The node-global atom table (lock-free lookups, inserts under one mutex, never freed), the
 * external quota, and foreign atoms. */
#include "term_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/*
** Atoms live in chunks that never move, indexed by atom number; a fixed open-addressing hash
** table (sized for the limit, zero pages untouched until used) maps names to numbers. Readers
** load a slot with acquire order and then read the entry it publishes; writers hold `lock`.
*/
typedef term__atom_entry atom_entry;

#define CHUNK_BITS TERM__ATOM_CHUNK_BITS
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define MAX_CHUNKS 4096 /* 16M atoms at most, whatever the limit says */

_Atomic(atom_entry *) *term__atom_chunks[MAX_CHUNKS];
#define chunks term__atom_chunks
static _Atomic uint32_t *slots; /* atom index + 1, or 0 */
static size_t slot_mask;
static _Atomic size_t natoms;
static size_t atom_limit = 1048576;
static _Atomic size_t n_external;        /* atoms interned by decodes */
static size_t external_quota = SIZE_MAX; /* written and read under lock */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;

term_t TERM_ATOM_TRUE, TERM_ATOM_FALSE, TERM_ATOM_OK, TERM_ATOM_ERROR, TERM_ATOM_UNDEFINED,
    TERM_ATOM_NONODE;

/* ==================================================================== keyed hashing */

/*
** Names from outside must not be able to collide on purpose: with an unkeyed hash a peer could
** send names that all land in one probe chain and make every lookup walk it. So names are
** hashed with SipHash-1-3 (Aumasson and Bernstein) under a key drawn at first use.
*/
static uint64_t sip_k0, sip_k1;
static _Atomic bool sip_ready;
static pthread_once_t sip_once = PTHREAD_ONCE_INIT;

static void sip_init(void)
{
    uint64_t k[2];
    if (getrandom(k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
        /* No entropy yet (early boot): a weaker key still differs from run to run. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
        k[1] = (uint64_t)(uintptr_t)&ts ^ ((uint64_t)ts.tv_sec << 32);
    }
    sip_k0 = k[0];
    sip_k1 = k[1];
    atomic_store_explicit(&sip_ready, true, memory_order_release);
}

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                  \
    do {                                                          \
        v0 += v1, v1 = ROTL(v1, 13), v1 ^= v0, v0 = ROTL(v0, 32); \
        v2 += v3, v3 = ROTL(v3, 16), v3 ^= v2;                    \
        v0 += v3, v3 = ROTL(v3, 21), v3 ^= v0;                    \
        v2 += v1, v1 = ROTL(v1, 17), v1 ^= v2, v2 = ROTL(v2, 32); \
    } while (0)

uint64_t term__keyed_hash(const void *p, size_t len)
{
    if (!atomic_load_explicit(&sip_ready, memory_order_acquire)) pthread_once(&sip_once, sip_init);
    const uint8_t *s = p;
    uint64_t v0 = sip_k0 ^ 0x736f6d6570736575ull, v1 = sip_k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = sip_k0 ^ 0x6c7967656e657261ull, v3 = sip_k1 ^ 0x7465646279746573ull;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m;
        memcpy(&m, s + i, 8); /* little-endian machines only (the codecs assert it) */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t k = 0; i + k < len; k++) b |= (uint64_t)s[i + k] << (8 * k);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint32_t term__atom_hash(const char *s, size_t len)
{
    uint64_t h = term__keyed_hash(s, len);
    return (uint32_t)(h ^ (h >> 32));
}
#define hash_name term__atom_hash

/* The hash table is sized once for SLOTS_CAP/2 atoms: the limit can move up to that. */
#define SLOTS_CAP ((size_t)1 << 22)

void term_atom_set_limit(size_t max_atoms)
{
    pthread_mutex_lock(&lock);
    if (max_atoms > SLOTS_CAP / 2) max_atoms = SLOTS_CAP / 2;
    if (max_atoms > 0) atom_limit = max_atoms;
    pthread_mutex_unlock(&lock);
}

size_t term_atom_limit(void)
{
    pthread_mutex_lock(&lock);
    size_t n = atom_limit;
    pthread_mutex_unlock(&lock);
    return n;
}

static atom_entry *entry_at(uint32_t index)
{
    return (atom_entry *)term__atom_entry_of(index);
}

/* Finds name; returns the index or -1. Safe without the lock. */
static long lookup(const char *s, size_t len, uint32_t h)
{
    if (!slots) return -1;
    for (size_t i = h & slot_mask;; i = (i + 1) & slot_mask) {
        uint32_t v = atomic_load_explicit(&slots[i], memory_order_acquire);
        if (v == 0) return -1;
        atom_entry *e = entry_at(v - 1);
        if (e->hash == h && e->len == len && (len == 0 || memcmp(e->name, s, len) == 0))
            return (long)(v - 1);
    }
}

/* Inserts a validated name; lock held. Returns the index or a negative error. An external
** insert (a decode's) must also fit the external quota, and counts against it when it adds. */
static long insert_locked(const char *s, size_t len, uint32_t h, bool latin1, bool ascii,
                          bool external)
{
    if (!slots) {
        /* calloc, not the hook: the table lives as long as the process, and a large calloc
        ** maps zero pages lazily, so a short-lived tool does not touch 16 MB at start. */
        slots = calloc(SLOTS_CAP, sizeof *slots);
        if (!slots) return TERM_ENOMEM;
        slot_mask = SLOTS_CAP - 1;
    }
    long found = lookup(s, len, h);
    if (found >= 0) return found;
    size_t idx = atomic_load_explicit(&natoms, memory_order_relaxed);
    if (idx >= atom_limit) return TERM_EATOMLIMIT;
    if (external && atomic_load_explicit(&n_external, memory_order_relaxed) >= external_quota)
        return TERM_EATOMLIMIT;
    size_t ci = idx >> CHUNK_BITS;
    if (!chunks[ci]) {
        chunks[ci] = calloc(CHUNK_SIZE, sizeof *chunks[ci]);
        if (!chunks[ci]) return TERM_ENOMEM;
    }
    /* Names are zero-padded to TERM__ATOM_PAD bytes so codecs may copy them in whole words. */
    size_t nbytes = len + 1 > TERM__ATOM_PAD ? len + 1 : TERM__ATOM_PAD;
    atom_entry *e = term__alloc(sizeof(atom_entry) + nbytes);
    if (!e) return TERM_ENOMEM;
    e->len = (uint32_t)len;
    e->hash = h;
    e->latin1 = latin1;
    e->ascii = ascii;
    memset(e->name, 0, nbytes);
    if (len) memcpy(e->name, s, len);
    atomic_store_explicit(&chunks[ci][idx & (CHUNK_SIZE - 1)], e, memory_order_release);
    /* The count before the slot: a reader that finds the name must also find its index below
    ** the count, or term_atom_name() would answer NULL for an atom it was just given. */
    atomic_store_explicit(&natoms, idx + 1, memory_order_release);
    size_t i = h & slot_mask;
    while (atomic_load_explicit(&slots[i], memory_order_relaxed) != 0) i = (i + 1) & slot_mask;
    atomic_store_explicit(&slots[i], (uint32_t)idx + 1, memory_order_release);
    if (external) atomic_fetch_add_explicit(&n_external, 1, memory_order_relaxed);
    return (long)idx;
}

static void init_once(void)
{
    TERM_ATOM_FALSE = term_atom("false");
    TERM_ATOM_TRUE = term_atom("true");
    TERM_ATOM_OK = term_atom("ok");
    TERM_ATOM_ERROR = term_atom("error");
    TERM_ATOM_UNDEFINED = term_atom("undefined");
    TERM_ATOM_NONODE = term_atom("nonode@nohost");
}

void term_init(void)
{
    pthread_once(&once, init_once);
}

/* The common atoms exist before main(), so TERM_ATOM_* are usable everywhere. */
__attribute__((constructor)) static void atoms_ctor(void)
{
    term_init();
}

int term__atom_check(const char *s, size_t len, bool *latin1, bool *ascii)
{
    size_t chars;
    if (len > 255 * 4) return TERM_EATOM;
    if (!term__utf8_count((const uint8_t *)s, len, &chars)) return TERM_EUTF8;
    if (chars > 255) return TERM_EATOM;
    bool l1 = true, a = true;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c >= 0x80) {
            a = false;
            /* 2-byte sequences with lead byte C2/C3 encode code points 0x80..0xFF */
            if (c != 0xC2 && c != 0xC3) {
                l1 = false;
                break;
            }
            i++;
        }
    }
    *latin1 = l1;
    *ascii = a;
    return 0;
}

term_t term_atom_n(const char *name, size_t len, int *err)
{
    uint32_t h = hash_name(name, len);
    long idx = lookup(name, len, h);
    if (idx >= 0) return term__make_atom((uint32_t)idx);
    bool latin1, ascii;
    int rc = term__atom_check(name, len, &latin1, &ascii);
    if (rc == 0) {
        pthread_mutex_lock(&lock);
        idx = insert_locked(name, len, h, latin1, ascii, false);
        pthread_mutex_unlock(&lock);
        if (idx < 0) rc = (int)idx;
    }
    if (rc != 0) {
        if (err) *err = rc;
        return TERM_NONE;
    }
    return term__make_atom((uint32_t)idx);
}

term_t term_atom(const char *name)
{
    return term_atom_n(name, strlen(name), NULL);
}

term_t term_atom_existing(const char *name, size_t len)
{
    long idx = lookup(name, len, hash_name(name, len));
    return idx >= 0 ? term__make_atom((uint32_t)idx) : TERM_NONE;
}

const char *term__atom_name(uint32_t index, size_t *len)
{
    if (index >= atomic_load_explicit(&natoms, memory_order_acquire)) {
        if (len) *len = 0;
        return NULL;
    }
    atom_entry *e = entry_at(index);
    if (len) *len = e->len;
    return e->name;
}

const char *term_atom_name(term_t atom, size_t *len)
{
    if (term_atom_is_interned(atom)) return term__atom_name((uint32_t)(atom >> 3), len);
    if (!term_is_atom(atom)) {
        if (len) *len = 0;
        return NULL;
    }
    const term__atom_entry *e = term__fatom_entry(term__box(atom));
    if (len) *len = e->len;
    return e->name;
}

size_t term_atom_count(void)
{
    return atomic_load_explicit(&natoms, memory_order_acquire);
}

/* ==================================================================== the external quota */

void term_atom_set_external_quota(size_t max_atoms)
{
    pthread_mutex_lock(&lock);
    external_quota = max_atoms;
    pthread_mutex_unlock(&lock);
}

size_t term_atom_external_quota(void)
{
    pthread_mutex_lock(&lock);
    size_t q = external_quota;
    pthread_mutex_unlock(&lock);
    return q;
}

size_t term_atom_external_count(void)
{
    return atomic_load_explicit(&n_external, memory_order_relaxed);
}

term_t term__atom_lookup(const char *s, size_t len, uint32_t h)
{
    long idx = lookup(s, len, h);
    return idx >= 0 ? term__make_atom((uint32_t)idx) : TERM_NONE;
}

term_t term__atom_intern_external(const char *s, size_t len, uint32_t h, bool latin1, bool ascii,
                                  int *err, bool *created)
{
    pthread_mutex_lock(&lock);
    size_t before = atomic_load_explicit(&natoms, memory_order_relaxed);
    long idx = insert_locked(s, len, h, latin1, ascii, true);
    *created = atomic_load_explicit(&natoms, memory_order_relaxed) != before;
    pthread_mutex_unlock(&lock);
    if (idx < 0) {
        *err = (int)idx;
        return TERM_NONE;
    }
    return term__make_atom((uint32_t)idx);
}

/* ==================================================================== foreign atoms */

term_t term__fatom_new(const char *s, size_t len, uint32_t h, bool latin1, bool ascii)
{
    size_t size = term__fatom_size(len);
    term_box *b = term__new_box(BOX_FATOM, size);
    if (!b) return TERM_NONE;
    term__atom_entry *e = (term__atom_entry *)(void *)(b + 1);
    /* zero-padded like table entries, so the encoder may copy short names as whole words */
    memset(e, 0, size - sizeof(term_box));
    e->len = (uint32_t)len;
    e->hash = h;
    e->latin1 = latin1;
    e->ascii = ascii;
    if (len) memcpy(e->name, s, len);
    b->n = (uint32_t)len;
    return term__from_box(b);
}

term_t term_atom_foreign_new(const char *name, size_t len, int *err)
{
    bool latin1, ascii;
    int rc = term__atom_check(name, len, &latin1, &ascii);
    term_t t = TERM_NONE;
    if (rc == 0) {
        t = term__fatom_new(name, len, hash_name(name, len), latin1, ascii);
        if (t == TERM_NONE) rc = TERM_ENOMEM;
    }
    if (rc && err) *err = rc;
    return t;
}

term_t term_atom_from_outside(const char *name, size_t len, size_t *budget, bool *created, int *err)
{
    if (created) *created = false;
    uint32_t h = hash_name(name, len);
    long idx = lookup(name, len, h);
    if (idx >= 0) return term__make_atom((uint32_t)idx);
    bool latin1, ascii;
    int rc = term__atom_check(name, len, &latin1, &ascii);
    if (rc) {
        if (err) *err = rc;
        return TERM_NONE;
    }
    if (budget && *budget > 0) {
        bool made = false;
        rc = 0;
        term_t a = term__atom_intern_external(name, len, h, latin1, ascii, &rc, &made);
        if (a != TERM_NONE) {
            if (made) --*budget;
            if (created) *created = made;
            return a;
        }
        if (rc != TERM_EATOMLIMIT) {
            if (err) *err = rc;
            return TERM_NONE;
        }
    }
    term_t f = term__fatom_new(name, len, h, latin1, ascii);
    if (f == TERM_NONE && err) *err = TERM_ENOMEM;
    return f;
}

term_t term_atom_interned(term_t t, bool make)
{
    if (term_atom_is_interned(t)) return t;
    if (!term_is_atom(t)) return TERM_NONE;
    size_t len;
    const char *s = term_atom_name(t, &len);
    return make ? term_atom_n(s, len, NULL) : term_atom_existing(s, len);
}

term_t term_atom_canonical(term_t t)
{
    if (term_atom_is_interned(t)) return t;
    if (!term_is_atom(t)) return TERM_NONE;
    const term__atom_entry *e = term__fatom_entry(term__box(t));
    long idx = lookup(e->name, e->len, e->hash);
    return idx >= 0 ? term__make_atom((uint32_t)idx) : term_dup(t);
}
