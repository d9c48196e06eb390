/* Stress: 1,000,000 live processes on one node (idle server-behaviour processes), all reachable:
** every one answers a message, then all are stopped and the table drains to zero. */
#include "nd_test.h"
#include <stdatomic.h>

#if defined(GIRDER_TSAN)
/* ThreadSanitizer makes a fiber (a thread's state, zeroed and mapped) for every context and
** unmaps it when the context goes: each of these servers gets three, and 100,000 of them took
** 200 s of CPU, almost all of it in TSan's fiber code and the page faults it causes, one
** thread at a time (55 s user, 147 s system, 93% of one core): more than the 180 s bound on any
** machine. Fibers cannot be reused (TSan's shadow call stack keeps the frames of a context that
** never returned). Same test, a hundredth of the size: 25,000 took 180 s alone on a machine
** whose page faults cost 10-15 us (build/bin/host-costs), too near the bound under make tsan. */
#define N 10000
#elif defined(GIRDER_ASAN)
#define N 100000 /* sanitizer builds: same test, a tenth of the size */
#else
#define N 1000000
#endif

static _Atomic long answered;

static int s_info(void **state, term_t msg, term_t *reason)
{
    atomic_fetch_add(&answered, 1);
    return ND_NOREPLY;
}

static const nd_server_ops ops = {NULL, NULL, NULL, s_info, NULL};

static void body(void *arg)
{
    term_t *pids = malloc(sizeof(term_t) * N);
    assert_non_null(pids);
    for (long i = 0; i < N; i++)
        assert_int_equal(nd_server_start(&ops, NULL, NULL, &pids[i], NULL), 0);
    assert_true(nd_process_count() >= N);
    for (long i = 0; i < N; i++) nd_send(pids[i], I(i));
    for (int i = 0; i < ND_TEST_TIMEOUT_MS / 5 && atomic_load(&answered) < N; i++) nd_sleep(5);
    assert_int_equal(atomic_load(&answered), N);
    for (long i = 0; i < N; i++) {
        nd_exit_signal(pids[i], A("kill"));
        term_free(pids[i]);
    }
    free(pids);
    for (int i = 0; i < ND_TEST_TIMEOUT_MS / 5 && nd_process_count() > 1; i++) nd_sleep(5);
    assert_int_equal(nd_process_count(), 1);
}

static void test_million(void **state)
{
    nd_test_run(body, NULL, "normal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_million)};
    return cmocka_run_group_tests(tests, nd_test_setup, nd_test_teardown);
}
