/* dist as the owner of the connection state machine: its upcalls, the loop's service list. */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ the machine's owner */

static dist_peer *own_peer_get(void *ud, term_t node, bool create)
{
    (void)ud;
    dist_state *st = dist__st;
    if ((node = term_atom_interned(node, create)) == TERM_NONE) return NULL;
    pthread_mutex_lock(&st->mu);
    dconn *c = st->tab[dist__bucket(node)];
    while (c && c->node != node) c = c->tab_next;
    if (!c && create && !st->stopping) {
        c = dist__conn_new(node);
        if (c) {
            c->tab_next = st->tab[dist__bucket(node)];
            st->tab[dist__bucket(node)] = c;
        }
    }
    if (c) atomic_fetch_add(&c->refs, 1);
    pthread_mutex_unlock(&st->mu);
    return c;
}

static void own_peer_ref(void *ud, dist_peer *p)
{
    (void)ud;
    atomic_fetch_add(&p->refs, 1);
}

static void own_peer_put(void *ud, dist_peer *p)
{
    (void)ud;
    dist__conn_put(p);
}

static int own_peer_state(void *ud, dist_peer *p)
{
    (void)ud;
    return atomic_load(&p->state);
}

static term_t own_peer_node(void *ud, dist_peer *p)
{
    (void)ud;
    return p->node;
}

static dist_sm_slot *own_slot(void *ud, dist_peer *p)
{
    (void)ud;
    return &p->sm;
}

static void own_up(void *ud, dist_peer *c, const dist_up_info *info)
{
    (void)ud;
    dist_state *st = dist__st;
    c->rx = malloc(sizeof *c->rx);
    if (c->rx) {
        dist__rx_init(c->rx, st->cfg.max_message, st->cfg.max_heap, st->cfg.max_new_atoms,
                      (info->flags & DFLAG_DIST_HDR_ATOM_CACHE) != 0);
        /* the peer's budget spans its connections; without memory for it, this one's own */
        dist_atom_budget *b = dist__atom_budget(c->node);
        if (b) c->rx->budget = b;
        c->rx->atoms_disconnect = st->cfg.atoms_disconnect;
    }
    dist__conn_up(c, info->flags, info->creation, c->rx ? info->stream : NULL);
}

static void own_detach(void *ud, dist_peer *c)
{
    (void)ud;
    pthread_mutex_lock(&c->mu);
    c->direct = NULL;
    pthread_mutex_unlock(&c->mu);
}

static void own_down(void *ud, dist_peer *c, const char *why, int err)
{
    (void)ud;
    dist__node_down(c, why, err);
}

static int own_frame(void *ud, dist_peer *c, const uint8_t *f, size_t n, const char **why)
{
    (void)ud;
    if (atomic_load(&c->dq_failed))
        return (*why = "protocol error in an earlier message", DIST_EPROTO);
    atomic_fetch_add_explicit(&c->m_bytes_in, n + 4, memory_order_relaxed);
    int rc = dist__rx_take(c, f, n, why);
    if (rc < 0) atomic_fetch_add(&dist__st->st_proto, 1);
    return rc;
}

static dist_chunk *own_take_output(void *ud, dist_peer *c, size_t *bytes)
{
    (void)ud;
    pthread_mutex_lock(&c->mu);
    dchunk *q = dist__take_queue(c, bytes);
    if (!q) c->wpending = false;
    pthread_mutex_unlock(&c->mu);
    return q;
}

static uint64_t own_out_frames(void *ud, dist_peer *c)
{
    (void)ud;
    return atomic_load(&c->out_frames);
}

static void own_tick(void *ud, dist_peer *c)
{
    (void)ud;
    dist__send_tick(c);
}

static void own_named(void *ud, const char *name, uint32_t creation)
{
    (void)ud;
    dist_state *st = dist__st;
    /* dist_start, waiting for this connection, reads these after it */
    snprintf(st->name, sizeof st->name, "%s", name);
    st->node = term_atom(st->name);
    st->creation = creation;
    st->flags &= ~DFLAG_NAME_ME;
    st->dynamic = false;
    nd_set_node(st->node, st->creation); /* before any pid is made for the peer */
}

void dist__started(int status)
{
    dist_state *st = dist__st;
    pthread_mutex_lock(&st->start_mu);
    st->start_status = status;
    st->started = true;
    pthread_cond_broadcast(&st->start_cv);
    pthread_mutex_unlock(&st->start_mu);
}

static void own_published(void *ud, int status, uint32_t creation)
{
    (void)ud;
    dist_state *st = dist__st;
    if (!st->started) {
        if (status == 0) {
            st->creation = creation;
            dist__sm_set_identity(st->sm, NULL, creation, st->flags);
        } else {
            dist__log(DIST_LOG_ERROR, "event=epmd_register_failed node=%s", st->name);
        }
        dist__started(status == 0 ? 0 : DIST_EEPMD);
        return;
    }
    dist__log(DIST_LOG_ERROR, "event=epmd_lost node=%s", st->name);
}

static void own_log(void *ud, int level, const char *line)
{
    (void)ud;
    dist__log(level, "%s", line);
}

/* References to up to cap connections of the table (the caller puts them); how many. */
static size_t table_refs(dist_state *st, dconn **all, size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&st->mu);
    for (size_t i = 0; i < TAB_BUCKETS && n < cap; i++)
        for (dconn *c = st->tab[i]; c && n < cap; c = c->tab_next) {
            atomic_fetch_add(&c->refs, 1);
            all[n++] = c;
        }
    pthread_mutex_unlock(&st->mu);
    return n;
}

/* Every connection goes down and the machine closes its channels, then the transport's own
** handles; the loop ends after that. */
void dist__shutdown_all(void)
{
    dist_state *st = dist__st;
    dconn *all[256];
    for (;;) {
        size_t n = table_refs(st, all, 256);
        if (!n) break;
        for (size_t i = 0; i < n; i++) {
            dist__sm_close(st->sm, all[i], "distribution stopped");
            dist__conn_put(all[i]);
        }
    }
    dist__sm_shutdown(st->sm);
    st->tr->ops->shutdown(st->tr);
}

/* Stopping: whether some connection still has output queued; with say, each such connection's
** queued bytes are logged (the drain time ran out: they will not be written). */
static bool conns_queued(dist_state *st, bool say)
{
    dconn *all[256];
    size_t n = table_refs(st, all, 256);
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&all[i]->mu);
        bool queued = all[i]->qhead && atomic_load(&all[i]->state) == C_UP;
        size_t q = atomic_load_explicit(&all[i]->qbytes, memory_order_relaxed);
        pthread_mutex_unlock(&all[i]->mu);
        any = any || queued;
        if (say && queued)
            dist__log(DIST_LOG_WARNING,
                      "event=stop_unwritten node=%s queued_bytes=%zu reason=\"the stop's drain "
                      "time ran out\"",
                      term_atom_name(all[i]->node, NULL), q);
        dist__conn_put(all[i]);
    }
    return any;
}

/* Stopping, every few ms: once nothing is queued or being written (or the drain time is up,
** and what is left is logged), the connections close. Nobody queues more: the gate is closed. */
static void drain_tick(void *ud)
{
    dist_state *st = ud;
    bool busy = dist__sm_writing(st->sm) || conns_queued(st, false);
    if (busy && st->tr->ops->now_ns(st->tr) < st->drain_deadline_ns) return;
    if (busy) {
        dist__sm_log_unwritten(st->sm);
        conns_queued(st, true);
    }
    st->tr->ops->timer_free(st->drain);
    st->drain = NULL;
    dist__shutdown_all();
}

/*
** dist_stop: what the connections have queued is written out before they close (as an Erlang
** node delivers a message sent just before init:stop()), bounded by drain_ms (io_stop's, read
** under svc_mu); then all close. Without a timer, they close at once.
*/
static void begin_stop(dist_state *st, uint64_t drain_ms)
{
    dconn *all[256];
    size_t n = table_refs(st, all, 256);
    for (size_t i = 0; i < n; i++) {
        dist__sm_kick(st->sm, all[i]);
        dist__conn_put(all[i]);
    }
    st->drain_deadline_ns = st->tr->ops->now_ns(st->tr) + drain_ms * 1000000ull;
    st->drain = drain_ms ? st->tr->ops->timer_new(st->tr, drain_tick, st) : NULL;
    if (!st->drain) {
        dist__shutdown_all();
        return;
    }
    st->tr->ops->timer_start(st->drain, 0, 2);
}

/* The service list: what other threads asked the loop to do for their connections. */
static void own_service(void *ud)
{
    (void)ud;
    dist_state *st = dist__st;
    pthread_mutex_lock(&st->svc_mu);
    dconn *list = st->svc_head;
    st->svc_head = NULL;
    bool stopping = st->stop_asked, shut = st->shut;
    uint64_t drain_ms = st->drain_ms;
    if (stopping) st->shut = true;
    for (dconn *c = list; c; c = c->svc_next) c->svc_queued = false;
    pthread_mutex_unlock(&st->svc_mu);
    while (list) {
        dconn *c = list;
        list = c->svc_next;
        if (!stopping) {
            pthread_mutex_lock(&c->mu);
            bool close = c->want_close, connect = c->want_connect, resume = c->want_resume;
            const char *why = c->close_why;
            c->want_close = c->want_connect = c->want_resume = false;
            pthread_mutex_unlock(&c->mu);
            if (resume && !close) dist__sm_pause(st->sm, c, false);
            if (close)
                dist__sm_close(st->sm, c, why ? why : "closed");
            else if (connect)
                dist__sm_connect(st->sm, c);
            else
                dist__sm_kick(st->sm, c);
        }
        dist__conn_put(c);
    }
    if (stopping && !shut) begin_stop(st, drain_ms);
}

const dist_sm_owner dist__owner = {
    .peer_get = own_peer_get,
    .peer_ref = own_peer_ref,
    .peer_put = own_peer_put,
    .peer_state = own_peer_state,
    .peer_node = own_peer_node,
    .slot = own_slot,
    .up = own_up,
    .detach = own_detach,
    .down = own_down,
    .frame = own_frame,
    .take_output = own_take_output,
    .out_frames = own_out_frames,
    .tick = own_tick,
    .named = own_named,
    .service = own_service,
    .published = own_published,
    .log = own_log,
};
