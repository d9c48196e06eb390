/* The examples of docs/processes.md, compiled and run: a counter keeping state in its loop (as a
** process and as a server), selective receive of a reply, a crashing worker restarted by its
** supervisor, and a three-level supervision tree. */
#include "nd_test.h"

/* ---------------------------------------------------------------- counter process */

static void counter(void *arg)
{
    int64_t n = (int64_t)(intptr_t)arg;
    term_pattern *inc = term_pattern_compile("{inc, By}", 9, NULL, NULL);
    term_pattern *get = term_pattern_compile("{get, From}", 11, NULL, NULL);
    term_pattern *stop = term_pattern_compile("stop", 4, NULL, NULL);
    for (;;) {
        term_t by[1] = {TERM_NONE}, from[1] = {TERM_NONE}, m;
        nd_clause cl[3] = {{inc, by}, {get, from}, {stop, NULL}};
        int which = nd_receive_match(cl, 3, ND_INFINITY, &m);
        if (which == 0) n += term_small_value(by[0]);
        if (which == 1) nd_send(from[0], term_tuplev(2, term_atom("count"), term_int(n)));
        term_free(m); /* bindings were borrowed from m */
        if (which == 2) break;
    }
    term_pattern_free(inc);
    term_pattern_free(get);
    term_pattern_free(stop);
}

static void body_counter(void *arg)
{
    term_t c, m;
    assert_int_equal(nd_spawn(counter, (void *)0, NULL, &c), 0);
    nd_send(c, term_tuplev(2, term_atom("inc"), term_int(5)));
    nd_send(c, term_tuplev(2, term_atom("inc"), term_int(2)));
    nd_send(c, term_tuplev(2, term_atom("get"), term_dup(nd_self())));
    m = nd_test_recv(5000);
    assert_int_equal(term_small_value(term_tuple_elem(m, 1)), 7);
    term_free(m);
    nd_send(c, term_atom("stop"));
    term_free(c);
}

static void test_counter(void **state)
{
    nd_test_run(body_counter, NULL, "normal");
}

/* ---------------------------------------------------------------- counter server */

static int init(void *arg, void **state, term_t *reason)
{
    int64_t *n = malloc(sizeof *n);
    *n = 0;
    *state = n;
    return 0;
}
static int handle_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    *reply = term_int(*(int64_t *)*state);
    return ND_REPLY;
}
static int handle_cast(void **state, term_t msg, term_t *reason)
{
    *(int64_t *)*state += term_small_value(term_tuple_elem(msg, 1));
    return ND_NOREPLY;
}
static void terminate(void *state, term_t reason)
{
    free(state);
}
static const nd_server_ops counter_ops = {init, handle_call, handle_cast, NULL, terminate};

static void test_counter_server(void **state)
{
    term_t srv, n;
    assert_int_equal(nd_server_start(&counter_ops, NULL, NULL, &srv, NULL), 0);
    nd_cast(srv, term_tuplev(2, term_atom("inc"), term_int(5)));
    assert_int_equal(nd_call(srv, term_atom("get"), 5000, &n), 0);
    assert_int_equal(term_small_value(n), 5);
    assert_int_equal(nd_server_stop(srv, term_atom("normal"), 5000), 0);
    term_free(srv);
}

/* ---------------------------------------------------------------- selective receive */

static void responder(void *arg)
{
    term_t m = nd_test_recv(5000); /* {request, From, Ref} */
    nd_send(term_tuple_elem(m, 1),
            term_tuplev(3, term_atom("reply"), term_dup(term_tuple_elem(m, 2)), term_int(42)));
    term_free(m);
}

static void body_selective(void *arg)
{
    term_t server;
    assert_int_equal(nd_spawn(responder, NULL, NULL, &server), 0);
    for (int i = 0; i < 100; i++) nd_send(nd_self(), term_int(i)); /* noise */
    term_t ref = nd_make_ref();
    nd_recv_mark();
    nd_send(server, term_tuplev(3, term_atom("request"), term_dup(nd_self()), term_dup(ref)));
    term_pattern *p = term_pattern_compile("{reply, Ref, Value}", 19, NULL, NULL);
    term_t vars[2] = {ref, TERM_NONE};
    nd_clause cl = {p, vars};
    nd_recv r = {.clauses = &cl, .nclauses = 1, .timeout_ms = 1000, .from_mark = true};
    term_t m;
    assert_true(nd_receive_ex(&r, &m) >= 0);
    assert_int_equal(term_small_value(vars[1]), 42);
    term_free(m);
    term_free(ref);
    term_pattern_free(p);
    for (int i = 0; i < 100; i++) { /* the noise stayed, in order */
        assert_int_equal(nd_receive(0, &m), 0);
        assert_int_equal(term_small_value(m), i);
    }
    term_free(server);
}

static void test_selective(void **state)
{
    nd_test_run(body_selective, NULL, "normal");
}

/* ---------------------------------------------------------------- supervised worker */

static const nd_server_ops worker_ops = {NULL, NULL, NULL, NULL, NULL};

static int start_worker(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    nd_server_opts o = {.link = true, .name = term_atom((const char *)arg)};
    return nd_server_start(&worker_ops, arg, &o, pid, reason);
}

static term_t wait_name(const char *name, term_t not )
{
    for (int i = 0; i < 1000; i++) {
        term_t p = nd_whereis(term_atom(name));
        if (p != TERM_NONE && (not == TERM_NONE || !term_equal(p, not ))) return p;
        term_free(p);
        nd_sleep(2);
    }
    return TERM_NONE;
}

static void body_worker(void *arg)
{
    nd_child_spec kids[] = {
        {term_atom("worker"), start_worker, "worker", ND_PERMANENT, 1000, ND_WORKER},
    };
    nd_sup_flags flags = {ND_ONE_FOR_ONE, 3, 5000};
    term_t sup;
    assert_int_equal(nd_supervisor_start(&flags, kids, 1, NULL, &sup, NULL), 0);
    term_t w = wait_name("worker", TERM_NONE);
    nd_exit_signal(w, term_atom("kill")); /* crash it */
    term_t w2 = wait_name("worker", w);   /* a new pid */
    assert_true(w2 != TERM_NONE);
    term_free(w);
    term_free(w2);
    assert_int_equal(nd_server_stop(sup, term_atom("shutdown"), 5000), 0);
    term_free(sup);
}

static void test_worker(void **state)
{
    nd_test_run(body_worker, NULL, "normal");
}

/* ---------------------------------------------------------------- three-level tree */

static nd_child_spec leaves[2];
static nd_sup_start_args mid_args;

static void body_tree(void *arg)
{
    leaves[0] = (nd_child_spec){term_atom("db"), start_worker, "db", ND_PERMANENT, 5000, ND_WORKER};
    leaves[1] =
        (nd_child_spec){term_atom("cache"), start_worker, "cache", ND_PERMANENT, 5000, ND_WORKER};
    mid_args = (nd_sup_start_args){{ND_REST_FOR_ONE, 5, 10000}, leaves, 2};
    nd_child_spec top_kids[] = {
        {term_atom("mid"), nd_sup_child_start, &mid_args, ND_PERMANENT, ND_INFINITY, ND_SUPERVISOR},
    };
    nd_sup_flags top = {ND_ONE_FOR_ONE, 1, 5000};
    term_t root;
    assert_int_equal(nd_supervisor_start(&top, top_kids, 1, NULL, &root, NULL), 0);
    term_t db = wait_name("db", TERM_NONE), cache = wait_name("cache", TERM_NONE);
    nd_exit_signal(db, term_atom("kill")); /* rest_for_one: db and cache restart */
    term_t db2 = wait_name("db", db), cache2 = wait_name("cache", cache);
    assert_true(db2 != TERM_NONE && cache2 != TERM_NONE);
    assert_int_equal(nd_server_stop(root, term_atom("shutdown"), 5000), 0);
    nd_sleep(10);
    assert_true(nd_whereis(term_atom("db")) == TERM_NONE);
    assert_true(nd_whereis(term_atom("cache")) == TERM_NONE);
    term_free(db);
    term_free(cache);
    term_free(db2);
    term_free(cache2);
    term_free(root);
}

static void test_tree(void **state)
{
    nd_test_run(body_tree, NULL, "normal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter),   cmocka_unit_test(test_counter_server),
        cmocka_unit_test(test_selective), cmocka_unit_test(test_worker),
        cmocka_unit_test(test_tree),
    };
    return cmocka_run_group_tests(tests, nd_test_setup, nd_test_teardown);
}
