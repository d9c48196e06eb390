/* dist-probe: a hostile distribution peer for tests — bad handshakes, bad frames, atom floods. */
#include "dist_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <girder/epmd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static int connect_port(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(2);
    }
    return fd;
}

static void send_all(int fd, const void *d, size_t n)
{
    const uint8_t *p = d;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return; /* the node may close on us: that is what we test */
        p += w;
        n -= (size_t)w;
    }
}

/* Waits up to ms for the peer to close: 1 closed, 0 still open. Discards what it sends. */
static int closed_within(int fd, int ms)
{
    uint8_t buf[4096];
    for (int left = ms; left > 0; left -= 50) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) > 0) {
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) return 1;
        }
    }
    return 0;
}

static uint32_t probe_rand(void *ud)
{
    (void)ud;
    return (uint32_t)random();
}

/* Runs our half of the handshake over fd (blocking); 0 when up. */
static int handshake(int fd, const char *me, const char *peer, const char *cookie)
{
    static dist_hs hs;
    dist__hs_init(&hs, HS_INITIATOR, me, DIST_OUR_FLAGS | DFLAG_PUBLISHED, 7, cookie);
    hs.rand32 = probe_rand;
    dist__hs_start(&hs, peer, 6);
    for (;;) {
        if (hs.out_len) {
            send_all(fd, hs.out, hs.out_len);
            hs.out_len = 0;
        }
        uint8_t b[4096];
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r <= 0) return -1;
        size_t used;
        int rc = dist__hs_feed(&hs, b, (size_t)r, &used);
        if (hs.out_len) {
            send_all(fd, hs.out, hs.out_len);
            hs.out_len = 0;
        }
        if (rc == HS_DONE) return 0;
        if (rc == HS_FAIL) {
            fprintf(stderr, "probe: handshake failed: %s\n", hs.why);
            return -1;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr,
                "usage: dist-probe MODE NODE COOKIE EPMD_PORT\n"
                "  modes: hold garbage-pre wrong-cookie oversize garbage-post atoms atoms-keep "
                "halfopen "
                "slow bomb\n"
                "  env: PROBE_NAME (our alive name), PROBE_ATOMS, PROBE_TAG (atoms modes),\n"
                "       PROBE_WAIT_MS (how long the node may take to close; default 5000)\n");
        return 2;
    }
    const char *mode = argv[1], *node = argv[2], *cookie = argv[3];
    uint16_t eport = (uint16_t)atoi(argv[4]);
    char alive[256];
    snprintf(alive, sizeof alive, "%.*s", (int)(strchr(node, '@') - node), node);
    char me[300];
    /* PROBE_NAME: the alive part of our name (a peer that reconnects under one name) */
    const char *pname = getenv("PROBE_NAME");
    if (pname)
        snprintf(me, sizeof me, "%s@%s", pname, strchr(node, '@') + 1);
    else
        snprintf(me, sizeof me, "probe%d@%s", (int)getpid(), strchr(node, '@') + 1);
    epmd_node_info info;
    if (epmd_port_please("127.0.0.1", eport, alive, 3000, &info) != 0) {
        fprintf(stderr, "probe: no port for %s\n", alive);
        return 2;
    }
    if (!strcmp(mode, "hold")) {
        /* PROBE_CONNS connections that never say a word, held PROBE_HOLD seconds; prints how
        ** many the node has closed by then (evicted or timed out) */
        int n = getenv("PROBE_CONNS") ? atoi(getenv("PROBE_CONNS")) : 600;
        int hold = getenv("PROBE_HOLD") ? atoi(getenv("PROBE_HOLD")) : 10;
        int *fds = calloc((size_t)n, sizeof *fds);
        if (!fds) return 2;
        for (int i = 0; i < n; i++) fds[i] = connect_port(info.port);
        printf("hold: %d connections open\n", n);
        fflush(stdout);
        sleep((unsigned)hold);
        int gone = 0;
        for (int i = 0; i < n; i++) {
            uint8_t b;
            gone += recv(fds[i], &b, 1, MSG_DONTWAIT) == 0;
            close(fds[i]);
        }
        printf("hold: %d of %d closed by the node\n", gone, n);
        free(fds);
        return 0;
    }
    int fd = connect_port(info.port);
    int closed = 0;
    if (!strcmp(mode, "garbage-pre")) {
        uint8_t junk[64];
        for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 37 + 11);
        junk[0] = 0;
        junk[1] = 40; /* a packet of 40 bytes that is no name message */
        send_all(fd, junk, sizeof junk);
        closed = closed_within(fd, 3000);
    } else if (!strcmp(mode, "wrong-cookie")) {
        closed = handshake(fd, me, node, "not-the-cookie") != 0 && closed_within(fd, 3000);
    } else if (!strcmp(mode, "halfopen")) {
        closed = closed_within(fd, 15000);
    } else if (!strcmp(mode, "slow")) {
        static const uint8_t name[] = {0, 20, 'N', 0, 0, 0, 0, 0, 0, 0, 0};
        for (size_t i = 0; i < sizeof name && !closed; i++) {
            send_all(fd, name + i, 1);
            closed = closed_within(fd, 1000);
        }
        if (!closed) closed = closed_within(fd, 15000);
    } else {
        if (handshake(fd, me, node, cookie) != 0) {
            fprintf(stderr, "probe: handshake failed\n");
            return 1;
        }
        if (!strcmp(mode, "oversize")) {
            static const uint8_t big[] = {0x7f, 0xff, 0xff, 0xff, 131, 68, 0};
            send_all(fd, big, sizeof big);
        } else if (!strcmp(mode, "garbage-post")) {
            static const uint8_t bad[] = {0, 0, 0, 6, 131, 68, 0, 104, 9, 97};
            send_all(fd, bad, sizeof bad);
        } else if (!strcmp(mode, "atoms") || !strcmp(mode, "atoms-keep")) {
            /* REG_SEND to 'nobody' with a fresh atom each time (PROBE_ATOMS of them, default
            ** 400000; names unique per PROBE_TAG, default the pid). atoms: the node must close
            ** the connection; atoms-keep: it must keep it open (foreign atoms) */
            const char *ns = getenv("PROBE_ATOMS"), *tag = getenv("PROBE_TAG");
            unsigned count = ns ? (unsigned)strtoul(ns, NULL, 10) : 400000;
            char tagbuf[32];
            if (!tag) snprintf(tagbuf, sizeof tagbuf, "%u", (unsigned)getpid()), tag = tagbuf;
            term_t ctl = term_tuplev(4, term_small(DOP_REG_SEND), term_pid(term_atom(me), 1, 0, 7),
                                     term_atom(""), term_atom("nobody"));
            etf_buf c = {0};
            etf_encode(ctl, ETF_ENC_NO_VERSION | ETF_ENC_UTF8_ATOMS, &c);
            uint8_t *frame = malloc(4 + 3 + c.len + 2 + 300);
            unsigned i;
            for (i = 0; i < count && !closed; i++) {
                char a[256];
                int an = snprintf(a, sizeof a, "flood_%.200s_%u", tag, i);
                size_t n = 0;
                frame[4 + n++] = 131;
                frame[4 + n++] = 68;
                frame[4 + n++] = 0;
                memcpy(frame + 4 + n, c.data, c.len);
                n += c.len;
                frame[4 + n++] = 119;
                frame[4 + n++] = (uint8_t)an;
                memcpy(frame + 4 + n, a, (size_t)an);
                n += (size_t)an;
                girder__put32(frame, (uint32_t)n);
                send_all(fd, frame, 4 + n);
                if (i % 10000 == 9999) closed = closed_within(fd, 1);
            }
            fprintf(stderr, "probe: %s sent %u new atoms\n", me, i);
            free(frame);
            etf_buf_free(&c);
            term_free(ctl);
            if (!strcmp(mode, "atoms-keep")) {
                /* the node must still be there for us: nothing closes within 2 s */
                closed = closed || closed_within(fd, 2000);
                close(fd);
                printf("%s: %s\n", mode, closed ? "closed" : "still open");
                return closed ? 1 : 0;
            }
        } else if (!strcmp(mode, "frags")) {
            /* first fragments of ever new sequences, 5 MiB each, none ever completed: the node
            ** must close the connection once they hold more than max_message together */
            size_t chunk = (size_t)5 << 20;
            uint8_t *frame = calloc(1, 4 + 19 + chunk);
            girder__put32(frame, (uint32_t)(19 + chunk));
            frame[4] = 131;
            frame[5] = 69;
            unsigned n = 0;
            for (uint64_t seq = 1; seq <= 200 && !closed; seq++, n++) {
                girder__put64(frame + 6, seq);
                girder__put64(frame + 14, 1000); /* the first of 1000 fragments */
                frame[22] = 0;                   /* no atom cache references */
                send_all(fd, frame, 4 + 19 + chunk);
                closed = closed_within(fd, 1);
            }
            fprintf(stderr, "probe: sent %u first fragments of 5 MiB\n", n);
            free(frame);
        } else if (!strcmp(mode, "bomb")) {
            /* REG_SEND to 'nobody' whose payload is a compressed term of 65 KB that inflates to
            ** 64 MiB of strings: 2 GB of list cells once decoded */
            size_t n = 1024, slen = 65535, ulen = 5 + n * (3 + slen) + 1;
            uint8_t *raw = malloc(ulen), *q = raw;
            *q++ = 108;
            *q++ = (uint8_t)(n >> 24), *q++ = (uint8_t)(n >> 16), *q++ = (uint8_t)(n >> 8),
            *q++ = (uint8_t)n;
            for (size_t i = 0; i < n; i++) {
                *q++ = 107, *q++ = (uint8_t)(slen >> 8), *q++ = (uint8_t)slen;
                memset(q, 'a', slen);
                q += slen;
            }
            *q++ = 106;
            uLongf zl = compressBound(ulen);
            uint8_t *z = malloc(zl);
            compress2(z, &zl, raw, ulen, 9);
            term_t ctl = term_tuplev(4, term_small(DOP_REG_SEND), term_pid(term_atom(me), 1, 0, 7),
                                     term_atom(""), term_atom("nobody"));
            etf_buf c = {0};
            etf_encode(ctl, ETF_ENC_NO_VERSION | ETF_ENC_UTF8_ATOMS, &c);
            size_t flen = 3 + c.len + 5 + zl;
            uint8_t *frame = malloc(4 + flen), *f = frame + 4;
            girder__put32(frame, (uint32_t)flen);
            *f++ = 131, *f++ = 68, *f++ = 0;
            memcpy(f, c.data, c.len);
            f += c.len;
            *f++ = 80;
            girder__put32(f, (uint32_t)ulen);
            memcpy(f + 4, z, zl);
            send_all(fd, frame, 4 + flen);
            fprintf(stderr, "probe: sent a %zu-byte bomb inflating to %zu bytes\n", flen, ulen);
            free(frame);
            free(z);
            free(raw);
            etf_buf_free(&c);
            term_free(ctl);
        } else {
            fprintf(stderr, "probe: unknown mode %s\n", mode);
            return 2;
        }
        /* PROBE_WAIT_MS: how long the node may take to close (sanitizer builds are slower) */
        const char *wait = getenv("PROBE_WAIT_MS");
        if (!closed) closed = closed_within(fd, wait ? atoi(wait) : 5000);
    }
    close(fd);
    printf("%s: %s\n", mode, closed ? "closed" : "still open");
    return closed ? 0 : 1;
}
