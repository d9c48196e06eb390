/* Tests: receive with compiled patterns (first match in arrival order, bindings, bound vars),
** and the match-or-crash helper. */
#include "nd_test.h"

static term_pattern *pat(const char *text)
{
    term_parse_error err;
    term_pattern *p = term_pattern_compile(text, strlen(text), NULL, &err);
    assert_non_null(p);
    return p;
}

static term_t parse(const char *text)
{
    term_parse_error err;
    term_t t = term_parse(text, strlen(text), NULL, &err);
    assert_true(t != TERM_NONE);
    return t;
}

static void body_patterns(void *arg)
{
    nd_send(nd_self(), parse("{noise, 1}"));
    nd_send(nd_self(), parse("{inc, 5}"));
    nd_send(nd_self(), parse("{get, self}"));
    nd_send(nd_self(), parse("{inc, 7}"));

    term_pattern *inc = pat("{inc, N}");
    term_pattern *get = pat("{get, Who}");
    term_t vinc[1] = {TERM_NONE}, vget[1] = {TERM_NONE};
    nd_clause cl[2] = {{get, vget}, {inc, vinc}};
    term_t m;
    /* first matching message in arrival order, whichever clause it matches */
    assert_int_equal(nd_receive_match(cl, 2, 0, &m), 1);
    assert_int_equal(term_small_value(vinc[0]), 5);
    term_free(m);
    vinc[0] = TERM_NONE;
    assert_int_equal(nd_receive_match(cl, 2, 0, &m), 0);
    assert_true(vget[0] == A("self"));
    term_free(m);
    vget[0] = TERM_NONE;
    /* a bound variable must be equal */
    vinc[0] = I(9);
    assert_int_equal(nd_receive_match(&cl[1], 1, 10, &m), ND_ETIMEOUT);
    vinc[0] = I(7);
    assert_int_equal(nd_receive_match(&cl[1], 1, 0, &m), 0);
    term_free(m);
    /* the noise is still there, first */
    assert_int_equal(nd_receive(0, &m), 0);
    assert_true(term_tuple_elem(m, 0) == A("noise"));
    term_free(m);
    term_pattern_free(inc);
    term_pattern_free(get);
}

static void test_patterns(void **state)
{
    nd_test_run(body_patterns, NULL, "normal");
}

static term_pattern *crash_pat;
static term_t crash_term;

static void crash_cleanup(void *arg, term_t reason)
{
    term_pattern_free(crash_pat);
    term_free(crash_term);
}

static void crasher2(void *arg)
{
    crash_pat = pat("{ok, V}");
    crash_term = parse("{error, nope}");
    nd_set_exit_hook(crash_cleanup, NULL); /* what a crashing C process owns, it frees here */
    term_t v[1] = {TERM_NONE};
    nd_assert_match(crash_pat, crash_term, v);
    nd_exit(A("not_reached"));
}

static void body_badmatch(void *arg)
{
    term_t pid, ref;
    assert_int_equal(nd_spawn_monitor(crasher2, NULL, &pid, &ref), 0);
    term_t m = nd_test_recv(5000);
    term_t reason = term_tuple_elem(m, 4);
    assert_true(term_is_tuple(reason));
    assert_true(term_tuple_elem(reason, 0) == A("badmatch"));
    term_t want = parse("{error, nope}");
    assert_true(term_equal(term_tuple_elem(reason, 1), want));
    term_free(want);
    term_free(m);
    term_free(pid);
    term_free(ref);
}

static void test_badmatch(void **state)
{
    nd_test_run(body_badmatch, NULL, "normal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_patterns),
                                       cmocka_unit_test(test_badmatch)};
    return cmocka_run_group_tests(tests, nd_test_setup, nd_test_teardown);
}
