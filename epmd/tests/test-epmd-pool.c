/* Unit tests for girder-epmd's connection pool: room, who gives way, registrations kept, peers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "epmd_int.h"

static epmd__peer_key v4(const char *text)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, text, &a.sin_addr), 1);
    epmd__peer_key k;
    assert_int_equal(epmd__peer_key_of((struct sockaddr *)&a, &k), 0);
    return k;
}

static epmd__peer_key v6(const char *text)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, text, &a.sin6_addr), 1);
    epmd__peer_key k;
    assert_int_equal(epmd__peer_key_of((struct sockaddr *)&a, &k), 0);
    return k;
}

static void test_peer_keys(void **state)
{
    (void)state;
    epmd__peer_key a = v4("10.1.2.3"), b = v4("10.1.2.4");
    assert_memory_not_equal(&a, &b, sizeof a);
    /* IPv4 through an IPv6 socket is the same peer. */
    epmd__peer_key m = v6("::ffff:10.1.2.3");
    assert_memory_equal(&a, &m, sizeof a);
    /* One /64 is one peer, whatever host part it picks; another /64 is another. */
    epmd__peer_key p = v6("2001:db8:1:2::1"), q = v6("2001:db8:1:2:ffff:1:2:3");
    epmd__peer_key r = v6("2001:db8:1:3::1");
    assert_memory_equal(&p, &q, sizeof p);
    assert_memory_not_equal(&p, &r, sizeof p);
    struct sockaddr sa = {.sa_family = AF_UNIX};
    assert_int_equal(epmd__peer_key_of(&sa, &a), EPMD_EINVAL);
}

static void test_room_and_victims(void **state)
{
    (void)state;
    epmd__pool p;
    assert_int_equal(epmd__pool_init(&p, 4, 42), 0);
    epmd__slot s[6];
    memset(s, 0, sizeof s);
    epmd__peer_key a = v4("10.0.0.1"), b = v4("10.0.0.2");
    assert_null(epmd__pool_victim(&p));
    assert_int_equal(epmd__pool_enter(&p, &s[0], &a), 0); /* oldest, from a */
    assert_int_equal(epmd__pool_enter(&p, &s[1], &b), 0);
    assert_int_equal(epmd__pool_enter(&p, &s[2], &b), 0);
    assert_int_equal(epmd__pool_enter(&p, &s[3], &a), 0);
    assert_int_equal(epmd__pool_enter(&p, &s[4], &a), GIRDER_ENOSPC);
    assert_int_equal(p.used, 4);
    /* a and b hold two each: either may give way, its oldest. */
    epmd__slot *v = epmd__pool_victim(&p);
    assert_true(v == &s[0] || v == &s[1]);
    /* b's one becomes a registration: a holds more, a's oldest goes. */
    epmd__pool_hold(&p, &s[1]);
    assert_ptr_equal(epmd__pool_victim(&p), &s[0]);
    assert_int_equal(epmd__pool_peer_evictable(&p, &a), 2);
    assert_int_equal(epmd__pool_peer_evictable(&p, &b), 1);
    epmd__pool_leave(&p, &s[0]);
    assert_int_equal(epmd__pool_enter(&p, &s[4], &b), 0); /* room again */
    /* b: 2 evictable (s2, s4) against a's 1 (s3): b's oldest evictable, not its registration. */
    assert_ptr_equal(epmd__pool_victim(&p), &s[2]);
    epmd__pool_leave(&p, &s[2]);
    epmd__pool_leave(&p, &s[4]);
    /* Only registrations and a's s3: s3. Then nothing evictable is left. */
    assert_ptr_equal(epmd__pool_victim(&p), &s[3]);
    epmd__pool_hold(&p, &s[3]);
    assert_null(epmd__pool_victim(&p));
    assert_int_equal(p.used, 2);
    assert_int_equal(p.evictable, 0);
    /* Leaving empties the peers out of the table. */
    epmd__pool_leave(&p, &s[1]);
    epmd__pool_leave(&p, &s[3]);
    epmd__pool_leave(&p, &s[3]); /* twice: a no-op */
    assert_int_equal(p.used, 0);
    assert_int_equal(p.nheap, 0);
    epmd__pool_free(&p);
}

static void test_flooder_gives_way(void **state)
{
    (void)state;
    /* One honest connection among 999 of a flooder: 10,000 newcomers of the flooder each push
     * out one of its own, never the honest one, though the honest one is the oldest. */
    epmd__pool p;
    assert_int_equal(epmd__pool_init(&p, 1000, 7), 0);
    epmd__slot *s = calloc(11000, sizeof *s);
    epmd__peer_key honest = v4("127.0.0.1"), flood = v4("127.0.0.2");
    assert_int_equal(epmd__pool_enter(&p, &s[0], &honest), 0);
    for (int i = 1; i < 11000; i++) {
        if (p.used >= p.cap) {
            epmd__slot *v = epmd__pool_victim(&p);
            assert_ptr_not_equal(v, &s[0]);
            assert_ptr_equal(v, &s[i - 999]); /* the flooder's oldest */
            epmd__pool_leave(&p, v);
        }
        assert_int_equal(epmd__pool_enter(&p, &s[i], &flood), 0);
    }
    assert_int_equal(epmd__pool_peer_evictable(&p, &honest), 1);
    for (int i = 0; i < 11000; i++) epmd__pool_leave(&p, &s[i]);
    assert_int_equal(p.nheap, 0);
    epmd__pool_free(&p);
    free(s);
}

/*
** Random operations against a plain model: after each step the victim is the oldest evictable
** slot of a peer holding the most evictable slots, and the counts agree.
*/
#define N     400
#define PEERS 12

static void test_against_model(void **state)
{
    (void)state;
    epmd__pool p;
    assert_int_equal(epmd__pool_init(&p, 150, 99), 0);
    static epmd__slot s[N];
    static int where[N]; /* 0 out, 1 evictable, 2 held */
    static int peer_of[N];
    static long age[N];
    memset(s, 0, sizeof s);
    memset(where, 0, sizeof where);
    epmd__peer_key keys[PEERS];
    for (int i = 0; i < PEERS; i++) {
        keys[i] = v4("10.9.0.0");
        keys[i].b[15] = (uint8_t)i;
    }
    srand(4369);
    long clock = 0;
    for (int step = 0; step < 200000; step++) {
        int i = rand() % N;
        int op = rand() % 10;
        if (where[i] == 0 && op < 6) {
            int pr = rand() % 3 ? rand() % 3 : rand() % PEERS; /* a few peers hold the most */
            size_t used = p.used;
            int r = epmd__pool_enter(&p, &s[i], &keys[pr]);
            if (used >= 150) {
                assert_int_equal(r, GIRDER_ENOSPC);
            } else {
                assert_int_equal(r, 0);
                where[i] = 1;
                peer_of[i] = pr;
                age[i] = clock++;
            }
        } else if (where[i] == 1 && op < 2) {
            epmd__pool_hold(&p, &s[i]);
            where[i] = 2;
        } else if (where[i] != 0 && op >= 6) {
            epmd__pool_leave(&p, &s[i]);
            where[i] = 0;
        }
        /* The model. */
        size_t count[PEERS] = {0}, used = 0, evictable = 0, most = 0;
        for (int j = 0; j < N; j++) {
            used += where[j] != 0;
            if (where[j] != 1) continue;
            evictable++;
            if (++count[peer_of[j]] > most) most = count[peer_of[j]];
        }
        assert_int_equal(p.used, used);
        assert_int_equal(p.evictable, evictable);
        epmd__slot *v = epmd__pool_victim(&p);
        if (most == 0) {
            assert_null(v);
            continue;
        }
        assert_non_null(v);
        int vi = (int)(v - s);
        assert_int_equal(where[vi], 1);
        assert_int_equal(count[peer_of[vi]], most);
        for (int j = 0; j < N; j++)
            if (where[j] == 1 && peer_of[j] == peer_of[vi]) assert_true(age[j] >= age[vi]);
    }
    for (int j = 0; j < N; j++) epmd__pool_leave(&p, &s[j]);
    assert_int_equal(p.nheap, 0);
    epmd__pool_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_keys),
        cmocka_unit_test(test_room_and_victims),
        cmocka_unit_test(test_flooder_gives_way),
        cmocka_unit_test(test_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
