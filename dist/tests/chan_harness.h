/* The connection state machine's test harness: an owner that records what happens, two nodes
 * on the in-memory transport, and helpers to dial and send. For dist/tests/ only. */
#ifndef DIST_TEST_CHAN_HARNESS_H
#define DIST_TEST_CHAN_HARNESS_H

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
    uint8_t *rx; /* frames received, each as 4-byte length + body */
    size_t rxlen, rxcap;
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
    if (p->rxcap - p->rxlen < 4 + n) {
        p->rxcap = (p->rxlen + 4 + n) * 2;
        p->rx = realloc(p->rx, p->rxcap);
        assert_non_null(p->rx);
    }
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
    c->data = c->base = malloc(n ? n : 1);
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

/* A node "alive@h" on host h with cookie, ticktime 4 s (a tick check every second), over
** transport tr (made on net's host h). */
static void node_up_tr(tnode *n, const char *alive, const char *cookie, dist_tr *tr)
{
    char name[64];
    snprintf(name, sizeof name, "%s@h", alive);
    memset(n, 0, sizeof *n);
    n->name = alive;
    n->tr = tr;
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

static void node_up(tnode *n, const char *alive, const char *cookie)
{
    node_up_tr(n, alive, cookie, dist__mem_new(net, "h", NULL));
}

static void node_free(tnode *n)
{
    dist__sm_shutdown(n->sm);
    n->tr->ops->shutdown(n->tr);
    dist__sm_free(n->sm);
    n->tr->ops->destroy(n->tr);
    for (size_t i = 0; i < n->n; i++) {
        dist__chunks_free(n->tab[i]->q);
        free(n->tab[i]->rx);
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

#endif
