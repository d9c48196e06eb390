/* epmd-stress: abuse a running epmd (garbage, slow, half-open, 2000 clients), check it. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "epmd_int.h"

#define T_MS    5000
#define CLIENTS 1000

static uint16_t g_port;
static int g_timeout_s;
static int64_t g_t0;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "FAIL: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(1);
}

#define CHECK(cond, ...)                \
    do {                                \
        if (!(cond)) fail(__VA_ARGS__); \
    } while (0)

static void step(const char *what)
{
    printf("[%6.2fs] %s\n", (double)(now_ms() - g_t0) / 1000, what);
    fflush(stdout);
}

static int connect_raw(int nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    CHECK(fd >= 0, "socket: %s", strerror(errno));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(g_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS)
        fail("connect: %s", strerror(errno));
    return fd;
}

static void send_raw(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        CHECK(n > 0, "send: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
}

/* Reads until the peer closes. Returns bytes read, or -1 if still open at the timeout. */
static ssize_t read_until_close(int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    size_t got = 0;
    uint8_t junk[512];
    for (;;) {
        int left = (int)(end - now_ms());
        if (left <= 0) return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, left) <= 0) continue;
        ssize_t n = got < cap ? recv(fd, buf + got, cap - got, 0) : recv(fd, junk, sizeof junk, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET)) return (ssize_t)got;
        if (n < 0) continue;
        if (got < cap) got += (size_t)n;
    }
}

static int alive2(uint8_t *pkt, size_t cap, const char *name, uint16_t port)
{
    epmd_node_info n;
    CHECK(epmd_node_info_init(&n, name, port) == 0, "node info %s", name);
    return epmd__encode_alive2(&n, pkt, cap);
}

static int registered(const char *name)
{
    epmd_node_info n;
    int r = epmd_port_please(NULL, g_port, name, T_MS, &n);
    CHECK(r == 0 || r == EPMD_ENOENT, "lookup %s: %s", name, epmd_strerror(r));
    return r == 0;
}

/* The registered names, compared as a set with `want` (count entries). */
static void expect_names(const char **want, size_t count)
{
    epmd_name_list l;
    int r = epmd_names(NULL, g_port, T_MS, &l);
    CHECK(r == 0, "names: %s", epmd_strerror(r));
    CHECK(l.count == count, "names: %zu registered, want %zu", l.count, count);
    for (size_t i = 0; i < count; i++) {
        size_t j = 0;
        while (j < l.count && strcmp(l.entries[j].name, want[i])) j++;
        CHECK(j < l.count, "names: %s missing", want[i]);
    }
    epmd_names_free(&l);
}

static size_t names_count(void)
{
    epmd_name_list l;
    int r = epmd_names(NULL, g_port, T_MS, &l);
    CHECK(r == 0, "names: %s", epmd_strerror(r));
    size_t n = l.count;
    epmd_names_free(&l);
    return n;
}

/* ---- many clients at once, driven by one poll loop ---- */

typedef struct job {
    int fd;
    uint8_t out[64];
    size_t olen, sent;
    uint8_t in[2200];
    size_t got;
    size_t want; /* read this many then keep the socket; 0: read to end of stream */
    int done, failed;
} job;

static void run_jobs(job *jobs, size_t n, int timeout_ms)
{
    struct pollfd *p = calloc(n, sizeof *p);
    for (size_t i = 0; i < n; i++) jobs[i].fd = connect_raw(1);
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        size_t open = 0;
        for (size_t i = 0; i < n; i++) {
            job *j = &jobs[i];
            p[i].fd = j->done ? -1 : j->fd;
            p[i].events = j->sent < j->olen ? POLLOUT : POLLIN;
            p[i].revents = 0;
            open += !j->done;
        }
        if (open == 0) break;
        int left = (int)(end - now_ms());
        CHECK(left > 0, "concurrent clients: %zu of %zu unfinished at the deadline", open, n);
        if (poll(p, n, left) <= 0) continue;
        for (size_t i = 0; i < n; i++) {
            job *j = &jobs[i];
            if (j->done || !p[i].revents) continue;
            if (j->sent < j->olen) {
                ssize_t w = send(j->fd, j->out + j->sent, j->olen - j->sent, MSG_NOSIGNAL);
                if (w > 0)
                    j->sent += (size_t)w;
                else if (errno != EAGAIN && errno != EINPROGRESS && errno != ENOTCONN)
                    j->done = j->failed = 1;
                continue;
            }
            size_t cap = j->want ? j->want : sizeof j->in;
            ssize_t r = recv(j->fd, j->in + j->got, cap - j->got, 0);
            if (r > 0) {
                j->got += (size_t)r;
                if (j->want && j->got == j->want) j->done = 1;
            } else if (r == 0) {
                j->done = 1;
                if (j->want) j->failed = 1;
            } else if (errno != EAGAIN) {
                j->done = j->failed = 1;
            }
        }
    }
    free(p);
}

static void concurrent(void)
{
    step("1000 concurrent registrations + 1000 concurrent lookups");
    job *jobs = calloc(2 * CLIENTS, sizeof *jobs);
    char name[32];
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(name, sizeof name, "c%04d", i);
        job *r = &jobs[i];
        r->olen = (size_t)alive2(r->out, sizeof r->out, name, (uint16_t)(20000 + i));
        r->want = 6;
        job *l = &jobs[CLIENTS + i];
        l->olen = (size_t)epmd__encode_name_req(EPMD_PORT2_REQ, "keeper", l->out, sizeof l->out);
    }
    int64_t t = now_ms();
    run_jobs(jobs, 2 * CLIENTS, 30000);
    for (int i = 0; i < 2 * CLIENTS; i++) CHECK(!jobs[i].failed, "client %d failed", i);
    for (int i = 0; i < CLIENTS; i++) {
        uint32_t cr;
        int ext;
        CHECK(epmd__decode_alive_resp(jobs[i].in, 6, &cr, &ext) == 0 && ext && cr >= 4,
              "registration %d refused", i);
        epmd_node_info n;
        CHECK(epmd__decode_port2_resp(jobs[CLIENTS + i].in, jobs[CLIENTS + i].got, &n) == 0 &&
                  n.port == 1111,
              "lookup %d wrong", i);
    }
    printf("         2000 clients done in %lld ms\n", (long long)(now_ms() - t));

    step("1000 concurrent lookups of the 1000 new names");
    job *look = calloc(CLIENTS, sizeof *look);
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(name, sizeof name, "c%04d", i);
        look[i].olen = (size_t)epmd__encode_name_req(EPMD_PORT2_REQ, name, look[i].out, 64);
    }
    run_jobs(look, CLIENTS, 30000);
    for (int i = 0; i < CLIENTS; i++) {
        epmd_node_info n;
        snprintf(name, sizeof name, "c%04d", i);
        CHECK(!look[i].failed && epmd__decode_port2_resp(look[i].in, look[i].got, &n) == 0 &&
                  n.port == 20000 + i && strcmp(n.name, name) == 0,
              "lookup of %s wrong", name);
    }
    free(look);

    const char **want = calloc(CLIENTS + 1, sizeof *want);
    char(*names)[8] = calloc(CLIENTS, 8);
    for (int i = 0; i < CLIENTS; i++) {
        snprintf(names[i], 8, "c%04d", i);
        want[i] = names[i];
    }
    want[CLIENTS] = "keeper";
    expect_names(want, CLIENTS + 1);

    step("closing half of them: exactly the others stay");
    for (int i = 0; i < CLIENTS; i += 2) close(jobs[i].fd);
    for (int i = CLIENTS; i < 2 * CLIENTS; i++) close(jobs[i].fd);
    int64_t end = now_ms() + 10000;
    while (names_count() != CLIENTS / 2 + 1) {
        CHECK(now_ms() < end, "unregistration of closed clients too slow");
        usleep(20000);
    }
    size_t k = 0;
    for (int i = 1; i < CLIENTS; i += 2) want[k++] = names[i];
    want[k++] = "keeper";
    expect_names(want, k);
    for (int i = 1; i < CLIENTS; i += 2) close(jobs[i].fd);
    end = now_ms() + 10000;
    while (names_count() != 1) {
        CHECK(now_ms() < end, "unregistration of closed clients too slow");
        usleep(20000);
    }
    free(want);
    free(names);
    free(jobs);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: epmd-stress EPMD_PORT PACKET_TIMEOUT_S\n");
        return 64;
    }
    g_port = (uint16_t)atoi(argv[1]);
    g_timeout_s = atoi(argv[2]);
    g_t0 = now_ms();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    CHECK(rl.rlim_cur > 2 * CLIENTS + 64, "need %d descriptors", 2 * CLIENTS + 64);

    uint8_t pkt[EPMD_MAX_PACKET + 16], buf[4096];
    epmd_node_info node;
    epmd_registration keeper;
    epmd_node_info_init(&node, "keeper", 1111);
    CHECK(epmd_register(NULL, g_port, &node, T_MS, &keeper) == 0, "register keeper");

    step("garbage, zero-length and oversized requests are closed without an answer");
    static const struct {
        const char *data;
        size_t len;
    } bad[] = {
        {"\x00\x03\x01\x02\x03", 5},         /* unknown tag */
        {"\x00\x00", 2},                     /* zero length */
        {"\xff\xff", 2},                     /* 65535 bytes announced */
        {"\x0b\xf2xxxx", 6},                 /* 3058: one over the limit */
        {"\x00\x02\x7a\x00", 4},             /* PORT2 of an empty name */
        {"\x00\x05\x7a\x61\x00\x62\x00", 7}, /* NUL inside a name */
        {"\x00\x01\x61", 3},                 /* R2's ALIVE_REQ */
        {"\x00\x04\x78\x00\x01\x4d", 6},     /* ALIVE2 cut short inside its own length */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = connect_raw(0);
        send_raw(fd, bad[i].data, bad[i].len);
        ssize_t n = read_until_close(fd, buf, sizeof buf, 3000);
        CHECK(n == 0, "bad request %zu: got %zd bytes (or no close)", i, n);
        close(fd);
    }
    srand(4369);
    for (int i = 0; i < 200; i++) {
        int fd = connect_raw(0);
        size_t len = 1 + (size_t)rand() % 64;
        for (size_t k = 0; k < len; k++) pkt[k] = (uint8_t)rand();
        if (i % 2) pkt[0] = 0; /* plausible lengths half of the time */
        send_raw(fd, pkt, len);
        shutdown(fd, SHUT_WR);
        CHECK(read_until_close(fd, buf, sizeof buf, 3000) >= 0, "random request %d: not closed", i);
        close(fd);
    }
    CHECK(registered("keeper"), "keeper lost after garbage");

    step("truncated requests and half-open connections");
    int len = alive2(pkt, sizeof pkt, "trunc", 2222);
    int fd = connect_raw(0);
    send_raw(fd, pkt, (size_t)len - 3);
    shutdown(fd, SHUT_WR);
    CHECK(read_until_close(fd, buf, sizeof buf, 3000) == 0, "truncated ALIVE2 answered");
    close(fd);
    CHECK(!registered("trunc"), "truncated ALIVE2 registered");
    /* A whole request, then half-close: the answer still comes. */
    fd = connect_raw(0);
    send_raw(fd, "\x00\x01n", 3);
    shutdown(fd, SHUT_WR);
    ssize_t n = read_until_close(fd, buf, sizeof buf, 3000);
    CHECK(n > 4 && girder__get32(buf) == g_port && memmem(buf, (size_t)n, "name keeper at", 14),
          "NAMES after half-close: %zd bytes", n);
    close(fd);
    /* Registration then half-close: epmd takes EOF as the node's end. */
    len = alive2(pkt, sizeof pkt, "halfreg", 2223);
    fd = connect_raw(0);
    send_raw(fd, pkt, (size_t)len);
    size_t have = 0;
    while (have < 6) {
        ssize_t r = recv(fd, buf + have, 6 - have, 0);
        CHECK(r > 0, "halfreg answer");
        have += (size_t)r;
    }
    CHECK(buf[0] == EPMD_ALIVE2_X_RESP && buf[1] == 0, "halfreg refused");
    CHECK(registered("halfreg"), "halfreg not registered");
    shutdown(fd, SHUT_WR);
    CHECK(read_until_close(fd, buf, sizeof buf, 3000) == 0, "halfreg not closed");
    close(fd);
    CHECK(!registered("halfreg"), "halfreg still registered after EOF");
    /* Registration then a stray byte: the registration ends. */
    len = alive2(pkt, sizeof pkt, "chatty", 2224);
    fd = connect_raw(0);
    send_raw(fd, pkt, (size_t)len);
    have = 0;
    while (have < 6) {
        ssize_t r = recv(fd, buf + have, 6 - have, 0);
        CHECK(r > 0, "chatty answer");
        have += (size_t)r;
    }
    CHECK(registered("chatty"), "chatty not registered");
    send_raw(fd, "!", 1);
    CHECK(read_until_close(fd, buf, sizeof buf, 3000) == 0, "chatty not closed");
    close(fd);
    CHECK(!registered("chatty"), "chatty still registered");

    step("largest valid request, and a name over 255 characters");
    memset(&node, 0, sizeof node);
    epmd_node_info_init(&node, "x", 3333);
    node.name_len = 0;
    for (int i = 0; i < 255; i++) {
        memcpy(node.name + node.name_len, "\xc3\xa9", 2); /* é */
        node.name_len += 2;
    }
    node.name[node.name_len] = 0;
    node.extra_len = EPMD_MAX_EXTRA;
    memset(node.extra, 0xab, node.extra_len);
    epmd_registration big;
    CHECK(epmd_register(NULL, g_port, &node, T_MS, &big) == 0, "largest ALIVE2 refused");
    epmd_node_info got;
    CHECK(epmd_port_please(NULL, g_port, node.name, T_MS, &got) == 0 && got.extra_len == 1020 &&
              got.extra[1019] == 0xab,
          "largest lookup");
    epmd_unregister(&big);
    char longname[300];
    memset(longname, 'L', 256);
    longname[256] = 0;
    epmd_node_info_init(&node, longname, 3334);
    epmd_registration lr;
    CHECK(epmd_register(NULL, g_port, &node, T_MS, &lr) == EPMD_EEXIST, "256-char name accepted");
    CHECK(epmd_port_please(NULL, g_port, longname, T_MS, &got) == EPMD_ECONNRESET,
          "256-char lookup not closed");

    step("byte-at-a-time sender within the time limit gets its answer");
    len = epmd__encode_name_req(EPMD_PORT2_REQ, "keeper", pkt, sizeof pkt);
    fd = connect_raw(0);
    for (int i = 0; i < len; i++) {
        send_raw(fd, pkt + i, 1);
        usleep(100000);
    }
    n = read_until_close(fd, buf, sizeof buf, 3000);
    CHECK(n > 0 && epmd__decode_port2_resp(buf, (size_t)n, &got) == 0 && got.port == 1111,
          "slow lookup: %zd bytes", n);
    close(fd);

    step("silent client and too-slow sender are cut off after the packet timeout");
    int silent = connect_raw(0);
    int slow = connect_raw(0);
    len = alive2(pkt, sizeof pkt, "slowpoke", 4444);
    int64_t start = now_ms(), silent_closed = 0, slow_closed = 0;
    int sent = 0, checked = 0;
    while ((!silent_closed || !slow_closed) && now_ms() - start < (g_timeout_s + 4) * 1000) {
        if (!slow_closed && sent < len && (now_ms() - start) / 300 >= sent) {
            if (send(slow, pkt + sent, 1, MSG_NOSIGNAL) == 1) sent++;
        }
        struct pollfd p[2] = {{.fd = silent, .events = POLLIN}, {.fd = slow, .events = POLLIN}};
        poll(p, 2, 20);
        if (!silent_closed && p[0].revents && recv(silent, buf, sizeof buf, 0) <= 0)
            silent_closed = now_ms();
        if (!slow_closed && p[1].revents && recv(slow, buf, sizeof buf, 0) <= 0)
            slow_closed = now_ms();
        if (!checked && now_ms() - start > 500) {
            /* Meanwhile everything else is served at once. */
            CHECK(registered("keeper"), "keeper lookup while clients linger");
            checked = 1;
        }
    }
    CHECK(silent_closed && slow_closed, "lingering clients not closed");
    int64_t lo = g_timeout_s * 1000 - 500, hi = g_timeout_s * 1000 + 2500;
    CHECK(silent_closed - start >= lo && silent_closed - start <= hi, "silent closed after %lld ms",
          (long long)(silent_closed - start));
    CHECK(slow_closed - start >= lo && slow_closed - start <= hi, "slow closed after %lld ms",
          (long long)(slow_closed - start));
    CHECK(sent < len, "slow sender finished anyway");
    close(silent);
    close(slow);
    CHECK(!registered("slowpoke"), "slowpoke registered");

    concurrent();

    step("afterwards: epmd answers and holds exactly the live registrations");
    static const char *live[] = {"keeper"};
    expect_names(live, 1);
    CHECK(epmd_registration_check(&keeper) == 0, "keeper's connection lost");
    epmd_unregister(&keeper);
    int64_t end = now_ms() + 5000;
    while (names_count() != 0) {
        CHECK(now_ms() < end, "keeper not unregistered");
        usleep(20000);
    }
    step("PASS");
    return 0;
}
