/* Tests: with one scheduler, a process that keeps yielding does not starve the global queue. */
#include "nd_test.h"
#include <time.h>

static int setup_one(void **state)
{
    (void)state;
    nd_config c = {0};
    c.schedulers = 1;
    return nd_init(&c);
}

static void nothing(void *arg)
{
    (void)arg;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#if defined(GIRDER_ASAN) || defined(GIRDER_TSAN)
#define N 2000 /* a process start costs a TSan fiber: still well past the local queue */
#else
#define N 20000
#endif

/* N spawns overflow the scheduler's own queue (256) into the global one; the spawner then
** yields until they have all run. Before the fix, most of them never ran while it yielded. */
static void yielder(void *arg)
{
    (void)arg;
    size_t base = nd_process_count();
    for (int i = 0; i < N; i++) assert_int_equal(nd_spawn(nothing, NULL, NULL, NULL), 0);
    uint64_t t0 = now_ms();
    while (nd_process_count() > base && now_ms() - t0 < ND_TEST_TIMEOUT_MS / 2) nd_yield();
    assert_int_equal(nd_process_count(), base);
}

static void test_yield_loop(void **state)
{
    nd_test_run(yielder, NULL, "normal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_yield_loop, setup_one, nd_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
