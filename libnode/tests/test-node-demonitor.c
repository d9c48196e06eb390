/* Tests: a demonitor (local or from another node) shows in the monitored process's state at once.
 */
#include "nd_test.h"
#include <girder/node_dist.h>
#include <stdatomic.h>
#include <time.h>

static bool never(term_t m, void *ud)
{
    (void)m;
    (void)ud;
    return false;
}

/* Waits in receive for ever: demonitors must take effect without waking it. */
static void waiter(void *arg)
{
    (void)arg;
    term_t m;
    nd_receive_if(never, NULL, ND_INFINITY, &m);
}

static size_t monitored_by(term_t pid, term_t *list)
{
    nd_proc_info pi;
    assert_int_equal(nd_process_info(pid, &pi), 0);
    size_t n = pi.nmonitored_by;
    assert_int_equal(term_list_length(pi.monitored_by), (long)n);
    if (list) *list = term_dup(pi.monitored_by);
    nd_proc_info_free(&pi);
    return n;
}

/* Polls (bounded) until pid's monitored-by count is n: the monitor is taken asynchronously. */
static void wait_monitored_by(term_t pid, size_t n)
{
    for (int i = 0; i < 5000 && monitored_by(pid, NULL) != n; i++) nd_sleep(1);
    assert_int_equal(monitored_by(pid, NULL), n);
}

static nd_status status_of(term_t pid)
{
    nd_proc_info pi;
    assert_int_equal(nd_process_info(pid, &pi), 0);
    nd_status st = pi.status;
    nd_proc_info_free(&pi);
    return st;
}

static void wait_waiting(term_t pid)
{
    for (int i = 0; i < 5000 && status_of(pid) != ND_ST_WAITING; i++) nd_sleep(1);
    assert_true(status_of(pid) == ND_ST_WAITING);
}

/* ---------------------------------------------------------------- local */

static void body_local(void *arg)
{
    (void)arg;
    term_t p, ref, list;
    assert_int_equal(nd_spawn(waiter, NULL, NULL, &p), 0);
    assert_int_equal(nd_monitor(p, &ref), 0);
    wait_monitored_by(p, 1);
    assert_int_equal(monitored_by(p, &list), 1);
    assert_true(term_equal(term_hd(list), nd_self()));
    term_free(list);
    wait_waiting(p);
    assert_int_equal(nd_demonitor(ref, 0), 0);
    /* at once: no polling, and p still waits (a demonitor does not wake it) */
    assert_int_equal(monitored_by(p, NULL), 0);
    assert_true(status_of(p) == ND_ST_WAITING);
    nd_exit_signal(p, A("kill"));
    term_free(ref);
    term_free(p);
}

static void test_local(void **state)
{
    nd_test_run(body_local, NULL, "normal");
}

/* ---------------------------------------------------------------- from another node */

/* What the fake distribution layer was handed: DOWN signals to the remote monitor. */
static _Atomic int downs_to_remote;
static _Atomic int downs_for_ref2;
static term_t g_ref2;

static int hook(void *ud, const nd_signal *sig)
{
    (void)ud;
    if (sig->kind == ND_SIG_DOWN) {
        atomic_fetch_add(&downs_to_remote, 1);
        if (term_equal(sig->ref, g_ref2)) atomic_fetch_add(&downs_for_ref2, 1);
    }
    return 0;
}

static void body_remote(void *arg)
{
    (void)arg;
    term_t other = A("other@host");
    term_t r1 = term_pid(other, 40, 1, 7), r2 = term_pid(other, 41, 1, 7);
    uint32_t w1[3] = {1, 2, 3}, w2[3] = {4, 5, 6};
    term_t ref1 = term_ref(other, 7, 3, w1), ref2 = term_ref(other, 7, 3, w2);
    g_ref2 = ref2;
    term_t p;
    assert_int_equal(nd_spawn(waiter, NULL, NULL, &p), 0);
    nd_signal s = {0};
    s.kind = ND_SIG_MONITOR;
    s.from = r1;
    s.to = p;
    s.ref = ref1;
    assert_int_equal(nd_dist_deliver(&s), 0);
    s.from = r2;
    s.ref = ref2;
    assert_int_equal(nd_dist_deliver(&s), 0);
    wait_monitored_by(p, 2);
    wait_waiting(p);
    /* the first remote process demonitors: p's state says so at once, though p sleeps */
    s.kind = ND_SIG_DEMONITOR;
    s.from = r1;
    s.ref = ref1;
    assert_int_equal(nd_dist_deliver(&s), 0);
    term_t list;
    assert_int_equal(monitored_by(p, &list), 1);
    assert_true(status_of(p) == ND_ST_WAITING);
    assert_true(term_equal(term_hd(list), r2));
    term_free(list);
    /* p's end sends exactly one DOWN: to the monitor still in place */
    term_t mref;
    assert_int_equal(nd_monitor(p, &mref), 0);
    nd_exit_signal(p, A("kill"));
    term_t m = nd_test_recv(5000);
    assert_true(term_is_tuple(m) && term_tuple_elem(m, 0) == A("DOWN"));
    term_free(m);
    /* the DOWNs are sent one after the other by p's exit: wait (bounded) for the remote one */
    for (int i = 0; i < 5000 && atomic_load(&downs_to_remote) == 0; i++) nd_sleep(1);
    nd_sleep(20);
    assert_int_equal(atomic_load(&downs_to_remote), 1);
    assert_int_equal(atomic_load(&downs_for_ref2), 1);
    term_free(mref);
    term_free(p);
    term_free(r1);
    term_free(r2);
    term_free(ref1);
    term_free(ref2);
}

static void test_remote(void **state)
{
    nd_set_dist_hook(hook, NULL);
    nd_test_run(body_remote, NULL, "normal");
    nd_set_dist_hook(NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_local, nd_test_setup, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_remote, nd_test_setup, nd_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
