/* Cross-architecture smoke test (no cmocka): context switches, a ring, spawn/exit, stack
** overflow, links and a server call. Run by run-aarch64.sh under qemu-user. */
#include <girder/node.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "smoke: check failed at line %d: %s\n", __LINE__, #c); \
            exit(1);                                                               \
        }                                                                          \
    } while (0)

static void node_loop(void *arg)
{
    term_t next = (term_t)(uintptr_t)arg;
    for (;;) {
        term_t m;
        CHECK(nd_receive(5000, &m) == 0);
        int64_t k = term_small_value(m);
        nd_send(next, term_int(k > 0 ? k - 1 : 0));
        if (k == 0) break;
    }
    term_free(next);
}

static volatile int sink;
static int recurse(int n)
{
    volatile char buf[512];
    buf[0] = (char)n;
    sink = buf[0];
    return n == 0 ? 0 : recurse(n - 1) + buf[0];
}

static void overflow(void *arg)
{
    recurse(1 << 30);
}

static void nothing(void *arg) {}

static int echo_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    *reply = term_dup(req);
    return ND_REPLY;
}
static const nd_server_ops echo = {NULL, echo_call, NULL, NULL, NULL};

static void body(void *arg)
{
    /* ring: 100 processes x 100 laps */
    term_t next = term_dup(nd_self()), first, m, pid, ref;
    for (int i = 0; i < 99; i++) {
        CHECK(nd_spawn(node_loop, (void *)(uintptr_t)next, NULL, &pid) == 0);
        next = pid;
    }
    first = next;
    nd_send(first, term_int(100 * 100 - 1));
    for (;;) {
        CHECK(nd_receive(5000, &m) == 0);
        int64_t k = term_small_value(m);
        if (k == 0) break;
        nd_send(first, term_int(k - 1));
    }
    term_free(first);
    /* spawn + exit */
    for (int i = 0; i < 10000; i++) CHECK(nd_spawn(nothing, NULL, NULL, NULL) == 0);
    /* stack overflow kills one process */
    CHECK(nd_spawn_monitor(overflow, NULL, &pid, &ref) == 0);
    CHECK(nd_receive(10000, &m) == 0);
    CHECK(term_tuple_elem(m, 4) == term_atom("stack_overflow"));
    term_free(m);
    term_free(pid);
    term_free(ref);
    /* links */
    nd_trap_exit(true);
    CHECK(nd_spawn_link(nothing, NULL, &pid) == 0);
    CHECK(nd_receive(5000, &m) == 0);
    CHECK(term_tuple_elem(m, 0) == term_atom("EXIT"));
    term_free(m);
    term_free(pid);
    /* a server call (stackless server) */
    CHECK(nd_server_start(&echo, NULL, NULL, &pid, NULL) == 0);
    for (int i = 0; i < 1000; i++) {
        CHECK(nd_call(pid, term_int(i), 5000, &m) == 0);
        CHECK(term_small_value(m) == i);
    }
    CHECK(nd_server_stop(pid, term_atom("normal"), 5000) == 0);
    term_free(pid);
}

int main(void)
{
    nd_config c = {0};
    c.schedulers = 2;
    CHECK(nd_init(&c) == 0);
    term_t reason;
    CHECK(nd_run(body, NULL, 60000, &reason) == 0);
    CHECK(reason == term_atom("normal"));
    CHECK(nd_shutdown(5000) == 0);
    puts("smoke: ok");
    return 0;
}
