/* Unit tests of the term text printer and parser; expected strings were checked with erl (OTP 25).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <girder/term.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static term_text_ctx ctx;

static int setup(void **state)
{
    (void)state;
    term_init();
    ctx.node = term_atom("a@host");
    ctx.creation = 3;
    return 0;
}

static char *print(term_t t, unsigned flags, const term_text_ctx *c)
{
    etf_buf b = {0};
    assert_int_equal(term_print(t, flags, c, &b), 0);
    assert_int_equal(strlen((char *)b.data), b.len);
    char *s = strdup((char *)b.data);
    etf_buf_free(&b);
    return s;
}

static term_t parse(const char *s)
{
    term_parse_error e;
    term_t t = term_parse(s, strlen(s), &ctx, &e);
    if (t == TERM_NONE)
        fail_msg("parse of %s failed: %s at %zu: %s", s, term_err_name(e.code), e.offset, e.what);
    return t;
}

/* Parses in, prints ~w and ~p, compares, and checks both read back equal. */
static void check(const char *in, const char *w, const char *p)
{
    term_t t = parse(in);
    const char *forms[2] = {w, p};
    for (unsigned f = 0; f < 2; f++) {
        char *s = print(t, f, &ctx);
        if (strcmp(s, forms[f]) != 0) fail_msg("%s printed as %s, expected %s", in, s, forms[f]);
        term_t u = parse(s);
        if (!term_equal(t, u)) fail_msg("%s did not read back equal from %s", in, s);
        term_free(u);
        free(s);
    }
    term_free(t);
}

static void test_scalars(void **state)
{
    (void)state;
    check("0", "0", "0");
    check("-17", "-17", "-17");
    check("16#ff", "255", "255");
    check("-16#ff", "-255", "-255");
    check("2#101", "5", "5");
    check("36#z", "35", "35");
    check("36#ZZ", "1295", "1295");
    check("1_000_000", "1000000", "1000000");
    check("$a", "97", "97");
    check("$\\n", "10", "10");
    check("$ ", "32", "32");
    check("$\\x{263a}", "9786", "9786");
    check("-$a", "-97", "-97");
    check("1267650600228229401496703205376", "1267650600228229401496703205376",
          "1267650600228229401496703205376");
    check("-1180591620717411303424", "-1180591620717411303424", "-1180591620717411303424");
    check("9223372036854775807", "9223372036854775807", "9223372036854775807");
    check("18446744073709551616", "18446744073709551616", "18446744073709551616");
    check("-9223372036854775808", "-9223372036854775808", "-9223372036854775808");
    check("16#123456789abcdef0123456789", "90144042682896311822508713865",
          "90144042682896311822508713865");
    check("[]", "[]", "[]");
    check("{}", "{}", "{}");
    check("#{}", "#{}", "#{}");
    check("ok.", "ok", "ok");
    check("  \n ok  . \n", "ok", "ok");
    check("% comment\n[1, % one\n 2]", "[1,2]", "[1,2]");
}

/* Every float below was printed by io:format("~w") in OTP 25. */
static void test_floats(void **state)
{
    (void)state;
    static const char *const fl[][2] = {
        {"0.1", "0.1"},
        {"1.0e10", "1.0e10"},
        {"123456.0", "123456.0"},
        {"1.0e-5", "1.0e-5"},
        {"0.001", "0.001"},
        {"0.0001", "0.0001"},
        {"1.0e15", "1.0e15"},
        {"123456789012345.0", "123456789012345.0"},
        {"1234567890123456.0", "1234567890123456.0"},
        {"12345678901234567.0", "1.2345678901234568e16"},
        {"1.0e23", "1.0e23"},
        {"0.0", "0.0"},
        {"-0.0", "-0.0"},
        {"1.5e-3", "0.0015"},
        {"2.0e-300", "2.0e-300"},
        {"4.9406564584124654e-324", "5.0e-324"},
        {"1.7976931348623157e308", "1.7976931348623157e308"},
        {"100.0", "100.0"},
        {"1000.0", "1.0e3"},
        {"1.2E10", "1.2e10"},
        {"0.000123", "1.23e-4"},
        {"0.00123", "0.00123"},
        {"3.14", "3.14"},
        {"1.23456789e-7", "1.23456789e-7"},
        {"9007199254740991.0", "9007199254740991.0"},
        {"9007199254740992.0", "9.007199254740992e15"},
        {"4503599627370497.0", "4503599627370497.0"},
        {"1234567890123456.5", "1234567890123456.5"},
        {"999999999999999.9", "999999999999999.9"},
        {"12.0e3", "1.2e4"},
        {"1.0e+2", "100.0"},
        {"-2.5", "-2.5"},
        {"1.78405961588245e44", "1.78405961588245e44"},
        {"6.156563468186638e113", "6.156563468186638e113"}, /* power of two */
    };
    for (size_t i = 0; i < sizeof fl / sizeof *fl; i++) check(fl[i][0], fl[i][1], fl[i][1]);
    term_t t = parse("[1.0, 1]");
    assert_true(term_is_float(term_hd(t)));
    assert_true(term_is_int(term_hd(term_tl(t))));
    term_free(t);
}

/* Quoting as io_lib:write_atom; unquoted latin-1 letters are Erlang's rule too. */
static void test_atoms(void **state)
{
    (void)state;
    static const char *const at[][2] = {
        {"a", "a"},
        {"'A'", "'A'"},
        {"'and'", "'and'"},
        {"'case'", "'case'"},
        {"'end'", "'end'"},
        {"'fun'", "'fun'"},
        {"'a b'", "'a b'"},
        {"a@b", "a@b"},
        {"a_B1", "a_B1"},
        {"''", "''"},
        {"'hello\\nworld'", "'hello\\nworld'"},
        {"'q\\'x'", "'q\\'x'"},
        {"'b\\\\s'", "'b\\\\s'"},
        {"true", "true"},
        {"maybe", "maybe"},
        {"query", "query"},
        {"'_a'", "'_a'"},
        {"'9a'", "'9a'"},
        {"'Ab'", "'Ab'"},
        {"'@a'", "'@a'"},
        {"\xc3\xa9", "\xc3\xa9"},          /* é */
        {"'\xc3\x84'", "'\xc3\x84'"},      /* 'Ä' */
        {"a\xc3\x84", "a\xc3\x84"},        /* aÄ */
        {"'a\\x{a0}'", "'a\xc2\xa0'"},     /* nbsp is not a name character */
        {"'\\x{263a}'", "'\\x{263A}'"},    /* beyond latin-1: escaped, as ~w */
        {"'\xe2\x98\xba'", "'\\x{263A}'"}, /* literal ☺ reads the same */
        {"'a\\233b\\d'", "'a\\233b\\d'"},  /* control characters in octal, DEL as \d */
        {"'\\^a'", "'\\001'"},
        {"'a\\x41'", "aA"},
        {"'\\101'", "'A'"},
        {"'\\s'", "' '"},
        {"'\\e\\f\\b\\v\\t\\r'", "'\\e\\f\\b\\v\\t\\r'"},
    };
    for (size_t i = 0; i < sizeof at / sizeof *at; i++) check(at[i][0], at[i][1], at[i][1]);

    /* 255 characters are allowed, 256 are not; counted in characters, not bytes */
    char buf[1200];
    memset(buf, 'a', 255);
    buf[255] = 0;
    term_t t = parse(buf);
    assert_true(term_is_atom(t));
    memset(buf, 'a', 256);
    term_parse_error e;
    assert_int_equal(term_parse(buf, 256, &ctx, &e), TERM_NONE);
    assert_int_equal(e.code, TERM_EATOM);
    size_t n = 0;
    buf[n++] = '\'';
    for (int i = 0; i < 255; i++)
        buf[n++] = (char)0xe2, buf[n++] = (char)0x98, buf[n++] = (char)0xba;
    buf[n++] = '\'';
    t = term_parse(buf, n, &ctx, &e);
    assert_true(term_is_atom(t));
    char *s = print(t, 0, &ctx);
    term_t u = parse(s);
    assert_true(u == t);
    free(s);
}

static void test_lists_strings(void **state)
{
    (void)state;
    check("[1,2|3]", "[1,2|3]", "[1,2|3]");
    check("[ 1 , 2 | [ 3 ] ]", "[1,2,3]", "[1,2,3]");
    check("\"abc\"", "[97,98,99]", "\"abc\"");
    check("\"\"", "[]", "[]");
    check("\"ab\" \"cd\"", "[97,98,99,100]", "\"abcd\"");
    check("\"a\\nb\\\"c\\\\\"", "[97,10,98,34,99,92]", "\"a\\nb\\\"c\\\\\"");
    check("[1,2,3]", "[1,2,3]", "[1,2,3]");
    check("\"\xc3\xa9\"", "[233]", "\"\xc3\xa9\"");
    check("[9786]", "[9786]", "[9786]");
    check("\"\\x{263a}\"", "[9786]", "[9786]");
    check("\"\\e\\d\\t\\v\\b\\f\\r\"", "[27,127,9,11,8,12,13]", "[27,127,9,11,8,12,13]");
    check("\"\\e\\t\\v\\b\\f\\r\"", "[27,9,11,8,12,13]", "\"\\e\\t\\v\\b\\f\\r\"");
    check("[$a|$b]", "[97|98]", "[97|98]");
    check("[1000000]", "[1000000]", "[1000000]");
    check("\"\\x00\"", "[0]", "[0]");
    check("\"\\x41\\101\\^a\\s\\q\"", "[65,65,1,32,113]", "[65,65,1,32,113]");
    check("[\"ab\",[\"c\"]]", "[[97,98],[[99]]]", "[\"ab\",[\"c\"]]");
    check("\"a\nb\"", "[97,10,98]", "\"a\\nb\"");
    check("[-1]", "[-1]", "[-1]");
    check("{a,{},[]}", "{a,{},[]}", "{a,{},[]}");
    check("{ok, \"x\", <<\"y\">>}", "{ok,[120],<<121>>}", "{ok,\"x\",<<\"y\">>}");
}

static void test_maps(void **state)
{
    (void)state;
    check("#{a => 1, {x} => [], 1 => 2, 1.0 => 3}", "#{1 => 2,1.0 => 3,a => 1,{x} => []}",
          "#{1 => 2,1.0 => 3,a => 1,{x} => []}");
    check("#{#{k => v} => #{}, [a] => \"s\"}", "#{#{k => v} => #{},[a] => [115]}",
          "#{#{k => v} => #{},[a] => \"s\"}");
    check("#{a => 1, a => 2}", "#{a => 2}", "#{a => 2}");
}

static void test_binaries(void **state)
{
    (void)state;
    check("<<1,2:3>>", "<<1,2:3>>", "<<1,2:3>>");
    check("<<\"abc\">>", "<<97,98,99>>", "<<\"abc\">>");
    check("<<>>", "<<>>", "<<>>");
    check("<< >>", "<<>>", "<<>>");
    check("<<1,2,3>>", "<<1,2,3>>", "<<1,2,3>>");
    check("<<\"ab\",1:1>>", "<<97,98,1:1>>", "<<97,98,1:1>>");
    check("<<0>>", "<<0>>", "<<0>>");
    check("<<\"\xc3\xa9\"/utf8>>", "<<195,169>>", "<<\"\xc3\x83\xc2\xa9\">>");
    check("<<\"a\\x{263a}\"/utf8>>", "<<97,226,152,186>>", "<<97,226,152,186>>");
    check("<<9786/utf8>>", "<<226,152,186>>", "<<226,152,186>>");
    check("<<-1,256:16,\"ab\":4>>", "<<255,1,0,18>>", "<<255,1,0,18>>");
    check("<<$a, 16#62, 2#1100011>>", "<<97,98,99>>", "<<\"abc\">>");
    check("<<1:1>>", "<<1:1>>", "<<1:1>>");
    check("<<5:3, 1:64>>", "<<160,0,0,0,0,0,0,0,1:3>>", "<<160,0,0,0,0,0,0,0,1:3>>");
    check("<<\"a\\nb\">>", "<<97,10,98>>", "<<\"a\\nb\">>");
    check("<<\"ab\" \"c\">>", "<<97,98,99>>", "<<\"abc\">>");

    /* a sub-bitstring at an odd bit offset prints from its own bits */
    uint8_t d[3] = {0xff, 0x0f, 0xf0};
    term_t bin = term_binary(d, 3);
    term_t sub = term_sub_binary(bin, 4, 13);
    char *s = print(sub, 0, &ctx);
    assert_string_equal(s, "<<240,31:5>>");
    term_t u = parse(s);
    assert_true(term_equal(u, sub));
    free(s);
    term_free(u);
    term_free(sub);
    term_free(bin);

    /* large binaries round-trip */
    uint8_t big[1000];
    for (int i = 0; i < 1000; i++) big[i] = (uint8_t)(i * 7);
    bin = term_binary(big, sizeof big);
    for (unsigned f = 0; f < 2; f++) {
        s = print(bin, f, &ctx);
        u = parse(s);
        assert_true(term_equal(u, bin));
        term_free(u);
        free(s);
    }
    term_free(bin);
}

static void test_pids_ports_refs(void **state)
{
    (void)state;
    term_t node = term_atom("b@h"), odd = term_atom("n@127.0.0.1");
    term_t t = term_pid(ctx.node, 85, 0, 3);
    char *s = print(t, 0, &ctx);
    assert_string_equal(s, "<0.85.0>");
    free(s);
    s = print(t, TERM_PRINT_EXPLICIT, &ctx);
    assert_string_equal(s, "<a@host:3.85.0>");
    free(s);
    s = print(t, 0, NULL); /* no local node: explicit */
    assert_string_equal(s, "<a@host:3.85.0>");
    free(s);
    term_free(t);
    t = term_pid(ctx.node, 85, 0, 4); /* same name, other incarnation */
    s = print(t, 0, &ctx);
    assert_string_equal(s, "<a@host:4.85.0>");
    free(s);
    term_free(t);

    check("<0.85.0>", "<0.85.0>", "<0.85.0>");
    check("<b@h:7.85.1>", "<b@h:7.85.1>", "<b@h:7.85.1>");
    check("<'n@127.0.0.1':4294967295.4294967295.4294967295>",
          "<'n@127.0.0.1':4294967295.4294967295.4294967295>",
          "<'n@127.0.0.1':4294967295.4294967295.4294967295>");
    check("#Port<0.7>", "#Port<0.7>", "#Port<0.7>");
    check("#Port<b@h:1.18446744073709551615>", "#Port<b@h:1.18446744073709551615>",
          "#Port<b@h:1.18446744073709551615>");
    check("#Ref<0.1.2.3>", "#Ref<0.1.2.3>", "#Ref<0.1.2.3>");
    check("#Ref<b@h:9.5.4.3.2.1>", "#Ref<b@h:9.5.4.3.2.1>", "#Ref<b@h:9.5.4.3.2.1>");
    check("#Ref<0.42>", "#Ref<0.42>", "#Ref<0.42>");

    /* Erlang prints #Ref<0.1.2.3> for the reference whose words are 3, 2, 1 */
    t = parse("#Ref<0.1.2.3>");
    term_ref_info ri;
    assert_int_equal(term_ref_get(t, &ri), 0);
    assert_int_equal(ri.nwords, 3);
    assert_int_equal(ri.words[0], 3);
    assert_int_equal(ri.words[2], 1);
    assert_true(ri.node == ctx.node);
    assert_int_equal(ri.creation, 3);
    term_free(t);
    t = parse("<'n@127.0.0.1':5.1.2>");
    term_pid_info pi;
    assert_int_equal(term_pid_get(t, &pi), 0);
    assert_true(pi.node == odd);
    assert_int_equal(pi.creation, 5);
    assert_int_equal(pi.id, 1);
    assert_int_equal(pi.serial, 2);
    term_free(t);
    t = term_port(node, 12, 2);
    s = print(t, 0, &ctx);
    assert_string_equal(s, "#Port<b@h:2.12>");
    free(s);
    term_free(t);

    /* the local short form needs a context node */
    term_parse_error e;
    assert_int_equal(term_parse("<0.1.2>", 7, NULL, &e), TERM_NONE);
    assert_int_equal(e.code, TERM_EINVAL);
    assert_int_equal(term_parse("<1.1.2>", 7, &ctx, &e), TERM_NONE);
    assert_int_equal(e.code, TERM_ESYNTAX);
}

static void test_funs(void **state)
{
    (void)state;
    check("fun lists:map/2", "fun lists:map/2", "fun lists:map/2");
    check("fun 'A':'b c'/0", "fun 'A':'b c'/0", "fun 'A':'b c'/0");
    check("fun m : f / 255", "fun m:f/255", "fun m:f/255");
    const char *lf = "#Fun<m.1.000102030405060708090a0b0c0d0e0f.2.-3.2.<0.1.2>.[a,{b}]>";
    check(lf, lf, lf);
    const char *of = "#OldFun<m.1.000102030405060708090a0b0c0d0e0f.2.-3.2.<0.1.2>.[]>";
    check(of, of, of);
    term_t t = parse(of);
    term_fun_info oi;
    assert_int_equal(term_fun_get(t, &oi), 0);
    assert_true(oi.old_form && !oi.is_export);
    assert_int_equal(oi.index, 1);
    assert_int_equal(oi.uniq[15], 0x0f);
    assert_int_equal(oi.arity, 2);
    assert_true(term_equal(oi.old_uniq, term_int(-3)));
    term_free(t);
    check("#Fun<'M "
          "x'.0.ffffffffffffffffffffffffffffffff.123456789012345678901.94010913.0.<b@h:1.2.3>.[]>",
          "#Fun<'M "
          "x'.0.ffffffffffffffffffffffffffffffff.123456789012345678901.94010913.0.<b@h:1.2.3>.[]>",
          "#Fun<'M "
          "x'.0.ffffffffffffffffffffffffffffffff.123456789012345678901.94010913.0.<b@h:1.2.3>.[]>");

    /* a local fun built from its fields prints every field and reads back equal */
    term_t pid = term_pid(ctx.node, 9, 0, 3);
    term_t fv[2] = {term_string("hi", 2), term_int(1)};
    term_fun_info fi = {0};
    fi.module = term_atom("e1");
    fi.index = 0;
    for (int i = 0; i < 16; i++) fi.uniq[i] = (uint8_t)(0xa0 + i);
    fi.old_index = term_int(0);
    fi.old_uniq = term_int(94010913);
    fi.arity = 1;
    fi.pid = pid;
    fi.nfree = 2;
    fi.free = fv;
    term_t f = term_local_fun(&fi);
    assert_true(f != TERM_NONE);
    char *s = print(f, 0, &ctx);
    assert_string_equal(
        s, "#Fun<e1.0.a0a1a2a3a4a5a6a7a8a9aaabacadaeaf.0.94010913.1.<0.9.0>.[[104,105],1]>");
    free(s);
    s = print(f, TERM_PRINT_P, &ctx);
    assert_string_equal(
        s, "#Fun<e1.0.a0a1a2a3a4a5a6a7a8a9aaabacadaeaf.0.94010913.1.<0.9.0>.[\"hi\",1]>");
    term_t u = parse(s);
    assert_true(term_equal(u, f));
    term_free(u);
    free(s);
    s = print(f, TERM_PRINT_EXPLICIT, &ctx);
    assert_string_equal(
        s, "#Fun<e1.0.a0a1a2a3a4a5a6a7a8a9aaabacadaeaf.0.94010913.1.<a@host:3.9.0>.[[104,105],1]>");
    free(s);
    term_free(f);
    term_free(pid);
    term_free(fv[0]);
}

/* Each bad input gives the code, the byte offset and a message containing `what`. */
static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int code;
        size_t off;
        const char *what;
    } bad[] = {
        {"", TERM_ESYNTAX, 0, "expected a term"},
        {"   ", TERM_ESYNTAX, 3, "expected a term"},
        {"[1,2", TERM_ESYNTAX, 4, "expected ',', '|' or ']'"},
        {"{a b}", TERM_ESYNTAX, 3, "expected ',' or '}'"},
        {"{a,}", TERM_ESYNTAX, 3, "expected a term"},
        {"[1|2,3]", TERM_ESYNTAX, 4, "expected ']'"},
        {"[|2]", TERM_ESYNTAX, 1, "expected a term"},
        {"#{a => 1", TERM_ESYNTAX, 8, "expected ',' or '}'"},
        {"#{a 1}", TERM_ESYNTAX, 4, "expected '=>'"},
        {"#{a := 1}", TERM_ESYNTAX, 4, "only allowed in patterns"},
        {"X", TERM_ESYNTAX, 0, "only allowed in patterns"},
        {"[a, _]", TERM_ESYNTAX, 4, "only allowed in patterns"},
        {"and", TERM_ESYNTAX, 0, "reserved word"},
        {"{ok, case}", TERM_ESYNTAX, 5, "reserved word"},
        {"a b", TERM_ETRAILING, 2, "after the term"},
        {"a. b", TERM_ETRAILING, 3, "after the term"},
        {"\"abc", TERM_ESYNTAX, 0, "unterminated string"},
        {"'abc", TERM_ESYNTAX, 0, "unterminated"},
        {"1.", TERM_NONE, 0, NULL}, /* fine: 1 and the end dot */
        {"1.e5", TERM_ETRAILING, 2, "after the term"},
        {".5", TERM_ESYNTAX, 0, "expected a term"},
        {"1.0e", TERM_ESYNTAX, 3, "exponent"},
        {"1.0e400", TERM_EFLOAT, 0, "out of range"},
        {"37#1", TERM_ESYNTAX, 0, "base"},
        {"16#", TERM_ESYNTAX, 3, "digits"},
        {"16#g", TERM_ESYNTAX, 3, "digits"},
        {"<<1,2", TERM_ESYNTAX, 5, "expected ',' or '>>'"},
        {"<<a>>", TERM_ESYNTAX, 2, "binary segment"},
        {"<<1:65>>", TERM_ENOTSUP, 4, "out of range"},
        {"<<1.5>>", TERM_ENOTSUP, 2, "float"},
        {"<0.1>", TERM_ESYNTAX, 4, "expected '.'"},
        {"<0.1.2", TERM_ESYNTAX, 6, "expected '>'"},
        {"<x.1.2>", TERM_ESYNTAX, 2, "expected ':'"},
        {"<0.99999999999.0>", TERM_ERANGE, 3, "out of range"},
        {"#Ref<0>", TERM_ESYNTAX, 6, "reference word"},
        {"#Ref<0.1.2.3.4.5.6>", TERM_ESYNTAX, 17, "at most 5"},
        {"#Foo<>", TERM_ESYNTAX, 0, "expected #{"},
        {"fun m:f", TERM_ESYNTAX, 7, "expected '/'"},
        {"fun m:f/256", TERM_ERANGE, 8, "out of range"},
        {"#Fun<m.1.00.0.0.0.<0.1.2>.[]>", TERM_ESYNTAX, 9, "32 hex digits"},
        {"#Fun<m.1.000102030405060708090a0b0c0d0e0f.2.3.0.a.[]>", TERM_ESYNTAX, 0, "literal pid"},
        {"#Fun<m.1.000102030405060708090a0b0c0d0e0f.2.3.0.<0.1.2>.[a|b]>", TERM_ESYNTAX, 0,
         "free variables"},
        {"\"\\x{110000}\"", TERM_ESYNTAX, 1, "out of range"},
        {"'\\x{d800}'", TERM_EATOM, 0, "invalid character"},
        {"$", TERM_ESYNTAX, 1, "unterminated"},
        {"ok\xff", TERM_EUTF8, 2, "UTF-8"},
        {"\"\xc3\"", TERM_EUTF8, 1, "UTF-8"},
        {"'\xed\xa0\x80'", TERM_EUTF8, 1, "UTF-8"}, /* encoded surrogate */
        {"\xc0\x80", TERM_EUTF8, 0, "UTF-8"},       /* overlong */
        {"- a", TERM_ESYNTAX, 2, "expected a number"},
        {"@a", TERM_ESYNTAX, 0, "expected a term"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        term_parse_error e;
        term_t t = term_parse(bad[i].in, strlen(bad[i].in), &ctx, &e);
        if (bad[i].code == TERM_NONE) {
            assert_true(t != TERM_NONE);
            term_free(t);
            continue;
        }
        if (t != TERM_NONE) fail_msg("%s parsed", bad[i].in);
        if (e.code != bad[i].code || e.offset != bad[i].off || !strstr(e.what, bad[i].what))
            fail_msg("%s: got %s at %zu \"%s\", expected %s at %zu \"%s\"", bad[i].in,
                     term_err_name(e.code), e.offset, e.what, term_err_name(bad[i].code),
                     bad[i].off, bad[i].what);
    }
    /* err may be NULL */
    assert_int_equal(term_parse("[", 1, NULL, NULL), TERM_NONE);
}

/* 1,000,000 nested lists parse, print and free without deep C recursion. */
static void test_deep(void **state)
{
    (void)state;
    const size_t depth = 1000000;
    char *s = malloc(2 * depth + 1);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    s[2 * depth] = 0;
    term_parse_error e;
    term_t t = term_parse(s, 2 * depth, &ctx, &e);
    assert_true(t != TERM_NONE);
    char *p = print(t, 0, &ctx);
    assert_string_equal(p, s);
    free(p);
    term_free(t);

    /* deeper than the limit is refused cleanly */
    free(s);
    const size_t too = (1u << 20) + 1;
    s = malloc(too + 1);
    memset(s, '{', too);
    s[too] = 0;
    assert_int_equal(term_parse(s, too, &ctx, &e), TERM_NONE);
    assert_int_equal(e.code, TERM_EDEPTH);
    assert_int_equal(e.offset, 1u << 20);
    free(s);

    /* a deep term built programmatically prints (tuples, maps, improper lists) */
    t = term_int(0);
    for (size_t i = 0; i < depth; i++) {
        switch (i % 3) {
        case 0:
            t = term_tuplev(2, t, TERM_NIL);
            break;
        case 1:
            t = term_cons(term_int(1), t);
            break;
        default: {
            term_t k = term_atom("k");
            t = term_map(1, &k, &t);
        }
        }
        assert_true(t != TERM_NONE);
    }
    p = print(t, TERM_PRINT_P, &ctx);
    assert_true(strncmp(p, "{#{k => [1|{#{k => [1|", 22) == 0);
    term_t u = term_parse(p, strlen(p), &ctx, &e);
    assert_true(u != TERM_NONE);
    assert_true(term_equal(t, u));
    free(p);
    term_free(u);
    term_free(t);
}

/* ------------------------------------------------------------ random round trips */

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static term_t gen(int depth)
{
    static const char *const names[] = {
        "a", "ok", "A b", "and", "\xc3\xa9t\xc3\xa9", "\xe2\x98\xba", "", "n@h"};
    int k = (int)(rnd() % (depth > 0 ? 14 : 9));
    switch (k) {
    case 0:
        return term_int((int64_t)(rnd() % 2000) - 1000);
    case 1: {
        uint8_t le[24];
        for (int i = 0; i < 24; i++) le[i] = (uint8_t)rnd();
        return term_big_from_bytes(rnd() & 1, le, 1 + rnd() % 24);
    }
    case 2: {
        double d;
        uint64_t b = rnd();
        memcpy(&d, &b, 8);
        if (!isfinite(d)) d = 0.5;
        return term_float(d);
    }
    case 3:
        return term_atom(names[rnd() % 8]);
    case 4: {
        uint8_t d[40];
        for (int i = 0; i < 40; i++) d[i] = (uint8_t)(rnd() % 3 ? 'a' + rnd() % 26 : rnd());
        return term_bitstring(d, rnd() % 320);
    }
    case 5:
        return term_pid(rnd() & 1 ? ctx.node : term_atom("x@y"), (uint32_t)rnd(), (uint32_t)rnd(),
                        rnd() & 1 ? 3 : (uint32_t)rnd());
    case 6:
        return term_port(rnd() & 1 ? ctx.node : term_atom("x@y"), rnd(),
                         rnd() & 1 ? 3 : (uint32_t)rnd());
    case 7: {
        uint32_t w[5] = {(uint32_t)rnd(), (uint32_t)rnd(), (uint32_t)rnd(), (uint32_t)rnd(),
                         (uint32_t)rnd()};
        return term_ref(rnd() & 1 ? ctx.node : term_atom("x@y"), rnd() & 1 ? 3 : (uint32_t)rnd(),
                        1 + rnd() % 5, w);
    }
    case 8: {
        char s[8];
        size_t n = rnd() % 8;
        for (size_t i = 0; i < n; i++) s[i] = (char)(rnd() % 2 ? 'a' + rnd() % 26 : rnd() % 128);
        return term_string(s, n);
    }
    case 9:
    case 10: {
        size_t n = rnd() % 5;
        term_t e[5];
        for (size_t i = 0; i < n; i++) e[i] = gen(depth - 1);
        return k == 9 ? term_tuple(n, e)
                      : term_list_tail(n, e, rnd() % 4 ? TERM_NIL : gen(depth - 1));
    }
    case 11: {
        size_t n = rnd() % 4;
        term_t ks[4], vs[4];
        for (size_t i = 0; i < n; i++) ks[i] = gen(depth - 1), vs[i] = gen(depth - 1);
        return term_map(n, ks, vs);
    }
    case 12:
        return term_export_fun(term_atom(names[rnd() % 8]), term_atom(names[rnd() % 8]),
                               (uint32_t)(rnd() % 256));
    default: {
        term_t fv[3];
        size_t n = rnd() % 3;
        for (size_t i = 0; i < n; i++) fv[i] = gen(depth - 1);
        term_t pid = term_pid(ctx.node, 1, 2, 3);
        term_fun_info fi = {0};
        fi.module = term_atom(names[rnd() % 8]);
        fi.index = (uint32_t)rnd();
        for (int i = 0; i < 16; i++) fi.uniq[i] = (uint8_t)rnd();
        fi.old_index = term_int((int64_t)(rnd() % 100));
        fi.old_uniq = term_int((int64_t)(rnd() % 100000000) - 5);
        fi.arity = (uint32_t)(rnd() % 256);
        fi.pid = pid;
        fi.nfree = n;
        fi.free = fv;
        fi.old_form = rnd() % 8 == 0;
        term_t f = term_local_fun(&fi);
        for (size_t i = 0; i < n; i++) term_free(fv[i]);
        term_free(pid);
        return f;
    }
    }
}

static void test_random_roundtrip(void **state)
{
    (void)state;
    for (int i = 0; i < 3000; i++) {
        term_t t = gen(4);
        assert_true(t != TERM_NONE);
        for (unsigned f = 0; f < 4; f++) {
            const term_text_ctx *c = f == 3 ? NULL : &ctx;
            unsigned fl = f == 3 ? 0 : f;
            char *s = print(t, fl, c);
            term_parse_error e;
            term_t u = term_parse(s, strlen(s), c ? c : &ctx, &e);
            if (u == TERM_NONE) fail_msg("cannot read back %s: %s at %zu", s, e.what, e.offset);
            if (!term_equal(t, u)) fail_msg("%s read back different", s);
            term_free(u);
            free(s);
        }
        term_free(t);
    }
}

/* ------------------------------------------------------------ allocation failures */

static long fail_after = -1;
static void *failing_alloc(void *ud, void *p, size_t old, size_t n)
{
    (void)ud;
    (void)old;
    if (n == 0) {
        free(p);
        return NULL;
    }
    if (fail_after == 0) return NULL;
    if (fail_after > 0) fail_after--;
    return realloc(p, n);
}

/* Failing each allocation in turn gives ENOMEM (or success), never a crash or a leak. */
static void test_alloc_failures(void **state)
{
    (void)state;
    const char *in =
        "{[1,2|3], #{a => <<\"x\",1:2>>, \"str\" => 1.5}, 123456789012345678901234567890, "
        "#Fun<m.1.000102030405060708090a0b0c0d0e0f.2.3.0.<0.1.2>.[a,{b}]>, 'q\\'', "
        "#Ref<b@h:1.2.3>, fun a:b/1, <0.1.2>}";
    term_set_allocator(failing_alloc, NULL);
    bool ok = false;
    for (long n = 0; !ok && n < 10000; n++) {
        fail_after = n;
        term_parse_error e;
        term_t t = term_parse(in, strlen(in), &ctx, &e);
        if (t == TERM_NONE) {
            assert_int_equal(e.code, TERM_ENOMEM);
            continue;
        }
        etf_buf b = {0};
        fail_after = -1;
        for (long m = 0;; m++) {
            fail_after = m;
            b.len = 0;
            int r = term_print(t, 0, &ctx, &b);
            fail_after = -1;
            if (r == 0) break;
            assert_int_equal(r, TERM_ENOMEM);
        }
        etf_buf_free(&b);
        term_free(t);
        ok = true;
    }
    fail_after = -1;
    term_set_allocator(NULL, NULL);
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_atoms),
        cmocka_unit_test(test_lists_strings),
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_binaries),
        cmocka_unit_test(test_pids_ports_refs),
        cmocka_unit_test(test_funs),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_deep),
        cmocka_unit_test(test_random_roundtrip),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
