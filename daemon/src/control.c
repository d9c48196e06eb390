/* The control socket: a Unix socket speaking msgpack-rpc, served by an I/O thread and processes. */
#include "control.h"

#include "daemon.h"
#include "log.h"

#include <errno.h>
#include <girder/node.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

/*
** The I/O thread owns every socket; it never runs a request. A complete request becomes a job
** handed to a new process (nd_spawn), whose answer comes back through a queue and an async
** wake-up. Clients are slots with a generation, so an answer for a client that has gone (or
** whose slot was reused) is dropped, never written to the wrong one.
**
** Bounds per client: GD_CTL_MAX_INFLIGHT requests in flight (reading pauses at the limit),
** max_request bytes of one request (more closes the client), OUT_PAUSE bytes of answers not yet
** taken by the client (reading pauses), OUT_MAX (the client is closed), idle_timeout_s without
** progress (closed), NOTE_MAX queued log lines (the rest are dropped and counted).
*/

#define OUT_PAUSE  (1u << 20)
#define OUT_MAX    (64u << 20)
#define NOTE_MAX   256
#define READ_CHUNK 65536

typedef struct client {
    uv_pipe_t pipe; /* first: handle->data is not needed */
    uint32_t slot, gen;
    bool used, closing, reading, eof, flush_close;
    uint8_t *in;
    size_t in_len, in_cap;
    unsigned inflight;
    size_t out_pending;
    uint64_t last_ms; /* connect, or the last answer written */
    uid_t uid;
} client;

typedef struct completion {
    struct completion *next;
    uint32_t slot, gen;
    bool response; /* else a notification */
    int follow;    /* responses: >= 0 starts a log stream at this level */
    char *data;
    size_t len;
} completion;

typedef struct job {
    gd_ctl_req req;
    uint32_t slot, gen;
} job;

typedef struct wreq {
    uv_write_t w;
    client *c;
    char *data;
    size_t len;
} wreq;

static struct {
    gd_control_cfg cfg;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    uv_loop_t loop;
    uv_pipe_t server;
    uv_async_t async;
    uv_timer_t timer, stop_timer;
    pthread_t thread;
    bool started;
    client *clients;
    size_t nclients_open;
    uint8_t rbuf[READ_CHUNK];
    /* shared with processes and the log tap, under qmu */
    pthread_mutex_t qmu;
    completion *qhead, *qtail;
    bool loop_alive;
    atomic_bool stop_req; /* set by gd_control_stop (main thread), read by the loop */
    int *fol_level;       /* per slot: -1, or the level of its log stream */
    uint32_t *fol_gen;
    unsigned *fol_queued;
    uint64_t *fol_dropped;
    size_t nfollowers;
} C = {.qmu = PTHREAD_MUTEX_INITIALIZER};

static void client_close(client *c, const char *why);
static void process_input(client *c);

/* ---------------------------------------------------------------- the queue */

/* Appends a completion and wakes the loop; with the loop gone it waits for gd_control_free. */
static void enqueue_locked(completion *q)
{
    q->next = NULL;
    if (C.qtail)
        C.qtail->next = q;
    else
        C.qhead = q;
    C.qtail = q;
    if (C.loop_alive) uv_async_send(&C.async);
}

static void enqueue(completion *q)
{
    pthread_mutex_lock(&C.qmu);
    enqueue_locked(q);
    pthread_mutex_unlock(&C.qmu);
}

static completion *note_new(uint32_t slot, uint32_t gen, const char *method, const char *params,
                            size_t len, size_t nparams)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    gd_ctl_notification(&sb, method, params, len, nparams);
    completion *q = calloc(1, sizeof *q);
    if (!q) {
        msgpack_sbuffer_destroy(&sb);
        return NULL;
    }
    q->slot = slot;
    q->gen = gen;
    q->follow = -1;
    q->len = sb.size; /* release() zeroes it */
    q->data = msgpack_sbuffer_release(&sb);
    return q;
}

/* The log tap: every line goes, as a notification, to each client following the log. Runs on
** any thread, the I/O thread included; it only queues. */
static void log_tap(int level, const char *line)
{
    pthread_mutex_lock(&C.qmu);
    if (!C.nfollowers || !C.fol_level) {
        pthread_mutex_unlock(&C.qmu);
        return;
    }
    for (size_t s = 0; s < C.cfg.max_clients; s++) {
        if (C.fol_level[s] < 0 || level > C.fol_level[s]) continue;
        if (C.fol_queued[s] >= NOTE_MAX) {
            C.fol_dropped[s]++;
            continue;
        }
        msgpack_sbuffer pb;
        msgpack_sbuffer_init(&pb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &pb, msgpack_sbuffer_write);
        size_t np = 2;
        gd_ctl_pack_str(&pk, gd_level_name(level));
        gd_ctl_pack_str(&pk, line);
        if (C.fol_dropped[s]) { /* lines lost before this one */
            msgpack_pack_uint64(&pk, C.fol_dropped[s]);
            np = 3;
            C.fol_dropped[s] = 0;
        }
        completion *q = note_new((uint32_t)s, C.fol_gen[s], "log.line", pb.data, pb.size, np);
        msgpack_sbuffer_destroy(&pb);
        if (!q) continue;
        C.fol_queued[s]++;
        enqueue_locked(q);
    }
    pthread_mutex_unlock(&C.qmu);
}

static void follow_set(client *c, int level)
{
    pthread_mutex_lock(&C.qmu);
    int was = C.fol_level[c->slot];
    C.fol_level[c->slot] = level;
    C.fol_gen[c->slot] = c->gen;
    if (was < 0 && level >= 0) C.nfollowers++;
    if (was >= 0 && level < 0) C.nfollowers--;
    if (level < 0) {
        C.fol_queued[c->slot] = 0;
        C.fol_dropped[c->slot] = 0;
    }
    pthread_mutex_unlock(&C.qmu);
}

/* ---------------------------------------------------------------- requests as processes */

/* The request is freed however its process ends (a request process killed midway included). */
static void job_free(void *arg, term_t reason)
{
    job *j = arg;
    (void)reason;
    gd_ctl_req_free(&j->req);
    free(j);
}

static void job_body(void *arg)
{
    job *j = arg;
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    gd_ctl_effects fx = {-1, false, j->slot, j->gen};
    gd_methods_run(&j->req, &out, &fx);
    completion *q = calloc(1, sizeof *q);
    if (q) {
        q->slot = j->slot;
        q->gen = j->gen;
        q->response = true;
        q->follow = fx.follow_level;
        q->len = out.size;
        q->data = msgpack_sbuffer_release(&out);
        enqueue(q);
    } else {
        msgpack_sbuffer_destroy(&out);
    }
    if (fx.stop_node) gd_request_stop("control");
}

/* ---------------------------------------------------------------- writing */

static void on_write(uv_write_t *w, int status)
{
    wreq *r = (wreq *)w;
    client *c = r->c;
    c->out_pending -= r->len;
    free(r->data);
    free(r);
    if (c->closing) return;
    if (status < 0) {
        client_close(c, "write_error");
        return;
    }
    c->last_ms = gd_now_ms();
    if (c->flush_close && c->out_pending == 0 && c->inflight == 0) {
        client_close(c, c->eof ? "eof" : "stopping");
        return;
    }
    if (!c->reading && !c->eof && c->out_pending < OUT_PAUSE) process_input(c);
}

/* Writes data (taking it); false if the client had to be closed. */
static bool client_write(client *c, char *data, size_t len)
{
    if (c->out_pending + len > OUT_MAX) {
        free(data);
        client_close(c, "slow_reader");
        return false;
    }
    wreq *r = malloc(sizeof *r);
    if (!r) {
        free(data);
        client_close(c, "out_of_memory");
        return false;
    }
    r->c = c;
    r->data = data;
    r->len = len;
    uv_buf_t b = uv_buf_init(data, (unsigned)len);
    int rc = uv_write(&r->w, (uv_stream_t *)&c->pipe, &b, 1, on_write);
    if (rc) {
        free(data);
        free(r);
        client_close(c, "write_failed");
        return false;
    }
    c->out_pending += len;
    return true;
}

static void respond_error(client *c, uint32_t msgid, int code, const char *msg)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    gd_ctl_response_err(&sb, msgid, code, msg);
    size_t len = sb.size;
    client_write(c, msgpack_sbuffer_release(&sb), len);
}

/* ---------------------------------------------------------------- reading */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    *buf = uv_buf_init((char *)C.rbuf, sizeof C.rbuf);
}

static void pause_reading(client *c)
{
    if (c->reading) uv_read_stop((uv_stream_t *)&c->pipe);
    c->reading = false;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void resume_reading(client *c)
{
    if (c->reading || c->closing || c->eof) return;
    if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) == 0) c->reading = true;
}

/* Hands one complete frame to a process, or answers it with an error. */
static void handle_frame(client *c, const uint8_t *p, size_t len)
{
    job *j = malloc(sizeof *j);
    if (!j) {
        client_close(c, "out_of_memory");
        return;
    }
    bool has_id;
    const char *why;
    int rc = gd_ctl_decode(p, len, &j->req, &has_id, &why);
    if (rc) {
        uint32_t msgid = j->req.msgid;
        free(j);
        char q[200];
        gd_log(GD_WARNING, "event=control_bad_request uid=%u reason=%s", (unsigned)c->uid,
               gd_q(q, sizeof q, why));
        /* with a MsgId the client can be told; without one it is not speaking the protocol */
        if (has_id)
            respond_error(c, msgid, rc, why);
        else
            client_close(c, "bad_request");
        return;
    }
    if (j->req.type == 2) { /* no method takes notifications: dropped */
        gd_ctl_req_free(&j->req);
        free(j);
        return;
    }
    if (gd_stopping()) {
        respond_error(c, j->req.msgid, GD_CTL_ESTOPPING, "the node is stopping");
        gd_ctl_req_free(&j->req);
        free(j);
        return;
    }
    j->slot = c->slot;
    j->gen = c->gen;
    uint32_t msgid = j->req.msgid;
    nd_spawn_opts so = {.exit_hook = job_free, .exit_hook_arg = j};
    rc = nd_spawn(job_body, j, &so, NULL);
    if (rc) {
        gd_ctl_req_free(&j->req);
        free(j);
        respond_error(c, msgid, GD_CTL_EBUSY, nd_strerror(rc));
        return;
    }
    c->inflight++;
}

/* Takes every complete frame from the input buffer while the client may have more in flight. */
static void process_input(client *c)
{
    size_t off = 0;
    while (!c->closing && off < c->in_len) {
        if (c->inflight >= GD_CTL_MAX_INFLIGHT || c->out_pending >= OUT_PAUSE) {
            pause_reading(c);
            break;
        }
        size_t len;
        int rc = gd_ctl_scan(c->in + off, c->in_len - off, &len);
        if (rc == GD_SCAN_NEED_MORE) {
            if (c->in_len - off > C.cfg.max_request) client_close(c, "oversized");
            break;
        }
        if (rc < 0) {
            client_close(c, rc == GD_SCAN_TOO_DEEP ? "too_deep" : "garbage");
            break;
        }
        if (len > C.cfg.max_request) {
            client_close(c, "oversized");
            break;
        }
        handle_frame(c, c->in + off, len);
        off += len;
    }
    if (c->closing) return;
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    if (c->inflight < GD_CTL_MAX_INFLIGHT && c->out_pending < OUT_PAUSE) resume_reading(c);
    if (c->eof && c->inflight == 0 && c->out_pending == 0) client_close(c, "eof");
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client *c = (client *)s;
    (void)buf;
    if (n == UV_EOF) {
        /* half-closed: the answers to what it sent still go out, then it is closed */
        pause_reading(c);
        c->eof = true;
        c->flush_close = true;
        process_input(c);
        return;
    }
    if (n < 0) {
        client_close(c, "read_error");
        return;
    }
    if (n == 0) return;
    size_t need = c->in_len + (size_t)n;
    if (need > C.cfg.max_request + READ_CHUNK) {
        client_close(c, "oversized");
        return;
    }
    if (need > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 4096;
        while (cap < need) cap *= 2;
        uint8_t *p = realloc(c->in, cap);
        if (!p) {
            client_close(c, "out_of_memory");
            return;
        }
        c->in = p;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, buf->base, (size_t)n);
    c->in_len += (size_t)n;
    process_input(c);
}

/* ---------------------------------------------------------------- clients */

static void maybe_finish(void);

static void on_client_closed(uv_handle_t *h)
{
    client *c = (client *)h;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    c->used = false;
    c->gen++;
    C.nclients_open--;
    maybe_finish();
}

static void client_close(client *c, const char *why)
{
    if (c->closing) return;
    c->closing = true;
    c->reading = false;
    follow_set(c, -1);
    gd_methods_client_gone(c->slot, c->gen);
    gd_log(!strcmp(why, "eof") || !strcmp(why, "stopping") ? GD_DEBUG : GD_NOTICE,
           "event=control_client_closed uid=%u reason=%s", (unsigned)c->uid, why);
    uv_close((uv_handle_t *)&c->pipe, on_client_closed);
}

static void on_reject_closed(uv_handle_t *h)
{
    free(h);
}

static void on_connection(uv_stream_t *srv, int status)
{
    if (status < 0) return;
    client *c = NULL;
    for (size_t i = 0; i < C.cfg.max_clients && !c; i++)
        if (!C.clients[i].used) c = &C.clients[i];
    bool stopping = atomic_load(&C.stop_req) || gd_stopping();
    if (!c || stopping) {
        uv_pipe_t *t = malloc(sizeof *t);
        if (!t) return;
        uv_pipe_init(&C.loop, t, 0);
        if (uv_accept(srv, (uv_stream_t *)t) == 0 && !stopping)
            gd_log(GD_WARNING, "event=control_client_refused reason=too_many_clients max=%zu",
                   C.cfg.max_clients);
        uv_close((uv_handle_t *)t, on_reject_closed);
        return;
    }
    uint32_t slot = c->slot, gen = c->gen;
    memset(c, 0, sizeof *c);
    c->slot = slot;
    c->gen = gen;
    uv_pipe_init(&C.loop, &c->pipe, 0);
    c->used = true;
    C.nclients_open++;
    if (uv_accept(srv, (uv_stream_t *)&c->pipe) != 0) {
        client_close(c, "accept_failed");
        return;
    }
    uv_os_fd_t fd;
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0) {
        c->uid = (uid_t)-1;
        client_close(c, "no_credentials");
        return;
    }
    c->uid = cr.uid;
    if (cr.uid != geteuid() && cr.uid != 0) {
        gd_log(GD_WARNING, "event=control_client_refused uid=%u pid=%d reason=wrong_uid",
               (unsigned)cr.uid, (int)cr.pid);
        client_close(c, "wrong_uid");
        return;
    }
    c->last_ms = gd_now_ms();
    gd_log(GD_DEBUG, "event=control_client_connected uid=%u pid=%d", (unsigned)cr.uid, (int)cr.pid);
    resume_reading(c);
}

/* ---------------------------------------------------------------- answers, timers, stop */

static void on_stop_timer(uv_timer_t *t);

static void on_async(uv_async_t *a)
{
    (void)a;
    pthread_mutex_lock(&C.qmu);
    completion *q = C.qhead;
    C.qhead = C.qtail = NULL;
    bool stop = atomic_load(&C.stop_req);
    pthread_mutex_unlock(&C.qmu);
    while (q) {
        completion *next = q->next;
        client *c = q->slot < C.cfg.max_clients ? &C.clients[q->slot] : NULL;
        bool live = c && c->used && !c->closing && c->gen == q->gen;
        if (!q->response) {
            pthread_mutex_lock(&C.qmu);
            if (C.fol_queued[q->slot]) C.fol_queued[q->slot]--;
            pthread_mutex_unlock(&C.qmu);
        } else if (c && c->used && c->gen == q->gen) {
            c->inflight--;
        }
        if (live && !q->response && c->out_pending >= OUT_PAUSE) {
            pthread_mutex_lock(&C.qmu); /* a stream the client does not take: lines dropped */
            C.fol_dropped[q->slot]++;
            pthread_mutex_unlock(&C.qmu);
        } else if (live) {
            if (q->response && q->follow >= 0) follow_set(c, q->follow);
            client_write(c, q->data, q->len);
            q->data = NULL;
            if (!c->closing && q->response) {
                c->last_ms = gd_now_ms();
                if (c->flush_close && c->inflight == 0 && c->out_pending == 0)
                    client_close(c, c->eof ? "eof" : "stopping");
                else if (!c->eof)
                    process_input(c);
            }
        }
        free(q->data);
        free(q);
        q = next;
    }
    if (stop && !uv_is_closing((uv_handle_t *)&C.server)) {
        uv_close((uv_handle_t *)&C.server, NULL);
        uv_timer_stop(&C.timer);
        for (size_t i = 0; i < C.cfg.max_clients; i++) {
            client *c = &C.clients[i];
            if (!c->used || c->closing) continue;
            pause_reading(c);
            c->flush_close = true;
            if (c->out_pending == 0) client_close(c, "stopping");
        }
        uv_timer_start(&C.stop_timer, on_stop_timer, 1000, 0);
    }
    maybe_finish();
}

static void on_stop_timer(uv_timer_t *t)
{
    (void)t;
    for (size_t i = 0; i < C.cfg.max_clients; i++)
        if (C.clients[i].used) client_close(&C.clients[i], "stopping");
}

/* Once stopping and every client is closed, closes the loop's own handles so uv_run returns. */
static void maybe_finish(void)
{
    /* the stop is under way once on_async has closed the listener */
    if (!uv_is_closing((uv_handle_t *)&C.server) || C.nclients_open > 0 ||
        uv_is_closing((uv_handle_t *)&C.async))
        return;
    pthread_mutex_lock(&C.qmu);
    C.loop_alive = false;
    pthread_mutex_unlock(&C.qmu);
    uv_close((uv_handle_t *)&C.async, NULL);
    uv_close((uv_handle_t *)&C.timer, NULL);
    uv_close((uv_handle_t *)&C.stop_timer, NULL);
}

static void on_timer(uv_timer_t *t)
{
    (void)t;
    uint64_t now = gd_now_ms(), idle = (uint64_t)C.cfg.idle_timeout_s * 1000;
    for (size_t i = 0; i < C.cfg.max_clients; i++) {
        client *c = &C.clients[i];
        if (!c->used || c->closing || c->inflight > 0) continue;
        bool following;
        pthread_mutex_lock(&C.qmu);
        following = C.fol_level[i] >= 0;
        pthread_mutex_unlock(&C.qmu);
        /* a log stream is progress as long as its lines are taken */
        if (following && c->out_pending < OUT_PAUSE) continue;
        if (now - c->last_ms >= idle) client_close(c, "idle");
    }
}

static void *io_main(void *arg)
{
    (void)arg;
    uv_run(&C.loop, UV_RUN_DEFAULT);
    return NULL;
}

/* A socket file at path: replaced if nobody answers on it, an error if someone does. */
static int clear_stale(const char *path, char *err, size_t n)
{
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    if (!S_ISSOCK(st.st_mode))
        return snprintf(err, n, "control socket %s exists and is not a socket", path), -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return snprintf(err, n, "socket: %s", strerror(errno)), -1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    if (rc == 0)
        return snprintf(err, n, "control socket %s is in use by a running process", path), -1;
    if (e != ECONNREFUSED) return snprintf(err, n, "control socket %s: %s", path, strerror(e)), -1;
    unlink(path);
    return 0;
}

static int make_parent(const char *path, char *err, size_t n)
{
    char dir[sizeof C.path];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return 0;
    *slash = 0;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return snprintf(err, n, "cannot create %s: %s", dir, strerror(errno)), -1;
        *p = '/';
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return snprintf(err, n, "cannot create %s: %s", dir, strerror(errno)), -1;
    return 0;
}

int gd_control_start(const gd_control_cfg *cfg, char *err, size_t n)
{
    C.cfg = *cfg;
    if (strlen(cfg->path) >= sizeof C.path)
        return snprintf(err, n, "control socket path longer than %zu bytes", sizeof C.path - 1), -1;
    snprintf(C.path, sizeof C.path, "%s", cfg->path);
    if (cfg->make_dir && make_parent(C.path, err, n)) return -1;
    if (clear_stale(C.path, err, n)) return -1;
    size_t m = cfg->max_clients;
    C.clients = calloc(m, sizeof *C.clients);
    C.fol_level = malloc(m * sizeof *C.fol_level);
    C.fol_gen = calloc(m, sizeof *C.fol_gen);
    C.fol_queued = calloc(m, sizeof *C.fol_queued);
    C.fol_dropped = calloc(m, sizeof *C.fol_dropped);
    if (!C.clients || !C.fol_level || !C.fol_gen || !C.fol_queued || !C.fol_dropped)
        return snprintf(err, n, "out of memory"), -1;
    for (size_t i = 0; i < m; i++) {
        C.clients[i].slot = (uint32_t)i;
        C.fol_level[i] = -1;
    }
    if (uv_loop_init(&C.loop)) return snprintf(err, n, "event loop: cannot start"), -1;
    uv_pipe_init(&C.loop, &C.server, 0);
    int rc = uv_pipe_bind(&C.server, C.path);
    /* another node of the port mapper may have removed the (empty) directory in between */
    for (int i = 0; rc == UV_ENOENT && cfg->make_dir && i < 3; i++)
        if (make_parent(C.path, err, n) == 0) rc = uv_pipe_bind(&C.server, C.path);
    if (rc == 0 && chmod(C.path, 0600) != 0) rc = -errno;
    if (rc == 0) rc = uv_listen((uv_stream_t *)&C.server, 128, on_connection);
    if (rc) {
        snprintf(err, n, "control socket %s: %s", C.path, uv_strerror(rc));
        uv_close((uv_handle_t *)&C.server, NULL);
        uv_run(&C.loop, UV_RUN_DEFAULT);
        uv_loop_close(&C.loop);
        unlink(C.path);
        return -1;
    }
    uv_async_init(&C.loop, &C.async, on_async);
    uv_timer_init(&C.loop, &C.timer);
    uv_timer_init(&C.loop, &C.stop_timer);
    uint64_t tick = cfg->idle_timeout_s >= 4 ? 1000 : 250;
    uv_timer_start(&C.timer, on_timer, tick, tick);
    C.loop_alive = true;
    gd_log_set_tap(log_tap);
    if (pthread_create(&C.thread, NULL, io_main, NULL) != 0) {
        gd_log_set_tap(NULL);
        C.loop_alive = false;
        uv_close((uv_handle_t *)&C.server, NULL);
        uv_close((uv_handle_t *)&C.async, NULL);
        uv_close((uv_handle_t *)&C.timer, NULL);
        uv_close((uv_handle_t *)&C.stop_timer, NULL);
        uv_run(&C.loop, UV_RUN_DEFAULT);
        uv_loop_close(&C.loop);
        unlink(C.path);
        return snprintf(err, n, "cannot start the control thread"), -1;
    }
    C.started = true;
    return 0;
}

void gd_control_stop(void)
{
    if (!C.started) return;
    pthread_mutex_lock(&C.qmu);
    atomic_store(&C.stop_req, true);
    uv_async_send(&C.async);
    pthread_mutex_unlock(&C.qmu);
    pthread_join(C.thread, NULL);
    gd_log_set_tap(NULL);
    uv_loop_close(&C.loop);
    unlink(C.path);
    /* a per-port-mapper directory made for the default path goes when its last node does */
    char dir[sizeof C.path];
    snprintf(dir, sizeof dir, "%s", C.path);
    char *slash = strrchr(dir, '/');
    if (C.cfg.make_dir && slash) {
        *slash = 0;
        const char *base = strrchr(dir, '/');
        if (base && !strncmp(base + 1, "epmd-", 5)) rmdir(dir); /* fails while not empty */
    }
    C.started = false;
}

void gd_control_free(void)
{
    pthread_mutex_lock(&C.qmu);
    completion *q = C.qhead;
    C.qhead = C.qtail = NULL;
    C.nfollowers = 0;
    while (q) {
        completion *next = q->next;
        free(q->data);
        free(q);
        q = next;
    }
    free(C.clients);
    free(C.fol_level);
    free(C.fol_gen);
    free(C.fol_queued);
    free(C.fol_dropped);
    C.clients = NULL;
    C.fol_level = NULL;
    pthread_mutex_unlock(&C.qmu);
}
