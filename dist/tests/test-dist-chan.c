/* Unit tests of the connection state machine on the in-memory transport: no sockets, no sleeps. */
#include "chan_harness.h"

/* ================================================================ handshakes */

static void test_handshake_v6(void **s)
{
    (void)s;
    node_up(&A, "a", "cookie");
    node_up(&B, "b", "cookie");
    dist_peer *ab = dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    dist_peer *ba = rec(&B, "a");
    assert_non_null(ba);
    assert_int_equal(ab->state, PEER_UP);
    assert_int_equal(ba->state, PEER_UP);
    assert_int_equal(ab->creation, B.creation);
    assert_int_equal(ba->creation, A.creation);
    assert_true(ab->flags == ba->flags);
    assert_true(ab->flags & DFLAG_PUBLISHED);
    assert_true(ab->flags & DFLAG_HANDSHAKE_23);
    send_frame(&A, ab, "hello");
    send_frame(&B, ba, "world!");
    dist__mem_run(net, SIZE_MAX);
    assert_int_equal(ba->nframes, 1);
    assert_memory_equal(ba->rx + 4, "hello", 5);
    assert_int_equal(ab->nframes, 1);
    assert_memory_equal(ab->rx + 4, "world!", 6);
}

static void test_handshake_v5(void **s)
{
    (void)s;
    node_up(&A, "a", "cookie");
    node_up(&B, "b", "cookie");
    dist__mem_set_version(net, "b", "h", 5); /* b's port mapper entry says version 5 */
    dist_peer *ab = dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    dist_peer *ba = rec(&B, "a");
    assert_int_equal(ab->state, PEER_UP);
    assert_int_equal(ba->state, PEER_UP);
    /* the old name message carries 32 flag bits; the complement brings the rest */
    assert_true(ab->flags & DFLAG_SPAWN);
    assert_true(ab->flags == ba->flags);
    assert_int_equal(ba->creation, A.creation);
}

static void test_wrong_cookie(void **s)
{
    (void)s;
    node_up(&A, "a", "one");
    node_up(&B, "b", "two");
    dist_peer *ab = dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    dist_peer *ba = rec(&B, "a");
    assert_int_equal(ab->state, PEER_DOWN);
    assert_int_equal(ab->ups, 0);
    assert_int_equal(ab->downs, 1);
    assert_int_equal(ab->err, DIST_EAUTH);
    assert_non_null(strstr(ab->why, "cookie"));
    assert_non_null(ba);
    assert_int_equal(ba->ups, 0);
    assert_int_equal(ba->err, DIST_EAUTH);
    assert_non_null(strstr(B.logs, "wrong cookie"));
}

/* A peer that fails authentication leaves no atom behind: names are interned only once the
** cookie checked out (else anyone could fill the atom table with made-up names). */
static void test_no_atom_before_auth(void **s)
{
    (void)s;
    node_up(&A, "never_seen_name_4711", "one");
    node_up(&B, "b", "two");
    dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    assert_true(term_atom_existing("never_seen_name_4711@h", 22) == TERM_NONE);
    assert_int_equal(B.n, 0); /* no peer record either */
    assert_non_null(strstr(B.logs, "wrong cookie"));
}

static void test_unknown_name(void **s)
{
    (void)s;
    node_up(&A, "a", "c");
    node_up(&B, "b", "c");
    dist_peer *p = dial(&A, "nobody");
    dist__mem_run(net, SIZE_MAX);
    assert_int_equal(p->state, PEER_DOWN);
    assert_non_null(strstr(p->why, "not registered"));
}

/* A peer that accepts and never answers: the attempt ends at the setup time, not before. */
static void test_stalled_peer(void **s)
{
    (void)s;
    node_up(&A, "a", "c");
    node_up(&B, "b", "c");
    dist__mem_blackhole(net, "hole", "h", 6);
    dist_peer *p = dial(&A, "hole");
    dist__mem_advance(net, 6999);
    assert_int_equal(p->state, PEER_PENDING);
    dist__mem_advance(net, 1);
    assert_int_equal(p->state, PEER_DOWN);
    assert_non_null(strstr(p->why, "handshake timeout"));
}

/* ================================================================ ticks */

static void test_ticks_keep_alive(void **s)
{
    (void)s;
    node_up(&A, "a", "c");
    node_up(&B, "b", "c");
    dist_peer *ab = dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    dist_sm_stats st;
    dist__mem_advance(net, 60000);
    assert_int_equal(ab->state, PEER_UP);
    assert_int_equal(rec(&B, "a")->state, PEER_UP);
    dist__sm_stats(A.sm, &st);
    /* nothing else was written: a tick every check (60 of them), and as many came in */
    assert_in_range(st.ticks_out, 59, 60);
    assert_in_range(st.ticks_in, 59, 60);
}

/* With ticktime 4 s the checks run every second; b goes silent right after the handshake:
** a sees nothing at the checks of 1, 2, 3 and 4 s, and declares b down at the 4th. */
static void test_ticks_silent_peer(void **s)
{
    (void)s;
    node_up(&A, "a", "c");
    node_up(&B, "b", "c");
    dist_peer *ab = dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    assert_int_equal(ab->state, PEER_UP);
    assert_int_equal(dist__mem_now_ms(net), 0);
    dist__mem_silence(net, "h", "h", true); /* b's bytes (and a's: same host) are held */
    dist__mem_advance(net, 3999);
    assert_int_equal(ab->state, PEER_UP);
    dist__mem_advance(net, 1);
    assert_int_equal(ab->state, PEER_DOWN);
    assert_string_equal(ab->why, "net_tick_timeout");
    assert_non_null(strstr(A.logs, "event=net_tick_timeout node=b@h"));
}

/* Silent for three checks, then a tick arrives: the count starts again. */
static void test_ticks_recover(void **s)
{
    (void)s;
    node_up(&A, "a", "c");
    node_up(&B, "b", "c");
    dist_peer *ab = dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    dist__mem_silence(net, "h", "h", true);
    dist__mem_advance(net, 3500);
    dist__mem_silence(net, "h", "h", false);
    dist__mem_advance(net, 20000);
    assert_int_equal(ab->state, PEER_UP);
    assert_int_equal(ab->downs, 0);
}

/* ================================================================ simultaneous connects */

/* Both dial at once. The greater name keeps its own attempt: its peer answers ok_simultaneous,
** and it answers nok. Exactly one connection comes up on each side, and it carries frames. */
static void simultaneous(const char *x, const char *y)
{
    node_up(&A, x, "c");
    node_up(&B, y, "c");
    dist_peer *ab = dial(&A, y);
    dist_peer *ba = dial(&B, x);
    dist__mem_run(net, SIZE_MAX);
    assert_int_equal(ab->state, PEER_UP);
    assert_int_equal(ba->state, PEER_UP);
    assert_int_equal(ab->ups, 1);
    assert_int_equal(ba->ups, 1);
    assert_int_equal(ab->downs, 0);
    assert_int_equal(ba->downs, 0);
    assert_ptr_equal(rec(&A, y), ab);
    assert_ptr_equal(rec(&B, x), ba);
    /* the greater name's side answered nok to the other's attempt (and logged it); the smaller
    ** name's side gave its own attempt up without a word */
    bool a_greater = strcmp(x, y) > 0;
    assert_non_null(strstr(a_greater ? A.logs : B.logs, "event=simultaneous_connect"));
    assert_null(strstr(a_greater ? B.logs : A.logs, "event=simultaneous_connect"));
    send_frame(&A, ab, "x");
    send_frame(&B, ba, "y");
    dist__mem_run(net, SIZE_MAX);
    assert_int_equal(ab->nframes, 1);
    assert_int_equal(ba->nframes, 1);
    dist__mem_advance(net, 10000);
    assert_int_equal(ab->state, PEER_UP);
    assert_int_equal(ba->state, PEER_UP);
}

static void test_simultaneous_a_smaller(void **s)
{
    (void)s;
    simultaneous("a", "b");
}

static void test_simultaneous_a_greater(void **s)
{
    (void)s;
    simultaneous("z", "b");
}

/* ================================================================ framing */

/* The same exchange, with the byte stream of every connection cut once at offset k, for every
** k over the whole exchange (handshake and frames), then delivered one byte at a time. */
static void test_split_everywhere(void **s)
{
    (void)s;
    static const char *msgs[] = {"one", "", "three three three", "4"};
    dist__mem_net_free(net); /* every cut gets a network of its own */
    for (size_t k = 0; k <= 180; k++) {
        net = dist__mem_net_new(42 + k);
        dist__mem_set_delivery(net, k == 180 ? 1 : 0, k);
        node_up(&A, "a", "c");
        node_up(&B, "b", "c");
        dist_peer *ab = dial(&A, "b");
        dist__mem_run(net, SIZE_MAX);
        dist_peer *ba = rec(&B, "a");
        assert_int_equal(ab->state, PEER_UP);
        assert_int_equal(ba->state, PEER_UP);
        for (size_t i = 0; i < 4; i++) {
            if (!msgs[i][0]) { /* a tick between frames */
                t_tick(&A, ab);
                continue;
            }
            send_frame(&A, ab, msgs[i]);
        }
        dist__mem_run(net, SIZE_MAX);
        assert_int_equal(ba->nframes, 3);
        size_t pos = 0;
        for (size_t i = 0; i < 4; i++) {
            if (!msgs[i][0]) continue;
            size_t n = girder__get32(ba->rx + pos);
            assert_int_equal(n, strlen(msgs[i]));
            assert_memory_equal(ba->rx + pos + 4, msgs[i], n);
            pos += 4 + n;
        }
        node_free(&A);
        node_free(&B);
        dist__mem_net_free(net);
    }
    net = dist__mem_net_new(1);
    node_up(&A, "a", "c");
    node_up(&B, "b", "c");
}

/* A frame longer than max_message closes the connection (and only it). */
static void test_oversized_frame(void **s)
{
    (void)s;
    node_up(&A, "a", "c");
    node_up(&B, "b", "c");
    dist_peer *ab = dial(&A, "b");
    dist__mem_run(net, SIZE_MAX);
    uint8_t hdr[4];
    girder__put32(hdr, 0x7fffffff);
    enqueue(ab, hdr, 4);
    dist__sm_kick(A.sm, ab);
    dist__mem_run(net, SIZE_MAX);
    dist_peer *ba = rec(&B, "a");
    assert_int_equal(ba->state, PEER_DOWN);
    assert_string_equal(ba->why, "oversized frame");
    assert_int_equal(ab->state, PEER_DOWN); /* and a sees the close */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_handshake_v6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handshake_v5, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_cookie, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_atom_before_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stalled_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ticks_keep_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ticks_silent_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ticks_recover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_simultaneous_a_smaller, setup, teardown),
        cmocka_unit_test_setup_teardown(test_simultaneous_a_greater, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_everywhere, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_frame, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
