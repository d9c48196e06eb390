/* Unit tests for the handshake machine: both roles against each other, versions, cookies, statuses.
 */
#include "dist_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static dist_hs a, b; /* a dials b */

static uint32_t seq_rand(void *ud)
{
    static uint32_t x = 0x9e3779b9u;
    (void)ud;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

static hs_status st_answer;
static hs_status decide(void *ud, dist_hs *hs)
{
    (void)ud;
    (void)hs;
    return st_answer;
}

/* Shuttles output between the two machines, one byte at a time when slow, until both stop. */
static void run(int *ra, int *rb, bool slow)
{
    *ra = *rb = HS_CONT;
    for (int round = 0; round < 5000 && (*ra == HS_CONT || *rb == HS_CONT); round++) {
        bool moved = false;
        if (a.out_len && *rb == HS_CONT) {
            size_t n = slow ? 1 : a.out_len, used;
            *rb = dist__hs_feed(&b, a.out, n, &used);
            memmove(a.out, a.out + used, a.out_len - used);
            a.out_len -= used;
            moved = used > 0;
        }
        if (b.out_len && *ra == HS_CONT) {
            size_t n = slow ? 1 : b.out_len, used;
            *ra = dist__hs_feed(&a, b.out, n, &used);
            memmove(b.out, b.out + used, b.out_len - used);
            b.out_len -= used;
            moved = moved || used > 0;
        }
        if (!moved && !a.out_len && !b.out_len) break;
    }
}

static void setup_pair(const char *ca, const char *cb, uint64_t fa, uint64_t fb, int version)
{
    dist__hs_init(&a, HS_INITIATOR, "a@h", fa, 11, ca);
    a.rand32 = seq_rand;
    dist__hs_init(&b, HS_ACCEPTOR, "b@h", fb, 22, cb);
    b.rand32 = seq_rand;
    b.decide = decide;
    st_answer = HS_ST_OK;
    dist__hs_start(&a, "b@h", version);
}

static void test_v6_ok(void **s)
{
    int ra, rb;
    (void)s;
    setup_pair("c", "c", DIST_OUR_FLAGS | DFLAG_PUBLISHED, DIST_OUR_FLAGS, 6);
    run(&ra, &rb, false);
    assert_int_equal(ra, HS_DONE);
    assert_int_equal(rb, HS_DONE);
    assert_string_equal(b.peer_name, "a@h");
    assert_string_equal(a.peer_name, "b@h");
    assert_int_equal(a.peer_creation, 22);
    assert_int_equal(b.peer_creation, 11);
    assert_true(a.flags == b.flags);
    assert_true((a.flags & DFLAG_PUBLISHED) == 0); /* b is hidden: both see a hidden link */
}

static void test_v5_complement(void **s)
{
    int ra, rb;
    (void)s;
    setup_pair("c", "c", DIST_OUR_FLAGS, DIST_OUR_FLAGS, 5);
    run(&ra, &rb, true);
    if (ra != HS_DONE) fprintf(stderr, "a: %s / b: %s\n", a.why, b.why);
    assert_int_equal(ra, HS_DONE);
    assert_int_equal(rb, HS_DONE);
    assert_true(b.peer_old_name);
    /* the high flags arrived in the complement */
    assert_true(b.peer_flags & DFLAG_SPAWN);
    assert_int_equal(b.peer_creation, 11);
}

static void test_wrong_cookie(void **s)
{
    int ra, rb;
    (void)s;
    setup_pair("right", "wrong", DIST_OUR_FLAGS, DIST_OUR_FLAGS, 6);
    run(&ra, &rb, false);
    assert_int_equal(rb, HS_FAIL);
    assert_true(b.bad_cookie);
    assert_non_null(strstr(b.why, "wrong cookie"));
    assert_int_not_equal(ra, HS_DONE);
}

static void test_statuses(void **s)
{
    int ra, rb;
    (void)s;
    setup_pair("c", "c", DIST_OUR_FLAGS, DIST_OUR_FLAGS, 6);
    st_answer = HS_ST_NOK;
    run(&ra, &rb, false);
    assert_int_equal(ra, HS_FAIL);
    assert_true(a.nok);
    setup_pair("c", "c", DIST_OUR_FLAGS, DIST_OUR_FLAGS, 6);
    st_answer = HS_ST_ALIVE;
    run(&ra, &rb, false);
    assert_int_equal(ra, HS_DONE);
    assert_int_equal(rb, HS_DONE);
    setup_pair("c", "c", DIST_OUR_FLAGS, DIST_OUR_FLAGS, 6);
    st_answer = HS_ST_NOT_ALLOWED;
    run(&ra, &rb, false);
    assert_int_equal(ra, HS_FAIL);
    assert_int_equal(rb, HS_FAIL);
}

static void test_flags_and_names(void **s)
{
    int ra, rb;
    (void)s;
    /* a peer without the new link protocol is refused */
    setup_pair("c", "c", DIST_OUR_FLAGS & ~DFLAG_UNLINK_ID, DIST_OUR_FLAGS, 6);
    run(&ra, &rb, false);
    assert_int_equal(rb, HS_FAIL);
    assert_non_null(strstr(b.why, "mandatory"));
    /* MANDATORY_25_DIGEST stands for the OTP 25 set */
    setup_pair("c", "c", (DIST_OUR_FLAGS & ~DFLAG_MANDATORY_25) | DFLAG_MANDATORY_25_DIGEST,
               DIST_OUR_FLAGS, 6);
    run(&ra, &rb, false);
    assert_int_equal(rb, HS_DONE);
    /* the acceptor must answer with the name we dialled */
    setup_pair("c", "c", DIST_OUR_FLAGS, DIST_OUR_FLAGS, 6);
    strcpy(a.expect_name, "other@h");
    run(&ra, &rb, false);
    assert_int_equal(ra, HS_FAIL);
    /* bad names */
    const char *bad[] = {"noat", "@h", "a@", "a@b@c"};
    for (size_t i = 0; i < 4; i++) {
        dist__hs_init(&a, HS_INITIATOR, bad[i], DIST_OUR_FLAGS, 1, "c");
        a.rand32 = seq_rand;
        dist__hs_init(&b, HS_ACCEPTOR, "b@h", DIST_OUR_FLAGS, 2, "c");
        b.rand32 = seq_rand;
        dist__hs_start(&a, "b@h", 6);
        size_t used;
        assert_int_equal(dist__hs_feed(&b, a.out, a.out_len, &used), HS_FAIL);
    }
}

/* Dynamic node names: the initiator sends only its host with NAME_ME and creation 0; the
** acceptor answers "snamed:" with Name@Host and a creation, which the initiator adopts. */
static void test_dynamic_names(void **s)
{
    int ra, rb;
    (void)s;
    dist__hs_init(&a, HS_INITIATOR, "h", DIST_OUR_FLAGS | DFLAG_NAME_ME, 0, "c");
    a.rand32 = seq_rand;
    dist__hs_init(&b, HS_ACCEPTOR, "b@h", DIST_OUR_FLAGS, 22, "c");
    b.rand32 = seq_rand;
    b.decide = decide;
    st_answer = HS_ST_OK;
    dist__hs_start(&a, "b@h", 5); /* a name request always uses the 'N' message */
    /* send_name: 'N', flags with NAME_ME, creation 0, the host alone */
    assert_int_equal(a.out[2], 'N');
    uint64_t fl = 0;
    for (int i = 0; i < 8; i++) fl = fl << 8 | a.out[3 + i];
    assert_true(fl & DFLAG_NAME_ME);
    assert_int_equal(a.out[11] | a.out[12] | a.out[13] | a.out[14], 0);
    assert_int_equal(a.out[15] << 8 | a.out[16], 1);
    assert_int_equal(a.out[17], 'h');
    run(&ra, &rb, false);
    assert_int_equal(ra, HS_DONE);
    assert_int_equal(rb, HS_DONE);
    assert_true(a.named && b.named);
    assert_string_equal(a.my_name, b.peer_name);
    assert_int_equal(a.my_creation, b.peer_creation);
    assert_true(a.my_creation != 0);
    const char *at = strchr(b.peer_name, '@');
    assert_non_null(at);
    assert_string_equal(at + 1, "h");
    assert_true(at > b.peer_name);
    assert_true(a.flags & DFLAG_NAME_ME); /* as in OTP: both sides keep it */
    assert_true((b.my_flags & DFLAG_PUBLISHED) == 0);
    /* a static initiator named by the peer, or a name request answered "ok": refused */
    dist__hs_init(&a, HS_INITIATOR, "h", DIST_OUR_FLAGS | DFLAG_NAME_ME, 0, "c");
    a.rand32 = seq_rand;
    dist__hs_start(&a, "b@h", 6);
    static const uint8_t ok[] = {0, 3, 's', 'o', 'k'};
    size_t used;
    assert_int_equal(dist__hs_feed(&a, ok, sizeof ok, &used), HS_FAIL);
    dist__hs_init(&a, HS_INITIATOR, "a@h", DIST_OUR_FLAGS, 1, "c");
    a.rand32 = seq_rand;
    dist__hs_start(&a, "b@h", 6);
    static const uint8_t named[] = {0, 16, 's', 'n', 'a', 'm', 'e', 'd', ':',
                                    0, 3,  'x', '@', 'h', 0,   0,   0,   1};
    assert_int_equal(dist__hs_feed(&a, named, sizeof named, &used), HS_FAIL);
    /* named with another host than ours: refused */
    dist__hs_init(&a, HS_INITIATOR, "h2", DIST_OUR_FLAGS | DFLAG_NAME_ME, 0, "c");
    a.rand32 = seq_rand;
    dist__hs_start(&a, "b@h", 6);
    assert_int_equal(dist__hs_feed(&a, named, sizeof named, &used), HS_FAIL);
    /* with our host: adopted */
    dist__hs_init(&a, HS_INITIATOR, "h", DIST_OUR_FLAGS | DFLAG_NAME_ME, 0, "c");
    a.rand32 = seq_rand;
    dist__hs_start(&a, "b@h", 6);
    assert_int_equal(dist__hs_feed(&a, named, sizeof named, &used), HS_CONT);
    assert_string_equal(a.my_name, "x@h");
    assert_int_equal(a.my_creation, 1);
    /* a name request with a host containing '@' is refused by the acceptor */
    dist__hs_init(&a, HS_INITIATOR, "a@h", DIST_OUR_FLAGS | DFLAG_NAME_ME, 0, "c");
    a.rand32 = seq_rand;
    dist__hs_init(&b, HS_ACCEPTOR, "b@h", DIST_OUR_FLAGS, 22, "c");
    b.rand32 = seq_rand;
    dist__hs_start(&a, "b@h", 6);
    assert_int_equal(dist__hs_feed(&b, a.out, a.out_len, &used), HS_FAIL);
}

static void test_garbage(void **s)
{
    (void)s;
    uint8_t buf[300];
    for (unsigned seed = 1; seed < 2000; seed++) {
        dist__hs_init(&b, HS_ACCEPTOR, "b@h", DIST_OUR_FLAGS, 2, "c");
        b.rand32 = seq_rand;
        unsigned x = seed;
        for (size_t i = 0; i < sizeof buf; i++) {
            x = x * 1103515245 + 12345;
            buf[i] = (uint8_t)(x >> 16);
        }
        buf[0] = 0;
        size_t used;
        int rc = dist__hs_feed(&b, buf, sizeof buf, &used);
        assert_true(rc == HS_FAIL || rc == HS_CONT);
        assert_true(used <= sizeof buf);
    }
    /* an oversized packet length fails at once */
    dist__hs_init(&b, HS_ACCEPTOR, "b@h", DIST_OUR_FLAGS, 2, "c");
    b.rand32 = seq_rand;
    uint8_t big[2] = {0xff, 0xff};
    size_t used;
    assert_int_equal(dist__hs_feed(&b, big, 2, &used), HS_FAIL);
}

static void test_digest(void **s)
{
    (void)s;
    /* erlang:md5(["cookie" | integer_to_list(3735928559)]) */
    static const uint8_t want[16] = {199, 104, 189, 227, 71,  81,  146, 61,
                                     132, 121, 85,  105, 252, 246, 18,  181};
    uint8_t d[16];
    dist__digest("cookie", 3735928559u, d);
    if (memcmp(d, want, 16) != 0) {
        for (int i = 0; i < 16; i++) fprintf(stderr, "%02x", d[i]);
        fprintf(stderr, "\n");
    }
    assert_memory_equal(d, want, 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v6_ok),           cmocka_unit_test(test_v5_complement),
        cmocka_unit_test(test_wrong_cookie),    cmocka_unit_test(test_statuses),
        cmocka_unit_test(test_flags_and_names), cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_digest),          cmocka_unit_test(test_dynamic_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
