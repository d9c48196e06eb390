/* Unit tests for the epmd registry: uniqueness, creations, bounded memory of old names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "epmd_int.h"

static epmd__request req(const char *name, uint16_t high)
{
    epmd__request r = {.type = EPMD_ALIVE2_REQ,
                       .port = 1000,
                       .node_type = 77,
                       .highest_version = high,
                       .lowest_version = 5,
                       .name = (const uint8_t *)name,
                       .name_len = strlen(name)};
    return r;
}

static void test_add_find_remove(void **state)
{
    epmd__registry r;
    epmd__registry_init(&r, 1000);
    int err;
    epmd__request a = req("a", 6), b = req("b", 6);
    epmd__node *na = epmd__registry_add(&r, &a, 1, 10, 5000, &err);
    assert_non_null(na);
    assert_int_equal(err, 0);
    assert_non_null(epmd__registry_add(&r, &b, 2, 11, 5000, &err));
    assert_int_equal(r.reg_count, 2);
    assert_int_equal(r.reg->info.name[0], 'b'); /* newest first, like Erlang's NAMES */
    assert_null(epmd__registry_add(&r, &a, 3, 12, 5000, &err));
    assert_int_equal(err, EPMD_EEXIST);
    assert_ptr_equal(epmd__registry_find(&r, (const uint8_t *)"a", 1), na);
    assert_null(epmd__registry_find(&r, (const uint8_t *)"c", 1));
    assert_null(epmd__registry_remove_conn(&r, 99));
    assert_ptr_equal(epmd__registry_remove_conn(&r, 1), na);
    assert_null(epmd__registry_find(&r, (const uint8_t *)"a", 1));
    assert_int_equal(r.reg_count, 1);
    assert_int_equal(r.unreg_count, 1);
    assert_non_null(epmd__registry_remove_name(&r, (const uint8_t *)"b", 1));
    assert_int_equal(r.reg_count, 0);
    assert_null(epmd__registry_remove_conn(&r, 0));
    epmd__request bad = req("a\xff", 6);
    assert_null(epmd__registry_add(&r, &bad, 4, 13, 5000, &err));
    assert_int_equal(err, EPMD_EINVAL);
    epmd__registry_free(&r);
}

static void test_creation(void **state)
{
    epmd__registry r;
    epmd__registry_init(&r, 1000);
    int err;
    epmd__request a = req("a", 6);
    epmd__node *n = epmd__registry_add(&r, &a, 1, 10, 5000, &err);
    uint32_t c1 = epmd__node_creation(n);
    assert_int_equal(c1, 5001); /* the clock, bumped */
    epmd__registry_remove_conn(&r, 1);
    n = epmd__registry_add(&r, &a, 2, 10, 9999, &err);
    assert_int_equal(epmd__node_creation(n), c1 + 1); /* re-registration: next creation */
    epmd__registry_remove_conn(&r, 2);
    /* A clock of 0 or a wrapped counter never gives 0..3. */
    epmd__request z = req("z", 6);
    n = epmd__registry_add(&r, &z, 3, 10, 0, &err);
    assert_int_equal(epmd__node_creation(n), 4);
    epmd__registry_remove_conn(&r, 3);
    n->cr_counter = 0xffffffffu;
    n = epmd__registry_add(&r, &z, 4, 10, 0, &err);
    assert_int_equal(epmd__node_creation(n), 4);
    /* Version-5 nodes see creations 1..3 that change on re-registration. */
    epmd__request o = req("old", 5);
    n = epmd__registry_add(&r, &o, 5, 10, 7, &err);
    uint32_t o1 = epmd__node_creation(n);
    assert_true(o1 >= 1 && o1 <= 3);
    epmd__registry_remove_conn(&r, 5);
    n = epmd__registry_add(&r, &o, 6, 10, 7, &err);
    assert_true(epmd__node_creation(n) >= 1 && epmd__node_creation(n) <= 3);
    assert_int_not_equal(epmd__node_creation(n), o1);
    epmd__registry_free(&r);
}

static void test_old_names_bounded(void **state)
{
    epmd__registry r;
    epmd__registry_init(&r, 5);
    int err;
    char name[16];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "n%d", i);
        epmd__request q = req(name, 6);
        assert_non_null(epmd__registry_add(&r, &q, (uint64_t)i + 1, 10, 100, &err));
        assert_non_null(epmd__registry_remove_conn(&r, (uint64_t)i + 1));
        assert_true(r.unreg_count <= 6);
    }
    assert_int_equal(r.reg_count, 0);
    epmd__registry_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find_remove),
        cmocka_unit_test(test_creation),
        cmocka_unit_test(test_old_names_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
