/* A connection that never finishes its handshake: its senders are held back (busy) once the
 * messages waiting for it pass the busy limit, instead of piling up without bound. */
#include <girder/dist.h>
#include <girder/node.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define MSG_BYTES (1u << 20) /* each message a fresh 1 MiB binary */
#define MSGS      64         /* 64 MiB if nothing held the sender back */
#define BUSY_MIB  8          /* dist's busy limit (outq.c) */

static atomic_int sent, busy_lines;
static atomic_bool quit;
static uint16_t stall_port;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* A listening socket on loopback (backlog only: the kernel completes TCP, nobody answers). */
static int listener(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t l = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A port mapper that answers every PORT_PLEASE2_REQ with the stalling listener's port. */
static void *fake_epmd(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) return NULL;
        uint8_t req[300];
        ssize_t n = recv(fd, req, sizeof req, 0);
        if (n >= 3 && req[2] == 122) {
            static const char name[] = "s";
            uint8_t r[32];
            size_t k = 0;
            r[k++] = 119; /* PORT2_RESP */
            r[k++] = 0;
            r[k++] = (uint8_t)(stall_port >> 8);
            r[k++] = (uint8_t)stall_port;
            r[k++] = 77; /* normal node */
            r[k++] = 0;  /* TCP */
            r[k++] = 0, r[k++] = 6, r[k++] = 0, r[k++] = 5;
            r[k++] = 0, r[k++] = (uint8_t)strlen(name);
            memcpy(r + k, name, strlen(name));
            k += strlen(name);
            r[k++] = 0, r[k++] = 0;
            if (send(fd, r, k, MSG_NOSIGNAL) < 0) { /* the client went away: fine */
            }
        }
        close(fd);
    }
}

static void on_log(void *ud, int level, const char *line)
{
    (void)ud;
    (void)level;
    if (strstr(line, "event=busy_dist_port node=s@127.0.0.1")) atomic_fetch_add(&busy_lines, 1);
}

static void flooder(void *arg)
{
    (void)arg;
    term_t to = term_tuplev(2, term_atom("sink"), term_atom("s@127.0.0.1"));
    uint8_t *buf = malloc(MSG_BYTES);
    assert_non_null(buf);
    for (int i = 0; i < MSGS && !atomic_load(&quit); i++) {
        memset(buf, i, MSG_BYTES);
        nd_send(to, term_binary(buf, MSG_BYTES));
        atomic_fetch_add(&sent, 1);
    }
    free(buf);
    term_free(to);
}

static void test_pending_senders_held_back(void **s)
{
    (void)s;
    int stall = listener(&stall_port);
    uint16_t epmd_port;
    int efd = listener(&epmd_port);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fake_epmd, (void *)(intptr_t)efd), 0);

    nd_config nc = {0};
    nc.schedulers = 2;
    assert_int_equal(nd_init(&nc), 0);
    dist_config dc = {0};
    dc.name = "flood@127.0.0.1";
    dc.cookie = "c";
    dc.longnames = true;
    dc.no_epmd = true;
    dc.epmd_port = epmd_port;
    dc.listen_addr = "127.0.0.1";
    dc.handshake_timeout_ms = 4000;
    dc.log = on_log;
    assert_int_equal(dist_start(&dc), 0);

    assert_int_equal(nd_spawn(flooder, NULL, NULL, NULL), 0);
    sleep_ms(1500); /* the handshake is still pending: s's kernel holds the TCP connection */
    int n = atomic_load(&sent);
    fprintf(stderr, "sent while pending: %d of %d (1 MiB each)\n", n, MSGS);
    assert_true(n >= BUSY_MIB);     /* up to the limit, senders are not held */
    assert_true(n <= BUSY_MIB + 2); /* past it, they wait */
    assert_int_equal(atomic_load(&busy_lines), 1);

    /* the flooder sleeps inside dist's gate and may leave it on the other scheduler thread:
    ** dist_stop must still find the gate empty */
    atomic_store(&quit, true);
    assert_int_equal(dist_stop(10000), 0);
    assert_int_equal(nd_shutdown(10000), 0);
    shutdown(efd, SHUT_RDWR);
    close(efd);
    pthread_join(th, NULL);
    close(stall);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pending_senders_held_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
