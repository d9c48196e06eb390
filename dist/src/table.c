/* A small chained hash table of term keys: the links and monitors that cross one connection. */
#include "core.h"

#include <stdlib.h>

static uint64_t key_hash(term_t a, term_t b)
{
    uint64_t h = term_hash(a) * 0x9E3779B97F4A7C15ULL;
    if (b != TERM_NONE) h ^= term_hash(b) + 0x632BE59BD9B4E019ULL + (h << 6) + (h >> 2);
    return h;
}

static bool key_eq(const dent *e, uint64_t h, term_t a, term_t b)
{
    return e->h == h && term_equal(e->a, a) &&
           (b == TERM_NONE ? e->b == TERM_NONE : (e->b != TERM_NONE && term_equal(e->b, b)));
}

static void grow(dtab *t)
{
    size_t nb = t->nb ? t->nb * 2 : 16;
    dent **b = calloc(nb, sizeof *b);
    if (!b) return; /* keep the old buckets: slower, still correct */
    for (size_t i = 0; i < t->nb; i++) {
        dent *e = t->b[i];
        while (e) {
            dent *n = e->next;
            e->next = b[e->h & (nb - 1)];
            b[e->h & (nb - 1)] = e;
            e = n;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

dent *dist__tab_find(dtab *t, term_t a, term_t b)
{
    if (!t->nb) return NULL;
    uint64_t h = key_hash(a, b);
    for (dent *e = t->b[h & (t->nb - 1)]; e; e = e->next)
        if (key_eq(e, h, a, b)) return e;
    return NULL;
}

/* Adds (a, b) -> c, dir (terms dup'ed; c consumed). With unique_ab an existing key is kept and
** c dropped. Returns false only on ENOMEM. */
bool dist__tab_add(dtab *t, term_t a, term_t b, term_t c, int dir, bool unique_ab)
{
    if (unique_ab && dist__tab_find(t, a, b)) {
        term_free(c);
        return true;
    }
    if (t->n >= t->nb) grow(t);
    if (!t->nb) {
        term_free(c);
        return false;
    }
    dent *e = malloc(sizeof *e);
    if (!e) {
        term_free(c);
        return false;
    }
    e->h = key_hash(a, b);
    e->a = term_dup(a);
    e->b = term_dup(b);
    e->c = c;
    e->dir = dir;
    e->next = t->b[e->h & (t->nb - 1)];
    t->b[e->h & (t->nb - 1)] = e;
    t->n++;
    return true;
}

/* Removes the entry for (a, b); with out, its contents move there (the caller frees them). */
bool dist__tab_del(dtab *t, term_t a, term_t b, dent *out)
{
    if (!t->nb) return false;
    uint64_t h = key_hash(a, b);
    for (dent **l = &t->b[h & (t->nb - 1)]; *l; l = &(*l)->next) {
        dent *e = *l;
        if (!key_eq(e, h, a, b)) continue;
        *l = e->next;
        t->n--;
        if (out) {
            *out = *e;
            out->next = NULL;
        } else {
            term_free(e->a);
            term_free(e->b);
            term_free(e->c);
        }
        free(e);
        return true;
    }
    return false;
}

/* Empties the table, returning its entries as a list (the caller frees them). */
dent *dist__tab_take_all(dtab *t)
{
    dent *all = NULL;
    for (size_t i = 0; i < t->nb; i++) {
        dent *e = t->b[i];
        while (e) {
            dent *n = e->next;
            e->next = all;
            all = e;
            e = n;
        }
    }
    free(t->b);
    t->b = NULL;
    t->nb = t->n = 0;
    return all;
}

void dist__tab_free(dtab *t)
{
    dent *e = dist__tab_take_all(t);
    while (e) {
        dent *n = e->next;
        term_free(e->a);
        term_free(e->b);
        term_free(e->c);
        free(e);
        e = n;
    }
}
