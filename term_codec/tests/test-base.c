/* Unit tests for the shared internal helpers: big-endian access, deadlines, the log line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "girder_be.h"
#include "girder_deadline.h"
#include "girder_log.h"

/* ================================================================ big-endian */

static void test_be_put(void **state)
{
    (void)state;
    uint8_t b[11] = {0};
    girder__put16(b + 1, 0x0102);
    assert_memory_equal(b + 1, "\x01\x02", 2);
    girder__put32(b + 1, 0xA1B2C3D4u);
    assert_memory_equal(b + 1, "\xA1\xB2\xC3\xD4", 4);
    girder__put64(b + 3, UINT64_C(0x0102030405060708));
    assert_memory_equal(b + 3, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_int_equal(b[0], 0); /* nothing written outside */
}

static void test_be_get(void **state)
{
    (void)state;
    /* odd offsets: unaligned loads */
    const uint8_t b[] = {0xFF, 0x80, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0xFE};
    assert_int_equal(girder__get16(b + 1), 0x8001);
    assert_int_equal(girder__get32(b + 1), 0x80010203u);
    assert_true(girder__get64(b + 1) == UINT64_C(0x8001020304050607));
    uint8_t r[8];
    for (uint64_t v = 1; v; v <<= 7) {
        girder__put64(r, v ^ UINT64_C(0x5555555555555555));
        assert_true(girder__get64(r) == (v ^ UINT64_C(0x5555555555555555)));
        girder__put32(r, (uint32_t)v);
        assert_int_equal(girder__get32(r), (uint32_t)v);
        girder__put16(r, (uint16_t)v);
        assert_int_equal(girder__get16(r), (uint16_t)v);
    }
}

/* ================================================================ deadlines */

static int64_t ts_ms(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000;
}

static void test_deadline_ts(void **state)
{
    (void)state;
    struct timespec ts = {12345, 678};
    assert_false(girder__deadline_ts(CLOCK_MONOTONIC, -1, &ts)); /* forever: untouched */
    assert_int_equal(ts.tv_sec, 12345);
    assert_int_equal(ts.tv_nsec, 678);

    clockid_t clocks[] = {CLOCK_MONOTONIC, CLOCK_REALTIME};
    for (size_t c = 0; c < 2; c++) {
        const int64_t timeouts[] = {0, 1, 999, 1000, 1500, 86400000};
        for (size_t i = 0; i < sizeof timeouts / sizeof *timeouts; i++) {
            int64_t before = girder__now_ms(clocks[c]);
            assert_true(girder__deadline_ts(clocks[c], timeouts[i], &ts));
            int64_t after = girder__now_ms(clocks[c]);
            assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000);
            assert_true(ts_ms(&ts) >= before + timeouts[i]);
            assert_true(ts_ms(&ts) <= after + timeouts[i]);
        }
    }
    /* The largest timeout still lies in the future: no wrap into the past. */
    assert_true(girder__deadline_ts(CLOCK_REALTIME, INT64_MAX, &ts));
    assert_true(ts.tv_sec > 0 && ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000);
    assert_true(ts.tv_sec >= (time_t)(INT64_MAX / 1000)); /* far in the future, not wrapped */
}

static void test_deadline_ms(void **state)
{
    (void)state;
    assert_int_equal(girder__deadline_ms(-1), -1);
    assert_int_equal(girder__deadline_ms(INT64_MIN), -1);
    assert_int_equal(girder__ms_left(-1), -1);
    int64_t d = girder__deadline_ms(60000);
    int left = girder__ms_left(d);
    assert_true(left > 59000 && left <= 60000);
    assert_int_equal(girder__ms_left(girder__deadline_ms(0)), 0);
    assert_int_equal(girder__ms_left(girder__now_ms(CLOCK_MONOTONIC) - 5), 0);
    assert_true(girder__deadline_ms(INT64_MAX) == INT64_MAX);
    assert_int_equal(girder__ms_left(INT64_MAX), INT_MAX);
}

static void test_durations(void **state)
{
    (void)state;
    struct timespec ts = girder__ts_of_ms(1234);
    assert_int_equal(ts.tv_sec, 1);
    assert_int_equal(ts.tv_nsec, 234000000);
    ts = girder__ts_of_ms(-5);
    assert_int_equal(ts.tv_sec, 0);
    assert_int_equal(ts.tv_nsec, 0);
    ts = girder__ts_of_ns(UINT64_C(5000000007));
    assert_int_equal(ts.tv_sec, 5);
    assert_int_equal(ts.tv_nsec, 7);
    uint64_t a = girder__now_ns(CLOCK_MONOTONIC), b = girder__now_ns(CLOCK_MONOTONIC);
    assert_true(b >= a);
}

/* ================================================================ log line */

static void test_log_levels(void **state)
{
    (void)state;
    const char *names[] = {"emergency", "alert",  "critical", "error",
                           "warning",   "notice", "info",     "debug"};
    for (int i = 0; i < 8; i++) {
        assert_string_equal(girder__log_level_name(i), names[i]);
        assert_int_equal(girder__log_level_of(names[i]), i);
    }
    assert_int_equal(GIRDER_LOG_EMERGENCY, 0);
    assert_int_equal(GIRDER_LOG_DEBUG, 7);
    assert_null(girder__log_level_name(-1));
    assert_null(girder__log_level_name(8));
    assert_int_equal(girder__log_level_of("warn"), -1);
    assert_int_equal(girder__log_level_of("INFO"), -1);
    assert_int_equal(girder__log_level_of(NULL), -1);
}

static void test_log_value(void **state)
{
    (void)state;
    char v[64];
    assert_string_equal(girder__log_value(v, sizeof v, "b@host", 6), "b@host");
    assert_string_equal(girder__log_value(v, sizeof v, "caf\xc3\xa9", 5), "caf\xc3\xa9");
    assert_string_equal(girder__log_value(v, sizeof v, "", 0), "\"\"");
    assert_string_equal(girder__log_value(v, sizeof v, "two words", 9), "\"two words\"");
    assert_string_equal(girder__log_value(v, sizeof v, "a=b", 3), "\"a=b\"");
    assert_string_equal(girder__log_value(v, sizeof v, "say \"hi\"", 8), "\"say \\\"hi\\\"\"");
    assert_string_equal(girder__log_value(v, sizeof v, "back\\slash", 10), "\"back\\\\slash\"");
    /* a forged line break or NUL from a peer cannot start a new line or end the value */
    assert_string_equal(girder__log_value(v, sizeof v, "x\nevent=y", 9), "\"x\\x0aevent=y\"");
    assert_string_equal(girder__log_value(v, sizeof v, "n\0ul", 4), "\"n\\x00ul\"");
    assert_string_equal(girder__log_value(v, sizeof v, "del\x7f", 4), "\"del\\x7f\"");
    /* cut to fit, the quote still closed */
    char s[8];
    assert_string_equal(girder__log_value(s, sizeof s, "a b c d e f", 11), "\"a b c\"");
    assert_string_equal(girder__log_value(s, sizeof s, "abcdefghij", 10), "abcdefg");
    assert_string_equal(girder__log_value(s, sizeof s, "\n\n\n", 3), "\"\\x0a\"");
}

static void test_log_format(void **state)
{
    (void)state;
    char line[256];
    /* 2026-11-30T00:53:20 UTC, plus 123.456789 ms */
    uint64_t t = UINT64_C(1796000000) * 1000000000u + 123456789u;
    size_t n = girder__log_format(line, sizeof line, t, GIRDER_LOG_INFO, "dist",
                                  "event=nodeup node=%s type=%s", "b@h", "visible");
    assert_string_equal(line,
                        "2026-11-30T00:53:20.123Z info dist event=nodeup node=b@h type=visible");
    assert_int_equal(n, strlen(line));
    /* leap day, first millisecond, another level */
    t = UINT64_C(951782400) * 1000000000u + 999999u;
    girder__log_format(line, sizeof line, t, GIRDER_LOG_WARNING, "epmd", "event=x reason=%s",
                       girder__log_value((char[32]){0}, 32, "name taken", 10));
    assert_string_equal(line,
                        "2000-02-29T00:00:00.000Z warning epmd event=x reason=\"name taken\"");
    /* too long: cut, NUL-terminated, the returned length is what the buffer holds */
    char small[40];
    n = girder__log_format(small, sizeof small, t, GIRDER_LOG_ERROR, "epmd", "event=%s",
                           "a_rather_long_event_name_that_does_not_fit");
    assert_int_equal(n, sizeof small - 1);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, "2000-02-29T00:00:00.000Z error epmd eve", sizeof small - 1);
    char tiny[10];
    n = girder__log_format(tiny, sizeof tiny, t, GIRDER_LOG_ERROR, "epmd", "event=x");
    assert_int_equal(n, 9);
    assert_string_equal(tiny, "2000-02-2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_be_put),      cmocka_unit_test(test_be_get),
        cmocka_unit_test(test_deadline_ts), cmocka_unit_test(test_deadline_ms),
        cmocka_unit_test(test_durations),   cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_log_value),   cmocka_unit_test(test_log_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
