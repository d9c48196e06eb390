/* Tests: the umbrella header and the version macros agree with the library and with CMake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <girder/girder.h>

static void test_version(void **state)
{
    (void)state;
    /* GIRDER_EXPECTED_VERSION is project(girder VERSION ...) as CMake passes it. */
    assert_string_equal(GIRDER_VERSION_STRING, GIRDER_EXPECTED_VERSION);
    assert_string_equal(girder_version(), GIRDER_EXPECTED_VERSION);
    char s[32];
    snprintf(s, sizeof s, "%d.%d.%d", GIRDER_VERSION_MAJOR, GIRDER_VERSION_MINOR,
             GIRDER_VERSION_PATCH);
    assert_string_equal(s, GIRDER_VERSION_STRING);
    assert_int_equal(
        GIRDER_VERSION_NUMBER,
        GIRDER_VERSION_AT(GIRDER_VERSION_MAJOR, GIRDER_VERSION_MINOR, GIRDER_VERSION_PATCH));
    assert_true(GIRDER_VERSION_AT(0, 2, 0) < GIRDER_VERSION_AT(0, 10, 0));
    assert_true(GIRDER_VERSION_AT(0, 255, 255) < GIRDER_VERSION_AT(1, 0, 0));
}

/* girder.h brings the application API of every library (not the provider headers). */
static void test_umbrella(void **state)
{
    (void)state;
    assert_int_equal(GIRDER_ETIMEDOUT, ND_ETIMEOUT);
    assert_true(term_is_atom(term_atom("ok")));
    assert_int_equal(EPMD_DEFAULT_PORT, 4369);
    assert_int_equal(DIST_HIDDEN, 2);
    int (*f)(const nd_config *) = nd_init;
    assert_non_null(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_umbrella),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
