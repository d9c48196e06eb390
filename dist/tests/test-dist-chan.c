/* Unit tests of the connection state machine on the in-memory transport: no sockets, no sleeps. */
#include "chan.h"
#include "transport.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* ================================================================ a test owner */

typedef struct tnode tnode;

struct dist_peer {
    dist_sm_slot slot;
    tnode *n;
    term_t node;
    int state, refs;
    bool in_table;
    dist_chunk *q, *qtail;
    uint64_t out_frames;
    /* what happened */
    int ups, downs, err;
    char why[256];
    uint64_t flags;
    uint32_t creation;
    uint8_t rx[65536]; /* frames received, each as 4-byte length + body */
    size_t rxlen;
    size_t nframes;
};

struct tnode {
    const char *name;
    dist_tr *tr;
    dist_sm *sm;
    dist_peer *tab[16];
    size_t n;
    uint32_t creation;
    char logs[8192];
};

static dist_peer *t_get(void *ud, term_t node, bool create)
{
    tnode *n = ud;
    for (size_t i = 0; i < n->n; i++)
        if (n->tab[i]->in_table && n->tab[i]->node == node) {
            n->tab[i]->refs++;
            return n->tab[i];
        }
    if (!create || n->n == 16) return NULL;
    dist_peer *p = calloc(1, sizeof *p);
    p->n = n;
    p->node = node;
    p->state = PEER_PENDING;
    p->in_table = true;
    p->refs = 2; /* the table's and the caller's */
    n->tab[n->n++] = p;
    return p;
}
static void t_ref(void *ud, dist_peer *p)
{
    (void)ud;
    p->refs++;
}
static void t_put(void *ud, dist_peer *p)
{
    (void)ud;
    assert_true(p->refs > 0);
    p->refs--; /* freed with the node (the table keeps records for the assertions) */
}
static int t_state(void *ud, dist_peer *p)
{
    (void)ud;
    return p->state;
}
static term_t t_node(void *ud, dist_peer *p)
{
    (void)ud;
    return p->node;
}
static dist_sm_slot *t_slot(void *ud, dist_peer *p)
{
    (void)ud;
    return &p->slot;
}
static void t_up(void *ud, dist_peer *p, const dist_up_info *info)
{
    (void)ud;
    assert_int_equal(p->state, PEER_PENDING);
    p->state = PEER_UP;
    p->ups++;
    p->flags = info->flags;
    p->creation = info->creation;
}
static void t_detach(void *ud, dist_peer *p)
{
    (void)ud;
    (void)p;
}
static void t_down(void *ud, dist_peer *p, const char *why, int err)
{
    (void)ud;
    p->state = PEER_DOWN;
    p->in_table = false;
    p->downs++;
    p->err = err;
    snprintf(p->why, sizeof p->why, "%s", why);
    dist__chunks_free(p->q);
    p->q = p->qtail = NULL;
}
static int t_frame(void *ud, dist_peer *p, const uint8_t *f, size_t n, const char **why)
{
    (void)ud;
    (void)why;
    assert_true(p->rxlen + 4 + n <= sizeof p->rx);
    girder__put32(p->rx + p->rxlen, (uint32_t)n);
    memcpy(p->rx + p->rxlen + 4, f, n);
    p->rxlen += 4 + n;
    p->nframes++;
    return 0;
}
static dist_chunk *t_take(void *ud, dist_peer *p, size_t *bytes)
{
    (void)ud;
    dist_chunk *q = p->q;
    *bytes = 0;
    for (dist_chunk *c = q; c; c = c->next) *bytes += c->len;
    p->q = p->qtail = NULL;
    return q;
}
static uint64_t t_out_frames(void *ud, dist_peer *p)
{
    (void)ud;
    return p->out_frames;
}
static void enqueue(dist_peer *p, const uint8_t *d, size_t n)
{
    dist_chunk *c = calloc(1, sizeof *c);
    c->data = malloc(n ? n : 1);
    memcpy(c->data, d, n);
    c->len = c->cap = n;
    if (p->qtail)
        p->qtail->next = c;
    else
        p->q = c;
    p->qtail = c;
}
static void t_tick(void *ud, dist_peer *p)
{
    tnode *n = ud;
    static const uint8_t zero[4];
    enqueue(p, zero, 4);
    dist__sm_kick(n->sm, p);
}
static void t_named(void *ud, const char *name, uint32_t creation)
{
    (void)ud;
    (void)name;
    (void)creation;
}
static void t_service(void *ud)
{
    (void)ud;
}
static void t_published(void *ud, int status, uint32_t creation)
{
    tnode *n = ud;
    assert_int_equal(status, 0);
    n->creation = creation;
    dist__sm_set_identity(n->sm, NULL, creation, DIST_OUR_FLAGS | DFLAG_PUBLISHED);
}
static void t_log(void *ud, int level, const char *line)
{
    tnode *n = ud;
    size_t l = strlen(n->logs);
    (void)level;
    snprintf(n->logs + l, sizeof n->logs - l, "%s\n", line);
    if (getenv("CHAN_VERBOSE")) fprintf(stderr, "[%s] %s\n", n->name, line);
}

static const dist_sm_owner test_owner = {
    .peer_get = t_get,
    .peer_ref = t_ref,
    .peer_put = t_put,
    .peer_state = t_state,
    .peer_node = t_node,
    .slot = t_slot,
    .up = t_up,
    .detach = t_detach,
    .down = t_down,
    .frame = t_frame,
    .take_output = t_take,
    .out_frames = t_out_frames,
    .tick = t_tick,
    .named = t_named,
    .service = t_service,
    .published = t_published,
    .log = t_log,
};

/* ================================================================ fixtures */

static dist_mem_net *net;
static tnode A, B;

/* A node "alive@h" on host h with cookie, ticktime 4 s (a tick check every second). */
static void node_up(tnode *n, const char *alive, const char *cookie)
{
    char name[64];
    snprintf(name, sizeof name, "%s@h", alive);
    memset(n, 0, sizeof *n);
    n->name = alive;
    n->tr = dist__mem_new(net, "h", NULL);
    dist_sm_config c = {0};
    c.name = name;
    c.cookie = cookie;
    c.flags = DIST_OUR_FLAGS | DFLAG_PUBLISHED;
    c.ticktime_ms = 4000;
    c.tick_intensity = 4;
    c.setup_ms = 7000;
    dist_sm_owner o = test_owner;
    o.ud = n;
    n->sm = dist__sm_new(&c, &o, n->tr);
    assert_non_null(n->sm);
    uint16_t port;
    assert_int_equal(n->tr->ops->listen(n->tr, NULL, 0, &port), 0);
    assert_int_equal(n->tr->ops->publish(n->tr, alive, port, false, 7000), 0);
    dist__mem_run(net, SIZE_MAX);
    assert_true(n->creation != 0);
}

static void node_free(tnode *n)
{
    dist__sm_shutdown(n->sm);
    n->tr->ops->shutdown(n->tr);
    dist__sm_free(n->sm);
    n->tr->ops->destroy(n->tr);
    for (size_t i = 0; i < n->n; i++) {
        dist__chunks_free(n->tab[i]->q);
        free(n->tab[i]);
    }
    n->n = 0;
}

static int setup(void **s)
{
    (void)s;
    term_init();
    net = dist__mem_net_new(42);
    return 0;
}

static int teardown(void **s)
{
    (void)s;
    node_free(&A);
    node_free(&B);
    dist__mem_net_free(net);
    return 0;
}

/* The peer record n keeps for node "alive@h" (the last one made). */
static dist_peer *rec(tnode *n, const char *alive)
{
    char name[64];
    snprintf(name, sizeof name, "%s@h", alive);
    term_t node = term_atom(name);
    for (size_t i = n->n; i-- > 0;)
        if (n->tab[i]->node == node) return n->tab[i];
    return NULL;
}

static dist_peer *dial(tnode *from, const char *alive)
{
    char name[64];
    snprintf(name, sizeof name, "%s@h", alive);
    dist_peer *p = t_get(from, term_atom(name), true);
    dist__sm_connect(from->sm, p);
    t_put(from, p);
    return p;
}

static void send_frame(tnode *n, dist_peer *p, const char *text)
{
    size_t len = strlen(text);
    uint8_t b[256];
    girder__put32(b, (uint32_t)len);
    memcpy(b + 4, text, len);
    enqueue(p, b, len + 4);
    p->out_frames++;
    dist__sm_kick(n->sm, p);
}

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
