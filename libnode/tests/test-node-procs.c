/* Tests: erlang:processes/0 (nd_processes) and monitors adopted from the dist layer
 * (nd_monitor_adopt). */
#include "nd_test.h"
#include <girder/node_dist.h>
#include <stdatomic.h>

static void sleeper(void *arg)
{
    (void)arg;
    term_t m = nd_test_recv(ND_INFINITY);
    term_free(m);
}

static bool listed(term_t l, term_t pid)
{
    for (; term_is_cons(l); l = term_tl(l))
        if (term_equal(term_hd(l), pid)) return true;
    return false;
}

static void body_processes(void *arg)
{
    (void)arg;
    term_t a, b, ref, m;
    assert_int_equal(nd_spawn(sleeper, NULL, NULL, &a), 0);
    assert_int_equal(nd_spawn_monitor(sleeper, NULL, &b, &ref), 0);
    term_t l = nd_processes();
    assert_true(listed(l, nd_self()) && listed(l, a) && listed(l, b));
    assert_int_equal(term_list_length(l), (long)nd_process_count());
    term_free(l);
    nd_send(b, A("go"));
    assert_int_equal(nd_receive(2000, &m), 0); /* DOWN */
    term_free(m);
    l = nd_processes();
    assert_true(listed(l, a) && !listed(l, b));
    term_free(l);
    nd_send(a, A("go"));
    term_free(a);
    term_free(b);
    term_free(ref);
}

static void test_processes(void **state)
{
    (void)state;
    nd_test_run(body_processes, NULL, "normal");
}

static _Atomic int demonitors;
static int fake_dist(void *ud, const nd_signal *sig)
{
    (void)ud;
    if (sig->kind == ND_SIG_DEMONITOR) atomic_fetch_add(&demonitors, 1);
    return 0;
}

static void adopter(void *arg)
{
    term_t *target = arg;
    term_t ref = nd_make_ref();
    assert_int_equal(nd_monitor_adopt(nd_self(), *target, ref), 0);
    term_free(ref);
    nd_exit(A("done")); /* exits with the adopted monitor: a DEMONITOR goes out */
}

static void body_adopt(void *arg)
{
    (void)arg;
    term_t remote = term_pid(A("other@host"), 42, 0, 7), m;
    nd_set_dist_hook(fake_dist, NULL);
    /* a DOWN for an adopted monitor arrives as a DOWN message with the adopted reference */
    term_t ref = nd_make_ref();
    assert_int_equal(nd_monitor_adopt(nd_self(), remote, ref), 0);
    nd_signal dn = {ND_SIG_DOWN, remote, nd_self(), A("gone"), ref, 0};
    assert_int_equal(nd_dist_deliver(&dn), 0);
    assert_int_equal(nd_receive(2000, &m), 0);
    assert_true(term_is_tuple(m) && term_tuple_elem(m, 0) == A("DOWN"));
    assert_true(term_equal(term_tuple_elem(m, 1), ref));
    assert_true(term_equal(term_tuple_elem(m, 3), remote));
    assert_true(term_tuple_elem(m, 4) == A("gone"));
    term_free(m);
    /* a second DOWN for the same reference is dropped: the monitor is gone */
    assert_int_equal(nd_dist_deliver(&dn), 0);
    assert_int_equal(nd_receive(50, &m), ND_ETIMEOUT);
    term_free(ref);
    /* demonitor of an adopted monitor sends DEMONITOR to the target */
    ref = nd_make_ref();
    assert_int_equal(nd_monitor_adopt(nd_self(), remote, ref), 0);
    int before = atomic_load(&demonitors);
    assert_int_equal(nd_demonitor(ref, 0), 0);
    assert_int_equal(atomic_load(&demonitors), before + 1);
    term_free(ref);
    /* an owner that exits with one takes it down */
    before = atomic_load(&demonitors);
    term_t pid, mref;
    assert_int_equal(nd_spawn_monitor(adopter, &remote, &pid, &mref), 0);
    assert_int_equal(nd_receive(2000, &m), 0);
    term_free(m);
    assert_int_equal(atomic_load(&demonitors), before + 1);
    term_free(pid);
    term_free(mref);
    /* bad arguments and dead owners */
    assert_int_equal(nd_monitor_adopt(nd_self(), A("x"), remote), ND_EINVAL);
    ref = nd_make_ref();
    term_t dead = term_pid(nd_node(), 999999, 0, nd_creation());
    assert_int_equal(nd_monitor_adopt(dead, remote, ref), ND_ENOPROC);
    term_free(dead);
    term_free(ref);
    nd_set_dist_hook(NULL, NULL);
    term_free(remote);
}

static void test_adopt(void **state)
{
    (void)state;
    nd_test_run(body_adopt, NULL, "normal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_processes),
        cmocka_unit_test(test_adopt),
    };
    return cmocka_run_group_tests(tests, nd_test_setup, nd_test_teardown);
}
