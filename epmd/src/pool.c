/* Girder epmd connection pool: bounded slots, per-peer queues, and who gives way when full. */
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "epmd_int.h"

int epmd__pool_init(epmd__pool *p, size_t cap, uint64_t seed)
{
    memset(p, 0, sizeof *p);
    p->cap = cap;
    p->seed = seed | 1;
    size_t want = cap < 16 ? 16 : cap > 65536 ? 65536 : cap;
    p->nbuckets = 16;
    while (p->nbuckets < want) p->nbuckets *= 2;
    p->buckets = calloc(p->nbuckets, sizeof *p->buckets);
    return p->buckets ? 0 : EPMD_ENOMEM;
}

void epmd__pool_free(epmd__pool *p)
{
    for (size_t i = 0; i < p->nheap; i++) free(p->heap[i]);
    free(p->heap);
    free(p->buckets);
    memset(p, 0, sizeof *p);
}

/* A keyed mix of the address, so that an attacker who picks addresses cannot pick collisions. */
static size_t bucket_of(const epmd__pool *p, const epmd__peer_key *k)
{
    uint64_t a, b;
    memcpy(&a, k->b, 8);
    memcpy(&b, k->b + 8, 8);
    uint64_t h = (a ^ p->seed) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    h = (h ^ b ^ (p->seed >> 7)) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return (size_t)h & (p->nbuckets - 1);
}

/* ---- a max-heap of peers by their count of evictable slots ---- */

static void heap_set(epmd__pool *p, size_t i, epmd__pool_peer *peer)
{
    p->heap[i] = peer;
    peer->heap_ix = i;
}

static void sift_up(epmd__pool *p, size_t i)
{
    epmd__pool_peer *x = p->heap[i];
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (p->heap[up]->evictable >= x->evictable) break;
        heap_set(p, i, p->heap[up]);
        i = up;
    }
    heap_set(p, i, x);
}

static void sift_down(epmd__pool *p, size_t i)
{
    epmd__pool_peer *x = p->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= p->nheap) break;
        if (c + 1 < p->nheap && p->heap[c + 1]->evictable > p->heap[c]->evictable) c++;
        if (p->heap[c]->evictable <= x->evictable) break;
        heap_set(p, i, p->heap[c]);
        i = c;
    }
    heap_set(p, i, x);
}

/* The peer of key k, created (in the table and the heap) when new; NULL when out of memory. */
static epmd__pool_peer *peer_get(epmd__pool *p, const epmd__peer_key *k)
{
    size_t b = bucket_of(p, k);
    for (epmd__pool_peer *x = p->buckets[b]; x; x = x->hnext)
        if (memcmp(&x->key, k, sizeof *k) == 0) return x;
    if (p->nheap == p->heap_cap) {
        size_t cap = p->heap_cap ? p->heap_cap * 2 : 16;
        epmd__pool_peer **h = realloc(p->heap, cap * sizeof *h);
        if (!h) return NULL;
        p->heap = h;
        p->heap_cap = cap;
    }
    epmd__pool_peer *x = calloc(1, sizeof *x);
    if (!x) return NULL;
    x->key = *k;
    x->hnext = p->buckets[b];
    p->buckets[b] = x;
    heap_set(p, p->nheap++, x);
    sift_up(p, x->heap_ix); /* no-op: it holds nothing yet */
    return x;
}

/* Drops a peer that holds no slot any more. */
static void peer_put(epmd__pool *p, epmd__pool_peer *x)
{
    if (x->evictable || x->held) return;
    epmd__pool_peer **link = &p->buckets[bucket_of(p, &x->key)];
    while (*link != x) link = &(*link)->hnext;
    *link = x->hnext;
    size_t i = x->heap_ix;
    epmd__pool_peer *last = p->heap[--p->nheap];
    if (last != x) {
        heap_set(p, i, last);
        sift_up(p, i);
        sift_down(p, last->heap_ix);
    }
    free(x);
}

static void queue_remove(epmd__pool *p, epmd__slot *s)
{
    epmd__pool_peer *x = s->peer;
    if (s->older)
        s->older->newer = s->newer;
    else
        x->oldest = s->newer;
    if (s->newer)
        s->newer->older = s->older;
    else
        x->newest = s->older;
    s->older = s->newer = NULL;
    x->evictable--;
    p->evictable--;
    sift_down(p, x->heap_ix);
}

int epmd__pool_enter(epmd__pool *p, epmd__slot *s, const epmd__peer_key *k)
{
    if (p->used >= p->cap) return GIRDER_ENOSPC;
    epmd__pool_peer *x = peer_get(p, k);
    if (!x) return EPMD_ENOMEM;
    s->peer = x;
    s->held = 0;
    s->newer = NULL;
    s->older = x->newest;
    if (x->newest)
        x->newest->newer = s;
    else
        x->oldest = s;
    x->newest = s;
    x->evictable++;
    p->evictable++;
    p->used++;
    sift_up(p, x->heap_ix);
    return 0;
}

void epmd__pool_hold(epmd__pool *p, epmd__slot *s)
{
    if (!s->peer || s->held) return;
    queue_remove(p, s);
    s->held = 1;
    s->peer->held++;
}

void epmd__pool_leave(epmd__pool *p, epmd__slot *s)
{
    epmd__pool_peer *x = s->peer;
    if (!x) return;
    if (s->held)
        x->held--;
    else
        queue_remove(p, s);
    s->peer = NULL;
    s->held = 0;
    p->used--;
    peer_put(p, x);
}

epmd__slot *epmd__pool_victim(const epmd__pool *p)
{
    if (p->nheap == 0 || p->heap[0]->evictable == 0) return NULL;
    return p->heap[0]->oldest;
}

size_t epmd__pool_peer_evictable(const epmd__pool *p, const epmd__peer_key *k)
{
    for (epmd__pool_peer *x = p->buckets[bucket_of(p, k)]; x; x = x->hnext)
        if (memcmp(&x->key, k, sizeof *k) == 0) return x->evictable;
    return 0;
}

int epmd__peer_key_of(const struct sockaddr *sa, epmd__peer_key *k)
{
    memset(k, 0, sizeof *k);
    if (sa->sa_family == AF_INET) {
        k->b[10] = k->b[11] = 0xff;
        memcpy(k->b + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family != AF_INET6) return EPMD_EINVAL;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a))
        memcpy(k->b, a->s6_addr, 16);
    else
        memcpy(k->b, a->s6_addr, 8);
    return 0;
}
