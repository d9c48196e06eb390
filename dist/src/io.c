/* dist I/O thread: libuv loop with the listener, outgoing connects, handshakes, framing, ticks. */
#include "core.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

enum { P_CONNECTING = 1, P_HS, P_UP, P_CLOSING };

#define RBUF_MIN (64 * 1024)

struct dsock {
    uv_tcp_t tcp;
    uv_timer_t timer; /* handshake timeout */
    dconn *conn;      /* a reference, or NULL */
    dsock *next, *prev;
    bool outgoing;
    int phase;
    int closes;
    dist_hs *hs;
    dist_rx *rx;
    uint8_t *rbuf;
    size_t rlen, rcap;
    uv_write_t wreq;
    bool writing;
    dchunk *inflight;
    size_t inflight_bytes;
    uv_buf_t *bufs;
    size_t nbufs;
    uint64_t bytes_in, bytes_out, last_in, last_out;
    int missed;
    uv_connect_t creq;
    char peer[80];
};

typedef struct lookup {
    uv_work_t work;
    dconn *conn;
    char alive[HS_MAX_NAME + 1], host[HS_MAX_NAME + 1];
    char ip[INET6_ADDRSTRLEN];
    int family;
    uint16_t port;
    int version;
    int err;
} lookup;

typedef struct hs_write {
    uv_write_t req;
    uv_buf_t buf;
    uint8_t data[];
} hs_write;

static void sock_fail(dsock *s, const char *why);
static void sock_close(dsock *s);
static void frames(dsock *s);

static int hs_timeout(void)
{
    int t = dist__st->cfg.handshake_timeout_ms;
    return t > 0 ? t : 7000;
}

/* ================================================================ socket lifetime */

static dsock *sock_new(bool outgoing)
{
    dist_state *st = dist__st;
    dsock *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->outgoing = outgoing;
    s->phase = outgoing ? P_CONNECTING : P_HS;
    s->hs = malloc(sizeof *s->hs);
    if (!s->hs || uv_tcp_init(&st->loop, &s->tcp) != 0) {
        free(s->hs);
        free(s);
        return NULL;
    }
    uv_timer_init(&st->loop, &s->timer);
    s->tcp.data = s->timer.data = s;
    s->next = st->socks;
    if (st->socks) st->socks->prev = s;
    st->socks = s;
    return s;
}

static void on_sock_closed(uv_handle_t *h)
{
    dsock *s = h->data;
    if (--s->closes) return;
    dist_state *st = dist__st;
    if (s->prev)
        s->prev->next = s->next;
    else
        st->socks = s->next;
    if (s->next) s->next->prev = s->prev;
    if (s->rx) dist__rx_free(s->rx);
    free(s->rx);
    free(s->hs);
    free(s->rbuf);
    free(s->bufs);
    dist__chunks_free(s->inflight);
    dist__conn_put(s->conn);
    free(s);
}

/* Closes the socket's handles; the connection consequences are the caller's business. */
static void sock_close(dsock *s)
{
    if (s->phase == P_CLOSING) return;
    s->phase = P_CLOSING;
    s->closes = 2;
    uv_close((uv_handle_t *)&s->tcp, on_sock_closed);
    uv_close((uv_handle_t *)&s->timer, on_sock_closed);
}

static void on_pend_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void pend_timer_stop(dconn *c)
{
    if (!c->pend_timer) return;
    uv_close((uv_handle_t *)c->pend_timer, on_pend_timer_closed);
    c->pend_timer = NULL;
    dist__conn_put(c);
}

/* node-down hook for core.c: drops the transport of c. */
void dist__io_detach(dconn *c)
{
    pend_timer_stop(c);
    dsock *s = c->sock;
    if (!s) return;
    c->sock = NULL;
    dist__conn_fd(c, -1);
    sock_close(s);
}

static void on_pend_timeout(uv_timer_t *t)
{
    dconn *c = t->data;
    if (atomic_load(&c->state) == C_PENDING && !c->sock)
        dist__node_down(c, "simultaneous connect: the peer's connection never completed");
    else
        pend_timer_stop(c);
}

/*
** A socket failed (I/O thread): if it carries its connection, the connection goes down — except
** an outgoing attempt answered "nok": the peer is dialling us, so the connection stays pending
** for a while without a socket.
*/
static void sock_fail(dsock *s, const char *why)
{
    if (s->phase == P_CLOSING) return;
    dconn *c = s->conn;
    int phase = s->phase;
    bool nok = s->hs && s->phase != P_UP && s->hs->nok;
    if (phase != P_UP) {
        atomic_fetch_add(&dist__st->st_hs_failed, 1);
        if (!nok)
            dist__log("event=%s peer=%s node=%s reason=\"%s\"",
                      strncmp(why, "simultaneous", 12) ? "handshake_failed"
                                                       : "simultaneous_connect",
                      s->peer,
                      s->hs && s->hs->peer_name[0] ? s->hs->peer_name
                      : c                          ? term_atom_name(c->node, NULL)
                                                   : "?",
                      why);
    }
    if (c && c->sock == s) dist__conn_fd(c, -1); /* no sender may write once it is closed */
    sock_close(s);
    if (!c || c->sock != s) return;
    c->sock = NULL;
    if (nok && atomic_load(&c->state) == C_PENDING) {
        if (!c->pend_timer && (c->pend_timer = malloc(sizeof(uv_timer_t)))) {
            uv_timer_init(&dist__st->loop, c->pend_timer);
            c->pend_timer->data = c;
            atomic_fetch_add(&c->refs, 1);
            uv_timer_start(c->pend_timer, on_pend_timeout, (uint64_t)hs_timeout(), 0);
        }
        return;
    }
    dist__node_down(c, why);
}

/* ================================================================ writing */

static void on_hs_written(uv_write_t *w, int status)
{
    free(w->data);
    (void)status;
}

/* Writes a small buffer (handshake packets, ticks) in order with the other writes. */
static int raw_write(dsock *s, const uint8_t *d, size_t n)
{
    hs_write *w = malloc(sizeof *w + n);
    if (!w) return DIST_ENOMEM;
    memcpy(w->data, d, n);
    w->buf = uv_buf_init((char *)w->data, (unsigned)n);
    w->req.data = w;
    int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &w->buf, 1, on_hs_written);
    if (rc)
        free(w);
    else
        s->bytes_out += n;
    return rc;
}

static void hs_flush(dsock *s)
{
    if (s->hs->out_len) raw_write(s, s->hs->out, s->hs->out_len);
    s->hs->out_len = 0;
}

static void on_written(uv_write_t *w, int status)
{
    dsock *s = w->data;
    s->writing = false;
    dist__chunks_free(s->inflight);
    s->inflight = NULL;
    s->bytes_out += s->inflight_bytes;
    atomic_fetch_add_explicit(&dist__st->st_bytes_out, s->inflight_bytes, memory_order_relaxed);
    if (s->phase == P_CLOSING) return;
    if (status < 0) {
        sock_fail(s, uv_strerror(status));
        return;
    }
    if (s->conn) dist__io_start_write(s->conn);
}

/* Writes what c's queue holds, unless a write is in flight (its completion comes back here). */
void dist__io_start_write(dconn *c)
{
    dsock *s = c->sock;
    if (!s || s->phase != P_UP || s->writing) return;
    size_t bytes;
    pthread_mutex_lock(&c->mu);
    dchunk *q = dist__take_queue(c, &bytes);
    if (!q) c->wpending = false;
    pthread_mutex_unlock(&c->mu);
    if (!q) return;
    size_t n = 0;
    for (dchunk *ch = q; ch; ch = ch->next) n++;
    if (n > s->nbufs) {
        uv_buf_t *nb = realloc(s->bufs, n * 2 * sizeof *nb);
        if (!nb) {
            dist__chunks_free(q);
            sock_fail(s, "out of memory");
            return;
        }
        s->bufs = nb;
        s->nbufs = n * 2;
    }
    n = 0;
    for (dchunk *ch = q; ch; ch = ch->next)
        s->bufs[n++] = uv_buf_init((char *)ch->data, (unsigned)ch->len);
    s->inflight = q;
    s->inflight_bytes = bytes;
    s->wreq.data = s;
    s->writing = true;
    int rc = uv_write(&s->wreq, (uv_stream_t *)&s->tcp, s->bufs, (unsigned)n, on_written);
    if (rc) {
        s->writing = false;
        sock_fail(s, uv_strerror(rc));
    }
}

/* ================================================================ reading */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    dsock *s = h->data;
    (void)suggested;
    size_t want = RBUF_MIN;
    if (s->phase == P_UP && s->rlen >= 4) {
        const uint8_t *p = s->rbuf;
        size_t flen = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
        if (flen + 4 > s->rlen && flen <= s->rx->max_message) want = flen + 4 - s->rlen;
    }
    if (want < RBUF_MIN) want = RBUF_MIN;
    if (s->rcap - s->rlen < want) {
        size_t nc = s->rlen + want;
        uint8_t *nb = realloc(s->rbuf, nc);
        if (!nb) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        s->rbuf = nb;
        s->rcap = nc;
    }
    *buf = uv_buf_init((char *)s->rbuf + s->rlen, (unsigned)(s->rcap - s->rlen));
}

static hs_status on_decide(void *ud, dist_hs *hs);
static void hs_done(dsock *s);

static void consume(dsock *s, size_t used)
{
    memmove(s->rbuf, s->rbuf + used, s->rlen - used);
    s->rlen -= used;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    dsock *s = st->data;
    (void)buf;
    if (s->phase == P_CLOSING) return;
    if (nread < 0) {
        sock_fail(s, nread == UV_EOF ? "connection closed by peer" : uv_strerror((int)nread));
        return;
    }
    if (nread == 0) {
        if (!buf->base) sock_fail(s, "out of memory for the read buffer");
        return;
    }
    s->rlen += (size_t)nread;
    s->bytes_in += (size_t)nread;
    atomic_fetch_add_explicit(&dist__st->st_bytes_in, (uint64_t)nread, memory_order_relaxed);
    if (s->phase == P_HS) {
        size_t used = 0;
        int rc = dist__hs_feed(s->hs, s->rbuf, s->rlen, &used);
        hs_flush(s);
        consume(s, used);
        if (rc == HS_FAIL) {
            sock_fail(s, s->hs->why);
            return;
        }
        if (rc == HS_CONT) return;
        hs_done(s);
        if (s->phase != P_UP) return;
    }
    if (s->phase == P_UP) frames(s);
}

/* Splits the read buffer into frames and dispatches them. */
static void frames(dsock *s)
{
    size_t pos = 0;
    while (s->phase == P_UP && s->rlen - pos >= 4) {
        const uint8_t *p = s->rbuf + pos;
        size_t flen = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
        if (flen == 0) {
            atomic_fetch_add_explicit(&dist__st->st_ticks_in, 1, memory_order_relaxed);
            pos += 4;
            continue;
        }
        if (flen > s->rx->max_message) {
            atomic_fetch_add(&dist__st->st_proto, 1);
            dist__log("event=protocol_error node=%s reason=\"frame of %zu bytes over the limit\"",
                      term_atom_name(s->conn->node, NULL), flen);
            sock_fail(s, "oversized frame");
            return;
        }
        if (s->rlen - pos - 4 < flen) break;
        dist_ctl ctl;
        const char *why = NULL;
        int rc = dist__rx_frame(s->rx, p + 4, flen, &ctl, &why);
        pos += 4 + flen;
        if (rc < 0) {
            atomic_fetch_add(&dist__st->st_proto, 1);
            dist__log("event=protocol_error node=%s reason=\"%s\"",
                      term_atom_name(s->conn->node, NULL), why ? why : "?");
            sock_fail(s, why ? why : "protocol error");
            return;
        }
        if (rc == 1) dist__deliver(s->conn, &ctl);
    }
    if (s->phase == P_CLOSING) return;
    consume(s, pos);
    if (s->rcap > 4 * RBUF_MIN && s->rlen < RBUF_MIN) {
        uint8_t *nb = realloc(s->rbuf, RBUF_MIN);
        if (nb) {
            s->rbuf = nb;
            s->rcap = RBUF_MIN;
        }
    }
}

/* ================================================================ handshake */

static void on_hs_timeout(uv_timer_t *t)
{
    sock_fail(t->data, "handshake timeout");
}

static void hs_setup(dsock *s, hs_role role)
{
    dist_state *st = dist__st;
    dist__hs_init(s->hs, role, st->name, st->flags, st->creation, st->cookie);
    s->hs->decide = on_decide;
    s->hs->ud = s;
    uv_timer_start(&s->timer, on_hs_timeout, (uint64_t)hs_timeout(), 0);
}

static hs_status on_decide(void *ud, dist_hs *hs)
{
    dsock *s = ud;
    term_t peer = term_atom(hs->peer_name);
    if (peer == TERM_NONE) return HS_ST_NOT_ALLOWED;
    dconn *c = NULL;
    hs_status r = dist__decide(peer, s, &c);
    if (!c) return r;
    s->conn = c;
    if (r == HS_ST_ALIVE) return r; /* c is the old, up connection: replaced in hs_done */
    if (c->sock && c->sock != s) {
        dsock *old = c->sock; /* our own attempt lost (ok_simultaneous) */
        c->sock = NULL;
        sock_close(old);
    }
    pend_timer_stop(c);
    c->sock = s;
    return r;
}

static void hs_done(dsock *s)
{
    dconn *c = s->conn;
    dist_hs *hs = s->hs;
    if (c && atomic_load(&c->state) == C_UP && c->sock != s) {
        /* "alive" answered "true": the old connection is dead, this one replaces it */
        dist__node_down(c, "replaced by a new connection from the same node");
        dist__conn_put(c);
        s->conn = c = NULL;
        dconn *nc = NULL;
        hs_status r = dist__decide(term_atom(hs->peer_name), s, &nc);
        if (nc && (r == HS_ST_OK || r == HS_ST_OK_SIMULTANEOUS)) {
            s->conn = c = nc;
            if (c->sock && c->sock != s) {
                dsock *old = c->sock;
                c->sock = NULL;
                sock_close(old);
            }
            c->sock = s;
        } else {
            dist__conn_put(nc);
        }
    }
    if (!c || c->sock != s || atomic_load(&c->state) != C_PENDING) {
        sock_fail(s, "connection superseded during the handshake");
        return;
    }
    uv_timer_stop(&s->timer);
    s->rx = malloc(sizeof *s->rx);
    if (!s->rx) {
        sock_fail(s, "out of memory");
        return;
    }
    dist__rx_init(s->rx, dist__st->cfg.max_message, dist__st->cfg.max_new_atoms,
                  (hs->flags & DFLAG_DIST_HDR_ATOM_CACHE) != 0);
    if (hs->named && hs->role == HS_INITIATOR && dist__st->dynamic) {
        /* the peer named us: dist_start, waiting for this connection, reads these after it */
        dist_state *st = dist__st;
        snprintf(st->name, sizeof st->name, "%s", hs->my_name);
        st->node = term_atom(st->name);
        st->creation = hs->my_creation;
        st->flags &= ~DFLAG_NAME_ME;
        st->dynamic = false;
        nd_set_node(st->node, st->creation); /* before any pid is made for the peer */
        dist__log("event=named node=%s creation=%u by=%s", st->name, st->creation, hs->peer_name);
    }
    s->phase = P_UP;
    s->last_in = s->bytes_in;
    s->last_out = atomic_load(&c->out_frames);
    uv_tcp_nodelay(&s->tcp, 1);
    uv_os_fd_t fd = -1;
    uv_fileno((uv_handle_t *)&s->tcp, &fd);
    dist__conn_up(c, hs->flags, hs->peer_creation, fd);
    dist__io_start_write(c);
}

/* ================================================================ outgoing connections */

static void set_peer(dsock *s)
{
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(s->peer, sizeof s->peer, "%s:%u", ip, port);
}

static void on_connected(uv_connect_t *req, int status)
{
    dsock *s = req->data;
    if (s->phase == P_CLOSING) return;
    if (status < 0) {
        sock_fail(s, uv_strerror(status));
        return;
    }
    set_peer(s);
    s->phase = P_HS;
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    hs_flush(s);
}

static void lookup_work(uv_work_t *w)
{
    lookup *l = w->data;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(l->host, NULL, &hints, &ai) != 0 || !ai) {
        l->err = EPMD_EHOSTUNREACH;
        return;
    }
    struct addrinfo *pick = ai;
    for (struct addrinfo *a = ai; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    l->family = pick->ai_family;
    if (pick->ai_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)pick->ai_addr)->sin_addr, l->ip, sizeof l->ip);
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr, l->ip,
                  sizeof l->ip);
    freeaddrinfo(ai);
    epmd_node_info info;
    l->err = epmd_port_please(l->ip, dist__st->cfg.epmd_port, l->alive, hs_timeout(), &info);
    if (!l->err) {
        l->port = info.port;
        l->version = info.highest_version >= 6 ? 6 : 5;
    }
}

static void lookup_after(uv_work_t *w, int status)
{
    lookup *l = w->data;
    dconn *c = l->conn;
    dist_state *st = dist__st;
    if (status || st->stopping || atomic_load(&c->state) != C_PENDING || c->sock) {
        /* cancelled, stopped, or an incoming connection took over meanwhile */
    } else if (l->err) {
        char why[2 * HS_MAX_NAME + 96];
        snprintf(why, sizeof why, "port mapper lookup of %s@%s failed: %s", l->alive, l->host,
                 epmd_strerror(l->err));
        dist__node_down(c, why);
    } else {
        dsock *s = sock_new(true);
        struct sockaddr_storage ss;
        int rc = !s                     ? UV_ENOMEM
                 : l->family == AF_INET ? uv_ip4_addr(l->ip, l->port, (struct sockaddr_in *)&ss)
                                        : uv_ip6_addr(l->ip, l->port, (struct sockaddr_in6 *)&ss);
        if (!rc) {
            atomic_fetch_add(&c->refs, 1);
            s->conn = c;
            c->sock = s;
            snprintf(s->peer, sizeof s->peer, "%s:%u", l->ip, l->port);
            hs_setup(s, HS_INITIATOR);
            dist__hs_start(s->hs, term_atom_name(c->node, NULL), l->version);
            s->creq.data = s;
            rc = uv_tcp_connect(&s->creq, &s->tcp, (struct sockaddr *)&ss, on_connected);
            if (rc) sock_fail(s, uv_strerror(rc));
        } else {
            if (s) sock_close(s);
            dist__node_down(c, "cannot create a socket");
        }
    }
    dist__conn_put(c);
    free(l);
}

static void start_connect(dconn *c)
{
    lookup *l = calloc(1, sizeof *l);
    const char *name = term_atom_name(c->node, NULL);
    const char *at = strchr(name, '@');
    if (!l || !at || at == name || (size_t)(at - name) > HS_MAX_NAME) {
        free(l);
        dist__node_down(c, "invalid node name");
        return;
    }
    memcpy(l->alive, name, (size_t)(at - name));
    snprintf(l->host, sizeof l->host, "%s", at + 1);
    atomic_fetch_add(&c->refs, 1);
    l->conn = c;
    l->work.data = l;
    if (uv_queue_work(&dist__st->loop, &l->work, lookup_work, lookup_after) != 0) {
        dist__conn_put(c);
        free(l);
        dist__node_down(c, "cannot queue the port mapper lookup");
    }
}

/* ================================================================ accepting */

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) return;
    dsock *s = sock_new(false);
    if (!s) return;
    if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0) {
        sock_close(s);
        return;
    }
    set_peer(s);
    hs_setup(s, HS_ACCEPTOR);
    uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
}

/* ================================================================ ticks */

static void on_tick(uv_timer_t *t)
{
    dist_state *st = dist__st;
    (void)t;
    for (dsock *s = st->socks, *n; s; s = n) {
        n = s->next;
        if (s->phase != P_UP) continue;
        if (s->bytes_in == s->last_in) {
            if (++s->missed >= 4) {
                dist__log("event=net_tick_timeout node=%s ticktime=%u",
                          term_atom_name(s->conn->node, NULL), st->ticktime_s);
                sock_fail(s, "net_tick_timeout");
                continue;
            }
        } else {
            s->missed = 0;
            s->last_in = s->bytes_in;
        }
        uint64_t out = atomic_load(&s->conn->out_frames);
        if (out == s->last_out && !s->writing) {
            dist__send_tick(s->conn);
            atomic_fetch_add_explicit(&st->st_ticks_out, 1, memory_order_relaxed);
        }
        s->last_out = atomic_load(&s->conn->out_frames);
    }
}

/* ================================================================ service and stop */

static void shutdown_all(void)
{
    dist_state *st = dist__st;
    dconn *all[256];
    for (;;) {
        size_t n = 0;
        pthread_mutex_lock(&st->mu);
        for (size_t i = 0; i < 256 && n < 256; i++)
            for (dconn *c = st->tab[i]; c && n < 256; c = c->tab_next) {
                atomic_fetch_add(&c->refs, 1);
                all[n++] = c;
            }
        pthread_mutex_unlock(&st->mu);
        if (!n) break;
        for (size_t i = 0; i < n; i++) {
            dist__node_down(all[i], "distribution stopped");
            dist__conn_put(all[i]);
        }
    }
    for (dsock *s = st->socks; s; s = s->next) sock_close(s);
    if (!uv_is_closing((uv_handle_t *)&st->listener)) uv_close((uv_handle_t *)&st->listener, NULL);
    if (!uv_is_closing((uv_handle_t *)&st->ticker)) uv_close((uv_handle_t *)&st->ticker, NULL);
    if (st->epmd) epmd_uv_unregister(st->epmd, NULL);
    uv_close((uv_handle_t *)&st->async, NULL);
}

static void on_async(uv_async_t *a)
{
    dist_state *st = dist__st;
    (void)a;
    pthread_mutex_lock(&st->svc_mu);
    dconn *list = st->svc_head;
    st->svc_head = NULL;
    bool stopping = st->stopping;
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
            if (close) {
                dist__node_down(c, why ? why : "closed");
            } else {
                if (connect && atomic_load(&c->state) == C_PENDING && !c->sock) start_connect(c);
                dist__io_start_write(c);
            }
        }
        dist__conn_put(c);
    }
    if (stopping && !uv_is_closing((uv_handle_t *)&st->async)) shutdown_all();
}

void dist__io_wake(void)
{
    uv_async_send(&dist__st->async);
}

/* ================================================================ start */

static void started(int status)
{
    dist_state *st = dist__st;
    pthread_mutex_lock(&st->start_mu);
    st->start_status = status;
    st->started = true;
    pthread_cond_broadcast(&st->start_cv);
    pthread_mutex_unlock(&st->start_mu);
}

static void on_epmd(epmd_uv_registration *reg, int status)
{
    dist_state *st = dist__st;
    if (!st->started) {
        if (status == 0)
            st->creation = reg->creation;
        else
            dist__log("event=epmd_register_failed node=%s reason=\"%s\"", st->name,
                      epmd_strerror(status));
        started(status == 0 ? 0 : DIST_EEPMD);
        return;
    }
    dist__log("event=epmd_lost node=%s reason=\"%s\"", st->name, epmd_strerror(status));
}

static void *io_main(void *arg)
{
    dist_state *st = dist__st;
    (void)arg;
    uv_run(&st->loop, UV_RUN_DEFAULT);
    uv_loop_close(&st->loop);
    return NULL;
}

static uint32_t random_creation(void)
{
    uint32_t v = 0;
    while (v == 0 || v < 4) {
        if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) v = 0;
    }
    return v;
}

int dist__io_start(void)
{
    dist_state *st = dist__st;
    int rc = uv_loop_init(&st->loop);
    if (rc) return DIST_ENOMEM;
    uv_async_init(&st->loop, &st->async, on_async);
    uv_tcp_init(&st->loop, &st->listener);
    uv_timer_init(&st->loop, &st->ticker);
    struct sockaddr_storage ss;
    const char *addr = st->cfg.listen_addr ? st->cfg.listen_addr : "0.0.0.0";
    if (uv_ip4_addr(addr, st->cfg.listen_port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(addr, st->cfg.listen_port, (struct sockaddr_in6 *)&ss) != 0)
        rc = DIST_EINVAL;
    if (!rc && st->dynamic) {
        /* a dynamic name: no listener, no port mapper; the creation comes with the name */
        uint64_t iv = (uint64_t)st->ticktime_s * 1000 / 4;
        uv_timer_start(&st->ticker, on_tick, iv ? iv : 1, iv ? iv : 1);
        started(0);
    } else {
        if (!rc && (uv_tcp_bind(&st->listener, (struct sockaddr *)&ss, 0) != 0 ||
                    uv_listen((uv_stream_t *)&st->listener, 128, on_connection) != 0))
            rc = DIST_ELISTEN;
        if (!rc) {
            int len = sizeof ss;
            uv_tcp_getsockname(&st->listener, (struct sockaddr *)&ss, &len);
            st->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
            uint64_t iv = (uint64_t)st->ticktime_s * 1000 / 4;
            uv_timer_start(&st->ticker, on_tick, iv ? iv : 1, iv ? iv : 1);
        }
        if (!rc && st->cfg.no_epmd) {
            st->creation = random_creation();
            started(0);
        } else if (!rc) {
            st->epmd = calloc(1, sizeof *st->epmd);
            epmd_node_info info;
            const char *at = strchr(st->name, '@');
            char alive[HS_MAX_NAME + 1];
            memcpy(alive, st->name, (size_t)(at - st->name));
            alive[at - st->name] = 0;
            struct sockaddr_in ea;
            uint16_t ep = st->cfg.epmd_port ? st->cfg.epmd_port : epmd_default_port();
            if (!st->epmd || epmd_node_info_init(&info, alive, st->port) != 0) {
                rc = DIST_EINVAL;
            } else {
                info.node_type = st->cfg.hidden ? EPMD_NODE_TYPE_HIDDEN : EPMD_NODE_TYPE_NORMAL;
                info.lowest_version = 5;
                info.highest_version = 6;
                uv_ip4_addr("127.0.0.1", ep, &ea);
                if (epmd_uv_register(&st->loop, st->epmd, (struct sockaddr *)&ea, &info,
                                     hs_timeout(), on_epmd) != 0) {
                    epmd_uv_unregister(st->epmd, NULL);
                    rc = DIST_EEPMD;
                }
            }
        }
    }
    if (rc) {
        /* close what exists and let the loop finish on this thread */
        uv_close((uv_handle_t *)&st->listener, NULL);
        uv_close((uv_handle_t *)&st->ticker, NULL);
        uv_close((uv_handle_t *)&st->async, NULL);
        uv_run(&st->loop, UV_RUN_DEFAULT);
        uv_loop_close(&st->loop);
        free(st->epmd);
        return rc;
    }
    if (pthread_create(&st->thread, NULL, io_main, NULL) != 0) return DIST_ENOMEM;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += hs_timeout() / 1000 + 2;
    pthread_mutex_lock(&st->start_mu);
    while (!st->started)
        if (pthread_cond_timedwait(&st->start_cv, &st->start_mu, &dl) != 0) break;
    rc = st->started ? st->start_status : DIST_ETIMEOUT;
    pthread_mutex_unlock(&st->start_mu);
    if (rc) {
        dist__io_stop();
        return rc;
    }
    return 0;
}

void dist__io_stop(void)
{
    dist_state *st = dist__st;
    pthread_mutex_lock(&st->svc_mu);
    st->stopping = true;
    pthread_mutex_unlock(&st->svc_mu);
    uv_async_send(&st->async);
    pthread_join(st->thread, NULL);
    free(st->epmd);
    st->epmd = NULL;
}
