/* The control-socket client of `girder cluster`: node.info and node.stop over msgpack-rpc. */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* The most a response may take; node.info is a few hundred bytes. */
#define MAX_ANSWER (1u << 20)
#define MSGID      1u

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for events on fd until deadline: 1 ready, 0 timed out, -1 error (errno). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) return 0;
        struct pollfd p = {fd, events, 0};
        int rc = poll(&p, 1, (int)(left > 60000 ? 60000 : left));
        if (rc > 0) return 1;
        if (rc < 0 && errno != EINTR) return -1;
    }
}

/* Connects to path (non-blocking afterwards). The fd, or -1 with why. */
static int ctl_connect(const char *path, char *why, size_t n)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path[0] || strlen(path) >= sizeof sa.sun_path) {
        snprintf(why, n, "control socket path '%s' is empty or too long", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, n, "socket: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(why, n, "cannot connect to the control socket %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        snprintf(why, n, "fcntl: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
    while (len) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w > 0) {
            buf += w;
            len -= (size_t)w;
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return -1;
        } else if (w < 0 && errno == EAGAIN && wait_fd(fd, POLLOUT, deadline) <= 0) {
            if (errno == 0) errno = ETIMEDOUT;
            return -1;
        }
    }
    return 0;
}

/* Copies a msgpack str into out (cut at its size). */
static void str_of(const msgpack_object *o, char *out, size_t n)
{
    size_t len = o->via.str.size < n - 1 ? o->via.str.size : n - 1;
    memcpy(out, o->via.str.ptr, len);
    out[len] = 0;
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    if (m->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            !memcmp(k->via.str.ptr, key, kl))
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static bool get_uint(const msgpack_object *m, const char *key, int64_t *v)
{
    const msgpack_object *o = map_get(m, key);
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > INT64_MAX) return false;
    *v = (int64_t)o->via.u64;
    return true;
}

/* What a method makes of its result: 0, or -1 with why. */
typedef int (*result_fn)(const msgpack_object *result, void *ud, char *why, size_t n);

/*
** Sends [0, MSGID, method, []] and reads values until the response [1, MSGID, Error, Result]
** (notifications skipped), within timeout_ms and MAX_ANSWER bytes. 0 after fn accepted the
** result; -1 with why.
*/
static int call(const char *path, const char *method, int64_t timeout_ms, result_fn fn, void *ud,
                char *why, size_t n)
{
    int64_t deadline = mono_ms() + timeout_ms;
    int fd = ctl_connect(path, why, n);
    if (fd < 0) return -1;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint32(&pk, 0);
    msgpack_pack_uint32(&pk, MSGID);
    msgpack_pack_str(&pk, strlen(method));
    msgpack_pack_str_body(&pk, method, strlen(method));
    msgpack_pack_array(&pk, 0);
    int rc = send_all(fd, sb.data, sb.size, deadline);
    msgpack_sbuffer_destroy(&sb);
    if (rc) {
        snprintf(why, n, "control socket %s: sending %s: %s", path, method, strerror(errno));
        close(fd);
        return -1;
    }
    msgpack_unpacker up;
    if (!msgpack_unpacker_init(&up, 4096)) {
        snprintf(why, n, "out of memory");
        close(fd);
        return -1;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t total = 0;
    rc = -1;
    snprintf(why, n, "control socket %s: no answer to %s within %lld ms", path, method,
             (long long)timeout_ms);
    for (bool done = false; !done;) {
        msgpack_unpack_return ur = msgpack_unpacker_next(&up, &u);
        if (ur == MSGPACK_UNPACK_SUCCESS) {
            const msgpack_object *o = &u.data;
            if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1 ||
                o->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                snprintf(why, n, "control socket %s: an answer that is not msgpack-rpc", path);
                break;
            }
            const msgpack_object *a = o->via.array.ptr;
            if (a[0].via.u64 == 2) continue; /* a notification */
            if (a[0].via.u64 != 1 || o->via.array.size != 4 ||
                a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 != MSGID) {
                snprintf(why, n, "control socket %s: an answer that is not msgpack-rpc", path);
                break;
            }
            if (a[2].type != MSGPACK_OBJECT_NIL) {
                char msg[300] = "?";
                if (a[2].type == MSGPACK_OBJECT_ARRAY && a[2].via.array.size == 2 &&
                    a[2].via.array.ptr[1].type == MSGPACK_OBJECT_STR)
                    str_of(&a[2].via.array.ptr[1], msg, sizeof msg);
                snprintf(why, n, "control socket %s: %s failed: %s", path, method, msg);
                break;
            }
            rc = fn(&a[3], ud, why, n);
            break;
        }
        if (ur != MSGPACK_UNPACK_CONTINUE) {
            snprintf(why, n, "control socket %s: an answer that is not msgpack", path);
            break;
        }
        if (total >= MAX_ANSWER) {
            snprintf(why, n, "control socket %s: an answer larger than %u bytes", path, MAX_ANSWER);
            break;
        }
        if (!msgpack_unpacker_reserve_buffer(&up, 4096)) {
            snprintf(why, n, "out of memory");
            break;
        }
        ssize_t r =
            recv(fd, msgpack_unpacker_buffer(&up), msgpack_unpacker_buffer_capacity(&up), 0);
        if (r > 0) {
            msgpack_unpacker_buffer_consumed(&up, (size_t)r);
            total += (size_t)r;
        } else if (r == 0) {
            snprintf(why, n, "control socket %s: closed before answering %s", path, method);
            done = true;
        } else if (errno == EAGAIN || errno == EINTR) {
            if (wait_fd(fd, POLLIN, deadline) <= 0) done = true; /* why says: no answer */
        } else {
            snprintf(why, n, "control socket %s: %s", path, strerror(errno));
            done = true;
        }
    }
    msgpack_unpacked_destroy(&u);
    msgpack_unpacker_destroy(&up);
    close(fd);
    return rc;
}

static int info_result(const msgpack_object *r, void *ud, char *why, size_t n)
{
    cli_ctl_info *info = ud;
    const msgpack_object *name = map_get(r, "name"), *nodes = map_get(r, "nodes");
    if (!name || name->type != MSGPACK_OBJECT_STR || !nodes ||
        nodes->type != MSGPACK_OBJECT_ARRAY || !get_uint(r, "processes", &info->processes) ||
        !get_uint(r, "os_pid", &info->os_pid)) {
        snprintf(why, n, "node.info answered without name, os_pid, processes or nodes");
        return -1;
    }
    str_of(name, info->name, sizeof info->name);
    static const char cli[] = "girder_cli_";
    info->connections = 0;
    for (uint32_t i = 0; i < nodes->via.array.size; i++) {
        const msgpack_object *o = &nodes->via.array.ptr[i];
        if (o->type != MSGPACK_OBJECT_STR) {
            snprintf(why, n, "node.info answered a node name that is not a string");
            return -1;
        }
        if (o->via.str.size < sizeof cli - 1 || memcmp(o->via.str.ptr, cli, sizeof cli - 1))
            info->connections++;
    }
    return 0;
}

int cli_ctl_node_info(const char *path, int64_t timeout_ms, cli_ctl_info *info, char *why, size_t n)
{
    cli_ctl_info scratch;
    memset(info ? info : &scratch, 0, sizeof scratch);
    return call(path, "node.info", timeout_ms, info_result, info ? info : &scratch, why, n);
}

static int stop_result(const msgpack_object *r, void *ud, char *why, size_t n)
{
    (void)ud;
    if (r->type == MSGPACK_OBJECT_STR && r->via.str.size == 2 && !memcmp(r->via.str.ptr, "ok", 2))
        return 0;
    snprintf(why, n, "node.stop answered something else than \"ok\"");
    return -1;
}

int cli_ctl_node_stop(const char *path, int64_t timeout_ms, char *why, size_t n)
{
    return call(path, "node.stop", timeout_ms, stop_result, NULL, why, n);
}

typedef struct mod_query {
    const char *spec;
    bool found;
} mod_query;

/* A module of module.list matches spec: a path is its path; a bare NAME is <dir>/NAME.so. */
static int modules_result(const msgpack_object *r, void *ud, char *why, size_t n)
{
    mod_query *q = ud;
    if (r->type != MSGPACK_OBJECT_ARRAY) {
        snprintf(why, n, "module.list answered something else than a list");
        return -1;
    }
    char want[600];
    bool bare = !strchr(q->spec, '/');
    snprintf(want, sizeof want, bare ? "/%s.so" : "%s", q->spec);
    size_t wl = strlen(want);
    for (uint32_t i = 0; i < r->via.array.size && !q->found; i++) {
        const msgpack_object *p = map_get(&r->via.array.ptr[i], "path");
        if (!p || (p->type != MSGPACK_OBJECT_STR && p->type != MSGPACK_OBJECT_BIN)) continue;
        const char *s = p->via.str.ptr;
        size_t len = p->via.str.size;
        q->found =
            bare ? len >= wl && !memcmp(s + len - wl, want, wl) : len == wl && !memcmp(s, want, wl);
    }
    return 0;
}

int cli_ctl_has_module(const char *path, int64_t timeout_ms, const char *spec, char *why, size_t n)
{
    mod_query q = {spec, false};
    if (call(path, "module.list", timeout_ms, modules_result, &q, why, n) != 0) return -1;
    return q.found ? 1 : 0;
}
