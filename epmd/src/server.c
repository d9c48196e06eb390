/* Girder epmd server: libuv listeners and connections feeding the pure request handler. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "epmd_int.h"

enum conn_state {
    C_READING,  /* collecting one request */
    C_REPLYING, /* answer being written, then close (or exit) */
    C_KEPT,     /* holds a registration; any byte or EOF ends it */
    C_CLOSING,
};

struct epmd__conn {
    uv_tcp_t tcp; /* first: handle->data is unused, we cast */
    epmd__server *srv;
    epmd__conn *prev, *next;
    epmd__slot slot;  /* its place in a pool; conn_of() goes back from it */
    epmd__pool *pool; /* the pool its slot is in (main or reserve), NULL before admission */
    epmd__peer_key key;
    char peer[INET6_ADDRSTRLEN]; /* the peer's address as text, for the log */
    uint64_t id;
    uint64_t started_ms;
    int fd;
    int local_peer;
    int lookup_only; /* admitted to the reserve: no registration */
    int state;
    size_t got;
    uint8_t buf[EPMD_MAX_PACKET];
    uint8_t scratch[64]; /* reads on a kept connection: content is discarded */
};

static epmd__conn *conn_of(epmd__slot *s)
{
    return (epmd__conn *)((char *)s - offsetof(epmd__conn, slot));
}

typedef struct wreq {
    uv_write_t req;
    epmd__conn *c;
    uint8_t *data;
    int action;
} wreq;

/* Free text (a reason) as one log value, in a buffer that lives to the end of the statement. */
#define LOGVAL(text) girder__log_value((char[128]){0}, 128, (text), strlen(text))

/* ---------------------------------------------------------------------------
** The log: every line of the server and the handler passes here. Lines above the configured
** level are dropped uncounted; the rest go through the rate limiter, except the events an
** operator must always see (registrations and the daemon's own life).
** ------------------------------------------------------------------------ */

static void emit(epmd__server *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void emit(epmd__server *s, int level, const char *fmt, ...)
{
    if (!s->cfg.log) return;
    va_list ap;
    va_start(ap, fmt);
    s->cfg.log(s->cfg.log_arg, level, fmt, ap);
    va_end(ap);
}

static int always_logged(const char *ev, size_t len)
{
    static const char *const always[] = {"registered", "unregistered",    "kill",
                                         "listening",  "already_running", "listen_failed",
                                         "bad_address"};
    for (size_t i = 0; i < sizeof always / sizeof always[0]; i++)
        if (strlen(always[i]) == len && memcmp(always[i], ev, len) == 0) return 1;
    return 0;
}

static void vlog_peer(epmd__server *s, const epmd__peer_key *peer, int level, const char *fmt,
                      va_list ap)
{
    if (!s->cfg.log || level > s->log_level) return;
    char body[5120]; /* a name escaped for the log takes up to EPMD__LOG_NAME_CAP */
    vsnprintf(body, sizeof body, fmt, ap);
    const char *ev = body;
    size_t len = 0;
    if (strncmp(body, "event=", 6) == 0) {
        ev = body + 6;
        len = strcspn(ev, " ");
    }
    if (!always_logged(ev, len) && !epmd__rl_check(&s->rl, ev, len, peer, level, uv_now(s->loop)))
        return;
    emit(s, level, "%s", body);
}

/* A line about connection c (NULL: about none); c's address is the rate limiter's peer. */
static void slog(epmd__server *s, const epmd__conn *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void slog(epmd__server *s, const epmd__conn *c, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog_peer(s, c ? &c->key : NULL, level, fmt, ap);
    va_end(ap);
}

/* The handler's lines are about the connection whose request it handles. */
static void handler_log(void *arg, int level, const char *fmt, va_list ap)
{
    epmd__server *s = arg;
    vlog_peer(s, s->current ? &s->current->key : NULL, level, fmt, ap);
}

static const char *key_text(const epmd__peer_key *k, char *out, size_t cap)
{
    static const uint8_t v4[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    int v4mapped = memcmp(k->b, v4, 12) == 0;
    if (!inet_ntop(v4mapped ? AF_INET : AF_INET6, v4mapped ? k->b + 12 : k->b, out, (socklen_t)cap))
        snprintf(out, cap, "?");
    else if (!v4mapped)
        strncat(out, "/64", cap - strlen(out) - 1);
    return out;
}

/* The rate limiter's summary of a window: the event's name, with how many lines it held back. */
static void rl_emit(void *arg, int level, const char *event, uint32_t suppressed,
                    uint64_t window_ms, const epmd__peer_key *top, uint32_t top_suppressed)
{
    epmd__server *s = arg;
    char ev[EPMD__LOG_NAME_CAP], peer[INET6_ADDRSTRLEN + 4] = "none";
    girder__log_value(ev, sizeof ev, event, strlen(event));
    if (top) key_text(top, peer, sizeof peer);
    emit(s, level, "event=%s suppressed=%u window_ms=%llu top_peer=%s top_peer_suppressed=%u", ev,
         suppressed, (unsigned long long)window_ms, peer, top_suppressed);
}

/* ---------------------------------------------------------------------------
** Connections
** ------------------------------------------------------------------------ */

static void maybe_closed(epmd__server *s)
{
    if (s->closing && s->pending_closes == 0) {
        epmd__registry_free(&s->reg);
        epmd__pool_free(&s->main);
        epmd__pool_free(&s->reserve);
        if (s->close_cb) s->close_cb(s);
    }
}

static void on_conn_closed(uv_handle_t *h)
{
    epmd__conn *c = (epmd__conn *)h;
    epmd__server *s = c->srv;
    s->nconns--;
    s->pending_closes--;
    free(c);
    maybe_closed(s);
}

/* Closes one connection; a registration it holds ends with it. `why` goes to the log. */
static void conn_close(epmd__conn *c, const char *why)
{
    if (c->state == C_CLOSING) return;
    epmd__server *s = c->srv;
    epmd__node *n = epmd__registry_remove_conn(&s->reg, c->id);
    if (n) {
        char pname[EPMD__LOG_NAME_CAP];
        slog(s, c, GIRDER_LOG_NOTICE,
             "event=unregistered name=%s port=%u creation=%u conn=%llu reason=%s",
             girder__log_value(pname, sizeof pname, n->info.name, n->info.name_len), n->info.port,
             epmd__node_creation(n), (unsigned long long)c->id, LOGVAL(why));
    } else {
        slog(s, c, GIRDER_LOG_DEBUG, "event=conn_closed conn=%llu reason=%s",
             (unsigned long long)c->id, LOGVAL(why));
    }
    if (c->pool) epmd__pool_leave(c->pool, &c->slot);
    c->pool = NULL;
    c->state = C_CLOSING;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->pending_closes++;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static epmd__conn *find_conn(epmd__server *s, uint64_t id)
{
    for (epmd__conn *c = s->conns; c; c = c->next)
        if (c->id == id) return c;
    return NULL;
}

static void on_write(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    epmd__conn *c = w->c;
    epmd__server *s = c->srv;
    int action = w->action;
    free(w->data);
    free(w);
    if (c->state == C_CLOSING) return;
    if (status < 0) {
        conn_close(c, "write failed");
        return;
    }
    if (action == EPMD__KEEP) return;
    conn_close(c, "answered");
    if (action == EPMD__EXIT && !s->closing) {
        s->killed = 1;
        epmd__server_close(s, s->close_cb);
    }
}

static void process(epmd__conn *c, const uint8_t *body, size_t len)
{
    epmd__server *s = c->srv;
    if (c->lookup_only && len > 0 && body[0] == EPMD_ALIVE2_REQ) {
        /* A registration would hold its descriptor for good: the reserve is for lookups. */
        slog(s, c, GIRDER_LOG_WARNING,
             "event=register_refused conn=%llu peer=%s reason=no_room registered=%zu",
             (unsigned long long)c->id, c->peer, s->reg.reg_count);
        conn_close(c, "no room for a registration");
        return;
    }
    epmd__conn_info ci = {
        .id = c->id, .fd = c->fd, .local_peer = c->local_peer, .now = (uint32_t)time(NULL)};
    epmd__reply rep;
    s->current = c;
    int hr = epmd__handle_request(&s->ctx, &ci, body, len, &rep);
    s->current = NULL;
    if (hr != 0)
        slog(s, c, GIRDER_LOG_ERROR, "event=out_of_memory conn=%llu during=answer",
             (unsigned long long)c->id);
    if (rep.stop_conn) {
        epmd__conn *victim = find_conn(s, rep.stop_conn);
        if (victim) conn_close(victim, "STOP_REQ");
    }
    if (rep.out_len == 0) {
        free(rep.out);
        conn_close(c, "request refused");
        return;
    }
    if (rep.action == EPMD__KEEP) {
        c->state = C_KEPT; /* reading continues: EOF or data ends the registration */
    } else {
        c->state = C_REPLYING;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    /* A registration is never evicted; nor is a KILL on its way to being obeyed. */
    if (rep.action != EPMD__CLOSE && c->pool) epmd__pool_hold(c->pool, &c->slot);
    wreq *w = malloc(sizeof *w);
    if (!w) {
        free(rep.out);
        conn_close(c, "out of memory");
        return;
    }
    w->c = c;
    w->data = rep.out;
    w->action = rep.action;
    uv_buf_t b = uv_buf_init((char *)rep.out, (unsigned)rep.out_len);
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r < 0) {
        free(w->data);
        free(w);
        conn_close(c, "write failed");
    }
}

/*
** What a connection collecting its request does with the result of one read: nread bytes
** appended to c->buf, or a negative UV_* error / UV_EOF.
*/
static void feed(epmd__conn *c, ssize_t nread)
{
    epmd__server *s = c->srv;
    if (nread < 0) {
        if (c->got > 0)
            slog(s, c, GIRDER_LOG_WARNING,
                 "event=request_refused conn=%llu peer=%s reason=truncated bytes=%zu then=%s",
                 (unsigned long long)c->id, c->peer, c->got,
                 nread == UV_EOF ? "end_of_stream" : girder_err_name((int)nread));
        conn_close(c, nread == UV_EOF ? "end of stream" : girder_strerror((int)nread));
        return;
    }
    c->got += (size_t)nread;
    int size = epmd__frame_size(c->buf, c->got);
    if (size < 0) {
        slog(s, c, GIRDER_LOG_WARNING,
             "event=request_refused conn=%llu peer=%s reason=invalid_length length=%u",
             (unsigned long long)c->id, c->peer, girder__get16(c->buf));
        conn_close(c, "invalid length");
        return;
    }
    if (size == 0 || c->got < (size_t)size) return;
    if (c->got > (size_t)size) {
        slog(s, c, GIRDER_LOG_WARNING,
             "event=request_refused conn=%llu peer=%s reason=trailing_bytes trailing=%zu "
             "packet=%d",
             (unsigned long long)c->id, c->peer, c->got - (size_t)size, size);
        conn_close(c, "trailing bytes");
        return;
    }
    process(c, c->buf + 2, (size_t)size - 2);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    epmd__conn *c = (epmd__conn *)h;
    if (c->state == C_READING && c->got < sizeof c->buf)
        *buf = uv_buf_init((char *)c->buf + c->got, (unsigned)(sizeof c->buf - c->got));
    else
        *buf = uv_buf_init((char *)c->scratch, sizeof c->scratch);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    epmd__conn *c = (epmd__conn *)stream;
    if (nread == 0 || c->state == C_CLOSING) return;
    if (c->state == C_KEPT) {
        /* Erlang's epmd: more bytes on a registration, or its end, unregister the node. */
        conn_close(c, nread < 0 ? "connection closed" : "unexpected data on registration");
        return;
    }
    if (c->state == C_READING) feed(c, nread);
}

/*
** Reads, without waiting, what has already arrived for a connection still collecting its
** request, and acts on it as on_read would: a request already sent is answered now.
*/
static void pull(epmd__conn *c)
{
    while (c->state == C_READING && c->got < sizeof c->buf) {
        ssize_t n = recv(c->fd, c->buf + c->got, sizeof c->buf - c->got, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        feed(c, n < 0 ? uv_translate_sys_error(errno) : n == 0 ? UV_EOF : n);
    }
}

/*
** Makes a full pool give way to a newcomer. The victim (pool.c: the oldest connection without a
** name of the address holding the most of them) first gets what it already sent answered, then
** is closed. Returns 1 when there is room, 0 when every slot holds a registration.
*/
static int make_room(epmd__server *s, epmd__pool *p, const char *pool_name)
{
    while (p->used >= p->cap) {
        epmd__slot *v = epmd__pool_victim(p);
        if (!v) return 0;
        epmd__conn *c = conn_of(v);
        size_t held_by_peer = epmd__pool_peer_evictable(p, &c->key);
        if (c->state == C_READING) pull(c);
        if (c->state == C_CLOSING || c->pool != p || c->slot.held) continue;
        s->evicted++;
        slog(s, c, GIRDER_LOG_WARNING,
             "event=conn_evicted conn=%llu peer=%s pool=%s unfinished=%s age_ms=%llu "
             "peer_conns=%zu",
             (unsigned long long)c->id, c->peer, pool_name,
             c->state == C_READING ? (c->got ? "request" : "nothing_sent") : "answer",
             (unsigned long long)(uv_now(s->loop) - c->started_ms), held_by_peer);
        conn_close(c, "evicted to make room");
    }
    return p->cap > 0;
}

/*
** Admission. The ordinary pool first, making room in it if needed; when it holds nothing but
** registrations, the reserve, whose connections may only look up (and make room among
** themselves the same way). Returns 0, or the reason it found no room (a log value).
*/
static const char *admit(epmd__server *s, epmd__conn *c)
{
    int r;
    if (make_room(s, &s->main, "main")) {
        if ((r = epmd__pool_enter(&s->main, &c->slot, &c->key)) == 0) {
            c->pool = &s->main;
            return NULL;
        }
        return r == EPMD_ENOMEM ? "out_of_memory" : "no_room";
    }
    if (make_room(s, &s->reserve, "reserve")) {
        if ((r = epmd__pool_enter(&s->reserve, &c->slot, &c->key)) == 0) {
            c->pool = &s->reserve;
            c->lookup_only = 1;
            return NULL;
        }
        return r == EPMD_ENOMEM ? "out_of_memory" : "no_room";
    }
    return "no_room";
}

/* Loopback peers, and peers using this host's own address, count as local (Erlang's rule). */
static int is_local_peer(uv_tcp_t *tcp, const struct sockaddr_storage *peer)
{
    struct sockaddr_storage self;
    int sl = sizeof self;
    if (peer->ss_family == AF_INET) {
        const struct sockaddr_in *p = (const struct sockaddr_in *)peer;
        if ((ntohl(p->sin_addr.s_addr) & 0xFF000000u) == 0x7F000000u) return 1;
    } else if (peer->ss_family == AF_INET6) {
        const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)peer;
        if (IN6_IS_ADDR_LOOPBACK(&p->sin6_addr)) return 1;
        if (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr) && p->sin6_addr.s6_addr[12] == 127) return 1;
    } else {
        return 0;
    }
    if (uv_tcp_getsockname(tcp, (struct sockaddr *)&self, &sl) != 0) return 0;
    if (self.ss_family != peer->ss_family) return 0;
    if (peer->ss_family == AF_INET)
        return ((const struct sockaddr_in *)peer)->sin_addr.s_addr ==
               ((struct sockaddr_in *)&self)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)peer)->sin6_addr,
                  &((struct sockaddr_in6 *)&self)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

/* The peer's address (key and text); 0, or -1 when it has none (already gone). */
static int peer_of(epmd__conn *c, struct sockaddr_storage *peer)
{
    int pl = sizeof *peer;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)peer, &pl) != 0) return -1;
    if (epmd__peer_key_of((const struct sockaddr *)peer, &c->key) != 0) return -1;
    if (peer->ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)peer, c->peer, sizeof c->peer);
    else
        uv_ip4_name((struct sockaddr_in *)peer, c->peer, sizeof c->peer);
    return 0;
}

static void on_connection(uv_stream_t *server, int status)
{
    epmd__server *s = server->data;
    if (s->closing) return;
    if (status < 0) {
        /* Out of descriptors (libuv then drops the pending connection) or a like failure. */
        slog(s, NULL, GIRDER_LOG_WARNING, "event=accept_failed reason=%s", girder_err_name(status));
        return;
    }
    epmd__conn *c = calloc(1, sizeof *c);
    if (!c) {
        slog(s, NULL, GIRDER_LOG_ERROR, "event=out_of_memory during=accept");
        return; /* it stays in the backlog; we try again at the next one */
    }
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    s->nconns++;
    c->id = ++s->next_id;
    c->started_ms = uv_now(s->loop);
    c->state = C_READING;
    strcpy(c->peer, "?");
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c, "accept failed");
        return;
    }
    uv_os_fd_t fd = -1;
    uv_fileno((uv_handle_t *)&c->tcp, &fd);
    c->fd = fd;
    struct sockaddr_storage peer;
    if (peer_of(c, &peer) != 0) {
        conn_close(c, "peer gone");
        return;
    }
    const char *why = admit(s, c);
    if (why) {
        s->refused++;
        slog(s, c, GIRDER_LOG_WARNING,
             "event=conn_refused conn=%llu peer=%s reason=%s open=%zu limit=%zu registered=%zu",
             (unsigned long long)c->id, c->peer, why, s->main.used + s->reserve.used,
             s->cfg.max_conns, s->reg.reg_count);
        conn_close(c, "no room");
        return;
    }
    c->local_peer = is_local_peer(&c->tcp, &peer);
    slog(s, c, GIRDER_LOG_DEBUG, "event=conn_accepted conn=%llu fd=%d peer=%s local=%d pool=%s",
         (unsigned long long)c->id, c->fd, c->peer, c->local_peer,
         c->lookup_only ? "reserve" : "main");
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close(c, "read failed");
}

/*
** A connection that is not a registration must finish its request and take
** its answer within packet_timeout of being accepted: this bounds silent,
** byte-at-a-time and never-reading clients alike. The log's held-back lines
** are summed up here too, once their window is over.
*/
static void on_sweep(uv_timer_t *t)
{
    epmd__server *s = t->data;
    uint64_t now = uv_now(s->loop);
    uint64_t limit = (uint64_t)s->cfg.packet_timeout_s * 1000;
    epmd__conn *next;
    for (epmd__conn *c = s->conns; c; c = next) {
        next = c->next;
        if (c->state != C_READING && c->state != C_REPLYING) continue;
        if (now - c->started_ms < limit) continue;
        slog(s, c, c->got > 0 || c->state == C_REPLYING ? GIRDER_LOG_WARNING : GIRDER_LOG_INFO,
             "event=conn_timeout conn=%llu peer=%s unfinished=%s limit_s=%d",
             (unsigned long long)c->id, c->peer, c->state == C_READING ? "request" : "answer",
             s->cfg.packet_timeout_s);
        conn_close(c, "timed out");
    }
    epmd__rl_flush(&s->rl, now);
}

static void on_listener_closed(uv_handle_t *h)
{
    epmd__server *s = h->data;
    s->pending_closes--;
    maybe_closed(s);
}

/* Parses one address token into sa (port set). Returns 0 or EPMD_EINVAL. */
static int parse_addr(const char *tok, uint16_t port, struct sockaddr_storage *sa)
{
    memset(sa, 0, sizeof *sa);
    if (uv_ip6_addr(tok, port, (struct sockaddr_in6 *)sa) == 0 && strchr(tok, ':')) return 0;
    if (uv_ip4_addr(tok, port, (struct sockaddr_in *)sa) == 0) return 0;
    return EPMD_EINVAL;
}

static int is_loopback(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* Binds and listens on one address. `fatal`: failure other than "no such address" stops us. */
static int listen_on(epmd__server *s, struct sockaddr_storage *sa, int fatal)
{
    char text[64] = "?";
    if (sa->ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)sa, text, sizeof text);
    else
        uv_ip4_name((struct sockaddr_in *)sa, text, sizeof text);
    uint16_t port = s->bound_port ? s->bound_port : s->cfg.port;
    if (sa->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)sa)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)sa)->sin_port = htons(port);
    if (s->nlisteners >= EPMD__MAX_LISTEN) {
        slog(s, NULL, GIRDER_LOG_ERROR, "event=listen_failed reason=too_many_addresses limit=%d",
             EPMD__MAX_LISTEN);
        return EPMD_EINVAL;
    }
    uv_tcp_t *t = &s->listeners[s->nlisteners];
    int r = uv_tcp_init_ex(s->loop, t, sa->ss_family);
    if (r < 0) {
        slog(s, NULL, fatal ? GIRDER_LOG_ERROR : GIRDER_LOG_INFO,
             "event=listen_failed address=%s stage=socket reason=%s", text, girder_err_name(r));
        return fatal ? r : 0;
    }
    t->data = s;
    s->nlisteners++;
    r = uv_tcp_bind(t, (struct sockaddr *)sa, sa->ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (r == 0) r = uv_listen((uv_stream_t *)t, SOMAXCONN, on_connection);
    if (r == UV_EADDRINUSE) {
        slog(s, NULL, GIRDER_LOG_ERROR, "event=already_running port=%u address=%s", port, text);
        return EPMD_EADDRINUSE;
    }
    if (r < 0) {
        slog(s, NULL, fatal ? GIRDER_LOG_ERROR : GIRDER_LOG_INFO,
             "event=listen_failed address=%s port=%u reason=%s", text, port, girder_err_name(r));
        s->listener_closed[s->nlisteners - 1] = 1;
        s->pending_closes++;
        uv_close((uv_handle_t *)t, on_listener_closed);
        return fatal ? r : 0;
    }
    s->nbound++;
    if (!s->bound_port) {
        struct sockaddr_storage got;
        int gl = sizeof got;
        if (uv_tcp_getsockname(t, (struct sockaddr *)&got, &gl) == 0)
            s->bound_port =
                ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                : ((struct sockaddr_in *)&got)->sin_port);
    }
    slog(s, NULL, GIRDER_LOG_INFO, "event=listening address=%s port=%u", text, s->bound_port);
    return 0;
}

static int listen_all(epmd__server *s)
{
    struct sockaddr_storage sa;
    const char *list = s->cfg.addresses;
    if (!list || list[strspn(list, " ,")] == 0) {
        parse_addr("0.0.0.0", 0, &sa);
        int r = listen_on(s, &sa, 1);
        if (r) return r;
        parse_addr("::", 0, &sa);
        return listen_on(s, &sa, 0); /* hosts without IPv6 still work */
    }
    /* Loopback is always served (local tools and nodes need it), as Erlang's epmd does. */
    parse_addr("127.0.0.1", 0, &sa);
    int r = listen_on(s, &sa, 1);
    if (r) return r;
    parse_addr("::1", 0, &sa);
    if ((r = listen_on(s, &sa, 0))) return r;
    char *tmp = strdup(list), *save = NULL;
    if (!tmp) return EPMD_ENOMEM;
    for (char *tok = strtok_r(tmp, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (parse_addr(tok, 0, &sa) != 0) {
            char v[128];
            slog(s, NULL, GIRDER_LOG_ERROR, "event=bad_address address=%s",
                 girder__log_value(v, sizeof v, tok, strlen(tok)));
            r = EPMD_EINVAL;
            break;
        }
        if (is_loopback(&sa)) continue;
        if ((r = listen_on(s, &sa, 1))) break;
    }
    free(tmp);
    return r;
}

/* The reserve's share of max_conns when the configuration names none: an eighth, 1..1024. */
static size_t default_reserve(size_t max_conns)
{
    size_t r = max_conns / 8;
    if (r < 1) r = 1;
    if (r > 1024) r = 1024;
    return r < max_conns ? r : max_conns / 2;
}

int epmd__server_start(epmd__server *s, uv_loop_t *loop, const epmd__server_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->cfg = *cfg;
    if (s->cfg.packet_timeout_s <= 0) s->cfg.packet_timeout_s = 60;
    if (s->cfg.max_conns == 0) s->cfg.max_conns = 1000;
    if (s->cfg.reserve == 0 || s->cfg.reserve >= s->cfg.max_conns)
        s->cfg.reserve = default_reserve(s->cfg.max_conns);
    s->log_level = s->cfg.log_level > 0 ? s->cfg.log_level : GIRDER_LOG_DEBUG;
    epmd__rl_init(&s->rl, s->cfg.log_interval_ms, s->cfg.log_per_kind, s->cfg.log_per_peer, rl_emit,
                  s);
    epmd__registry_init(&s->reg, cfg->debug ? 5 : 1000);
    uint64_t seed = uv_hrtime() ^ ((uint64_t)(uintptr_t)s << 17) ^ (uint64_t)getpid();
    int r = epmd__pool_init(&s->main, s->cfg.max_conns - s->cfg.reserve, seed);
    if (r == 0) r = epmd__pool_init(&s->reserve, s->cfg.reserve, seed * 0x9E3779B97F4A7C15ull);
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    if (r == 0) r = listen_all(s);
    s->ctx.reg = &s->reg;
    s->ctx.port = s->bound_port;
    s->ctx.relaxed = cfg->relaxed;
    s->ctx.log = cfg->log ? handler_log : NULL;
    s->ctx.log_arg = s;
    if (r == 0 && s->nbound == 0) r = EPMD_EADDRINUSE;
    if (r) {
        epmd__server_close(s, NULL);
        return r;
    }
    uint64_t every = s->cfg.packet_timeout_s < 5 ? 250 : 1000;
    uv_timer_start(&s->sweep, on_sweep, every, every);
    return 0;
}

void epmd__server_close(epmd__server *s, void (*close_cb)(epmd__server *))
{
    if (s->closing) return;
    s->closing = 1;
    s->close_cb = close_cb;
    for (int i = 0; i < s->nlisteners; i++) {
        if (s->listener_closed[i]) continue;
        s->listener_closed[i] = 1;
        s->pending_closes++;
        uv_close((uv_handle_t *)&s->listeners[i], on_listener_closed);
    }
    s->pending_closes++;
    s->sweep.data = s;
    uv_close((uv_handle_t *)&s->sweep, on_listener_closed);
    while (s->conns) conn_close(s->conns, "epmd stopping");
    epmd__rl_finish(&s->rl, uv_now(s->loop)); /* what was held back is summed up, not lost */
}
