/* epmd-flood: floods an epmd with idle and garbage connections while timing honest lookups. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "girder/epmd.h"

#define MAX_SOURCES 16

static uint16_t g_port;
static int g_seconds = 10;
static int g_idle = 3000;   /* idle connections to hold at once */
static int g_rate = 3000;   /* new connections per second, at most (idle and garbage) */
static int g_garbage = 300; /* garbage senders per second */
static int g_register = 0;  /* names to register (and hold) before the flood */
static int g_sources = 9;   /* 127.0.0.1 .. 127.0.0.N */
static int g_max_ms = 1000; /* the bound for each honest lookup */
static const char *g_lookup[4];
static int g_nlookup;
static atomic_int g_stop;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A non-blocking connection from 127.0.0.<src>; -1 if the system refuses one now. */
static int connect_from(int src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(0x7F000000u | (uint32_t)src);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    a.sin_port = htons(g_port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- the honest side: lookups through the client library, timed ---- */

typedef struct lookups {
    long ok, failed, over;
    int64_t max_ms;
    int64_t sum_ms;
} lookups;

static void *honest(void *arg)
{
    lookups *l = arg;
    for (int i = 0; !atomic_load(&g_stop); i++) {
        int64_t t = now_ms();
        int r;
        if (i % 10 == 9) {
            epmd_name_list names;
            r = epmd_names(NULL, g_port, 5000, &names);
            if (r == 0) epmd_names_free(&names);
        } else {
            epmd_node_info n;
            r = epmd_port_please(NULL, g_port, g_lookup[i % g_nlookup], 5000, &n);
        }
        int64_t ms = now_ms() - t;
        if (r == 0) {
            l->ok++;
        } else {
            l->failed++;
            fprintf(stderr, "honest lookup failed after %lld ms: %s\n", (long long)ms,
                    epmd_err_name(r));
        }
        if (ms > g_max_ms) l->over++;
        if (ms > l->max_ms) l->max_ms = ms;
        l->sum_ms += ms;
        usleep(20000);
    }
    return NULL;
}

/* ---- the flood: idle connections held as long as epmd lets them, and garbage ---- */

enum { IDLE, GARBAGE };

typedef struct fconn {
    int fd;
    int kind;
} fconn;

static void usage(void)
{
    fprintf(stderr, "usage: epmd-flood EPMD_PORT SECONDS [-idle N] [-rate N] [-garbage N]\n"
                    "       [-register N] [-sources N] [-max_ms N] -lookup NAME...\n");
    exit(64);
}

int main(int argc, char **argv)
{
    if (argc < 3) usage();
    g_port = (uint16_t)atoi(argv[1]);
    g_seconds = atoi(argv[2]);
    for (int i = 3; i < argc; i++) {
        if (i + 1 >= argc) usage();
        const char *o = argv[i], *v = argv[++i];
        if (!strcmp(o, "-idle"))
            g_idle = atoi(v);
        else if (!strcmp(o, "-rate"))
            g_rate = atoi(v);
        else if (!strcmp(o, "-garbage"))
            g_garbage = atoi(v);
        else if (!strcmp(o, "-register"))
            g_register = atoi(v);
        else if (!strcmp(o, "-sources"))
            g_sources = atoi(v);
        else if (!strcmp(o, "-max_ms"))
            g_max_ms = atoi(v);
        else if (!strcmp(o, "-lookup") && g_nlookup < 4)
            g_lookup[g_nlookup++] = v;
        else
            usage();
    }
    if (g_nlookup == 0 || g_sources < 1 || g_sources > MAX_SOURCES) usage();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if ((long)rl.rlim_cur < g_idle + g_register + 200) {
        fprintf(stderr, "epmd-flood: needs %d descriptors\n", g_idle + g_register + 200);
        return 2;
    }

    /* A local flooder may also take names: they hold their connections for good. */
    epmd_registration *regs = calloc((size_t)g_register + 1, sizeof *regs);
    int nreg = 0, reg_refused = 0;
    for (int i = 0; i < g_register; i++) {
        char name[32];
        snprintf(name, sizeof name, "flood%d", i);
        epmd_node_info n;
        epmd_node_info_init(&n, name, (uint16_t)(30000 + i % 30000));
        if (epmd_register(NULL, g_port, &n, 5000, &regs[nreg]) == 0)
            nreg++;
        else
            reg_refused++;
    }
    if (g_register) printf("registered=%d refused=%d\n", nreg, reg_refused);

    lookups hl = {0};
    pthread_t th;
    pthread_create(&th, NULL, honest, &hl);

    size_t cap = (size_t)g_idle + (size_t)g_garbage * 2 + 16;
    fconn *c = calloc(cap, sizeof *c);
    struct pollfd *p = calloc(cap, sizeof *p);
    size_t n = 0;
    long opened = 0, closed_idle = 0, garbage_sent = 0, connect_failed = 0, peak = 0;
    int64_t start = now_ms(), end = start + (int64_t)g_seconds * 1000;
    unsigned seed = 4369;
    int src = 0;
    uint8_t junk[256];
    while (now_ms() < end) {
        int64_t t = now_ms() - start;
        /* Top up, within the rates so far. */
        long want_total = (long)(t * g_rate / 1000) + 1;
        long want_garbage = (long)(t * g_garbage / 1000) + 1;
        long idle_now = 0;
        for (size_t i = 0; i < n; i++) idle_now += c[i].kind == IDLE;
        while (opened < want_total && n < cap) {
            int kind;
            if (garbage_sent < want_garbage)
                kind = GARBAGE;
            else if (idle_now < g_idle)
                kind = IDLE;
            else
                break;
            int fd = connect_from(1 + src++ % g_sources);
            opened++;
            if (fd < 0) {
                connect_failed++;
                continue;
            }
            c[n].fd = fd;
            c[n].kind = kind;
            if (kind == GARBAGE) {
                /* Random bytes half the time, a plausible length the other half; or one byte
                 * of a length and then silence (it holds its connection like an idle one). */
                size_t len = 1 + (size_t)rand_r(&seed) % sizeof junk;
                for (size_t k = 0; k < len; k++) junk[k] = (uint8_t)rand_r(&seed);
                if (garbage_sent % 3 == 1) junk[0] = 0;
                if (garbage_sent % 3 == 2) len = 1, junk[0] = 0;
                /* The connect may still be in progress: MSG_DONTWAIT, a lost send is fine. */
                send(fd, junk, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                garbage_sent++;
            } else {
                idle_now++;
            }
            n++;
        }
        if ((long)n > peak) peak = (long)n;
        for (size_t i = 0; i < n; i++) p[i] = (struct pollfd){.fd = c[i].fd, .events = POLLIN};
        if (poll(p, n, 5) <= 0) continue;
        /* Whatever epmd closed (or answered and closed) is gone: drop it, reconnect later. */
        for (size_t i = n; i-- > 0;) {
            if (!p[i].revents) continue;
            char b[512];
            ssize_t r = recv(c[i].fd, b, sizeof b, MSG_DONTWAIT);
            if (r > 0) continue; /* an answer: wait for its end */
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (c[i].kind == IDLE) closed_idle++;
            close(c[i].fd);
            c[i] = c[--n];
            p[i] = p[n];
        }
    }
    atomic_store(&g_stop, 1);
    pthread_join(th, NULL);
    for (size_t i = 0; i < n; i++) close(c[i].fd);
    for (int i = 0; i < nreg; i++) epmd_unregister(&regs[i]);
    printf("flood: seconds=%d opened=%ld connect_failed=%ld peak_held=%ld "
           "idle_closed_by_epmd=%ld garbage=%ld\n",
           g_seconds, opened, connect_failed, peak, closed_idle, garbage_sent);
    printf("honest: lookups=%ld failed=%ld over_%dms=%ld max_ms=%lld mean_ms=%.1f\n", hl.ok,
           hl.failed, g_max_ms, hl.over, (long long)hl.max_ms,
           hl.ok + hl.failed ? (double)hl.sum_ms / (double)(hl.ok + hl.failed) : 0.0);
    free(c);
    free(p);
    free(regs);
    return hl.failed == 0 && hl.over == 0 && hl.ok > 0 ? 0 : 1;
}
