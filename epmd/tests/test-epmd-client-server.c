/* Unit tests: the epmd client library against an in-process server on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <girder/epmd_uv.h>
#include <cmocka.h>

#include "epmd_int.h"

#define T_MS 5000

/* A server running its own loop on a thread; the test thread talks to it over loopback. */
typedef struct srv {
    uv_thread_t thread;
    uv_sem_t ready;
    uv_loop_t loop;
    uv_async_t stop;
    epmd__server s;
    int relaxed;
    size_t max_conns;
    uint16_t port;
    int start_err;
} srv;

static void on_server_closed(epmd__server *s)
{
    srv *v = (srv *)((char *)s - offsetof(srv, s));
    uv_close((uv_handle_t *)&v->stop, NULL);
}

static void on_stop(uv_async_t *a)
{
    srv *v = a->data;
    epmd__server_close(&v->s, on_server_closed);
}

static void server_thread(void *arg)
{
    srv *v = arg;
    uv_loop_init(&v->loop);
    uv_async_init(&v->loop, &v->stop, on_stop);
    v->stop.data = v;
    epmd__server_config cfg = {.port = 0,
                               .addresses = "127.0.0.1",
                               .relaxed = v->relaxed,
                               .packet_timeout_s = 2,
                               .max_conns = v->max_conns ? v->max_conns : 100};
    v->start_err = epmd__server_start(&v->s, &v->loop, &cfg);
    v->port = v->s.bound_port;
    v->s.close_cb = on_server_closed; /* KILL closes the server: release the async too */
    if (v->start_err) uv_close((uv_handle_t *)&v->stop, NULL);
    uv_sem_post(&v->ready);
    uv_run(&v->loop, UV_RUN_DEFAULT);
    uv_loop_close(&v->loop);
}

static srv *server_start_max(int relaxed, size_t max_conns)
{
    srv *v = calloc(1, sizeof *v);
    v->relaxed = relaxed;
    v->max_conns = max_conns;
    uv_sem_init(&v->ready, 0);
    uv_thread_create(&v->thread, server_thread, v);
    uv_sem_wait(&v->ready);
    assert_int_equal(v->start_err, 0);
    assert_true(v->port > 0);
    return v;
}

static srv *server_start(int relaxed)
{
    return server_start_max(relaxed, 0);
}

static void server_join(srv *v)
{
    uv_thread_join(&v->thread);
    uv_sem_destroy(&v->ready);
    free(v);
}

static void server_stop(srv *v)
{
    uv_async_send(&v->stop);
    server_join(v);
}

/* Waits (bounded) until `name` is registered (want 1) or not (want 0). */
static int wait_name(uint16_t port, const char *name, int want)
{
    for (int i = 0; i < 200; i++) {
        epmd_node_info info;
        int r = epmd_port_please(NULL, port, name, T_MS, &info);
        if ((r == 0) == want) return 1;
        usleep(10000);
    }
    return 0;
}

static void test_register_lookup_names(void **state)
{
    srv *v = server_start(0);
    epmd_node_info n;
    epmd_node_info_init(&n, "alpha", 7001);
    memcpy(n.extra, "\1\2", 2);
    n.extra_len = 2;
    epmd_registration reg;
    assert_int_equal(epmd_register(NULL, v->port, &n, T_MS, &reg), 0);
    assert_true(reg.fd >= 0);
    assert_int_equal(reg.extended, 1);
    assert_true(reg.creation >= 4);
    assert_int_equal(epmd_registration_check(&reg), 0);

    epmd_node_info got;
    assert_int_equal(epmd_port_please("127.0.0.1", v->port, "alpha", T_MS, &got), 0);
    assert_int_equal(got.port, 7001);
    assert_string_equal(got.name, "alpha");
    assert_int_equal(got.highest_version, 6);
    assert_int_equal(got.extra_len, 2);
    assert_memory_equal(got.extra, "\1\2", 2);
    assert_int_equal(epmd_port_please(NULL, v->port, "nobody", T_MS, &got), EPMD_ENOENT);

    /* A second registration of the name is refused while the first lives. */
    epmd_registration dup;
    assert_int_equal(epmd_register(NULL, v->port, &n, T_MS, &dup), EPMD_EEXIST);
    assert_int_equal(dup.fd, -1);

    epmd_node_info_init(&n, "beta", 7002);
    n.highest_version = 5;
    n.lowest_version = 5;
    epmd_registration reg2;
    assert_int_equal(epmd_register(NULL, v->port, &n, T_MS, &reg2), 0);
    assert_int_equal(reg2.extended, 0);
    assert_true(reg2.creation >= 1 && reg2.creation <= 3);

    epmd_name_list names;
    assert_int_equal(epmd_names(NULL, v->port, T_MS, &names), 0);
    assert_int_equal(names.epmd_port, v->port);
    assert_int_equal(names.count, 2);
    assert_string_equal(names.entries[0].name, "beta");
    assert_int_equal(names.entries[0].port, 7002);
    assert_string_equal(names.entries[1].name, "alpha");
    assert_string_equal(names.text, "name beta at port 7002\nname alpha at port 7001\n");
    epmd_names_free(&names);

    /* Closing the connection ends the registration; the name can be taken again. */
    uint32_t c1 = reg.creation;
    epmd_unregister(&reg);
    epmd_unregister(&reg);
    assert_true(wait_name(v->port, "alpha", 0));
    epmd_node_info_init(&n, "alpha", 7003);
    assert_int_equal(epmd_register(NULL, v->port, &n, T_MS, &reg), 0);
    assert_int_equal(reg.creation, c1 + 1);

    /* Not relaxed: KILL is refused with live nodes, STOP silently. */
    assert_int_equal(epmd_kill(NULL, v->port, T_MS), EPMD_EPERM);
    assert_int_equal(epmd_stop(NULL, v->port, "alpha", T_MS), EPMD_ECONNRESET);

    char *dump;
    size_t dlen;
    uint32_t dport;
    assert_int_equal(epmd_dump(NULL, v->port, T_MS, &dport, &dump, &dlen), 0);
    assert_int_equal(dport, v->port);
    assert_non_null(strstr(dump, "active name     <alpha> at port 7003"));
    free(dump);

    epmd_unregister(&reg);
    epmd_unregister(&reg2);
    assert_true(wait_name(v->port, "beta", 0));
    /* No live nodes: KILL is obeyed and the server loop ends. */
    assert_int_equal(epmd_kill(NULL, v->port, T_MS), 0);
    server_join(v);
}

static void test_relaxed_stop(void **state)
{
    srv *v = server_start(1);
    epmd_node_info n;
    epmd_node_info_init(&n, "victim", 7100);
    epmd_registration reg;
    assert_int_equal(epmd_register(NULL, v->port, &n, T_MS, &reg), 0);
    assert_int_equal(epmd_stop(NULL, v->port, "victim", T_MS), 0);
    assert_int_equal(epmd_stop(NULL, v->port, "victim", T_MS), EPMD_ENOENT);
    /* The victim's connection was closed by epmd. */
    int gone = 0;
    for (int i = 0; i < 200 && !gone; i++) {
        gone = epmd_registration_check(&reg) == EPMD_ECONNRESET;
        if (!gone) usleep(10000);
    }
    assert_true(gone);
    epmd_unregister(&reg);
    /* Relaxed: KILL is obeyed even with live nodes. */
    assert_int_equal(epmd_register(NULL, v->port, &n, T_MS, &reg), 0);
    assert_int_equal(epmd_kill(NULL, v->port, T_MS), 0);
    server_join(v);
    epmd_unregister(&reg);
}

static void test_errors_and_timeouts(void **state)
{
    /* A listener that never accepts nor answers: every call times out, on time. */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 8), 0);
    socklen_t al = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &al);
    uint16_t port = ntohs(a.sin_port);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    epmd_node_info info;
    assert_int_equal(epmd_port_please(NULL, port, "x", 200, &info), EPMD_ETIMEDOUT);
    epmd_node_info_init(&info, "x", 1);
    epmd_registration reg;
    assert_int_equal(epmd_register(NULL, port, &info, 200, &reg), EPMD_ETIMEDOUT);
    assert_int_equal(reg.fd, -1);
    epmd_name_list names;
    assert_int_equal(epmd_names(NULL, port, 200, &names), EPMD_ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= 550 && ms < 3000);
    close(l);
    /* Nothing listening any more. */
    assert_int_equal(epmd_port_please(NULL, port, "x", 1000, &info), EPMD_ECONNREFUSED);
    assert_int_equal(epmd_port_please(NULL, port, "", 1000, &info), EPMD_EINVAL);
}

static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void test_connection_limit(void **state)
{
    srv *v = server_start_max(0, 3);
    int fds[3];
    for (int i = 0; i < 3; i++) fds[i] = raw_connect(v->port);
    usleep(100000);
    /* Over the limit: accepted and closed at once, without an answer. */
    epmd_node_info info;
    assert_int_equal(epmd_port_please(NULL, v->port, "x", T_MS, &info), EPMD_ECONNRESET);
    /* One silent client leaves: service resumes. */
    close(fds[0]);
    int ok = 0;
    for (int i = 0; i < 200 && !ok; i++) {
        ok = epmd_port_please(NULL, v->port, "x", T_MS, &info) == EPMD_ENOENT;
        if (!ok) usleep(10000);
    }
    assert_true(ok);
    close(fds[1]);
    close(fds[2]);
    server_stop(v);
}

/* ---- libuv registration ---- */

typedef struct uvt {
    int calls;
    int status[4];
    int closed;
} uvt;

static void on_reg(epmd_uv_registration *r, int status)
{
    uvt *t = r->data;
    if (t->calls < 4) t->status[t->calls] = status;
    t->calls++;
}

static void on_reg_closed(epmd_uv_registration *r)
{
    ((uvt *)r->data)->closed = 1;
}

static void run_until(uv_loop_t *loop, int *flag, int value)
{
    for (int i = 0; i < 500 && *flag < value; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(2000);
    }
}

static void test_uv_register(void **state)
{
    srv *v = server_start(1);
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", v->port, &addr);
    epmd_node_info n;
    epmd_node_info_init(&n, "async", 7200);
    static epmd_uv_registration reg;
    uvt t = {0};
    reg.data = &t;
    assert_int_equal(epmd_uv_register(&loop, &reg, (struct sockaddr *)&addr, &n, T_MS, on_reg), 0);
    run_until(&loop, &t.calls, 1);
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.status[0], 0);
    assert_int_equal(reg.extended, 1);
    assert_true(reg.creation >= 4);
    assert_true(wait_name(v->port, "async", 1));
    /* epmd drops it (STOP): the callback says so. */
    assert_int_equal(epmd_stop(NULL, v->port, "async", T_MS), 0);
    run_until(&loop, &t.calls, 2);
    assert_int_equal(t.calls, 2);
    assert_int_equal(t.status[1], EPMD_ECONNRESET);
    epmd_uv_unregister(&reg, on_reg_closed);
    run_until(&loop, &t.closed, 1);
    assert_int_equal(t.closed, 1);

    /* Register, then unregister ourselves: the name goes away. */
    uvt t2 = {0};
    reg.data = &t2;
    assert_int_equal(epmd_uv_register(&loop, &reg, (struct sockaddr *)&addr, &n, T_MS, on_reg), 0);
    run_until(&loop, &t2.calls, 1);
    assert_int_equal(t2.status[0], 0);
    epmd_uv_unregister(&reg, on_reg_closed);
    run_until(&loop, &t2.closed, 1);
    assert_int_equal(t2.calls, 1);
    assert_true(wait_name(v->port, "async", 0));

    /* Refused connection reported through the callback. */
    server_stop(v);
    uvt t3 = {0};
    reg.data = &t3;
    assert_int_equal(epmd_uv_register(&loop, &reg, (struct sockaddr *)&addr, &n, T_MS, on_reg), 0);
    run_until(&loop, &t3.calls, 1);
    assert_int_equal(t3.calls, 1);
    assert_int_equal(t3.status[0], UV_ECONNREFUSED);
    epmd_uv_unregister(&reg, on_reg_closed);
    run_until(&loop, &t3.closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_lookup_names), cmocka_unit_test(test_relaxed_stop),
        cmocka_unit_test(test_errors_and_timeouts),   cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_uv_register),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
