/* Tests: monitors (by pid and by name, demonitor+flush), registry, timers, spawn options,
** unlink, and the distribution hook (outgoing signals and injected remote ones). */
#include "nd_test.h"
#include <girder/node_dist.h>
#include <pthread.h>
#include <stdatomic.h>

static bool is_tag(term_t m, void *ud)
{
    return term_is_tuple(m) && term_tuple_elem(m, 0) == term_atom((const char *)ud);
}

static void waiter(void *arg)
{
    term_t m = nd_test_recv(ND_INFINITY);
    nd_exit(m);
}

static void body_monitors(void *arg)
{
    term_t p, ref, m;
    assert_int_equal(nd_spawn(waiter, NULL, NULL, &p), 0);
    assert_int_equal(nd_monitor(p, &ref), 0);
    nd_proc_info info;
    nd_sleep(5);
    assert_int_equal(nd_process_info(p, &info), 0);
    assert_int_equal(info.nmonitored_by, 1);
    nd_proc_info_free(&info);
    nd_send(p, A("bye"));
    assert_int_equal(nd_receive_if(is_tag, "DOWN", 5000, &m), 0);
    assert_true(term_equal(term_tuple_elem(m, 1), ref));
    assert_true(term_equal(term_tuple_elem(m, 3), p));
    assert_true(term_tuple_elem(m, 4) == A("bye"));
    term_free(m);
    term_free(ref);
    /* monitor of a dead pid: noproc at once */
    assert_int_equal(nd_monitor(p, &ref), 0);
    assert_int_equal(nd_receive_if(is_tag, "DOWN", 0, &m), 0);
    assert_true(term_tuple_elem(m, 4) == A("noproc"));
    term_free(m);
    term_free(ref);
    term_free(p);
    /* demonitor with flush removes a DOWN already queued */
    assert_int_equal(nd_spawn(waiter, NULL, NULL, &p), 0);
    assert_int_equal(nd_monitor(p, &ref), 0);
    nd_send(p, A("bye"));
    nd_sleep(20);
    assert_int_equal(nd_demonitor(ref, ND_DEMONITOR_FLUSH), ND_ENOPROC);
    assert_int_equal(nd_receive_if(is_tag, "DOWN", 0, &m), ND_ETIMEOUT);
    term_free(ref);
    term_free(p);
    /* demonitor before the exit: no DOWN ever */
    assert_int_equal(nd_spawn(waiter, NULL, NULL, &p), 0);
    assert_int_equal(nd_monitor(p, &ref), 0);
    assert_int_equal(nd_demonitor(ref, 0), 0);
    nd_send(p, A("bye"));
    assert_int_equal(nd_receive_if(is_tag, "DOWN", 30, &m), ND_ETIMEOUT);
    term_free(ref);
    term_free(p);
}

static void test_monitors(void **state)
{
    nd_test_run(body_monitors, NULL, "normal");
}

static void body_registry(void *arg)
{
    term_t p, ref, m;
    nd_spawn_opts o = {0};
    o.name = A("named_one");
    assert_int_equal(nd_spawn(waiter, NULL, &o, &p), 0);
    assert_int_equal(nd_spawn(waiter, NULL, &o, NULL), ND_EEXIST);
    term_t w = nd_whereis(A("named_one"));
    assert_true(term_equal(w, p));
    term_free(w);
    assert_int_equal(nd_register(A("other"), p), ND_EEXIST); /* one name per process */
    assert_int_equal(nd_register(A("me"), nd_self()), 0);
    term_t l = nd_registered();
    assert_int_equal(term_list_length(l), 2);
    term_free(l);
    assert_int_equal(nd_unregister(A("me")), 0);
    assert_int_equal(nd_unregister(A("me")), ND_ENOTREG);
    assert_int_equal(nd_send(A("nobody"), A("x")), ND_ENOTREG);
    /* monitor by name; DOWN names {Name, Node} */
    assert_int_equal(nd_monitor(A("named_one"), &ref), 0);
    assert_int_equal(nd_send(A("named_one"), A("by_name")), 0);
    assert_int_equal(nd_receive_if(is_tag, "DOWN", 5000, &m), 0);
    term_t item = term_tuple_elem(m, 3);
    assert_true(term_is_tuple(item));
    assert_true(term_tuple_elem(item, 0) == A("named_one"));
    assert_true(term_tuple_elem(item, 1) == nd_node());
    assert_true(term_tuple_elem(m, 4) == A("by_name"));
    term_free(m);
    term_free(ref);
    /* the name went with the process */
    nd_sleep(5);
    assert_true(nd_whereis(A("named_one")) == TERM_NONE);
    assert_int_equal(nd_monitor(A("named_one"), &ref), 0);
    assert_int_equal(nd_receive_if(is_tag, "DOWN", 0, &m), 0);
    assert_true(term_tuple_elem(m, 4) == A("noproc"));
    term_free(m);
    term_free(ref);
    term_free(p);
}

static void test_registry(void **state)
{
    nd_test_run(body_registry, NULL, "normal");
}

static void body_timers(void *arg)
{
    nd_timer_t t1, t2;
    term_t m;
    assert_int_equal(nd_send_after(20, nd_self(), A("t1"), &t1), 0);
    assert_int_equal(nd_send_after(10000, nd_self(), A("t2"), &t2), 0);
    int64_t left = nd_cancel_timer(t2);
    assert_true(left > 9000 && left <= 10000);
    assert_int_equal(nd_cancel_timer(t2), ND_ENOTIMER);
    assert_int_equal(nd_receive(5000, &m), 0);
    assert_true(m == A("t1"));
    assert_int_equal(nd_cancel_timer(t1), ND_ENOTIMER);
    /* thousands of timers; each fires once; well-separated deadlines fire in order */
    for (int i = 0; i < 5000; i++)
        assert_int_equal(nd_send_after(5 + (i * 7919) % 50, nd_self(), I(0), NULL), 0);
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(nd_receive(5000, &m), 0);
        assert_int_equal(term_small_value(m), 0);
    }
    assert_int_equal(nd_receive(20, &m), ND_ETIMEOUT);
    assert_int_equal(nd_send_after(60, nd_self(), I(3), NULL), 0);
    assert_int_equal(nd_send_after(30, nd_self(), I(2), NULL), 0);
    assert_int_equal(nd_send_after(0, nd_self(), I(1), NULL), 0);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(nd_receive(5000, &m), 0);
        assert_int_equal(term_small_value(m), i);
    }
    /* send_after to a registered name */
    assert_int_equal(nd_register(A("timer_target"), nd_self()), 0);
    assert_int_equal(nd_send_after(1, A("timer_target"), A("named"), NULL), 0);
    assert_int_equal(nd_receive(5000, &m), 0);
    assert_true(m == A("named"));
}

static void test_timers(void **state)
{
    nd_test_run(body_timers, NULL, "normal");
}

static void trapper(void *arg)
{
    assert_true(nd_trap_exit(true)); /* already set by the spawn option */
    term_t m = nd_test_recv(5000);
    nd_send((term_t)(uintptr_t)arg, m);
}

static void crash(void *arg)
{
    nd_exit(A("crashed"));
}

static void body_spawn_opts(void *arg)
{
    term_t p, m;
    nd_spawn_opts o = {0};
    o.trap_exit = true;
    o.link = true;
    assert_int_equal(nd_spawn(trapper, (void *)(uintptr_t)nd_self(), &o, &p), 0);
    nd_trap_exit(true);
    nd_exit_signal(p, A("please"));
    assert_int_equal(nd_receive_if(is_tag, "EXIT", 5000, &m), 0);
    assert_true(term_tuple_elem(m, 2) == A("please"));
    term_free(m);
    /* and then the link fires when p ends (normal) */
    assert_int_equal(nd_receive_if(is_tag, "EXIT", 5000, &m), 0);
    assert_true(term_equal(term_tuple_elem(m, 1), p));
    assert_true(term_tuple_elem(m, 2) == A("normal"));
    term_free(m);
    term_free(p);
    /* spawn_link of a crasher, trapping */
    assert_int_equal(nd_spawn_link(crash, NULL, &p), 0);
    assert_int_equal(nd_receive_if(is_tag, "EXIT", 5000, &m), 0);
    assert_true(term_tuple_elem(m, 2) == A("crashed"));
    term_free(m);
    term_free(p);
    /* unlink: no exit signal afterwards */
    assert_int_equal(nd_spawn(waiter, NULL, NULL, &p), 0);
    assert_int_equal(nd_link(p), 0);
    assert_int_equal(nd_unlink(p), 0);
    nd_send(p, A("boom"));
    assert_int_equal(nd_receive_if(is_tag, "EXIT", 30, &m), ND_ETIMEOUT);
    term_free(p);
}

static void test_spawn_opts(void **state)
{
    nd_test_run(body_spawn_opts, NULL, "normal");
}

/* ---------------------------------------------------------------- distribution hook */

static _Atomic int hook_calls;
static nd_signal last;

static int fake_dist(void *ud, const nd_signal *sig)
{
    atomic_fetch_add(&hook_calls, 1);
    last.kind = sig->kind;
    last.id = sig->id;
    return 0;
}

static void body_dist(void *arg)
{
    term_t remote = term_pid(A("other@host"), 42, 0, 7);
    term_t m, ref;
    nd_set_dist_hook(fake_dist, NULL);
    nd_send(remote, A("hello"));
    assert_int_equal(atomic_load(&hook_calls), 1);
    assert_int_equal(last.kind, ND_SIG_MSG);
    nd_trap_exit(true);
    assert_int_equal(nd_link(remote), 0);
    assert_int_equal(last.kind, ND_SIG_LINK);
    assert_int_equal(nd_monitor(remote, &ref), 0);
    assert_int_equal(last.kind, ND_SIG_MONITOR);
    /* node-down: the dist layer injects noconnection for the link and the monitor */
    nd_signal ex = {ND_SIG_EXIT, remote, nd_self(), A("noconnection"), TERM_NONE, 0};
    assert_int_equal(nd_dist_deliver(&ex), 0);
    nd_signal dn = {ND_SIG_DOWN, remote, nd_self(), A("noconnection"), ref, 0};
    assert_int_equal(nd_dist_deliver(&dn), 0);
    assert_int_equal(nd_receive_if(is_tag, "EXIT", 1000, &m), 0);
    assert_true(term_tuple_elem(m, 2) == A("noconnection"));
    term_free(m);
    assert_int_equal(nd_receive_if(is_tag, "DOWN", 1000, &m), 0);
    assert_true(term_tuple_elem(m, 4) == A("noconnection"));
    term_free(m);
    /* a remote message injected to a local name */
    assert_int_equal(nd_register(A("dist_target"), nd_self()), 0);
    nd_signal msg = {ND_SIG_MSG, remote, A("dist_target"), A("from_afar"), TERM_NONE, 0};
    assert_int_equal(nd_dist_deliver(&msg), 0);
    assert_int_equal(nd_receive(1000, &m), 0);
    assert_true(m == A("from_afar"));
    /* a monitor of a local name nobody holds: a DOWN noproc at once, back through the hook;
    ** the signal's terms stay the caller's (under ASan a reference not taken is a double free) */
    int calls = atomic_load(&hook_calls);
    term_t nref = term_ref(A("other@host"), 7, 3, (const uint32_t[]){7, 8, 9});
    nd_signal nm = {ND_SIG_MONITOR, remote, A("nobody_here"), TERM_NONE, nref, 0};
    assert_int_equal(nd_dist_deliver(&nm), 0);
    assert_int_equal(atomic_load(&hook_calls), calls + 1);
    assert_int_equal(last.kind, ND_SIG_DOWN);
    assert_true(term_is_ref(nref) && term_is_pid(remote));
    term_free(nref);
    /* without a hook a remote link breaks at once with noconnection */
    nd_set_dist_hook(NULL, NULL);
    assert_int_equal(nd_link(remote), 0);
    assert_int_equal(nd_receive_if(is_tag, "EXIT", 1000, &m), 0);
    assert_true(term_tuple_elem(m, 2) == A("noconnection"));
    term_free(m);
    term_free(ref);
    term_free(remote);
}

static void test_dist(void **state)
{
    nd_test_run(body_dist, NULL, "normal");
}

/* nd_dist_deliver_take: the same signals, the caller's references handed over (ASan's leak
** check and double-free detection hold it to that: each term given is released exactly once),
** to a live process, to a dead one, and by name (its fallback path). */
static void ends_at_once(void *arg)
{
    (void)arg;
}

static void body_dist_take(void *arg)
{
    term_t remote = term_pid(A("other@host"), 43, 0, 7);
    term_t m, ref, dead;
    nd_set_dist_hook(fake_dist, NULL);
    nd_trap_exit(true);
    assert_int_equal(nd_link(remote), 0);
    assert_int_equal(nd_monitor(remote, &ref), 0);
    nd_signal ex = {ND_SIG_EXIT, term_dup(remote), nd_self(), A("noconnection"), TERM_NONE, 0};
    assert_int_equal(nd_dist_deliver_take(&ex), 0);
    nd_signal dn = {ND_SIG_DOWN, term_dup(remote), nd_self(), A("noconnection"), term_dup(ref), 0};
    assert_int_equal(nd_dist_deliver_take(&dn), 0);
    assert_int_equal(nd_receive_if(is_tag, "EXIT", 1000, &m), 0);
    assert_true(term_equal(term_tuple_elem(m, 1), remote));
    assert_true(term_tuple_elem(m, 2) == A("noconnection"));
    term_free(m);
    assert_int_equal(nd_receive_if(is_tag, "DOWN", 1000, &m), 0);
    assert_true(term_equal(term_tuple_elem(m, 1), ref));
    assert_true(term_equal(term_tuple_elem(m, 3), remote));
    assert_true(term_tuple_elem(m, 4) == A("noconnection"));
    term_free(m);
    /* to a dead process: it answers (a DOWN noproc for a monitor, out through the hook) */
    assert_int_equal(nd_spawn_monitor(ends_at_once, NULL, &dead, &m), 0);
    term_free(m);
    assert_int_equal(nd_receive_if(is_tag, "DOWN", 1000, &m), 0);
    term_free(m);
    int calls = atomic_load(&hook_calls);
    term_t r2 = term_ref(A("other@host"), 7, 3, (const uint32_t[]){1, 2, 3});
    nd_signal mo = {ND_SIG_MONITOR, term_dup(remote), dead, TERM_NONE, r2, 0};
    assert_int_equal(nd_dist_deliver_take(&mo), 0);
    assert_int_equal(atomic_load(&hook_calls), calls + 1);
    assert_int_equal(last.kind, ND_SIG_DOWN);
    /* by name: a message, through nd_dist_deliver() */
    assert_int_equal(nd_register(A("take_target"), nd_self()), 0);
    nd_signal msg = {ND_SIG_MSG,       term_dup(remote),
                     A("take_target"), term_tuplev(2, A("boxed"), term_dup(remote)),
                     TERM_NONE,        0};
    assert_int_equal(nd_dist_deliver_take(&msg), 0);
    assert_int_equal(nd_receive_if(is_tag, "boxed", 1000, &m), 0);
    term_free(m);
    nd_set_dist_hook(NULL, NULL);
    term_free(dead);
    term_free(ref);
    term_free(remote);
}

static void test_dist_take(void **state)
{
    nd_test_run(body_dist_take, NULL, "normal");
}

/* Signals from a remote process into local ones, and the answers that go back out. */
#define MAXSIG 16
static nd_signal seen[MAXSIG];
static _Atomic int nseen;

static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;

static int recording_dist(void *ud, const nd_signal *sig)
{
    pthread_mutex_lock(&seen_mu); /* the hook runs on any scheduler thread */
    int i = atomic_load(&nseen);
    if (i < MAXSIG) {
        seen[i] = *sig;
        seen[i].payload = term_dup(sig->payload);
        seen[i].ref = term_dup(sig->ref);
        seen[i].from = term_dup(sig->from);
        atomic_store(&nseen, i + 1);
    }
    pthread_mutex_unlock(&seen_mu);
    return 0;
}

static const nd_signal *wait_seen(int kind)
{
    for (int t = 0; t < 500; t++) {
        const nd_signal *found = NULL;
        pthread_mutex_lock(&seen_mu);
        int n = atomic_load(&nseen);
        for (int i = 0; i < n && !found; i++)
            if ((int)seen[i].kind == kind) found = &seen[i];
        pthread_mutex_unlock(&seen_mu);
        if (found) return found;
        nd_sleep(2);
    }
    return NULL;
}

static void body_dist_inbound(void *arg)
{
    term_t remote = term_pid(A("other@host"), 43, 0, 7);
    term_t p, ref = nd_make_ref();
    atomic_store(&nseen, 0);
    nd_set_dist_hook(recording_dist, NULL);
    /* a remote link and monitor on a local process; its exit goes back out through the hook */
    assert_int_equal(nd_spawn(waiter, NULL, NULL, &p), 0);
    nd_signal ln = {ND_SIG_LINK, remote, p, TERM_NONE, TERM_NONE, 0};
    assert_int_equal(nd_dist_deliver(&ln), 0);
    nd_signal mo = {ND_SIG_MONITOR, remote, p, TERM_NONE, ref, 0};
    assert_int_equal(nd_dist_deliver(&mo), 0);
    nd_sleep(10);
    nd_send(p, A("bye"));
    const nd_signal *ex = wait_seen(ND_SIG_EXIT);
    assert_non_null(ex);
    assert_true(ex->payload == A("bye"));
    const nd_signal *dn = wait_seen(ND_SIG_DOWN);
    assert_non_null(dn);
    assert_true(term_equal(dn->ref, ref));
    assert_true(dn->payload == A("bye"));
    /* a remote link to a dead local pid answers noproc */
    pthread_mutex_lock(&seen_mu);
    for (int i = 0; i < atomic_load(&nseen); i++) seen[i].kind = 0;
    pthread_mutex_unlock(&seen_mu);
    assert_int_equal(nd_dist_deliver(&ln), 0);
    ex = wait_seen(ND_SIG_EXIT);
    assert_non_null(ex);
    assert_true(ex->payload == A("noproc"));
    /* a remote exit/2 with kill kills */
    term_t q, qref, m;
    assert_int_equal(nd_spawn_monitor(waiter, NULL, &q, &qref), 0);
    nd_signal k = {ND_SIG_EXIT2, remote, q, A("kill"), TERM_NONE, 0};
    assert_int_equal(nd_dist_deliver(&k), 0);
    assert_int_equal(nd_receive_if(is_tag, "DOWN", 5000, &m), 0);
    assert_true(term_tuple_elem(m, 4) == A("killed"));
    term_free(m);
    nd_set_dist_hook(NULL, NULL);
    nd_sleep(10);
    for (int i = 0; i < MAXSIG; i++) {
        term_free(seen[i].payload);
        term_free(seen[i].ref);
        term_free(seen[i].from);
        seen[i].payload = seen[i].ref = seen[i].from = TERM_NONE;
    }
    term_free(q);
    term_free(qref);
    term_free(p);
    term_free(ref);
    term_free(remote);
}

static void test_dist_inbound(void **state)
{
    nd_test_run(body_dist_inbound, NULL, "normal");
}

/* Signals between one pair keep their order: messages, then an exit signal, then more. */
static void orderly_sender(void *arg)
{
    term_t to = (term_t)(uintptr_t)arg;
    for (int i = 0; i < 100; i++) nd_send(to, I(i));
    nd_exit_signal(to, A("midway"));
    for (int i = 100; i < 200; i++) nd_send(to, I(i));
}

static void body_pair_order(void *arg)
{
    nd_trap_exit(true);
    assert_int_equal(nd_spawn(orderly_sender, (void *)(uintptr_t)nd_self(), NULL, NULL), 0);
    for (int i = 0; i < 201; i++) {
        term_t m = nd_test_recv(5000);
        if (i == 100) {
            assert_true(is_tag(m, "EXIT"));
            assert_true(term_tuple_elem(m, 2) == A("midway"));
        } else {
            assert_int_equal(term_small_value(m), i < 100 ? i : i - 1);
        }
        term_free(m);
    }
}

static void test_pair_order(void **state)
{
    nd_test_run(body_pair_order, NULL, "normal");
}

static void linked_idle(void *arg)
{
    term_free(nd_test_recv(ND_INFINITY));
}

static void body_info_lists(void *arg)
{
    term_t p, ref;
    assert_int_equal(nd_spawn_link(linked_idle, NULL, &p), 0);
    assert_int_equal(nd_monitor(p, &ref), 0);
    assert_int_equal(nd_register(A("info_me"), nd_self()), 0);
    nd_trap_exit(true);
    nd_send(nd_self(), A("one"));
    nd_send(nd_self(), A("two"));
    nd_sleep(10);
    nd_proc_info info;
    assert_int_equal(nd_process_info(nd_self(), &info), 0);
    assert_int_equal(info.status, ND_ST_RUNNING);
    assert_int_equal(info.nlinks, 1);
    assert_true(term_equal(term_hd(info.links), p));
    assert_int_equal(info.nmonitors, 1);
    assert_true(term_equal(term_hd(info.monitors), p));
    assert_true(info.registered_name == A("info_me"));
    assert_true(info.trap_exit);
    assert_int_equal(info.message_queue_len, 2);
    assert_true(info.reductions > 0);
    assert_true(info.stack_size > 0);
    nd_proc_info_free(&info);
    assert_int_equal(nd_process_info(p, &info), 0);
    assert_int_equal(info.nlinks, 1);
    assert_int_equal(info.nmonitored_by, 1);
    assert_true(term_equal(term_hd(info.monitored_by), nd_self()));
    nd_proc_info_free(&info);
    nd_send(p, A("bye"));
    term_free(ref);
    term_free(p);
}

static _Atomic int busy_go;

static void busy(void *arg)
{
    while (!atomic_load(&busy_go)) nd_consume(1); /* never receives */
}

/* message_queue_len counts messages the process has not looked at yet, too */
static void body_queue_len(void *arg)
{
    term_t p;
    atomic_store(&busy_go, 0);
    assert_int_equal(nd_spawn(busy, NULL, NULL, &p), 0);
    for (int i = 0; i < 1000; i++) nd_send(p, I(i));
    nd_proc_info info;
    assert_int_equal(nd_process_info(p, &info), 0);
    assert_int_equal(info.message_queue_len, 1000);
    nd_proc_info_free(&info);
    atomic_store(&busy_go, 1);
    term_free(p);
}

static void test_queue_len(void **state)
{
    nd_test_run(body_queue_len, NULL, "normal");
}

static void test_info_lists(void **state)
{
    nd_test_run(body_info_lists, NULL, "normal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monitors),     cmocka_unit_test(test_registry),
        cmocka_unit_test(test_timers),       cmocka_unit_test(test_spawn_opts),
        cmocka_unit_test(test_dist),         cmocka_unit_test(test_dist_take),
        cmocka_unit_test(test_pair_order),   cmocka_unit_test(test_info_lists),
        cmocka_unit_test(test_dist_inbound), cmocka_unit_test(test_queue_len),
    };
    return cmocka_run_group_tests(tests, nd_test_setup, nd_test_teardown);
}
