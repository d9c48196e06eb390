/* Tests: send/receive, order, selective receive, timeouts, receive marker, many senders, fairness.
 */
#include "nd_test.h"
#include <stdatomic.h>
#include <time.h>

static bool is_int(term_t m, void *ud)
{
    return term_is_small(m) && term_small_value(m) == (int64_t)(intptr_t)ud;
}

static void body_order(void *arg)
{
    for (int i = 0; i < 100; i++) nd_send(nd_self(), I(i));
    /* selective: take 50 first, the rest stays in order */
    term_t m;
    assert_int_equal(nd_receive_if(is_int, (void *)50, 0, &m), 0);
    assert_int_equal(term_small_value(m), 50);
    for (int i = 0; i < 100; i++) {
        if (i == 50) continue;
        assert_int_equal(nd_receive(0, &m), 0);
        assert_int_equal(term_small_value(m), i);
    }
    assert_int_equal(nd_receive(0, &m), ND_ETIMEOUT);
}

static void test_order(void **state)
{
    nd_test_run(body_order, NULL, "normal");
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void delayed_sender(void *arg)
{
    term_t to = (term_t)(uintptr_t)arg;
    nd_sleep(30);
    nd_send(to, I(7));
    term_free(to);
}

static void body_timeout(void *arg)
{
    term_t m;
    uint64_t t0 = now_ms();
    assert_int_equal(nd_receive(50, &m), ND_ETIMEOUT);
    uint64_t dt = now_ms() - t0;
    assert_true(dt >= 50 && dt < 1000);
    /* a message arriving during the wait ends it early */
    assert_int_equal(nd_spawn(delayed_sender, (void *)(uintptr_t)term_dup(nd_self()), NULL, NULL),
                     0);
    t0 = now_ms();
    assert_int_equal(nd_receive(5000, &m), 0);
    assert_int_equal(term_small_value(m), 7);
    assert_true(now_ms() - t0 < 2000);
    /* non-matching messages do not end the wait, but stay */
    nd_send(nd_self(), I(1));
    assert_int_equal(nd_receive_if(is_int, (void *)2, 30, &m), ND_ETIMEOUT);
    assert_int_equal(nd_receive(0, &m), 0);
    assert_int_equal(term_small_value(m), 1);
}

/* Holds its scheduler for 2 s without yielding (misbehaving C code). */
static void hog(void *arg)
{
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 2000) {
    }
}

/* A receive timeout is armed lazily (when its scheduler passes through its loop); a process
** whose scheduler is then held by another one still times out on time (the watchdog arms it,
** another scheduler fires it and runs the process). */
static void body_timeout_busy(void *arg)
{
    term_t m;
    assert_int_equal(nd_spawn(hog, NULL, NULL, NULL), 0); /* queued behind us, same scheduler */
    uint64_t t0 = now_ms();
    assert_int_equal(nd_receive(50, &m), ND_ETIMEOUT); /* switches straight to the hog */
    uint64_t dt = now_ms() - t0;
    assert_true(dt >= 50 && dt < 1000);
}

static _Atomic int flood_stop;

/* Sends non-matching messages to its target, yielding between them, until told to stop. */
static void flooder(void *arg)
{
    term_t to = (term_t)(uintptr_t)arg;
    uint64_t t0 = now_ms();
    while (!atomic_load(&flood_stop) && now_ms() - t0 < 5000) {
        nd_send(to, I(1));
        nd_yield();
    }
    term_free(to);
}

/* A stream of messages that do not match wakes the receiver again and again (each wake before
** its scheduler passes its loop); its timeout still ends the receive. */
static void body_timeout_flood(void *arg)
{
    term_t m;
    term_t fpid, ref;
    atomic_store(&flood_stop, 0);
    assert_int_equal(nd_spawn(flooder, (void *)(uintptr_t)term_dup(nd_self()), NULL, &fpid), 0);
    assert_int_equal(nd_monitor(fpid, &ref), 0);
    uint64_t t0 = now_ms();
    assert_int_equal(nd_receive_if(is_int, (void *)2, 100, &m), ND_ETIMEOUT);
    uint64_t dt = now_ms() - t0;
    atomic_store(&flood_stop, 1);
    assert_true(dt >= 100 && dt < 2000);
    /* the flooder frees its copy of our pid when it returns: wait for that, or the test's
    ** shutdown kills it first and the copy is never freed (LSan saw it ~3 runs in 10) */
    for (;;) {
        assert_int_equal(nd_receive(ND_TEST_TIMEOUT_MS, &m), 0);
        bool down =
            term_is_tuple(m) && term_tuple_arity(m) == 5 && term_equal(term_tuple_elem(m, 1), ref);
        term_free(m);
        if (down) break;
    }
    term_free(ref);
    term_free(fpid);
}

static void test_timeout_flood(void **state)
{
    nd_test_run(body_timeout_flood, NULL, "normal");
}

static void test_timeout_busy(void **state)
{
    nd_test_run(body_timeout_busy, NULL, "normal");
}

static void test_timeout(void **state)
{
    nd_test_run(body_timeout, NULL, "normal");
}

/* 20 senders x 5000 messages each to one receiver: all arrive, per-sender order kept. */
#define NS 20
#define NM 5000
static void flood(void *arg)
{
    term_t *a = arg;
    for (int i = 0; i < NM; i++) nd_send(a[0], T2(term_dup(a[1]), I(i)));
}

static void body_many_senders(void *arg)
{
    term_t args[NS][2];
    int next[NS];
    for (int i = 0; i < NS; i++) {
        args[i][0] = nd_self();
        args[i][1] = I(i);
        next[i] = 0;
        assert_int_equal(nd_spawn(flood, args[i], NULL, NULL), 0);
    }
    for (int k = 0; k < NS * NM; k++) {
        term_t m = nd_test_recv(10000);
        int s = (int)term_small_value(term_tuple_elem(m, 0));
        int v = (int)term_small_value(term_tuple_elem(m, 1));
        assert_int_equal(v, next[s]);
        next[s]++;
        term_free(m);
    }
}

static void test_many_senders(void **state)
{
    nd_test_run(body_many_senders, NULL, "normal");
}

/* The "wait for the reply to this ref" case must not rescan a long queue. */
static bool is_ref_reply(term_t m, void *ud)
{
    atomic_fetch_add((_Atomic long *)((void **)ud)[1], 1);
    return term_is_tuple(m) && term_equal(term_tuple_elem(m, 0), *(term_t *)((void **)ud)[0]);
}

static void replier(void *arg)
{
    for (;;) {
        term_t m = nd_test_recv(ND_INFINITY);
        if (term_is_atom(m)) return;
        nd_send(term_tuple_elem(m, 0), T2(term_dup(term_tuple_elem(m, 1)), A("ok")));
        term_free(m);
    }
}

static _Atomic long scans;

static void body_marker(void *arg)
{
    /* 5000 unrelated messages sit in the queue */
    for (int i = 0; i < 5000; i++) nd_send(nd_self(), I(i));
    term_t srv;
    assert_int_equal(nd_spawn(replier, NULL, NULL, &srv), 0);
    for (int k = 0; k < 200; k++) {
        term_t ref = nd_make_ref();
        nd_recv_mark();
        nd_send(srv, T2(term_dup(nd_self()), term_dup(ref)));
        void *ud[2] = {&ref, &scans};
        nd_recv r = {is_ref_reply, ud, NULL, 0, 5000, true};
        term_t m;
        assert_int_equal(nd_receive_ex(&r, &m), 0);
        term_free(m);
        term_free(ref);
    }
    /* without the marker this would be 200 * 5000 predicate calls */
    assert_true(atomic_load(&scans) <= 200 * 2);
    nd_send(srv, A("stop"));
    term_free(srv);
    term_t m;
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(nd_receive(0, &m), 0);
        assert_int_equal(term_small_value(m), i);
    }
}

static void test_marker(void **state)
{
    nd_test_run(body_marker, NULL, "normal");
}

/* A CPU-bound process that calls nd_consume() does not starve others on one scheduler. */
static _Atomic int spin_stop;
static void spinner(void *arg)
{
    while (!atomic_load(&spin_stop)) nd_consume(1);
}

static void body_fair(void *arg)
{
    term_t a, b;
    assert_int_equal(nd_spawn(spinner, NULL, NULL, &a), 0);
    assert_int_equal(nd_spawn(spinner, NULL, NULL, &b), 0);
    for (int i = 0; i < 20; i++) nd_sleep(1); /* needs the scheduler back each time */
    nd_proc_info info;
    assert_int_equal(nd_process_info(a, &info), 0);
    assert_true(info.reductions > 0);
    nd_proc_info_free(&info);
    atomic_store(&spin_stop, 1);
    nd_stats st;
    nd_get_stats(&st);
    assert_true(st.steals > 0); /* the second scheduler took work from the first */
    term_free(a);
    term_free(b);
}

static void test_fair(void **state)
{
    nd_test_run(body_fair, NULL, "normal");
}

static void blocker(void *arg)
{
    term_t m;
    nd_receive(ND_INFINITY, &m);
    term_free(m);
}

static void body_info(void *arg)
{
    term_t p;
    assert_int_equal(nd_spawn(blocker, NULL, NULL, &p), 0);
    nd_sleep(10);
    nd_proc_info info;
    assert_int_equal(nd_process_info(p, &info), 0);
    assert_int_equal(info.status, ND_ST_WAITING);
    assert_int_equal(info.message_queue_len, 0);
    assert_true(info.memory > 0);
    nd_proc_info_free(&info);
    assert_true(nd_is_alive(p));
    nd_send(p, A("go"));
    nd_sleep(20);
    assert_false(nd_is_alive(p));
    assert_int_equal(nd_process_info(p, &info), ND_ENOPROC);
    /* sending to a dead pid is fine */
    assert_int_equal(nd_send(p, A("late")), 0);
    term_free(p);
}

static void test_info(void **state)
{
    nd_test_run(body_info, NULL, "normal");
}

/* Waits for one message, then checks it is `ok` and that nothing else came (the stale sends of
** body_stale_slot must not reach it). */
static void slot_heir(void *arg)
{
    term_t m;
    nd_receive(ND_INFINITY, &m);
    term_t rest;
    bool more = nd_receive(0, &rest) == 0;
    if (more) term_free(rest);
    nd_send((term_t)(uintptr_t)arg, term_tuplev(2, m, more ? A("more") : A("none")));
}

/*
** A send to a pid whose slot a new process now has (nd_send takes its reference and counts the
** message in with one CAS, then finds the serial changed): nothing is delivered, and the count
** it took is given back, so the new process's queue length stays right.
*/
static void body_stale_slot(void *arg)
{
    term_t self = nd_self();
    for (int attempt = 0; attempt < 200; attempt++) {
        term_t old;
        assert_int_equal(nd_spawn(blocker, NULL, NULL, &old), 0);
        term_pid_info oi;
        assert_int_equal(term_pid_get(old, &oi), 0);
        nd_send(old, A("go"));
        while (nd_is_alive(old)) nd_sleep(1);
        nd_sleep(2); /* the slot is freed once the exit's scheduler drops the last reference */
        term_t heir[16];
        int n = 0, hit = -1;
        for (; n < 16; n++) {
            assert_int_equal(nd_spawn(slot_heir, (void *)(uintptr_t)self, NULL, &heir[n]), 0);
            term_pid_info hi;
            assert_int_equal(term_pid_get(heir[n], &hi), 0);
            if (hi.id == oi.id) {
                assert_true(hi.serial != oi.serial);
                hit = n++;
                break;
            }
        }
        if (hit >= 0) {
            for (int i = 0; i < 1000; i++) assert_int_equal(nd_send(old, A("stale")), 0);
            nd_proc_info info;
            assert_int_equal(nd_process_info(heir[hit], &info), 0);
            assert_int_equal(info.message_queue_len, 0);
            nd_proc_info_free(&info);
        }
        for (int i = 0; i < n; i++) {
            nd_send(heir[i], A("ok"));
            term_t m;
            assert_int_equal(nd_receive(5000, &m), 0);
            assert_true(term_is_tuple(m) && term_tuple_elem(m, 0) == A("ok") &&
                        term_tuple_elem(m, 1) == A("none"));
            term_free(m);
            term_free(heir[i]);
        }
        term_free(old);
        if (hit >= 0) return;
    }
    fail_msg("no slot was reused in 200 attempts");
}

static void test_stale_slot(void **state)
{
    nd_test_run(body_stale_slot, NULL, "normal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_many_senders), cmocka_unit_test(test_marker),
        cmocka_unit_test(test_fair),         cmocka_unit_test(test_info),
        cmocka_unit_test(test_timeout_busy), cmocka_unit_test(test_timeout_flood),
        cmocka_unit_test(test_stale_slot),
    };
    return cmocka_run_group_tests(tests, nd_test_setup, nd_test_teardown);
}
