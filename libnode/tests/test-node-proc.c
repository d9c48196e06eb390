/* Tests: spawn, self, exit reasons, yield, hibernate, stack overflow, many processes. */
#include "nd_test.h"
#include <stdatomic.h>
#include <time.h>

static _Atomic int counter;

static void child_inc(void *arg)
{
    atomic_fetch_add(&counter, 1);
}

static void body_spawn_many(void *arg)
{
    for (int i = 0; i < 10000; i++) assert_int_equal(nd_spawn(child_inc, NULL, NULL, NULL), 0);
    for (int i = 0; i < ND_TEST_TIMEOUT_MS / 2 && atomic_load(&counter) < 10000; i++) nd_sleep(1);
    assert_int_equal(atomic_load(&counter), 10000);
}

static void test_spawn_many(void **state)
{
    atomic_store(&counter, 0);
    nd_test_run(body_spawn_many, NULL, "normal");
}

static void body_exit_reason(void *arg)
{
    assert_true(nd_in_process());
    assert_true(term_is_pid(nd_self()));
    nd_exit(term_atom("custom"));
}

static void test_exit_reason(void **state)
{
    nd_test_run(body_exit_reason, NULL, "custom");
    assert_false(nd_in_process());
    assert_true(nd_self() == TERM_NONE);
}

static _Atomic int order[8];
static _Atomic int pos;

static void yielder(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < 2; i++) {
        order[atomic_fetch_add(&pos, 1)] = id;
        nd_yield();
    }
}

static void body_yield(void *arg)
{
    term_t a, b;
    term_t ra, rb, m;
    assert_int_equal(nd_spawn_monitor(yielder, (void *)1, &a, &ra), 0);
    assert_int_equal(nd_spawn_monitor(yielder, (void *)2, &b, &rb), 0);
    m = nd_test_recv(5000);
    term_free(m);
    m = nd_test_recv(5000);
    term_free(m);
    assert_int_equal(atomic_load(&pos), 4);
    term_free(a);
    term_free(b);
    term_free(ra);
    term_free(rb);
}

static void test_yield(void **state)
{
    atomic_store(&pos, 0);
    nd_test_run(body_yield, NULL, "normal");
}

static int recurse(int n)
{
    volatile char buf[512];
    buf[0] = (char)n;
    if (n == 0) return buf[0];
    return recurse(n - 1) + buf[0];
}

static void overflow(void *arg)
{
    recurse(1 << 30);
}

static void body_overflow(void *arg)
{
    term_t pid, ref;
    assert_int_equal(nd_spawn_monitor(overflow, NULL, &pid, &ref), 0);
    term_t m = nd_test_recv(10000);
    assert_true(term_is_tuple(m));
    assert_true(term_tuple_elem(m, 0) == A("DOWN"));
    assert_true(term_tuple_elem(m, 4) == A("stack_overflow"));
    term_free(m);
    term_free(pid);
    term_free(ref);
    /* the node is fine: do it again */
    assert_int_equal(nd_spawn_monitor(overflow, NULL, &pid, &ref), 0);
    m = nd_test_recv(10000);
    assert_true(term_tuple_elem(m, 4) == A("stack_overflow"));
    term_free(m);
    term_free(pid);
    term_free(ref);
}

static void test_stack_overflow(void **state)
{
#if defined(GIRDER_TSAN)
    skip();
#endif
    nd_overflow_handler_install(); /* cmocka installs its own SIGSEGV handler per test */
    nd_test_run(body_overflow, NULL, "normal");
}

static void deep(void *arg)
{
    recurse(1000); /* ~500 KiB of frames */
}

/* A bigger stack from the spawn options holds what the default one cannot. */
static void body_stack_size(void *arg)
{
    term_t pid, ref;
    nd_spawn_opts o = {0};
    o.stack_size = 2 * 1024 * 1024;
    o.monitor = true;
    o.monitor_ref = &ref;
    assert_int_equal(nd_spawn(deep, NULL, &o, &pid), 0);
    term_t m = nd_test_recv(10000);
    assert_true(term_tuple_elem(m, 4) == A("normal"));
    term_free(m);
    term_free(pid);
    term_free(ref);
    assert_int_equal(nd_spawn_monitor(deep, NULL, &pid, &ref), 0);
    m = nd_test_recv(10000);
    assert_true(term_tuple_elem(m, 4) == A("stack_overflow"));
    term_free(m);
    term_free(pid);
    term_free(ref);
}

static void test_stack_size(void **state)
{
#if defined(GIRDER_TSAN)
    skip();
#endif
    nd_overflow_handler_install();
    nd_test_run(body_stack_size, NULL, "normal");
}

static void hib_cont(void *arg)
{
    term_t m = nd_test_recv(1000);
    nd_exit(m);
}

static void hib_start(void *arg)
{
    nd_hibernate(hib_cont, NULL);
}

static void body_hibernate(void *arg)
{
    term_t pid, ref;
    assert_int_equal(nd_spawn_monitor(hib_start, NULL, &pid, &ref), 0);
    nd_sleep(20);
    nd_proc_info info;
    assert_int_equal(nd_process_info(pid, &info), 0);
    assert_int_equal(info.stack_size, 0);
    assert_int_equal(info.status, ND_ST_WAITING);
    nd_proc_info_free(&info);
    nd_send(pid, A("wake"));
    term_t m = nd_test_recv(5000);
    assert_true(term_tuple_elem(m, 4) == A("wake"));
    term_free(m);
    term_free(pid);
    term_free(ref);
}

static void test_hibernate(void **state)
{
    nd_test_run(body_hibernate, NULL, "normal");
}

static _Atomic int long_reports;
static _Atomic uint64_t long_dur;

static void on_long(term_t pid, uint64_t ns, void *ud)
{
    atomic_fetch_add(&long_reports, 1);
    atomic_store(&long_dur, ns);
}

static void hog(void *arg)
{
    volatile uint64_t x = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do { /* 300 ms without a single runtime call */
        for (int i = 0; i < 100000; i++) x += (uint64_t)i;
        clock_gettime(CLOCK_MONOTONIC, &t1);
    } while ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 300);
    (void)x;
}

/* A process that runs too long without a runtime call is reported with pid and duration. */
static void test_long_schedule(void **state)
{
    assert_int_equal(nd_shutdown(5000), 0);
    nd_config c = {0};
    c.schedulers = 2;
    c.long_schedule_ms = 50;
    c.long_schedule = on_long;
    assert_int_equal(nd_init(&c), 0);
    assert_int_equal(nd_run(hog, NULL, 10000, NULL), 0);
    assert_int_equal(atomic_load(&long_reports), 1);
    assert_true(atomic_load(&long_dur) >= 50000000u);
    nd_stats st;
    nd_get_stats(&st);
    assert_int_equal(st.long_schedules, 1);
}

/* A process that counts 40,000 reductions (ten slices) is charged them, and so is the node. */
static _Atomic uint64_t own_reds;
static void spender(void *arg)
{
    (void)arg;
    for (int i = 0; i < 400; i++) nd_consume(100);
    nd_proc_info pi;
    assert_int_equal(nd_process_info(nd_self(), &pi), 0);
    atomic_store(&own_reds, pi.reductions);
    nd_proc_info_free(&pi);
}

static void test_reductions(void **state)
{
    (void)state;
    nd_stats a, b;
    nd_get_stats(&a);
    assert_true(a.schedulers >= 1);
    assert_int_equal(nd_run(spender, NULL, 10000, NULL), 0);
    nd_get_stats(&b);
    /* what was charged before the last slice ended: at least the nine full slices */
    assert_true(atomic_load(&own_reds) >= 36000);
    assert_true(atomic_load(&own_reds) <= 41000);
    assert_true(b.reductions - a.reductions >= 40000);
    assert_true(b.reductions - a.reductions < 60000);
}

/* A spawn's exit hook runs even when the process is killed before its function ever ran. */
static atomic_int hook_calls, body_ran;
static void count_hook(void *arg, term_t reason)
{
    (void)arg;
    (void)reason;
    atomic_fetch_add(&hook_calls, 1);
}
static void never_body(void *arg)
{
    (void)arg;
    atomic_fetch_add(&body_ran, 1);
}
static void killer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++) {
        term_t pid;
        nd_spawn_opts o = {.exit_hook = count_hook};
        assert_int_equal(nd_spawn(never_body, NULL, &o, &pid), 0);
        nd_exit_signal(pid, A("kill")); /* before it is scheduled: we have not yielded */
        term_free(pid);
    }
}

static void test_spawn_exit_hook(void **state)
{
    (void)state;
    /* The other scheduler may take a new process and run it before the kill lands, so a batch
    ** is repeated until some process died before it ran: the path under test. */
    bool killed_before_run = false;
    for (int batch = 0; batch < 20 && !killed_before_run; batch++) {
        atomic_store(&hook_calls, 0);
        atomic_store(&body_ran, 0);
        assert_int_equal(nd_run(killer, NULL, 10000, NULL), 0);
        for (int i = 0; i < 1000 && atomic_load(&hook_calls) < 100; i++) {
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        /* every process's hook ran once, whether or not its body did */
        assert_int_equal(atomic_load(&hook_calls), 100);
        killed_before_run = atomic_load(&body_ran) < 100;
    }
    assert_true(killed_before_run);
}

static void test_errors(void **state)
{
    assert_string_equal(nd_err_name(ND_ENOPROC), "ENOPROC");
    assert_string_equal(nd_strerror(ND_ETIMEOUT), "timed out");
    assert_int_equal(ND_ETIMEOUT, GIRDER_ETIMEDOUT);
    assert_int_equal(nd_link(TERM_NONE), ND_ENOTPROC);
    assert_int_equal(nd_init(NULL), ND_ESTATE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_reason),   cmocka_unit_test(test_spawn_many),
        cmocka_unit_test(test_yield),         cmocka_unit_test(test_stack_overflow),
        cmocka_unit_test(test_hibernate),     cmocka_unit_test(test_errors),
        cmocka_unit_test(test_long_schedule), cmocka_unit_test(test_stack_size),
        cmocka_unit_test(test_reductions),    cmocka_unit_test(test_spawn_exit_hook),
    };
    return cmocka_run_group_tests(tests, nd_test_setup, nd_test_teardown);
}
