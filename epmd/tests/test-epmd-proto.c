/* Unit tests for the epmd wire codec: framing, request parsing, encoders, answer decoders. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "epmd_int.h"

static void test_frame_size(void **state)
{
    uint8_t b[4] = {0, 5, 0, 0};
    assert_int_equal(epmd__frame_size(b, 0), 0);
    assert_int_equal(epmd__frame_size(b, 1), 0);
    assert_int_equal(epmd__frame_size(b, 2), 7);
    b[1] = 0;
    assert_int_equal(epmd__frame_size(b, 2), EPMD_EMSGSIZE); /* empty packet */
    girder__put16(b, EPMD_MAX_PACKET - 2);
    assert_int_equal(epmd__frame_size(b, 2), EPMD_MAX_PACKET);
    girder__put16(b, EPMD_MAX_PACKET - 1);
    assert_int_equal(epmd__frame_size(b, 2), EPMD_EMSGSIZE);
    girder__put16(b, 0xffff);
    assert_int_equal(epmd__frame_size(b, 2), EPMD_EMSGSIZE);
}

static int alive2_packet(uint8_t *out, size_t cap, const char *name, const char *extra)
{
    epmd_node_info n;
    assert_int_equal(epmd_node_info_init(&n, name, 4242), 0);
    n.extra_len = strlen(extra);
    memcpy(n.extra, extra, n.extra_len);
    return epmd__encode_alive2(&n, out, cap);
}

static void test_parse_alive2(void **state)
{
    uint8_t pkt[EPMD_MAX_PACKET];
    int len = alive2_packet(pkt, sizeof pkt, "foo", "xy");
    assert_int_equal(len, 2 + 13 + 3 + 2);
    assert_int_equal(epmd__frame_size(pkt, (size_t)len), len);
    epmd__request rq;
    assert_int_equal(epmd__parse_request(pkt + 2, (size_t)len - 2, &rq), 0);
    assert_int_equal(rq.type, EPMD_ALIVE2_REQ);
    assert_int_equal(rq.port, 4242);
    assert_int_equal(rq.node_type, EPMD_NODE_TYPE_NORMAL);
    assert_int_equal(rq.highest_version, 6);
    assert_int_equal(rq.name_len, 3);
    assert_memory_equal(rq.name, "foo", 3);
    assert_int_equal(rq.extra_len, 2);
    assert_memory_equal(rq.extra, "xy", 2);
    /* Every truncation and a trailing byte are refused. */
    for (int cut = 0; cut < len - 2; cut++)
        assert_int_equal(epmd__parse_request(pkt + 2, (size_t)cut, &rq), EPMD_EPROTO);
    pkt[len] = 'z';
    assert_int_equal(epmd__parse_request(pkt + 2, (size_t)len - 1, &rq), EPMD_EPROTO);
    /* Name length pointing past the end, and a NUL inside the name. */
    girder__put16(pkt + 2 + 9, 500);
    assert_int_equal(epmd__parse_request(pkt + 2, (size_t)len - 2, &rq), EPMD_EPROTO);
    girder__put16(pkt + 2 + 9, 3);
    pkt[2 + 12] = 0;
    assert_int_equal(epmd__parse_request(pkt + 2, (size_t)len - 2, &rq), EPMD_EPROTO);
    /* Extra length too large for the packet. */
    pkt[2 + 12] = 'o';
    girder__put16(pkt + 2 + 14, 3);
    assert_int_equal(epmd__parse_request(pkt + 2, (size_t)len - 2, &rq), EPMD_EPROTO);
}

static void test_parse_names_and_admin(void **state)
{
    epmd__request rq;
    uint8_t p2[] = {EPMD_PORT2_REQ, 'a', 'b'};
    assert_int_equal(epmd__parse_request(p2, 3, &rq), 0);
    assert_int_equal(rq.name_len, 2);
    uint8_t p2nul[] = {EPMD_PORT2_REQ, 'a', 'b', 0};
    assert_int_equal(epmd__parse_request(p2nul, 4, &rq), 0);
    assert_int_equal(rq.name_len, 2);
    uint8_t p2mid[] = {EPMD_PORT2_REQ, 'a', 0, 'b'};
    assert_int_equal(epmd__parse_request(p2mid, 4, &rq), EPMD_EPROTO);
    uint8_t p2empty[] = {EPMD_PORT2_REQ, 0};
    assert_int_equal(epmd__parse_request(p2empty, 1, &rq), EPMD_EPROTO);
    assert_int_equal(epmd__parse_request(p2empty, 2, &rq), EPMD_EPROTO);
    uint8_t stop[] = {EPMD_STOP_REQ, 'x'};
    assert_int_equal(epmd__parse_request(stop, 2, &rq), 0);
    assert_int_equal(rq.type, EPMD_STOP_REQ);
    uint8_t one[1];
    int tags[] = {EPMD_NAMES_REQ, EPMD_DUMP_REQ, EPMD_KILL_REQ};
    for (int i = 0; i < 3; i++) {
        one[0] = (uint8_t)tags[i];
        assert_int_equal(epmd__parse_request(one, 1, &rq), 0);
        assert_int_equal(rq.type, tags[i]);
    }
    uint8_t old[] = {'a', 0, 1}; /* the R2-era ALIVE_REQ is garbage today */
    assert_int_equal(epmd__parse_request(old, 3, &rq), EPMD_EPROTO);
    assert_int_equal(epmd__parse_request(old, 0, &rq), EPMD_EPROTO);
}

static void test_name_valid(void **state)
{
    uint8_t b[EPMD_MAX_NAME_BYTES + 8];
    assert_false(epmd__name_valid((const uint8_t *)"", 0));
    assert_true(epmd__name_valid((const uint8_t *)"a", 1));
    memset(b, 'a', 256);
    assert_true(epmd__name_valid(b, 255));
    assert_false(epmd__name_valid(b, 256)); /* 256 characters */
    for (int i = 0; i < 255; i++) memcpy(b + 4 * i, "\xf0\x9f\x98\x80", 4);
    assert_true(epmd__name_valid(b, 1020));
    assert_false(epmd__name_valid(b, 1019));                            /* cut inside a character */
    assert_false(epmd__name_valid((const uint8_t *)"\xc0\x80", 2));     /* overlong NUL */
    assert_false(epmd__name_valid((const uint8_t *)"\xed\xa0\x80", 3)); /* surrogate */
    assert_false(epmd__name_valid((const uint8_t *)"\xf4\x90\x80\x80", 4));
    assert_false(epmd__name_valid((const uint8_t *)"\xff", 1));
    assert_false(epmd__name_valid((const uint8_t *)"a\0b", 3));
    assert_true(epmd__name_valid((const uint8_t *)"n\xc3\xa9", 3));
}

static void test_encode_limits(void **state)
{
    uint8_t pkt[EPMD_MAX_PACKET];
    epmd_node_info n;
    assert_int_equal(epmd_node_info_init(&n, "", 1), EPMD_EINVAL);
    char big[EPMD_MAX_NAME_BYTES + 2];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    assert_int_equal(epmd_node_info_init(&n, big, 1), EPMD_ENAMETOOLONG);
    big[EPMD_MAX_NAME_BYTES] = 0;
    assert_int_equal(epmd_node_info_init(&n, big, 1), 0);
    n.extra_len = EPMD_MAX_EXTRA;
    int len = epmd__encode_alive2(&n, pkt, sizeof pkt);
    assert_true(len > 0 && len <= EPMD_MAX_PACKET);
    assert_int_equal(epmd__frame_size(pkt, (size_t)len), len);
    assert_int_equal(epmd__encode_alive2(&n, pkt, 10), EPMD_EMSGSIZE);
    assert_int_equal(epmd__encode_name_req(EPMD_PORT2_REQ, "", pkt, sizeof pkt), EPMD_EINVAL);
    assert_int_equal(epmd__encode_name_req(EPMD_NAMES_REQ, NULL, pkt, sizeof pkt), 3);
    assert_memory_equal(pkt, "\0\1n", 3);
}

static void test_decode_alive_resp(void **state)
{
    uint32_t cr = 0;
    int ext = -1;
    uint8_t x[] = {EPMD_ALIVE2_X_RESP, 0, 0x12, 0x34, 0x56, 0x78};
    assert_int_equal(epmd__decode_alive_resp(x, 0, &cr, &ext), 1);
    assert_int_equal(epmd__decode_alive_resp(x, 1, &cr, &ext), 6);
    assert_int_equal(epmd__decode_alive_resp(x, 5, &cr, &ext), 6);
    assert_int_equal(epmd__decode_alive_resp(x, 6, &cr, &ext), 0);
    assert_int_equal(cr, 0x12345678);
    assert_int_equal(ext, 1);
    uint8_t y[] = {EPMD_ALIVE2_RESP, 0, 0, 3};
    assert_int_equal(epmd__decode_alive_resp(y, 4, &cr, &ext), 0);
    assert_int_equal(cr, 3);
    assert_int_equal(ext, 0);
    y[1] = 1;
    assert_int_equal(epmd__decode_alive_resp(y, 4, &cr, &ext), EPMD_EEXIST);
    uint8_t g[] = {'Z'};
    assert_int_equal(epmd__decode_alive_resp(g, 1, &cr, &ext), EPMD_EPROTO);
}

static void test_decode_port2_resp(void **state)
{
    uint8_t r[64] = {
        EPMD_PORT2_RESP, 0, 0x10, 0x92, 77, 0, 0, 6, 0, 5, 0, 3, 'f', 'o', 'o', 0, 2, 'e', 'x'};
    epmd_node_info n;
    size_t full = 19;
    /* Incremental: each call asks for what it needs next, never past the answer. */
    size_t have = 0;
    int need = 2;
    while (need > 0) {
        assert_true((size_t)need <= full);
        have = (size_t)need;
        need = epmd__decode_port2_resp(r, have, &n);
    }
    assert_int_equal(need, 0);
    assert_int_equal(have, full);
    assert_int_equal(n.port, 0x1092);
    assert_int_equal(n.node_type, 77);
    assert_int_equal(n.highest_version, 6);
    assert_int_equal(n.lowest_version, 5);
    assert_string_equal(n.name, "foo");
    assert_int_equal(n.extra_len, 2);
    assert_memory_equal(n.extra, "ex", 2);
    uint8_t nf[] = {EPMD_PORT2_RESP, 1};
    assert_int_equal(epmd__decode_port2_resp(nf, 2, &n), EPMD_ENOENT);
    uint8_t bad[] = {'x', 0};
    assert_int_equal(epmd__decode_port2_resp(bad, 2, &n), EPMD_EPROTO);
    r[11] = 0; /* empty name */
    assert_int_equal(epmd__decode_port2_resp(r, full, &n), EPMD_EPROTO);
}

static void test_parse_names(void **state)
{
    char t1[] = "name foo at port 1234\nname a b at port 9 at port 65535\n";
    epmd_name_entry *e;
    size_t n;
    assert_int_equal(epmd__parse_names(t1, strlen(t1), &e, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(e[0].name, "foo");
    assert_int_equal(e[0].port, 1234);
    assert_string_equal(e[1].name, "a b at port 9");
    assert_int_equal(e[1].port, 65535);
    free(e);
    char t2[] = "";
    assert_int_equal(epmd__parse_names(t2, 0, &e, &n), 0);
    assert_int_equal(n, 0);
    free(e);
    char t3[] = "name foo at port 70000\n";
    assert_int_equal(epmd__parse_names(t3, strlen(t3), &e, &n), EPMD_EPROTO);
    char t4[] = "name foo at port 1";
    assert_int_equal(epmd__parse_names(t4, strlen(t4), &e, &n), EPMD_EPROTO);
    char t5[] = "garbage\n";
    assert_int_equal(epmd__parse_names(t5, strlen(t5), &e, &n), EPMD_EPROTO);
}

static void test_errors(void **state)
{
    assert_string_equal(epmd_err_name(EPMD_ETIMEDOUT), "ETIMEDOUT");
    assert_string_equal(epmd_strerror(EPMD_ENOENT), "no such entry (name not found)");
    assert_string_equal(epmd_strerror(0), "success");
    assert_string_equal(epmd_err_name(-12345), "EUNKNOWN");
    assert_int_equal(EPMD_ETIMEDOUT, -ETIMEDOUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_size),
        cmocka_unit_test(test_parse_alive2),
        cmocka_unit_test(test_parse_names_and_admin),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_encode_limits),
        cmocka_unit_test(test_decode_alive_resp),
        cmocka_unit_test(test_decode_port2_resp),
        cmocka_unit_test(test_parse_names),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
