/* The links and monitors that cross one connection, as typed records in two small hash tables. */
#include "core.h"

#include <stdlib.h>

/*
** Both tables chain records whose first two fields are `next` and `h` (the key's hash); a
** table grows by doubling and keeps its old buckets if it cannot (slower, still correct).
*/
typedef struct hrec {
    struct hrec *next;
    uint64_t h;
} hrec;

typedef bool (*hkey_eq)(const hrec *r, const void *key);

static hrec **bucket_of(hrec **b, size_t nb, uint64_t h)
{
    return &b[h & (nb - 1)];
}

static void grow(hrec ***bp, size_t *nbp)
{
    size_t nb = *nbp ? *nbp * 2 : 16;
    hrec **b = calloc(nb, sizeof *b);
    if (!b) return;
    for (size_t i = 0; i < *nbp; i++)
        for (hrec *e = (*bp)[i], *n; e; e = n) {
            n = e->next;
            e->next = *bucket_of(b, nb, e->h);
            *bucket_of(b, nb, e->h) = e;
        }
    free(*bp);
    *bp = b;
    *nbp = nb;
}

static hrec *find(hrec **b, size_t nb, uint64_t h, hkey_eq eq, const void *key, hrec ***link)
{
    if (!nb) return NULL;
    for (hrec **l = bucket_of(b, nb, h); *l; l = &(*l)->next)
        if ((*l)->h == h && eq(*l, key)) {
            if (link) *link = l;
            return *l;
        }
    return NULL;
}

/* Inserts r (hash set); false when there is no bucket array at all (out of memory). */
static bool insert(hrec ***bp, size_t *nbp, size_t *np, hrec *r)
{
    if (*np >= *nbp) grow(bp, nbp);
    if (!*nbp) return false;
    r->next = *bucket_of(*bp, *nbp, r->h);
    *bucket_of(*bp, *nbp, r->h) = r;
    (*np)++;
    return true;
}

static hrec *take_all(hrec ***bp, size_t *nbp, size_t *np)
{
    hrec *all = NULL;
    for (size_t i = 0; i < *nbp; i++)
        for (hrec *e = (*bp)[i], *n; e; e = n) {
            n = e->next;
            e->next = all;
            all = e;
        }
    free(*bp);
    *bp = NULL;
    *nbp = *np = 0;
    return all;
}

/* ================================================================ links */

typedef struct link_key {
    term_t local, remote;
} link_key;

static uint64_t link_hash(term_t local, term_t remote)
{
    uint64_t h = term_hash(local) * 0x9E3779B97F4A7C15ULL;
    return h ^ (term_hash(remote) + 0x632BE59BD9B4E019ULL + (h << 6) + (h >> 2));
}

static bool link_eq(const hrec *r, const void *key)
{
    const dlinkrec *l = (const dlinkrec *)r;
    const link_key *k = key;
    return term_equal(l->local, k->local) && term_equal(l->remote, k->remote);
}

bool dist__links_add(dlinks *t, term_t local, term_t remote)
{
    link_key k = {local, remote};
    uint64_t h = link_hash(local, remote);
    if (find((hrec **)t->b, t->nb, h, link_eq, &k, NULL)) return true;
    dlinkrec *r = malloc(sizeof *r);
    if (!r) return false;
    r->h = h;
    r->local = term_dup(local);
    r->remote = term_dup(remote);
    if (!insert((hrec ***)&t->b, &t->nb, &t->n, (hrec *)r)) {
        dist__link_free(r);
        return false;
    }
    return true;
}

bool dist__links_del(dlinks *t, term_t local, term_t remote)
{
    link_key k = {local, remote};
    hrec **l;
    hrec *r = find((hrec **)t->b, t->nb, link_hash(local, remote), link_eq, &k, &l);
    if (!r) return false;
    *l = r->next;
    t->n--;
    dist__link_free((dlinkrec *)r);
    return true;
}

dlinkrec *dist__links_take_all(dlinks *t)
{
    return (dlinkrec *)take_all((hrec ***)&t->b, &t->nb, &t->n);
}

void dist__link_free(dlinkrec *r)
{
    term_free(r->local);
    term_free(r->remote);
    free(r);
}

void dist__links_free(dlinks *t)
{
    for (dlinkrec *r = dist__links_take_all(t), *n; r; r = n) {
        n = r->next;
        dist__link_free(r);
    }
}

/* ================================================================ monitors */

static bool mon_eq(const hrec *r, const void *key)
{
    return term_equal(((const dmonrec *)r)->ref, *(const term_t *)key);
}

static uint64_t mon_hash(term_t ref)
{
    return term_hash(ref) * 0x9E3779B97F4A7C15ULL;
}

bool dist__mons_add(dmons *t, term_t ref, dmon_dir dir, term_t local, term_t remote, term_t name)
{
    uint64_t h = mon_hash(ref);
    if (find((hrec **)t->b, t->nb, h, mon_eq, &ref, NULL)) return true;
    dmonrec *r = malloc(sizeof *r);
    if (!r) return false;
    r->h = h;
    r->ref = term_dup(ref);
    r->dir = dir;
    r->local = term_dup(local);
    r->remote = term_dup(remote);
    r->name = term_dup(name);
    if (!insert((hrec ***)&t->b, &t->nb, &t->n, (hrec *)r)) {
        dist__mon_free(r);
        return false;
    }
    return true;
}

dmonrec *dist__mons_find(dmons *t, term_t ref)
{
    return (dmonrec *)find((hrec **)t->b, t->nb, mon_hash(ref), mon_eq, &ref, NULL);
}

dmonrec *dist__mons_take(dmons *t, term_t ref)
{
    hrec **l;
    hrec *r = find((hrec **)t->b, t->nb, mon_hash(ref), mon_eq, &ref, &l);
    if (!r) return NULL;
    *l = r->next;
    r->next = NULL;
    t->n--;
    return (dmonrec *)r;
}

dmonrec *dist__mons_take_all(dmons *t)
{
    return (dmonrec *)take_all((hrec ***)&t->b, &t->nb, &t->n);
}

void dist__mon_free(dmonrec *r)
{
    if (!r) return;
    term_free(r->ref);
    term_free(r->local);
    term_free(r->remote);
    term_free(r->name);
    free(r);
}

void dist__mons_free(dmons *t)
{
    for (dmonrec *r = dist__mons_take_all(t), *n; r; r = n) {
        n = r->next;
        dist__mon_free(r);
    }
}
