/* Girder epmd server: libuv listeners and connections feeding the pure request handler. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    uint64_t id;
    uint64_t started_ms;
    int fd;
    int local_peer;
    int state;
    int exit_after_write;
    size_t got;
    uint8_t buf[EPMD_MAX_PACKET];
    uint8_t scratch[64]; /* reads on a kept connection: content is discarded */
};

typedef struct wreq {
    uv_write_t req;
    epmd__conn *c;
    uint8_t *data;
    int action;
} wreq;

/* Free text (a reason) as one log value, in a buffer that lives to the end of the statement. */
#define LOGVAL(text) girder__log_value((char[128]){0}, 128, (text), strlen(text))

static void slog(epmd__server *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void slog(epmd__server *s, int level, const char *fmt, ...)
{
    if (!s->cfg.log) return;
    va_list ap;
    va_start(ap, fmt);
    s->cfg.log(s->cfg.log_arg, level, fmt, ap);
    va_end(ap);
}

static void maybe_closed(epmd__server *s)
{
    if (s->closing && s->pending_closes == 0) {
        epmd__registry_free(&s->reg);
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
        slog(s, GIRDER_LOG_NOTICE,
             "event=unregistered name=%s port=%u creation=%u conn=%llu reason=%s",
             girder__log_value(pname, sizeof pname, n->info.name, n->info.name_len), n->info.port,
             epmd__node_creation(n), (unsigned long long)c->id, LOGVAL(why));
    } else {
        slog(s, GIRDER_LOG_DEBUG, "event=conn_closed conn=%llu reason=%s",
             (unsigned long long)c->id, LOGVAL(why));
    }
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
    epmd__conn_info ci = {
        .id = c->id, .fd = c->fd, .local_peer = c->local_peer, .now = (uint32_t)time(NULL)};
    epmd__reply rep;
    if (epmd__handle_request(&s->ctx, &ci, body, len, &rep) != 0)
        slog(s, GIRDER_LOG_ERROR, "event=out_of_memory conn=%llu during=answer",
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

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    epmd__conn *c = (epmd__conn *)h;
    if (c->state == C_READING && c->got < sizeof c->buf)
        *buf = uv_buf_init((char *)c->buf + c->got, (unsigned)(sizeof c->buf - c->got));
    else
        *buf = uv_buf_init((char *)c->scratch, sizeof c->scratch);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    epmd__conn *c = (epmd__conn *)stream;
    epmd__server *s = c->srv;
    if (nread == 0 || c->state == C_CLOSING) return;
    if (c->state == C_KEPT) {
        /* Erlang's epmd: more bytes on a registration, or its end, unregister the node. */
        conn_close(c, nread < 0 ? "connection closed" : "unexpected data on registration");
        return;
    }
    if (c->state != C_READING) return;
    if (nread < 0) {
        if (c->got > 0)
            slog(s, GIRDER_LOG_WARNING,
                 "event=request_refused conn=%llu reason=truncated bytes=%zu then=%s",
                 (unsigned long long)c->id, c->got,
                 nread == UV_EOF ? "end_of_stream" : girder_err_name((int)nread));
        conn_close(c, nread == UV_EOF ? "end of stream" : girder_strerror((int)nread));
        return;
    }
    c->got += (size_t)nread;
    int size = epmd__frame_size(c->buf, c->got);
    if (size < 0) {
        slog(s, GIRDER_LOG_WARNING,
             "event=request_refused conn=%llu reason=invalid_length length=%u",
             (unsigned long long)c->id, girder__get16(c->buf));
        conn_close(c, "invalid length");
        return;
    }
    if (size == 0 || c->got < (size_t)size) return;
    if (c->got > (size_t)size) {
        slog(s, GIRDER_LOG_WARNING,
             "event=request_refused conn=%llu reason=trailing_bytes trailing=%zu packet=%d",
             (unsigned long long)c->id, c->got - (size_t)size, size);
        conn_close(c, "trailing bytes");
        return;
    }
    process(c, c->buf + 2, (size_t)size - 2);
}

/* Loopback peers, and peers using this host's own address, count as local (Erlang's rule). */
static int is_local_peer(uv_tcp_t *tcp)
{
    struct sockaddr_storage peer, self;
    int pl = sizeof peer, sl = sizeof self;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&peer, &pl) != 0) return 0;
    if (peer.ss_family == AF_INET) {
        const struct sockaddr_in *p = (const struct sockaddr_in *)&peer;
        if ((ntohl(p->sin_addr.s_addr) & 0xFF000000u) == 0x7F000000u) return 1;
    } else if (peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *p = (const struct sockaddr_in6 *)&peer;
        if (IN6_IS_ADDR_LOOPBACK(&p->sin6_addr)) return 1;
        if (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr) && p->sin6_addr.s6_addr[12] == 127) return 1;
    } else {
        return 0;
    }
    if (uv_tcp_getsockname(tcp, (struct sockaddr *)&self, &sl) != 0) return 0;
    if (self.ss_family != peer.ss_family) return 0;
    if (peer.ss_family == AF_INET)
        return ((struct sockaddr_in *)&peer)->sin_addr.s_addr ==
               ((struct sockaddr_in *)&self)->sin_addr.s_addr;
    return memcmp(&((struct sockaddr_in6 *)&peer)->sin6_addr,
                  &((struct sockaddr_in6 *)&self)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

static void on_connection(uv_stream_t *server, int status)
{
    epmd__server *s = server->data;
    if (status < 0 || s->closing) return;
    epmd__conn *c = calloc(1, sizeof *c);
    if (!c) {
        slog(s, GIRDER_LOG_ERROR, "event=out_of_memory during=accept");
        return; /* it stays in the backlog; we try again at the next one */
    }
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    s->nconns++;
    c->id = ++s->next_id;
    c->started_ms = uv_now(s->loop);
    c->state = C_READING;
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
    if (s->nconns > s->cfg.max_conns) {
        slog(s, GIRDER_LOG_WARNING,
             "event=conn_refused conn=%llu reason=too_many_connections open=%zu limit=%zu",
             (unsigned long long)c->id, s->nconns - 1, s->cfg.max_conns);
        conn_close(c, "too many connections");
        return;
    }
    c->local_peer = is_local_peer(&c->tcp);
    slog(s, GIRDER_LOG_DEBUG, "event=conn_accepted conn=%llu fd=%d local=%d",
         (unsigned long long)c->id, c->fd, c->local_peer);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) conn_close(c, "read failed");
}

/*
** A connection that is not a registration must finish its request and take
** its answer within packet_timeout of being accepted: this bounds silent,
** byte-at-a-time and never-reading clients alike.
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
        slog(s, c->got > 0 || c->state == C_REPLYING ? GIRDER_LOG_WARNING : GIRDER_LOG_INFO,
             "event=conn_timeout conn=%llu unfinished=%s limit_s=%d", (unsigned long long)c->id,
             c->state == C_READING ? "request" : "answer", s->cfg.packet_timeout_s);
        conn_close(c, "timed out");
    }
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
        slog(s, GIRDER_LOG_ERROR, "event=listen_failed reason=too_many_addresses limit=%d",
             EPMD__MAX_LISTEN);
        return EPMD_EINVAL;
    }
    uv_tcp_t *t = &s->listeners[s->nlisteners];
    int r = uv_tcp_init_ex(s->loop, t, sa->ss_family);
    if (r < 0) {
        slog(s, fatal ? GIRDER_LOG_ERROR : GIRDER_LOG_INFO,
             "event=listen_failed address=%s stage=socket reason=%s", text, girder_err_name(r));
        return fatal ? r : 0;
    }
    t->data = s;
    s->nlisteners++;
    r = uv_tcp_bind(t, (struct sockaddr *)sa, sa->ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (r == 0) r = uv_listen((uv_stream_t *)t, SOMAXCONN, on_connection);
    if (r == UV_EADDRINUSE) {
        slog(s, GIRDER_LOG_ERROR, "event=already_running port=%u address=%s", port, text);
        return EPMD_EADDRINUSE;
    }
    if (r < 0) {
        slog(s, fatal ? GIRDER_LOG_ERROR : GIRDER_LOG_INFO,
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
    slog(s, GIRDER_LOG_INFO, "event=listening address=%s port=%u", text, s->bound_port);
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
            slog(s, GIRDER_LOG_ERROR, "event=bad_address address=%s",
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

int epmd__server_start(epmd__server *s, uv_loop_t *loop, const epmd__server_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->loop = loop;
    s->cfg = *cfg;
    if (s->cfg.packet_timeout_s <= 0) s->cfg.packet_timeout_s = 60;
    if (s->cfg.max_conns == 0) s->cfg.max_conns = 1000;
    epmd__registry_init(&s->reg, cfg->debug ? 5 : 1000);
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    int r = listen_all(s);
    s->ctx.reg = &s->reg;
    s->ctx.port = s->bound_port;
    s->ctx.relaxed = cfg->relaxed;
    s->ctx.log = cfg->log;
    s->ctx.log_arg = cfg->log_arg;
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
}
