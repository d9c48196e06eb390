/* `girder top` / `girder trace`: a long-lived control-socket connection to a local girderd. */
#include "obs.h"
#include "clusterdir.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_ANSWER (64u << 20)

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const msgpack_object *cli_mp_get(const msgpack_object *m, const char *key)
{
    if (!m || m->type != MSGPACK_OBJECT_MAP) return NULL;
    size_t kl = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            !memcmp(k->via.str.ptr, key, kl))
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

uint64_t cli_mp_u64(const msgpack_object *m, const char *key)
{
    const msgpack_object *v = cli_mp_get(m, key);
    return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : 0;
}

const char *cli_mp_str(const msgpack_object *o, char *buf, size_t n)
{
    buf[0] = 0;
    if (o && (o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN)) {
        size_t len = o->via.str.size < n - 1 ? o->via.str.size : n - 1;
        memcpy(buf, o->via.str.ptr, len);
        buf[len] = 0;
    }
    return buf;
}

static int oc_connect(cli_oc *c, const char *path, char *why, size_t n)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (!path[0] || strlen(path) >= sizeof sa.sun_path || strlen(path) >= sizeof c->path) {
        snprintf(why, n, "control socket path '%s' is empty or too long", path);
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(why, n, "cannot connect to the control socket %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
        !msgpack_unpacker_init(&c->up, 65536)) {
        snprintf(why, n, "control socket %s: cannot set up", path);
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->next_id = 1;
    msgpack_unpacked_init(&c->u);
    snprintf(c->path, sizeof c->path, "%s", path);
    return 0;
}

void cli_oc_close(cli_oc *c)
{
    if (c->fd < 0) return;
    close(c->fd);
    c->fd = -1;
    msgpack_unpacked_destroy(&c->u);
    msgpack_unpacker_destroy(&c->up);
}

static int wait_fd(int fd, short ev, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) return 0;
        struct pollfd p = {fd, ev, 0};
        int rc = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
        if (rc > 0) return 1;
        if (rc < 0 && errno != EINTR) return -1;
    }
}

int cli_oc_call(cli_oc *c, const char *method, const char *params, size_t len, int64_t timeout_ms,
                const msgpack_object **result, char *why, size_t n)
{
    int64_t deadline = mono_ms() + timeout_ms;
    uint32_t id = c->next_id++;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint32(&pk, 0);
    msgpack_pack_uint32(&pk, id);
    msgpack_pack_str_with_body(&pk, method, strlen(method));
    msgpack_sbuffer_write(&sb, params, len);
    const char *p = sb.data;
    size_t left = sb.size;
    while (left) {
        ssize_t w = send(c->fd, p, left, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            left -= (size_t)w;
        } else if (w < 0 && errno == EAGAIN && wait_fd(c->fd, POLLOUT, deadline) > 0) {
            continue;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else {
            snprintf(why, n, "control socket %s: sending %s failed", c->path, method);
            msgpack_sbuffer_destroy(&sb);
            return -1;
        }
    }
    msgpack_sbuffer_destroy(&sb);
    size_t total = 0;
    for (;;) {
        msgpack_unpack_return ur = msgpack_unpacker_next(&c->up, &c->u);
        if (ur == MSGPACK_UNPACK_SUCCESS) {
            const msgpack_object *o = &c->u.data;
            if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3 ||
                o->via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
                snprintf(why, n, "control socket %s: an answer that is not msgpack-rpc", c->path);
                return -1;
            }
            const msgpack_object *a = o->via.array.ptr;
            if (a[0].via.u64 == 2) continue; /* a notification */
            if (a[0].via.u64 != 1 || o->via.array.size != 4 || a[1].via.u64 != id) {
                snprintf(why, n, "control socket %s: an answer that is not msgpack-rpc", c->path);
                return -1;
            }
            if (a[2].type != MSGPACK_OBJECT_NIL) {
                char msg[400] = "?";
                if (a[2].type == MSGPACK_OBJECT_ARRAY && a[2].via.array.size == 2)
                    cli_mp_str(&a[2].via.array.ptr[1], msg, sizeof msg);
                snprintf(why, n, "%s: %s", method, msg);
                return -1;
            }
            *result = &a[3];
            return 0;
        }
        if (ur != MSGPACK_UNPACK_CONTINUE) {
            snprintf(why, n, "control socket %s: an answer that is not msgpack", c->path);
            return -1;
        }
        if (total >= MAX_ANSWER || !msgpack_unpacker_reserve_buffer(&c->up, 65536)) {
            snprintf(why, n, "control socket %s: an answer too large", c->path);
            return -1;
        }
        ssize_t r = recv(c->fd, msgpack_unpacker_buffer(&c->up),
                         msgpack_unpacker_buffer_capacity(&c->up), 0);
        if (r > 0) {
            msgpack_unpacker_buffer_consumed(&c->up, (size_t)r);
            total += (size_t)r;
        } else if (r == 0) {
            snprintf(why, n, "control socket %s: closed before answering %s", c->path, method);
            return -1;
        } else if (errno == EAGAIN || errno == EINTR) {
            if (wait_fd(c->fd, POLLIN, deadline) <= 0) {
                snprintf(why, n, "control socket %s: no answer to %s within %lld ms", c->path,
                         method, (long long)timeout_ms);
                return -1;
            }
        } else {
            snprintf(why, n, "control socket %s: %s", c->path, strerror(errno));
            return -1;
        }
    }
}

/* girderd's default socket path (docs/girderd.md), for the port mapper port of this shell. */
static void default_path(const char *node, char *out, size_t n)
{
    const char *dir = getenv("XDG_RUNTIME_DIR"), *ep = getenv("ERL_EPMD_PORT");
    if (geteuid() == 0 || !dir || !*dir) dir = "/run";
    char sub[32] = "";
    long port = ep && *ep ? strtol(ep, NULL, 10) : 4369;
    if (port != 4369) snprintf(sub, sizeof sub, "epmd-%ld/", port);
    snprintf(out, n, "%s/girder/%s%s.sock", dir, sub, node);
}

int cli_oc_open_node(cli_oc *c, const cli_opts *o, const char *node, char *why, size_t n)
{
    char path[CL_PATH] = "";
    c->fd = -1;
    cl_state *st = calloc(1, sizeof *st);
    if (st && cl_load(o->dir ? o->dir : CLI_DEFAULT_DIR, st) == 0) {
        int i = cl_find(st, node);
        if (i >= 0 && st->nodes[i].ctl[0]) snprintf(path, sizeof path, "%s", st->nodes[i].ctl);
    }
    free(st);
    if (!path[0]) default_path(node, path, sizeof path);
    if (access(path, F_OK) != 0) {
        snprintf(why, n, "no control socket at %s", path);
        return -1;
    }
    if (oc_connect(c, path, why, n)) return -1;
    char params[1] = {(char)0x90}; /* [] */
    const msgpack_object *r;
    char name[300];
    int64_t t = o->timeout_ms < 3000 ? o->timeout_ms : 3000;
    if (cli_oc_call(c, "node.info", params, 1, t, &r, why, n) != 0) {
        cli_oc_close(c);
        return -1;
    }
    if (strcmp(cli_mp_str(cli_mp_get(r, "name"), name, sizeof name), node)) {
        snprintf(why, n, "the control socket %s is node %s's", path, name);
        cli_oc_close(c);
        return -1;
    }
    return 0;
}
