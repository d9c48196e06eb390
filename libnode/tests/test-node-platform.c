/* Tests: the platform interface is the runtime's only clock and wake-up source — a replacement
** (here: a clock shifted by a day, counting every call) drives timers and parking. */
#include "nd_test.h"
#include <stdatomic.h>

static _Atomic long n_now, n_park, n_unpark, n_new;
static const uint64_t SHIFT = 86400ull * 1000000000ull;

static uint64_t my_now(void *ud)
{
    atomic_fetch_add(&n_now, 1);
    return nd_platform_default()->now_ns(NULL) + SHIFT;
}

static nd_parker *my_new(void *ud)
{
    atomic_fetch_add(&n_new, 1);
    return nd_platform_default()->parker_new(NULL);
}

static void my_free(void *ud, nd_parker *pk)
{
    nd_platform_default()->parker_free(NULL, pk);
}

/* The default parker waits on the real clock: translate the shifted deadline back. */
static void my_park(void *ud, nd_parker *pk, uint64_t deadline)
{
    atomic_fetch_add(&n_park, 1);
    nd_platform_default()->park(NULL, pk, deadline == UINT64_MAX ? deadline : deadline - SHIFT);
}

static void my_unpark(void *ud, nd_parker *pk)
{
    atomic_fetch_add(&n_unpark, 1);
    nd_platform_default()->unpark(NULL, pk);
}

static const nd_platform shifted = {my_now, my_new, my_free, my_park, my_unpark, NULL};

static void body(void *arg)
{
    term_t m;
    assert_int_equal(nd_send_after(20, nd_self(), A("tick"), NULL), 0);
    assert_int_equal(nd_receive(5000, &m), 0);
    assert_true(m == A("tick"));
    assert_int_equal(nd_receive(20, &m), ND_ETIMEOUT);
    nd_sleep(10);
}

static void test_platform(void **state)
{
    nd_config c = {0};
    c.schedulers = 2;
    c.platform = &shifted;
    assert_int_equal(nd_init(&c), 0);
    nd_test_run(body, NULL, "normal");
    assert_int_equal(nd_shutdown(5000), 0);
    assert_true(atomic_load(&n_new) >= 3); /* two schedulers and the watchdog */
    assert_true(atomic_load(&n_now) > 0);
    assert_true(atomic_load(&n_park) > 0);
    assert_true(atomic_load(&n_unpark) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_platform)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
