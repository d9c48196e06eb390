/* Tests: metrics snapshots — scheduler time split, message counters, processes, memory. */
#include "nd_test.h"
#include <girder/node_obs.h>
#include <stdatomic.h>
#include <time.h>

static nd_metrics snap(void)
{
    nd_metrics m;
    assert_int_equal(nd_metrics_get(&m), 0);
    assert_int_equal(m.schedulers, 2);
    return m;
}

static uint64_t total_ns(const nd_sched_metrics *s)
{
    return s->running_ns + s->spinning_ns + s->idle_ns;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------- time split */

static void hog(void *arg)
{
    (void)arg;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 300);
}

static void test_time_split(void **state)
{
    nd_metrics a = snap();
    /* every nanosecond of a scheduler's life is in exactly one state */
    for (unsigned i = 0; i < 2; i++) {
        assert_true(total_ns(&a.sched[i]) <= a.uptime_ns);
        assert_true(total_ns(&a.sched[i]) + 100000000u >= a.uptime_ns);
    }
    /* nothing to run: both schedulers park */
    sleep_ms(300);
    nd_metrics b = snap();
    for (unsigned i = 0; i < 2; i++) {
        uint64_t idle = b.sched[i].idle_ns - a.sched[i].idle_ns;
        uint64_t run = b.sched[i].running_ns - a.sched[i].running_ns;
        assert_true(idle >= 200000000u);
        assert_true(run < 50000000u);
        assert_true(total_ns(&b.sched[i]) + 100000000u >= b.uptime_ns);
    }
    /* a process that runs 300 ms: its scheduler is running that long */
    term_t reason;
    assert_int_equal(nd_run(hog, NULL, ND_TEST_TIMEOUT_MS, &reason), 0);
    nd_metrics c = snap();
    uint64_t run0 = c.sched[0].running_ns - b.sched[0].running_ns;
    uint64_t run1 = c.sched[1].running_ns - b.sched[1].running_ns;
    assert_true(run0 + run1 >= 280000000u);
    assert_true((run0 > run1 ? run0 : run1) >= 280000000u);
    for (unsigned i = 0; i < 2; i++) {
        assert_true(total_ns(&c.sched[i]) <= c.uptime_ns);
        assert_true(c.sched[i].run_queue <= 256);
    }
    fprintf(stderr,
            "sched0 run=%llu spin=%llu idle=%llu ms; sched1 run=%llu spin=%llu idle=%llu ms\n",
            (unsigned long long)c.sched[0].running_ns / 1000000,
            (unsigned long long)c.sched[0].spinning_ns / 1000000,
            (unsigned long long)c.sched[0].idle_ns / 1000000,
            (unsigned long long)c.sched[1].running_ns / 1000000,
            (unsigned long long)c.sched[1].spinning_ns / 1000000,
            (unsigned long long)c.sched[1].idle_ns / 1000000);
    nd_metrics_free(&a);
    nd_metrics_free(&b);
    nd_metrics_free(&c);
}

/* ---------------------------------------------------------------- messages */

static bool never(term_t m, void *ud)
{
    (void)m;
    (void)ud;
    return false;
}

static void sink(void *arg)
{
    (void)arg;
    term_t m;
    nd_receive_if(never, NULL, ND_INFINITY, &m);
}

static void consumer(void *arg)
{
    term_t parent = (term_t)(uintptr_t)arg;
    for (int i = 0; i < 1000; i++) {
        term_t m;
        assert_int_equal(nd_receive(10000, &m), 0);
        term_free(m);
    }
    nd_send(parent, A("done"));
}

static void body_messages(void *arg)
{
    (void)arg;
    nd_metrics a = snap();
    term_t c;
    assert_int_equal(nd_spawn(consumer, (void *)(uintptr_t)nd_self(), NULL, &c), 0);
    for (int i = 0; i < 1000; i++) nd_send(c, T2(A("m"), I(i)));
    term_t m = nd_test_recv(10000);
    assert_true(m == A("done"));
    nd_metrics b = snap();
    /* 1000 to the consumer and its 'done'; all taken */
    assert_int_equal(b.messages_sent - a.messages_sent, 1001);
    assert_int_equal(b.messages_received - a.messages_received, 1001);
    assert_int_equal(b.messages_queued, a.messages_queued);
    /* messages left waiting: counted as queued, and no more once their process is gone */
    term_t s, ref;
    assert_int_equal(nd_spawn(sink, NULL, NULL, &s), 0);
    for (int i = 0; i < 500; i++) nd_send(s, I(i));
    nd_metrics c2 = snap();
    assert_int_equal(c2.messages_queued - b.messages_queued, 500);
    assert_int_equal(c2.memory.mailboxes - b.memory.mailboxes, 500 * 24);
    assert_int_equal(nd_monitor(s, &ref), 0);
    nd_exit_signal(s, A("kill"));
    term_free(nd_test_recv(10000)); /* DOWN */
    nd_metrics d = snap();
    assert_int_equal(d.messages_queued, b.messages_queued);
    assert_int_equal(d.messages_received - c2.messages_received, 1);
    assert_true(d.spawns - a.spawns == 2 && d.exits - a.exits >= 1);
    assert_true(d.processes >= 1 && d.process_limit == 4194304);
    assert_true(d.memory.process_table >= 1024 * 300);
    assert_true(d.memory.stacks > 0);
    assert_true(d.memory.rss > 0);
    assert_int_equal(d.memory.trace, 0);
    assert_int_equal(nd_trace_start(NULL), 0);
    nd_metrics e = snap();
    assert_true(e.memory.trace >= 3 * 65536 * sizeof(nd_event));
    assert_int_equal(nd_trace_stop(), 0);
    nd_metrics_free(&a);
    nd_metrics_free(&b);
    nd_metrics_free(&c2);
    nd_metrics_free(&d);
    nd_metrics_free(&e);
    term_free(ref);
    term_free(s);
    term_free(c);
}

static void test_messages(void **state)
{
    nd_test_run(body_messages, NULL, "normal");
}

static void test_not_running(void **state)
{
    (void)state;
    nd_metrics m;
    assert_int_equal(nd_metrics_get(&m), ND_ESTATE);
    assert_int_equal(nd_trace_start(NULL), ND_ESTATE);
    nd_event e;
    assert_int_equal(nd_trace_drain(&e, 1), 0);
    nd_metrics_free(&m); /* safe after an error */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_time_split, nd_test_setup, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_messages, nd_test_setup, nd_test_teardown),
        cmocka_unit_test(test_not_running),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
