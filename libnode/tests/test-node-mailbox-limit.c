/* Tests: mailbox limits and their policies (report, kill, drop_newest), the log line, the event. */
#include "nd_test.h"
#include <girder/node_obs.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---------------------------------------------------------------- captured log lines */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[8192];
static int log_lines;

static void on_log(void *ud, int level, const char *line)
{
    (void)ud;
    pthread_mutex_lock(&log_mu);
    if (level == ND_LOG_WARNING && strstr(line, "event=mailbox_limit")) {
        log_lines++;
        strncat(log_buf, line, sizeof log_buf - strlen(log_buf) - 2);
        strcat(log_buf, "\n");
    }
    pthread_mutex_unlock(&log_mu);
}

static int lines_with(const char *needle)
{
    int n = 0;
    pthread_mutex_lock(&log_mu);
    for (const char *p = log_buf; (p = strstr(p, needle)) != NULL; p++) n++;
    pthread_mutex_unlock(&log_mu);
    return n;
}

static int setup_with(size_t limit, nd_mbox_policy pol)
{
    nd_config c = {0};
    c.schedulers = 2;
    c.log = on_log;
    c.mailbox_limit = limit;
    c.mailbox_policy = pol;
    pthread_mutex_lock(&log_mu);
    log_buf[0] = 0;
    log_lines = 0;
    pthread_mutex_unlock(&log_mu);
    return nd_init(&c);
}

static int setup(void **state)
{
    (void)state;
    return setup_with(0, ND_MBOX_DEFAULT);
}

static int setup_node_drop(void **state)
{
    (void)state;
    return setup_with(30, ND_MBOX_DROP_NEWEST);
}

static int teardown(void **state)
{
    (void)state;
    return nd_shutdown(5000);
}

/* ---------------------------------------------------------------- helpers */

static bool never(term_t m, void *ud)
{
    (void)m;
    (void)ud;
    return false;
}

/* A target that lets its queue fill while `hold` is set, then reports what it holds. */
typedef struct target {
    _Atomic int hold;
    term_t parent;
} target;

static void hoarder(void *arg)
{
    target *t = arg;
    for (int i = 0; i < 20000 && atomic_load(&t->hold); i++) {
        term_t m;
        nd_receive_if(never, NULL, 1, &m); /* sleeps without taking a message */
    }
    /* lift the limit so the report itself cannot be dropped, then send back every message */
    nd_set_mailbox_limit(ND_MBOX_UNLIMITED, ND_MBOX_REPORT);
    term_t l = TERM_NIL, m;
    size_t n = 0;
    term_t all[256];
    while (n < 256 && nd_receive(0, &m) == 0) all[n++] = m;
    l = term_list(n, all);
    nd_send(t->parent, T2(A("held"), l));
}

static term_t wait_held(void)
{
    term_pattern *p = term_pattern_compile("{held, L}", 9, NULL, NULL);
    term_t v[1] = {TERM_NONE}, m = TERM_NONE;
    nd_clause c = {p, v};
    assert_true(nd_receive_match(&c, 1, 10000, &m) == 0);
    term_t l = term_dup(v[0]);
    term_free(m);
    term_pattern_free(p);
    return l;
}

/* The queue's length as process_info sees it settles once the owner's drain is done. */
static void wait_queue(term_t pid, size_t n)
{
    for (int i = 0; i < 5000; i++) {
        nd_proc_info pi;
        assert_int_equal(nd_process_info(pid, &pi), 0);
        size_t len = pi.message_queue_len;
        nd_proc_info_free(&pi);
        if (len == n) return;
        nd_sleep(1);
    }
}

static nd_proc_info info_of(term_t pid)
{
    nd_proc_info pi;
    assert_int_equal(nd_process_info(pid, &pi), 0);
    return pi;
}

/* ---------------------------------------------------------------- report */

static void body_report(void *arg)
{
    (void)arg;
    target t = {1, nd_self()};
    nd_spawn_opts o = {0};
    o.mailbox_limit = 50;
    o.mailbox_policy = ND_MBOX_REPORT;
    term_t p;
    assert_int_equal(nd_spawn(hoarder, &t, &o, &p), 0);
    for (int i = 0; i < 200; i++) nd_send(p, I(i));
    wait_queue(p, 200);
    nd_proc_info pi = info_of(p);
    /* Erlang semantics: nothing lost */
    assert_int_equal(pi.message_queue_len, 200);
    assert_true(pi.message_queue_hwm >= 200); /* a sender racing a drain may count a batch twice */
    assert_int_equal(pi.messages_dropped, 0);
    assert_int_equal(pi.mailbox_limit, 50);
    assert_int_equal(pi.mailbox_policy, ND_MBOX_REPORT);
    nd_proc_info_free(&pi);
    /* one line for the process, however far past its limit it goes */
    assert_int_equal(log_lines, 1);
    term_pid_info id;
    term_pid_get(p, &id);
    char want[96];
    snprintf(want, sizeof want, "pid=<0.%u.%u> messages=", id.id, id.serial);
    assert_int_equal(lines_with(want), 1);
    snprintf(want, sizeof want, " limit=50 policy=report");
    assert_int_equal(lines_with(want), 1);
    atomic_store(&t.hold, 0);
    term_t l = wait_held();
    assert_int_equal(term_list_length(l), 200);
    int64_t k = 0;
    for (term_t c = l; term_is_cons(c); c = term_tl(c))
        assert_int_equal(term_small_value(term_hd(c)), k++);
    term_free(l);
    /* a second process crossing its limit gets its own line */
    target t2 = {1, nd_self()};
    term_t p2;
    assert_int_equal(nd_spawn(hoarder, &t2, &o, &p2), 0);
    for (int i = 0; i < 60; i++) nd_send(p2, I(i));
    assert_int_equal(log_lines, 2);
    atomic_store(&t2.hold, 0);
    term_free(wait_held());
    term_free(p);
    term_free(p2);
}

static void test_report(void **state)
{
    nd_test_run(body_report, NULL, "normal");
}

/* ---------------------------------------------------------------- the event */

static void body_event(void *arg)
{
    (void)arg;
    target t = {1, nd_self()};
    nd_spawn_opts o = {0};
    o.mailbox_limit = 10;
    o.mailbox_policy = ND_MBOX_REPORT;
    term_t p;
    assert_int_equal(nd_spawn(hoarder, &t, &o, &p), 0);
    assert_int_equal(nd_trace_start(&(nd_trace_opts){.kinds = 1u << ND_EV_MAILBOX}), 0);
    for (int i = 0; i < 30; i++) nd_send(p, I(i));
    assert_int_equal(nd_trace_stop(), 0);
    nd_event ev[8];
    size_t n = nd_trace_drain(ev, 8);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].kind, ND_EV_MAILBOX);
    assert_true(ev[0].arg > 10 && ev[0].arg <= 30);
    assert_int_equal(ev[0].info & ND_EV_INFO_MASK, ND_MBOX_REPORT);
    term_t who = nd_event_pid(&ev[0], false);
    assert_true(term_equal(who, p));
    term_free(who);
    atomic_store(&t.hold, 0);
    term_free(wait_held());
    term_free(p);
}

static void test_event(void **state)
{
    nd_test_run(body_event, NULL, "normal");
}

/* ---------------------------------------------------------------- kill */

static void trapper(void *arg)
{
    (void)arg;
    nd_trap_exit(true); /* the overflow kill is untrappable all the same */
    term_t m;
    nd_receive_if(never, NULL, ND_INFINITY, &m);
}

static void body_kill(void *arg)
{
    (void)arg;
    nd_spawn_opts o = {0};
    o.mailbox_limit = 10;
    o.mailbox_policy = ND_MBOX_KILL;
    term_t p, ref;
    assert_int_equal(nd_spawn(trapper, NULL, &o, &p), 0);
    assert_int_equal(nd_monitor(p, &ref), 0);
    for (int i = 0; i < 10; i++) nd_send(p, I(i));
    nd_sleep(20);
    assert_true(nd_is_alive(p)); /* at the limit, not past it */
    for (int i = 0; i < 100; i++) nd_send(p, I(i));
    term_t m = nd_test_recv(10000);
    assert_true(term_is_tuple(m) && term_tuple_elem(m, 0) == A("DOWN"));
    assert_true(term_tuple_elem(m, 4) == A("mailbox_overflow"));
    term_free(m);
    assert_int_equal(log_lines, 1);
    assert_int_equal(lines_with("limit=10 policy=kill"), 1);
    nd_metrics mt;
    assert_int_equal(nd_metrics_get(&mt), 0);
    assert_int_equal(mt.mailbox_kills, 1);
    nd_metrics_free(&mt);
    term_free(ref);
    term_free(p);
}

static void test_kill(void **state)
{
    nd_test_run(body_kill, NULL, "normal");
}

/* A process linked to one killed for overflow sees the reason. */
static void body_kill_link(void *arg)
{
    (void)arg;
    nd_trap_exit(true);
    nd_spawn_opts o = {0};
    o.link = true;
    o.mailbox_limit = 3;
    o.mailbox_policy = ND_MBOX_KILL;
    term_t p;
    assert_int_equal(nd_spawn(trapper, NULL, &o, &p), 0);
    for (int i = 0; i < 10; i++) nd_send(p, I(i));
    term_t m = nd_test_recv(10000);
    assert_true(term_is_tuple(m) && term_tuple_elem(m, 0) == A("EXIT"));
    assert_true(term_equal(term_tuple_elem(m, 1), p));
    assert_true(term_tuple_elem(m, 2) == A("mailbox_overflow"));
    term_free(m);
    term_free(p);
}

static void test_kill_link(void **state)
{
    nd_test_run(body_kill_link, NULL, "normal");
}

/* ---------------------------------------------------------------- drop_newest */

static void body_drop(void *arg)
{
    (void)arg;
    target t = {1, nd_self()};
    nd_spawn_opts o = {0};
    o.mailbox_limit = 5;
    o.mailbox_policy = ND_MBOX_DROP_NEWEST;
    term_t p;
    assert_int_equal(nd_spawn(hoarder, &t, &o, &p), 0);
    for (int i = 0; i < 20; i++) nd_send(p, I(i));
    wait_queue(p, 5);
    nd_proc_info pi = info_of(p);
    assert_int_equal(pi.message_queue_len, 5);
    assert_int_equal(pi.message_queue_hwm, 5);
    assert_int_equal(pi.messages_dropped, 15);
    assert_int_equal(pi.mailbox_policy, ND_MBOX_DROP_NEWEST);
    nd_proc_info_free(&pi);
    assert_int_equal(log_lines, 1);
    assert_int_equal(lines_with(" limit=5 policy=drop_newest"), 1);
    nd_metrics mt;
    assert_int_equal(nd_metrics_get(&mt), 0);
    assert_int_equal(mt.messages_dropped, 15);
    nd_metrics_free(&mt);
    atomic_store(&t.hold, 0);
    /* the oldest five were kept, in order */
    term_t l = wait_held();
    assert_int_equal(term_list_length(l), 5);
    int64_t k = 0;
    for (term_t c = l; term_is_cons(c); c = term_tl(c))
        assert_int_equal(term_small_value(term_hd(c)), k++);
    term_free(l);
    term_free(p);
}

static void test_drop(void **state)
{
    nd_test_run(body_drop, NULL, "normal");
}

/* ---------------------------------------------------------------- node default, setter */

static void body_node_default(void *arg)
{
    (void)arg;
    target t = {1, nd_self()};
    term_t p;
    assert_int_equal(nd_spawn(hoarder, &t, NULL, &p), 0); /* no option: the node's */
    for (int i = 0; i < 100; i++) nd_send(p, I(i));
    wait_queue(p, 30);
    nd_proc_info pi = info_of(p);
    assert_int_equal(pi.mailbox_limit, 30);
    assert_int_equal(pi.mailbox_policy, ND_MBOX_DROP_NEWEST);
    assert_int_equal(pi.message_queue_len, 30);
    assert_int_equal(pi.messages_dropped, 70);
    nd_proc_info_free(&pi);
    atomic_store(&t.hold, 0);
    term_free(wait_held());
    term_free(p);
    /* the setter: no limit for the calling process */
    assert_int_equal(nd_set_mailbox_limit(ND_MBOX_UNLIMITED, ND_MBOX_DEFAULT), 0);
    for (int i = 0; i < 100; i++) nd_send(nd_self(), I(i));
    pi = info_of(nd_self());
    assert_int_equal(pi.mailbox_limit, ND_MBOX_UNLIMITED);
    assert_int_equal(pi.mailbox_policy, ND_MBOX_DROP_NEWEST); /* the node's policy */
    assert_int_equal(pi.message_queue_len, 100);
    nd_proc_info_free(&pi);
    assert_int_equal(nd_set_mailbox_limit(10, (nd_mbox_policy)9), ND_EINVAL);
    term_t m;
    while (nd_receive(0, &m) == 0) term_free(m);
}

static void test_node_default(void **state)
{
    nd_test_run(body_node_default, NULL, "normal");
    assert_int_equal(nd_set_mailbox_limit(10, ND_MBOX_KILL), ND_ENOTPROC);
}

/* The default limit (100000, report) without any configuration. */
static void body_default(void *arg)
{
    (void)arg;
    nd_proc_info pi = info_of(nd_self());
    assert_int_equal(pi.mailbox_limit, 100000);
    assert_int_equal(pi.mailbox_policy, ND_MBOX_REPORT);
    nd_proc_info_free(&pi);
    nd_spawn_opts o = {0};
    o.mailbox_policy = (nd_mbox_policy)7;
    assert_int_equal(nd_spawn(trapper, NULL, &o, NULL), ND_EINVAL);
}

static void test_default(void **state)
{
    nd_test_run(body_default, NULL, "normal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_default, setup_node_drop, teardown),
        cmocka_unit_test_setup_teardown(test_default, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
