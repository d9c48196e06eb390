/* Tests: the server behaviour — init, call/cast/info, wire shapes, stop, call to a dead server,
** timeouts, deferred replies, idle servers hold no stack, calls from a non-process thread. */
#include "nd_test.h"

typedef struct counter {
    int64_t n;
    term_t deferred; /* a From kept for a later reply */
} counter;

static term_t last_terminate;

static int c_init(void *arg, void **state, term_t *reason)
{
    if (arg == (void *)1) {
        *reason = A("refused");
        return ND_STOP;
    }
    counter *c = calloc(1, sizeof *c);
    c->n = (int64_t)(intptr_t)arg;
    *state = c;
    return 0;
}

static int c_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    counter *c = *state;
    if (req == A("get")) {
        *reply = I(c->n);
        return ND_REPLY;
    }
    if (req == A("later")) { /* reply when the next cast arrives */
        c->deferred = term_dup(from);
        return ND_NOREPLY;
    }
    if (req == A("stop")) {
        *reply = A("stopping");
        *reason = A("asked");
        return ND_STOP;
    }
    if (req == A("crash")) nd_exit(A("crashed"));
    if (req == A("slow")) {
        nd_sleep(200);
        *reply = A("late");
        return ND_REPLY;
    }
    *reply = A("unknown");
    return ND_REPLY;
}

static int c_cast(void **state, term_t msg, term_t *reason)
{
    counter *c = *state;
    if (term_is_tuple(msg) && term_tuple_elem(msg, 0) == A("inc"))
        c->n += term_small_value(term_tuple_elem(msg, 1));
    if (c->deferred) {
        nd_reply(c->deferred, I(c->n));
        term_free(c->deferred);
        c->deferred = TERM_NONE;
    }
    return ND_NOREPLY;
}

static int c_info(void **state, term_t msg, term_t *reason)
{
    counter *c = *state;
    if (msg == A("bump")) c->n += 100;
    return ND_NOREPLY;
}

static void c_terminate(void *state, term_t reason)
{
    last_terminate = reason;
    free(state);
}

static const nd_server_ops counter_ops = {c_init, c_call, c_cast, c_info, c_terminate};

static int64_t get(term_t srv)
{
    term_t r;
    assert_int_equal(nd_call(srv, A("get"), 5000, &r), 0);
    return term_small_value(r);
}

static bool is_exit(term_t m, void *ud)
{
    return term_is_tuple(m) && term_tuple_elem(m, 0) == A("EXIT");
}

static void body_basic(void *arg)
{
    term_t srv, reason, r;
    assert_int_equal(nd_server_start(&counter_ops, (void *)10, NULL, &srv, NULL), 0);
    assert_int_equal(get(srv), 10);
    assert_int_equal(nd_cast(srv, T2(A("inc"), I(5))), 0);
    assert_int_equal(get(srv), 15);
    nd_send(srv, A("bump"));
    assert_int_equal(get(srv), 115);
    /* the raw wire shape works the same: {'$gen_call', {From, Tag}, Req} -> {Tag, Reply} */
    term_t tag = nd_make_ref();
    nd_send(srv, T3(A("$gen_call"), T2(term_dup(nd_self()), term_dup(tag)), A("get")));
    term_t m = nd_test_recv(5000);
    assert_true(term_equal(term_tuple_elem(m, 0), tag));
    assert_int_equal(term_small_value(term_tuple_elem(m, 1)), 115);
    term_free(m);
    term_free(tag);
    nd_send(srv, T2(A("$gen_cast"), T2(A("inc"), I(1))));
    assert_int_equal(get(srv), 116);
    /* idle: no stack held */
    nd_sleep(10);
    nd_proc_info info;
    assert_int_equal(nd_process_info(srv, &info), 0);
    assert_int_equal(info.stack_size, 0);
    nd_proc_info_free(&info);
    /* stop via handler */
    assert_int_equal(nd_call(srv, A("stop"), 5000, &r), 0);
    assert_true(r == A("stopping"));
    nd_sleep(10);
    assert_false(nd_is_alive(srv));
    assert_true(last_terminate == A("asked"));
    /* calling a dead server fails at once with noproc */
    assert_int_equal(nd_call(srv, A("get"), 5000, &r), ND_EEXIT);
    assert_true(r == A("noproc"));
    term_free(srv);
    /* a server on an unreachable node (no distribution): fails at once, noconnection */
    term_t remote = term_pid(A("far@away"), 1, 0, 1);
    assert_int_equal(nd_call(remote, A("get"), 5000, &r), ND_EEXIT);
    assert_true(r == A("noconnection"));
    term_free(remote);
    /* init failure */
    assert_int_equal(nd_server_start(&counter_ops, (void *)1, NULL, &srv, &reason), ND_ESTART);
    assert_true(reason == A("refused"));
}

static void test_basic(void **state)
{
    nd_test_run(body_basic, NULL, "normal");
}

static void later_caller(void *arg)
{
    term_t r;
    assert_int_equal(nd_call((term_t)(uintptr_t)arg, A("later"), 5000, &r), 0);
    nd_exit(r);
}

static void body_more(void *arg)
{
    term_t srv, r, pid, ref;
    nd_server_opts o = {0};
    o.name = A("counter");
    o.link = true;
    assert_int_equal(nd_server_start(&counter_ops, (void *)0, &o, &srv, NULL), 0);
    /* by name */
    assert_int_equal(get(A("counter")), 0);
    assert_int_equal(nd_server_start(&counter_ops, (void *)0, &o, NULL, NULL), ND_EEXIST);
    /* deferred reply through nd_reply */
    assert_int_equal(nd_spawn_monitor(later_caller, (void *)(uintptr_t)srv, &pid, &ref), 0);
    nd_sleep(20);
    nd_cast(A("counter"), T2(A("inc"), I(3)));
    term_t m = nd_test_recv(5000);
    assert_int_equal(term_small_value(term_tuple_elem(m, 4)), 3);
    term_free(m);
    term_free(pid);
    term_free(ref);
    /* calling oneself is refused, by the pid term or by a copy of it made elsewhere */
    assert_int_equal(nd_call(nd_self(), A("x"), 5000, &r), ND_EINVAL);
    assert_true(r == A("calling_self"));
    term_pid_info me;
    assert_int_equal(term_pid_get(nd_self(), &me), 0);
    term_t copy = term_pid(me.node, me.id, me.serial, me.creation);
    assert_int_equal(nd_call(copy, A("x"), 5000, &r), ND_EINVAL);
    assert_true(r == A("calling_self"));
    term_free(copy);
    /* a pid with the same number and another serial is not us: noproc, not calling_self */
    copy = term_pid(me.node, me.id, me.serial + 1, me.creation);
    assert_int_equal(nd_call(copy, A("x"), 5000, &r), ND_EEXIT);
    assert_true(r == A("noproc"));
    term_free(copy);
    /* timeout */
    assert_int_equal(nd_call(srv, A("slow"), 20, &r), ND_ETIMEOUT);
    /* crash inside a call: the caller learns the reason at once */
    nd_trap_exit(true);
    assert_int_equal(nd_call(srv, A("crash"), 5000, &r), ND_EEXIT);
    assert_true(r == A("crashed"));
    /* linked: we (trapping) got the EXIT (after the DOWN-driven failure of the call) */
    term_t m2;
    assert_int_equal(nd_receive_if(is_exit, NULL, 5000, &m2), 0);
    assert_true(term_tuple_elem(m2, 2) == A("crashed"));
    term_free(m2);
    /* the name is free again */
    nd_sleep(10);
    assert_true(nd_whereis(A("counter")) == TERM_NONE);
    term_free(srv);
    /* stop from outside with a reason */
    assert_int_equal(nd_server_start(&counter_ops, (void *)0, NULL, &srv, NULL), 0);
    assert_int_equal(nd_server_stop(srv, A("enough"), 5000), 0);
    assert_false(nd_is_alive(srv));
    assert_true(last_terminate == A("enough"));
    term_free(srv);
}

static void test_more(void **state)
{
    nd_test_run(body_more, NULL, "normal");
}

static void test_from_thread(void **state)
{
    term_t srv, r;
    assert_int_equal(nd_server_start(&counter_ops, (void *)7, NULL, &srv, NULL), 0);
    assert_int_equal(nd_call(srv, A("get"), 5000, &r), 0);
    assert_int_equal(term_small_value(r), 7);
    assert_int_equal(nd_cast(srv, T2(A("inc"), I(1))), 0);
    assert_int_equal(nd_call(srv, A("get"), 5000, &r), 0);
    assert_int_equal(term_small_value(r), 8);
    assert_int_equal(nd_server_stop(srv, A("normal"), 5000), 0);
    term_free(srv);
}

static void parent_proc(void *arg)
{
    term_t body = (term_t)(uintptr_t)arg, srv;
    nd_server_opts o = {0};
    o.link = true;
    o.trap_exit = true;
    assert_int_equal(nd_server_start(&counter_ops, (void *)0, &o, &srv, NULL), 0);
    nd_send(body, srv);
    term_free(nd_test_recv(5000));
    nd_exit(A("parent_gone"));
}

static void body_parent(void *arg)
{
    term_t pid, ref;
    assert_int_equal(nd_spawn(parent_proc, (void *)(uintptr_t)nd_self(), NULL, &pid), 0);
    term_t srv = nd_test_recv(5000);
    assert_int_equal(nd_monitor(srv, &ref), 0);
    nd_send(pid, A("go"));
    term_t m = nd_test_recv(5000);
    assert_true(term_tuple_elem(m, 4) == A("parent_gone"));
    assert_true(last_terminate == A("parent_gone"));
    term_free(m);
    term_free(ref);
    term_free(srv);
    term_free(pid);
}

static void test_parent(void **state)
{
    nd_test_run(body_parent, NULL, "normal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_more),
        cmocka_unit_test(test_from_thread),
        cmocka_unit_test(test_parent),
    };
    return cmocka_run_group_tests(tests, nd_test_setup, nd_test_teardown);
}
