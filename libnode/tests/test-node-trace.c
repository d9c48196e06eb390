/* Tests: trace events — a scripted workload's exact events in causal order, limits, filters. */
#include "nd_test.h"
#include <girder/node_dist.h>
#include <girder/node_obs.h>
#include <stdatomic.h>
#include <time.h>

#define MAXEV 200000
static nd_event evs[MAXEV];

/* Drains everything recorded (tracing stopped) into evs; checks it is in timestamp order. */
static size_t drain_all(void)
{
    size_t n = 0, got;
    while (n < MAXEV && (got = nd_trace_drain(evs + n, MAXEV - n)) > 0) n += got;
    for (size_t i = 1; i < n; i++) assert_true(evs[i - 1].ts <= evs[i].ts);
    return n;
}

/* A stable sort by timestamp (insertion: the runs of each drain are already in order). */
static void sort_by_ts(size_t n)
{
    for (size_t i = 1; i < n; i++) {
        nd_event e = evs[i];
        size_t j = i;
        while (j > 0 && evs[j - 1].ts > e.ts) {
            evs[j] = evs[j - 1];
            j--;
        }
        evs[j] = e;
    }
}

/*
** With tracing on, drains until `exits` processes have been switched out for the last time (a
** process's end is reported to nd_run before its scheduler has switched away from it), then
** stops and drains the rest. Events of several drains are sorted by timestamp, as the header
** says a whole capture must be.
*/
static size_t capture_until_exits(size_t exits)
{
    size_t n = 0, seen = 0;
    for (int i = 0; i < 10000 && seen < exits; i++) {
        size_t got = nd_trace_drain(evs + n, MAXEV - n);
        for (size_t k = n; k < n + got; k++)
            seen +=
                evs[k].kind == ND_EV_SCHED_OUT && (evs[k].info & ND_EV_INFO_MASK) == ND_OUT_EXIT;
        n += got;
        if (seen < exits) nd_sleep(1);
    }
    assert_int_equal(seen, exits);
    assert_int_equal(nd_trace_stop(), 0);
    size_t got;
    while (n < MAXEV && (got = nd_trace_drain(evs + n, MAXEV - n)) > 0) n += got;
    sort_by_ts(n);
    return n;
}

static size_t count_kind(size_t n, int kind)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += evs[i].kind == kind;
    return c;
}

static bool same_pid(const nd_ev_pid *a, term_t pid)
{
    term_pid_info pi;
    return term_pid_get(pid, &pi) == 0 && a->id == pi.id && a->serial == pi.serial;
}

/* ---------------------------------------------------------------- the scripted workload */

#define K 20

static void worker(void *arg)
{
    (void)arg;
    term_t m;
    assert_int_equal(nd_receive(ND_INFINITY, &m), 0);
    /* {ping, From, I} -> From ! {pong, I} */
    nd_send(term_tuple_elem(m, 1), T2(A("pong"), term_dup(term_tuple_elem(m, 2))));
    term_free(m);
}

static term_t workers[K];

static void script(void *arg)
{
    (void)arg;
    for (int i = 0; i < K; i++) {
        nd_spawn_opts o = {0};
        term_t ref;
        o.monitor = true;
        o.monitor_ref = &ref;
        assert_int_equal(nd_spawn(worker, NULL, &o, &workers[i]), 0);
        term_free(ref);
    }
    for (int i = 0; i < K; i++) nd_send(workers[i], T3(A("ping"), term_dup(nd_self()), I(i)));
    int pongs = 0, downs = 0;
    while (pongs + downs < 2 * K) {
        term_t m;
        assert_int_equal(nd_receive(ND_INFINITY, &m), 0);
        if (term_tuple_elem(m, 0) == A("pong")) pongs++;
        if (term_tuple_elem(m, 0) == A("DOWN")) downs++;
        term_free(m);
    }
    assert_int_equal(pongs, K);
    assert_int_equal(downs, K);
}

/* The index of the first event of `kind` about pid (as subject), or n. */
static size_t first_of(size_t n, int kind, term_t pid)
{
    for (size_t i = 0; i < n; i++)
        if (evs[i].kind == kind && same_pid(&evs[i].pid, pid)) return i;
    return n;
}

static void test_scripted(void **state)
{
    nd_trace_stats st;
    nd_trace_stats_get(&st);
    assert_false(st.on);
    assert_int_equal(nd_trace_start(NULL), 0);
    assert_int_equal(nd_trace_start(NULL), ND_ESTATE);
    term_t reason;
    assert_int_equal(nd_run(script, NULL, ND_TEST_TIMEOUT_MS, &reason), 0);
    assert_true(reason == A("normal"));
    size_t n = capture_until_exits(K + 1);
    assert_int_equal(nd_trace_stop(), ND_ESTATE);
    nd_trace_stats_get(&st);
    assert_int_equal(st.dropped_full + st.dropped_rate, 0);
    assert_int_equal(st.recorded, n);

    /* exactly the workload's events */
    assert_int_equal(count_kind(n, ND_EV_SPAWN), K + 1);   /* the workers and the script */
    assert_int_equal(count_kind(n, ND_EV_SEND), 2 * K);    /* pings and pongs */
    assert_int_equal(count_kind(n, ND_EV_RECEIVE), 3 * K); /* pings; pongs and DOWNs */
    assert_int_equal(count_kind(n, ND_EV_EXIT), K + 1);
    assert_int_equal(count_kind(n, ND_EV_DOWN), K);
    assert_int_equal(count_kind(n, ND_EV_EXIT_SIGNAL) + count_kind(n, ND_EV_LINK) +
                         count_kind(n, ND_EV_MONITOR) + count_kind(n, ND_EV_DEMONITOR) +
                         count_kind(n, ND_EV_TIMER) + count_kind(n, ND_EV_MAILBOX) +
                         count_kind(n, ND_EV_LONG_SCHEDULE),
                     0);

    /* causality: every receive follows the send (or DOWN) of the message it took */
    for (size_t i = 0; i < n; i++) {
        if (evs[i].kind != ND_EV_RECEIVE) continue;
        assert_int_equal(evs[i].info, ND_RECV_MATCHED);
        assert_true(evs[i].arg >= 1);
        size_t j;
        for (j = 0; j < i; j++)
            if ((evs[j].kind == ND_EV_SEND || evs[j].kind == ND_EV_DOWN) && evs[j].id == evs[i].id)
                break;
        assert_true(j < i);
        assert_true(evs[i].id != 0);
        /* the receiver is the process the message was sent to */
        assert_true(evs[j].peer.id == evs[i].pid.id && evs[j].peer.serial == evs[i].pid.serial);
    }
    /* each worker: spawned, then runs, receives, sends, ends, and only then its DOWN */
    for (int w = 0; w < K; w++) {
        size_t sp = n;
        for (size_t i = 0; i < n; i++)
            if (evs[i].kind == ND_EV_SPAWN && same_pid(&evs[i].peer, workers[w])) sp = i;
        assert_true(sp < n);
        assert_int_equal(evs[sp].info, ND_SPAWN_MONITOR);
        size_t in = first_of(n, ND_EV_SCHED_IN, workers[w]);
        size_t rc = first_of(n, ND_EV_RECEIVE, workers[w]);
        size_t sd = first_of(n, ND_EV_SEND, workers[w]);
        size_t ex = first_of(n, ND_EV_EXIT, workers[w]);
        size_t dn = first_of(n, ND_EV_DOWN, workers[w]);
        assert_true(sp < in && in < rc && rc < sd && sd < ex && ex < dn && dn < n);
        assert_true(evs[ex].reason == A("normal") && evs[dn].reason == A("normal"));
        assert_true(evs[sd].arg > 0); /* {pong, I}: a boxed tuple */
        /* a worker is scheduled out for the last time because it exits */
        size_t last_out = n;
        for (size_t i = 0; i < n; i++)
            if (evs[i].kind == ND_EV_SCHED_OUT && same_pid(&evs[i].pid, workers[w])) last_out = i;
        assert_true(last_out < n && last_out > ex);
        assert_int_equal(evs[last_out].info, ND_OUT_EXIT);
        term_free(workers[w]);
    }
    /* every event on a scheduler but the script's spawn, made by the test's own thread */
    for (size_t i = 0; i < n; i++)
        assert_true(evs[i].sched < 2 || (evs[i].sched == ND_EV_NO_SCHED &&
                                         evs[i].kind == ND_EV_SPAWN && evs[i].pid.id == 0));
}

/* ---------------------------------------------------------------- off, filters, limits */

static void sender(void *arg)
{
    int n = (int)(intptr_t)arg;
    for (int i = 0; i < n; i++) nd_send(nd_self(), I(i));
    term_t m;
    while (nd_receive(0, &m) == 0) term_free(m);
}

static void test_off(void **state)
{
    nd_test_run(sender, (void *)100, "normal");
    nd_event e[4];
    assert_int_equal(nd_trace_drain(e, 4), 0);
    nd_trace_stats st;
    nd_trace_stats_get(&st);
    assert_int_equal(st.recorded, 0);
}

static void test_ring_full(void **state)
{
    nd_trace_opts o = {0};
    o.kinds = 1u << ND_EV_SEND;
    o.ring_events = 64;
    o.max_rate = UINT64_MAX;
    assert_int_equal(nd_trace_start(&o), 0);
    nd_test_run(sender, (void *)1000, "normal");
    assert_int_equal(nd_trace_stop(), 0);
    nd_trace_stats st;
    nd_trace_stats_get(&st);
    assert_int_equal(st.recorded, 64);
    assert_int_equal(st.dropped_full, 1000 - 64);
    assert_int_equal(st.dropped_rate, 0);
    size_t n = drain_all();
    assert_int_equal(n, 64);
    /* the ring keeps the oldest: the first 64 sends, in order */
    for (size_t i = 1; i < n; i++) assert_true(evs[i].id > evs[i - 1].id);
    /* drained, it takes events again */
    assert_int_equal(nd_trace_start(&o), 0);
    nd_test_run(sender, (void *)10, "normal");
    assert_int_equal(nd_trace_stop(), 0);
    assert_int_equal(drain_all(), 10);
    /* a drain consumes; the counts run on from the first start */
    assert_int_equal(nd_trace_drain(evs, MAXEV), 0);
    nd_trace_stats_get(&st);
    assert_int_equal(st.recorded, 64 + 10);
    assert_int_equal(st.dropped_full, 1000 - 64);
}

static void test_rate(void **state)
{
    nd_trace_opts o = {0};
    o.kinds = 1u << ND_EV_SEND;
    o.max_rate = 1000; /* 10 per 10 ms window */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(nd_trace_start(&o), 0);
    nd_test_run(sender, (void *)20000, "normal");
    assert_int_equal(nd_trace_stop(), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    nd_trace_stats st;
    nd_trace_stats_get(&st);
    assert_int_equal(st.recorded + st.dropped_rate, 20000);
    assert_int_equal(st.dropped_full, 0);
    uint64_t ms =
        (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000 + (uint64_t)(t1.tv_nsec - t0.tv_nsec) / 1000000;
    /* at most 10 per window started while it ran (one ring wrote them all) */
    assert_true(st.recorded <= 10 * (ms / 10 + 2));
    assert_true(st.dropped_rate > 0);
    assert_int_equal(drain_all(), st.recorded);
}

static void echo(void *arg)
{
    (void)arg;
    term_t m;
    while (nd_receive(ND_INFINITY, &m) == 0) {
        if (m == A("stop")) break;
        nd_send(term_tuple_elem(m, 0), term_dup(term_tuple_elem(m, 1)));
        term_free(m);
    }
}

static term_t g_watched;

static void filtered(void *arg)
{
    (void)arg;
    term_t a, b;
    assert_int_equal(nd_spawn(echo, NULL, NULL, &a), 0);
    assert_int_equal(nd_spawn(echo, NULL, NULL, &b), 0);
    g_watched = term_dup(a);
    nd_trace_opts o = {0};
    o.pid = a;
    o.kinds = (1u << ND_EV_SEND) | (1u << ND_EV_RECEIVE);
    assert_int_equal(nd_trace_start(&o), 0);
    for (int i = 0; i < 10; i++) {
        term_t m;
        nd_send(a, T2(term_dup(nd_self()), I(i)));
        nd_send(b, T2(term_dup(nd_self()), I(i)));
        assert_int_equal(nd_receive(5000, &m), 0);
        assert_int_equal(nd_receive(5000, &m), 0);
    }
    assert_int_equal(nd_trace_stop(), 0);
    nd_send(a, A("stop"));
    nd_send(b, A("stop"));
    term_free(a);
    term_free(b);
}

static void test_filter(void **state)
{
    nd_test_run(filtered, NULL, "normal");
    size_t n = drain_all();
    /* a's: 10 sends to it, its 10 receives, its 10 replies */
    assert_int_equal(n, 30);
    for (size_t i = 0; i < n; i++)
        assert_true(same_pid(&evs[i].pid, g_watched) || same_pid(&evs[i].peer, g_watched));
    assert_int_equal(count_kind(n, ND_EV_RECEIVE), 10);
    term_free(g_watched);
    nd_trace_opts o = {0};
    o.pid = term_pid(nd_node(), 999999, 1, nd_creation());
    assert_int_equal(nd_trace_start(&o), ND_EINVAL);
    term_free(o.pid);
}

/* ---------------------------------------------------------------- why a process stops */

static void scheduled(void *arg)
{
    (void)arg;
    nd_yield();                                   /* yield */
    for (int i = 0; i < 3; i++) nd_consume(4000); /* budget */
    term_t m;
    assert_int_equal(nd_receive(20, &m), ND_ETIMEOUT); /* waits; its timer fires */
    nd_timer_t t;
    assert_int_equal(nd_send_after(10, nd_self(), A("tick"), &t), 0);
    assert_int_equal(nd_receive(5000, &m), 0); /* the send_after */
    assert_true(m == A("tick"));
}

static void test_sched_out(void **state)
{
    assert_int_equal(nd_trace_start(NULL), 0);
    nd_test_run(scheduled, NULL, "normal");
    size_t n = capture_until_exits(1);
    size_t why[8] = {0};
    for (size_t i = 0; i < n; i++)
        if (evs[i].kind == ND_EV_SCHED_OUT) why[evs[i].info & ND_EV_INFO_MASK]++;
    assert_true(why[ND_OUT_YIELD] >= 1);
    assert_true(why[ND_OUT_BUDGET] >= 3);
    assert_true(why[ND_OUT_WAIT] >= 2);
    assert_int_equal(why[ND_OUT_EXIT], 1);
    size_t tr = 0, ts = 0, to = 0;
    for (size_t i = 0; i < n; i++) {
        if (evs[i].kind == ND_EV_TIMER && (evs[i].info & ND_EV_INFO_MASK) == ND_TIMER_RECEIVE) tr++;
        if (evs[i].kind == ND_EV_TIMER && (evs[i].info & ND_EV_INFO_MASK) == ND_TIMER_SEND) {
            ts++;
            assert_true(evs[i].id != 0);
        }
        if (evs[i].kind == ND_EV_RECEIVE && evs[i].info == ND_RECV_TIMEOUT) to++;
    }
    assert_int_equal(tr, 1);
    assert_int_equal(ts, 1);
    assert_int_equal(to, 1);
}

/* ---------------------------------------------------------------- links and exit signals */

static void dies(void *arg)
{
    (void)arg;
    term_t m;
    assert_int_equal(nd_receive(ND_INFINITY, &m), 0);
    term_free(m);
    nd_exit(T2(A("shutdown"), A("x")));
}

static void linker(void *arg)
{
    (void)arg;
    nd_trap_exit(true);
    term_t w;
    assert_int_equal(nd_spawn(dies, NULL, NULL, &w), 0);
    assert_int_equal(nd_link(w), 0);
    nd_send(w, A("go"));
    term_t m = nd_test_recv(5000);
    assert_true(term_tuple_elem(m, 0) == A("EXIT"));
    term_free(m);
    term_free(w);
}

static void test_exit_signal(void **state)
{
    assert_int_equal(nd_trace_start(NULL), 0);
    nd_test_run(linker, NULL, "normal");
    assert_int_equal(nd_trace_stop(), 0);
    size_t n = drain_all();
    assert_int_equal(count_kind(n, ND_EV_LINK), 1);
    assert_int_equal(count_kind(n, ND_EV_EXIT_SIGNAL), 1);
    size_t x = 0;
    while (evs[x].kind != ND_EV_EXIT_SIGNAL) x++;
    assert_true(evs[x].reason == A("shutdown") && (evs[x].info & ND_EV_F_TAG));
    assert_int_equal(evs[x].info & ND_EV_INFO_MASK, 0); /* a broken link */
    /* the 'EXIT' message it became is received after it */
    size_t r = n;
    for (size_t i = x + 1; i < n; i++)
        if (evs[i].kind == ND_EV_RECEIVE && evs[i].id == evs[x].id) r = i;
    assert_true(r < n);
}

static term_t mon_self, mon_target;

static void waiter(void *arg)
{
    (void)arg;
    term_t m;
    assert_int_equal(nd_receive(ND_INFINITY, &m), 0);
    term_free(m);
}

/* Monitors a local process, then demonitors it (the demonitor signal to a live local process
** carries its sender only for the trace). */
static void monitorer(void *arg)
{
    (void)arg;
    term_t ref;
    mon_self = term_dup(nd_self());
    assert_int_equal(nd_spawn(waiter, NULL, NULL, &mon_target), 0);
    assert_int_equal(nd_monitor(mon_target, &ref), 0);
    assert_int_equal(nd_demonitor(ref, ND_DEMONITOR_FLUSH), 0);
    term_free(ref);
    nd_send(mon_target, A("go"));
}

static void test_monitor_events(void **state)
{
    assert_int_equal(nd_trace_start(NULL), 0);
    nd_test_run(monitorer, NULL, "normal");
    nd_sleep(20);
    assert_int_equal(nd_trace_stop(), 0);
    size_t n = drain_all();
    assert_int_equal(count_kind(n, ND_EV_MONITOR), 1);
    assert_int_equal(count_kind(n, ND_EV_DEMONITOR), 1);
    for (size_t i = 0; i < n; i++)
        if (evs[i].kind == ND_EV_MONITOR || evs[i].kind == ND_EV_DEMONITOR) {
            assert_true(same_pid(&evs[i].pid, mon_self));
            assert_true(same_pid(&evs[i].peer, mon_target));
        }
    term_free(mon_self);
    term_free(mon_target);
}

/* ---------------------------------------------------------------- steals, long schedules */

static void busy(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++) nd_consume(4000);
}

static void spawner(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) nd_spawn(busy, NULL, NULL, NULL);
}

static void test_steal(void **state)
{
    nd_stats a, b;
    nd_get_stats(&a);
    assert_int_equal(nd_trace_start(&(nd_trace_opts){.kinds = 1u << ND_EV_STEAL}), 0);
    nd_test_run(spawner, NULL, "normal");
    while (nd_process_count() > 0) nd_sleep(1);
    assert_int_equal(nd_trace_stop(), 0);
    nd_get_stats(&b);
    size_t n = drain_all();
    /* one event per steal the statistics count, each naming the other scheduler */
    assert_int_equal(n, b.steals - a.steals);
    for (size_t i = 0; i < n; i++) {
        assert_true(evs[i].arg >= 1);
        assert_true(evs[i].id < 2 && evs[i].id != evs[i].sched);
    }
    fprintf(stderr, "steals recorded: %zu\n", n);
}

static _Atomic int long_seen;
static void on_long(term_t pid, uint64_t ns, void *ud)
{
    (void)pid;
    (void)ns;
    (void)ud;
    atomic_fetch_add(&long_seen, 1);
}

static int setup_long(void **state)
{
    (void)state;
    nd_config c = {0};
    c.schedulers = 2;
    c.long_schedule_ms = 50;
    c.long_schedule = on_long;
    return nd_init(&c);
}

static void hog(void *arg)
{
    (void)arg;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 200);
}

static void test_long_schedule(void **state)
{
    assert_int_equal(nd_trace_start(&(nd_trace_opts){.kinds = 1u << ND_EV_LONG_SCHEDULE}), 0);
    term_t reason;
    assert_int_equal(nd_run(hog, NULL, ND_TEST_TIMEOUT_MS, &reason), 0);
    assert_int_equal(nd_trace_stop(), 0);
    size_t n = drain_all();
    assert_int_equal(n, (size_t)atomic_load(&long_seen));
    assert_int_equal(n, 1);
    assert_true(evs[0].arg >= 50000000u);
    assert_true(evs[0].sched < 2);
    assert_true(evs[0].pid.id != 0);
}

/* ---------------------------------------------------------------- the distribution layer's */

static void busy_sender(void *arg)
{
    (void)arg;
    nd_trace_busy_dist(A("far@away"), 9000000);
}

static void test_busy_dist(void **state)
{
    nd_trace_busy_dist(A("far@away"), 1); /* off: nothing */
    assert_int_equal(nd_trace_start(NULL), 0);
    nd_test_run(busy_sender, NULL, "normal");
    nd_trace_busy_dist(A("far@away"), 5); /* from a thread that is not a process */
    assert_int_equal(nd_trace_stop(), 0);
    size_t n = drain_all(), k = 0;
    for (size_t i = 0; i < n; i++) {
        if (evs[i].kind != ND_EV_BUSY_DIST) continue;
        assert_true(evs[i].node == A("far@away"));
        if (k++ == 0) {
            assert_int_equal(evs[i].arg, 9000000);
            assert_true(evs[i].pid.id != 0 && evs[i].sched < 2);
        } else {
            assert_int_equal(evs[i].arg, 5);
            assert_true(evs[i].pid.id == 0 && evs[i].sched == ND_EV_NO_SCHED);
        }
    }
    assert_int_equal(k, 2);
    assert_true(strcmp(nd_event_kind_name(ND_EV_BUSY_DIST), "busy_dist") == 0);
    assert_true(strcmp(nd_event_kind_name(ND_EV_SEND), "send") == 0);
    assert_true(strcmp(nd_event_kind_name(99), "?") == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scripted, nd_test_setup, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_off, nd_test_setup, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_ring_full, nd_test_setup, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_rate, nd_test_setup, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_filter, nd_test_setup, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_sched_out, nd_test_setup, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_exit_signal, nd_test_setup, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_monitor_events, nd_test_setup, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_steal, nd_test_setup, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_long_schedule, setup_long, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_busy_dist, nd_test_setup, nd_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
