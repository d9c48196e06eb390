/* dist_stop while processes keep sending to, linking to and monitoring remote pids: no crash, no
 * leak. */
#include <girder/dist.h>
#include <girder/node.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

static atomic_bool quit;
static atomic_long sent;
static atomic_int running;

/* Sends to, monitors and links to pids of a node that does not exist, until told to stop: each
** signal goes through dist's hook (and starts a connection attempt that fails). */
/* What a chatter holds; freed by its exit hook, since nd_shutdown kills it anywhere. */
typedef struct held {
    term_t far, ref;
} held;

static void free_held(void *arg, term_t reason)
{
    held *h = arg;
    (void)reason;
    term_free(h->far);
    term_free(h->ref);
    free(h);
}

static void chatter(void *arg)
{
    held *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->far = term_pid(term_atom((const char *)arg), 7, 0, 1);
    nd_set_exit_hook(free_held, h);
    nd_trap_exit(true);
    atomic_fetch_add(&running, 1);
    while (!atomic_load(&quit)) {
        nd_send(h->far, term_atom("hello"));
        if (nd_monitor(h->far, &h->ref) == 0) nd_demonitor(h->ref, ND_DEMONITOR_FLUSH);
        term_free(h->ref);
        h->ref = TERM_NONE;
        nd_link(h->far);
        nd_unlink(h->far);
        atomic_fetch_add(&sent, 1);
        if (atomic_load(&sent) % 64 == 0)
            nd_sleep(1);
        else
            nd_yield();
    }
    atomic_fetch_sub(&running, 1);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void quiet(void *ud, int level, const char *line)
{
    (void)ud;
    (void)level;
    (void)line;
}

static void test_stop_under_traffic(void **s)
{
    (void)s;
    int rounds = getenv("STOP_ROUNDS") ? atoi(getenv("STOP_ROUNDS")) : 20;
    for (int round = 0; round < rounds; round++) {
        nd_config nc = {0};
        nc.schedulers = 2;
        assert_int_equal(nd_init(&nc), 0);
        dist_config dc = {0};
        dc.name = "stopper@localhost";
        dc.cookie = "c";
        dc.hidden = true;
        dc.no_epmd = true;
        dc.listen_addr = "127.0.0.1";
        dc.handshake_timeout_ms = 300;
        dc.log = quiet;
        assert_int_equal(dist_start(&dc), 0);
        atomic_store(&quit, false);
        atomic_store(&sent, 0);
        /* hosts that resolve at once: a DNS lookup in flight would hold the stop up to its timeout
         */
        static const char *nodes[] = {"a@127.0.0.1", "b@127.0.0.1", "c@localhost"};
        for (int i = 0; i < 6; i++)
            assert_int_equal(nd_spawn(chatter, (void *)nodes[i % 3], NULL, NULL), 0);
        while (atomic_load(&sent) < 200) sleep_ms(1);
        sleep_ms(round % 5); /* stop at varying points of the traffic */
        assert_int_equal(dist_stop(10000), 0);
        assert_int_equal(dist_connect(term_atom("x@y"), 100), DIST_ESTATE);
        sleep_ms(5); /* the chatter goes on against a stopped distribution */
        atomic_store(&quit, true);
        for (int i = 0; i < 5000 && atomic_load(&running) > 0; i++) sleep_ms(1);
        assert_int_equal(atomic_load(&running), 0);
        assert_int_equal(nd_shutdown(10000), 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_under_traffic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
