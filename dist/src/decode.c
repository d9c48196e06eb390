/* dist decoding: small messages decoded on the loop, large or compressed ones by a pool, in order.
 */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
** Frames are taken apart on the loop thread (atom cache header, fragments: cheap), and the
** message's terms decoded where it costs nobody else: a message of at most INLINE_MAX bytes
** without compressed terms is decoded and delivered on the loop; any other goes, with
** everything after it from the same connection, to that connection's queue, which the decoder
** threads work through one connection at a time, in arrival order. So one peer's large or
** hostile message (a decompression bomb, millions of list cells) costs a decoder thread, never
** the loop that serves every other connection and every tick.
**
** A connection's queue holds at most max_message bytes; past that the loop stops reading from
** that connection until the queue drains. Its node-down, when its queue is not empty, is queued
** behind what was received before it, so signals keep their order: messages first, then the
** noconnection exits and DOWNs.
*/

#define INLINE_MAX 4096 /* compressed, at most ~4 MB once inflated: a few ms at worst */

typedef struct rxjob {
    struct rxjob *next;
    dist_rxmsg m; /* owns its bytes and references */
    size_t bytes;
    /* a queued node-down (m unused) */
    bool down;
    int was;
    char why[200];
} rxjob;

struct dist_decoders {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    dconn *ready_head, *ready_tail; /* connections with work, each a reference */
    bool stopping;
    unsigned n;
    pthread_t *threads;
};

static void job_free(rxjob *j)
{
    dist__rxmsg_release(&j->m);
    free(j);
}

/* A job owning a copy of what m borrows (the frame's bytes, the connection's per-message refs). */
static rxjob *job_of(dist_rxmsg *m)
{
    rxjob *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->m = *m;
    j->bytes = m->len;
    if (m->own == TERM_NONE) {
        /* the bytes, copied out of the read buffer, are a binary the message's large binaries
        ** point into (etf_decode_opts.share) */
        uint8_t *b = term_alloc_raw(m->len ? m->len : 1);
        if (b) memcpy(b, m->data, m->len);
        j->m.own = b ? term_binary_adopt(b, m->len) : TERM_NONE;
        if (j->m.own == TERM_NONE) {
            free(j);
            return NULL;
        }
        j->m.data = term_binary_data(j->m.own);
    }
    if (m->refs && !m->own_refs) {
        etf_atom_cache *r = dist__refs_copy(m->refs, m->nrefs);
        if (!r) {
            if (m->own == TERM_NONE) term_free(j->m.own);
            free(j);
            return NULL;
        }
        j->m.refs = j->m.own_refs = r;
    }
    m->own = TERM_NONE; /* moved into the job */
    m->own_refs = NULL;
    return j;
}

/* Puts c on the decoders' ready list (the caller set c->dq_busy; takes a reference). */
static void submit(dconn *c)
{
    dist_decoders *d = dist__st->dec;
    atomic_fetch_add(&c->refs, 1);
    pthread_mutex_lock(&d->mu);
    c->dq_ready_next = NULL;
    if (d->ready_tail)
        d->ready_tail->dq_ready_next = c;
    else
        d->ready_head = c;
    d->ready_tail = c;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

/* Appends j to c's queue; false when the queue is now over its bound (stop reading). */
static bool enqueue(dconn *c, rxjob *j)
{
    pthread_mutex_lock(&c->dq_mu);
    if (c->dq_tail)
        c->dq_tail->next = j;
    else
        c->dq_head = j;
    c->dq_tail = j;
    c->dq_bytes += j->bytes;
    bool start = !c->dq_busy;
    c->dq_busy = true;
    bool over = c->dq_bytes > dist__st->cfg.max_message;
    if (over && !c->dq_paused) { /* a new pause */
        c->dq_paused = true;
        atomic_fetch_add_explicit(&c->m_read_pauses, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&c->dq_mu);
    if (start) submit(c);
    return !over;
}

int dist__rx_take(dconn *c, const uint8_t *f, size_t n, const char **why)
{
    if (!c->rx) return (*why = "out of memory", DIST_ENOMEM);
    dist_rxmsg m;
    int rc = dist__rx_message(c->rx, f, n, &m, why);
    dist__atoms_report(c);
    if (rc <= 0) return rc;
    /* only this thread sets dq_busy: false read here stays false until it enqueues; a decoder
    ** that cleared it did so after delivering (the acquire orders this thread's deliveries
    ** after those) */
    bool busy = atomic_load_explicit(&c->dq_busy, memory_order_acquire);
    if (!busy && m.len <= INLINE_MAX) {
        dist_ctl ctl;
        rc = dist__rx_decode(c->rx, &m, false, &ctl, why);
        dist__atoms_report(c);
        if (rc == 0) {
            dist__rxmsg_release(&m);
            dist__deliver(c, &ctl);
            return 0;
        }
        if (rc != GIRDER_ECOMPRESSED) {
            dist__rxmsg_release(&m);
            return rc;
        }
    }
    rxjob *j = job_of(&m);
    if (!j) {
        dist__rxmsg_release(&m);
        return (*why = "out of memory", DIST_ENOMEM);
    }
    if (!enqueue(c, j)) dist__sm_pause(dist__st->sm, c, true);
    return 0;
}

bool dist__rx_defer_down(dconn *c, int was, const char *why)
{
    pthread_mutex_lock(&c->dq_mu);
    bool busy = c->dq_busy;
    pthread_mutex_unlock(&c->dq_mu);
    if (!busy) return false;
    rxjob *j = calloc(1, sizeof *j);
    if (!j) return false; /* no memory: delivered now, ahead of what is queued */
    j->down = true;
    j->was = was;
    snprintf(j->why, sizeof j->why, "%s", why);
    enqueue(c, j);
    return true;
}

/* One job of c, on a decoder thread. */
static void run_job(dconn *c, rxjob *j)
{
    if (j->down) {
        dist__node_down_finish(c, j->was, j->why);
        return;
    }
    if (c->dq_failed) return; /* the connection is being closed for a protocol error */
    dist_ctl ctl;
    const char *why = NULL;
    int rc = dist__rx_decode(c->rx, &j->m, true, &ctl, &why);
    dist__atoms_report(c);
    if (rc == 0) {
        dist__deliver(c, &ctl);
        return;
    }
    /* what the loop does with a bad frame: count it, log it, close this connection only */
    c->dq_failed = true;
    atomic_fetch_add(&dist__st->st_proto, 1);
    dist__log(DIST_LOG_ERROR, "event=protocol_error node=%s reason=\"%s\"", dist__aname(c->node),
              why ? why : "?");
    pthread_mutex_lock(&c->mu);
    c->want_close = true;
    c->close_why = "protocol error in a message (decoded off the loop)";
    pthread_mutex_unlock(&c->mu);
    dist__service(c);
}

static void *decoder_main(void *arg)
{
    dist_decoders *d = arg;
    for (;;) {
        pthread_mutex_lock(&d->mu);
        while (!d->ready_head && !d->stopping) pthread_cond_wait(&d->cv, &d->mu);
        dconn *c = d->ready_head;
        if (c) {
            d->ready_head = c->dq_ready_next;
            if (!d->ready_head) d->ready_tail = NULL;
        }
        pthread_mutex_unlock(&d->mu);
        if (!c) return NULL; /* stopping, nothing left */
        bool resume = false;
        for (;;) {
            pthread_mutex_lock(&c->dq_mu);
            rxjob *j = c->dq_head;
            if (j) {
                c->dq_head = j->next;
                if (!c->dq_head) c->dq_tail = NULL;
                c->dq_bytes -= j->bytes;
            } else {
                c->dq_busy = false;
                resume = c->dq_paused;
                c->dq_paused = false;
            }
            pthread_mutex_unlock(&c->dq_mu);
            if (!j) break;
            run_job(c, j);
            job_free(j);
        }
        if (resume) {
            pthread_mutex_lock(&c->mu);
            c->want_resume = true;
            pthread_mutex_unlock(&c->mu);
            dist__service(c);
        }
        dist__conn_put(c);
    }
}

int dist__decoders_start(dist_state *st, unsigned n)
{
    dist_decoders *d = calloc(1, sizeof *d);
    if (!d) return DIST_ENOMEM;
    d->threads = calloc(n, sizeof *d->threads);
    if (!d->threads) {
        free(d);
        return DIST_ENOMEM;
    }
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->cv, NULL);
    for (; d->n < n; d->n++)
        if (pthread_create(&d->threads[d->n], NULL, decoder_main, d) != 0) break;
    st->dec = d;
    if (d->n == 0) {
        dist__decoders_stop(st);
        return DIST_ENOMEM;
    }
    return 0;
}

/* After the loop has ended: the decoders finish every queue (the node-downs queued there
** among them), then end. */
void dist__decoders_stop(dist_state *st)
{
    dist_decoders *d = st->dec;
    if (!d) return;
    pthread_mutex_lock(&d->mu);
    d->stopping = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    for (unsigned i = 0; i < d->n; i++) pthread_join(d->threads[i], NULL);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d->threads);
    free(d);
    st->dec = NULL;
}
