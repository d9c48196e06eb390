/* girder chaos: the port mapper front and TCP relay that put latency, slicing and blocked
 * directions into the distribution connections of chosen nodes. */
#include "chaos.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <girder/epmd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUEUE   (4u << 20) /* bytes held per direction before the relay stops reading */
#define NAME_WAIT_S 10         /* for the first handshake message */

typedef struct chunk {
    struct chunk *next;
    uint64_t release_ns;
    size_t len, off;
    uint8_t data[];
} chunk;

typedef struct dir {
    int from, to;
    chunk *head, *tail;
    size_t qbytes;
    uint64_t last_release, next_write_ns;
    bool eof, shut;
} dir;

enum { ST_NAME, ST_HELD, ST_CONNECTING, ST_RELAY };

typedef struct conn {
    struct conn *next;
    int state;
    int src;           /* upstream index of the initiator, -1 unknown */
    int dst;           /* upstream index of the relay it came in on */
    int cfd;           /* from the initiator */
    int sfd;           /* to the node, -1 until connecting */
    uint8_t hdr[2048]; /* the first message, for the name */
    size_t nhdr;
    uint64_t t0;
    dir c2s, s2c;
} conn;

typedef struct upnode {
    chaos_upstream u; /* strings owned */
    int lfd;
    uint16_t relay_port;
    /* mu: */
    struct sockaddr_storage addr;
    socklen_t alen;
    chaos_shape shape;
} upnode;

struct chaos_proxy {
    pthread_mutex_t mu;
    upnode *n;
    size_t nn;
    int efd; /* the port mapper front */
    uint16_t epmd_port;
    int wake[2];
    atomic_bool stop;
    pthread_t thr;
    conn *conns;
    size_t open;
    uint64_t total;
    unsigned seed;
    atomic_int workers;
    /* control */
    int ctl_fd;
    char ctl_path[108];
    pthread_t ctl_thr;
    bool ctl_running;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void wake(chaos_proxy *p)
{
    char c = 1;
    ssize_t w = write(p->wake[1], &c, 1);
    (void)w;
}

/* A listening TCP socket on addr:port (0: any). -errno. */
static int listen_on(const char *addr, uint16_t port, uint16_t *bound)
{
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 128) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    socklen_t l = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &l);
    if (bound) *bound = ntohs(sa.sin_port);
    return fd;
}

static int find_node(chaos_proxy *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->nn; i++)
        if (strlen(p->n[i].u.name) == len && !memcmp(p->n[i].u.name, name, len)) return (int)i;
    return -1;
}

/* ---------------------------------------------------------------- the port mapper front */

typedef struct ework {
    chaos_proxy *p;
    int fd;
} ework;

static bool read_full(int fd, void *buf, size_t n, int timeout_ms)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, timeout_ms) <= 0) return false;
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r <= 0) {
            if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            return false;
        }
        got += (size_t)r;
    }
    return true;
}

static void write_full(int fd, const void *buf, size_t n)
{
    size_t off = 0;
    while (off < n) {
        struct pollfd pf = {fd, POLLOUT, 0};
        if (poll(&pf, 1, 2000) <= 0) return;
        ssize_t w = write(fd, (const char *)buf + off, n - off);
        if (w <= 0) {
            if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            return;
        }
        off += (size_t)w;
    }
}

/*
** One request on the front (its own thread, so that an upstream that does not answer delays no
** one else): PORT_PLEASE2 for a known name is asked upstream and answered with the relay's
** port; NAMES is answered with an empty list; anything else (ALIVE2 included: nodes register
** with their own port mapper) is closed.
*/
static void *epmd_worker(void *arg)
{
    ework *w = arg;
    chaos_proxy *p = w->p;
    int fd = w->fd;
    free(w);
    uint8_t hdr[2], req[512];
    if (!read_full(fd, hdr, 2, 3000)) goto done;
    size_t len = (size_t)hdr[0] << 8 | hdr[1];
    if (len == 0 || len > sizeof req || !read_full(fd, req, len, 3000)) goto done;
    if (req[0] == 110) { /* NAMES_REQ: our port, no names */
        uint8_t r[4] = {0, 0, (uint8_t)(p->epmd_port >> 8), (uint8_t)p->epmd_port};
        write_full(fd, r, 4);
        goto done;
    }
    if (req[0] != 122) goto done; /* PORT_PLEASE2_REQ */
    int i = find_node(p, (const char *)req + 1, len - 1);
    uint8_t no[2] = {119, 1};
    if (i < 0) {
        write_full(fd, no, 2);
        goto done;
    }
    upnode *un = &p->n[i];
    epmd_node_info info;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    if (epmd_port_please(un->u.host, un->u.epmd_port, un->u.name, 3000, &info) != 0 ||
        getaddrinfo(un->u.host, NULL, &hints, &res) != 0 || !res) {
        write_full(fd, no, 2);
        goto done;
    }
    pthread_mutex_lock(&p->mu);
    memcpy(&un->addr, res->ai_addr, res->ai_addrlen);
    un->alen = res->ai_addrlen;
    ((struct sockaddr_in *)&un->addr)->sin_port = htons(info.port);
    pthread_mutex_unlock(&p->mu);
    freeaddrinfo(res);
    uint8_t r[16 + EPMD_MAX_NAME_BYTES + EPMD_MAX_EXTRA];
    size_t k = 0;
    r[k++] = 119;
    r[k++] = 0;
    r[k++] = (uint8_t)(un->relay_port >> 8);
    r[k++] = (uint8_t)un->relay_port;
    r[k++] = info.node_type;
    r[k++] = info.protocol;
    r[k++] = (uint8_t)(info.highest_version >> 8);
    r[k++] = (uint8_t)info.highest_version;
    r[k++] = (uint8_t)(info.lowest_version >> 8);
    r[k++] = (uint8_t)info.lowest_version;
    r[k++] = (uint8_t)(info.name_len >> 8);
    r[k++] = (uint8_t)info.name_len;
    memcpy(r + k, info.name, info.name_len);
    k += info.name_len;
    r[k++] = (uint8_t)(info.extra_len >> 8);
    r[k++] = (uint8_t)info.extra_len;
    memcpy(r + k, info.extra, info.extra_len);
    k += info.extra_len;
    write_full(fd, r, k);
done:
    close(fd);
    atomic_fetch_sub(&p->workers, 1);
    return NULL;
}

static void epmd_accept(chaos_proxy *p)
{
    int fd = accept4(p->efd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) return;
    ework *w = malloc(sizeof *w);
    pthread_t t;
    if (!w) {
        close(fd);
        return;
    }
    w->p = p;
    w->fd = fd;
    atomic_fetch_add(&p->workers, 1);
    if (pthread_create(&t, NULL, epmd_worker, w) != 0) {
        atomic_fetch_sub(&p->workers, 1);
        close(fd);
        free(w);
        return;
    }
    pthread_detach(t);
}

/* ---------------------------------------------------------------- relayed connections */

static void dir_free(dir *d)
{
    while (d->head) {
        chunk *c = d->head;
        d->head = c->next;
        free(c);
    }
    d->tail = NULL;
    d->qbytes = 0;
}

static void conn_close(chaos_proxy *p, conn *c, bool reset)
{
    if (reset) { /* an abortive close, as the peer's reset would be seen */
        struct linger lg = {1, 0};
        if (c->sfd >= 0) setsockopt(c->sfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        setsockopt(c->cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    if (c->sfd >= 0) close(c->sfd);
    close(c->cfd);
    dir_free(&c->c2s);
    dir_free(&c->s2c);
    for (conn **l = &p->conns; *l; l = &(*l)->next)
        if (*l == c) {
            *l = c->next;
            break;
        }
    p->open--;
    free(c);
}

static void relay_accept(chaos_proxy *p, int idx)
{
    int fd = accept4(p->n[idx].lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = ST_NAME;
    c->src = -1;
    c->dst = idx;
    c->cfd = fd;
    c->sfd = -1;
    c->t0 = now_ns();
    c->c2s.from = fd;
    c->s2c.to = fd;
    c->c2s.to = c->s2c.from = -1;
    c->next = p->conns;
    p->conns = c;
    p->open++;
    p->total++;
}

/* The shapes that apply to each direction of c (mu held). */
static void conn_shapes(chaos_proxy *p, conn *c, chaos_shape *c2s, chaos_shape *s2c,
                        bool *any_block)
{
    static const chaos_shape none = {0};
    const chaos_shape *s = c->src >= 0 ? &p->n[c->src].shape : &none;
    const chaos_shape *d = &p->n[c->dst].shape;
    *c2s = (chaos_shape){0};
    *s2c = (chaos_shape){0};
    c2s->latency_ms = s2c->latency_ms = s->latency_ms + d->latency_ms;
    c2s->jitter_ms = s2c->jitter_ms = s->jitter_ms + d->jitter_ms;
    unsigned sl = s->slice_bytes && d->slice_bytes
                      ? (s->slice_bytes < d->slice_bytes ? s->slice_bytes : d->slice_bytes)
                      : s->slice_bytes + d->slice_bytes;
    c2s->slice_bytes = s2c->slice_bytes = sl;
    c2s->slice_gap_us = s2c->slice_gap_us =
        s->slice_gap_us > d->slice_gap_us ? s->slice_gap_us : d->slice_gap_us;
    c2s->block_out = s->block_out || d->block_in; /* initiator -> node */
    s2c->block_out = d->block_out || s->block_in;
    *any_block = s->block_in || s->block_out || d->block_in || d->block_out;
}

/* The first message of a handshake: 'n' (version 5) or 'N' (version 6) with the initiator's
** name; the relay learns who connects. */
static void parse_name(chaos_proxy *p, conn *c)
{
    if (c->nhdr < 2) return;
    size_t len = (size_t)c->hdr[0] << 8 | c->hdr[1];
    const uint8_t *m = c->hdr + 2;
    if (len < 1 || len + 2 > sizeof c->hdr) {
        c->state = ST_HELD; /* not a handshake we know: relay it untouched */
        return;
    }
    if (c->nhdr < len + 2) return;
    const char *name = NULL;
    size_t nlen = 0;
    if (m[0] == 'n' && len > 7) {
        name = (const char *)m + 7;
        nlen = len - 7;
    } else if (m[0] == 'N' && len > 15) {
        size_t l = (size_t)m[13] << 8 | m[14];
        if (15 + l <= len) {
            name = (const char *)m + 15;
            nlen = l;
        }
    }
    if (name) {
        const char *at = memchr(name, '@', nlen);
        c->src = find_node(p, name, at ? (size_t)(at - name) : nlen);
    }
    c->state = ST_HELD;
}

static void push_chunk(chaos_proxy *p, dir *d, const uint8_t *buf, size_t n, const chaos_shape *sh)
{
    chunk *k = malloc(sizeof *k + n);
    if (!k) return;
    memcpy(k->data, buf, n);
    k->len = n;
    k->off = 0;
    k->next = NULL;
    uint64_t t = now_ns() + (uint64_t)sh->latency_ms * 1000000u;
    if (sh->jitter_ms) {
        long j = (long)(rand_r(&p->seed) % (2 * sh->jitter_ms + 1)) - (long)sh->jitter_ms;
        t = (uint64_t)((int64_t)t + j * 1000000);
    }
    if (t < d->last_release) t = d->last_release; /* order is kept */
    d->last_release = t;
    k->release_ns = t;
    if (d->tail)
        d->tail->next = k;
    else
        d->head = k;
    d->tail = k;
    d->qbytes += n;
}

/* Reads what is there; false on error (the connection is then reset). */
static bool dir_read(chaos_proxy *p, conn *c, dir *d, const chaos_shape *sh)
{
    uint8_t buf[65536];
    ssize_t r = read(d->from, buf, sizeof buf);
    if (r < 0) return errno == EAGAIN || errno == EINTR;
    if (r == 0) {
        d->eof = true;
        return true;
    }
    if (c->state == ST_NAME && d == &c->c2s) {
        size_t k = (size_t)r < sizeof c->hdr - c->nhdr ? (size_t)r : sizeof c->hdr - c->nhdr;
        memcpy(c->hdr + c->nhdr, buf, k);
        c->nhdr += k;
    }
    push_chunk(p, d, buf, (size_t)r, sh);
    return true;
}

/* Writes what is due; false on error. */
static bool dir_write(dir *d, const chaos_shape *sh, uint64_t now)
{
    while (d->head && d->head->release_ns <= now) {
        if (sh->slice_bytes && now < d->next_write_ns) return true;
        chunk *k = d->head;
        size_t n = k->len - k->off;
        if (sh->slice_bytes && n > sh->slice_bytes) n = sh->slice_bytes;
        ssize_t w = write(d->to, k->data + k->off, n);
        if (w < 0) return errno == EAGAIN || errno == EINTR;
        k->off += (size_t)w;
        d->qbytes -= (size_t)w;
        if (sh->slice_bytes) d->next_write_ns = now + (uint64_t)sh->slice_gap_us * 1000u;
        if (k->off == k->len) {
            d->head = k->next;
            if (!d->head) d->tail = NULL;
            free(k);
        }
        if (sh->slice_bytes) return true;
    }
    if (!d->head && d->eof && !d->shut) {
        shutdown(d->to, SHUT_WR);
        d->shut = true;
    }
    return true;
}

/* Connects to the node (non-blocking); false when c was closed instead. */
static bool start_connect(chaos_proxy *p, conn *c)
{
    pthread_mutex_lock(&p->mu);
    struct sockaddr_storage a = p->n[c->dst].addr;
    socklen_t al = p->n[c->dst].alen;
    pthread_mutex_unlock(&p->mu);
    int fd = al ? socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) : -1;
    if (fd < 0 || (connect(fd, (struct sockaddr *)&a, al) != 0 && errno != EINPROGRESS)) {
        if (fd >= 0) close(fd);
        conn_close(p, c, true);
        return false;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->sfd = fd;
    c->c2s.to = fd;
    c->s2c.from = fd;
    c->state = ST_CONNECTING;
    c->t0 = now_ns();
    return true;
}

/* ---------------------------------------------------------------- the loop */

#define MAXFDS 4096

static void *proxy_main(void *arg)
{
    chaos_proxy *p = arg;
    struct pollfd *pf = calloc(MAXFDS, sizeof *pf);
    conn **owner = calloc(MAXFDS, sizeof *owner);
    if (!pf || !owner) {
        free(pf);
        free(owner);
        return NULL;
    }
    while (!atomic_load(&p->stop)) {
        uint64_t now = now_ns(), next = now + 500000000u;
        size_t k = 0;
        pf[k++] = (struct pollfd){p->wake[0], POLLIN, 0};
        pf[k++] = (struct pollfd){p->efd, POLLIN, 0};
        for (size_t i = 0; i < p->nn; i++) pf[k++] = (struct pollfd){p->n[i].lfd, POLLIN, 0};
        size_t fixed = k;
        for (conn *c = p->conns, *cn; c; c = cn) {
            cn = c->next;
            chaos_shape c2s, s2c;
            bool blocked;
            pthread_mutex_lock(&p->mu);
            conn_shapes(p, c, &c2s, &s2c, &blocked);
            pthread_mutex_unlock(&p->mu);
            if ((c->state == ST_NAME || c->state == ST_CONNECTING) &&
                now - c->t0 > (uint64_t)NAME_WAIT_S * 1000000000u) {
                conn_close(p, c, true);
                continue;
            }
            if (c->state == ST_HELD && !blocked && !start_connect(p, c)) continue;
            if (c->state == ST_RELAY) {
                if ((!c2s.block_out && !dir_write(&c->c2s, &c2s, now)) ||
                    (!s2c.block_out && !dir_write(&c->s2c, &s2c, now))) {
                    conn_close(p, c, true);
                    continue;
                }
                if (c->c2s.shut && c->s2c.shut) {
                    conn_close(p, c, false);
                    continue;
                }
            }
            if (k + 2 > MAXFDS) continue;
            short cev = 0, sev = 0;
            if (c->state == ST_NAME) cev |= POLLIN;
            if (c->state == ST_CONNECTING) sev |= POLLOUT;
            if (c->state == ST_RELAY) {
                dir *ds[2] = {&c->c2s, &c->s2c};
                const chaos_shape *sh[2] = {&c2s, &s2c};
                for (int j = 0; j < 2; j++) {
                    dir *d = ds[j];
                    if (sh[j]->block_out) continue;
                    if (!d->eof && d->qbytes < MAX_QUEUE) {
                        if (d->from == c->cfd)
                            cev |= POLLIN;
                        else
                            sev |= POLLIN;
                    }
                    if (d->head) {
                        uint64_t due = d->head->release_ns;
                        if (sh[j]->slice_bytes && d->next_write_ns > due) due = d->next_write_ns;
                        if (due <= now) {
                            if (d->to == c->cfd)
                                cev |= POLLOUT;
                            else
                                sev |= POLLOUT;
                        } else if (due < next) {
                            next = due;
                        }
                    }
                }
            }
            if (cev) {
                owner[k] = c;
                pf[k++] = (struct pollfd){c->cfd, cev, 0};
            }
            if (sev && c->sfd >= 0) {
                owner[k] = c;
                pf[k++] = (struct pollfd){c->sfd, sev, 0};
            }
        }
        now = now_ns();
        int ms = next > now ? (int)((next - now + 999999) / 1000000) : 0;
        if (poll(pf, k, ms) < 0 && errno != EINTR) break;
        if (pf[0].revents) {
            char buf[64];
            while (read(p->wake[0], buf, sizeof buf) > 0) {
            }
        }
        if (pf[1].revents & POLLIN) epmd_accept(p);
        for (size_t i = 0; i < p->nn; i++)
            if (pf[2 + i].revents & POLLIN) relay_accept(p, (int)i);
        now = now_ns();
        for (size_t i = fixed; i < k; i++) {
            if (!pf[i].revents) continue;
            conn *c = owner[i];
            bool alive = false; /* a connection closed earlier in this pass is skipped */
            for (conn *q = p->conns; q; q = q->next)
                if (q == c) alive = true;
            if (!alive) continue;
            chaos_shape c2s, s2c;
            bool blocked;
            pthread_mutex_lock(&p->mu);
            conn_shapes(p, c, &c2s, &s2c, &blocked);
            pthread_mutex_unlock(&p->mu);
            bool ok = true;
            if (c->state == ST_NAME && pf[i].fd == c->cfd) {
                ok = dir_read(p, c, &c->c2s, &c2s);
                if (ok && c->c2s.eof) ok = false;
                if (ok) parse_name(p, c);
                if (ok && c->state == ST_HELD && !blocked) start_connect(p, c);
                if (!ok) conn_close(p, c, true);
                continue;
            }
            if (c->state == ST_CONNECTING && pf[i].fd == c->sfd) {
                int e = 0;
                socklen_t el = sizeof e;
                getsockopt(c->sfd, SOL_SOCKET, SO_ERROR, &e, &el);
                if (e) {
                    conn_close(p, c, true);
                    continue;
                }
                c->state = ST_RELAY;
                /* the first message's bytes were queued when they arrived: re-time them */
                for (chunk *q = c->c2s.head; q; q = q->next) q->release_ns = now;
                c->c2s.last_release = now;
                continue;
            }
            if (c->state != ST_RELAY) continue;
            dir *rd = pf[i].fd == c->cfd ? &c->c2s : &c->s2c; /* read from this fd */
            dir *wd = pf[i].fd == c->cfd ? &c->s2c : &c->c2s; /* write to this fd */
            const chaos_shape *rs = rd == &c->c2s ? &c2s : &s2c;
            const chaos_shape *ws = wd == &c->c2s ? &c2s : &s2c;
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) ok = dir_read(p, c, rd, rs);
            if (ok && (pf[i].revents & POLLOUT)) ok = dir_write(wd, ws, now);
            if (!ok) conn_close(p, c, true);
        }
    }
    while (p->conns) conn_close(p, p->conns, true);
    free(pf);
    free(owner);
    return NULL;
}

/* ---------------------------------------------------------------- API */

chaos_proxy *chaos_proxy_start(const char *addr, uint16_t epmd_port, const chaos_upstream *ups,
                               size_t n, char *err, size_t errlen)
{
    chaos_proxy *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pthread_mutex_init(&p->mu, NULL);
    p->efd = p->wake[0] = p->wake[1] = p->ctl_fd = -1;
    p->seed = (unsigned)now_ns();
    p->epmd_port = epmd_port;
    p->n = calloc(n ? n : 1, sizeof *p->n);
    if (!p->n || pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) != 0) goto fail;
    int fd = listen_on(addr, epmd_port, NULL);
    if (fd < 0) {
        snprintf(err, errlen, "proxy: cannot listen on %s:%u: %s", addr, epmd_port, strerror(-fd));
        goto fail;
    }
    p->efd = fd;
    for (size_t i = 0; i < n; i++) {
        upnode *u = &p->n[i];
        u->lfd = -1;
        u->u.name = strdup(ups[i].name);
        u->u.host = strdup(ups[i].host);
        u->u.epmd_port = ups[i].epmd_port;
        p->nn++;
        if (!u->u.name || !u->u.host) goto fail;
        if ((fd = listen_on(addr, 0, &u->relay_port)) < 0) {
            snprintf(err, errlen, "proxy: cannot listen on %s: %s", addr, strerror(-fd));
            goto fail;
        }
        u->lfd = fd;
    }
    if (pthread_create(&p->thr, NULL, proxy_main, p) != 0) {
        snprintf(err, errlen, "proxy: cannot start its thread");
        goto fail;
    }
    return p;
fail:
    for (size_t i = 0; i < p->nn; i++) {
        if (p->n[i].lfd >= 0) close(p->n[i].lfd);
        free((char *)p->n[i].u.name);
        free((char *)p->n[i].u.host);
    }
    if (p->efd >= 0) close(p->efd);
    if (p->wake[0] >= 0) close(p->wake[0]);
    if (p->wake[1] >= 0) close(p->wake[1]);
    free(p->n);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return NULL;
}

int chaos_proxy_shape(chaos_proxy *p, const char *node, const chaos_shape *shape)
{
    static const chaos_shape none = {0};
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (!node || !strcmp(node, "all")) {
        for (size_t i = 0; i < p->nn; i++) p->n[i].shape = shape ? *shape : none;
    } else {
        const char *at = strchr(node, '@');
        int i = find_node(p, node, at ? (size_t)(at - node) : strlen(node));
        if (i < 0)
            rc = -1;
        else
            p->n[i].shape = shape ? *shape : none;
    }
    pthread_mutex_unlock(&p->mu);
    wake(p);
    return rc;
}

void chaos_proxy_counts(chaos_proxy *p, size_t *open, uint64_t *total)
{
    /* read without the loop's cooperation: an estimate, for reports */
    *open = p->open;
    *total = p->total;
}

void chaos_proxy_command(chaos_proxy *p, const char *line, char *out, size_t n)
{
    char verb[16] = "", node[256] = "", arg[16] = "";
    unsigned a = 0, b = 0, c = 0, d = 0;
    int k = sscanf(line, "%15s %255s %15s", verb, node, arg);
    if (k >= 1 && !strcmp(verb, "stats")) {
        size_t open;
        uint64_t total;
        chaos_proxy_counts(p, &open, &total);
        snprintf(out, n, "ok open=%zu total=%llu", open, (unsigned long long)total);
        return;
    }
    if (k >= 2 && !strcmp(verb, "clear")) {
        snprintf(out, n, chaos_proxy_shape(p, node, NULL) ? "error unknown node" : "ok");
        return;
    }
    if (k == 3 && !strcmp(verb, "block")) {
        chaos_shape s = {0};
        s.block_in = !strcmp(arg, "in") || !strcmp(arg, "both");
        s.block_out = !strcmp(arg, "out") || !strcmp(arg, "both");
        if (!s.block_in && !s.block_out && strcmp(arg, "none")) {
            snprintf(out, n, "error block takes in, out, both or none");
            return;
        }
        snprintf(out, n, chaos_proxy_shape(p, node, &s) ? "error unknown node" : "ok");
        return;
    }
    if (!strcmp(verb, "shape") &&
        sscanf(line, "%*s %255s %u %u %u %u", node, &a, &b, &c, &d) == 5 && a <= 60000 &&
        b <= 60000 && c <= 65536 && d <= 1000000) {
        chaos_shape s = {a, b, c, d, false, false};
        snprintf(out, n, chaos_proxy_shape(p, node, &s) ? "error unknown node" : "ok");
        return;
    }
    snprintf(out, n,
             "error expected: shape NODE LAT JIT SLICE GAP | block NODE in|out|both|none "
             "| clear NODE|all | stats");
}

static void *ctl_main(void *arg)
{
    chaos_proxy *p = arg;
    while (!atomic_load(&p->stop)) {
        struct pollfd pf = {p->ctl_fd, POLLIN, 0};
        if (poll(&pf, 1, 200) <= 0) continue;
        int fd = accept4(p->ctl_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        char line[512];
        size_t k = 0;
        while (k < sizeof line - 1) {
            struct pollfd q = {fd, POLLIN, 0};
            if (poll(&q, 1, 2000) <= 0) break;
            ssize_t r = read(fd, line + k, 1);
            if (r <= 0 || line[k] == '\n') break;
            k++;
        }
        line[k] = 0;
        char ans[256];
        chaos_proxy_command(p, line, ans, sizeof ans - 1);
        strcat(ans, "\n");
        write_full(fd, ans, strlen(ans));
        close(fd);
    }
    return NULL;
}

int chaos_proxy_control(chaos_proxy *p, const char *path)
{
    struct sockaddr_un sa = {0};
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 16) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    p->ctl_fd = fd;
    snprintf(p->ctl_path, sizeof p->ctl_path, "%s", path);
    if (pthread_create(&p->ctl_thr, NULL, ctl_main, p) != 0) {
        close(fd);
        p->ctl_fd = -1;
        return -EAGAIN;
    }
    p->ctl_running = true;
    return 0;
}

void chaos_proxy_stop(chaos_proxy *p)
{
    if (!p) return;
    atomic_store(&p->stop, true);
    wake(p);
    pthread_join(p->thr, NULL);
    if (p->ctl_running) {
        pthread_join(p->ctl_thr, NULL);
        close(p->ctl_fd);
        unlink(p->ctl_path);
    }
    for (int i = 0; i < 200 && atomic_load(&p->workers) > 0; i++) usleep(50000);
    if (atomic_load(&p->workers) > 0) return; /* a worker stuck past 10 s: leave it all */
    for (size_t i = 0; i < p->nn; i++) {
        close(p->n[i].lfd);
        free((char *)p->n[i].u.name);
        free((char *)p->n[i].u.host);
    }
    close(p->efd);
    close(p->wake[0]);
    close(p->wake[1]);
    free(p->n);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
