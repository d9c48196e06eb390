/* dist connections: the node table, reference counts, the service list to the loop thread. */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

dist_state *dist__st;

/* ================================================================ the gate */

/*
** Threads other than the loop (senders in the libnode hook, callers of the API) enter the
** distribution through a gate, so that dist_stop can close it and wait until nobody is inside
** before it frees the state. The count of those inside is spread over padded slots (one per
** thread, by first use) so that senders on different schedulers do not share a cache line; only
** the sum means anything (a process may leave on another thread than it entered on).
*/
#define GATE_SLOTS 64
static struct {
    _Atomic long n;
    char pad[64 - sizeof(long)];
} gate[GATE_SLOTS];
static atomic_bool gate_open;
static atomic_uint gate_next;
static _Thread_local int gate_slot = -1;

/* This thread's slot, given at its first use of the gate: a process that waits inside (a busy
** sender sleeping) may leave on a scheduler thread that never entered. */
static int my_slot(void)
{
    if (gate_slot < 0) gate_slot = (int)(atomic_fetch_add(&gate_next, 1) % GATE_SLOTS);
    return gate_slot;
}

dist_state *dist__enter(void)
{
    int slot = my_slot();
    atomic_fetch_add(&gate[slot].n, 1);
    if (atomic_load(&gate_open)) return dist__st;
    atomic_fetch_sub(&gate[slot].n, 1);
    return NULL;
}

void dist__leave(void)
{
    atomic_fetch_sub(&gate[my_slot()].n, 1);
}

void dist__gate_open(void)
{
    atomic_store(&gate_open, true);
}

bool dist__gate_closing(void)
{
    return !atomic_load(&gate_open);
}

/* Closes the gate and waits (up to timeout_ms, < 0: forever) until nobody is inside. */
int dist__gate_close(int64_t timeout_ms)
{
    atomic_store(&gate_open, false);
    int64_t deadline = girder__deadline_ms(timeout_ms);
    for (;;) {
        long inside = 0;
        for (size_t i = 0; i < GATE_SLOTS; i++) inside += atomic_load(&gate[i].n);
        if (inside <= 0) return 0;
        if (deadline >= 0 && girder__ms_left(deadline) == 0) return DIST_ETIMEOUT;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

/* ================================================================ connections */

size_t dist__bucket(term_t node)
{
    return (term_atom_index(node) * 2654435761u) % TAB_BUCKETS;
}

dconn *dist__conn_new(term_t node)
{
    dconn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->dq_mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    atomic_init(&c->refs, 1);
    atomic_init(&c->state, C_PENDING);
    c->node = node;
    return c;
}

/* The signals kept while a connection was pending (dropped when it goes down). */
void dist__psigs_free(psig *p)
{
    while (p) {
        psig *n = p->next;
        term_free(p->ctl);
        term_free(p->payload);
        term_free(p->sig.from);
        term_free(p->sig.to);
        term_free(p->sig.payload);
        term_free(p->sig.ref);
        free(p);
        p = n;
    }
}

/* Tells the processes waiting for c how its setup ended: 0 (up) or an error (the list is the
** caller's, taken under c->mu; freed here). */
void dist__waiters_notify(cwaiter *w, int status)
{
    while (w) {
        cwaiter *n = w->next;
        nd_send(w->pid, term_tuplev(3, dist__a.dist_connect, w->ref, term_int(status)));
        term_free(w->pid);
        free(w);
        w = n;
    }
}

void dist__conn_put(dconn *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
    dist__chunks_free(c->qhead);
    dist__psigs_free(c->phead);
    dist__waiters_notify(c->waiters, DIST_ENOCONN);
    dist__links_free(&c->links);
    dist__mons_free(&c->mons);
    dist__acache_free(&c->acache);
    if (c->rx) dist__rx_free(c->rx);
    free(c->rx);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->dq_mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* Looks node up (a reference, or NULL); with create, a missing connection is created PENDING
** and handed to the I/O thread to connect. */
dconn *dist__conn_get(term_t node, bool create)
{
    dist_state *st = dist__st;
    if (!st || (node = term_atom_interned(node, create)) == TERM_NONE) return NULL;
    pthread_mutex_lock(&st->mu);
    dconn *c = st->tab[dist__bucket(node)];
    while (c && c->node != node) c = c->tab_next;
    bool fresh = false;
    if (!c && create && !st->stopping) {
        c = dist__conn_new(node);
        if (c) {
            c->tab_next = st->tab[dist__bucket(node)];
            st->tab[dist__bucket(node)] = c;
            c->want_connect = true;
            fresh = true;
        }
    }
    if (c) atomic_fetch_add(&c->refs, 1);
    pthread_mutex_unlock(&st->mu);
    if (fresh) dist__service(c);
    return c;
}

/* Removes c from the table if it is there; true if it was (the table's reference is then the
** caller's to drop). */
bool dist__conn_unlink(dconn *c)
{
    dist_state *st = dist__st;
    bool found = false;
    pthread_mutex_lock(&st->mu);
    for (dconn **l = &st->tab[dist__bucket(c->node)]; *l; l = &(*l)->tab_next)
        if (*l == c) {
            *l = c->tab_next;
            found = true;
            break;
        }
    pthread_mutex_unlock(&st->mu);
    return found;
}

/* Puts c on the I/O thread's service list (once) and wakes it. */
void dist__service(dconn *c)
{
    dist_state *st = dist__st;
    bool wake = false;
    pthread_mutex_lock(&st->svc_mu);
    if (st->shut) { /* the loop is shutting down or gone: nothing more to ask of it */
        pthread_mutex_unlock(&st->svc_mu);
        return;
    }
    if (!c->svc_queued) {
        c->svc_queued = true;
        atomic_fetch_add(&c->refs, 1);
        c->svc_next = st->svc_head;
        wake = st->svc_head == NULL;
        st->svc_head = c;
    }
    pthread_mutex_unlock(&st->svc_mu);
    if (wake) dist__sm_wake(st->sm);
}
