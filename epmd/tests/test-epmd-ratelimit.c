/* Unit tests for girder-epmd's log rate limiter: budgets per kind and per peer, summaries, bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "epmd_int.h"

/* The summaries emitted, as the test saw them. */
typedef struct sums {
    int count;
    int level[64];
    char event[64][EPMD__RL_EVENT_CAP];
    uint32_t suppressed[64];
    uint64_t window_ms[64];
    int has_top[64];
    epmd__peer_key top[64];
    uint32_t top_suppressed[64];
} sums;

static void on_sum(void *arg, int level, const char *event, uint32_t suppressed, uint64_t window_ms,
                   const epmd__peer_key *top, uint32_t top_suppressed)
{
    sums *s = arg;
    assert_true(s->count < 64);
    int i = s->count++;
    s->level[i] = level;
    snprintf(s->event[i], sizeof s->event[i], "%s", event);
    s->suppressed[i] = suppressed;
    s->window_ms[i] = window_ms;
    s->has_top[i] = top != NULL;
    if (top) s->top[i] = *top;
    s->top_suppressed[i] = top_suppressed;
}

static epmd__peer_key peer(uint8_t n)
{
    epmd__peer_key k;
    memset(&k, 0, sizeof k);
    k.b[10] = k.b[11] = 0xff;
    k.b[12] = 10;
    k.b[15] = n;
    return k;
}

static int check(epmd__ratelimit *rl, const char *ev, const epmd__peer_key *p, int level,
                 uint64_t now)
{
    return epmd__rl_check(rl, ev, strlen(ev), p, level, now);
}

static void test_kind_budget_and_summary(void **state)
{
    (void)state;
    sums s = {0};
    epmd__ratelimit rl;
    epmd__rl_init(&rl, 1000, 10, 3, on_sum, &s);
    int shown = 0;
    for (int i = 0; i < 25; i++) shown += check(&rl, "conn_refused", NULL, GIRDER_LOG_WARNING, 100);
    assert_int_equal(shown, 10);
    /* Other kinds have budgets of their own. */
    assert_int_equal(check(&rl, "conn_timeout", NULL, GIRDER_LOG_INFO, 200), 1);
    /* The window is not over: no summary yet, still held back. */
    epmd__rl_flush(&rl, 1099);
    assert_int_equal(s.count, 0);
    assert_int_equal(check(&rl, "conn_refused", NULL, GIRDER_LOG_WARNING, 1099), 0);
    /* Over: one summary with the count and the window, then fresh budget. */
    epmd__rl_flush(&rl, 1100);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.event[0], "conn_refused");
    assert_int_equal(s.suppressed[0], 16);
    assert_int_equal(s.window_ms[0], 1000);
    assert_int_equal(s.level[0], GIRDER_LOG_WARNING);
    assert_int_equal(s.has_top[0], 0);
    /* conn_timeout held nothing back: its window ends silently. */
    epmd__rl_flush(&rl, 5000);
    assert_int_equal(s.count, 1);
    assert_int_equal(check(&rl, "conn_refused", NULL, GIRDER_LOG_WARNING, 5000), 1);
}

static void test_summary_before_next_line(void **state)
{
    (void)state;
    sums s = {0};
    epmd__ratelimit rl;
    epmd__rl_init(&rl, 1000, 2, 2, on_sum, &s);
    for (int i = 0; i < 5; i++) check(&rl, "request_refused", NULL, GIRDER_LOG_WARNING, 0);
    /* No flush: the next line of the kind, after the window, brings the summary first. */
    assert_int_equal(check(&rl, "request_refused", NULL, GIRDER_LOG_WARNING, 1500), 1);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.suppressed[0], 3);
    assert_int_equal(s.window_ms[0], 1500);
}

static void test_peer_budget(void **state)
{
    (void)state;
    sums s = {0};
    epmd__ratelimit rl;
    epmd__rl_init(&rl, 1000, 10, 3, on_sum, &s);
    epmd__peer_key x = peer(1), y = peer(2);
    int shown_x = 0, shown_y = 0, shown_z = 0;
    for (int i = 0; i < 100; i++) shown_x += check(&rl, "conn_evicted", &x, GIRDER_LOG_WARNING, 0);
    /* One flooding peer takes 3 of the kind's 10 lines; another still gets its own 3. */
    assert_int_equal(shown_x, 3);
    for (int i = 0; i < 5; i++) shown_y += check(&rl, "conn_evicted", &y, GIRDER_LOG_WARNING, 1);
    assert_int_equal(shown_y, 3);
    for (uint8_t p = 3; p < 20; p++) {
        epmd__peer_key z = peer(p);
        shown_z += check(&rl, "conn_evicted", &z, GIRDER_LOG_WARNING, 2);
    }
    assert_int_equal(shown_z, 4); /* the kind's budget: 10 = 3 + 3 + 4 */
    epmd__rl_flush(&rl, 1000);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.suppressed[0], 97 + 2 + 13);
    assert_int_equal(s.has_top[0], 1);
    assert_memory_equal(&s.top[0], &x, sizeof x);
    assert_int_equal(s.top_suppressed[0], 97);
    /* A new window: the flooder's budget is back. */
    assert_int_equal(check(&rl, "conn_evicted", &x, GIRDER_LOG_WARNING, 1000), 1);
}

static void test_most_severe_level_summed(void **state)
{
    (void)state;
    sums s = {0};
    epmd__ratelimit rl;
    epmd__rl_init(&rl, 100, 1, 1, on_sum, &s);
    check(&rl, "conn_timeout", NULL, GIRDER_LOG_INFO, 0);
    check(&rl, "conn_timeout", NULL, GIRDER_LOG_INFO, 1);
    check(&rl, "conn_timeout", NULL, GIRDER_LOG_WARNING, 2);
    check(&rl, "conn_timeout", NULL, GIRDER_LOG_INFO, 3);
    epmd__rl_finish(&rl, 50); /* at shutdown nothing held back is lost */
    assert_int_equal(s.count, 1);
    assert_int_equal(s.suppressed[0], 3);
    assert_int_equal(s.level[0], GIRDER_LOG_WARNING);
    assert_int_equal(s.window_ms[0], 50);
}

static void test_many_kinds_share_the_last(void **state)
{
    (void)state;
    sums s = {0};
    epmd__ratelimit rl;
    epmd__rl_init(&rl, 1000, 1, 1, on_sum, &s);
    char ev[32];
    int shown = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(ev, sizeof ev, "kind%d", i);
        shown += check(&rl, ev, NULL, GIRDER_LOG_WARNING, 0);
    }
    /* 31 kinds of their own, one line each; all the rest share "other", one line in all. */
    assert_int_equal(shown, EPMD__RL_KINDS - 1 + 1);
    epmd__rl_flush(&rl, 1000);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.event[0], "other");
    assert_int_equal(s.suppressed[0], 100 - EPMD__RL_KINDS);
}

/*
** The bound the docs state: whatever the stream of events, a kind writes at most per_kind lines
** plus one summary per window, and a window lasts at least the interval. Here: 200,000 events
** of 5 kinds from 5,000 peers over 60 s.
*/
static int g_lines, g_finishing;
static void count_sum(void *arg, int level, const char *event, uint32_t suppressed,
                      uint64_t window_ms, const epmd__peer_key *top, uint32_t top_suppressed)
{
    (void)arg, (void)level, (void)event, (void)suppressed, (void)top, (void)top_suppressed;
    assert_true(window_ms >= 10000 || g_finishing); /* only the shutdown cuts a window short */
    g_lines++;
}

static void test_bound_under_flood(void **state)
{
    (void)state;
    epmd__ratelimit rl;
    epmd__rl_init(&rl, 0, 0, 0, count_sum, NULL); /* the defaults: 10 s, 10 per kind, 3 per peer */
    static const char *kinds[] = {"conn_evicted", "request_refused", "conn_refused", "conn_timeout",
                                  "lookup"};
    srand(12);
    g_lines = 0;
    uint64_t total = 0;
    for (int i = 0; i < 200000; i++) {
        uint64_t now = (uint64_t)i * 60000 / 200000;
        epmd__peer_key k = peer(0);
        int p = rand() % 5000;
        k.b[14] = (uint8_t)(p >> 8);
        k.b[15] = (uint8_t)p;
        const char *ev = kinds[rand() % 5];
        total++;
        g_lines += check(&rl, ev, &k, GIRDER_LOG_WARNING, now);
        if (i % 1000 == 0) epmd__rl_flush(&rl, now);
    }
    g_finishing = 1;
    epmd__rl_finish(&rl, 60000);
    /* 60 s = 6 windows of 10 s per kind (at most 7 started), each 10 lines + 1 summary. */
    assert_true(g_lines <= 5 * 7 * (EPMD__RL_PER_KIND + 1));
    assert_true(g_lines >= 5 * 6 * EPMD__RL_PER_KIND); /* and the budget is used, not starved */
    printf("         200000 events -> %d lines\n", g_lines);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kind_budget_and_summary),
        cmocka_unit_test(test_summary_before_next_line),
        cmocka_unit_test(test_peer_budget),
        cmocka_unit_test(test_most_severe_level_summed),
        cmocka_unit_test(test_many_kinds_share_the_last),
        cmocka_unit_test(test_bound_under_flood),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
