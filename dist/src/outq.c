/* dist output queue: frames for a peer, written by senders directly or by the loop thread. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_SIZE 65536
#define BIG_FRAME  16384 /* frames at least this big are queued without a copy */

/* ================================================================ the output queue */

/* Appends the frames in b (from byte off) to c's queue (mu held): small ones are copied into the
** tail chunk, big ones adopt b's storage (b is then emptied). */
int dist__q_push(dconn *c, etf_buf *b, size_t off)
{
    size_t len = b->len - off;
    if (len == 0) {
        b->len = 0;
        return 0;
    }
    if (len >= BIG_FRAME) {
        dchunk *ch = malloc(sizeof *ch);
        if (!ch) return DIST_ENOMEM;
        ch->next = NULL;
        ch->base = b->data;
        ch->data = b->data + off;
        ch->len = len;
        ch->cap = b->cap - off;
        b->data = NULL;
        b->len = b->cap = 0;
        if (c->qtail)
            c->qtail->next = ch;
        else
            c->qhead = ch;
        c->qtail = ch;
        dist__count_add(&c->qbytes, ch->len);
        return 0;
    }
    dchunk *t = c->qtail;
    if (!t || t->cap - t->len < len || t->cap != CHUNK_SIZE || t->data != t->base) {
        t = malloc(sizeof *t);
        if (t) t->data = t->base = term_alloc_raw(CHUNK_SIZE);
        if (!t || !t->data) {
            free(t);
            return DIST_ENOMEM;
        }
        t->next = NULL;
        t->len = 0;
        t->cap = CHUNK_SIZE;
        if (c->qtail)
            c->qtail->next = t;
        else
            c->qhead = t;
        c->qtail = t;
    }
    memcpy(t->data + t->len, b->data + off, len);
    t->len += len;
    dist__count_add(&c->qbytes, len);
    b->len = 0;
    return 0;
}

dchunk *dist__take_queue(dconn *c, size_t *bytes)
{
    dchunk *q = c->qhead;
    *bytes = atomic_load_explicit(&c->qbytes, memory_order_relaxed);
    c->qhead = c->qtail = NULL;
    atomic_store_explicit(&c->qbytes, 0, memory_order_relaxed);
    c->busy = false; /* the episode ends when the I/O thread takes the queue */
    return q;
}

/*
** Queues the frames in b for c (mu held, state UP). An idle connection (nothing queued, no write
** in flight) gets them written at once from this thread, which saves the I/O thread's wake-up
** on the latency path; whatever the socket does not take goes to the queue. Returns 0 or
** ENOMEM; *service says the I/O thread must be told.
*/
#define DIRECT_MAX    65536
#define DIRECT_GAP_NS 20000
int dist__q_send(dconn *c, etf_buf *b, size_t off, bool *service)
{
    size_t len = b->len - off;
    atomic_fetch_add_explicit(&c->out_frames, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->m_bytes_out, len, memory_order_relaxed);
    /* a sender that wrote less than DIRECT_GAP ago is streaming: batching through the I/O
    ** thread beats one system call per message */
    dist_tr *tr = dist__st->tr;
    uint64_t now = tr->ops->now_ns(tr);
    bool streaming = now - c->last_direct < DIRECT_GAP_NS;
    if (!c->wpending && !streaming && c->direct && tr->ops->try_write && len <= DIRECT_MAX) {
        c->last_direct = now;
        ssize_t w = tr->ops->try_write(c->direct, b->data + off, len);
        if (w == (ssize_t)len) {
            atomic_fetch_add_explicit(&dist__st->st_bytes_direct, len, memory_order_relaxed);
            b->len = 0;
            return 0;
        }
        if (w > 0) {
            off += (size_t)w;
            atomic_fetch_add_explicit(&dist__st->st_bytes_direct, (uint64_t)w,
                                      memory_order_relaxed);
        }
        /* the stream is full or failing: the loop writes the rest, or finds the error */
    }
    if (streaming) c->last_direct = now;
    int rc = dist__q_push(c, b, off);
    if (!rc && !c->wpending) *service = c->wpending = true;
    return rc;
}

/* A tick (an empty frame), through the queue so it never lands inside another frame. */
void dist__send_tick(dconn *c)
{
    static const uint8_t zero[4];
    etf_buf b = {0};
    bool service = false;
    if (etf_buf_reserve(&b, 4) != 0) return;
    memcpy(b.data, zero, 4);
    b.len = 4;
    pthread_mutex_lock(&c->mu);
    if (atomic_load(&c->state) == C_UP) dist__q_send(c, &b, 0, &service);
    pthread_mutex_unlock(&c->mu);
    etf_buf_free(&b);
    if (service) dist__service(c);
}

/*
** Back-pressure, as Erlang's busy distribution port: a process sending a message to a node whose
** queue holds more than BUSY_LIMIT bytes sleeps until the I/O thread has written it down (or
** the connection is gone, or a few seconds passed). While the connection is still being set up,
** the signals waiting for it count instead (the memory they hold), so a sender cannot pile up
** messages without bound for a node that accepts TCP and never finishes the handshake. Only
** messages, only from processes, and before any lock is taken; exit and monitor signals never
** wait.
*/
#define BUSY_LIMIT      ((size_t)8 << 20)
#define BUSY_LOG_GAP_NS (10 * 1000000000ull) /* at most one busy line per connection per 10 s */

/* The start of a busy episode (mu held): counted, and logged as Erlang's system monitor reports
** busy_dist_port, at most once per BUSY_LOG_GAP_NS per connection with the episodes since. */
static void busy_begin(dconn *c, term_t sender, size_t queued)
{
    c->busy = true;
    atomic_fetch_add_explicit(&c->m_busy, 1, memory_order_relaxed);
    c->busy_unlogged++;
    nd_trace_busy_dist(c->node, queued);
    uint64_t now = dist__st->tr->ops->now_ns(dist__st->tr);
    if (c->busy_logged_ns && now - c->busy_logged_ns < BUSY_LOG_GAP_NS) return;
    etf_buf pb = {0};
    if (term_print(sender, 0, NULL, &pb) != 0 || etf_buf_reserve(&pb, 1) != 0) pb.len = 0;
    if (pb.data) pb.data[pb.len] = 0;
    dist__log(DIST_LOG_WARNING,
              "event=busy_dist_port node=%s queued=%zu limit=%zu sender=%s episodes=%llu "
              "episodes_total=%llu",
              dist__aname(c->node), queued, BUSY_LIMIT, pb.data ? (char *)pb.data : "?",
              (unsigned long long)c->busy_unlogged,
              (unsigned long long)atomic_load_explicit(&c->m_busy, memory_order_relaxed));
    etf_buf_free(&pb);
    c->busy_logged_ns = now;
    c->busy_unlogged = 0;
}

void dist__busy_wait(dconn *c, const nd_signal *s)
{
    if (s->kind != ND_SIG_MSG || !nd_in_process()) return;
    /* the common case, without the lock: far from the limit (a count read a little stale only
    ** moves the start of an episode by one message) */
    int st = atomic_load(&c->state);
    size_t q = st == C_UP        ? atomic_load_explicit(&c->qbytes, memory_order_relaxed)
               : st == C_PENDING ? atomic_load_explicit(&c->pbytes, memory_order_relaxed)
                                 : 0;
    if (q <= BUSY_LIMIT) return;
    for (int i = 0; i < 5000; i++) {
        pthread_mutex_lock(&c->mu);
        int state = atomic_load(&c->state);
        size_t queued = state == C_UP ? atomic_load_explicit(&c->qbytes, memory_order_relaxed)
                        : state == C_PENDING
                            ? atomic_load_explicit(&c->pbytes, memory_order_relaxed)
                            : 0;
        bool busy = queued > BUSY_LIMIT && !dist__gate_closing();
        if (busy && !c->busy) busy_begin(c, s->from, queued);
        pthread_mutex_unlock(&c->mu);
        if (!busy) return;
        nd_sleep(1);
    }
}
