/* Unit tests of the TCP transport (tr_tcp.c) over loopback: the read budget per stream and loop
 * iteration. */
#include "transport.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define MiB (1024 * 1024)

/* What tr_tcp.c promises (READ_BUDGET there): one read takes at most 1 MiB, and a stream stops
** reading for the rest of a loop iteration once it has read 1 MiB in it; so one iteration reads
** at most the budget plus the read that crossed it. */
#define MAX_READ      (1 * MiB)
#define MAX_ITERATION (2 * MiB)

#define TOTAL     (64 * MiB) /* what the writer sends */
#define FRAME_BUF (8 * MiB)  /* the buffer offered for each read, as large as a big frame */

typedef struct state {
    dist_tr *tr;
    dist_tr_timer *mark; /* a 0 ms timer: fires once per loop iteration that read */
    bool marked;         /* mark is armed */
    uint8_t *buf;
    size_t total, max_read, in_iteration, max_iteration;
    unsigned reads, full_iterations; /* iterations that read a whole budget */
    bool done;
} state;

static void on_mark(void *ud)
{
    state *st = ud;
    st->marked = false;
    st->in_iteration = 0;
}

static void u_accepted(void *ud, dist_tr_stream *s)
{
    state *st = ud;
    st->tr->ops->stream_set_ud(s, st);
    assert_int_equal(st->tr->ops->read_start(s), 0);
}

static void u_alloc(void *ud, dist_tr_stream *s, uint8_t **buf, size_t *cap)
{
    state *st = ud;
    (void)s;
    *buf = st->buf;
    *cap = FRAME_BUF;
}

static void u_read(void *ud, dist_tr_stream *s, ssize_t n)
{
    state *st = ud;
    if (n < 0) { /* the writer closed: all of it came */
        st->done = true;
        st->tr->ops->close(s);
        st->tr->ops->timer_free(st->mark);
        st->tr->ops->shutdown(st->tr);
        return;
    }
    st->reads++;
    st->total += (size_t)n;
    if ((size_t)n > st->max_read) st->max_read = (size_t)n;
    bool crossed = st->in_iteration < MAX_READ && st->in_iteration + (size_t)n >= MAX_READ;
    st->in_iteration += (size_t)n;
    if (crossed) st->full_iterations++;
    if (st->in_iteration > st->max_iteration) st->max_iteration = st->in_iteration;
    if (!st->marked) {
        st->tr->ops->timer_start(st->mark, 0, 0);
        st->marked = true;
    }
    /* a slow reader: the writer fills the socket's buffers meanwhile, so each iteration finds
    ** megabytes waiting */
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
}

static void u_connected(void *ud, dist_tr_stream *s, int status, int version, const char *why)
{
    (void)ud, (void)s, (void)status, (void)version, (void)why;
}
static void u_written(void *ud, dist_tr_stream *s, int status, void *req)
{
    (void)ud, (void)s, (void)status, (void)req;
}
static void u_wake(void *ud)
{
    (void)ud;
}
static void u_published(void *ud, int status, uint32_t creation)
{
    (void)ud, (void)status, (void)creation;
}

static uint16_t port;

static void *writer(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("writer: connect");
        exit(1);
    }
    static uint8_t chunk[MiB];
    for (size_t sent = 0; sent < TOTAL;) {
        ssize_t w = write(fd, chunk, sizeof chunk);
        if (w <= 0) {
            perror("writer: write");
            exit(1);
        }
        sent += (size_t)w;
    }
    close(fd);
    return NULL;
}

/* A peer streaming as fast as it can, read into a frame-sized buffer: no read takes more than
** 1 MiB, no iteration more than the budget and one read; and the budget is reached (the test
** saw the backlog it is about). */
static void test_read_budget(void **unused)
{
    (void)unused;
    state st = {0};
    st.buf = malloc(FRAME_BUF);
    assert_non_null(st.buf);
    dist_tr_user u = {&st,    u_accepted, u_connected, u_alloc,
                      u_read, u_written,  u_wake,      u_published};
    st.tr = dist__tcp_new(&u, 0);
    assert_non_null(st.tr);
    assert_int_equal(st.tr->ops->listen(st.tr, "127.0.0.1", 0, &port), 0);
    st.mark = st.tr->ops->timer_new(st.tr, on_mark, &st);
    assert_non_null(st.mark);
    assert_int_equal(st.tr->ops->run(st.tr), 0);
    pthread_t w;
    assert_int_equal(pthread_create(&w, NULL, writer, NULL), 0);
    pthread_join(w, NULL);
    assert_int_equal(st.tr->ops->join(st.tr, 60000), 0);
    st.tr->ops->destroy(st.tr);
    free(st.buf);
    printf("reads %u, %zu bytes; largest read %zu, largest iteration %zu; %u iterations read "
           "the whole budget\n",
           st.reads, st.total, st.max_read, st.max_iteration, st.full_iterations);
    assert_true(st.done);
    assert_int_equal(st.total, TOTAL);
    assert_true(st.max_read <= MAX_READ);
    assert_true(st.max_iteration <= MAX_ITERATION);
    assert_true(st.full_iterations > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
