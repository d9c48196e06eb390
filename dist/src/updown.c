/* dist node-up and node-down (the one place signals turn into noconnection), node monitors. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

/* ================================================================ up and down */

/* The handshake is over (loop thread): encode what waited, then let senders write directly. */
void dist__conn_up(dconn *c, uint64_t flags, uint32_t creation, dist_tr_stream *stream)
{
    pthread_mutex_lock(&c->mu);
    c->direct = stream;
    atomic_store(&c->flags, flags);
    c->creation = creation;
    c->published = (flags & DFLAG_PUBLISHED) != 0;
    psig *p = c->phead;
    c->phead = c->ptail = NULL;
    atomic_store_explicit(&c->pbytes, 0,
                          memory_order_relaxed); /* from here they count in the queue's bytes */
    etf_buf b = {0};
    for (psig *q = p; q; q = q->next) {
        term_t ctl = q->ctl, pl = q->payload;
        bool built = false;
        if (ctl == TERM_NONE) {
            if (!dist__build_ctl(&q->sig, flags, &ctl, &pl) || ctl == TERM_NONE) continue;
            built = true;
        }
        if (dist__encode(c, ctl, pl, flags, &b) == 0 &&
            (!(flags & DFLAG_DIST_HDR_ATOM_CACHE) || dist__acache_apply(&c->acache, &b) == 0))
            dist__q_push(c, &b, 0);
        b.len = 0;
        if (built) {
            term_free(ctl);
            term_free(pl);
        }
    }
    etf_buf_free(&b);
    atomic_store(&c->state, C_UP);
    c->wpending = true;
    cwaiter *w = c->waiters;
    c->waiters = NULL;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    dist__psigs_free(p);
    dist__waiters_notify(w, 0);
    atomic_fetch_add(&dist__st->st_up, 1);
    dist__log(DIST_LOG_NOTICE, "event=nodeup node=%s type=%s flags=0x%llx", dist__aname(c->node),
              c->published ? "normal" : "hidden", (unsigned long long)flags);
    dist__nodemon_notify(c->node, 1);
}

/*
** Node-down, the one place (loop thread): the connection leaves the table and turns DOWN (later
** senders reconnect or get noconnection), then every link over it breaks with noconnection,
** every monitor fires DOWN noconnection, monitors held by the peer are dropped, pending spawn
** requests fail, and node monitors get {nodedown, Node}.
*/
void dist__node_down(dconn *c, const char *why, int err)
{
    bool in_tab = dist__conn_unlink(c);
    pthread_mutex_lock(&c->mu);
    int was = atomic_exchange(&c->state, C_DOWN);
    if (was != C_DOWN) c->down_err = err ? err : DIST_ENOCONN;
    c->direct = NULL;
    psig *pend = c->phead;
    c->phead = c->ptail = NULL;
    atomic_store_explicit(&c->pbytes, 0, memory_order_relaxed);
    size_t qb;
    dchunk *q = dist__take_queue(c, &qb);
    cwaiter *w = c->waiters;
    c->waiters = NULL;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    dist__waiters_notify(w, c->down_err);
    dist__chunks_free(q);
    dist__psigs_free(pend);
    if (was != C_DOWN && !dist__rx_defer_down(c, was, why)) dist__node_down_finish(c, was, why);
    if (in_tab) dist__conn_put(c);
}

/* TESTING ONLY: true for one in cfg.sabotage_down_one_in noconnection DOWNs, which the caller
** then drops (girderd --sabotage drop-down=N; the chaos checker must notice). */
static bool sabotage_drop_down(dconn *c)
{
    unsigned n = dist__st->cfg.sabotage_down_one_in;
    if (!n || atomic_fetch_add(&dist__st->sabotage_downs, 1) % n != n - 1) return false;
    dist__log(DIST_LOG_WARNING, "event=sabotage_dropped_down node=%s", dist__aname(c->node));
    return true;
}

/*
** The signals of a node-down: every link over c breaks with noconnection, every monitor fires
** DOWN noconnection, monitors the peer held are dropped, pending spawn requests fail, node
** monitors hear of it. Runs after every message received before the connection went (on the
** loop, or last in c's decode queue).
*/
void dist__node_down_finish(dconn *c, int was, const char *why)
{
    pthread_mutex_lock(&c->mu);
    dlinkrec *links = dist__links_take_all(&c->links);
    dmonrec *mons = dist__mons_take_all(&c->mons);
    pthread_mutex_unlock(&c->mu);
    if (c->rx) {
        dist__rx_free(c->rx);
        free(c->rx);
        c->rx = NULL;
    }
    size_t nl = 0, nm = 0;
    while (links) {
        dlinkrec *r = links;
        links = r->next;
        nd_signal s = {ND_SIG_EXIT, r->remote, r->local, dist__a.noconnection, TERM_NONE, 0};
        r->remote = TERM_NONE; /* the signal takes the record's reference */
        nd_dist_deliver_take(&s);
        dist__link_free(r);
        nl++;
    }
    while (mons) {
        dmonrec *r = mons;
        mons = r->next;
        if (r->dir == MON_OUT) {
            nd_signal s = {ND_SIG_DOWN, r->remote, r->local, dist__a.noconnection, r->ref, 0};
            if (!sabotage_drop_down(c)) { /* the signal takes the record's references */
                r->remote = r->ref = TERM_NONE;
                nd_dist_deliver_take(&s);
            }
        } else if (r->dir == MON_IN) {
            nd_signal s = {ND_SIG_DEMONITOR, r->remote, r->local, TERM_NONE, r->ref, 0};
            nd_dist_deliver(&s);
        } else {
            nd_send(r->local, term_tuplev(4, dist__a.spawn_reply, term_dup(r->ref), dist__a.error,
                                          dist__a.noconnection));
        }
        dist__mon_free(r);
        nm++;
    }
    if (was == C_UP) {
        atomic_fetch_add(&dist__st->st_down, 1);
        dist__log(DIST_LOG_NOTICE, "event=nodedown node=%s reason=\"%s\" links=%zu monitors=%zu",
                  dist__aname(c->node), why, nl, nm);
    } else {
        dist__log(DIST_LOG_WARNING, "event=connect_failed node=%s reason=\"%s\"",
                  dist__aname(c->node), why);
    }
    dist__nodemon_notify(c->node, was == C_UP ? 0 : -1);
}

/* ================================================================ node monitors */

/* ev: 1 node up, 0 down after being up, -1 a connection attempt failed (monitor_node only). */
void dist__nodemon_notify(term_t node, int ev)
{
    bool up = ev == 1;
    dist_state *st = dist__st;
    term_t send_to[64];
    size_t n = 0;
    nodemon *fire = NULL;
    pthread_mutex_lock(&st->mu);
    for (nodemon **l = &st->nodemons; *l;) {
        nodemon *m = *l;
        if (m->node == TERM_NONE) {
            if (ev >= 0 && n < 64) send_to[n++] = term_dup(m->pid);
            l = &m->next;
        } else if (!up && m->node == node) {
            *l = m->next; /* one-shot */
            m->next = fire;
            fire = m;
        } else {
            l = &m->next;
        }
    }
    pthread_mutex_unlock(&st->mu);
    for (size_t i = 0; i < n; i++) {
        nd_send(send_to[i], term_tuplev(2, up ? dist__a.nodeup : dist__a.nodedown, node));
        term_free(send_to[i]);
    }
    while (fire) {
        nodemon *m = fire;
        fire = m->next;
        nd_send(m->pid, term_tuplev(2, dist__a.nodedown, node));
        term_free(m->pid);
        free(m);
    }
}

/* Adds a node monitor for pid (node TERM_NONE: all nodes); lock not held. */
static int nodemon_add(dist_state *st, term_t pid, term_t node)
{
    nodemon *m = calloc(1, sizeof *m);
    if (!m) return DIST_ENOMEM;
    m->pid = term_dup(pid);
    m->node = node;
    pthread_mutex_lock(&st->mu);
    m->next = st->nodemons;
    st->nodemons = m;
    pthread_mutex_unlock(&st->mu);
    return 0;
}

/* Removes one node monitor of pid on node (TERM_NONE: the all-nodes kind); lock not held. */
static void nodemon_remove(dist_state *st, term_t pid, term_t node)
{
    pthread_mutex_lock(&st->mu);
    for (nodemon **l = &st->nodemons; *l; l = &(*l)->next)
        if ((*l)->node == node && term_equal((*l)->pid, pid)) {
            nodemon *m = *l;
            *l = m->next;
            term_free(m->pid);
            free(m);
            break;
        }
    pthread_mutex_unlock(&st->mu);
}

static int monitor_node_inside(term_t node, bool on)
{
    dist_state *st = dist__st;
    term_t self = nd_self();
    if (!st) return DIST_ESTATE;
    if (self == TERM_NONE) return DIST_ENOTPROC;
    if (!term_is_atom(node)) return DIST_EINVAL;
    if ((node = term_atom_interned(node, true)) == TERM_NONE) return DIST_ENOMEM;
    if (!on) {
        nodemon_remove(st, self, node);
        return 0;
    }
    if (node == st->node) return 0;
    int rc = nodemon_add(st, self, node);
    if (rc) return rc;
    /* as Erlang: monitoring a node that is not connected tries to connect */
    dconn *c = dist__conn_get(node, true);
    if (!c) {
        dist__nodemon_notify(node, -1);
        return 0;
    }
    dist__conn_put(c);
    return 0;
}

static int monitor_nodes_inside(bool on)
{
    dist_state *st = dist__st;
    term_t self = nd_self();
    if (!st) return DIST_ESTATE;
    if (self == TERM_NONE) return DIST_ENOTPROC;
    if (!on) {
        nodemon_remove(st, self, TERM_NONE);
        return 0;
    }
    return nodemon_add(st, self, TERM_NONE);
}

int dist_monitor_node(term_t node, bool on)
{
    if (!dist__enter()) return DIST_ESTATE;
    int rc = monitor_node_inside(node, on);
    dist__leave();
    return rc;
}

int dist_monitor_nodes(bool on)
{
    if (!dist__enter()) return DIST_ESTATE;
    int rc = monitor_nodes_inside(on);
    dist__leave();
    return rc;
}
