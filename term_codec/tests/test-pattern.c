/* Unit tests of the pattern compiler and matcher: every construct, bindings, and no allocation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <girder/term.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static term_text_ctx ctx;

static int setup(void **state)
{
    (void)state;
    term_init();
    ctx.node = term_atom("a@host");
    ctx.creation = 3;
    return 0;
}

static term_pattern *compile(const char *s)
{
    term_parse_error e;
    term_pattern *p = term_pattern_compile(s, strlen(s), &ctx, &e);
    if (!p) fail_msg("compile %s: %s at %zu: %s", s, term_err_name(e.code), e.offset, e.what);
    return p;
}

static term_t parse(const char *s)
{
    term_parse_error e;
    term_t t = term_parse(s, strlen(s), &ctx, &e);
    if (t == TERM_NONE)
        fail_msg("parse %s: %s at %zu: %s", s, term_err_name(e.code), e.offset, e.what);
    return t;
}

/* Matches pattern text against term text with fresh slots; on success each "Name=Text" in
** binds (NULL-terminated) must hold. Returns the match result. */
static bool m(const char *pat, const char *term, const char *const *binds)
{
    term_pattern *p = compile(pat);
    term_t t = parse(term);
    size_t n = term_pattern_nvars(p);
    term_t vars[64];
    for (size_t i = 0; i < 64; i++) vars[i] = TERM_NONE;
    bool ok = term_match(p, t, vars);
    if (ok && binds) {
        for (size_t i = 0; binds[i]; i++) {
            const char *eq = strchr(binds[i], '=');
            char name[64];
            snprintf(name, sizeof name, "%.*s", (int)(eq - binds[i]), binds[i]);
            int slot = term_pattern_var(p, name);
            if (slot < 0) fail_msg("%s: no variable %s", pat, name);
            term_t want = parse(eq + 1);
            if (!term_equal(vars[slot], want)) {
                char *got = term_to_string(vars[slot], TERM_PRINT_P);
                fail_msg("%s ~ %s: %s = %s, expected %s", pat, term, name, got, eq + 1);
            }
            term_free(want);
        }
    }
    if (!ok)
        for (size_t i = 0; i < n; i++) assert_true(vars[i] == TERM_NONE);
    term_free(t);
    term_pattern_free(p);
    return ok;
}

#define B(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_constructs(void **state)
{
    (void)state;
    /* literals */
    assert_true(m("ok", "ok", NULL));
    assert_false(m("ok", "error", NULL));
    assert_true(m("1", "1", NULL));
    assert_false(m("1", "1.0", NULL)); /* =:= */
    assert_false(m("1.0", "1", NULL));
    assert_true(m("\"abc\"", "[97,98,99]", NULL));
    assert_true(m("<<\"abc\">>", "<<97,98,99>>", NULL));
    assert_false(m("<<\"abc\">>", "<<97,98,99,1:1>>", NULL));
    assert_true(m("{ok, [1,2|3], #{a := b}}", "{ok,[1,2|3],#{a => b}}", NULL));
    assert_true(m("#Ref<0.1.2.3>", "#Ref<a@host:3.1.2.3>", NULL));
    assert_true(m("fun m:f/1", "fun m:f/1", NULL));
    assert_true(m("123456789012345678901234567890", "123456789012345678901234567890", NULL));
    /* variables and _ */
    assert_true(m("X", "{any, thing}", B("X={any,thing}")));
    assert_true(m("_", "{any, thing}", NULL));
    assert_true(m("{inc, From}", "{inc, <0.85.0>}", B("From=<0.85.0>")));
    assert_false(m("{inc, From}", "{dec, <0.85.0>}", NULL));
    assert_false(m("{inc, From}", "{inc, <0.85.0>, x}", NULL));
    assert_false(m("{inc, From}", "[inc, x]", NULL));
    assert_true(m("{_, _, C}", "{1, 2, 3}", B("C=3")));
    assert_true(m("{}", "{}", NULL));
    /* lists */
    assert_true(m("[H | T]", "[1,2,3]", B("H=1", "T=[2,3]")));
    assert_true(m("[H | T]", "[1]", B("H=1", "T=[]")));
    assert_false(m("[H | T]", "[]", NULL));
    assert_true(m("[A, B | T]", "[1,2|x]", B("A=1", "B=2", "T=x")));
    assert_true(m("[A, B]", "[1,2]", B("A=1", "B=2")));
    assert_false(m("[A, B]", "[1,2,3]", NULL));
    assert_false(m("[A, B]", "[1]", NULL));
    assert_true(m("[_ | _]", "\"x\"", NULL));
    assert_true(m("[{K, V} | _]", "[{a,1},{b,2}]", B("K=a", "V=1")));
    /* maps: subset match, exact keys */
    assert_true(m("#{name := N}", "#{name => joe, age => 3}", B("N=joe")));
    assert_false(m("#{name := N}", "#{age => 3}", NULL));
    assert_false(m("#{name := N}", "[name]", NULL));
    assert_true(m("#{}", "#{a => 1}", NULL));
    assert_false(m("#{}", "{}", NULL));
    assert_true(m("#{1 := A, {k} := #{x := B}}", "#{1 => one, {k} => #{x => 2, y => 3}}",
                  B("A=one", "B=2")));
    assert_false(m("#{1 := A}", "#{1.0 => one}", NULL));
    assert_true(m("#{\"s\" := V}", "#{\"s\" => v}", B("V=v")));
    /* nested */
    assert_true(m("{reply, Ref, {ok, #{v := [X | _]}}}",
                  "{reply, #Ref<0.1.2.3>, {ok, #{v => [7, 8]}}}", B("Ref=#Ref<0.1.2.3>", "X=7")));
    /* _-prefixed variables bind and count */
    term_pattern *p = compile("{_Rest, X, _}");
    assert_int_equal(term_pattern_nvars(p), 2);
    assert_int_equal(term_pattern_var(p, "_Rest"), 0);
    assert_int_equal(term_pattern_var(p, "X"), 1);
    assert_int_equal(term_pattern_var(p, "_"), -1);
    assert_int_equal(term_pattern_var(p, "Y"), -1);
    assert_string_equal(term_pattern_var_name(p, 0), "_Rest");
    assert_string_equal(term_pattern_var_name(p, 1), "X");
    assert_null(term_pattern_var_name(p, 2));
    term_pattern_free(p);
    p = compile("ok.");
    assert_int_equal(term_pattern_nvars(p), 0);
    term_t t = parse("ok");
    assert_true(term_match(p, t, NULL));
    term_pattern_free(p);
}

static void test_repeated(void **state)
{
    (void)state;
    assert_true(m("{X, X}", "{1, 1}", B("X=1")));
    assert_false(m("{X, X}", "{1, 2}", NULL));
    assert_false(m("{X, X}", "{1, 1.0}", NULL));
    assert_true(m("{X, [X | _]}", "{{a,\"b\"}, [{a,\"b\"}, c]}", B("X={a,\"b\"}")));
    assert_false(m("{_X, _X}", "{1, 2}", NULL)); /* as in Erlang, _X binds */
    assert_true(m("{_X, _X}", "{2, 2}", B("_X=2")));
    assert_true(m("{_, _}", "{1, 2}", NULL)); /* _ never binds */
    assert_true(m("#{a := X, b := X}", "#{a => 1, b => 1}", B("X=1")));
    assert_false(m("#{a := X, b := X}", "#{a => 1, b => 2}", NULL));
    assert_true(m("[A, B, A, B]", "[1,2,1,2]", B("A=1", "B=2")));
    assert_false(m("[A, B, A, B]", "[1,2,1,3]", NULL));
}

/* Pre-bound slots mean equality; a failed match leaves every slot as it was. */
static void test_prebound_and_restore(void **state)
{
    (void)state;
    term_pattern *p = compile("{From, Ref, [Msg | Rest]}");
    assert_int_equal(term_pattern_nvars(p), 4);
    int from = term_pattern_var(p, "From"), ref = term_pattern_var(p, "Ref"),
        msg = term_pattern_var(p, "Msg"), rest = term_pattern_var(p, "Rest");
    term_t r1 = parse("#Ref<0.1.2.3>"), r2 = parse("#Ref<0.1.2.4>");
    term_t t = parse("{<0.1.0>, #Ref<0.1.2.3>, [hello, world]}");
    term_t vars[4] = {TERM_NONE, TERM_NONE, TERM_NONE, TERM_NONE};

    vars[ref] = r2; /* wrong ref: fails, nothing else bound */
    assert_false(term_match(p, t, vars));
    assert_true(vars[ref] == r2);
    assert_true(vars[from] == TERM_NONE && vars[msg] == TERM_NONE && vars[rest] == TERM_NONE);

    vars[ref] = r1; /* right ref (another copy of it): binds the rest to borrowed sub-terms */
    assert_true(term_match(p, t, vars));
    assert_true(vars[ref] == r1);
    assert_true(vars[from] == term_tuple_elem(t, 0));
    assert_true(vars[msg] == term_hd(term_tuple_elem(t, 2)));
    assert_true(vars[rest] == term_tl(term_tuple_elem(t, 2)));

    /* failure after some variables were bound (at the last element) restores them */
    term_pattern *q = compile("{A, B, [C | A]}");
    term_t u = parse("{x, y, [z | w]}");
    term_t qv[3] = {TERM_NONE, TERM_NONE, TERM_NONE};
    term_t pre = term_atom("pre");
    qv[1] = TERM_NONE;
    assert_false(term_match(q, u, qv));
    assert_true(qv[0] == TERM_NONE && qv[1] == TERM_NONE && qv[2] == TERM_NONE);
    qv[2] = pre; /* pre-bound C that fails */
    assert_false(term_match(q, u, qv));
    assert_true(qv[0] == TERM_NONE && qv[1] == TERM_NONE && qv[2] == pre);
    term_t u2 = parse("{w, y, [pre | w]}");
    assert_true(term_match(q, u2, qv));
    assert_true(qv[0] == term_atom("w") && qv[1] == term_atom("y") && qv[2] == pre);

    term_free(u2);
    term_free(u);
    term_pattern_free(q);
    term_free(t);
    term_free(r1);
    term_free(r2);
    term_pattern_free(p);
}

/* ------------------------------------------------------------ no allocation in term_match */

static long nallocs;
static void *counting_alloc(void *ud, void *p, size_t old, size_t n)
{
    (void)ud;
    (void)old;
    if (n == 0) {
        free(p);
        return NULL;
    }
    nallocs++;
    return realloc(p, n);
}

static void test_no_alloc(void **state)
{
    (void)state;
    term_pattern *p = compile("{msg, From, #{k := [H | T], big := B}, X, X, <<\"bin\">>, 1.5, _}");
    term_t t =
        parse("{msg, <0.1.2>, #{k => [1,2,3], big => 123456789012345678901234567890, z => 0}, "
              "{deep, [{x}]}, {deep, [{x}]}, <<\"bin\">>, 1.5, anything}");
    term_t bad = parse("{msg, <0.1.2>, #{k => [1,2,3], big => 123456789012345678901234567890}, "
                       "{deep, [{x}]}, {deep, [{y}]}, <<\"bin\">>, 1.5, anything}");
    term_t vars[8];
    term_set_allocator(counting_alloc, NULL);
    nallocs = 0;
    for (int i = 0; i < 1000; i++) {
        for (size_t k = 0; k < 8; k++) vars[k] = TERM_NONE;
        assert_true(term_match(p, t, vars));
        for (size_t k = 0; k < 8; k++) vars[k] = TERM_NONE;
        assert_false(term_match(p, bad, vars));
    }
    long during = nallocs;
    term_set_allocator(NULL, NULL);
    assert_int_equal(during, 0);
    term_free(t);
    term_free(bad);
    term_pattern_free(p);
}

/* ------------------------------------------------------------ compile errors */

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int code;
        size_t off;
        const char *what;
    } bad[] = {
        {"#{a => X}", TERM_ESYNTAX, 4, "use ':='"},
        {"#{K := 1}", TERM_ESYNTAX, 2, "must be literals"},
        {"#{{a, K} := 1}", TERM_ESYNTAX, 2, "must be literals"},
        {"#{a := 1, a := 2}", TERM_EDUPKEY, 0, "duplicate key"},
        {"{X, Y", TERM_ESYNTAX, 5, "expected ',' or '}'"},
        {"[H | T | U]", TERM_ESYNTAX, 7, "expected ']'"},
        {"#Fun<m.1.000102030405060708090a0b0c0d0e0f.2.3.0.P.[]>", TERM_ESYNTAX, 0, "literal pid"},
        {"X Y", TERM_ETRAILING, 2, "after the term"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        term_parse_error e;
        term_pattern *p = term_pattern_compile(bad[i].in, strlen(bad[i].in), &ctx, &e);
        if (p) fail_msg("%s compiled", bad[i].in);
        if (e.code != bad[i].code || e.offset != bad[i].off || !strstr(e.what, bad[i].what))
            fail_msg("%s: got %s at %zu \"%s\"", bad[i].in, term_err_name(e.code), e.offset,
                     e.what);
    }
    /* nesting over 100 is refused; 100 is fine */
    char buf[512];
    memset(buf, '{', 100);
    buf[100] = 'X';
    memset(buf + 101, '}', 100);
    term_pattern *p = term_pattern_compile(buf, 201, &ctx, NULL);
    assert_non_null(p);
    term_t t = term_parse(buf, 201, &ctx, NULL);
    assert_int_equal(t, TERM_NONE); /* variables are not terms */
    term_pattern_free(p);
    memset(buf, '[', 101);
    buf[101] = 'X';
    memset(buf + 102, ']', 101);
    term_parse_error e;
    assert_null(term_pattern_compile(buf, 203, &ctx, &e));
    assert_int_equal(e.code, TERM_EDEPTH);
    assert_int_equal(e.offset, 100);
    /* at most 256 distinct variables */
    char vs[4000];
    size_t n = 0;
    vs[n++] = '{';
    for (int i = 0; i < 257; i++) n += (size_t)sprintf(vs + n, "%sV%d", i ? "," : "", i);
    vs[n++] = '}';
    assert_null(term_pattern_compile(vs, n, &ctx, &e));
    assert_int_equal(e.code, TERM_ERANGE);
    /* 256 are fine; a long flat list pattern is not deep */
    n = 0;
    vs[n++] = '[';
    for (int i = 0; i < 256; i++) n += (size_t)sprintf(vs + n, "%sV%d", i ? "," : "", i);
    vs[n++] = ']';
    p = term_pattern_compile(vs, n, &ctx, &e);
    assert_non_null(p);
    assert_int_equal(term_pattern_nvars(p), 256);
    term_t vars[256];
    for (int i = 0; i < 256; i++) vars[i] = TERM_NONE;
    term_t ints[256];
    for (int i = 0; i < 256; i++) ints[i] = term_int(i);
    t = term_list(256, ints);
    assert_true(term_match(p, t, vars));
    assert_true(vars[255] == term_int(255));
    term_t sh = term_list(255, ints);
    for (int i = 0; i < 256; i++) vars[i] = TERM_NONE;
    assert_false(term_match(p, sh, vars));
    for (int i = 0; i < 256; i++) assert_true(vars[i] == TERM_NONE);
    term_free(sh);
    term_free(t);
    term_pattern_free(p);
}

/* A shallow pattern over a very deep term compares with term_equal, not recursion. */
static void test_deep_term(void **state)
{
    (void)state;
    term_t a = TERM_NIL, b = TERM_NIL;
    for (int i = 0; i < 1000000; i++) {
        a = term_cons(a, TERM_NIL);
        b = term_cons(b, TERM_NIL);
    }
    term_t t = term_tuplev(2, a, b);
    term_pattern *p = compile("{X, X}");
    term_t vars[1] = {TERM_NONE};
    assert_true(term_match(p, t, vars));
    term_pattern_free(p);
    p = compile("{[[H | _]], _}");
    vars[0] = TERM_NONE;
    assert_true(term_match(p, t, vars));
    assert_true(term_is_list(vars[0]));
    term_pattern_free(p);
    term_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constructs),
        cmocka_unit_test(test_repeated),
        cmocka_unit_test(test_prebound_and_restore),
        cmocka_unit_test(test_no_alloc),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_deep_term),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
