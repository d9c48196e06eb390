/* dist core: the node table, libnode's hook (encode and queue), link/monitor tracking, node-down.
 */
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

dist_state *dist__st;

#define CHUNK_SIZE  65536
#define TAB_BUCKETS 256
#define BIG_FRAME   16384 /* frames at least this big are queued without a copy */

static term_t a_noconnection, a_noproc, a_nodeup, a_nodedown, a_spawn_reply, a_error, a_empty,
    a_dist_connect;

/* ================================================================ logging */

static const char *const level_names[] = {"emergency", "alert",  "critical", "error",
                                          "warning",   "notice", "info",     "debug"};

void dist__log(int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    dist_state *st = dist__st;
    if (level < DIST_LOG_EMERGENCY || level > DIST_LOG_DEBUG) level = DIST_LOG_INFO;
    if (st && st->cfg.log) {
        st->cfg.log(st->cfg.log_ud, level, line);
        return;
    }
    uint64_t ns = st && st->tr ? st->tr->ops->realtime_ns(st->tr) : 0;
    if (!ns) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    time_t sec = (time_t)(ns / 1000000000u);
    struct tm tm;
    gmtime_r(&sec, &tm);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s dist %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            (int)(ns % 1000000000u / 1000000u), level_names[level], line);
}

static const char *aname(term_t a)
{
    return term_is_atom(a) ? term_atom_name(a, NULL) : "?";
}

/* ================================================================ connections */

static size_t bucket(term_t node)
{
    return (term_atom_index(node) * 2654435761u) % TAB_BUCKETS;
}

static dconn *conn_new(term_t node)
{
    dconn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    atomic_init(&c->refs, 1);
    atomic_init(&c->state, C_PENDING);
    c->node = node;
    return c;
}

#define chunks_free dist__chunks_free

static void psigs_free(psig *p)
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
static void waiters_notify(cwaiter *w, int status)
{
    while (w) {
        cwaiter *n = w->next;
        nd_send(w->pid, term_tuplev(3, a_dist_connect, w->ref, term_int(status)));
        term_free(w->pid);
        free(w);
        w = n;
    }
}

void dist__conn_put(dconn *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
    chunks_free(c->qhead);
    psigs_free(c->phead);
    waiters_notify(c->waiters, DIST_ENOCONN);
    dist__tab_free(&c->links);
    dist__tab_free(&c->mons);
    dist__acache_free(&c->acache);
    if (c->rx) dist__rx_free(c->rx);
    free(c->rx);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* Looks node up (a reference, or NULL); with create, a missing connection is created PENDING
** and handed to the I/O thread to connect. */
dconn *dist__conn_get(term_t node, bool create)
{
    dist_state *st = dist__st;
    if (!st || !term_is_atom(node)) return NULL;
    pthread_mutex_lock(&st->mu);
    dconn *c = st->tab[bucket(node)];
    while (c && c->node != node) c = c->tab_next;
    bool fresh = false;
    if (!c && create && !st->stopping) {
        c = conn_new(node);
        if (c) {
            c->tab_next = st->tab[bucket(node)];
            st->tab[bucket(node)] = c;
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
static bool conn_unlink(dconn *c)
{
    dist_state *st = dist__st;
    bool found = false;
    pthread_mutex_lock(&st->mu);
    for (dconn **l = &st->tab[bucket(c->node)]; *l; l = &(*l)->tab_next)
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

/* ================================================================ the output queue */

/* Appends the frames in b to c's queue (mu held): small ones are copied into the tail chunk,
** big ones adopt b's storage (b is then emptied). */
static int q_push(dconn *c, etf_buf *b)
{
    if (b->len == 0) return 0;
    if (b->len >= BIG_FRAME) {
        dchunk *ch = malloc(sizeof *ch);
        if (!ch) return DIST_ENOMEM;
        ch->next = NULL;
        ch->data = b->data;
        ch->len = b->len;
        ch->cap = b->cap;
        b->data = NULL;
        b->len = b->cap = 0;
        if (c->qtail)
            c->qtail->next = ch;
        else
            c->qhead = ch;
        c->qtail = ch;
        c->qbytes += ch->len;
        return 0;
    }
    dchunk *t = c->qtail;
    if (!t || t->cap - t->len < b->len || t->cap != CHUNK_SIZE) {
        t = malloc(sizeof *t);
        if (t) t->data = malloc(CHUNK_SIZE);
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
    memcpy(t->data + t->len, b->data, b->len);
    t->len += b->len;
    c->qbytes += b->len;
    b->len = 0;
    return 0;
}

dchunk *dist__take_queue(dconn *c, size_t *bytes)
{
    dchunk *q = c->qhead;
    *bytes = c->qbytes;
    c->qhead = c->qtail = NULL;
    c->qbytes = 0;
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
static int q_send(dconn *c, etf_buf *b, bool *service)
{
    atomic_fetch_add_explicit(&c->out_frames, 1, memory_order_relaxed);
    /* a sender that wrote less than DIRECT_GAP ago is streaming: batching through the I/O
    ** thread beats one system call per message */
    dist_tr *tr = dist__st->tr;
    uint64_t now = tr->ops->now_ns(tr);
    bool streaming = now - c->last_direct < DIRECT_GAP_NS;
    if (!c->wpending && !streaming && c->direct && tr->ops->try_write && b->len <= DIRECT_MAX) {
        c->last_direct = now;
        ssize_t w = tr->ops->try_write(c->direct, b->data, b->len);
        if (w == (ssize_t)b->len) {
            atomic_fetch_add_explicit(&dist__st->st_bytes_direct, b->len, memory_order_relaxed);
            b->len = 0;
            return 0;
        }
        if (w > 0) {
            memmove(b->data, b->data + w, b->len - (size_t)w);
            b->len -= (size_t)w;
            atomic_fetch_add_explicit(&dist__st->st_bytes_direct, (uint64_t)w,
                                      memory_order_relaxed);
        }
        /* the stream is full or failing: the loop writes the rest, or finds the error */
    }
    if (streaming) c->last_direct = now;
    int rc = q_push(c, b);
    if (!rc && !c->wpending) *service = c->wpending = true;
    return rc;
}

/* A tick (an empty frame), through the queue so it never lands inside another frame. */
static void send_tick(dconn *c)
{
    static const uint8_t zero[4];
    etf_buf b = {0};
    bool service = false;
    if (etf_buf_reserve(&b, 4) != 0) return;
    memcpy(b.data, zero, 4);
    b.len = 4;
    pthread_mutex_lock(&c->mu);
    if (atomic_load(&c->state) == C_UP) q_send(c, &b, &service);
    pthread_mutex_unlock(&c->mu);
    etf_buf_free(&b);
    if (service) dist__service(c);
}

/* ================================================================ control messages out */

static term_t ghost_pid(void)
{
    return term_pid(dist__st->node, 0, 0, dist__st->creation);
}

static term_t sender(term_t from)
{
    return term_is_pid(from) ? term_dup(from) : ghost_pid();
}

/* The name in {Name, Node}, or the term itself (dup'ed). */
static term_t proc_of(term_t to)
{
    if (term_is_tuple(to) && term_tuple_arity(to) == 2) return term_dup(term_tuple_elem(to, 0));
    return term_dup(to);
}

/*
** Builds the control tuple (and payload) for a libnode signal given the negotiated flags.
** Returns false on ENOMEM. A message to an alias for a peer without DFLAG_ALIAS has no wire
** form: true with *ctl = TERM_NONE (the message is dropped, as Erlang drops it).
*/
static bool build_ctl(const nd_signal *s, uint64_t fl, term_t *ctl, term_t *payload)
{
    term_t c = TERM_NONE, p = TERM_NONE;
    bool pl = (fl & DFLAG_EXIT_PAYLOAD) != 0;
    switch (s->kind) {
    case ND_SIG_MSG:
        if (term_is_ref(s->to)) {
            *ctl = *payload = TERM_NONE;
            if (fl & DFLAG_ALTACT_SIG) /* OTP 28+: ALIAS_SEND is deprecated there */
                c = term_tuplev(4, term_small(DOP_ALTACT_SIG_SEND), term_small(ALTACT_ALIAS),
                                sender(s->from), term_dup(s->to));
            else if (fl & DFLAG_ALIAS)
                c = term_tuplev(3, term_small(DOP_ALIAS_SEND), sender(s->from), term_dup(s->to));
            else
                return true;
            p = term_dup(s->payload);
            break;
        }
        p = term_dup(s->payload);
        if (term_is_tuple(s->to))
            c = term_tuplev(4, term_small(DOP_REG_SEND), sender(s->from), a_empty, proc_of(s->to));
        else if ((fl & DFLAG_SEND_SENDER) && term_is_pid(s->from))
            c = term_tuplev(3, term_small(DOP_SEND_SENDER), term_dup(s->from), term_dup(s->to));
        else
            c = term_tuplev(3, term_small(DOP_SEND), a_empty, term_dup(s->to));
        break;
    case ND_SIG_EXIT:
    case ND_SIG_EXIT2: {
        bool ex = s->kind == ND_SIG_EXIT;
        if (pl) {
            c = term_tuplev(3, term_small(ex ? DOP_PAYLOAD_EXIT : DOP_PAYLOAD_EXIT2),
                            sender(s->from), term_dup(s->to));
            p = term_dup(s->payload);
        } else {
            c = term_tuplev(4, term_small(ex ? DOP_EXIT : DOP_EXIT2), sender(s->from),
                            term_dup(s->to), term_dup(s->payload));
        }
        break;
    }
    case ND_SIG_LINK:
        c = term_tuplev(3, term_small(DOP_LINK), sender(s->from), term_dup(s->to));
        break;
    case ND_SIG_UNLINK_ID:
    case ND_SIG_UNLINK_ID_ACK:
        c = term_tuplev(4,
                        term_small(s->kind == ND_SIG_UNLINK_ID ? DOP_UNLINK_ID : DOP_UNLINK_ID_ACK),
                        term_uint(s->id ? s->id : 1), sender(s->from), term_dup(s->to));
        break;
    case ND_SIG_MONITOR:
    case ND_SIG_DEMONITOR:
        c = term_tuplev(4, term_small(s->kind == ND_SIG_MONITOR ? DOP_MONITOR_P : DOP_DEMONITOR_P),
                        sender(s->from), proc_of(s->to), term_dup(s->ref));
        break;
    case ND_SIG_DOWN:
        if (pl) {
            c = term_tuplev(4, term_small(DOP_PAYLOAD_MONITOR_P_EXIT), proc_of(s->from),
                            term_dup(s->to), term_dup(s->ref));
            p = term_dup(s->payload);
        } else {
            c = term_tuplev(5, term_small(DOP_MONITOR_P_EXIT), proc_of(s->from), term_dup(s->to),
                            term_dup(s->ref), term_dup(s->payload));
        }
        break;
    }
    if (c == TERM_NONE) {
        term_free(p);
        return false;
    }
    *ctl = c;
    *payload = p;
    return true;
}

/* Each sending thread encodes into its own buffer, kept between calls (and freed with the
** thread through a key destructor). */
static _Thread_local etf_buf tls_buf;
static _Thread_local bool tls_keyed;
static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_destroy(void *p)
{
    etf_buf_free(p);
}
static void tls_key_init(void)
{
    pthread_key_create(&tls_key, tls_destroy);
}

static etf_buf *tls_get(void)
{
    if (!tls_keyed) {
        pthread_once(&tls_once, tls_key_init);
        pthread_setspecific(tls_key, &tls_buf);
        tls_keyed = true;
    }
    return &tls_buf;
}

static void tls_trim(void)
{
    tls_buf.len = 0;
    if (tls_buf.cap > (1u << 20)) etf_buf_free(&tls_buf);
}

static int encode_into(dconn *c, term_t ctl, term_t payload, uint64_t fl, etf_buf *b)
{
    uint64_t seq = atomic_fetch_add(&c->seq, 1) + 1;
    return dist__frame_encode(ctl, payload, fl, dist__st->frag_size, seq, b);
}

/* ================================================================ tracking */

/* Records what a signal leaving this node changes in the links/monitors over c (mu held). */
static void track_out(dconn *c, const nd_signal *s)
{
    switch (s->kind) {
    case ND_SIG_LINK:
        if (term_is_pid(s->from)) dist__tab_add(&c->links, s->from, s->to, TERM_NONE, 0, true);
        break;
    case ND_SIG_UNLINK_ID:
    case ND_SIG_EXIT:
        if (term_is_pid(s->from)) dist__tab_del(&c->links, s->from, s->to, NULL);
        break;
    case ND_SIG_MONITOR:
        if (term_is_pid(s->from))
            dist__tab_add(&c->mons, s->ref, TERM_NONE,
                          term_tuplev(2, term_dup(s->from), term_dup(s->to)), MON_OUT, true);
        break;
    case ND_SIG_DEMONITOR:
    case ND_SIG_DOWN:
        dist__tab_del(&c->mons, s->ref, TERM_NONE, NULL);
        break;
    default:
        break;
    }
}

/* ================================================================ the hook */

enum { SEND_RETRY = 1 };

/* The name a monitor by name was set up with (DOWN reports it as FromProc), or TERM_NONE. */
static term_t monitor_name(dconn *c, term_t ref)
{
    term_t name = TERM_NONE;
    pthread_mutex_lock(&c->mu);
    dent *e = dist__tab_find(&c->mons, ref, TERM_NONE);
    if (e && e->dir == MON_IN && term_tuple_arity(e->c) == 3 &&
        term_is_atom(term_tuple_elem(e->c, 2)))
        name = term_tuple_elem(e->c, 2);
    pthread_mutex_unlock(&c->mu);
    return name;
}

/*
** Back-pressure, as Erlang's busy distribution port: a process sending a message to a node whose
** queue holds more than BUSY_LIMIT bytes sleeps until the I/O thread has written it down (or
** the connection is gone, or a few seconds passed). Only messages, only from processes, and
** before any lock is taken; exit and monitor signals never wait.
*/
#define BUSY_LIMIT ((size_t)8 << 20)
static void busy_wait(dconn *c, const nd_signal *s)
{
    if (s->kind != ND_SIG_MSG || !nd_in_process()) return;
    for (int i = 0; i < 5000; i++) {
        pthread_mutex_lock(&c->mu);
        bool busy = c->qbytes > BUSY_LIMIT && atomic_load(&c->state) == C_UP;
        pthread_mutex_unlock(&c->mu);
        if (!busy) return;
        nd_sleep(1);
    }
}

static int send_sig(dconn *c, const nd_signal *s0)
{
    nd_signal named;
    const nd_signal *s = s0;
    if (s0->kind == ND_SIG_DOWN) {
        term_t name = monitor_name(c, s0->ref);
        if (name != TERM_NONE) {
            named = *s0;
            named.from = name;
            s = &named;
        }
    }
    busy_wait(c, s);
    etf_buf *b = tls_get();
    bool encoded = false;
    int rc = 0;
    if (atomic_load(&c->state) == C_UP) {
        term_t ctl, pl;
        if (!build_ctl(s, atomic_load(&c->flags), &ctl, &pl)) return DIST_ENOMEM;
        if (ctl == TERM_NONE) return 0;
        rc = encode_into(c, ctl, pl, atomic_load(&c->flags), b);
        term_free(ctl);
        term_free(pl);
        if (rc) {
            tls_trim();
            return rc;
        }
        encoded = true;
    }
    bool service = false;
    pthread_mutex_lock(&c->mu);
    int state = atomic_load(&c->state);
    if (state == C_DOWN) {
        pthread_mutex_unlock(&c->mu);
        tls_trim();
        return SEND_RETRY;
    }
    if (state == C_UP) {
        if (!encoded) {
            term_t ctl, pl;
            if (!build_ctl(s, atomic_load(&c->flags), &ctl, &pl)) {
                rc = DIST_ENOMEM;
            } else if (ctl != TERM_NONE) {
                rc = encode_into(c, ctl, pl, atomic_load(&c->flags), b);
                term_free(ctl);
                term_free(pl);
                encoded = true;
            }
        }
        if (!rc && encoded && (atomic_load(&c->flags) & DFLAG_DIST_HDR_ATOM_CACHE))
            rc = dist__acache_apply(&c->acache, b);
        if (!rc && encoded) rc = q_send(c, b, &service);
    } else {
        psig *p = calloc(1, sizeof *p);
        if (!p) {
            rc = DIST_ENOMEM;
        } else {
            p->sig = *s;
            p->sig.from = term_dup(s->from);
            p->sig.to = term_dup(s->to);
            p->sig.payload = term_dup(s->payload);
            p->sig.ref = term_dup(s->ref);
            if (c->ptail)
                c->ptail->next = p;
            else
                c->phead = p;
            c->ptail = p;
        }
    }
    if (!rc) track_out(c, s);
    pthread_mutex_unlock(&c->mu);
    tls_trim();
    if (service) dist__service(c);
    if (!rc) atomic_fetch_add_explicit(&dist__st->st_msgs_out, 1, memory_order_relaxed);
    return rc;
}

static term_t target_node(const nd_signal *s)
{
    term_t to = s->to;
    if (term_is_tuple(to) && term_tuple_arity(to) == 2) return term_tuple_elem(to, 1);
    term_pid_info pi;
    if (term_pid_get(to, &pi) == 0) return pi.node;
    term_ref_info ri;
    if (term_ref_get(to, &ri) == 0) return ri.node; /* an alias */
    return TERM_NONE;
}

/* A pid of this node's name but another creation: an old incarnation, so noproc. */
static int stale_local(const nd_signal *s)
{
    if (!term_is_pid(s->from)) return 0;
    nd_signal a = {0};
    a.from = s->to;
    a.to = s->from;
    a.payload = a_noproc;
    if (s->kind == ND_SIG_LINK) {
        a.kind = ND_SIG_EXIT;
    } else if (s->kind == ND_SIG_MONITOR) {
        a.kind = ND_SIG_DOWN;
        a.ref = s->ref;
    } else {
        return 0;
    }
    nd_dist_deliver(&a);
    return 0;
}

static int hook(void *ud, const nd_signal *s)
{
    (void)ud;
    term_t node = target_node(s);
    if (!term_is_atom(node)) return 0;
    if (node == dist__st->node) return stale_local(s);
    bool autoconnect = s->kind == ND_SIG_MSG || s->kind == ND_SIG_LINK ||
                       s->kind == ND_SIG_MONITOR || s->kind == ND_SIG_EXIT2;
    for (int attempt = 0; attempt < 2; attempt++) {
        dconn *c = dist__conn_get(node, autoconnect);
        if (!c) return autoconnect ? DIST_ENOCONN : 0;
        int rc = send_sig(c, s);
        dist__conn_put(c);
        if (rc != SEND_RETRY) return rc;
    }
    return autoconnect ? DIST_ENOCONN : 0;
}

/* Queues a control message built here (I/O thread or sys processes); consumes ctl, payload. */
int dist__send_ctl(dconn *c, term_t ctl, term_t payload)
{
    int rc = 0;
    bool service = false;
    pthread_mutex_lock(&c->mu);
    int state = atomic_load(&c->state);
    if (state == C_UP) {
        etf_buf b = {0};
        rc = encode_into(c, ctl, payload, atomic_load(&c->flags), &b);
        if (!rc && (atomic_load(&c->flags) & DFLAG_DIST_HDR_ATOM_CACHE))
            rc = dist__acache_apply(&c->acache, &b);
        if (!rc) rc = q_send(c, &b, &service);
        etf_buf_free(&b);
        term_free(ctl);
        term_free(payload);
    } else if (state == C_PENDING) {
        psig *p = calloc(1, sizeof *p);
        if (p) {
            p->ctl = ctl;
            p->payload = payload;
            if (c->ptail)
                c->ptail->next = p;
            else
                c->phead = p;
            c->ptail = p;
        } else {
            term_free(ctl);
            term_free(payload);
            rc = DIST_ENOMEM;
        }
    } else {
        term_free(ctl);
        term_free(payload);
        rc = DIST_ENOCONN;
    }
    pthread_mutex_unlock(&c->mu);
    if (service) dist__service(c);
    return rc;
}

/* ================================================================ up and down */

/* The handshake is over (loop thread): encode what waited, then let senders write directly. */
static void conn_up(dconn *c, uint64_t flags, uint32_t creation, dist_tr_stream *stream)
{
    pthread_mutex_lock(&c->mu);
    c->direct = stream;
    atomic_store(&c->flags, flags);
    c->creation = creation;
    c->published = (flags & DFLAG_PUBLISHED) != 0;
    psig *p = c->phead;
    c->phead = c->ptail = NULL;
    etf_buf b = {0};
    for (psig *q = p; q; q = q->next) {
        term_t ctl = q->ctl, pl = q->payload;
        bool built = false;
        if (ctl == TERM_NONE) {
            if (!build_ctl(&q->sig, flags, &ctl, &pl) || ctl == TERM_NONE) continue;
            built = true;
        }
        if (encode_into(c, ctl, pl, flags, &b) == 0 &&
            (!(flags & DFLAG_DIST_HDR_ATOM_CACHE) || dist__acache_apply(&c->acache, &b) == 0))
            q_push(c, &b);
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
    psigs_free(p);
    waiters_notify(w, 0);
    atomic_fetch_add(&dist__st->st_up, 1);
    dist__log(DIST_LOG_NOTICE, "event=nodeup node=%s type=%s flags=0x%llx", aname(c->node),
              c->published ? "normal" : "hidden", (unsigned long long)flags);
    dist__nodemon_notify(c->node, 1);
}

/*
** Node-down, the one place (loop thread): the connection leaves the table and turns DOWN (later
** senders reconnect or get noconnection), then every link over it breaks with noconnection,
** every monitor fires DOWN noconnection, monitors held by the peer are dropped, pending spawn
** requests fail, and node monitors get {nodedown, Node}.
*/
static void node_down(dconn *c, const char *why, int err)
{
    bool in_tab = conn_unlink(c);
    pthread_mutex_lock(&c->mu);
    int was = atomic_exchange(&c->state, C_DOWN);
    if (was != C_DOWN) c->down_err = err ? err : DIST_ENOCONN;
    c->direct = NULL;
    dent *links = dist__tab_take_all(&c->links);
    dent *mons = dist__tab_take_all(&c->mons);
    psig *pend = c->phead;
    c->phead = c->ptail = NULL;
    size_t qb;
    dchunk *q = dist__take_queue(c, &qb);
    cwaiter *w = c->waiters;
    c->waiters = NULL;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    waiters_notify(w, c->down_err);
    if (c->rx) {
        dist__rx_free(c->rx);
        free(c->rx);
        c->rx = NULL;
    }
    if (was == C_DOWN) {
        if (in_tab) dist__conn_put(c);
        return;
    }
    chunks_free(q);
    psigs_free(pend);
    size_t nl = 0, nm = 0;
    while (links) {
        dent *e = links;
        links = e->next;
        nd_signal s = {ND_SIG_EXIT, e->b, e->a, a_noconnection, TERM_NONE, 0};
        nd_dist_deliver(&s);
        term_free(e->a);
        term_free(e->b);
        term_free(e->c);
        free(e);
        nl++;
    }
    while (mons) {
        dent *e = mons;
        mons = e->next;
        term_t local = term_tuple_elem(e->c, 0), remote = term_tuple_elem(e->c, 1);
        if (e->dir == MON_OUT) {
            nd_signal s = {ND_SIG_DOWN, remote, local, a_noconnection, e->a, 0};
            nd_dist_deliver(&s);
        } else if (e->dir == MON_IN) {
            nd_signal s = {ND_SIG_DEMONITOR, remote, local, TERM_NONE, e->a, 0};
            nd_dist_deliver(&s);
        } else {
            nd_send(local, term_tuplev(4, a_spawn_reply, term_dup(e->a), a_error, a_noconnection));
        }
        term_free(e->a);
        term_free(e->b);
        term_free(e->c);
        free(e);
        nm++;
    }
    if (was == C_UP) {
        atomic_fetch_add(&dist__st->st_down, 1);
        dist__log(DIST_LOG_NOTICE, "event=nodedown node=%s reason=\"%s\" links=%zu monitors=%zu",
                  aname(c->node), why, nl, nm);
    } else {
        dist__log(DIST_LOG_WARNING, "event=connect_failed node=%s reason=\"%s\"", aname(c->node),
                  why);
    }
    dist__nodemon_notify(c->node, was == C_UP ? 0 : -1);
    if (in_tab) dist__conn_put(c);
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
        nd_send(send_to[i], term_tuplev(2, up ? a_nodeup : a_nodedown, node));
        term_free(send_to[i]);
    }
    while (fire) {
        nodemon *m = fire;
        fire = m->next;
        nd_send(m->pid, term_tuplev(2, a_nodedown, node));
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

int dist_monitor_node(term_t node, bool on)
{
    dist_state *st = dist__st;
    term_t self = nd_self();
    if (!st) return DIST_ESTATE;
    if (self == TERM_NONE) return DIST_ENOTPROC;
    if (!term_is_atom(node)) return DIST_EINVAL;
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

int dist_monitor_nodes(bool on)
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

/* ================================================================ incoming signals */

static bool local_pid(term_t t)
{
    term_pid_info pi;
    return term_pid_get(t, &pi) == 0 && pi.node == dist__st->node;
}

/* Dispatches one control message from c's peer (I/O thread). Consumes ctl. */
void dist__deliver(dconn *c, dist_ctl *m)
{
    nd_signal s = {0};
    s.from = m->from;
    s.to = m->to;
    s.payload = m->payload;
    s.ref = m->ref;
    s.id = m->id;
    atomic_fetch_add_explicit(&dist__st->st_msgs_in, 1, memory_order_relaxed);
    switch (m->op) {
    case DOP_SEND:
        if (!local_pid(m->to)) break;
        s.kind = ND_SIG_MSG;
        nd_dist_deliver(&s);
        break;
    case DOP_REG_SEND:
        s.kind = ND_SIG_MSG;
        nd_dist_deliver(&s);
        break;
    case DOP_LINK:
        if (!local_pid(m->to)) break;
        pthread_mutex_lock(&c->mu);
        dist__tab_add(&c->links, m->to, m->from, TERM_NONE, 0, true);
        pthread_mutex_unlock(&c->mu);
        s.kind = ND_SIG_LINK;
        nd_dist_deliver(&s);
        break;
    case DOP_UNLINK_ID:
    case DOP_EXIT:
        if (!local_pid(m->to)) break;
        pthread_mutex_lock(&c->mu);
        dist__tab_del(&c->links, m->to, m->from, NULL);
        pthread_mutex_unlock(&c->mu);
        s.kind = m->op == DOP_EXIT ? ND_SIG_EXIT : ND_SIG_UNLINK_ID;
        nd_dist_deliver(&s);
        break;
    case DOP_UNLINK_ID_ACK:
        if (!local_pid(m->to)) break;
        s.kind = ND_SIG_UNLINK_ID_ACK;
        nd_dist_deliver(&s);
        break;
    case DOP_EXIT2:
        if (!local_pid(m->to)) break;
        s.kind = ND_SIG_EXIT2;
        nd_dist_deliver(&s);
        break;
    case DOP_MONITOR_P: {
        term_t pid = term_is_atom(m->to) ? nd_whereis(m->to) : term_dup(m->to);
        if (pid == TERM_NONE || !local_pid(pid)) {
            term_t ctl = term_tuplev(4, term_small(DOP_PAYLOAD_MONITOR_P_EXIT), term_dup(m->to),
                                     term_dup(m->from), term_dup(m->ref));
            if (!(atomic_load(&c->flags) & DFLAG_EXIT_PAYLOAD)) {
                term_free(ctl);
                ctl = term_tuplev(5, term_small(DOP_MONITOR_P_EXIT), term_dup(m->to),
                                  term_dup(m->from), term_dup(m->ref), a_noproc);
                dist__send_ctl(c, ctl, TERM_NONE);
            } else {
                dist__send_ctl(c, ctl, a_noproc);
            }
            term_free(pid);
            break;
        }
        pthread_mutex_lock(&c->mu);
        /* by name: the DOWN must name the process as the monitor did ({Name, Node}) */
        dist__tab_add(&c->mons, m->ref, TERM_NONE,
                      term_tuplev(3, term_dup(pid), term_dup(m->from),
                                  term_is_atom(m->to) ? m->to : TERM_NIL),
                      MON_IN, true);
        pthread_mutex_unlock(&c->mu);
        s.kind = ND_SIG_MONITOR;
        s.to = pid;
        nd_dist_deliver(&s);
        term_free(pid);
        break;
    }
    case DOP_DEMONITOR_P: {
        dent e;
        pthread_mutex_lock(&c->mu);
        bool had = dist__tab_del(&c->mons, m->ref, TERM_NONE, &e);
        pthread_mutex_unlock(&c->mu);
        if (!had) break;
        s.kind = ND_SIG_DEMONITOR;
        s.to = term_tuple_elem(e.c, 0);
        nd_dist_deliver(&s);
        term_free(e.a);
        term_free(e.b);
        term_free(e.c);
        break;
    }
    case DOP_MONITOR_P_EXIT:
        if (!local_pid(m->to)) break;
        pthread_mutex_lock(&c->mu);
        dist__tab_del(&c->mons, m->ref, TERM_NONE, NULL);
        pthread_mutex_unlock(&c->mu);
        s.kind = ND_SIG_DOWN;
        nd_dist_deliver(&s);
        break;
    case DOP_SPAWN_REQUEST:
        dist__spawn_request(c, m);
        break;
    case DOP_SPAWN_REPLY:
        dist__spawn_reply(c, m);
        break;
    case DOP_ALTACT_SIG_SEND: {
        /* a priority signal is delivered as an ordinary one: Girder processes have no priority
        ** aliases, so no signal can jump their queue */
        bool ok;
        if (m->id & ALTACT_ALIAS) {
            term_ref_info ri;
            ok = term_ref_get(m->to, &ri) == 0 && ri.node == dist__st->node;
        } else {
            ok = (m->id & ALTACT_NAME) || local_pid(m->to);
        }
        if (!ok) break;
        s.kind = (m->id & ALTACT_EXIT) ? ND_SIG_EXIT2 : ND_SIG_MSG;
        nd_dist_deliver(&s);
        break;
    }
    case DOP_ALIAS_SEND: {
        term_ref_info ri;
        if (term_ref_get(m->to, &ri) != 0 || ri.node != dist__st->node) break;
        s.kind = ND_SIG_MSG;
        nd_dist_deliver(&s); /* dropped by libnode unless the alias is active */
        break;
    }
    default:
        /* GROUP_LEADER, NODE_LINK, old UNLINK: ignored */
        break;
    }
    dist__ctl_free(m);
}

/* ================================================================ public API */

typedef struct cwait_ud {
    term_t ref;
} cwait_ud;

static bool is_connect_answer(term_t m, void *ud)
{
    return term_is_tuple(m) && term_tuple_arity(m) == 3 &&
           term_tuple_elem(m, 0) == a_dist_connect &&
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
    clock_gettime(CLOCK_REALTIME, &dl);
    if (timeout_ms >= 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (timeout_ms % 1000) * 1000000;
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
    }
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
    dist_state *st = dist__st;
    if (!st) return DIST_ESTATE;
    if (!term_is_atom(node)) return DIST_EINVAL;
    if (node == st->node) return 0;
    dconn *c = dist__conn_get(node, true);
    if (!c) return DIST_ENOCONN;
    int rc =
        nd_in_process() ? connect_wait_process(c, timeout_ms) : connect_wait_thread(c, timeout_ms);
    dist__conn_put(c);
    return rc;
}

int dist_disconnect(term_t node)
{
    dconn *c = dist__conn_get(node, false);
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
    dist_state *st = dist__st;
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
    return l;
}

void dist_get_stats(dist_stats *o)
{
    dist_state *st = dist__st;
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
}

uint16_t dist_listen_port(void)
{
    return dist__st ? dist__st->port : 0;
}

/* ================================================================ start / stop */

static int read_cookie(char *out, size_t cap)
{
    const char *home = getenv("HOME");
    char path[4096];
    if (!home) return DIST_ECOOKIE;
    snprintf(path, sizeof path, "%s/.erlang.cookie", home);
    FILE *f = fopen(path, "r");
    if (!f) return DIST_ECOOKIE;
    size_t n = fread(out, 1, cap - 1, f);
    fclose(f);
    out[n] = 0;
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ')) out[--n] = 0;
    return n ? 0 : DIST_ECOOKIE;
}

static int make_name(dist_state *st, const dist_config *cfg)
{
    if (!strcmp(cfg->name, "undefined") || !strncmp(cfg->name, "undefined@", 10)) {
        /* a dynamic name: only the host goes out, in the name request */
        st->dynamic = true;
        if (cfg->name[9] == '@') {
            if (!cfg->name[10] || strchr(cfg->name + 10, '@')) return DIST_ENAME;
            snprintf(st->host, sizeof st->host, "%s", cfg->name + 10);
        } else {
            char h[256];
            if (gethostname(h, sizeof h) != 0) return DIST_ENAME;
            h[sizeof h - 1] = 0;
            if (!cfg->longnames) {
                char *dot = strchr(h, '.');
                if (dot) *dot = 0;
            }
            snprintf(st->host, sizeof st->host, "%s", h);
        }
        snprintf(st->name, sizeof st->name, "%s", st->host);
        return cfg->connect ? 0 : DIST_EINVAL;
    }
    const char *at = strchr(cfg->name, '@');
    if (at) {
        if (at == cfg->name || !at[1] || strchr(at + 1, '@')) return DIST_ENAME;
        snprintf(st->name, sizeof st->name, "%s", cfg->name);
        snprintf(st->host, sizeof st->host, "%s", at + 1);
    } else {
        if (!cfg->name[0]) return DIST_ENAME;
        char h[256];
        if (gethostname(h, sizeof h) != 0) return DIST_ENAME;
        h[sizeof h - 1] = 0;
        if (!cfg->longnames) {
            char *dot = strchr(h, '.');
            if (dot) *dot = 0;
        }
        snprintf(st->host, sizeof st->host, "%s", h);
        if (snprintf(st->name, sizeof st->name, "%s@%s", cfg->name, h) >= (int)sizeof st->name)
            return DIST_ENAME;
    }
    if (!cfg->longnames && strchr(st->host, '.')) return DIST_ENAME;
    if (strlen(st->name) > 255) return DIST_ENAME;
    return 0;
}

/* ================================================================ the machine's owner */

static dist_peer *own_peer_get(void *ud, term_t node, bool create)
{
    (void)ud;
    dist_state *st = dist__st;
    if (!term_is_atom(node)) return NULL;
    pthread_mutex_lock(&st->mu);
    dconn *c = st->tab[bucket(node)];
    while (c && c->node != node) c = c->tab_next;
    if (!c && create && !st->stopping) {
        c = conn_new(node);
        if (c) {
            c->tab_next = st->tab[bucket(node)];
            st->tab[bucket(node)] = c;
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
    if (c->rx)
        dist__rx_init(c->rx, st->cfg.max_message, st->cfg.max_new_atoms,
                      (info->flags & DFLAG_DIST_HDR_ATOM_CACHE) != 0);
    conn_up(c, info->flags, info->creation, c->rx ? info->stream : NULL);
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
    node_down(c, why, err);
}

static int own_frame(void *ud, dist_peer *c, const uint8_t *f, size_t n, const char **why)
{
    (void)ud;
    if (!c->rx) return (*why = "out of memory", DIST_ENOMEM);
    dist_ctl ctl;
    int rc = dist__rx_frame(c->rx, f, n, &ctl, why);
    if (rc < 0) {
        atomic_fetch_add(&dist__st->st_proto, 1);
        return rc;
    }
    if (rc == 1) dist__deliver(c, &ctl);
    return 0;
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
    send_tick(c);
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

static void started(int status)
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
        started(status == 0 ? 0 : DIST_EEPMD);
        return;
    }
    dist__log(DIST_LOG_ERROR, "event=epmd_lost node=%s", st->name);
}

static void own_log(void *ud, int level, const char *line)
{
    (void)ud;
    dist__log(level, "%s", line);
}

/* Every connection goes down and the machine closes its channels, then the transport's own
** handles; the loop ends after that. */
static void shutdown_all(void)
{
    dist_state *st = dist__st;
    dconn *all[256];
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&st->mu);
        for (size_t i = 0; i < TAB_BUCKETS && n < 256; i++)
            for (dconn *c = st->tab[i]; c && n < 256; c = c->tab_next) {
                atomic_fetch_add(&c->refs, 1);
                all[n++] = c;
            }
        pthread_mutex_unlock(&st->mu);
        if (!n) break;
        for (size_t i = 0; i < n; i++) {
            dist__sm_close(st->sm, all[i], "distribution stopped");
            dist__conn_put(all[i]);
        }
    }
    dist__sm_shutdown(st->sm);
    st->tr->ops->shutdown(st->tr);
}

/* The service list: what other threads asked the loop to do for their connections. */
static void own_service(void *ud)
{
    (void)ud;
    dist_state *st = dist__st;
    pthread_mutex_lock(&st->svc_mu);
    dconn *list = st->svc_head;
    st->svc_head = NULL;
    bool stopping = st->stopping, shut = st->shut;
    if (stopping) st->shut = true;
    for (dconn *c = list; c; c = c->svc_next) c->svc_queued = false;
    pthread_mutex_unlock(&st->svc_mu);
    while (list) {
        dconn *c = list;
        list = c->svc_next;
        if (!stopping) {
            pthread_mutex_lock(&c->mu);
            bool close = c->want_close, connect = c->want_connect;
            const char *why = c->close_why;
            c->want_close = c->want_connect = false;
            pthread_mutex_unlock(&c->mu);
            if (close)
                dist__sm_close(st->sm, c, why ? why : "closed");
            else if (connect)
                dist__sm_connect(st->sm, c);
            else
                dist__sm_kick(st->sm, c);
        }
        dist__conn_put(c);
    }
    if (stopping && !shut) shutdown_all();
}

static const dist_sm_owner owner = {
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

/* ================================================================ start / stop */

static int setup_ms(const dist_config *cfg)
{
    return cfg->handshake_timeout_ms > 0 ? cfg->handshake_timeout_ms : 7000;
}

/* Makes the transport and the machine, listens, registers; returns once the creation is known
** (from the port mapper, or made up when there is none) or registration failed. */
static int io_start(dist_state *st)
{
    dist_tr_user none = {0};
    st->tr = dist__tcp_new(&none, st->cfg.epmd_port);
    if (!st->tr) return DIST_ENOMEM;
    dist_sm_config sc = {0};
    sc.name = st->name;
    sc.cookie = st->cookie;
    sc.flags = st->flags;
    sc.creation = st->creation;
    sc.ticktime_ms = st->ticktime_s * 1000;
    sc.tick_intensity = 4;
    sc.setup_ms = setup_ms(&st->cfg);
    sc.max_message = st->cfg.max_message;
    st->sm = dist__sm_new(&sc, &owner, st->tr);
    if (!st->sm) {
        st->tr->ops->destroy(st->tr);
        return DIST_ENOMEM;
    }
    const dist_tr_ops *ops = st->tr->ops;
    int rc = 0;
    bool wait = false;
    if (!st->dynamic) {
        rc = ops->listen(st->tr, st->cfg.listen_addr, st->cfg.listen_port, &st->port);
        if (!rc && !st->cfg.no_epmd) {
            const char *at = strchr(st->name, '@');
            char alive[HS_MAX_NAME + 1];
            memcpy(alive, st->name, (size_t)(at - st->name));
            alive[at - st->name] = 0;
            rc = ops->publish(st->tr, alive, st->port, st->cfg.hidden, sc.setup_ms);
            wait = rc == 0;
        } else if (!rc) {
            uint32_t v = 0;
            while (v < 4) ops->random(st->tr, &v, sizeof v);
            st->creation = v;
            dist__sm_set_identity(st->sm, NULL, v, st->flags);
        }
    }
    if (!rc) rc = ops->run(st->tr);
    if (rc) {
        dist__sm_shutdown(st->sm);
        dist__sm_free(st->sm);
        ops->destroy(st->tr);
        st->sm = NULL;
        st->tr = NULL;
        return rc;
    }
    if (!wait) return 0;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += sc.setup_ms / 1000 + 2;
    pthread_mutex_lock(&st->start_mu);
    while (!st->started)
        if (pthread_cond_timedwait(&st->start_cv, &st->start_mu, &dl) != 0) break;
    rc = st->started ? st->start_status : DIST_ETIMEOUT;
    pthread_mutex_unlock(&st->start_mu);
    return rc;
}

/* Asks the loop to bring everything down and waits up to timeout_ms for it to end. */
static int io_stop(dist_state *st, int64_t timeout_ms)
{
    pthread_mutex_lock(&st->svc_mu);
    st->stopping = true;
    pthread_mutex_unlock(&st->svc_mu);
    dist__sm_wake(st->sm);
    int rc = st->tr->ops->join(st->tr, timeout_ms);
    if (rc) return rc;
    dist__sm_free(st->sm);
    st->tr->ops->destroy(st->tr);
    st->sm = NULL;
    st->tr = NULL;
    return 0;
}

static void state_free(dist_state *st)
{
    free(st->tab);
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->svc_mu);
    pthread_mutex_destroy(&st->start_mu);
    pthread_cond_destroy(&st->start_cv);
    free(st);
}

int dist_start(const dist_config *cfg)
{
    if (dist__st) return DIST_ESTATE;
    if (!cfg || !cfg->name) return DIST_EINVAL;
    term_init();
    a_noconnection = term_atom("noconnection");
    a_noproc = term_atom("noproc");
    a_nodeup = term_atom("nodeup");
    a_nodedown = term_atom("nodedown");
    a_spawn_reply = term_atom("spawn_reply");
    a_error = term_atom("error");
    a_empty = term_atom("");
    a_dist_connect = term_atom("$dist_connect");
    dist_state *st = calloc(1, sizeof *st);
    if (!st) return DIST_ENOMEM;
    st->cfg = *cfg;
    int rc = make_name(st, cfg);
    if (!rc && cfg->cookie) {
        if (strlen(cfg->cookie) > HS_MAX_COOKIE)
            rc = DIST_EINVAL;
        else
            memcpy(st->cookie, cfg->cookie, strlen(cfg->cookie) + 1);
    } else if (!rc) {
        rc = read_cookie(st->cookie, sizeof st->cookie);
    }
    if (rc) {
        free(st);
        return rc;
    }
    st->cfg.name = st->name;
    st->cfg.cookie = NULL;
    st->ticktime_s = cfg->ticktime_s ? cfg->ticktime_s : 60;
    st->frag_size = cfg->frag_size ? cfg->frag_size : 65536;
    st->flags = DIST_OUR_FLAGS | (cfg->hidden ? 0 : DFLAG_PUBLISHED);
    if (st->dynamic) st->flags = DIST_OUR_FLAGS | DFLAG_NAME_ME; /* as dist_util: hidden */
    st->node = term_atom(st->dynamic ? "nonode@nohost" : st->name);
    if (st->node == TERM_NONE) {
        free(st);
        return DIST_ENAME;
    }
    st->tab = calloc(TAB_BUCKETS, sizeof *st->tab);
    if (!st->tab) {
        free(st);
        return DIST_ENOMEM;
    }
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->svc_mu, NULL);
    pthread_mutex_init(&st->start_mu, NULL);
    pthread_cond_init(&st->start_cv, NULL);
    dist__st = st;
    rc = io_start(st); /* listens, registers, sets creation */
    if (rc) {
        if (st->tr) io_stop(st, 5000);
        dist__st = NULL;
        state_free(st);
        return rc;
    }
    if (st->dynamic) {
        /* the first connection names us: the loop sets name, node and creation (and libnode's
        ** node) before the connection carries anything, so the hook must be in place */
        nd_set_dist_hook(hook, NULL);
        dist__sys_exports(); /* rpc:call may arrive as soon as we are named */
        int64_t to = 2 * (int64_t)setup_ms(cfg);
        term_t peer = term_atom(cfg->connect);
        rc = peer == TERM_NONE ? DIST_EINVAL : dist_connect(peer, to);
        if (!rc && st->dynamic) rc = DIST_ENOCONN;
        if (rc) {
            dist_stop(5000);
            return rc == DIST_EINVAL ? rc : DIST_ENOCONN;
        }
        st->cfg.name = st->name;
    }
    nd_set_node(st->node, st->creation);
    nd_set_dist_hook(hook, NULL);
    rc = dist__sys_start();
    if (rc) {
        dist_stop(5000);
        return rc;
    }
    dist__log(DIST_LOG_NOTICE,
              "event=started node=%s port=%u creation=%u hidden=%d ticktime=%u transport=%s%s",
              st->name, st->port, st->creation, cfg->hidden || cfg->connect ? 1 : 0, st->ticktime_s,
              st->tr->ops->name,
              cfg->connect && strcmp(st->name, cfg->name) ? " named_by_peer=1" : "");
    return 0;
}

/*
** Stops the system processes, brings every connection down, and waits up to timeout_ms (< 0:
** forever) for the loop to end. DIST_ETIMEOUT leaves the distribution stopping but not freed
** (a later call may finish it).
*/
int dist_stop(int64_t timeout_ms)
{
    dist_state *st = dist__st;
    if (!st) return DIST_ESTATE;
    if (!st->stopping) {
        dist__sys_stop();
        pthread_mutex_lock(&st->mu);
        st->stopping = true;
        pthread_mutex_unlock(&st->mu);
    }
    int rc = io_stop(st, timeout_ms); /* node-down for every connection, then the loop ends */
    if (rc) return rc;
    nd_set_dist_hook(NULL, NULL);
    pthread_mutex_lock(&st->mu);
    while (st->nodemons) {
        nodemon *m = st->nodemons;
        st->nodemons = m->next;
        term_free(m->pid);
        free(m);
    }
    pthread_mutex_unlock(&st->mu);
    dist__exports_free();
    dist__log(DIST_LOG_NOTICE, "event=stopped node=%s", st->name);
    dist__st = NULL;
    state_free(st);
    return 0;
}
