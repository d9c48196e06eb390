/* Tests: supervisors — strategies, restart types, intensity, child operations, shutdown order and
** timeouts, simple_one_for_one, failure to start, and a three-level tree. */
#include "nd_test.h"
#include <stdatomic.h>

/* A worker: a server registered under the name given as arg; logs its terminate. */
static char term_log[64];
static _Atomic int term_log_len;

static int w_init(void *arg, void **state, term_t *reason)
{
    *state = arg;
    return 0;
}

static int w_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    *reply = A("pong");
    return ND_REPLY;
}

static void w_terminate(void *state, term_t reason)
{
    const char *name = state;
    int i = atomic_fetch_add(&term_log_len, 1);
    if (i < 63) term_log[i] = name[strlen(name) - 1];
}

static const nd_server_ops worker_ops = {w_init, w_call, NULL, NULL, w_terminate};

static int start_worker(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    nd_server_opts o = {0};
    o.link = true;
    o.name = A((const char *)arg);
    o.trap_exit = true; /* so that shutdown runs terminate */
    return nd_server_start(&worker_ops, arg, &o, pid, reason);
}

static int start_failing(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    *reason = A("no_way");
    return ND_ESTART;
}

static void plain_worker(void *arg)
{
    for (;;) term_free(nd_test_recv(ND_INFINITY));
}

static int start_plain(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    return nd_spawn_link(plain_worker, arg, pid);
}

static void stubborn(void *arg)
{
    nd_trap_exit(true);
    for (;;) term_free(nd_test_recv(ND_INFINITY)); /* ignores shutdown */
}

static int start_stubborn(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    return nd_spawn_link(stubborn, arg, pid);
}

static nd_child_spec spec(const char *id, nd_restart r)
{
    nd_child_spec s = {A(id), start_worker, (void *)id, r, 1000, ND_WORKER};
    return s;
}

static term_t where(const char *name)
{
    for (int i = 0; i < 500; i++) {
        term_t p = nd_whereis(A(name));
        if (p != TERM_NONE) return p;
        nd_sleep(2);
    }
    return TERM_NONE;
}

static void kill_and_wait(term_t pid)
{
    term_t ref, m;
    nd_monitor(pid, &ref);
    nd_exit_signal(pid, A("kill"));
    for (;;) {
        assert_int_equal(nd_receive(5000, &m), 0);
        bool mine =
            term_is_tuple(m) && term_tuple_arity(m) == 5 && term_equal(term_tuple_elem(m, 1), ref);
        term_free(m);
        if (mine) break;
    }
    term_free(ref);
}

/* Kills the child `victim` of a supervisor with strategy st; returns which of w1..w3 got new pids
** as a 3-char string of 'n'(new)/'s'(same). */
static void strategy_case(nd_strategy st, const char *expect)
{
    nd_child_spec kids[3] = {spec("w1", ND_PERMANENT), spec("w2", ND_PERMANENT),
                             spec("w3", ND_PERMANENT)};
    nd_sup_flags f = {st, 5, 5000};
    term_t sup;
    assert_int_equal(nd_supervisor_start(&f, kids, 3, NULL, &sup, NULL), 0);
    term_t before[3] = {where("w1"), where("w2"), where("w3")};
    kill_and_wait(before[1]);
    /* the restarts take a moment (long under a sanitizer on a loaded machine): look until the
    ** expected picture shows, then once more 100 ms later, so that a picture that only passes
    ** through the expected one (a wrong strategy restarting too much, late) still fails */
    char got[4] = {0};
    const char *names[3] = {"w1", "w2", "w3"};
    for (int round = 0, settled = 0; round < 500 && settled < 2; round++) {
        nd_sleep(round == 0 ? 20 : settled ? 100 : 10);
        for (int i = 0; i < 3; i++) {
            term_t now = where(names[i]);
            assert_true(now != TERM_NONE);
            got[i] = term_equal(now, before[i]) ? 's' : 'n';
            term_free(now);
        }
        settled = strcmp(got, expect) == 0 ? settled + 1 : 0;
    }
    for (int i = 0; i < 3; i++) term_free(before[i]);
    if (strcmp(got, expect) != 0) fprintf(stderr, "strategy %d: got %s want %s\n", st, got, expect);
    assert_true(strcmp(got, expect) == 0);
    assert_int_equal(nd_server_stop(sup, A("shutdown"), 5000), 0);
    term_free(sup);
}

static void body_strategies(void *arg)
{
    strategy_case(ND_ONE_FOR_ONE, "sns");
    strategy_case(ND_ONE_FOR_ALL, "nnn");
    strategy_case(ND_REST_FOR_ONE, "snn");
}

static void test_strategies(void **state)
{
    nd_test_run(body_strategies, NULL, "normal");
}

static void body_intensity(void *arg)
{
    nd_child_spec kids[1] = {spec("w1", ND_PERMANENT)};
    nd_sup_flags f = {ND_ONE_FOR_ONE, 2, 10000};
    term_t sup, ref, m;
    assert_int_equal(nd_supervisor_start(&f, kids, 1, NULL, &sup, NULL), 0);
    assert_int_equal(nd_monitor(sup, &ref), 0);
    for (int i = 0; i < 3; i++) {
        term_t w = where("w1");
        if (w == TERM_NONE) break;
        nd_exit_signal(w, A("kill")); /* workers trap exits */
        nd_sleep(20);
        term_free(w);
    }
    assert_int_equal(nd_receive(5000, &m), 0);
    assert_true(term_tuple_elem(m, 0) == A("DOWN"));
    assert_true(term_tuple_elem(m, 4) == A("shutdown"));
    term_free(m);
    term_free(ref);
    term_free(sup);
}

static void test_intensity(void **state)
{
    nd_test_run(body_intensity, NULL, "normal");
}

static void body_restart_types(void *arg)
{
    nd_child_spec kids[3] = {spec("w1", ND_TEMPORARY), spec("w2", ND_TRANSIENT),
                             spec("w3", ND_TRANSIENT)};
    nd_sup_flags f = {ND_ONE_FOR_ONE, 5, 5000};
    term_t sup, l;
    assert_int_equal(nd_supervisor_start(&f, kids, 3, NULL, &sup, NULL), 0);
    term_t w1 = where("w1"), w2 = where("w2"), w3 = where("w3");
    nd_exit_signal(w1, A("kill")); /* temporary: gone for good, spec removed */
    assert_int_equal(nd_server_stop(w2, A("normal"), 5000), 0); /* transient, normal: stays down */
    nd_exit_signal(w3, A("kill"));                              /* transient, abnormal: restarted */
    nd_sleep(30);
    assert_int_equal(nd_sup_which_children(sup, 5000, &l), 0);
    assert_int_equal(term_list_length(l), 2);
    term_t e = term_hd(l);
    assert_true(term_tuple_elem(e, 0) == A("w2"));
    assert_true(term_tuple_elem(e, 1) == A("undefined"));
    e = term_hd(term_tl(l));
    assert_true(term_tuple_elem(e, 0) == A("w3"));
    assert_true(term_is_pid(term_tuple_elem(e, 1)));
    assert_false(term_equal(term_tuple_elem(e, 1), w3));
    term_free(l);
    term_free(w1);
    term_free(w2);
    term_free(w3);
    assert_int_equal(nd_server_stop(sup, A("shutdown"), 5000), 0);
    term_free(sup);
}

static void test_restart_types(void **state)
{
    nd_test_run(body_restart_types, NULL, "normal");
}

static void body_child_ops(void *arg)
{
    nd_sup_flags f = {ND_ONE_FOR_ONE, 5, 5000};
    term_t sup, pid, l;
    assert_int_equal(nd_supervisor_start(&f, NULL, 0, NULL, &sup, NULL), 0);
    nd_child_spec a = spec("w1", ND_PERMANENT), b = spec("w2", ND_PERMANENT);
    assert_int_equal(nd_sup_start_child(sup, &a, 5000, &pid), 0);
    assert_true(term_is_pid(pid));
    term_free(pid);
    assert_int_equal(nd_sup_start_child(sup, &a, 5000, NULL), ND_ERUNNING);
    assert_int_equal(nd_sup_start_child(sup, &b, 5000, NULL), 0);
    assert_int_equal(nd_sup_delete_child(sup, A("w1"), 5000), ND_ERUNNING);
    assert_int_equal(nd_sup_terminate_child(sup, A("w1"), 5000), 0);
    assert_int_equal(nd_sup_start_child(sup, &a, 5000, NULL), ND_EEXIST);
    assert_int_equal(nd_sup_restart_child(sup, A("w1"), 5000, &pid), 0);
    term_free(pid);
    assert_int_equal(nd_sup_terminate_child(sup, A("w1"), 5000), 0);
    assert_int_equal(nd_sup_delete_child(sup, A("w1"), 5000), 0);
    assert_int_equal(nd_sup_delete_child(sup, A("w1"), 5000), ND_ENOCHILD);
    assert_int_equal(nd_sup_restart_child(sup, A("nope"), 5000, NULL), ND_ENOCHILD);
    assert_int_equal(nd_sup_count_children(sup, 5000, &l), 0);
    /* [{specs,1},{active,1},{supervisors,0},{workers,1}] */
    assert_int_equal(term_small_value(term_tuple_elem(term_hd(l), 1)), 1);
    assert_int_equal(term_small_value(term_tuple_elem(term_hd(term_tl(l)), 1)), 1);
    term_free(l);
    /* shutdown order: reverse of start order */
    nd_child_spec c = spec("w3", ND_PERMANENT);
    assert_int_equal(nd_sup_start_child(sup, &c, 5000, NULL), 0);
    atomic_store(&term_log_len, 0);
    memset(term_log, 0, sizeof term_log);
    assert_int_equal(nd_server_stop(sup, A("shutdown"), 5000), 0);
    assert_true(strcmp(term_log, "32") == 0);
    term_free(sup);
}

static void test_child_ops(void **state)
{
    nd_test_run(body_child_ops, NULL, "normal");
}

static void body_shutdown_timeout(void *arg)
{
    nd_child_spec s = {A("stubborn"), start_stubborn, NULL, ND_PERMANENT, 50, ND_WORKER};
    nd_sup_flags f = {ND_ONE_FOR_ONE, 5, 5000};
    term_t sup, l;
    assert_int_equal(nd_supervisor_start(&f, &s, 1, NULL, &sup, NULL), 0);
    assert_int_equal(nd_sup_which_children(sup, 5000, &l), 0);
    term_t child = term_dup(term_tuple_elem(term_hd(l), 1));
    term_free(l);
    assert_int_equal(nd_sup_terminate_child(sup, A("stubborn"), 5000), 0); /* killed after 50 ms */
    assert_false(nd_is_alive(child));
    term_free(child);
    assert_int_equal(nd_server_stop(sup, A("shutdown"), 5000), 0);
    term_free(sup);
}

static void test_shutdown_timeout(void **state)
{
    nd_test_run(body_shutdown_timeout, NULL, "normal");
}

static void body_dynamic(void *arg)
{
    nd_child_spec t = {A("dyn"), start_plain, NULL, ND_TEMPORARY, ND_BRUTAL_KILL, ND_WORKER};
    nd_sup_flags f = {ND_SIMPLE_ONE_FOR_ONE, 5, 5000};
    term_t sup, l, p[3];
    assert_int_equal(nd_supervisor_start(&f, &t, 1, NULL, &sup, NULL), 0);
    for (int i = 0; i < 3; i++) assert_int_equal(nd_sup_start_dynamic(sup, I(i), 5000, &p[i]), 0);
    assert_int_equal(nd_sup_which_children(sup, 5000, &l), 0);
    assert_int_equal(term_list_length(l), 3);
    term_free(l);
    assert_int_equal(nd_sup_terminate_child(sup, p[1], 5000), 0);
    assert_false(nd_is_alive(p[1]));
    nd_exit_signal(p[0], A("boom")); /* temporary: not restarted */
    nd_sleep(20);
    assert_int_equal(nd_sup_which_children(sup, 5000, &l), 0);
    assert_int_equal(term_list_length(l), 1);
    term_free(l);
    assert_int_equal(nd_server_stop(sup, A("shutdown"), 5000), 0);
    assert_false(nd_is_alive(p[2]));
    for (int i = 0; i < 3; i++) term_free(p[i]);
    term_free(sup);
}

static void test_dynamic(void **state)
{
    nd_test_run(body_dynamic, NULL, "normal");
}

static void body_start_failure(void *arg)
{
    nd_child_spec kids[2] = {spec("w1", ND_PERMANENT),
                             {A("bad"), start_failing, NULL, ND_PERMANENT, 1000, ND_WORKER}};
    nd_sup_flags f = {ND_ONE_FOR_ONE, 5, 5000};
    term_t sup, reason;
    assert_int_equal(nd_supervisor_start(&f, kids, 2, NULL, &sup, &reason), ND_ESTART);
    /* {shutdown, {failed_to_start_child, bad, no_way}} */
    assert_true(term_tuple_elem(reason, 0) == A("shutdown"));
    term_t d = term_tuple_elem(reason, 1);
    assert_true(term_tuple_elem(d, 1) == A("bad"));
    assert_true(term_tuple_elem(d, 2) == A("no_way"));
    term_free(reason);
    nd_sleep(10);
    assert_true(nd_whereis(A("w1")) == TERM_NONE); /* the started one was stopped again */
}

static void test_start_failure(void **state)
{
    nd_test_run(body_start_failure, NULL, "normal");
}

/* top (one_for_one) -> mid (one_for_one, registered "mid") -> leaf worker "w1" */
static void body_tree(void *arg)
{
    static nd_child_spec leaf[1];
    leaf[0] = spec("w1", ND_PERMANENT);
    static nd_sup_start_args mid_args;
    mid_args.flags = (nd_sup_flags){ND_ONE_FOR_ONE, 5, 5000};
    mid_args.children = leaf;
    mid_args.n = 1;
    nd_child_spec mid = {A("mid"),     nd_sup_child_start, &mid_args,
                         ND_PERMANENT, ND_INFINITY,        ND_SUPERVISOR};
    nd_sup_flags f = {ND_ONE_FOR_ONE, 5, 5000};
    term_t top, l;
    assert_int_equal(nd_supervisor_start(&f, &mid, 1, NULL, &top, NULL), 0);
    assert_int_equal(nd_sup_which_children(top, 5000, &l), 0);
    term_t midpid = term_dup(term_tuple_elem(term_hd(l), 1));
    assert_true(term_tuple_elem(term_hd(l), 2) == A("supervisor"));
    term_free(l);
    /* the leaf crashes: mid restarts it, top is untouched */
    term_t w = where("w1");
    kill_and_wait(w);
    term_t w2 = where("w1");
    assert_false(term_equal(w, w2));
    assert_true(nd_is_alive(midpid));
    term_free(w);
    /* the middle supervisor dies: top restarts it, and with it a new leaf */
    kill_and_wait(midpid);
    nd_sleep(30);
    assert_int_equal(nd_sup_which_children(top, 5000, &l), 0);
    assert_false(term_equal(term_tuple_elem(term_hd(l), 1), midpid));
    term_free(l);
    term_t w3 = where("w1");
    assert_false(term_equal(w3, w2));
    term_free(w2);
    term_free(w3);
    term_free(midpid);
    /* stopping the top stops the whole tree */
    assert_int_equal(nd_server_stop(top, A("shutdown"), 5000), 0);
    nd_sleep(10);
    assert_true(nd_whereis(A("w1")) == TERM_NONE);
    term_free(top);
}

static void test_tree(void **state)
{
    nd_test_run(body_tree, NULL, "normal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strategies),       cmocka_unit_test(test_intensity),
        cmocka_unit_test(test_restart_types),    cmocka_unit_test(test_child_ops),
        cmocka_unit_test(test_shutdown_timeout), cmocka_unit_test(test_dynamic),
        cmocka_unit_test(test_start_failure),    cmocka_unit_test(test_tree),
    };
    return cmocka_run_group_tests(tests, nd_test_setup, nd_test_teardown);
}
