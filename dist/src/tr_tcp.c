/* The TCP transport: libuv streams, timers and wake-ups on a loop thread, or on an idle scheduler;
 * the only libuv user in dist. */
#include "transport.h"
#include "dist_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <uv.h>
#include <linux/futex.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <girder/epmd.h>
#include <girder/epmd_uv.h>
#include <girder/node_dist.h>
#include <girder_deadline.h>

typedef struct tcp_tr {
    dist_tr base;
    uv_loop_t loop;
    uv_async_t async;
    uv_prepare_t prep;         /* counts the loop's iterations (iter) */
    uv_idle_t idle;            /* active while streams wait out their read budget */
    uint64_t iter;             /* loop iterations so far (run_mu) */
    dist_tr_stream *throttled; /* streams over their read budget this iteration (run_mu) */
    uv_tcp_t listener;
    bool listening;
    epmd_uv_registration *epmd;
    uint16_t epmd_port;
    pthread_t thread;
    bool running;
    bool registered; /* the first published() went out */
    /* who runs the loop (see "the loop" below) */
    pthread_mutex_t run_mu;     /* held by the thread inside uv_run */
    _Atomic uint32_t mode;      /* LOOP_THREAD, LOOP_WANTED, LOOP_SCHEDS; a futex word */
    _Atomic bool ended;         /* the loop has nothing left: nobody runs it again */
    _Atomic uint64_t last_poll; /* when a scheduler last ran the loop (CLOCK_MONOTONIC ns) */
    _Atomic uint32_t activity;  /* bumped by every read, write done, accept and wake-up */
    _Atomic int sleepers;       /* schedulers holding the loop to sleep in it (0 or 1) */
    _Atomic uint64_t reads_thread, reads_scheds; /* reads made by the loop thread, by schedulers */
    _Atomic uint64_t bulk_until; /* until then the loop stays on its thread (CLOCK_MONOTONIC ns) */
    int wake_fd;                 /* an eventfd: wakes a scheduler asleep in the loop */
    bool polled;                 /* this transport is libnode's idle poller */
} tcp_tr;

enum { LOOP_THREAD, LOOP_WANTED, LOOP_SCHEDS };

static _Thread_local bool on_loop_thread; /* set on the loop's own thread */

/* A lookup in libuv's thread pool: getaddrinfo and the port mapper, which block. */
typedef struct lookup {
    uv_work_t work;
    dist_tr_stream *s;
    char alive[HS_MAX_NAME + 1], host[HS_MAX_NAME + 1];
    char ip[INET6_ADDRSTRLEN];
    int family;
    uint16_t port, epmd_port;
    int version;
    int timeout_ms;
    int err;
} lookup;

struct dist_tr_stream {
    tcp_tr *t;
    uv_tcp_t tcp;
    uv_connect_t creq;
    void *ud;
    int refs;       /* the handle until closed, plus a lookup in flight */
    bool closing;   /* close() called: no more callbacks */
    bool reading;   /* the user's wish (tcp_read_start/stop) */
    bool throttled; /* over its read budget: reads again at the next iteration */
    dist_tr_stream *next_throttled;
    uint64_t budget_iter; /* the iteration budget_used counts for */
    size_t budget_used;   /* bytes read in that iteration */
    int version;
    char peer[80];
};

typedef struct wreq {
    uv_write_t w;
    dist_tr_stream *s;
    void *req;
    uv_buf_t bufs[];
} wreq;

struct dist_tr_timer {
    uv_timer_t h;
    void (*cb)(void *ud);
    void *ud;
};

#define T(x) ((tcp_tr *)(x))

static int uverr(int rc)
{
    return rc == UV_ENOMEM ? DIST_ENOMEM : rc == UV_ETIMEDOUT ? DIST_ETIMEOUT : DIST_ENOCONN;
}

/* ================================================================ streams */

static void stream_unref(dist_tr_stream *s)
{
    if (--s->refs == 0) free(s);
}

static void on_stream_closed(uv_handle_t *h)
{
    stream_unref(h->data);
}

static dist_tr_stream *stream_new(tcp_tr *t, void *ud)
{
    dist_tr_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    if (uv_tcp_init(&t->loop, &s->tcp) != 0) {
        free(s);
        return NULL;
    }
    s->t = t;
    s->ud = ud;
    s->refs = 1;
    s->tcp.data = s;
    snprintf(s->peer, sizeof s->peer, "?");
    return s;
}

static void unthrottle_remove(dist_tr_stream *s)
{
    for (dist_tr_stream **pp = &s->t->throttled; *pp; pp = &(*pp)->next_throttled) {
        if (*pp == s) {
            *pp = s->next_throttled;
            break;
        }
    }
    s->throttled = false;
}

static void tcp_close(dist_tr_stream *s)
{
    if (!s || s->closing) return;
    s->closing = true;
    if (s->throttled) unthrottle_remove(s);
    uv_close((uv_handle_t *)&s->tcp, on_stream_closed);
}

static void set_peer(dist_tr_stream *s)
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

static void tcp_set_ud(dist_tr_stream *s, void *ud)
{
    s->ud = ud;
}

static void *tcp_get_ud(dist_tr_stream *s)
{
    return s->ud;
}

static void tcp_peer(dist_tr_stream *s, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", s->peer);
}

/* ================================================================ reading */

static uint64_t clock_ns(clockid_t id);

/* A read this large is bulk traffic (a large message, or small ones that queued up): reading it
** on the loop thread overlaps the reading with the work of its receivers on the schedulers,
** where a scheduler that reads it and then runs them does one after the other (64 KB messages
** from one sender: 8-11 k/s that way, 16-18 k/s overlapped; docs/performance.md). A round trip
** of small messages never reads this much at once and stays with the schedulers. */
#define BULK_READ_BYTES 16384
#define BULK_HOLD_NS    2000000u

/* What one stream may read in one iteration of the loop, and in one read. libuv reads a
** readable stream up to 32 times in a row, each read as large as the buffer given (a whole
** frame: megabytes), so a peer streaming as fast as it can held every other connection's events
** back for up to 32 such reads (seconds, where each fresh page of the buffers faults for 10-15
** us and the sender had filled its socket's buffer: dist-int-frags beside another test). Past
** this budget the stream stops reading until the next iteration, after the others' events. */
#define READ_BUDGET (1024 * 1024)

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* Whoever runs the loop, at each iteration before the poll. */
static void on_prepare(uv_prepare_t *h)
{
    tcp_tr *t = h->data;
    t->iter++;
}

/* The iteration after streams went over their budget: they read again (an active idle handle
** makes the loop poll without waiting, so this comes at once). */
static void on_idle(uv_idle_t *h)
{
    tcp_tr *t = h->data;
    dist_tr_stream *s = t->throttled;
    t->throttled = NULL;
    uv_idle_stop(&t->idle);
    while (s) {
        dist_tr_stream *next = s->next_throttled;
        s->throttled = false;
        s->next_throttled = NULL;
        if (s->reading && !s->closing) uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
        s = next;
    }
}

/* After a read of n bytes from s: stops s reading for the rest of this iteration if it went
** over its budget. */
static void read_budget(dist_tr_stream *s, size_t n)
{
    tcp_tr *t = s->t;
    if (s->budget_iter != t->iter) {
        s->budget_iter = t->iter;
        s->budget_used = 0;
    }
    s->budget_used += n;
    if (s->budget_used < READ_BUDGET || s->throttled || s->closing || !s->reading) return;
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->throttled = true;
    s->next_throttled = t->throttled;
    t->throttled = s;
    uv_idle_start(&t->idle, on_idle);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    dist_tr_stream *s = h->data;
    dist_tr *t = &s->t->base;
    uint8_t *b = NULL;
    size_t cap = 0;
    (void)suggested;
    t->user.alloc(t->user.ud, s, &b, &cap);
    if (cap > READ_BUDGET) cap = READ_BUDGET;
    *buf = uv_buf_init((char *)b, (unsigned)cap);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    dist_tr_stream *s = st->data;
    dist_tr *t = &s->t->base;
    atomic_fetch_add_explicit(&s->t->activity, 1, memory_order_relaxed);
    if (nread > 0)
        atomic_fetch_add_explicit(on_loop_thread ? &s->t->reads_thread : &s->t->reads_scheds, 1,
                                  memory_order_relaxed);
    if (nread >= BULK_READ_BYTES)
        atomic_store_explicit(&s->t->bulk_until, clock_ns(CLOCK_MONOTONIC) + BULK_HOLD_NS,
                              memory_order_relaxed);
    if (s->closing) return;
    if (nread == 0) {
        if (!buf->base || !buf->len) t->user.read(t->user.ud, s, DIST_ENOMEM);
        return;
    }
    t->user.read(t->user.ud, s,
                 nread > 0         ? nread
                 : nread == UV_EOF ? DIST_ENOCONN
                                   : uverr((int)nread));
    if (nread > 0) read_budget(s, (size_t)nread);
}

static int tcp_read_start(dist_tr_stream *s)
{
    if (s->reading) return 0;
    if (s->throttled) { /* reads again at the next iteration */
        s->reading = true;
        return 0;
    }
    int rc = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
    if (rc == 0) s->reading = true;
    return rc ? uverr(rc) : 0;
}

static void tcp_read_stop(dist_tr_stream *s)
{
    if (!s->reading) return;
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->reading = false;
}

/* ================================================================ writing */

static void on_written(uv_write_t *w, int status)
{
    wreq *r = w->data;
    dist_tr_stream *s = r->s;
    void *req = r->req;
    free(r);
    atomic_fetch_add_explicit(&s->t->activity, 1, memory_order_relaxed);
    if (s->closing) return; /* cancelled by close(): the user frees what it kept */
    dist_tr *t = &s->t->base;
    t->user.written(t->user.ud, s, status < 0 ? uverr(status) : 0, req);
}

static int tcp_write(dist_tr_stream *s, const dist_iov *iov, size_t n, void *req)
{
    if (s->closing) return DIST_ENOCONN;
    wreq *r = malloc(sizeof *r + n * sizeof(uv_buf_t));
    if (!r) return DIST_ENOMEM;
    for (size_t i = 0; i < n; i++)
        r->bufs[i] = uv_buf_init((char *)iov[i].base, (unsigned)iov[i].len);
    r->s = s;
    r->req = req;
    r->w.data = r;
    int rc = uv_write(&r->w, (uv_stream_t *)&s->tcp, r->bufs, (unsigned)n, on_written);
    if (rc) {
        free(r);
        return uverr(rc);
    }
    return 0;
}

/* Any thread: the socket's descriptor is stable while the user keeps the stream open. */
static ssize_t tcp_try_write(dist_tr_stream *s, const uint8_t *p, size_t n)
{
    uv_os_fd_t fd = -1;
    if (uv_fileno((uv_handle_t *)&s->tcp, &fd) != 0 || fd < 0) return DIST_ENOCONN;
    ssize_t w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w >= 0) return w;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : DIST_ENOCONN;
}

/* ================================================================ accepting */

static void on_connection(uv_stream_t *server, int status)
{
    tcp_tr *t = server->data;
    atomic_fetch_add_explicit(&t->activity, 1, memory_order_relaxed);
    if (status < 0) return;
    dist_tr_stream *s = stream_new(t, NULL);
    if (!s) return;
    if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0) {
        tcp_close(s);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    set_peer(s);
    t->base.user.accepted(t->base.user.ud, s);
}

static int tcp_listen(dist_tr *bt, const char *addr, uint16_t port, uint16_t *bound)
{
    tcp_tr *t = T(bt);
    struct sockaddr_storage ss;
    const char *a = addr ? addr : "0.0.0.0";
    if (uv_ip4_addr(a, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(a, port, (struct sockaddr_in6 *)&ss) != 0)
        return DIST_EINVAL;
    if (uv_tcp_bind(&t->listener, (struct sockaddr *)&ss, 0) != 0 ||
        uv_listen((uv_stream_t *)&t->listener, 128, on_connection) != 0)
        return DIST_ELISTEN;
    t->listening = true;
    int len = sizeof ss;
    uv_tcp_getsockname(&t->listener, (struct sockaddr *)&ss, &len);
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

/* ================================================================ the port mapper */

static void on_epmd(epmd_uv_registration *reg, int status)
{
    tcp_tr *t = reg->data;
    t->base.user.published(t->base.user.ud, status == 0 ? 0 : DIST_EEPMD,
                           status == 0 ? reg->creation : 0);
}

static void on_epmd_closed(epmd_uv_registration *reg)
{
    free(reg);
}

static int tcp_publish(dist_tr *bt, const char *alive, uint16_t port, bool hidden, int timeout_ms)
{
    tcp_tr *t = T(bt);
    epmd_node_info info;
    if (t->epmd || epmd_node_info_init(&info, alive, port) != 0) return DIST_EINVAL;
    t->epmd = calloc(1, sizeof *t->epmd);
    if (!t->epmd) return DIST_ENOMEM;
    t->epmd->data = t;
    info.node_type = hidden ? EPMD_NODE_TYPE_HIDDEN : EPMD_NODE_TYPE_NORMAL;
    info.lowest_version = 5;
    info.highest_version = 6;
    struct sockaddr_in ea;
    uv_ip4_addr("127.0.0.1", t->epmd_port, &ea);
    if (epmd_uv_register(&t->loop, t->epmd, (struct sockaddr *)&ea, &info, timeout_ms, on_epmd) !=
        0) {
        epmd_uv_unregister(t->epmd, on_epmd_closed);
        t->epmd = NULL;
        return DIST_EEPMD;
    }
    return 0;
}

/* ================================================================ connecting */

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
    l->err = epmd_port_please(l->ip, l->epmd_port, l->alive, l->timeout_ms, &info);
    if (!l->err) {
        l->port = info.port;
        l->version = info.highest_version >= 6 ? 6 : 5;
    }
}

static void on_connected(uv_connect_t *req, int status)
{
    dist_tr_stream *s = req->data;
    if (s->closing) return;
    dist_tr *t = &s->t->base;
    if (status == 0) {
        uv_tcp_nodelay(&s->tcp, 1);
        set_peer(s);
    }
    t->user.connected(t->user.ud, s, status < 0 ? uverr(status) : 0, s->version,
                      status < 0 ? uv_strerror(status) : NULL);
}

static void lookup_after(uv_work_t *w, int status)
{
    lookup *l = w->data;
    dist_tr_stream *s = l->s;
    dist_tr *t = &s->t->base;
    /* the port mapper's own codes say what failed: no such name, no port mapper, no host */
    int err = status ? DIST_ENOCONN : l->err;
    char why[2 * HS_MAX_NAME + 96] = "";
    if (!s->closing && !err) {
        struct sockaddr_storage ss;
        int rc = l->family == AF_INET ? uv_ip4_addr(l->ip, l->port, (struct sockaddr_in *)&ss)
                                      : uv_ip6_addr(l->ip, l->port, (struct sockaddr_in6 *)&ss);
        snprintf(s->peer, sizeof s->peer, "%s:%u", l->ip, l->port);
        s->version = l->version;
        s->creq.data = s;
        if (!rc) rc = uv_tcp_connect(&s->creq, &s->tcp, (struct sockaddr *)&ss, on_connected);
        if (rc) {
            err = uverr(rc);
            snprintf(why, sizeof why, "cannot connect to %s: %s", s->peer, uv_strerror(rc));
        }
    } else if (err) {
        snprintf(why, sizeof why, "port mapper lookup of %s@%s failed: %s", l->alive, l->host,
                 l->err ? epmd_strerror(l->err) : "cancelled");
    }
    if (!s->closing && err) t->user.connected(t->user.ud, s, err, 0, why);
    stream_unref(s);
    free(l);
}

static int tcp_connect(dist_tr *bt, const char *node, int timeout_ms, void *ud,
                       dist_tr_stream **out)
{
    tcp_tr *t = T(bt);
    const char *at = strchr(node, '@');
    if (!at || at == node || (size_t)(at - node) > HS_MAX_NAME || strlen(at + 1) > HS_MAX_NAME)
        return DIST_ENAME;
    lookup *l = calloc(1, sizeof *l);
    dist_tr_stream *s = l ? stream_new(t, ud) : NULL;
    if (!s) {
        free(l);
        return DIST_ENOMEM;
    }
    memcpy(l->alive, node, (size_t)(at - node));
    snprintf(l->host, sizeof l->host, "%s", at + 1);
    l->epmd_port = t->epmd_port;
    l->timeout_ms = timeout_ms;
    l->s = s;
    l->work.data = l;
    s->refs++;
    if (uv_queue_work(&t->loop, &l->work, lookup_work, lookup_after) != 0) {
        s->refs--;
        free(l);
        tcp_close(s);
        return DIST_ENOMEM;
    }
    *out = s;
    return 0;
}

/* ================================================================ timers */

static void on_timer(uv_timer_t *h)
{
    dist_tr_timer *tm = h->data;
    tm->cb(tm->ud);
}

static dist_tr_timer *tcp_timer_new(dist_tr *bt, void (*cb)(void *ud), void *ud)
{
    dist_tr_timer *tm = calloc(1, sizeof *tm);
    if (!tm) return NULL;
    uv_timer_init(&T(bt)->loop, &tm->h);
    tm->h.data = tm;
    tm->cb = cb;
    tm->ud = ud;
    return tm;
}

static void tcp_timer_start(dist_tr_timer *tm, uint64_t ms, uint64_t repeat_ms)
{
    uv_timer_start(&tm->h, on_timer, ms, repeat_ms);
}

static void tcp_timer_stop(dist_tr_timer *tm)
{
    uv_timer_stop(&tm->h);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void tcp_timer_free(dist_tr_timer *tm)
{
    if (tm) uv_close((uv_handle_t *)&tm->h, on_timer_closed);
}

/* ================================================================ clock, randomness, wake-ups */

static uint64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t tcp_now(dist_tr *t)
{
    (void)t;
    return clock_ns(CLOCK_MONOTONIC);
}

static uint64_t tcp_realtime(dist_tr *t)
{
    (void)t;
    return clock_ns(CLOCK_REALTIME);
}

static void tcp_random(dist_tr *t, void *buf, size_t n)
{
    uint8_t *p = buf;
    (void)t;
    while (n) {
        ssize_t r = getrandom(p, n, 0);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        }
    }
}

static void on_async(uv_async_t *a)
{
    tcp_tr *t = a->data;
    atomic_fetch_add_explicit(&t->activity, 1, memory_order_relaxed);
    t->base.user.wake(t->base.user.ud);
}

static void tcp_wake(dist_tr *t)
{
    uv_async_send(&T(t)->async);
}

static void tcp_reads(dist_tr *bt, uint64_t *on_loop_thread_, uint64_t *on_schedulers)
{
    *on_loop_thread_ = atomic_load_explicit(&T(bt)->reads_thread, memory_order_relaxed);
    *on_schedulers = atomic_load_explicit(&T(bt)->reads_scheds, memory_order_relaxed);
}

/* ================================================================ the loop */

/*
** Who runs the loop. The loop thread does (LOOP_THREAD), blocked in epoll_wait between events,
** except while the node's schedulers have run out of work (LOOP_SCHEDS): a scheduler spinning
** before it sleeps runs the loop without blocking at every turn of its spin, and one that
** goes to sleep sleeps in the loop (ppoll on its epoll descriptor and on wake_fd, then one
** turn of the loop) instead of on its own futex; the loop thread sleeps meanwhile. This is
** libnode's idle poller (nd_set_idle_poller). A message from another node then wakes the one
** thread that reads it, delivers it to its own run queue and runs its receiver, where the loop
** thread would have been woken by the data and then have woken a scheduler: two wake-ups a
** message, and on a small machine two switches of a core between threads, most of a round
** trip there (docs/performance.md, dist_roundtrip).
**   - A spinning scheduler that finds the mode LOOP_THREAD asks for the loop (LOOP_WANTED, and
**     a wake-up of the loop, which is in epoll_wait); the loop thread, back from uv_run,
**     switches to LOOP_SCHEDS, lets go of run_mu and sleeps on `mode`. Every change of mode
**     is a compare-and-swap from the mode its maker saw, so a request withdrawn (LOOP_WANTED
**     back to LOOP_THREAD) is never granted after it.
**   - Schedulers take run_mu with trylock, never waiting: one runs the loop at a time.
**   - A scheduler that goes to sleep on its futex while no other spins or sleeps in the loop
**     gives the loop back (LOOP_THREAD, and the loop thread is woken).
**   - A node whose schedulers are all busy running processes has none in the loop: the loop
**     thread wakes every TAKE_BACK_NS (SLEEPER_CHECK_NS while a scheduler sleeps in the loop)
**     and takes the loop back when no scheduler sleeps in it and none has run it for
**     TAKE_BACK_NS. I/O then waits for at most about that long, or SLEEPER_CHECK_NS for a
**     scheduler that woke from the loop into a long slice.
**   - Bulk traffic (BULK_READ_BYTES in one read) keeps the loop on its thread for BULK_HOLD_NS
**     after the last such read: a scheduler that made one gives the loop back at the end of
**     its turn, and spinning schedulers do not ask for it meanwhile.
**   - Stopping: tcp_join removes the idle poller (no scheduler is inside it once that
**     returns), gives the loop back and joins the thread, which runs the loop to its end.
** The loop's callbacks run on whichever thread holds run_mu: never two at once, and each after
** the last one's writes (the mutex orders them), as on one thread.
*/
#define TAKE_BACK_NS     1000000u
#define SLEEPER_CHECK_NS 10000000u

static void futex_wake_one(_Atomic uint32_t *w)
{
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Loop thread, not holding run_mu: sleeps while schedulers run the loop, and takes it back
** when none sleeps in it and none has run it for TAKE_BACK_NS. */
static void wait_for_loop(tcp_tr *t)
{
    while (atomic_load(&t->mode) == LOOP_SCHEDS) {
        uint32_t ns = atomic_load(&t->sleepers) ? SLEEPER_CHECK_NS : TAKE_BACK_NS;
        struct timespec ts = {0, (long)ns};
        syscall(SYS_futex, &t->mode, FUTEX_WAIT_PRIVATE, LOOP_SCHEDS, &ts, NULL, 0);
        uint64_t now = clock_ns(CLOCK_MONOTONIC);
        if (!atomic_load(&t->sleepers) && now - atomic_load(&t->last_poll) >= TAKE_BACK_NS) {
            uint32_t m = LOOP_SCHEDS;
            atomic_compare_exchange_strong(&t->mode, &m, LOOP_THREAD);
        }
    }
}

static void *loop_main(void *arg)
{
    tcp_tr *t = arg;
    on_loop_thread = true;
    pthread_mutex_lock(&t->run_mu);
    while (!atomic_load(&t->ended) && uv_run(&t->loop, UV_RUN_ONCE)) {
        uint32_t m = LOOP_WANTED;
        atomic_store(&t->last_poll, clock_ns(CLOCK_MONOTONIC));
        if (!atomic_compare_exchange_strong(&t->mode, &m, LOOP_SCHEDS)) continue;
        pthread_mutex_unlock(&t->run_mu);
        wait_for_loop(t);
        pthread_mutex_lock(&t->run_mu);
    }
    /* nothing is left on the loop: closing handles' callbacks, if a scheduler ended it */
    while (uv_run(&t->loop, UV_RUN_NOWAIT)) {
    }
    atomic_store(&t->ended, true);
    pthread_mutex_unlock(&t->run_mu);
    return NULL;
}

/* A turn of the loop without blocking, run_mu held by the caller (a scheduler); true if it
** did something. */
static bool sched_turn(tcp_tr *t)
{
    uint32_t before = atomic_load_explicit(&t->activity, memory_order_relaxed);
    if (!uv_run(&t->loop, UV_RUN_NOWAIT)) {
        /* the loop ended here: its thread finishes and exits */
        atomic_store(&t->ended, true);
        atomic_store(&t->mode, LOOP_THREAD);
        futex_wake_one(&t->mode);
    }
    uint64_t now = clock_ns(CLOCK_MONOTONIC);
    atomic_store(&t->last_poll, now);
    if (now < atomic_load_explicit(&t->bulk_until, memory_order_relaxed)) {
        uint32_t m = LOOP_SCHEDS;
        if (atomic_compare_exchange_strong(&t->mode, &m, LOOP_THREAD)) futex_wake_one(&t->mode);
    }
    return atomic_load_explicit(&t->activity, memory_order_relaxed) != before;
}

/* The idle poller's poll (any scheduler, spinning). */
static bool sched_poll(void *ud)
{
    tcp_tr *t = ud;
    uint32_t m = atomic_load_explicit(&t->mode, memory_order_relaxed);
    if (m != LOOP_SCHEDS) {
        if (m == LOOP_THREAD && !atomic_load(&t->ended) &&
            clock_ns(CLOCK_MONOTONIC) >=
                atomic_load_explicit(&t->bulk_until, memory_order_relaxed) &&
            atomic_compare_exchange_strong(&t->mode, &m, LOOP_WANTED))
            uv_async_send(&t->async);
        return false;
    }
    if (pthread_mutex_trylock(&t->run_mu) != 0) return false;
    bool did = false;
    if (atomic_load(&t->mode) == LOOP_SCHEDS && !atomic_load(&t->ended)) did = sched_turn(t);
    pthread_mutex_unlock(&t->run_mu);
    return did;
}

/* The idle poller's hold: a scheduler about to sleep may sleep in the loop if schedulers run
** it and nobody else holds it. */
static bool sched_hold(void *ud)
{
    tcp_tr *t = ud;
    if (atomic_load(&t->mode) != LOOP_SCHEDS || atomic_load(&t->ended)) return false;
    if (pthread_mutex_trylock(&t->run_mu) != 0) return false;
    if (atomic_load(&t->mode) != LOOP_SCHEDS || atomic_load(&t->ended)) {
        pthread_mutex_unlock(&t->run_mu);
        return false;
    }
    atomic_fetch_add(&t->sleepers, 1);
    return true;
}

/* The idle poller's wait (after hold): the loop's descriptor and wake_fd, for up to the
** earlier of timeout_ns and the loop's next timer. */
static void sched_wait(void *ud, uint64_t timeout_ns)
{
    tcp_tr *t = ud;
    int lt = uv_backend_timeout(&t->loop);
    uint64_t to = timeout_ns;
    if (lt >= 0 && (uint64_t)lt * 1000000u < to) to = (uint64_t)lt * 1000000u;
    struct pollfd fds[2] = {{uv_backend_fd(&t->loop), POLLIN, 0}, {t->wake_fd, POLLIN, 0}};
    struct timespec ts = {(time_t)(to / 1000000000u), (long)(to % 1000000000u)};
    if (ppoll(fds, 2, to == UINT64_MAX ? NULL : &ts, NULL) > 0 && fds[1].revents) {
        uint64_t v;
        if (read(t->wake_fd, &v, sizeof v) < 0) { /* drained already */
        }
    }
}

/* The idle poller's release (after hold): a turn of the loop if asked, then run_mu goes. */
static void sched_release(void *ud, bool turn)
{
    tcp_tr *t = ud;
    if (turn && !atomic_load(&t->ended)) sched_turn(t);
    atomic_fetch_sub(&t->sleepers, 1);
    pthread_mutex_unlock(&t->run_mu);
}

/* The idle poller's wake (any thread): ends a scheduler's sleep in the loop. */
static void sched_wake(void *ud)
{
    tcp_tr *t = ud;
    uint64_t one = 1;
    if (write(t->wake_fd, &one, sizeof one) < 0) { /* the counter is full: a wake is pending */
    }
}

/* The idle poller's idle: a scheduler goes to sleep on its futex and no other spins; unless one
** sleeps in the loop, the loop goes back to its thread, and a request not yet granted is
** withdrawn (the loop thread is awake, or about to be, and keeps the loop). */
static void sched_idle(void *ud)
{
    tcp_tr *t = ud;
    if (atomic_load(&t->sleepers)) return;
    uint32_t m = LOOP_SCHEDS;
    if (atomic_compare_exchange_strong(&t->mode, &m, LOOP_THREAD))
        futex_wake_one(&t->mode);
    else if (m == LOOP_WANTED)
        atomic_compare_exchange_strong(&t->mode, &m, LOOP_THREAD);
}

static int tcp_run(dist_tr *bt)
{
    tcp_tr *t = T(bt);
    if (pthread_create(&t->thread, NULL, loop_main, t) != 0) return DIST_ENOMEM;
    t->running = true;
    nd_idle_poller p = {sched_poll, sched_hold, sched_wait, sched_release,
                        sched_wake, sched_idle, t};
    nd_set_idle_poller(&p);
    t->polled = true;
    return 0;
}

static void tcp_shutdown(dist_tr *bt)
{
    tcp_tr *t = T(bt);
    if (!uv_is_closing((uv_handle_t *)&t->listener)) uv_close((uv_handle_t *)&t->listener, NULL);
    if (t->epmd) epmd_uv_unregister(t->epmd, on_epmd_closed);
    t->epmd = NULL;
    if (!uv_is_closing((uv_handle_t *)&t->async)) uv_close((uv_handle_t *)&t->async, NULL);
    if (!uv_is_closing((uv_handle_t *)&t->prep)) uv_close((uv_handle_t *)&t->prep, NULL);
    if (!uv_is_closing((uv_handle_t *)&t->idle)) uv_close((uv_handle_t *)&t->idle, NULL);
}

static int tcp_join(dist_tr *bt, int64_t timeout_ms)
{
    tcp_tr *t = T(bt);
    if (!t->running) return 0;
    if (t->polled) {
        nd_set_idle_poller(NULL);
        t->polled = false;
        atomic_store(&t->mode, LOOP_THREAD);
        futex_wake_one(&t->mode);
    }
    if (timeout_ms < 0) {
        pthread_join(t->thread, NULL);
    } else {
        struct timespec dl;
        girder__deadline_ts(CLOCK_REALTIME, timeout_ms, &dl);
        if (pthread_timedjoin_np(t->thread, NULL, &dl) != 0) return DIST_ETIMEOUT;
    }
    t->running = false;
    return 0;
}

static void tcp_destroy(dist_tr *bt)
{
    tcp_tr *t = T(bt);
    if (!t) return;
    if (!t->running) {
        /* never ran, or ran and ended: close what is left on this thread */
        tcp_shutdown(bt);
        uv_run(&t->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&t->loop) != 0) return; /* handles still open: leak, never crash */
    }
    close(t->wake_fd);
    pthread_mutex_destroy(&t->run_mu);
    free(t);
}

static const dist_tr_ops tcp_ops = {
    .name = "tcp",
    .handshake_plen = 2,
    .run = tcp_run,
    .shutdown = tcp_shutdown,
    .join = tcp_join,
    .destroy = tcp_destroy,
    .listen = tcp_listen,
    .publish = tcp_publish,
    .connect = tcp_connect,
    .stream_set_ud = tcp_set_ud,
    .stream_ud = tcp_get_ud,
    .stream_peer = tcp_peer,
    .read_start = tcp_read_start,
    .read_stop = tcp_read_stop,
    .write = tcp_write,
    .try_write = tcp_try_write,
    .close = tcp_close,
    .timer_new = tcp_timer_new,
    .timer_start = tcp_timer_start,
    .timer_stop = tcp_timer_stop,
    .timer_free = tcp_timer_free,
    .now_ns = tcp_now,
    .realtime_ns = tcp_realtime,
    .random = tcp_random,
    .wake = tcp_wake,
    .reads = tcp_reads,
};

dist_tr *dist__tcp_new(const dist_tr_user *user, uint16_t epmd_port)
{
    tcp_tr *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    if (uv_loop_init(&t->loop) != 0) {
        free(t);
        return NULL;
    }
    t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (t->wake_fd < 0) {
        uv_loop_close(&t->loop);
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->run_mu, NULL);
    t->base.ops = &tcp_ops;
    t->base.user = *user;
    t->epmd_port = epmd_port ? epmd_port : epmd_default_port();
    uv_async_init(&t->loop, &t->async, on_async);
    t->async.data = t;
    uv_prepare_init(&t->loop, &t->prep);
    t->prep.data = t;
    uv_prepare_start(&t->prep, on_prepare);
    uv_unref((uv_handle_t *)&t->prep); /* counts iterations; keeps no loop alive */
    uv_idle_init(&t->loop, &t->idle);
    t->idle.data = t;
    uv_tcp_init(&t->loop, &t->listener);
    t->listener.data = t;
    return &t->base;
}
