/* Tests: idle schedulers spin before parking; work published from other threads is never missed. */
#include "nd_test.h"
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

static term_t target;
static _Atomic int got;

/* Counts messages; each is an integer n, answered by nothing. */
static void counter(void *arg)
{
    (void)arg;
    for (;;) {
        term_t m = nd_test_recv(ND_INFINITY);
        if (m == A("stop")) nd_exit(A("normal"));
        atomic_fetch_add(&got, 1);
        term_free(m);
    }
}

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Sends from a non-scheduler thread with gaps inside and outside the spin window (50 us): every
** message must be taken within a bound, whether a scheduler was spinning or parked. */
static void test_outside_senders(void **state)
{
    (void)state;
    assert_int_equal(nd_spawn(counter, NULL, NULL, &target), 0);
    static const long gaps[] = {0, 5, 20, 45, 60, 200, 2000, 20000};
    int sent = 0;
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < sizeof gaps / sizeof gaps[0]; i++) {
            sleep_us(gaps[i]);
            nd_send(target, term_int(sent++));
            for (int w = 0; w < 2000 && atomic_load(&got) < sent; w++) sleep_us(500);
            assert_int_equal(atomic_load(&got), sent);
        }
    nd_send(target, A("stop"));
    term_free(target);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outside_senders),
    };
    return cmocka_run_group_tests(tests, nd_test_setup, nd_test_teardown);
}
