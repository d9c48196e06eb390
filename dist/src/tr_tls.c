/* The TLS transport: the TLS engine (tls.h) run over another transport's streams, as a decorator.
 */
#include "tls.h"
#include "transport.h"

#include <girder/dist.h>

#include <pthread.h>
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
** Direct writes: a sender's thread may encrypt a message and write it to an idle connection
** itself (try_write), as over TCP. So the engine and the write state of a stream are guarded
** by the stream's mutex, which is never held while the machine is called. Ciphertext that the
** socket did not take at once is left to the loop: the stream goes on the transport's kick
** list and the loop is woken (the inner transport's wake comes back to in_wake here first).
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
    pthread_mutex_t kick_mu;
    dist_tr_stream *kicks; /* streams the loop must look at (direct writes left work) */
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
    void *ud;
    dist_tr_timer *defer; /* the inner transport's: reports completions outside of write() */
    /* loop thread only */
    wreq *done, *donetail; /* encrypted, completion not reported yet (oldest first) */
    int busy;              /* callbacks of this stream on the stack */
    bool outgoing;         /* we are the TLS client */
    bool reading, eof;
    uint64_t rx_bytes;         /* ciphertext received */
    unsigned seen_hs, seen_ku; /* the engine's handshake and KeyUpdate counts last logged */
    char host[256];            /* client: the peer's host */
    /* kick list (t->kick_mu) */
    dist_tr_stream *kick_next;
    bool kicked;
    /* under mu: shared with a sender in try_write */
    pthread_mutex_t mu;
    dist_tls *e;     /* NULL until the inner stream is connected */
    wreq *q, *qtail; /* writes not wholly encrypted yet */
    size_t inflight; /* ciphertext bytes of the inner write in flight */
    dist_iov txv[TX_IOV];
    int deliver; /* an error to report through read() once reading (0: none) */
    bool closing, failed;
    char why[300]; /* failed: why (OpenSSL's reason) */
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

static void lock(dist_tr_stream *s)
{
    pthread_mutex_lock(&s->mu);
}

static void unlock(dist_tr_stream *s)
{
    pthread_mutex_unlock(&s->mu);
}

/* ================================================================ stream lifetime */

static void stream_free(dist_tr_stream *s)
{
    tls_tr *t = s->t;
    if (s->defer) IN(t)->timer_free(s->defer);
    wreq *lists[2] = {s->q, s->done};
    for (int i = 0; i < 2; i++)
        while (lists[i]) {
            wreq *w = lists[i];
            lists[i] = w->next;
            free(w);
        }
    dist__tls_free(s->e);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static void enter(dist_tr_stream *s)
{
    s->busy++;
}

/* Ends a callback; frees a stream closed meanwhile once no callback of it is left. */
static void leave(dist_tr_stream *s)
{
    if (--s->busy == 0 && s->closing) stream_free(s);
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
    pthread_mutex_init(&s->mu, NULL);
    return s;
}

/* Any thread: asks the loop to look at s (in_wake). */
static void kick(dist_tr_stream *s)
{
    tls_tr *t = s->t;
    pthread_mutex_lock(&t->kick_mu);
    if (!s->kicked) {
        s->kicked = true;
        s->kick_next = t->kicks;
        t->kicks = s;
    }
    pthread_mutex_unlock(&t->kick_mu);
    IN(t)->wake(t->inner);
}

static void unkick(dist_tr_stream *s)
{
    tls_tr *t = s->t;
    pthread_mutex_lock(&t->kick_mu);
    if (s->kicked)
        for (dist_tr_stream **l = &t->kicks; *l; l = &(*l)->kick_next)
            if (*l == s) {
                *l = s->kick_next;
                break;
            }
    s->kicked = false;
    pthread_mutex_unlock(&t->kick_mu);
}

/* ================================================================ writing (mu held) */

/* Hands the pending ciphertext to the inner stream unless a write is in flight. */
static void flush(dist_tr_stream *s)
{
    if (s->inflight || !s->e || !s->in || s->closing) return;
    if (!dist__tls_tx_pending(s->e)) return;
    struct iovec v[TX_IOV];
    int k = dist__tls_tx_iov(s->e, v, TX_IOV);
    size_t bytes = 0;
    for (int i = 0; i < k; i++) {
        s->txv[i] = (dist_iov){v[i].iov_base, v[i].iov_len};
        bytes += v[i].iov_len;
    }
    int rc = IN(s->t)->write(s->in, s->txv, (size_t)k, NULL);
    if (rc) {
        /* the inner stream is failing: reported through read() */
        if (!s->deliver) s->deliver = rc;
        IN(s->t)->timer_start(s->defer, 0, 0);
        return;
    }
    s->inflight = bytes;
}

/* The engine failed: keep its reason and report it through read(). */
static void mark_failed(dist_tr_stream *s)
{
    if (s->failed) return;
    s->failed = true;
    snprintf(s->why, sizeof s->why, "%s", dist__tls_why(s->e));
    sanitize(s->why);
    if (!s->deliver) s->deliver = DIST_ETLS;
}

/* Loop thread: the engine failed; its alert goes out, reading stops. */
static void engine_failed(dist_tr_stream *s)
{
    mark_failed(s);
    flush(s); /* the alert, if OpenSSL queued one */
    if (s->in) IN(s->t)->read_stop(s->in);
}

/*
** Loop thread: encrypts queued writes while the ciphertext waiting stays under the bound; wholly
** taken writes move to the done list. Then writes what is pending. Never calls the machine.
*/
static void pump_locked(dist_tr_stream *s)
{
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
}

static void pump(dist_tr_stream *s)
{
    lock(s);
    pump_locked(s);
    unlock(s);
}

static int tls_write(dist_tr_stream *s, const dist_iov *iov, size_t n, void *req)
{
    wreq *w = malloc(sizeof *w + n * sizeof *iov);
    if (!w) return DIST_ENOMEM;
    w->next = NULL;
    w->req = req;
    w->n = n;
    w->i = w->off = 0;
    memcpy(w->iov, iov, n * sizeof *iov);
    lock(s);
    if (s->closing || s->failed) {
        unlock(s);
        free(w);
        return DIST_ENOCONN;
    }
    if (s->qtail)
        s->qtail->next = w;
    else
        s->q = w;
    s->qtail = w;
    pump_locked(s);
    bool later = s->done || s->deliver;
    unlock(s);
    if (later) IN(s->t)->timer_start(s->defer, 0, 0);
    return 0;
}

/*
** A sender's thread: encrypts p and writes it to the socket itself when the connection is idle
** (nothing queued, pending or in flight), as TCP's try_write. Returns the plaintext bytes taken
** (0: the caller queues), or DIST_ETLS when the engine failed (the loop reports it). Ciphertext
** the socket does not take at once stays in the engine for the loop to write (kick).
*/
static ssize_t tls_try_write(dist_tr_stream *s, const uint8_t *p, size_t n)
{
    if (!IN(s->t)->try_write) return 0; /* an inner transport without direct writes */
    lock(s);
    if (s->closing || s->failed || !s->e || !dist__tls_established(s->e) || s->q || s->inflight ||
        dist__tls_tx_pending(s->e)) {
        unlock(s);
        return 0;
    }
    struct iovec v = {(void *)p, n};
    size_t took = 0;
    int rc = dist__tls_writev(s->e, &v, 1, &took);
    if (rc < 0) {
        mark_failed(s);
        unlock(s);
        kick(s);
        return DIST_ETLS;
    }
    bool left = rc == DIST_TLS_AGAIN; /* data staged behind a renegotiation */
    while (dist__tls_tx_pending(s->e)) {
        struct iovec o;
        if (dist__tls_tx_iov(s->e, &o, 1) != 1) break;
        ssize_t w = IN(s->t)->try_write(s->in, o.iov_base, o.iov_len);
        if (w > 0) dist__tls_tx_consume(s->e, (size_t)w);
        if (w != (ssize_t)o.iov_len) break; /* full (or failing: the loop finds out) */
    }
    left = left || dist__tls_tx_pending(s->e);
    unlock(s);
    if (left) kick(s);
    return (ssize_t)took;
}

/* ================================================================ reading (loop thread) */

/*
** Loop thread: one debug line when the engine's counts say a re-key went by since the last one
** (a TLS 1.2 renegotiation, either side's, or a TLS 1.3 KeyUpdate received). Debug, not info: a
** peer may send KeyUpdates as often as it likes.
*/
static void note_rekey(dist_tr_stream *s, unsigned hs, unsigned ku)
{
    if (hs <= s->seen_hs && ku <= s->seen_ku) return;
    if (s->seen_hs) { /* not the first handshake */
        char peer[80];
        IN(s->t)->stream_peer(s->in, peer, sizeof peer);
        tls_log(s->t, DIST_LOG_DEBUG,
                "event=tls_rekey peer=%s kind=%s handshakes=%u key_updates=%u", peer,
                ku > s->seen_ku ? "key_update" : "renegotiation", hs, ku);
    }
    s->seen_hs = hs;
    s->seen_ku = ku;
}

/* Decrypts into the machine's buffers while it reads. Inside a callback of s (busy). */
static void drain(dist_tr_stream *s)
{
    tls_tr *t = s->t;
    dist_tr_user *u = &t->base.user;
    for (;;) {
        lock(s);
        bool go = s->reading && !s->closing && !s->failed && !s->eof && s->e &&
                  dist__tls_established(s->e);
        unlock(s);
        if (!go) break;
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
        lock(s);
        while (got < cap) { /* fill the buffer: a record gives at most 16 KiB */
            size_t k = 0;
            rc = dist__tls_read(s->e, buf + got, cap - got, &k);
            got += k;
            if (rc) break;
        }
        if (rc < 0 && rc != DIST_TLS_EOF) engine_failed(s);
        unlock(s);
        if (got) {
            u->read(u->ud, s, (ssize_t)got);
            if (s->closing) return;
        }
        if (rc == DIST_TLS_EOF) {
            s->eof = true; /* close_notify: the peer closed, as a TCP end of stream */
            u->read(u->ud, s, DIST_ENOCONN);
            return;
        }
        if (rc) break; /* AGAIN, or failed (reported by report()) */
    }
    lock(s);
    flush(s); /* answers to a renegotiation or KeyUpdate */
    unsigned hs = s->e ? dist__tls_handshakes(s->e) : 0,
             ku = s->e ? dist__tls_key_updates(s->e) : 0;
    unlock(s);
    note_rekey(s, hs, ku);
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
    if (s->closing || !s->reading) return;
    lock(s);
    int err = s->deliver;
    s->deliver = 0;
    unlock(s);
    if (err) u->read(u->ud, s, err);
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
    char subj[256] = "-", version[32] = "", cipher[96] = "";
    bool resumed = false;
    lock(s);
    if (s->failed || dist__tls_established(s->e)) {
        unlock(s);
        return;
    }
    int rc = dist__tls_handshake(s->e);
    if (rc < 0)
        engine_failed(s);
    else
        flush(s);
    if (rc == 0) {
        if (dist__tls_peer_subject(s->e, subj, sizeof subj) != 0) snprintf(subj, sizeof subj, "-");
        snprintf(version, sizeof version, "%s", dist__tls_version(s->e));
        snprintf(cipher, sizeof cipher, "%s", dist__tls_cipher(s->e));
        resumed = dist__tls_resumed(s->e);
    }
    unsigned hs = rc == 0 ? dist__tls_handshakes(s->e) : 0;
    unsigned ku = rc == 0 ? dist__tls_key_updates(s->e) : 0;
    unlock(s);
    if (rc != 0) return;
    s->seen_hs = hs ? hs : 1; /* counts from here on are re-keys */
    s->seen_ku = ku;
    sanitize(subj);
    char peer[80];
    IN(s->t)->stream_peer(s->in, peer, sizeof peer);
    tls_log(s->t, DIST_LOG_INFO,
            "event=tls_up peer=%s role=%s version=%s cipher=%s peer_cert=\"%s\" resumed=%d", peer,
            s->outgoing ? "client" : "server", version, cipher, subj, resumed ? 1 : 0);
    pump(s);
}

/* ================================================================ the inner transport's user */

static void in_alloc(void *ud, dist_tr_stream *in, uint8_t **buf, size_t *cap)
{
    tls_tr *t = ud;
    dist_tr_stream *s = IN(t)->stream_ud(in);
    lock(s);
    *buf = s->e ? dist__tls_rx_space(s->e, cap) : NULL;
    unlock(s);
    if (!*buf) *cap = 0;
}

static void in_read(void *ud, dist_tr_stream *in, ssize_t n)
{
    tls_tr *t = ud;
    dist_tr_stream *s = IN(t)->stream_ud(in);
    enter(s);
    if (n < 0) {
        /* end of stream or error under TLS; before the handshake ended, stream_fault says so */
        lock(s);
        if (!s->deliver) s->deliver = (int)n;
        unlock(s);
        IN(t)->read_stop(in);
    } else if (!s->eof) {
        lock(s);
        bool failed = s->failed;
        if (!failed) dist__tls_rx_commit(s->e, (size_t)n);
        unlock(s);
        s->rx_bytes += (uint64_t)n;
        if (!failed) {
            handshake(s);
            drain(s);
            pump(s);
        }
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
    lock(s);
    dist__tls_tx_consume(s->e, s->inflight);
    s->inflight = 0;
    if (status < 0) {
        if (!s->deliver) s->deliver = status;
    } else {
        pump_locked(s);
    }
    unlock(s);
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
    dist_tls *e = status == 0 ? dist__tls_new(t->client, s->host) : NULL;
    if (status == 0 && !e) {
        status = DIST_ENOMEM;
        why = "out of memory for a TLS connection";
    }
    lock(s);
    s->e = e;
    unlock(s);
    if (status == 0 && (status = IN(t)->read_start(in)) != 0) why = "cannot read";
    if (status == 0) {
        handshake(s); /* the ClientHello */
        lock(s);
        bool failed = s->failed;
        char w[sizeof s->why];
        snprintf(w, sizeof w, "%s", s->why);
        unlock(s);
        u->connected(u->ud, s, failed ? DIST_ETLS : 0, version, failed ? w : NULL);
    } else {
        u->connected(u->ud, s, status, 0, why);
    }
    leave(s);
}

/* The loop was woken: first the streams direct writes left work to (ciphertext the socket did
** not take, or a failure to report), then the machine's own wake. */
static void in_wake(void *ud)
{
    tls_tr *t = ud;
    for (;;) {
        pthread_mutex_lock(&t->kick_mu);
        dist_tr_stream *s = t->kicks;
        if (s) {
            t->kicks = s->kick_next;
            s->kicked = false;
        }
        pthread_mutex_unlock(&t->kick_mu);
        if (!s) break;
        enter(s);
        lock(s);
        bool failed = s->failed;
        if (failed)
            engine_failed(s);
        else
            flush(s);
        unlock(s);
        if (!s->closing) report(s);
        leave(s);
    }
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
    lock(s);
    bool up = s->in && s->e;
    unlock(s);
    int rc = up ? IN(s->t)->read_start(s->in) : 0;
    /* whatever arrived meanwhile (plaintext in the engine, an error) is reported from a timer */
    IN(s->t)->timer_start(s->defer, 0, 0);
    return rc;
}

/* The handshake needs the inner stream read; once it is over, stopping stops that too. */
static void tls_read_stop(dist_tr_stream *s)
{
    s->reading = false;
    lock(s);
    bool up = s->in && s->e && dist__tls_established(s->e);
    unlock(s);
    if (up) IN(s->t)->read_stop(s->in);
}

static void tls_close(dist_tr_stream *s)
{
    if (!s) return;
    lock(s);
    if (s->closing) {
        unlock(s);
        return;
    }
    if (s->e && s->in) {
        /* close_notify when the connection was up; a failure's alert may still be pending */
        if (dist__tls_established(s->e) && !s->failed) dist__tls_close(s->e);
        flush(s);
    }
    s->closing = true;
    unlock(s);
    unkick(s);
    if (s->in) IN(s->t)->close(s->in);
    if (!s->busy) stream_free(s);
}

static bool tls_fault(dist_tr_stream *s, char *buf, size_t cap)
{
    bool fault = false;
    lock(s);
    if (!s->e) {
        /* no connection yet: the dial's own error says it */
    } else if (s->failed) {
        snprintf(buf, cap, "%s", s->why);
        fault = true;
    } else if (!dist__tls_established(s->e)) {
        snprintf(buf, cap, "TLS handshake not finished (%llu bytes from the peer)",
                 (unsigned long long)s->rx_bytes);
        fault = true;
    }
    unlock(s);
    return fault;
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
    pthread_mutex_destroy(&t->kick_mu);
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

static void tls_reads(dist_tr *t, uint64_t *on_loop_thread, uint64_t *on_schedulers)
{
    *on_loop_thread = *on_schedulers = 0;
    if (IN(T(t))->reads) IN(T(t))->reads(T(t)->inner, on_loop_thread, on_schedulers);
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
    .try_write = tls_try_write,
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
    .reads = tls_reads,
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
    pthread_mutex_init(&t->kick_mu, NULL);
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
