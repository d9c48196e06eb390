/* The TLS transport: the TLS engine (tls.h) run over another transport's streams, as a decorator.
 */
#include "tls.h"
#include "transport.h"

#include <girder/dist.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
** Every stream of this transport wraps one stream of the inner transport (TCP, or the
** in-memory one in tests) and one engine. The inner stream's bytes are ciphertext: the inner
** transport reads them straight into the engine's receive buffer, and writes the engine's
** output chunks as they stand (they never move while a write is in flight). The machine above
** sees plaintext only.
**
** Writing: a write of the machine is kept as its iovec (no copy) and encrypted while the
** ciphertext waiting to be sent stays under DIST_TLS_TX_HIGH; once all its plaintext is taken
** its completion is reported (always from a callback of the inner transport or a zero timer,
** never from inside write()), and its buffers go back to the machine. One inner write is in
** flight at a time, covering everything pending.
**
** Reading: after each inner read, the handshake is driven or the plaintext decrypted into the
** machine's own read buffer (chan.c's, grown to a whole frame), until the engine needs more.
**
** A stream freed while one of its callbacks runs (the machine closes it from inside) is
** freed when the outermost callback returns (busy).
*/

typedef struct tls_tr {
    dist_tr base;
    dist_tr *inner;
    dist_tls_ctx *server, *client;
    void (*log)(void *ud, int level, const char *line);
    void *log_ud;
} tls_tr;

/* One write of the machine: its buffers (the machine keeps them until reported) and req. */
typedef struct wreq {
    struct wreq *next;
    void *req;
    size_t n, i, off; /* iovecs; the first not wholly taken, and how much of it is */
    dist_iov iov[];
} wreq;

#define TX_IOV 32 /* output chunks per inner write (64 KiB each: more than TX_HIGH) */

struct dist_tr_stream {
    tls_tr *t;
    dist_tr_stream *in; /* the inner stream */
    dist_tls *e;        /* NULL until the inner stream is connected */
    void *ud;
    dist_tr_timer *defer;  /* the inner transport's: reports completions outside of write() */
    wreq *q, *qtail;       /* writes not wholly encrypted yet */
    wreq *done, *donetail; /* encrypted, completion not reported yet (oldest first) */
    size_t inflight;       /* ciphertext bytes of the inner write in flight */
    dist_iov txv[TX_IOV];
    int busy;      /* callbacks of this stream on the stack */
    int deliver;   /* an error to report through read() once reading (0: none) */
    bool outgoing; /* we are the TLS client */
    bool reading, closing, failed, eof, pumping, repump;
    uint64_t rx_bytes; /* ciphertext received */
    char host[256];    /* client: the peer's host */
    char why[300];     /* failed: why (OpenSSL's reason) */
};

#define T(x)  ((tls_tr *)(x))
#define IN(t) ((t)->inner->ops)

static void tls_log(tls_tr *t, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void tls_log(tls_tr *t, int level, const char *fmt, ...)
{
    if (!t->log) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    t->log(t->log_ud, level, line);
}

/* Text from a peer (a certificate subject) made safe for a quoted log value. */
static void sanitize(char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\')
            *s = '\'';
        else if ((unsigned char)*s < ' ' || (unsigned char)*s == 0x7f)
            *s = '?';
}

/* ================================================================ stream lifetime */

static void stream_free(dist_tr_stream *s)
{
    tls_tr *t = s->t;
    if (s->defer) IN(t)->timer_free(s->defer);
    while (s->q) {
        wreq *w = s->q;
        s->q = w->next;
        free(w);
    }
    while (s->done) {
        wreq *w = s->done;
        s->done = w->next;
        free(w);
    }
    dist__tls_free(s->e);
    free(s);
}

static void enter(dist_tr_stream *s)
{
    s->busy++;
}

/* Ends a callback; false when the stream is gone (or closing) and the caller must stop. */
static bool leave(dist_tr_stream *s)
{
    if (--s->busy == 0 && s->closing) {
        stream_free(s);
        return false;
    }
    return !s->closing;
}

static void on_defer(void *ud);

static dist_tr_stream *stream_new(tls_tr *t, void *ud, bool outgoing)
{
    dist_tr_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->t = t;
    s->ud = ud;
    s->outgoing = outgoing;
    s->defer = IN(t)->timer_new(t->inner, on_defer, s);
    if (!s->defer) {
        free(s);
        return NULL;
    }
    return s;
}

/* ================================================================ writing */

/* Hands the pending ciphertext to the inner stream unless a write is in flight. */
static void flush(dist_tr_stream *s)
{
    if (s->inflight || !s->e || !s->in || s->closing) return;
    size_t pending = dist__tls_tx_pending(s->e);
    if (!pending) return;
    struct iovec v[TX_IOV];
    int k = dist__tls_tx_iov(s->e, v, TX_IOV);
    size_t bytes = 0;
    for (int i = 0; i < k; i++) {
        s->txv[i] = (dist_iov){v[i].iov_base, v[i].iov_len};
        bytes += v[i].iov_len;
    }
    int rc = IN(s->t)->write(s->in, s->txv, (size_t)k, NULL);
    if (rc) {
        /* the inner stream is failing: its read side reports it */
        s->failed = true;
        snprintf(s->why, sizeof s->why, "cannot write: %s", dist_strerror(rc));
        if (!s->deliver) s->deliver = rc;
        IN(s->t)->timer_start(s->defer, 0, 0);
        return;
    }
    s->inflight = bytes;
}

/* The engine failed: keep its reason, send its alert, and report it through read(). */
static void engine_failed(dist_tr_stream *s)
{
    s->failed = true;
    snprintf(s->why, sizeof s->why, "%s", dist__tls_why(s->e));
    sanitize(s->why);
    flush(s); /* the alert, if OpenSSL queued one */
    if (s->in) IN(s->t)->read_stop(s->in);
    if (!s->deliver) s->deliver = DIST_ETLS;
}

/*
** Encrypts queued writes while the ciphertext waiting stays under the bound; wholly taken writes
** move to the done list. Then writes what is pending. Never calls the machine.
*/
static void pump(dist_tr_stream *s)
{
    if (s->pumping) {
        s->repump = true;
        return;
    }
    s->pumping = true;
    do {
        s->repump = false;
        while (s->q && !s->closing && !s->failed && s->e && dist__tls_established(s->e)) {
            size_t pending = dist__tls_tx_pending(s->e);
            if (pending >= DIST_TLS_TX_HIGH) break;
            size_t budget = DIST_TLS_TX_HIGH - pending;
            wreq *w = s->q;
            struct iovec v[16];
            int k = 0;
            size_t sum = 0;
            for (size_t i = w->i; i < w->n && k < 16 && sum < budget; i++) {
                size_t off = i == w->i ? w->off : 0;
                size_t len = w->iov[i].len - off;
                if (len > budget - sum) len = budget - sum;
                v[k].iov_base = (void *)(w->iov[i].base + off);
                v[k].iov_len = len;
                sum += len;
                k++;
            }
            size_t took = 0;
            int rc = k ? dist__tls_writev(s->e, v, k, &took) : 0;
            while (took) { /* advance the write's cursor */
                size_t left = w->iov[w->i].len - w->off;
                size_t a = took < left ? took : left;
                w->off += a;
                took -= a;
                if (w->off == w->iov[w->i].len) {
                    w->i++;
                    w->off = 0;
                }
            }
            while (w->i < w->n && w->iov[w->i].len == 0) w->i++;
            if (w->i == w->n) {
                s->q = w->next;
                if (!s->q) s->qtail = NULL;
                w->next = NULL;
                if (s->donetail)
                    s->donetail->next = w;
                else
                    s->done = w;
                s->donetail = w;
            }
            if (rc == DIST_TLS_AGAIN) break; /* a renegotiation waits for the peer's answer */
            if (rc < 0) {
                engine_failed(s);
                break;
            }
        }
        flush(s);
    } while (s->repump && !s->closing);
    s->pumping = false;
}

static int tls_write(dist_tr_stream *s, const dist_iov *iov, size_t n, void *req)
{
    if (s->closing || s->failed) return DIST_ENOCONN;
    wreq *w = malloc(sizeof *w + n * sizeof *iov);
    if (!w) return DIST_ENOMEM;
    w->next = NULL;
    w->req = req;
    w->n = n;
    w->i = w->off = 0;
    memcpy(w->iov, iov, n * sizeof *iov);
    if (s->qtail)
        s->qtail->next = w;
    else
        s->q = w;
    s->qtail = w;
    pump(s);
    if (s->done || s->deliver) IN(s->t)->timer_start(s->defer, 0, 0);
    return 0;
}

/* ================================================================ reading */

/* Decrypts into the machine's buffers while it reads; then reports completions and errors.
** Called inside a callback of s (busy). */
static void drain(dist_tr_stream *s)
{
    tls_tr *t = s->t;
    dist_tr_user *u = &t->base.user;
    while (s->reading && !s->closing && !s->failed && !s->eof && s->e &&
           dist__tls_established(s->e)) {
        uint8_t *buf = NULL;
        size_t cap = 0;
        u->alloc(u->ud, s, &buf, &cap);
        if (s->closing) return;
        if (!cap) {
            u->read(u->ud, s, DIST_ENOMEM);
            return;
        }
        size_t got = 0;
        int rc = 0;
        while (got < cap) { /* fill the buffer: a record gives at most 16 KiB */
            size_t k = 0;
            rc = dist__tls_read(s->e, buf + got, cap - got, &k);
            got += k;
            if (rc) break;
        }
        if (got) {
            u->read(u->ud, s, (ssize_t)got);
            if (s->closing) return;
        }
        if (rc == DIST_TLS_EOF) {
            s->eof = true; /* close_notify: the peer closed, as a TCP end of stream */
            u->read(u->ud, s, DIST_ENOCONN);
            return;
        }
        if (rc < 0) {
            engine_failed(s);
            break;
        }
        if (rc == DIST_TLS_AGAIN) break;
    }
    flush(s); /* answers to a renegotiation or KeyUpdate */
}

/* Reports what waits for the machine: finished writes, then an error. Inside a callback. */
static void report(dist_tr_stream *s)
{
    tls_tr *t = s->t;
    dist_tr_user *u = &t->base.user;
    wreq *l = s->done;
    s->done = s->donetail = NULL;
    while (l) {
        wreq *w = l;
        l = w->next;
        if (!s->closing) u->written(u->ud, s, 0, w->req);
        free(w);
    }
    if (s->deliver && s->reading && !s->closing) {
        int err = s->deliver;
        s->deliver = 0;
        u->read(u->ud, s, err);
    }
}

static void on_defer(void *ud)
{
    dist_tr_stream *s = ud;
    enter(s);
    drain(s);
    if (!s->closing) report(s);
    leave(s);
}

/* The handshake went as far as it could; once it is done, queued writes go out. */
static void handshake(dist_tr_stream *s)
{
    if (dist__tls_established(s->e)) return;
    int rc = dist__tls_handshake(s->e);
    if (rc < 0) {
        engine_failed(s);
        return;
    }
    flush(s);
    if (rc != 0) return;
    char subj[256] = "-";
    if (dist__tls_peer_subject(s->e, subj, sizeof subj) != 0) snprintf(subj, sizeof subj, "-");
    sanitize(subj);
    char peer[80];
    IN(s->t)->stream_peer(s->in, peer, sizeof peer);
    tls_log(s->t, DIST_LOG_INFO,
            "event=tls_up peer=%s role=%s version=%s cipher=%s peer_cert=\"%s\" resumed=%d", peer,
            s->outgoing ? "client" : "server", dist__tls_version(s->e), dist__tls_cipher(s->e),
            subj, dist__tls_resumed(s->e) ? 1 : 0);
    pump(s);
}

/* ================================================================ the inner transport's user */

static void in_alloc(void *ud, dist_tr_stream *in, uint8_t **buf, size_t *cap)
{
    tls_tr *t = ud;
    dist_tr_stream *s = IN(t)->stream_ud(in);
    *buf = s->e ? dist__tls_rx_space(s->e, cap) : NULL;
    if (!*buf) *cap = 0;
}

static void in_read(void *ud, dist_tr_stream *in, ssize_t n)
{
    tls_tr *t = ud;
    dist_tr_stream *s = IN(t)->stream_ud(in);
    enter(s);
    if (n < 0) {
        /* end of stream or error under TLS; before the handshake ended, stream_fault says so */
        if (!s->deliver) s->deliver = (int)n;
        IN(t)->read_stop(in);
    } else if (!s->failed && !s->eof) {
        dist__tls_rx_commit(s->e, (size_t)n);
        s->rx_bytes += (uint64_t)n;
        handshake(s);
        drain(s);
        pump(s);
    }
    if (!s->closing) report(s);
    leave(s);
}

static void in_written(void *ud, dist_tr_stream *in, int status, void *req)
{
    tls_tr *t = ud;
    dist_tr_stream *s = IN(t)->stream_ud(in);
    (void)req;
    enter(s);
    dist__tls_tx_consume(s->e, s->inflight);
    s->inflight = 0;
    if (status < 0) {
        if (!s->deliver) s->deliver = status;
    } else {
        pump(s);
    }
    if (!s->closing) report(s);
    leave(s);
}

static void in_accepted(void *ud, dist_tr_stream *in)
{
    tls_tr *t = ud;
    dist_tr_stream *s = stream_new(t, NULL, false);
    if (s && !(s->e = dist__tls_new(t->server, NULL))) {
        stream_free(s);
        s = NULL;
    }
    if (!s) {
        IN(t)->close(in);
        return;
    }
    s->in = in;
    IN(t)->stream_set_ud(in, s);
    if (IN(t)->read_start(in) != 0) {
        IN(t)->close(in);
        stream_free(s);
        return;
    }
    enter(s);
    t->base.user.accepted(t->base.user.ud, s);
    leave(s);
}

static void in_connected(void *ud, dist_tr_stream *in, int status, int version, const char *why)
{
    tls_tr *t = ud;
    dist_tr_stream *s = IN(t)->stream_ud(in);
    dist_tr_user *u = &t->base.user;
    enter(s);
    if (status == 0 && !(s->e = dist__tls_new(t->client, s->host))) {
        status = DIST_ENOMEM;
        why = "out of memory for a TLS connection";
    }
    if (status == 0 && (status = IN(t)->read_start(in)) != 0) why = "cannot read";
    if (status == 0) {
        handshake(s); /* the ClientHello */
        u->connected(u->ud, s, s->failed ? DIST_ETLS : 0, version, s->failed ? s->why : NULL);
    } else {
        u->connected(u->ud, s, status, 0, why);
    }
    leave(s);
}

static void in_wake(void *ud)
{
    tls_tr *t = ud;
    t->base.user.wake(t->base.user.ud);
}

static void in_published(void *ud, int status, uint32_t creation)
{
    tls_tr *t = ud;
    t->base.user.published(t->base.user.ud, status, creation);
}

/* ================================================================ stream operations */

static int tls_connect(dist_tr *bt, const char *node, int timeout_ms, void *ud,
                       dist_tr_stream **out)
{
    tls_tr *t = T(bt);
    const char *at = strchr(node, '@');
    if (!at || at == node || !at[1] || strlen(at + 1) >= sizeof((dist_tr_stream *)0)->host)
        return DIST_ENAME;
    dist_tr_stream *s = stream_new(t, ud, true);
    if (!s) return DIST_ENOMEM;
    snprintf(s->host, sizeof s->host, "%s", at + 1);
    int rc = IN(t)->connect(t->inner, node, timeout_ms, s, &s->in);
    if (rc) {
        stream_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void tls_set_ud(dist_tr_stream *s, void *ud)
{
    s->ud = ud;
}

static void *tls_get_ud(dist_tr_stream *s)
{
    return s->ud;
}

static void tls_peer(dist_tr_stream *s, char *buf, size_t cap)
{
    IN(s->t)->stream_peer(s->in, buf, cap);
}

static int tls_read_start(dist_tr_stream *s)
{
    if (s->reading) return 0;
    s->reading = true;
    int rc = s->in && s->e ? IN(s->t)->read_start(s->in) : 0;
    /* whatever arrived meanwhile (plaintext in the engine, an error) is reported from a timer */
    IN(s->t)->timer_start(s->defer, 0, 0);
    return rc;
}

/* The handshake needs the inner stream read; once it is over, stopping stops that too. */
static void tls_read_stop(dist_tr_stream *s)
{
    s->reading = false;
    if (s->in && s->e && dist__tls_established(s->e)) IN(s->t)->read_stop(s->in);
}

static void tls_close(dist_tr_stream *s)
{
    if (!s || s->closing) return;
    s->closing = true;
    if (s->e && s->in) {
        /* close_notify when the connection was up; a failure's alert may still be pending */
        if (dist__tls_established(s->e) && !s->failed) dist__tls_close(s->e);
        s->closing = false;
        flush(s);
        s->closing = true;
    }
    if (s->in) IN(s->t)->close(s->in);
    if (!s->busy) stream_free(s);
}

static bool tls_fault(dist_tr_stream *s, char *buf, size_t cap)
{
    if (!s->e) return false; /* no connection yet: the dial's own error says it */
    if (s->failed) {
        snprintf(buf, cap, "%s", s->why);
        return true;
    }
    if (!dist__tls_established(s->e)) {
        snprintf(buf, cap, "TLS handshake not finished (%llu bytes from the peer)",
                 (unsigned long long)s->rx_bytes);
        return true;
    }
    return false;
}

/* ================================================================ the rest: the inner transport's
 */

static int tls_run(dist_tr *t)
{
    return IN(T(t))->run(T(t)->inner);
}

static void tls_shutdown(dist_tr *t)
{
    IN(T(t))->shutdown(T(t)->inner);
}

static int tls_join(dist_tr *t, int64_t timeout_ms)
{
    return IN(T(t))->join(T(t)->inner, timeout_ms);
}

static void tls_destroy(dist_tr *bt)
{
    tls_tr *t = T(bt);
    if (!t) return;
    IN(t)->destroy(t->inner);
    dist__tls_ctx_free(t->server);
    dist__tls_ctx_free(t->client);
    free(t);
}

static int tls_listen(dist_tr *t, const char *addr, uint16_t port, uint16_t *bound)
{
    return IN(T(t))->listen(T(t)->inner, addr, port, bound);
}

static int tls_publish(dist_tr *t, const char *alive, uint16_t port, bool hidden, int timeout_ms)
{
    return IN(T(t))->publish(T(t)->inner, alive, port, hidden, timeout_ms);
}

/* The machine's timers are the inner transport's, behind a small wrapper that remembers whose
** they are (a timer operation gets no transport). */
struct dist_tr_timer {
    const dist_tr_ops *ops;
    dist_tr_timer *in;
};

static dist_tr_timer *tls_timer_new(dist_tr *t, void (*cb)(void *ud), void *ud)
{
    dist_tr_timer *tm = malloc(sizeof *tm);
    if (!tm) return NULL;
    tm->ops = IN(T(t));
    tm->in = tm->ops->timer_new(T(t)->inner, cb, ud);
    if (!tm->in) {
        free(tm);
        return NULL;
    }
    return tm;
}

static void tls_timer_start(dist_tr_timer *tm, uint64_t ms, uint64_t repeat_ms)
{
    tm->ops->timer_start(tm->in, ms, repeat_ms);
}

static void tls_timer_stop(dist_tr_timer *tm)
{
    tm->ops->timer_stop(tm->in);
}

static void tls_timer_free(dist_tr_timer *tm)
{
    if (!tm) return;
    tm->ops->timer_free(tm->in);
    free(tm);
}

static uint64_t tls_now(dist_tr *t)
{
    return IN(T(t))->now_ns(T(t)->inner);
}

static uint64_t tls_realtime(dist_tr *t)
{
    return IN(T(t))->realtime_ns(T(t)->inner);
}

static void tls_random(dist_tr *t, void *buf, size_t n)
{
    IN(T(t))->random(T(t)->inner, buf, n);
}

static void tls_wake(dist_tr *t)
{
    IN(T(t))->wake(T(t)->inner);
}

static const dist_tr_ops tls_ops = {
    .name = "tls",
    .handshake_plen = 4,
    .run = tls_run,
    .shutdown = tls_shutdown,
    .join = tls_join,
    .destroy = tls_destroy,
    .listen = tls_listen,
    .publish = tls_publish,
    .connect = tls_connect,
    .stream_set_ud = tls_set_ud,
    .stream_ud = tls_get_ud,
    .stream_peer = tls_peer,
    .read_start = tls_read_start,
    .read_stop = tls_read_stop,
    .write = tls_write,
    .try_write = NULL, /* the engine is one thread's at a time: senders queue */
    .close = tls_close,
    .stream_fault = tls_fault,
    .timer_new = tls_timer_new,
    .timer_start = tls_timer_start,
    .timer_stop = tls_timer_stop,
    .timer_free = tls_timer_free,
    .now_ns = tls_now,
    .realtime_ns = tls_realtime,
    .random = tls_random,
    .wake = tls_wake,
};

dist_tr *dist__tls_tr_new(dist_tr *inner, struct dist_tls_ctx *server, struct dist_tls_ctx *client,
                          void (*log)(void *ud, int level, const char *line), void *log_ud)
{
    tls_tr *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->base.ops = &tls_ops;
    t->inner = inner;
    t->server = server;
    t->client = client;
    dist__tls_ctx_ref(server);
    dist__tls_ctx_ref(client);
    t->log = log;
    t->log_ud = log_ud;
    dist_tr_user u = {t,       in_accepted, in_connected, in_alloc,
                      in_read, in_written,  in_wake,      in_published};
    inner->user = u;
    return &t->base;
}

/* ================================================================ configuration */

bool dist__tls_wanted(const dist_config *cfg)
{
    return cfg->proto_dist && !strcmp(cfg->proto_dist, "inet_tls");
}

int dist__tls_contexts(const dist_config *cfg, dist_tls_ctx **server, dist_tls_ctx **client,
                       char *err, size_t errlen, dist_tls_warn_fn warn, void *ud)
{
    *server = *client = NULL;
    if (cfg->proto_dist && strcmp(cfg->proto_dist, "inet_tcp") && !dist__tls_wanted(cfg)) {
        snprintf(err, errlen, "proto_dist %s: unknown (inet_tcp or inet_tls)", cfg->proto_dist);
        return DIST_EINVAL;
    }
    if (cfg->ssl_dist_opt_count < 0 || (cfg->ssl_dist_opt_count > 0 && !cfg->ssl_dist_opt)) {
        snprintf(err, errlen, "-ssl_dist_opt: no words");
        return DIST_ETLSCONF;
    }
    dist_tls_config tc;
    int rc = dist__tls_config_load(cfg->ssl_dist_optfile, cfg->ssl_dist_opt_count,
                                   cfg->ssl_dist_opt, &tc, err, errlen, warn, ud);
    if (rc) return rc == DIST_ENOMEM ? rc : DIST_ETLSCONF;
    const dist_tls_role *roles[2] = {&tc.server, &tc.client};
    dist_tls_ctx **out[2] = {server, client};
    for (int i = 0; i < 2 && !rc; i++) {
        char why[600];
        rc = dist__tls_ctx_new(roles[i], i == 0, out[i], why, sizeof why);
        if (rc) {
            const char *origin = roles[i]->from_args || !cfg->ssl_dist_optfile
                                     ? "-ssl_dist_opt"
                                     : cfg->ssl_dist_optfile;
            snprintf(err, errlen, "%s: %s", origin, why);
            if (rc != DIST_ENOMEM) rc = DIST_ETLSCONF;
        }
    }
    if (!rc && !tc.server.certfile && warn) {
        char line[400];
        snprintf(line, sizeof line,
                 "%s: server: no certfile: every TLS connection from another node will fail",
                 cfg->ssl_dist_optfile ? cfg->ssl_dist_optfile : "-ssl_dist_opt");
        warn(ud, line);
    }
    dist__tls_config_free(&tc);
    if (rc) {
        dist__tls_ctx_free(*server);
        dist__tls_ctx_free(*client);
        *server = *client = NULL;
    }
    return rc;
}

static void check_warn(void *ud, const char *line)
{
    const dist_config *cfg = ud;
    char why[800], l[900];
    snprintf(why, sizeof why, "%s", line);
    sanitize(why);
    snprintf(l, sizeof l, "event=tls_option_warning reason=\"%s\"", why);
    cfg->log(cfg->log_ud, DIST_LOG_WARNING, l);
}

int dist_tls_check(const dist_config *cfg, char *err, size_t errlen)
{
    char dummy[8];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = 0;
    if (!cfg) return DIST_EINVAL;
    if (!dist__tls_wanted(cfg) && (!cfg->proto_dist || !strcmp(cfg->proto_dist, "inet_tcp")))
        return 0;
    dist_tls_ctx *s, *c;
    int rc =
        dist__tls_contexts(cfg, &s, &c, err, errlen, cfg->log ? check_warn : NULL, (void *)cfg);
    dist__tls_ctx_free(s);
    dist__tls_ctx_free(c);
    return rc;
}
