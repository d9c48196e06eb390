/* The in-memory transport: byte pipes, a manual clock and a port-mapper table, all in one thread.
 */
#include "transport.h"
#include "dist_int.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
** Everything happens in the thread that calls dist__mem_run / dist__mem_advance, in the order of
** an event queue sorted by (time, sequence): no sockets, no sleeps, repeatable for a seed. Only
** wake() may be called from other threads. Closed streams and freed timers are kept until the
** network is freed (events may still name them; they are skipped).
*/

typedef struct mem_tr mem_tr;

enum { EV_CONNECT = 1, EV_DELIVER, EV_WRITTEN, EV_TIMER, EV_PUBLISHED };

typedef struct mev {
    struct mev *next;
    uint64_t at, seq;
    int kind;
    void *obj;    /* stream, timer, or transport */
    void *req;    /* EV_WRITTEN: the write's req */
    uint64_t gen; /* EV_TIMER: the arming it belongs to */
    int status;
    uint32_t creation;
} mev;

typedef struct mname {
    struct mname *next;
    char alive[HS_MAX_NAME + 1], host[HS_MAX_NAME + 1];
    mem_tr *t; /* NULL: a black hole */
    int version;
} mname;

typedef struct msilence {
    struct msilence *next;
    char a[HS_MAX_NAME + 1], b[HS_MAX_NAME + 1];
} msilence;

struct dist_tr_stream {
    mem_tr *t;
    dist_tr_stream *peer; /* NULL: a black hole's end, or not connected yet */
    dist_tr_stream *all_next;
    void *ud;
    char node[2 * HS_MAX_NAME + 2]; /* connect: the node dialled */
    bool closed, reading, peer_closed, eof_sent, deliver_queued, blackhole;
    uint8_t *in;
    size_t inlen, incap, delivered;
    int timeout_ms;
};

struct dist_tr_timer {
    mem_tr *t;
    struct dist_tr_timer *all_next;
    void (*cb)(void *ud);
    void *ud;
    uint64_t gen, repeat;
    bool dead;
};

struct mem_tr {
    dist_tr base;
    dist_mem_net *net;
    mem_tr *next;
    char host[HS_MAX_NAME + 1];
    bool listening, shut;
    uint16_t port;
    atomic_bool woken;
};

struct dist_mem_net {
    uint64_t now_ms, seq, rng;
    mev *q;
    mem_tr *trs, *dead;
    mname *names;
    msilence *silences;
    dist_tr_stream *streams;
    struct dist_tr_timer *timers;
    size_t chunk, split_at;
    uint16_t next_port;
};

#define M(x) ((mem_tr *)(x))

/* ================================================================ events */

static void push(dist_mem_net *net, uint64_t at, int kind, void *obj, void *req, uint64_t gen,
                 int status)
{
    mev *e = calloc(1, sizeof *e);
    if (!e) abort(); /* a test transport: running out here is a test failure */
    e->at = at;
    e->seq = net->seq++;
    e->kind = kind;
    e->obj = obj;
    e->req = req;
    e->gen = gen;
    e->status = status;
    mev **l = &net->q;
    while (*l && ((*l)->at < at || ((*l)->at == at && (*l)->seq < e->seq))) l = &(*l)->next;
    e->next = *l;
    *l = e;
}

static uint64_t next_rand(dist_mem_net *net)
{
    uint64_t x = net->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    net->rng = x;
    return x;
}

static bool silenced(dist_mem_net *net, const char *a, const char *b)
{
    for (msilence *s = net->silences; s; s = s->next)
        if (!strcmp(s->a, a) && !strcmp(s->b, b)) return true;
    return false;
}

static void queue_delivery(dist_tr_stream *s)
{
    if (s->deliver_queued || s->closed) return;
    s->deliver_queued = true;
    push(s->t->net, s->t->net->now_ms, EV_DELIVER, s, NULL, 0, 0);
}

/* Hands s's user what has arrived for it, in one read of the allowed size. */
static void deliver(dist_tr_stream *s)
{
    dist_mem_net *net = s->t->net;
    dist_tr_user *u = &s->t->base.user;
    s->deliver_queued = false;
    if (s->closed || !s->reading) return;
    if (s->peer && silenced(net, s->peer->t->host, s->t->host)) return;
    if (s->inlen == 0) {
        if (s->peer_closed && !s->eof_sent) {
            s->eof_sent = true;
            u->read(u->ud, s, DIST_ENOCONN);
        }
        return;
    }
    size_t n = s->inlen;
    if (net->chunk && n > net->chunk) n = net->chunk;
    if (net->split_at && s->delivered < net->split_at && s->delivered + n > net->split_at)
        n = net->split_at - s->delivered;
    uint8_t *buf = NULL;
    size_t cap = 0;
    u->alloc(u->ud, s, &buf, &cap);
    if (!cap) {
        u->read(u->ud, s, DIST_ENOMEM);
        return;
    }
    if (n > cap) n = cap;
    memcpy(buf, s->in, n);
    memmove(s->in, s->in + n, s->inlen - n);
    s->inlen -= n;
    s->delivered += n;
    u->read(u->ud, s, (ssize_t)n);
    if (!s->closed && (s->inlen || s->peer_closed)) queue_delivery(s);
}

static void run_event(dist_mem_net *net, mev *e)
{
    switch (e->kind) {
    case EV_DELIVER:
        deliver(e->obj);
        break;
    case EV_WRITTEN: {
        dist_tr_stream *s = e->obj;
        if (!s->closed) s->t->base.user.written(s->t->base.user.ud, s, 0, e->req);
        break;
    }
    case EV_TIMER: {
        struct dist_tr_timer *tm = e->obj;
        if (tm->dead || tm->gen != e->gen) break;
        if (tm->repeat) push(net, net->now_ms + tm->repeat, EV_TIMER, tm, NULL, tm->gen, 0);
        tm->cb(tm->ud);
        break;
    }
    case EV_PUBLISHED: {
        mem_tr *t = e->obj;
        if (!t->shut) t->base.user.published(t->base.user.ud, e->status, (uint32_t)e->gen);
        break;
    }
    case EV_CONNECT: {
        dist_tr_stream *s = e->obj;
        dist_tr_user *u = &s->t->base.user;
        if (s->closed) break;
        const char *at = strchr(s->node, '@');
        mname *n = net->names;
        for (; n; n = n->next)
            if (strlen(n->alive) == (size_t)(at - s->node) &&
                !memcmp(n->alive, s->node, (size_t)(at - s->node)) && !strcmp(n->host, at + 1))
                break;
        if (!n || (n->t && (n->t->shut || !n->t->listening))) {
            char why[2 * HS_MAX_NAME + 64];
            snprintf(why, sizeof why, "port mapper lookup of %s failed: name not registered",
                     s->node);
            u->connected(u->ud, s, DIST_ENOCONN, 0, why);
            break;
        }
        if (!n->t) {
            s->blackhole = true;
            u->connected(u->ud, s, 0, n->version, NULL);
            break;
        }
        dist_tr_stream *o = calloc(1, sizeof *o);
        if (!o) abort();
        o->t = n->t;
        o->all_next = net->streams;
        net->streams = o;
        o->peer = s;
        s->peer = o;
        n->t->base.user.accepted(n->t->base.user.ud, o);
        if (!s->closed) u->connected(u->ud, s, 0, n->version, NULL);
        break;
    }
    }
}

size_t dist__mem_run(dist_mem_net *net, size_t max_events)
{
    size_t ran = 0;
    for (;;) {
        for (mem_tr *t = net->trs; t; t = t->next)
            if (atomic_exchange(&t->woken, false) && !t->shut) t->base.user.wake(t->base.user.ud);
        if (ran >= max_events || !net->q || net->q->at > net->now_ms) break;
        mev *e = net->q;
        net->q = e->next;
        run_event(net, e);
        free(e);
        ran++;
    }
    return ran;
}

void dist__mem_advance(dist_mem_net *net, uint64_t ms)
{
    uint64_t end = net->now_ms + ms;
    for (;;) {
        dist__mem_run(net, SIZE_MAX);
        if (!net->q || net->q->at > end) break;
        net->now_ms = net->q->at;
    }
    net->now_ms = end;
    dist__mem_run(net, SIZE_MAX);
}

uint64_t dist__mem_now_ms(dist_mem_net *net)
{
    return net->now_ms;
}

void dist__mem_set_delivery(dist_mem_net *net, size_t chunk, size_t split_at)
{
    net->chunk = chunk;
    net->split_at = split_at;
}

void dist__mem_silence(dist_mem_net *net, const char *a, const char *b, bool on)
{
    for (msilence **l = &net->silences; *l; l = &(*l)->next)
        if (!strcmp((*l)->a, a) && !strcmp((*l)->b, b)) {
            if (!on) {
                msilence *s = *l;
                *l = s->next;
                free(s);
                for (dist_tr_stream *st = net->streams; st; st = st->all_next)
                    if (st->inlen || st->peer_closed) queue_delivery(st);
            }
            return;
        }
    if (!on) return;
    msilence *s = calloc(1, sizeof *s);
    if (!s) abort();
    snprintf(s->a, sizeof s->a, "%s", a);
    snprintf(s->b, sizeof s->b, "%s", b);
    s->next = net->silences;
    net->silences = s;
}

void dist__mem_set_version(dist_mem_net *net, const char *alive, const char *host, int version)
{
    for (mname *n = net->names; n; n = n->next)
        if (!strcmp(n->alive, alive) && !strcmp(n->host, host)) n->version = version;
}

void dist__mem_blackhole(dist_mem_net *net, const char *alive, const char *host, int version)
{
    mname *n = calloc(1, sizeof *n);
    if (!n) abort();
    snprintf(n->alive, sizeof n->alive, "%s", alive);
    snprintf(n->host, sizeof n->host, "%s", host);
    n->version = version;
    n->next = net->names;
    net->names = n;
}

/* ================================================================ operations */

static int mem_run(dist_tr *t)
{
    (void)t;
    return 0;
}

static void mem_shutdown(dist_tr *bt)
{
    mem_tr *t = M(bt);
    t->shut = true;
    t->listening = false;
    for (mname **l = &t->net->names; *l;) {
        if ((*l)->t == t) {
            mname *n = *l;
            *l = n->next;
            free(n);
        } else {
            l = &(*l)->next;
        }
    }
}

static int mem_join(dist_tr *t, int64_t timeout_ms)
{
    (void)t;
    (void)timeout_ms;
    return 0;
}

static void mem_destroy(dist_tr *bt)
{
    mem_tr *t = M(bt);
    for (mem_tr **l = &t->net->trs; *l; l = &(*l)->next)
        if (*l == t) {
            *l = t->next;
            break;
        }
    mem_shutdown(bt);
    for (dist_tr_stream *s = t->net->streams; s; s = s->all_next)
        if (s->t == t) s->closed = true;
    for (struct dist_tr_timer *tm = t->net->timers; tm; tm = tm->all_next)
        if (tm->t == t) tm->dead = true;
    /* t, and the streams and timers that name it, stay (dead) until the network is freed */
    t->shut = true;
    t->next = t->net->dead;
    t->net->dead = t;
}

static int mem_listen(dist_tr *bt, const char *addr, uint16_t port, uint16_t *bound)
{
    mem_tr *t = M(bt);
    (void)addr;
    t->listening = true;
    t->port = port ? port : t->net->next_port++;
    *bound = t->port;
    return 0;
}

static int mem_publish(dist_tr *bt, const char *alive, uint16_t port, bool hidden, int timeout_ms)
{
    mem_tr *t = M(bt);
    (void)port;
    (void)hidden;
    (void)timeout_ms;
    for (mname *n = t->net->names; n; n = n->next)
        if (!strcmp(n->alive, alive) && !strcmp(n->host, t->host)) {
            push(t->net, t->net->now_ms, EV_PUBLISHED, t, NULL, 0, DIST_EEPMD);
            return 0;
        }
    mname *n = calloc(1, sizeof *n);
    if (!n) return DIST_ENOMEM;
    snprintf(n->alive, sizeof n->alive, "%s", alive);
    snprintf(n->host, sizeof n->host, "%s", t->host);
    n->t = t;
    n->version = 6;
    n->next = t->net->names;
    t->net->names = n;
    uint32_t creation;
    do creation = (uint32_t)next_rand(t->net);
    while (creation < 4);
    push(t->net, t->net->now_ms, EV_PUBLISHED, t, NULL, creation, 0);
    return 0;
}

static int mem_connect(dist_tr *bt, const char *node, int timeout_ms, void *ud,
                       dist_tr_stream **out)
{
    mem_tr *t = M(bt);
    const char *at = strchr(node, '@');
    if (!at || at == node || strlen(node) >= sizeof((dist_tr_stream *)0)->node) return DIST_ENAME;
    dist_tr_stream *s = calloc(1, sizeof *s);
    if (!s) return DIST_ENOMEM;
    s->t = t;
    s->ud = ud;
    s->timeout_ms = timeout_ms;
    snprintf(s->node, sizeof s->node, "%s", node);
    s->all_next = t->net->streams;
    t->net->streams = s;
    push(t->net, t->net->now_ms, EV_CONNECT, s, NULL, 0, 0);
    *out = s;
    return 0;
}

static void mem_set_ud(dist_tr_stream *s, void *ud)
{
    s->ud = ud;
}

static void *mem_get_ud(dist_tr_stream *s)
{
    return s->ud;
}

static void mem_peer(dist_tr_stream *s, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", s->peer ? s->peer->t->host : s->blackhole ? "blackhole" : "?");
}

static int mem_read_start(dist_tr_stream *s)
{
    s->reading = true;
    if (s->inlen || s->peer_closed) queue_delivery(s);
    return 0;
}

static void mem_read_stop(dist_tr_stream *s)
{
    s->reading = false;
}

static int mem_write(dist_tr_stream *s, const dist_iov *iov, size_t n, void *req)
{
    if (s->closed) return DIST_ENOCONN;
    dist_tr_stream *o = s->peer;
    if (o && !o->closed) {
        size_t total = 0;
        for (size_t i = 0; i < n; i++) total += iov[i].len;
        if (o->inlen + total > o->incap) {
            size_t nc = o->incap ? o->incap : 4096;
            while (nc < o->inlen + total) nc *= 2;
            uint8_t *nb = realloc(o->in, nc);
            if (!nb) return DIST_ENOMEM;
            o->in = nb;
            o->incap = nc;
        }
        for (size_t i = 0; i < n; i++) {
            memcpy(o->in + o->inlen, iov[i].base, iov[i].len);
            o->inlen += iov[i].len;
        }
        queue_delivery(o);
    }
    push(s->t->net, s->t->net->now_ms, EV_WRITTEN, s, req, 0, 0);
    return 0;
}

static void mem_close(dist_tr_stream *s)
{
    if (s->closed) return;
    s->closed = true;
    if (s->peer) {
        s->peer->peer_closed = true;
        queue_delivery(s->peer);
    }
}

static struct dist_tr_timer *mem_timer_new(dist_tr *bt, void (*cb)(void *ud), void *ud)
{
    mem_tr *t = M(bt);
    struct dist_tr_timer *tm = calloc(1, sizeof *tm);
    if (!tm) return NULL;
    tm->t = t;
    tm->cb = cb;
    tm->ud = ud;
    tm->all_next = t->net->timers;
    t->net->timers = tm;
    return tm;
}

static void mem_timer_start(struct dist_tr_timer *tm, uint64_t ms, uint64_t repeat_ms)
{
    tm->gen++;
    tm->repeat = repeat_ms;
    push(tm->t->net, tm->t->net->now_ms + ms, EV_TIMER, tm, NULL, tm->gen, 0);
}

static void mem_timer_stop(struct dist_tr_timer *tm)
{
    tm->gen++;
}

static void mem_timer_free(struct dist_tr_timer *tm)
{
    if (!tm) return;
    tm->gen++;
    tm->dead = true;
}

static uint64_t mem_now(dist_tr *t)
{
    return M(t)->net->now_ms * 1000000u;
}

static uint64_t mem_realtime(dist_tr *t)
{
    /* 2026-01-01T00:00:00Z plus the manual clock: log lines stay repeatable */
    return 1767225600ull * 1000000000u + mem_now(t);
}

static void mem_random(dist_tr *t, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        uint64_t r = next_rand(M(t)->net);
        size_t k = n < 8 ? n : 8;
        memcpy(p, &r, k);
        p += k;
        n -= k;
    }
}

static void mem_wake(dist_tr *t)
{
    atomic_store(&M(t)->woken, true);
}

static const dist_tr_ops mem_ops = {
    .name = "mem",
    .handshake_plen = 2,
    .run = mem_run,
    .shutdown = mem_shutdown,
    .join = mem_join,
    .destroy = mem_destroy,
    .listen = mem_listen,
    .publish = mem_publish,
    .connect = mem_connect,
    .stream_set_ud = mem_set_ud,
    .stream_ud = mem_get_ud,
    .stream_peer = mem_peer,
    .read_start = mem_read_start,
    .read_stop = mem_read_stop,
    .write = mem_write,
    .try_write = NULL,
    .close = mem_close,
    .timer_new = mem_timer_new,
    .timer_start = mem_timer_start,
    .timer_stop = mem_timer_stop,
    .timer_free = mem_timer_free,
    .now_ns = mem_now,
    .realtime_ns = mem_realtime,
    .random = mem_random,
    .wake = mem_wake,
};

dist_mem_net *dist__mem_net_new(uint64_t seed)
{
    dist_mem_net *net = calloc(1, sizeof *net);
    if (!net) return NULL;
    net->rng = seed ? seed : 0x2545F4914F6CDD1DULL;
    net->next_port = 30000;
    return net;
}

dist_tr *dist__mem_new(dist_mem_net *net, const char *host, const dist_tr_user *user)
{
    mem_tr *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->base.ops = &mem_ops;
    if (user) t->base.user = *user;
    t->net = net;
    snprintf(t->host, sizeof t->host, "%s", host);
    t->next = net->trs;
    net->trs = t;
    return &t->base;
}

void dist__mem_net_free(dist_mem_net *net)
{
    if (!net) return;
    while (net->q) {
        mev *e = net->q;
        net->q = e->next;
        free(e);
    }
    while (net->names) {
        mname *n = net->names;
        net->names = n->next;
        free(n);
    }
    while (net->silences) {
        msilence *s = net->silences;
        net->silences = s->next;
        free(s);
    }
    while (net->streams) {
        dist_tr_stream *s = net->streams;
        net->streams = s->all_next;
        free(s->in);
        free(s);
    }
    while (net->timers) {
        struct dist_tr_timer *tm = net->timers;
        net->timers = tm->all_next;
        free(tm);
    }
    while (net->dead) {
        mem_tr *t = net->dead;
        net->dead = t->next;
        free(t);
    }
    while (net->trs) { /* never destroyed by their users */
        mem_tr *t = net->trs;
        net->trs = t->next;
        free(t);
    }
    free(net);
}
