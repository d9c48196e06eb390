/* Stress: 1,000,000 live processes on one node (idle server-behaviour processes), all reachable:
** every one answers a message, then all are stopped and the table drains to zero. */
#include "nd_test.h"
#include <stdatomic.h>

#if defined(GIRDER_ASAN) || defined(GIRDER_TSAN)
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
    for (int i = 0; i < 6000 && atomic_load(&answered) < N; i++) nd_sleep(5);
    assert_int_equal(atomic_load(&answered), N);
    for (long i = 0; i < N; i++) {
        nd_exit_signal(pids[i], A("kill"));
        term_free(pids[i]);
    }
    free(pids);
    for (int i = 0; i < 6000 && nd_process_count() > 1; i++) nd_sleep(5);
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
