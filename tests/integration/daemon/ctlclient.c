/* A small msgpack-rpc client of girderd's control socket, for the daemon's integration tests. */
#include "ctlclient.h"

#include <errno.h>
#include <girder/term.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int ctl_connect(ctl_conn *c, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return -errno;
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        close(c->fd);
        c->fd = -1;
        return -e;
    }
    msgpack_unpacker_init(&c->up, 65536);
    return 0;
}

void ctl_close(ctl_conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        msgpack_unpacker_destroy(&c->up);
    }
    c->fd = -1;
}

int ctl_send(ctl_conn *c, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ctl_read(ctl_conn *c, msgpack_unpacked *u, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    msgpack_unpacked_init(u);
    for (;;) {
        msgpack_unpack_return r = msgpack_unpacker_next(&c->up, u);
        if (r == MSGPACK_UNPACK_SUCCESS) return 1;
        if (r < 0) {
            msgpack_unpacked_destroy(u);
            return -1;
        }
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            msgpack_unpacked_destroy(u);
            return -1;
        }
        struct pollfd pf = {c->fd, POLLIN, 0};
        int pr = poll(&pf, 1, (int)left);
        if (pr <= 0) {
            if (pr < 0 && errno == EINTR) continue;
            msgpack_unpacked_destroy(u);
            return -1;
        }
        if (!msgpack_unpacker_reserve_buffer(&c->up, 65536)) {
            msgpack_unpacked_destroy(u);
            return -1;
        }
        ssize_t n = recv(c->fd, msgpack_unpacker_buffer(&c->up), 65536, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) {
            msgpack_unpacked_destroy(u);
            return 0;
        }
        if (n < 0) {
            if (errno == EINTR) continue;
            msgpack_unpacked_destroy(u);
            return -1;
        }
        msgpack_unpacker_buffer_consumed(&c->up, (size_t)n);
    }
}

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

static bool is_int(const char *s)
{
    if (*s == '-') s++;
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

int ctl_pack_request(msgpack_sbuffer *sb, uint32_t msgid, const char *method, int nargs,
                     char *const *args)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int npos = 0, nopt = 0;
    for (int i = 0; i < nargs; i++)
        if (!strncmp(args[i], "opt:", 4))
            nopt++;
        else
            npos++;
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, msgid);
    pack_str(&pk, method);
    msgpack_pack_array(&pk, (size_t)(npos + (nopt ? 1 : 0)));
    for (int i = 0; i < nargs; i++) {
        const char *a = args[i];
        if (!strncmp(a, "opt:", 4)) continue;
        if (!strncmp(a, "s:", 2)) {
            pack_str(&pk, a + 2);
        } else if (!strncmp(a, "i:", 2) && is_int(a + 2)) {
            msgpack_pack_int64(&pk, strtoll(a + 2, NULL, 10));
        } else if (!strcmp(a, "b:true")) {
            msgpack_pack_true(&pk);
        } else if (!strcmp(a, "b:false")) {
            msgpack_pack_false(&pk);
        } else if (!strncmp(a, "e:", 2)) {
            term_parse_error pe;
            term_t t = term_parse(a + 2, strlen(a + 2), NULL, &pe);
            etf_buf b = {0};
            if (t == TERM_NONE || etf_encode(t, 0, &b)) return -1;
            term_free(t);
            msgpack_pack_bin(&pk, b.len);
            msgpack_pack_bin_body(&pk, b.data, b.len);
            etf_buf_free(&b);
        } else {
            return -1;
        }
    }
    if (nopt) {
        msgpack_pack_map(&pk, (size_t)nopt);
        for (int i = 0; i < nargs; i++) {
            const char *a = args[i];
            if (strncmp(a, "opt:", 4)) continue;
            const char *eq = strchr(a + 4, '=');
            if (!eq) return -1;
            msgpack_pack_str(&pk, (size_t)(eq - (a + 4)));
            msgpack_pack_str_body(&pk, a + 4, (size_t)(eq - (a + 4)));
            const char *v = eq + 1;
            if (!strcmp(v, "true"))
                msgpack_pack_true(&pk);
            else if (!strcmp(v, "false"))
                msgpack_pack_false(&pk);
            else if (is_int(v))
                msgpack_pack_int64(&pk, strtoll(v, NULL, 10));
            else
                pack_str(&pk, v);
        }
    }
    return 0;
}

int ctl_call(ctl_conn *c, uint32_t msgid, const char *method, int nargs, char *const *args,
             msgpack_unpacked *u, int timeout_ms)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (ctl_pack_request(&sb, msgid, method, nargs, args) || ctl_send(c, sb.data, sb.size)) {
        msgpack_sbuffer_destroy(&sb);
        return -1;
    }
    msgpack_sbuffer_destroy(&sb);
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(deadline - now_ms());
        int rc = ctl_read(c, u, left > 0 ? left : 0);
        if (rc <= 0) return rc;
        const msgpack_object *o = &u->data;
        if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 4 &&
            o->via.array.ptr[0].via.u64 == 1 && o->via.array.ptr[1].via.u64 == msgid)
            return 1;
        msgpack_unpacked_destroy(u); /* a notification, or another answer */
    }
}

void ctl_print(FILE *f, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        fputs("null", f);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        fputs(o->via.boolean ? "true" : "false", f);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        fprintf(f, "%llu", (unsigned long long)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        fprintf(f, "%lld", (long long)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        fprintf(f, "%g", o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        fputc('"', f);
        for (uint32_t i = 0; i < o->via.str.size; i++) {
            char ch = o->via.str.ptr[i];
            if (ch == '"' || ch == '\\') fputc('\\', f);
            fputc(ch, f);
        }
        fputc('"', f);
        break;
    case MSGPACK_OBJECT_BIN:
        fputs("<<", f);
        for (uint32_t i = 0; i < o->via.bin.size; i++)
            fprintf(f, "%s%u", i ? "," : "", (unsigned char)o->via.bin.ptr[i]);
        fputs(">>", f);
        break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', f);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) fputc(',', f);
            ctl_print(f, &o->via.array.ptr[i]);
        }
        fputc(']', f);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', f);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i) fputc(',', f);
            ctl_print(f, &o->via.map.ptr[i].key);
            fputc(':', f);
            ctl_print(f, &o->via.map.ptr[i].val);
        }
        fputc('}', f);
        break;
    default:
        fputs("?", f);
    }
}

const msgpack_object *ctl_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (ctl_str_eq(&map->via.map.ptr[i].key, key)) return &map->via.map.ptr[i].val;
    return NULL;
}

bool ctl_str_eq(const msgpack_object *o, const char *s)
{
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           !memcmp(o->via.str.ptr, s, o->via.str.size);
}

char *ctl_strdup(const msgpack_object *o)
{
    if (!o || o->type != MSGPACK_OBJECT_STR) return NULL;
    return strndup(o->via.str.ptr, o->via.str.size);
}
