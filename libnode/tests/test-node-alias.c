/* Tests: process aliases (alias/unalias, reply aliases, exit, inbound ALIAS_SEND, remote aliases).
 */
#include "nd_test.h"
#include <girder/node_dist.h>
#include <stdatomic.h>

/* Sends what it receives, {To, Msg}, to To (an alias or a pid), then waits for the next. */
static void forwarder(void *arg)
{
    (void)arg;
    for (;;) {
        term_t m = nd_test_recv(ND_INFINITY);
        if (m == A("stop")) nd_exit(A("normal"));
        nd_send(term_tuple_elem(m, 0), term_dup(term_tuple_elem(m, 1)));
        term_free(m);
    }
}

static void body_alias(void *arg)
{
    (void)arg;
    term_t fw, m;
    assert_int_equal(nd_spawn(forwarder, NULL, NULL, &fw), 0);
    /* an explicit alias stays active until unalias */
    term_t al = nd_alias(ND_ALIAS_EXPLICIT);
    assert_true(term_is_ref(al));
    nd_send(fw, T2(term_dup(al), A("one")));
    nd_send(fw, T2(term_dup(al), A("two")));
    assert_int_equal(nd_receive(2000, &m), 0);
    assert_true(m == A("one"));
    assert_int_equal(nd_receive(2000, &m), 0);
    assert_true(m == A("two"));
    assert_true(nd_unalias(al));
    assert_false(nd_unalias(al));
    nd_send(fw, T2(term_dup(al), A("dropped")));
    nd_send(fw, T2(term_dup(nd_self()), A("marker")));
    assert_int_equal(nd_receive(2000, &m), 0);
    assert_true(m == A("marker")); /* the message to the inactive alias never came */
    term_free(al);
    /* a reply alias takes one message */
    al = nd_alias(ND_ALIAS_REPLY);
    nd_send(fw, T2(term_dup(al), A("first")));
    nd_send(fw, T2(term_dup(al), A("second")));
    nd_send(fw, T2(term_dup(nd_self()), A("marker")));
    assert_int_equal(nd_receive(2000, &m), 0);
    assert_true(m == A("first"));
    assert_int_equal(nd_receive(2000, &m), 0);
    assert_true(m == A("marker"));
    assert_false(nd_unalias(al));
    term_free(al);
    /* unalias by another process than the owner does nothing */
    al = nd_alias(ND_ALIAS_EXPLICIT);
    for (int i = 0; i < 200; i++) term_free(nd_alias(ND_ALIAS_REPLY)); /* prune path */
    nd_send(al, A("direct"));
    assert_int_equal(nd_receive(0, &m), 0);
    assert_true(m == A("direct"));
    /* an alias injected from the network (ALIAS_SEND) */
    term_t remote = term_pid(A("other@host"), 42, 0, 7);
    nd_signal s = {ND_SIG_MSG, remote, al, A("from_afar"), TERM_NONE, 0};
    assert_int_equal(nd_dist_deliver(&s), 0);
    assert_int_equal(nd_receive(1000, &m), 0);
    assert_true(m == A("from_afar"));
    /* an exit signal through the alias (OTP 28's ALTACT_SIG_SEND with EXIT) reaches the owner */
    nd_trap_exit(true);
    nd_signal x = {ND_SIG_EXIT2, remote, al, A("via_alias"), TERM_NONE, 0};
    assert_int_equal(nd_dist_deliver(&x), 0);
    assert_int_equal(nd_receive(1000, &m), 0);
    assert_true(term_is_tuple(m) && term_tuple_elem(m, 2) == A("via_alias"));
    term_free(m);
    assert_true(nd_unalias(al)); /* inactive: the exit signal is dropped */
    assert_int_equal(nd_dist_deliver(&x), 0);
    assert_int_equal(nd_receive(50, &m), ND_ETIMEOUT);
    nd_trap_exit(false);
    term_free(remote);
    term_free(al);
    nd_send(fw, A("stop"));
    term_free(fw);
}

static void test_alias(void **state)
{
    (void)state;
    nd_test_run(body_alias, NULL, "normal");
}

/* An alias of a process that exited is inactive. */
static void aliaser(void *arg)
{
    term_t *out = arg;
    *out = nd_alias(ND_ALIAS_EXPLICIT);
}

static void body_exit(void *arg)
{
    (void)arg;
    term_t al = TERM_NONE, pid, ref, m;
    assert_int_equal(nd_spawn_monitor(aliaser, &al, &pid, &ref), 0);
    assert_int_equal(nd_receive(2000, &m), 0); /* DOWN */
    term_free(m);
    assert_true(term_is_ref(al));
    nd_send(al, A("late")); /* dropped, no crash */
    assert_int_equal(nd_receive(50, &m), ND_ETIMEOUT);
    term_free(al);
    term_free(pid);
    term_free(ref);
}

static void test_alias_exit(void **state)
{
    (void)state;
    nd_test_run(body_exit, NULL, "normal");
}

/* A remote alias goes through the dist hook as ND_SIG_MSG with a reference target. */
static _Atomic int hook_kind;
static _Atomic bool hook_ref;

static int fake_dist(void *ud, const nd_signal *sig)
{
    (void)ud;
    atomic_store(&hook_kind, (int)sig->kind);
    atomic_store(&hook_ref, term_is_ref(sig->to));
    return 0;
}

static void body_remote(void *arg)
{
    (void)arg;
    uint32_t w[3] = {1, 2, 3};
    term_t ral = term_ref(A("other@host"), 7, 3, w);
    nd_set_dist_hook(fake_dist, NULL);
    assert_int_equal(nd_send(ral, A("hi")), 0);
    assert_int_equal(atomic_load(&hook_kind), ND_SIG_MSG);
    assert_true(atomic_load(&hook_ref));
    nd_set_dist_hook(NULL, NULL);
    term_free(ral);
}

static void test_alias_remote(void **state)
{
    (void)state;
    nd_test_run(body_remote, NULL, "normal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alias),
        cmocka_unit_test(test_alias_exit),
        cmocka_unit_test(test_alias_remote),
    };
    return cmocka_run_group_tests(tests, nd_test_setup, nd_test_teardown);
}
