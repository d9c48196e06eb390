/* Erlang's total term order, equality, hashing and memory size, all without C recursion. */
#include "term_int.h"

/* Classes in Erlang's order: number < atom < reference < fun < port < pid < tuple < map
** < nil < list < bitstring. */
static int class_of(term_t t)
{
    if (term_is_small(t)) return 0;
    if (term_is_atom(t)) return 1;
    if (t == TERM_NIL) return 8;
    switch (term__box_type(t)) {
    case BOX_BIG:
    case BOX_FLOAT:
        return 0;
    case BOX_REF:
        return 2;
    case BOX_FUN:
    case BOX_EXPORT:
        return 3;
    case BOX_PORT:
        return 4;
    case BOX_PID:
        return 5;
    case BOX_TUPLE:
        return 6;
    case BOX_MAP:
        return 7;
    case BOX_CONS:
        return 9;
    case BOX_BIN:
        return 10;
    }
    return 11;
}

static int cmp_u64(uint64_t a, uint64_t b)
{
    return (a > b) - (a < b);
}

/* Orders two atom names as memcmp then length would. */
static int cmp_names(const term__atom_entry *ea, const term__atom_entry *eb)
{
    /* Names are zero-padded to 16 bytes: their first 8 bytes, read big-endian, order them
    ** as memcmp then length would, unless they tie (a name may hold a zero byte). */
    uint64_t wa, wb;
    memcpy(&wa, ea->name, 8);
    memcpy(&wb, eb->name, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    wa = __builtin_bswap64(wa);
    wb = __builtin_bswap64(wb);
#endif
    if (wa != wb) return wa < wb ? -1 : 1;
    size_t la = ea->len, lb = eb->len;
    int c = memcmp(ea->name, eb->name, la < lb ? la : lb);
    if (c) return c < 0 ? -1 : 1;
    return cmp_u64(la, lb);
}

/* Atoms order by name, UTF-8 bytes compared as unsigned (code point order), whether interned
** or foreign: an interned and a foreign atom of the same name are equal. */
static inline int cmp_atoms(term_t a, term_t b)
{
    if (a == b) return 0;
    if (TERM__UNLIKELY((a & b & 7) != 2)) /* a foreign one (tag 000) among them */
        return cmp_names(term__atom_entry_any(a), term__atom_entry_any(b));
    return cmp_names(term__atom_entry_of((uint32_t)(a >> 3)),
                     term__atom_entry_of((uint32_t)(b >> 3)));
}

/* Node order: name, then creation. */
static int cmp_node(term_t na, uint32_t ca, term_t nb, uint32_t cb)
{
    int c = cmp_atoms(na, nb);
    return c ? c : cmp_u64(ca, cb);
}

static int cmp_numbers(term_t a, term_t b, bool exact)
{
    bool fa = term_is_float(a), fb = term_is_float(b);
    if (fa && fb) {
        double x = term_float_value(a), y = term_float_value(b);
        return (x > y) - (x < y);
    }
    if (!fa && !fb) return term__cmp_int_int(a, b);
    /* Exact order (map keys, =:=) puts every integer before every float, whatever the
    ** values: erts compares the number types first there. */
    if (exact) return fa ? 1 : -1;
    return fa ? -term__cmp_int_float(b, term_float_value(a))
              : term__cmp_int_float(a, term_float_value(b));
}

/* Bit-level comparison of two bitstrings, shorter first on a common prefix. */
static int cmp_bits(term_t a, term_t b)
{
    box_bin *x = (box_bin *)term__box(a), *y = (box_bin *)term__box(b);
    uint64_t n = x->nbits < y->nbits ? x->nbits : y->nbits;
    size_t whole = (size_t)(n / 8);
    if (x->h.aux == 0 && y->h.aux == 0) {
        int c = memcmp(x->data, y->data, whole);
        if (c) return c < 0 ? -1 : 1;
    } else {
        for (size_t i = 0; i < whole; i++) {
            unsigned xa = x->h.aux, ya = y->h.aux;
            uint8_t bx = (uint8_t)((x->data[i] << xa) | (xa ? x->data[i + 1] >> (8 - xa) : 0));
            uint8_t by = (uint8_t)((y->data[i] << ya) | (ya ? y->data[i + 1] >> (8 - ya) : 0));
            if (bx != by) return bx < by ? -1 : 1;
        }
    }
    for (uint64_t bit = (uint64_t)whole * 8; bit < n; bit++) {
        uint64_t px = bit + x->h.aux, py = bit + y->h.aux;
        int vx = (x->data[px / 8] >> (7 - px % 8)) & 1, vy = (y->data[py / 8] >> (7 - py % 8)) & 1;
        if (vx != vy) return vx - vy;
    }
    return cmp_u64(x->nbits, y->nbits);
}

static int cmp_refs(const box_ref *x, const box_ref *y)
{
    int c = cmp_node(x->node, x->creation, y->node, y->creation);
    if (c) return c;
    /* Most significant word last; missing words count as zero. */
    for (int i = 4; i >= 0; i--) {
        uint32_t wx = i < x->h.aux ? x->words[i] : 0, wy = i < y->h.aux ? y->words[i] : 0;
        if (wx != wy) return wx < wy ? -1 : 1;
    }
    return 0;
}

typedef struct cmp_item {
    term_t a, b;
    bool exact;
} cmp_item;

static int push_pair(term__stack *s, term_t a, term_t b, bool exact)
{
    /* Three words per pair; the exact flag rides on the count word. */
    if (term__stack_push(s, a) || term__stack_push(s, b) || term__stack_push(s, exact))
        return TERM_ENOMEM;
    return 0;
}

/*
** Compares one pair that is not a container, or for containers compares the shape and
** pushes the children in reverse so the first child is compared next.
** Returns a non-zero order, 0 when equal so far, or 2 on ENOMEM (caller aborts).
*/
static int step(term__stack *s, term_t a, term_t b, bool exact)
{
    if (a == b) return 0;
    int ka = class_of(a), kb = class_of(b);
    if (ka != kb) return ka < kb ? -1 : 1;
    switch (ka) {
    case 0:
        return cmp_numbers(a, b, exact);
    case 1:
        return cmp_atoms(a, b);
    case 2:
        return cmp_refs((box_ref *)term__box(a), (box_ref *)term__box(b));
    case 3: {
        int ta = term__box_type(a), tb = term__box_type(b);
        if (ta != tb) return ta == BOX_FUN ? -1 : 1;
        if (ta == BOX_EXPORT) {
            box_export *x = (box_export *)term__box(a), *y = (box_export *)term__box(b);
            int c = cmp_atoms(x->module, y->module);
            if (!c) c = cmp_atoms(x->function, y->function);
            return c ? c : cmp_u64(x->arity, y->arity);
        }
        box_fun *x = (box_fun *)term__box(a), *y = (box_fun *)term__box(b);
        int c = cmp_atoms(x->module, y->module);
        if (!c) c = term__cmp_int_int(x->old_index, y->old_index);
        if (!c) c = term__cmp_int_int(x->old_uniq, y->old_uniq);
        if (!c) c = cmp_u64(x->h.n, y->h.n);
        if (c) return c;
        for (size_t i = x->h.n; i-- > 0;)
            if (push_pair(s, x->free[i], y->free[i], exact)) return 2;
        return 0;
    }
    case 4: {
        box_port *x = (box_port *)term__box(a), *y = (box_port *)term__box(b);
        int c = cmp_node(x->node, x->creation, y->node, y->creation);
        return c ? c : cmp_u64(x->id, y->id);
    }
    case 5: {
        box_pid *x = (box_pid *)term__box(a), *y = (box_pid *)term__box(b);
        int c = cmp_u64(x->serial, y->serial);
        if (!c) c = cmp_u64(x->id, y->id);
        return c ? c : cmp_node(x->node, x->creation, y->node, y->creation);
    }
    case 6: {
        box_tuple *x = (box_tuple *)term__box(a), *y = (box_tuple *)term__box(b);
        if (x->h.n != y->h.n) return x->h.n < y->h.n ? -1 : 1;
        for (size_t i = x->h.n; i-- > 0;)
            if (push_pair(s, x->e[i], y->e[i], exact)) return 2;
        return 0;
    }
    case 7: {
        /* Size, then keys in map-key order (exactly), then values in that order. */
        box_map *x = (box_map *)term__box(a), *y = (box_map *)term__box(b);
        size_t n = x->h.n;
        if (n != y->h.n) return n < y->h.n ? -1 : 1;
        for (size_t i = n; i-- > 0;)
            if (push_pair(s, x->kv[n + i], y->kv[n + i], exact)) return 2;
        for (size_t i = n; i-- > 0;)
            if (push_pair(s, x->kv[i], y->kv[i], true)) return 2;
        return 0;
    }
    case 9: {
        box_cons *x = (box_cons *)term__box(a), *y = (box_cons *)term__box(b);
        if (push_pair(s, x->tl, y->tl, exact) || push_pair(s, x->hd, y->hd, exact)) return 2;
        return 0;
    }
    case 10:
        return cmp_bits(a, b);
    }
    return 0;
}

static int compare(term_t a, term_t b, bool exact)
{
    if (a == b) return 0;
    /* Fast paths that need no stack. */
    if (term_is_small(a) && term_is_small(b)) return term__cmp_int_int(a, b);
    if (term_atom_is_interned(a) && term_atom_is_interned(b)) /* foreign: the general path */
        return cmp_names(term__atom_entry_of((uint32_t)(a >> 3)),
                         term__atom_entry_of((uint32_t)(b >> 3)));
    term__stack s;
    term__stack_init(&s);
    int c = step(&s, a, b, exact);
    while (c == 0 && s.n > 0) {
        bool ex = s.v[--s.n] != 0;
        term_t y = s.v[--s.n], x = s.v[--s.n];
        c = step(&s, x, y, ex);
    }
    term__stack_free(&s);
    /* On ENOMEM (c == 2) the order is undefined; we answer "greater" and never crash. */
    return c > 0 ? 1 : c;
}

int term_compare(term_t a, term_t b)
{
    return compare(a, b, false);
}

int term_compare_exact(term_t a, term_t b)
{
    return compare(a, b, true);
}

bool term_equal(term_t a, term_t b)
{
    return compare(a, b, true) == 0;
}

bool term_equal_arith(term_t a, term_t b)
{
    return compare(a, b, false) == 0;
}

/* ==================================================================== hashing */

static inline uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
    return h * 0xFF51AFD7ED558CCDULL;
}

static uint64_t hash_bytes(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ULL;
    return h;
}

/* An atom by its name, through the hash the atom table keeps for it (computed once, when the
** name entered the table): interned and foreign atoms of one name hash alike. */
static inline uint64_t hash_atom(uint64_t h, term_t a)
{
    return mix(mix(h, 3), term__atom_entry_any(a)->hash);
}

/* A reference's creation and words (not its node), after its type, as the walk below and the
** stackless fast path both take it. */
static inline uint64_t hash_ref(uint64_t h, const box_ref *r)
{
    int n = r->h.aux;
    while (n > 1 && r->words[n - 1] == 0) n--;
    h = mix(h, r->creation);
    for (int i = 0; i < n; i++) h = mix(h, r->words[i]);
    return h;
}

/* Hash consistent with term_equal(): equal terms hash equal (-0.0 and 0.0, refs padded
** with zero words, bitstrings at any bit offset). */
uint64_t term_hash(term_t t)
{
    uint64_t h = 0xCBF29CE484222325ULL;
    /* The keys of monitor, alias and connection tables (a reference, a pid, an atom) need no
    ** stack; the values are the ones the walk below gives. */
    if (term_is_atom(t)) return hash_atom(h, t);
    if (term_is_boxed(t)) {
        term_box *b = term__box(t);
        if (b->type == BOX_REF && term_is_atom(((box_ref *)b)->node))
            return hash_atom(hash_ref(mix(h, BOX_REF), (box_ref *)b), ((box_ref *)b)->node);
        if (b->type == BOX_PID && term_is_atom(((box_pid *)b)->node)) {
            box_pid *p = (box_pid *)b;
            h = mix(mix(mix(mix(h, BOX_PID), p->id), p->serial), p->creation);
            return hash_atom(h, p->node);
        }
    }
    term__stack s;
    term__stack_init(&s);
    if (term__stack_push(&s, t)) return 0;
    while (s.n > 0) {
        term_t x = s.v[--s.n];
        if (term_is_atom(x)) {
            h = hash_atom(h, x);
            continue;
        }
        if (!term_is_boxed(x)) {
            h = mix(h, x);
            continue;
        }
        term_box *b = term__box(x);
        h = mix(h, b->type);
        switch (b->type) {
        case BOX_BIG: {
            box_big *g = (box_big *)b;
            h = mix(h, b->flags & BOXF_NEG);
            for (uint32_t i = 0; i < b->n; i++) h = mix(h, g->limbs[i]);
            break;
        }
        case BOX_FLOAT: {
            double d = ((box_float *)b)->d;
            if (d == 0) d = 0; /* -0.0 =:= 0.0 in OTP 25 */
            uint64_t bits;
            memcpy(&bits, &d, 8);
            h = mix(h, bits);
            break;
        }
        case BOX_TUPLE:
            h = mix(h, b->n);
            for (uint32_t i = 0; i < b->n; i++)
                if (term__stack_push(&s, ((box_tuple *)b)->e[i])) goto oom;
            break;
        case BOX_CONS:
            if (term__stack_push(&s, ((box_cons *)b)->tl) ||
                term__stack_push(&s, ((box_cons *)b)->hd))
                goto oom;
            break;
        case BOX_MAP:
            h = mix(h, b->n);
            for (size_t i = 0; i < 2 * (size_t)b->n; i++)
                if (term__stack_push(&s, ((box_map *)b)->kv[i])) goto oom;
            break;
        case BOX_BIN: {
            size_t n = term_binary_size(x);
            uint8_t tmp[256];
            h = mix(h, ((box_bin *)b)->nbits);
            const uint8_t *d = term_binary_data(x);
            if (d && ((box_bin *)b)->nbits % 8 == 0) {
                h = hash_bytes(h, d, n);
            } else if (n <= sizeof tmp) {
                term_bitstring_copy(x, tmp);
                h = hash_bytes(h, tmp, n);
            } else {
                uint8_t *big = term__alloc(n);
                if (!big) goto oom;
                term_bitstring_copy(x, big);
                h = hash_bytes(h, big, n);
                term__dealloc(big, n);
            }
            break;
        }
        case BOX_PID: {
            box_pid *p = (box_pid *)b;
            h = mix(mix(mix(h, p->id), p->serial), p->creation);
            if (term__stack_push(&s, p->node)) goto oom;
            break;
        }
        case BOX_PORT: {
            box_port *p = (box_port *)b;
            h = mix(mix(h, p->id), p->creation);
            if (term__stack_push(&s, p->node)) goto oom;
            break;
        }
        case BOX_REF:
            h = hash_ref(h, (box_ref *)b);
            if (term__stack_push(&s, ((box_ref *)b)->node)) goto oom;
            break;
        case BOX_EXPORT: {
            box_export *e = (box_export *)b;
            h = mix(h, e->arity);
            if (term__stack_push(&s, e->module) || term__stack_push(&s, e->function)) goto oom;
            break;
        }
        case BOX_FUN: {
            box_fun *f = (box_fun *)b;
            /* only what term_compare() looks at: a fun built with another index or arity
            ** but the same module, old index and old uniq is equal, so must hash alike */
            h = mix(h, b->n);
            if (term__stack_push(&s, f->module) || term__stack_push(&s, f->old_index) ||
                term__stack_push(&s, f->old_uniq))
                goto oom;
            for (uint32_t i = 0; i < b->n; i++)
                if (term__stack_push(&s, f->free[i])) goto oom;
            break;
        }
        }
    }
    term__stack_free(&s);
    return h;
oom:
    term__stack_free(&s);
    return h;
}

/* ==================================================================== memory */

size_t term_memory(term_t t)
{
    size_t total = 0;
    term__stack s;
    term__stack_init(&s);
    if (term__stack_push(&s, t)) return 0;
    while (s.n > 0) {
        term_t x = s.v[--s.n];
        if (!term_is_boxed(x)) continue;
        term_box *b = term__box(x);
        total += term__box_size(b);
        int rc = 0;
        switch (b->type) {
        case BOX_TUPLE:
            for (uint32_t i = 0; i < b->n && !rc; i++)
                rc = term__stack_push(&s, ((box_tuple *)b)->e[i]);
            break;
        case BOX_CONS:
            rc = term__stack_push(&s, ((box_cons *)b)->hd);
            if (!rc) rc = term__stack_push(&s, ((box_cons *)b)->tl);
            break;
        case BOX_MAP:
            for (size_t i = 0; i < 2 * (size_t)b->n && !rc; i++)
                rc = term__stack_push(&s, ((box_map *)b)->kv[i]);
            break;
        case BOX_BIN: {
            term_t o = ((box_bin *)b)->owner;
            if (o != TERM_NONE) {
                term_box *ob = term__box(o);
                total += ob->type == BOX_RAW ? ((box_raw *)ob)->size : term__box_size(ob);
            }
            break;
        }
        case BOX_FUN:
            rc = term__stack_push(&s, ((box_fun *)b)->module);
            for (uint32_t i = 0; i < b->n && !rc; i++)
                rc = term__stack_push(&s, ((box_fun *)b)->free[i]);
            break;
        /* atoms inside are counted when they are foreign (boxes of their own) */
        case BOX_PID:
            rc = term__stack_push(&s, ((box_pid *)b)->node);
            break;
        case BOX_PORT:
            rc = term__stack_push(&s, ((box_port *)b)->node);
            break;
        case BOX_REF:
            rc = term__stack_push(&s, ((box_ref *)b)->node);
            break;
        case BOX_EXPORT:
            rc = term__stack_push(&s, ((box_export *)b)->module);
            if (!rc) rc = term__stack_push(&s, ((box_export *)b)->function);
            break;
        }
        if (rc) break;
    }
    term__stack_free(&s);
    return total;
}
