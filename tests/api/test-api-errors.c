/* Tests: the one error space — every code distinct, negative, named and explained; aliases. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <girder/dist.h>
#include <girder/epmd.h>
#include <girder/error.h>
#include <girder/node.h>
#include <girder/term.h>

typedef struct code {
    const char *name;
    int value;
    const char *msg;
} code;

static const code codes[] = {
#define XX(name, value, msg) {#name, value, msg},
    GIRDER_ERRNO_MAP(XX)
#undef XX
};
#define NCODES (sizeof codes / sizeof codes[0])

/* The codes promised to be errno values, written out here rather than taken from the table. */
static const struct {
    const char *name;
    int value;
} errno_codes[] = {
    {"ENOMEM", -ENOMEM},
    {"EINVAL", -EINVAL},
    {"ETIMEDOUT", -ETIMEDOUT},
    {"ENOENT", -ENOENT},
    {"EEXIST", -EEXIST},
    {"EPERM", -EPERM},
    {"ECONNREFUSED", -ECONNREFUSED},
    {"ECONNRESET", -ECONNRESET},
    {"EPROTO", -EPROTO},
    {"ENAMETOOLONG", -ENAMETOOLONG},
    {"EMSGSIZE", -EMSGSIZE},
    {"EHOSTUNREACH", -EHOSTUNREACH},
    {"EADDRINUSE", -EADDRINUSE},
    {"EIO", -EIO},
    {"ERANGE", -ERANGE},
    {"ENOTSUP", -ENOTSUP},
    {"EAGAIN", -EAGAIN},
    {"EINTR", -EINTR},
    {"EPIPE", -EPIPE},
    {"EACCES", -EACCES},
    {"EBADF", -EBADF},
    {"EMFILE", -EMFILE},
    {"ENFILE", -ENFILE},
    {"ENOSPC", -ENOSPC},
    {"ENOTCONN", -ENOTCONN},
    {"ECONNABORTED", -ECONNABORTED},
    {"EADDRNOTAVAIL", -EADDRNOTAVAIL},
    {"ENETUNREACH", -ENETUNREACH},
    {"ENETDOWN", -ENETDOWN},
    {"EAFNOSUPPORT", -EAFNOSUPPORT},
    {"ENOBUFS", -ENOBUFS},
    {"ECANCELED", -ECANCELED},
    {"EALREADY", -EALREADY},
    {"EINPROGRESS", -EINPROGRESS},
    {"EBUSY", -EBUSY},
};

static void test_every_code(void **state)
{
    (void)state;
    assert_true(NCODES > 60);
    for (size_t i = 0; i < NCODES; i++) {
        const code *c = &codes[i];
        assert_true(c->value < 0);
        for (size_t j = 0; j < i; j++)
            if (codes[j].value == c->value)
                fail_msg("%s and %s share %d", codes[j].name, c->name, c->value);
        assert_true(c->name[0] == 'E' && strlen(c->name) > 1);
        assert_string_equal(girder_err_name(c->value), c->name);
        assert_string_equal(girder_strerror(c->value), c->msg);
        assert_true(strcmp(c->msg, "unknown error") != 0 && c->msg[0] != 0);
        /* A code is an errno (and then the errno of its name) or counts down from -1000. */
        if (c->value > -1000) {
            size_t k = 0;
            while (k < sizeof errno_codes / sizeof errno_codes[0] &&
                   strcmp(errno_codes[k].name, c->name) != 0)
                k++;
            if (k == sizeof errno_codes / sizeof errno_codes[0])
                fail_msg("%s = %d is neither a listed errno nor <= -1000", c->name, c->value);
            assert_int_equal(c->value, errno_codes[k].value);
        }
    }
    for (size_t k = 0; k < sizeof errno_codes / sizeof errno_codes[0]; k++) {
        size_t i = 0;
        while (i < NCODES && strcmp(codes[i].name, errno_codes[k].name) != 0) i++;
        if (i == NCODES) fail_msg("%s promised but missing from the table", errno_codes[k].name);
    }
}

static void test_outside_the_table(void **state)
{
    (void)state;
    assert_string_equal(girder_strerror(0), "success");
    assert_string_equal(girder_err_name(0), "OK");
    assert_int_equal(GIRDER_OK, 0);
    const int unknown[] = {1, -999, -100000, -4095, -1000 - (int)NCODES - 100};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(girder_strerror(unknown[i]), "unknown error");
        assert_string_equal(girder_err_name(unknown[i]), "EUNKNOWN");
    }
}

/* One spelling of "timed out", whatever name a caller learnt. */
static void test_one_timeout(void **state)
{
    (void)state;
    assert_int_equal(GIRDER_ETIMEDOUT, -ETIMEDOUT);
    assert_int_equal(ND_ETIMEOUT, GIRDER_ETIMEDOUT);
    assert_int_equal(EPMD_ETIMEDOUT, GIRDER_ETIMEDOUT);
    assert_int_equal(DIST_ETIMEOUT, GIRDER_ETIMEDOUT);
    assert_string_equal(girder_err_name(ND_ETIMEOUT), "ETIMEDOUT");
}

#define ALIAS(lib, name) assert_int_equal(lib##_##name, GIRDER_##name)

static void test_term_aliases(void **state)
{
    (void)state;
    assert_int_equal(TERM_OK, 0);
    ALIAS(TERM, ENOMEM);
    ALIAS(TERM, EINVAL);
    ALIAS(TERM, ETRUNC);
    ALIAS(TERM, EVERSION);
    ALIAS(TERM, ETAG);
    ALIAS(TERM, EATOM);
    ALIAS(TERM, EATOMLIMIT);
    ALIAS(TERM, EUTF8);
    ALIAS(TERM, EBIG);
    ALIAS(TERM, EFLOAT);
    ALIAS(TERM, ESIZE);
    ALIAS(TERM, EZLIB);
    ALIAS(TERM, EBITS);
    ALIAS(TERM, EDUPKEY);
    ALIAS(TERM, ECACHE);
    ALIAS(TERM, ETRAILING);
    ALIAS(TERM, ESYNTAX);
    ALIAS(TERM, ENOTSUP);
    ALIAS(TERM, EDEPTH);
    ALIAS(TERM, ETYPE);
    ALIAS(TERM, ERANGE);
}

static void test_node_aliases(void **state)
{
    (void)state;
    assert_int_equal(ND_OK, 0);
    ALIAS(ND, ENOMEM);
    ALIAS(ND, EINVAL);
    ALIAS(ND, ENOPROC);
    ALIAS(ND, ENOTPROC);
    ALIAS(ND, EEXIST);
    ALIAS(ND, ENOTREG);
    ALIAS(ND, ELIMIT);
    ALIAS(ND, ESTATE);
    ALIAS(ND, ENOTIMER);
    ALIAS(ND, EEXIT);
    ALIAS(ND, ENODIST);
    ALIAS(ND, ENOCHILD);
    ALIAS(ND, ERUNNING);
    ALIAS(ND, ESTART);
}

static void test_epmd_aliases(void **state)
{
    (void)state;
    ALIAS(EPMD, EINVAL);
    ALIAS(EPMD, ENOMEM);
    ALIAS(EPMD, ECONNREFUSED);
    ALIAS(EPMD, ECONNRESET);
    ALIAS(EPMD, EPROTO);
    ALIAS(EPMD, ENOENT);
    ALIAS(EPMD, EEXIST);
    ALIAS(EPMD, EPERM);
    ALIAS(EPMD, ENAMETOOLONG);
    ALIAS(EPMD, EMSGSIZE);
    ALIAS(EPMD, EHOSTUNREACH);
    ALIAS(EPMD, EADDRINUSE);
    ALIAS(EPMD, EIO);
}

static void test_dist_aliases(void **state)
{
    (void)state;
    assert_int_equal(DIST_OK, 0);
    ALIAS(DIST, ENOMEM);
    ALIAS(DIST, EINVAL);
    ALIAS(DIST, ESTATE);
    ALIAS(DIST, ENAME);
    ALIAS(DIST, ECOOKIE);
    ALIAS(DIST, ELISTEN);
    ALIAS(DIST, EEPMD);
    ALIAS(DIST, ENOCONN);
    ALIAS(DIST, ENOTPROC);
    ALIAS(DIST, EEXIST);
    ALIAS(DIST, EPROTO);
}

/* The per-library functions are the unified ones under old names. */
static void test_function_aliases(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCODES; i++) {
        int v = codes[i].value;
        assert_string_equal(term_strerror(v), girder_strerror(v));
        assert_string_equal(term_err_name(v), girder_err_name(v));
        assert_string_equal(nd_strerror(v), girder_strerror(v));
        assert_string_equal(nd_err_name(v), girder_err_name(v));
        assert_string_equal(epmd_strerror(v), girder_strerror(v));
        assert_string_equal(epmd_err_name(v), girder_err_name(v));
        assert_string_equal(dist_strerror(v), girder_strerror(v));
        assert_string_equal(dist_err_name(v), girder_err_name(v));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_code),   cmocka_unit_test(test_outside_the_table),
        cmocka_unit_test(test_one_timeout),  cmocka_unit_test(test_term_aliases),
        cmocka_unit_test(test_node_aliases), cmocka_unit_test(test_epmd_aliases),
        cmocka_unit_test(test_dist_aliases), cmocka_unit_test(test_function_aliases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
