/* dist public API for connections: connect (waiting as a process inside one), nodes, stats. */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ================================================================ public API */

typedef struct cwait_ud {
    term_t ref;
} cwait_ud;

static bool is_connect_answer(term_t m, void *ud)
{
    return term_is_tuple(m) && term_tuple_arity(m) == 3 &&
           term_tuple_elem(m, 0) == dist__a.dist_connect &&
           term_equal(term_tuple_elem(m, 1), ((cwait_ud *)ud)->ref);
}

/*
** Inside a process, waits as a process (a receive with a timeout), so the other processes of its
** scheduler keep running: the connection answers with a message when it comes up or fails.
*/
static int connect_wait_process(dconn *c, int64_t timeout_ms)
{
    cwaiter *w = calloc(1, sizeof *w);
    if (!w) return DIST_ENOMEM;
    w->pid = term_dup(nd_self());
    w->ref = nd_make_ref();
    cwait_ud ud = {term_dup(w->ref)};
    pthread_mutex_lock(&c->mu);
    int state = atomic_load(&c->state);
    if (state == C_PENDING) {
        w->next = c->waiters;
        c->waiters = w;
    }
    pthread_mutex_unlock(&c->mu);
    if (state != C_PENDING) {
        term_free(w->pid);
        term_free(w->ref);
        free(w);
        term_free(ud.ref);
        return state == C_UP ? 0 : c->down_err ? c->down_err : DIST_ENOCONN;
    }
    term_t m = TERM_NONE;
    int rc = nd_receive_if(is_connect_answer, &ud, timeout_ms, &m);
    if (rc < 0) {
        /* timed out: withdraw, unless the answer is already on its way */
        bool withdrawn = false;
        pthread_mutex_lock(&c->mu);
        for (cwaiter **l = &c->waiters; *l; l = &(*l)->next)
            if (*l == w) {
                *l = w->next;
                withdrawn = true;
                break;
            }
        pthread_mutex_unlock(&c->mu);
        if (withdrawn) {
            term_free(w->pid);
            term_free(w->ref);
            free(w);
            term_free(ud.ref);
            return DIST_ETIMEOUT;
        }
        rc = nd_receive_if(is_connect_answer, &ud, ND_INFINITY, &m); /* sent right after */
    }
    term_free(ud.ref);
    int64_t status = DIST_ENOCONN;
    if (rc < 0 || term_get_int64(term_tuple_elem(m, 2), &status) != 0) status = DIST_ENOCONN;
    term_free(m);
    return (int)status;
}

/* Outside a process, the calling thread blocks (up to the timeout). */
static int connect_wait_thread(dconn *c, int64_t timeout_ms)
{
    struct timespec dl;
    girder__deadline_ts(CLOCK_REALTIME, timeout_ms, &dl);
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    while (atomic_load(&c->state) == C_PENDING) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&c->cv, &c->mu);
        } else if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) != 0) {
            rc = DIST_ETIMEOUT;
            break;
        }
    }
    if (!rc && atomic_load(&c->state) != C_UP) rc = c->down_err ? c->down_err : DIST_ENOCONN;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int dist_connect(term_t node, int64_t timeout_ms)
{
    dist_state *st = dist__enter();
    if (!st) return DIST_ESTATE;
    dconn *c = NULL;
    int rc0 = !term_is_atom(node) ? DIST_EINVAL : node == st->node ? 0 : 1;
    if (rc0 == 1) c = dist__conn_get(node, true);
    dist__leave(); /* the wait holds only the connection: dist_stop must not wait for it */
    if (rc0 != 1) return rc0;
    if (!c) return DIST_ENOCONN;
    int rc =
        nd_in_process() ? connect_wait_process(c, timeout_ms) : connect_wait_thread(c, timeout_ms);
    dist__conn_put(c);
    return rc;
}

int dist_disconnect(term_t node)
{
    if (!dist__enter()) return DIST_ESTATE;
    dconn *c = dist__conn_get(node, false);
    dist__leave();
    if (!c) return DIST_ENOCONN;
    pthread_mutex_lock(&c->mu);
    c->want_close = true;
    c->close_why = "disconnected locally";
    pthread_mutex_unlock(&c->mu);
    dist__service(c);
    dist__conn_put(c);
    return 0;
}

term_t dist_nodes(unsigned which)
{
    dist_state *st = dist__enter();
    term_t l = TERM_NIL;
    if (!st) return l;
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < TAB_BUCKETS; i++)
        for (dconn *c = st->tab[i]; c; c = c->tab_next) {
            if (atomic_load(&c->state) != C_UP) continue;
            unsigned kind = c->published ? DIST_VISIBLE : DIST_HIDDEN;
            if (which & kind) l = term_cons(c->node, l);
        }
    pthread_mutex_unlock(&st->mu);
    dist__leave();
    return l;
}

void dist_get_stats(dist_stats *o)
{
    dist_state *st = dist__enter();
    memset(o, 0, sizeof *o);
    if (!st) return;
    dist_sm_stats ss;
    dist__sm_stats(st->sm, &ss);
    o->msgs_in = atomic_load(&st->st_msgs_in);
    o->msgs_out = atomic_load(&st->st_msgs_out);
    o->bytes_in = ss.bytes_in;
    o->bytes_out = ss.bytes_out + atomic_load(&st->st_bytes_direct);
    o->ticks_in = ss.ticks_in;
    o->ticks_out = ss.ticks_out;
    o->conns_up = atomic_load(&st->st_up);
    o->conns_down = atomic_load(&st->st_down);
    o->handshakes_failed = ss.handshakes_failed;
    o->protocol_errors = ss.protocol_errors;
    o->tls_failures = ss.layer_failures;
    if (st->tr && st->tr->ops->reads)
        st->tr->ops->reads(st->tr, &o->reads_loop_thread, &o->reads_schedulers);
    dist__leave();
}

size_t dist_connections(dist_conn_info *out, size_t max)
{
    dist_state *st = dist__enter();
    if (!st) return 0;
    /* references taken under the table's lock; each connection's own lock is taken after it
    ** (never both at once) */
    dconn **cs = max ? calloc(max, sizeof *cs) : NULL;
    size_t n = 0, k = 0;
    pthread_mutex_lock(&st->mu);
    for (size_t b = 0; b < TAB_BUCKETS; b++)
        for (dconn *c = st->tab[b]; c; c = c->tab_next, n++)
            if (cs && k < max) {
                atomic_fetch_add(&c->refs, 1);
                cs[k++] = c;
            }
    pthread_mutex_unlock(&st->mu);
    for (size_t i = 0; i < k; i++) {
        dconn *c = cs[i];
        dist_conn_info *o = &out[i];
        memset(o, 0, sizeof *o);
        const char *name = dist__aname(c->node);
        snprintf(o->node, sizeof o->node, "%s", name ? name : "");
        o->up = atomic_load(&c->state) == C_UP;
        o->msgs_in = atomic_load_explicit(&c->m_msgs_in, memory_order_relaxed);
        o->msgs_out = atomic_load_explicit(&c->m_msgs_out, memory_order_relaxed);
        o->bytes_in = atomic_load_explicit(&c->m_bytes_in, memory_order_relaxed);
        o->bytes_out = atomic_load_explicit(&c->m_bytes_out, memory_order_relaxed);
        o->busy_events = atomic_load_explicit(&c->m_busy, memory_order_relaxed);
        o->read_pauses = atomic_load_explicit(&c->m_read_pauses, memory_order_relaxed);
        pthread_mutex_lock(&c->mu);
        o->visible = c->published;
        o->creation = c->creation;
        o->out_queue = atomic_load_explicit(&c->qbytes, memory_order_relaxed);
        pthread_mutex_unlock(&c->mu);
        dist__conn_put(c);
    }
    free(cs);
    dist__leave();
    return max && !cs ? 0 : n;
}

uint16_t dist_listen_port(void)
{
    dist_state *st = dist__enter();
    uint16_t port = st ? st->port : 0;
    if (st) dist__leave();
    return port;
}
