/* Girder epmd blocking client: plain sockets + poll, every call bounded by a deadline. */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "epmd_int.h"
#include "girder_deadline.h"

/* Largest NAMES/DUMP answer we accept: 1000s of names fit many times over. */
#define MAX_TEXT_ANSWER (64u << 20)

/* Waits for `events` on fd until the deadline. 0, EPMD_ETIMEDOUT or an errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int ms = girder__ms_left(deadline);
        int r = poll(&p, 1, ms);
        if (r > 0) return 0;
        if (r == 0) return EPMD_ETIMEDOUT;
        if (errno != EINTR) return -errno;
    }
}

uint16_t epmd_default_port(void)
{
    const char *s = getenv("ERL_EPMD_PORT");
    if (s && *s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (*end == 0 && v > 0 && v <= 65535) return (uint16_t)v;
    }
    return EPMD_DEFAULT_PORT;
}

/*
** Connects to epmd at host:port (each resolved address in turn) before the
** deadline. Returns a non-blocking, close-on-exec descriptor or an error.
*/
static int connect_epmd(const char *host, uint16_t port, int64_t deadline)
{
    char service[8];
    snprintf(service, sizeof service, "%u", port ? port : epmd_default_port());
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host ? host : "127.0.0.1", service, &hints, &res) != 0 || !res)
        return EPMD_EHOSTUNREACH;
    int err = EPMD_EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            freeaddrinfo(res);
            return fd;
        }
        if (errno == EINPROGRESS) {
            err = wait_fd(fd, POLLOUT, deadline);
            if (err == 0) {
                int soerr = 0;
                socklen_t sl = sizeof soerr;
                if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = errno;
                if (soerr == 0) {
                    freeaddrinfo(res);
                    return fd;
                }
                err = -soerr;
            }
        } else {
            err = -errno;
        }
        close(fd);
        if (err == EPMD_ETIMEDOUT) break;
    }
    freeaddrinfo(res);
    return err;
}

static int send_all(int fd, const uint8_t *buf, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(fd, POLLOUT, deadline);
            if (r) return r;
        } else if (n < 0 && errno != EINTR) {
            return errno == EPIPE ? EPMD_ECONNRESET : -errno;
        }
    }
    return 0;
}

/* Reads up to cap bytes: >0 count, 0 at end of stream, <0 error (ETIMEDOUT at the deadline). */
static ssize_t recv_some(int fd, uint8_t *buf, size_t cap, int64_t deadline)
{
    for (;;) {
        ssize_t n = recv(fd, buf, cap, 0);
        if (n >= 0) return n;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int r = wait_fd(fd, POLLIN, deadline);
            if (r) return r;
        } else if (errno != EINTR) {
            return errno == ECONNRESET ? EPMD_ECONNRESET : -errno;
        }
    }
}

/* Reads exactly n bytes into buf (some may be there already: *have). */
static int recv_exact(int fd, uint8_t *buf, size_t *have, size_t n, int64_t deadline)
{
    while (*have < n) {
        ssize_t r = recv_some(fd, buf + *have, n - *have, deadline);
        if (r == 0) return EPMD_ECONNRESET;
        if (r < 0) return (int)r;
        *have += (size_t)r;
    }
    return 0;
}

/* Reads until end of stream into a malloc'd NUL-terminated buffer. */
static int recv_to_eof(int fd, char **out, size_t *out_len, int64_t deadline)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) return EPMD_ENOMEM;
    for (;;) {
        if (cap - len < 1024) {
            if (cap >= MAX_TEXT_ANSWER) {
                free(buf);
                return EPMD_EMSGSIZE;
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return EPMD_ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv_some(fd, (uint8_t *)buf + len, cap - len - 1, deadline);
        if (r == 0) break;
        if (r < 0) {
            free(buf);
            return (int)r;
        }
        len += (size_t)r;
    }
    buf[len] = 0;
    *out = buf;
    *out_len = len;
    return 0;
}

/* Connects and sends one request packet. Returns the descriptor or an error. */
static int request(const char *host, uint16_t port, const uint8_t *pkt, size_t len,
                   int64_t deadline)
{
    int fd = connect_epmd(host, port, deadline);
    if (fd < 0) return fd;
    int r = send_all(fd, pkt, len, deadline);
    if (r) {
        close(fd);
        return r;
    }
    return fd;
}

int epmd_node_info_init(epmd_node_info *info, const char *name, uint16_t port)
{
    memset(info, 0, sizeof *info);
    size_t n = name ? strlen(name) : 0;
    if (n == 0) return EPMD_EINVAL;
    if (n > EPMD_MAX_NAME_BYTES) return EPMD_ENAMETOOLONG;
    memcpy(info->name, name, n);
    info->name_len = n;
    info->port = port;
    info->node_type = EPMD_NODE_TYPE_NORMAL;
    info->protocol = EPMD_PROTOCOL_TCP;
    info->highest_version = 6;
    info->lowest_version = 6;
    return 0;
}

int epmd_register(const char *host, uint16_t epmd_port, const epmd_node_info *node, int timeout_ms,
                  epmd_registration *reg)
{
    reg->fd = -1;
    reg->creation = 0;
    reg->extended = 0;
    uint8_t pkt[EPMD_MAX_PACKET];
    int len = epmd__encode_alive2(node, pkt, sizeof pkt);
    if (len < 0) return len;
    int64_t deadline = girder__deadline_ms(timeout_ms);
    int fd = request(host, epmd_port, pkt, (size_t)len, deadline);
    if (fd < 0) return fd;
    uint8_t ans[8];
    size_t have = 0;
    int need = 1, r;
    /* Read exactly the answer: any byte after it would belong to nobody. */
    while ((r = recv_exact(fd, ans, &have, (size_t)need, deadline)) == 0) {
        need = epmd__decode_alive_resp(ans, have, &reg->creation, &reg->extended);
        if (need <= 0) break;
    }
    if (r == 0) r = need;
    if (r != 0) {
        close(fd);
        return r;
    }
    reg->fd = fd;
    return 0;
}

int epmd_registration_check(const epmd_registration *reg)
{
    if (!reg || reg->fd < 0) return EPMD_EINVAL;
    uint8_t b;
    ssize_t n = recv(reg->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return 0;
    if (n > 0) return EPMD_EPROTO; /* epmd never talks on a registration */
    return EPMD_ECONNRESET;
}

void epmd_unregister(epmd_registration *reg)
{
    if (reg && reg->fd >= 0) {
        close(reg->fd);
        reg->fd = -1;
    }
}

int epmd_port_please(const char *host, uint16_t epmd_port, const char *name, int timeout_ms,
                     epmd_node_info *out)
{
    uint8_t pkt[EPMD_MAX_NAME_BYTES + 3];
    int len = epmd__encode_name_req(EPMD_PORT2_REQ, name, pkt, sizeof pkt);
    if (len < 0) return len;
    int64_t deadline = girder__deadline_ms(timeout_ms);
    int fd = request(host, epmd_port, pkt, (size_t)len, deadline);
    if (fd < 0) return fd;
    uint8_t ans[14 + EPMD_MAX_NAME_BYTES + EPMD_MAX_EXTRA];
    size_t have = 0;
    int need = 2, r;
    while ((r = recv_exact(fd, ans, &have, (size_t)need, deadline)) == 0) {
        need = epmd__decode_port2_resp(ans, have, out);
        if (need <= 0) break;
    }
    close(fd);
    return r ? r : need;
}

/* Sends a one-byte request and reads the 4-byte port and the text that follow. */
static int text_request(const char *host, uint16_t epmd_port, int type, int timeout_ms,
                        uint32_t *port_out, char **text, size_t *text_len)
{
    uint8_t pkt[3];
    epmd__encode_name_req(type, NULL, pkt, sizeof pkt);
    int64_t deadline = girder__deadline_ms(timeout_ms);
    int fd = request(host, epmd_port, pkt, sizeof pkt, deadline);
    if (fd < 0) return fd;
    uint8_t p[4];
    size_t have = 0;
    int r = recv_exact(fd, p, &have, 4, deadline);
    if (r == 0) r = recv_to_eof(fd, text, text_len, deadline);
    close(fd);
    if (r == 0 && port_out) *port_out = girder__get32(p);
    return r;
}

int epmd_names(const char *host, uint16_t epmd_port, int timeout_ms, epmd_name_list *out)
{
    memset(out, 0, sizeof *out);
    int r = text_request(host, epmd_port, EPMD_NAMES_REQ, timeout_ms, &out->epmd_port, &out->text,
                         &out->text_len);
    if (r) return r;
    if (memchr(out->text, 0, out->text_len)) r = EPMD_EPROTO;
    if (r == 0 && !(out->storage_ = malloc(out->text_len + 1))) r = EPMD_ENOMEM;
    if (r == 0) {
        memcpy(out->storage_, out->text, out->text_len + 1);
        r = epmd__parse_names(out->storage_, out->text_len, &out->entries, &out->count);
    }
    if (r) epmd_names_free(out);
    return r;
}

void epmd_names_free(epmd_name_list *names)
{
    if (!names) return;
    free(names->entries);
    free(names->text);
    free(names->storage_);
    memset(names, 0, sizeof *names);
}

int epmd_dump(const char *host, uint16_t epmd_port, int timeout_ms, uint32_t *epmd_port_out,
              char **text, size_t *text_len)
{
    return text_request(host, epmd_port, EPMD_DUMP_REQ, timeout_ms, epmd_port_out, text, text_len);
}

/* Sends a request and reads its fixed-size text answer (fewer bytes then EOF: ECONNRESET). */
static int short_answer(const char *host, uint16_t epmd_port, const uint8_t *pkt, size_t len,
                        int timeout_ms, uint8_t *ans, size_t n)
{
    int64_t deadline = girder__deadline_ms(timeout_ms);
    int fd = request(host, epmd_port, pkt, len, deadline);
    if (fd < 0) return fd;
    size_t have = 0;
    int r = recv_exact(fd, ans, &have, n, deadline);
    close(fd);
    return r;
}

int epmd_kill(const char *host, uint16_t epmd_port, int timeout_ms)
{
    uint8_t pkt[3], ans[2];
    epmd__encode_name_req(EPMD_KILL_REQ, NULL, pkt, sizeof pkt);
    int r = short_answer(host, epmd_port, pkt, sizeof pkt, timeout_ms, ans, 2);
    if (r) return r;
    if (memcmp(ans, "OK", 2) == 0) return 0;
    if (memcmp(ans, "NO", 2) == 0) return EPMD_EPERM;
    return EPMD_EPROTO;
}

int epmd_stop(const char *host, uint16_t epmd_port, const char *name, int timeout_ms)
{
    uint8_t pkt[EPMD_MAX_NAME_BYTES + 3], ans[7];
    int len = epmd__encode_name_req(EPMD_STOP_REQ, name, pkt, sizeof pkt);
    if (len < 0) return len;
    int r = short_answer(host, epmd_port, pkt, (size_t)len, timeout_ms, ans, 7);
    if (r) return r;
    if (memcmp(ans, "STOPPED", 7) == 0) return 0;
    if (memcmp(ans, "NOEXIST", 7) == 0) return EPMD_ENOENT;
    return EPMD_EPROTO;
}
