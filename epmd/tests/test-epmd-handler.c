/* Unit tests for the epmd request handler: answers byte for byte as Erlang's epmd gives them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "epmd_int.h"

typedef struct fx {
    epmd__registry reg;
    epmd__ctx ctx;
    epmd__reply rep;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    epmd__registry_init(&f->reg, 1000);
    f->ctx.reg = &f->reg;
    f->ctx.port = 4411;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    free(f->rep.out);
    epmd__registry_free(&f->reg);
    free(f);
    return 0;
}

/* Runs one request body from connection `id`; the previous answer is freed. */
static epmd__reply *run(fx *f, uint64_t id, int local, const void *body, size_t len)
{
    free(f->rep.out);
    epmd__conn_info ci = {.id = id, .fd = (int)id + 100, .local_peer = local, .now = 1000};
    assert_int_equal(epmd__handle_request(&f->ctx, &ci, body, len, &f->rep), 0);
    return &f->rep;
}

static epmd__reply *alive(fx *f, uint64_t id, int local, const char *name, uint16_t high)
{
    epmd_node_info n;
    epmd_node_info_init(&n, name, 5555);
    n.highest_version = high;
    n.lowest_version = 5;
    memcpy(n.extra, "E", 1);
    n.extra_len = 1;
    uint8_t pkt[EPMD_MAX_PACKET];
    int len = epmd__encode_alive2(&n, pkt, sizeof pkt);
    return run(f, id, local, pkt + 2, (size_t)len - 2);
}

static void test_alive2(void **state)
{
    fx *f = *state;
    epmd__reply *r = alive(f, 1, 1, "foo", 6);
    assert_int_equal(r->action, EPMD__KEEP);
    assert_int_equal(r->out_len, 6);
    uint8_t want[] = {EPMD_ALIVE2_X_RESP, 0, 0, 0, 0x03, 0xe9};
    assert_memory_equal(r->out, want, 6);
    /* Duplicate: error answer with Erlang's filler creation 99, then close. */
    r = alive(f, 2, 1, "foo", 6);
    assert_int_equal(r->action, EPMD__CLOSE);
    uint8_t dup[] = {EPMD_ALIVE2_X_RESP, 1, 0, 0, 0, 99};
    assert_int_equal(r->out_len, 6);
    assert_memory_equal(r->out, dup, 6);
    /* Version 5: 16-bit answer with creation 1..3. */
    r = alive(f, 3, 1, "old", 5);
    assert_int_equal(r->action, EPMD__KEEP);
    assert_int_equal(r->out_len, 4);
    assert_int_equal(r->out[0], EPMD_ALIVE2_RESP);
    assert_int_equal(r->out[1], 0);
    assert_true(r->out[3] >= 1 && r->out[3] <= 3);
    /* Not from this host: closed without an answer, nothing registered. */
    r = alive(f, 4, 0, "remote", 6);
    assert_int_equal(r->action, EPMD__CLOSE);
    assert_int_equal(r->out_len, 0);
    assert_null(epmd__registry_find(&f->reg, (const uint8_t *)"remote", 6));
    /* An invalid name gets the error answer. */
    r = alive(f, 5, 1, "bad\xff", 6);
    assert_int_equal(r->action, EPMD__CLOSE);
    assert_int_equal(r->out[1], 1);
}

static void test_port2(void **state)
{
    fx *f = *state;
    alive(f, 1, 1, "foo", 6);
    epmd__reply *r = run(f, 9, 0, "zfoo", 4); /* lookups are allowed from anywhere */
    uint8_t want[] = {
        EPMD_PORT2_RESP, 0, 0x15, 0xb3, 77, 0, 0, 6, 0, 5, 0, 3, 'f', 'o', 'o', 0, 1, 'E'};
    assert_int_equal(r->action, EPMD__CLOSE);
    assert_int_equal(r->out_len, sizeof want);
    assert_memory_equal(r->out, want, sizeof want);
    r = run(f, 9, 1, "zfoo\0", 5);
    assert_int_equal(r->out_len, sizeof want);
    r = run(f, 9, 1, "zbar", 4);
    assert_int_equal(r->out_len, 2);
    assert_memory_equal(r->out, "w\1", 2);
    r = run(f, 9, 1, "z\xc0\x80", 3); /* invalid name: closed */
    assert_int_equal(r->out_len, 0);
}

static void test_names_dump(void **state)
{
    fx *f = *state;
    epmd__reply *r = run(f, 9, 0, "n", 1);
    assert_int_equal(r->out_len, 4);
    assert_memory_equal(r->out, "\0\0\x11\x3b", 4);
    alive(f, 1, 1, "a", 6);
    alive(f, 2, 1, "b", 6);
    r = run(f, 9, 0, "n", 1);
    const char *txt = "\0\0\x11\x3bname b at port 5555\nname a at port 5555\n";
    assert_int_equal(r->out_len, 4 + 40);
    assert_memory_equal(r->out, txt, r->out_len);
    /* DUMP is local only, and sends each line's NUL. */
    r = run(f, 9, 0, "d", 1);
    assert_int_equal(r->out_len, 0);
    epmd__registry_remove_conn(&f->reg, 1);
    r = run(f, 9, 1, "d", 1);
    const char *d = "\0\0\x11\x3b"
                    "active name     <b> at port 5555, fd = 102\n\0"
                    "old/unused name <a>, port = 5555, fd = 101 \n";
    size_t dl = 4 + 44 + 45;
    assert_int_equal(r->out_len, dl);
    assert_memory_equal(r->out, d, dl);
}

static void test_kill(void **state)
{
    fx *f = *state;
    epmd__reply *r = run(f, 9, 0, "k", 1);
    assert_int_equal(r->out_len, 0); /* not local */
    r = run(f, 9, 1, "k", 1);
    assert_int_equal(r->action, EPMD__EXIT);
    assert_memory_equal(r->out, "OK", 2);
    alive(f, 1, 1, "a", 6);
    r = run(f, 9, 1, "k", 1);
    assert_int_equal(r->action, EPMD__CLOSE);
    assert_memory_equal(r->out, "NO", 2);
    f->ctx.relaxed = 1;
    r = run(f, 9, 1, "k", 1);
    assert_int_equal(r->action, EPMD__EXIT);
}

static void test_stop(void **state)
{
    fx *f = *state;
    alive(f, 7, 1, "a", 6);
    epmd__reply *r = run(f, 9, 1, "sa", 2);
    assert_int_equal(r->out_len, 0); /* no relaxed check: silent close */
    assert_non_null(epmd__registry_find(&f->reg, (const uint8_t *)"a", 1));
    f->ctx.relaxed = 1;
    r = run(f, 9, 0, "sa", 2);
    assert_int_equal(r->out_len, 0); /* not local */
    r = run(f, 9, 1, "sa", 2);
    assert_int_equal(r->out_len, 7);
    assert_memory_equal(r->out, "STOPPED", 7);
    assert_int_equal(r->stop_conn, 7);
    assert_null(epmd__registry_find(&f->reg, (const uint8_t *)"a", 1));
    r = run(f, 9, 1, "sa", 2);
    assert_memory_equal(r->out, "NOEXIST", 7);
    assert_int_equal(r->stop_conn, 0);
}

static void test_garbage(void **state)
{
    fx *f = *state;
    epmd__reply *r = run(f, 9, 1, "\xff\x01\x02", 3);
    assert_int_equal(r->action, EPMD__CLOSE);
    assert_int_equal(r->out_len, 0);
    r = run(f, 9, 1, "x\0", 2); /* truncated ALIVE2 */
    assert_int_equal(r->out_len, 0);
    assert_int_equal(f->reg.reg_count, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {T(test_alive2), T(test_port2), T(test_names_dump),
                                       T(test_kill),   T(test_stop),  T(test_garbage)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
