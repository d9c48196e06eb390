/* The connection state machine: handshake driving, framing, ticks, simultaneous connects, naming.
 */
#include "chan.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CH_CONNECTING = 1, CH_HS, CH_UP, CH_CLOSED };

#define RBUF_MIN (64 * 1024)

/* A small write of the machine's own (handshake packets), kept until written. */
typedef struct hsw {
    struct hsw *next;
    size_t len;
    uint8_t data[];
} hsw;

struct dchan {
    dist_sm *sm;
    dist_tr_stream *s;
    dist_peer *peer; /* a reference, or NULL (inbound, name not known yet) */
    dchan *next, *prev;
    bool outgoing;
    int phase;
    dist_hs *hs; /* until the handshake is over */
    uint8_t *rbuf;
    size_t rlen, rcap;
    bool writing; /* a write of queued output is in flight */
    dist_chunk *inflight;
    size_t inflight_bytes;
    dist_iov *iov;
    size_t niov;
    hsw *hsw; /* handshake packets in flight */
    uint64_t bytes_in, last_in, last_out;
    unsigned missed;
    bool hidden;          /* a hidden connection: also tick when nothing was read */
    bool paused;          /* the owner asked us to stop reading (its decode queue is full) */
    dist_tr_timer *timer; /* connection setup */
    bool evicted;         /* closed to make room for newer handshakes (logged in bulk) */
    char addr[80];
};

struct dist_sm {
    char name[HS_MAX_NAME + 1];
    char cookie[HS_MAX_COOKIE + 1];
    uint64_t flags;
    uint32_t creation;
    dist_sm_config cfg;
    dist_sm_owner own;
    dist_tr *tr;
    dchan *chans;
    dist_tr_timer *ticker;
    bool shut;
    atomic_uint_fast64_t bytes_in, bytes_out, ticks_in, ticks_out, hs_failed, proto, layer_failed;
    /* inbound handshakes closed to make room (admit()): in all, and since the last log line */
    uint64_t evicted, evicted_unlogged, evicted_logged_ns;
};

#define OPS (sm->tr->ops)
#define OWN (&sm->own)

static void chan_fail(dchan *ch, const char *why, int err);
static void hs_done(dchan *ch);
static void start_write(dchan *ch);

static void sm_log(dist_sm *sm, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sm_log(dist_sm *sm, int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    OWN->log(OWN->ud, level, line);
}

static const char *node_text(dist_sm *sm, dist_peer *p)
{
    term_t n = p ? OWN->peer_node(OWN->ud, p) : TERM_NONE;
    return term_is_atom(n) ? term_atom_name(n, NULL) : "?";
}

static dist_sm_slot *slot(dist_sm *sm, dist_peer *p)
{
    return OWN->slot(OWN->ud, p);
}

static int pstate(dist_sm *sm, dist_peer *p)
{
    return OWN->peer_state(OWN->ud, p);
}

/* The handshake's callbacks get the channel (hs->ud). */
static uint32_t rand32(void *ud)
{
    dist_sm *sm = ((dchan *)ud)->sm;
    uint32_t v;
    OPS->random(sm->tr, &v, sizeof v);
    return v;
}

void dist__chunks_free(dist_chunk *ch)
{
    while (ch) {
        dist_chunk *n = ch->next;
        term_free_raw(ch->base, (size_t)(ch->data - ch->base) + ch->cap);
        free(ch);
        ch = n;
    }
}

/* ================================================================ channel lifetime */

static void on_setup_timeout(void *ud)
{
    chan_fail(ud, "handshake timeout (net_setuptime)", DIST_ETIMEOUT);
}

static dchan *chan_new(dist_sm *sm, bool outgoing)
{
    dchan *ch = calloc(1, sizeof *ch);
    if (!ch) return NULL;
    ch->hs = malloc(sizeof *ch->hs);
    ch->timer = ch->hs ? OPS->timer_new(sm->tr, on_setup_timeout, ch) : NULL;
    if (!ch->timer) {
        free(ch->hs);
        free(ch);
        return NULL;
    }
    ch->sm = sm;
    ch->outgoing = outgoing;
    ch->phase = outgoing ? CH_CONNECTING : CH_HS;
    dist__hs_init(ch->hs, outgoing ? HS_INITIATOR : HS_ACCEPTOR, sm->name, sm->flags, sm->creation,
                  sm->cookie);
    ch->hs->plen = OPS->handshake_plen;
    ch->hs->rand32 = rand32;
    ch->hs->ud = ch;
    snprintf(ch->addr, sizeof ch->addr, "?");
    ch->next = sm->chans;
    if (sm->chans) sm->chans->prev = ch;
    sm->chans = ch;
    OPS->timer_start(ch->timer, (uint64_t)sm->cfg.setup_ms, 0);
    return ch;
}

/* Closes the channel's stream and frees it; what that means for its peer is the caller's. */
static void chan_close(dchan *ch)
{
    dist_sm *sm = ch->sm;
    if (ch->phase == CH_CLOSED) return;
    ch->phase = CH_CLOSED;
    if (ch->s) OPS->close(ch->s);
    OPS->timer_free(ch->timer);
    if (ch->prev)
        ch->prev->next = ch->next;
    else
        sm->chans = ch->next;
    if (ch->next) ch->next->prev = ch->prev;
    while (ch->hsw) {
        hsw *w = ch->hsw;
        ch->hsw = w->next;
        free(w);
    }
    dist__chunks_free(ch->inflight);
    if (ch->peer) OWN->peer_put(OWN->ud, ch->peer);
    free(ch->hs);
    free(ch->rbuf);
    free(ch->iov);
    free(ch);
}

/* Closes p's channel, if any, without bringing p down (another channel takes over). */
static void unseat(dist_sm *sm, dist_peer *p)
{
    dchan *old = slot(sm, p)->ch;
    if (!old) return;
    if (old->phase == CH_UP) OWN->detach(OWN->ud, p);
    slot(sm, p)->ch = NULL;
    chan_close(old);
}

static void pend_stop(dist_sm *sm, dist_peer *p)
{
    dist_sm_slot *sl = slot(sm, p);
    if (!sl->pend) return;
    OPS->timer_free(sl->pend);
    sl->pend = NULL;
    sl->self = NULL;
    OWN->peer_put(OWN->ud, p);
}

static void on_pend_timeout(void *ud)
{
    dist_sm_slot *sl = ud;
    dist_sm *sm = sl->sm;
    dist_peer *p = sl->self;
    OWN->peer_ref(OWN->ud, p);
    pend_stop(sm, p);
    if (pstate(sm, p) == PEER_PENDING && !slot(sm, p)->ch)
        OWN->down(OWN->ud, p, "simultaneous connect: the peer's connection never completed",
                  DIST_ETIMEOUT);
    OWN->peer_put(OWN->ud, p);
}

/*
** The channel failed. A channel carrying its peer brings the peer down — except an outgoing
** attempt answered "nok": the peer is dialling us, so the peer stays pending, without a
** channel, for one setup time.
*/
static void chan_fail(dchan *ch, const char *why0, int err)
{
    dist_sm *sm = ch->sm;
    if (ch->phase == CH_CLOSED) return;
    char why[sizeof ch->hs->why + 320]; /* why0 may live in the channel, which closes below */
    snprintf(why, sizeof why, "%s", why0);
    dist_peer *p = ch->peer;
    int phase = ch->phase;
    bool nok = ch->hs && phase != CH_UP && ch->hs->nok;
    const char *pname = ch->hs && ch->hs->peer_name[0] ? ch->hs->peer_name : node_text(sm, p);
    /* a failure of the transport's own layer (TLS) is that layer's, one line with its reason */
    char fault[300];
    bool layer = ch->s && OPS->stream_fault && OPS->stream_fault(ch->s, fault, sizeof fault);
    if (layer) {
        char both[sizeof fault + sizeof why + 4];
        /* a handshake cut short (closed, timed out) says how */
        snprintf(both, sizeof both, "%s%s%s", fault, err != DIST_ETLS ? ": " : "",
                 err != DIST_ETLS ? why : "");
        size_t n = strlen(both) < sizeof why ? strlen(both) : sizeof why - 1;
        memcpy(why, both, n);
        why[n] = 0;
        atomic_fetch_add(&sm->layer_failed, 1);
        sm_log(sm, DIST_LOG_WARNING, "event=%s_failed peer=%s node=%s reason=\"%s\"", OPS->name,
               ch->addr, pname, why);
    }
    if (phase != CH_UP) {
        atomic_fetch_add(&sm->hs_failed, 1);
        /* a failed lookup or dial: the peer's down says it; evictions are logged in bulk */
        if (!nok && phase != CH_CONNECTING && !layer && !ch->evicted)
            sm_log(sm, DIST_LOG_WARNING, "event=%s peer=%s node=%s reason=\"%s\"",
                   strncmp(why, "simultaneous", 12) ? "handshake_failed" : "simultaneous_connect",
                   ch->addr, pname, why);
    }
    bool carrying = p && slot(sm, p)->ch == ch;
    if (!carrying) {
        chan_close(ch);
        return;
    }
    OWN->peer_ref(OWN->ud, p); /* chan_close drops the channel's own reference */
    if (phase == CH_UP) OWN->detach(OWN->ud, p);
    slot(sm, p)->ch = NULL;
    chan_close(ch);
    if (nok && pstate(sm, p) == PEER_PENDING) {
        dist_sm_slot *sl = slot(sm, p);
        if (!sl->pend && (sl->pend = OPS->timer_new(sm->tr, on_pend_timeout, sl))) {
            sl->sm = sm;
            sl->self = p; /* the reference taken above is the slot's now */
            OPS->timer_start(sl->pend, (uint64_t)sm->cfg.setup_ms, 0);
            return;
        }
    }
    OWN->down(OWN->ud, p, why, err);
    OWN->peer_put(OWN->ud, p);
}

/* ================================================================ writing */

static void on_written(void *ud, dist_tr_stream *s, int status, void *req)
{
    dist_sm *sm = ud;
    dchan *ch = OPS->stream_ud(s);
    if (req) {
        for (hsw **l = &ch->hsw; *l; l = &(*l)->next)
            if (*l == req) {
                *l = ((hsw *)req)->next;
                atomic_fetch_add_explicit(&sm->bytes_out, ((hsw *)req)->len, memory_order_relaxed);
                free(req);
                break;
            }
    } else {
        ch->writing = false;
        dist__chunks_free(ch->inflight);
        ch->inflight = NULL;
        atomic_fetch_add_explicit(&sm->bytes_out, ch->inflight_bytes, memory_order_relaxed);
    }
    if (status < 0) {
        chan_fail(ch, "write failed", status);
        return;
    }
    if (!req && ch->phase == CH_UP) start_write(ch);
}

/* Writes a small buffer of the machine's own, in order with the other writes. */
static void raw_write(dchan *ch, const uint8_t *d, size_t n)
{
    dist_sm *sm = ch->sm;
    hsw *w = malloc(sizeof *w + n);
    if (!w) {
        chan_fail(ch, "out of memory", DIST_ENOMEM);
        return;
    }
    memcpy(w->data, d, n);
    w->len = n;
    w->next = ch->hsw;
    ch->hsw = w;
    dist_iov iov = {w->data, n};
    int rc = OPS->write(ch->s, &iov, 1, w);
    if (rc) {
        ch->hsw = w->next;
        free(w);
        chan_fail(ch, "write failed", rc);
    }
}

static void hs_flush(dchan *ch)
{
    if (ch->hs->out_len) {
        size_t n = ch->hs->out_len;
        ch->hs->out_len = 0;
        raw_write(ch, ch->hs->out, n);
    }
}

/* Writes what the peer has queued, unless a write is in flight (its completion comes back). */
static void start_write(dchan *ch)
{
    dist_sm *sm = ch->sm;
    if (ch->phase != CH_UP || ch->writing) return;
    size_t bytes;
    dist_chunk *q = OWN->take_output(OWN->ud, ch->peer, &bytes);
    if (!q) return;
    size_t n = 0;
    for (dist_chunk *c = q; c; c = c->next) n++;
    if (n > ch->niov) {
        dist_iov *ni = realloc(ch->iov, n * 2 * sizeof *ni);
        if (!ni) {
            dist__chunks_free(q);
            chan_fail(ch, "out of memory", DIST_ENOMEM);
            return;
        }
        ch->iov = ni;
        ch->niov = n * 2;
    }
    n = 0;
    for (dist_chunk *c = q; c; c = c->next) ch->iov[n++] = (dist_iov){c->data, c->len};
    ch->inflight = q;
    ch->inflight_bytes = bytes;
    ch->writing = true;
    int rc = OPS->write(ch->s, ch->iov, n, NULL);
    if (rc) {
        ch->writing = false;
        chan_fail(ch, "write failed", rc);
    }
}

/* ================================================================ reading */

static void on_alloc(void *ud, dist_tr_stream *s, uint8_t **buf, size_t *cap)
{
    dist_sm *sm = ud;
    dchan *ch = OPS->stream_ud(s);
    size_t want = RBUF_MIN;
    if (ch->phase == CH_UP && ch->rlen >= 4) {
        size_t flen = girder__get32(ch->rbuf);
        /* room for the whole frame, so that it is decoded where it was read */
        if (flen + 4 > ch->rlen && flen <= sm->cfg.max_message) want = flen + 4 - ch->rlen;
    }
    if (want < RBUF_MIN) want = RBUF_MIN;
    if (ch->rcap - ch->rlen < want) {
        size_t nc = ch->rlen + want;
        uint8_t *nb = realloc(ch->rbuf, nc);
        if (!nb) {
            *buf = NULL;
            *cap = 0;
            return;
        }
        ch->rbuf = nb;
        ch->rcap = nc;
    }
    *buf = ch->rbuf + ch->rlen;
    *cap = ch->rcap - ch->rlen;
}

/* Drops the first used bytes of the read buffer. Nothing moves while a frame is still arriving
** (used 0): a large frame read in pieces would otherwise be moved onto itself once per piece. */
static void consume(dchan *ch, size_t used)
{
    if (!used) return;
    memmove(ch->rbuf, ch->rbuf + used, ch->rlen - used);
    ch->rlen -= used;
}

/* Splits the read buffer into frames and hands them to the owner. */
static void frames(dchan *ch)
{
    dist_sm *sm = ch->sm;
    size_t pos = 0;
    while (ch->phase == CH_UP && ch->rlen - pos >= 4) {
        const uint8_t *p = ch->rbuf + pos;
        size_t flen = girder__get32(p);
        if (flen == 0) {
            atomic_fetch_add_explicit(&sm->ticks_in, 1, memory_order_relaxed);
            pos += 4;
            continue;
        }
        if (flen > sm->cfg.max_message) {
            atomic_fetch_add(&sm->proto, 1);
            sm_log(sm, DIST_LOG_ERROR,
                   "event=protocol_error node=%s reason=\"frame of %zu bytes over the limit\"",
                   node_text(sm, ch->peer), flen);
            chan_fail(ch, "oversized frame", DIST_EPROTO);
            return;
        }
        if (ch->rlen - pos - 4 < flen) break;
        const char *why = NULL;
        int rc = OWN->frame(OWN->ud, ch->peer, p + 4, flen, &why);
        pos += 4 + flen;
        if (rc < 0) {
            atomic_fetch_add(&sm->proto, 1);
            sm_log(sm, DIST_LOG_ERROR, "event=protocol_error node=%s reason=\"%s\"",
                   node_text(sm, ch->peer), why ? why : "?");
            chan_fail(ch, why ? why : "protocol error", rc);
            return;
        }
    }
    if (ch->phase != CH_UP) return;
    consume(ch, pos);
    if (ch->rcap > 4 * RBUF_MIN && ch->rlen < RBUF_MIN) {
        uint8_t *nb = realloc(ch->rbuf, RBUF_MIN);
        if (nb) {
            ch->rbuf = nb;
            ch->rcap = RBUF_MIN;
        }
    }
}

static void on_read(void *ud, dist_tr_stream *s, ssize_t n)
{
    dist_sm *sm = ud;
    dchan *ch = OPS->stream_ud(s);
    if (n < 0) {
        if (n == DIST_ENOMEM) {
            chan_fail(ch, "out of memory for the read buffer", DIST_ENOMEM);
        } else if (ch->phase == CH_HS && dist__hs_awaiting_ack(ch->hs)) {
            /* what a node with another cookie does after our challenge reply */
            chan_fail(ch,
                      "the peer closed the connection after our challenge reply "
                      "(its cookie differs from ours)",
                      DIST_EAUTH);
        } else if (n == DIST_ETLS) {
            chan_fail(ch, "TLS failure", DIST_ETLS); /* the transport's stream_fault says which */
        } else {
            chan_fail(ch, "connection closed by peer", DIST_ENOCONN);
        }
        return;
    }
    ch->rlen += (size_t)n;
    ch->bytes_in += (size_t)n;
    atomic_fetch_add_explicit(&sm->bytes_in, (uint64_t)n, memory_order_relaxed);
    if (ch->phase == CH_HS) {
        size_t used = 0;
        int rc = dist__hs_feed(ch->hs, ch->rbuf, ch->rlen, &used);
        hs_flush(ch);
        if (ch->phase == CH_CLOSED) return;
        consume(ch, used);
        if (rc == HS_FAIL) {
            chan_fail(ch, ch->hs->why, ch->hs->bad_cookie ? DIST_EAUTH : DIST_ENOCONN);
            return;
        }
        if (rc == HS_CONT) return;
        hs_done(ch);
    }
    if (ch->phase == CH_UP) frames(ch);
}

/* ================================================================ the handshake */

/*
** The acceptor's decision once the peer named itself. A peer that is up gets "alive" (the
** initiator, which knows its old connection is dead, answers true and the old one is replaced
** in hs_done). Two attempts at once: against our own outgoing attempt the greater name keeps its
** own (nok / ok_simultaneous, as the protocol says); against an older inbound attempt from the
** same node, the newer one wins (the older one is a reconnect's leftover).
*/
static hs_status on_decide(void *ud, dist_hs *hs)
{
    dchan *ch = ud;
    dist_sm *sm = ch->sm;
    if (sm->shut || !strcmp(hs->peer_name, sm->name)) return HS_ST_NOT_ALLOWED;
    /* The peer is not authenticated yet: a name never seen makes no atom now (anyone could fill
    ** the atom table with names); no peer can exist for it, so it is simply ok, and hs_done
    ** makes the atom and the peer once the cookie checked out. */
    term_t node = term_atom_existing(hs->peer_name, strlen(hs->peer_name));
    if (node == TERM_NONE) return HS_ST_OK;
    dist_peer *p = OWN->peer_get(OWN->ud, node, true);
    if (!p) return HS_ST_NOT_ALLOWED;
    ch->peer = p;
    if (pstate(sm, p) == PEER_UP) return HS_ST_ALIVE;
    hs_status r = HS_ST_OK;
    dchan *other = slot(sm, p)->ch;
    if (other && other != ch && other->outgoing) {
        if (strcmp(sm->name, hs->peer_name) > 0) {
            ch->peer = NULL;
            OWN->peer_put(OWN->ud, p);
            return HS_ST_NOK;
        }
        r = HS_ST_OK_SIMULTANEOUS;
    }
    unseat(sm, p);
    pend_stop(sm, p);
    slot(sm, p)->ch = ch;
    return r;
}

static void hs_done(dchan *ch)
{
    dist_sm *sm = ch->sm;
    dist_hs *hs = ch->hs;
    dist_peer *p = ch->peer;
    if (!p || slot(sm, p)->ch != ch || pstate(sm, p) != PEER_PENDING) {
        /*
        ** This channel was not (or is no longer) the one carrying its peer: the peer was up
        ** ("alive", answered true: that connection is dead and this one replaces it), or went
        ** down meanwhile (the old connection's close was seen during this handshake). Either
        ** way the new connection carries a fresh peer.
        */
        if (p && pstate(sm, p) == PEER_UP && slot(sm, p)->ch != ch) {
            OWN->peer_ref(OWN->ud, p);
            unseat(sm, p);
            OWN->down(OWN->ud, p, "replaced by a new connection from the same node", DIST_ENOCONN);
            OWN->peer_put(OWN->ud, p);
        }
        if (p) OWN->peer_put(OWN->ud, p);
        ch->peer = NULL;
        term_t node = term_atom(hs->role == HS_ACCEPTOR ? hs->peer_name : hs->expect_name);
        dist_peer *np = node == TERM_NONE ? NULL : OWN->peer_get(OWN->ud, node, true);
        if (!np || pstate(sm, np) != PEER_PENDING ||
            (slot(sm, np)->ch && slot(sm, np)->ch->phase == CH_UP)) {
            if (np) OWN->peer_put(OWN->ud, np);
            chan_fail(ch, "connection superseded during the handshake", DIST_ENOCONN);
            return;
        }
        ch->peer = np;
        unseat(sm, np);
        pend_stop(sm, np);
        slot(sm, np)->ch = ch;
        p = np;
    }
    if (hs->named && hs->role == HS_INITIATOR && (sm->flags & DFLAG_NAME_ME)) {
        /* the peer named us: before any pid is made for it */
        snprintf(sm->name, sizeof sm->name, "%s", hs->my_name);
        sm->creation = hs->my_creation;
        sm->flags &= ~DFLAG_NAME_ME;
        OWN->named(OWN->ud, sm->name, sm->creation);
        sm_log(sm, DIST_LOG_NOTICE, "event=named node=%s creation=%u by=%s", sm->name, sm->creation,
               hs->peer_name);
    }
    OPS->timer_stop(ch->timer);
    ch->phase = CH_UP;
    ch->last_in = ch->bytes_in;
    ch->missed = 0;
    ch->hidden = !(hs->flags & DFLAG_PUBLISHED);
    dist_up_info info = {hs->peer_name, hs->flags, hs->peer_creation, ch->s};
    OWN->up(OWN->ud, p, &info);
    ch->last_out = OWN->out_frames(OWN->ud, p);
    free(ch->hs);
    ch->hs = NULL;
    start_write(ch);
}

/* ================================================================ connecting and accepting */

static void on_connected(void *ud, dist_tr_stream *s, int status, int version, const char *why)
{
    dist_sm *sm = ud;
    dchan *ch = OPS->stream_ud(s);
    if (status) {
        chan_fail(ch, why ? why : "cannot connect", status);
        return;
    }
    OPS->stream_peer(s, ch->addr, sizeof ch->addr);
    ch->phase = CH_HS;
    OPS->timer_start(ch->timer, (uint64_t)sm->cfg.setup_ms, 0);
    dist__hs_start(ch->hs, node_text(sm, ch->peer), version);
    int rc = OPS->read_start(s);
    if (rc) {
        chan_fail(ch, "cannot read", rc);
        return;
    }
    hs_flush(ch);
}

void dist__sm_connect(dist_sm *sm, dist_peer *p)
{
    if (sm->shut || pstate(sm, p) != PEER_PENDING || slot(sm, p)->ch || slot(sm, p)->pend) return;
    dchan *ch = chan_new(sm, true);
    if (!ch) {
        OWN->down(OWN->ud, p, "out of memory", DIST_ENOMEM);
        return;
    }
    OWN->peer_ref(OWN->ud, p);
    ch->peer = p;
    slot(sm, p)->ch = ch;
    int rc = OPS->connect(sm->tr, node_text(sm, p), sm->cfg.setup_ms, ch, &ch->s);
    if (rc) chan_fail(ch, rc == DIST_ENAME ? "invalid node name" : "cannot connect", rc);
}

/* The address part of "ip:port" (the bytes before the last colon). */
static size_t ip_len(const char *addr)
{
    const char *c = strrchr(addr, ':');
    return c ? (size_t)(c - addr) : strlen(addr);
}

#define EVICT_LOG_GAP_NS (10 * 1000000000ull) /* at most one eviction line per 10 s */

/*
** A new inbound channel ch (the newest of sm->chans) is admitted; the inbound channels still in
** their handshake are then at most max_handshakes_per_addr from ch's address and
** max_handshakes in all: past either, the oldest such channel (of that address, else of all)
** is closed. A peer that opens connections and never finishes the handshake (no cookie needed)
** so holds a bounded number of descriptors and cannot lock others out: an honest handshake
** takes milliseconds, so it is rarely the oldest, and the newest always gets its chance.
*/
static void admit(dist_sm *sm, dchan *ch)
{
    size_t n = ip_len(ch->addr), same = 0, all = 0;
    dchan *old_same = NULL, *old_all = NULL;
    for (dchan *c = ch->next; c; c = c->next) { /* newest first */
        if (c->outgoing || c->phase != CH_HS) continue;
        all++;
        old_all = c;
        if (ip_len(c->addr) == n && memcmp(c->addr, ch->addr, n) == 0) {
            same++;
            old_same = c;
        }
    }
    dchan *victim = same >= sm->cfg.max_handshakes_per_addr ? old_same
                    : all >= sm->cfg.max_handshakes         ? old_all
                                                            : NULL;
    if (!victim) return;
    sm->evicted++;
    sm->evicted_unlogged++;
    uint64_t now = OPS->now_ns(sm->tr);
    if (!sm->evicted_logged_ns || now - sm->evicted_logged_ns >= EVICT_LOG_GAP_NS) {
        sm_log(sm, DIST_LOG_WARNING,
               "event=handshakes_evicted peer=%.*s reason=\"%s\" evicted=%llu evicted_total=%llu "
               "max_handshakes_per_addr=%u max_handshakes=%u",
               (int)ip_len(victim->addr), victim->addr,
               victim == old_same && same >= sm->cfg.max_handshakes_per_addr
                   ? "too many handshakes in progress from this address"
                   : "too many handshakes in progress",
               (unsigned long long)sm->evicted_unlogged, (unsigned long long)sm->evicted,
               sm->cfg.max_handshakes_per_addr, sm->cfg.max_handshakes);
        sm->evicted_logged_ns = now;
        sm->evicted_unlogged = 0;
    }
    victim->evicted = true;
    chan_fail(victim, "evicted: too many handshakes in progress", GIRDER_EBUSY);
}

static void on_accepted(void *ud, dist_tr_stream *s)
{
    dist_sm *sm = ud;
    dchan *ch = sm->shut ? NULL : chan_new(sm, false);
    if (!ch) {
        OPS->close(s);
        return;
    }
    ch->s = s;
    OPS->stream_set_ud(s, ch);
    OPS->stream_peer(s, ch->addr, sizeof ch->addr);
    admit(sm, ch);
    ch->hs->decide = on_decide;
    int rc = OPS->read_start(s);
    if (rc) chan_fail(ch, "cannot read", rc);
}

/* ================================================================ ticks */

/*
** Every ticktime/intensity: a channel that read nothing for `intensity` checks in a row is down
** (net_tick_timeout), as dist_util's ticker decides; one that wrote nothing since the last check
** (or, hidden, read nothing) sends a tick.
*/
static void on_tick(void *ud)
{
    dist_sm *sm = ud;
    for (dchan *ch = sm->chans, *n; ch; ch = n) {
        n = ch->next;
        if (ch->phase != CH_UP) continue;
        /* a channel we stopped reading cannot see the peer's ticks: not counted as silence */
        bool read = ch->bytes_in != ch->last_in || ch->paused;
        if (!read) {
            if (++ch->missed >= sm->cfg.tick_intensity) {
                sm_log(sm, DIST_LOG_WARNING, "event=net_tick_timeout node=%s ticktime_ms=%u",
                       node_text(sm, ch->peer), sm->cfg.ticktime_ms);
                chan_fail(ch, "net_tick_timeout", DIST_ETIMEOUT);
                continue;
            }
        } else {
            ch->missed = 0;
            ch->last_in = ch->bytes_in;
        }
        uint64_t out = OWN->out_frames(OWN->ud, ch->peer);
        if ((out == ch->last_out && !ch->writing) || (ch->hidden && !read)) {
            OWN->tick(OWN->ud, ch->peer);
            atomic_fetch_add_explicit(&sm->ticks_out, 1, memory_order_relaxed);
        }
        ch->last_out = OWN->out_frames(OWN->ud, ch->peer);
    }
}

/* ================================================================ the rest of the interface */

static void on_wake(void *ud)
{
    dist_sm *sm = ud;
    OWN->service(OWN->ud);
}

static void on_published(void *ud, int status, uint32_t creation)
{
    dist_sm *sm = ud;
    OWN->published(OWN->ud, status, creation);
}

dist_sm *dist__sm_new(const dist_sm_config *cfg, const dist_sm_owner *owner, dist_tr *tr)
{
    dist_sm *sm = calloc(1, sizeof *sm);
    if (!sm) return NULL;
    sm->cfg = *cfg;
    if (!sm->cfg.tick_intensity) sm->cfg.tick_intensity = 4;
    if (sm->cfg.setup_ms <= 0) sm->cfg.setup_ms = 7000;
    if (!sm->cfg.max_message) sm->cfg.max_message = DIST__DEFAULT_MAX_MESSAGE;
    if (!sm->cfg.max_handshakes_per_addr) sm->cfg.max_handshakes_per_addr = 32;
    if (!sm->cfg.max_handshakes) sm->cfg.max_handshakes = 256;
    snprintf(sm->name, sizeof sm->name, "%s", cfg->name);
    snprintf(sm->cookie, sizeof sm->cookie, "%s", cfg->cookie);
    sm->cfg.name = sm->name;
    sm->cfg.cookie = NULL;
    sm->flags = cfg->flags;
    sm->creation = cfg->creation;
    sm->own = *owner;
    sm->tr = tr;
    dist_tr_user u = {sm,      on_accepted, on_connected, on_alloc,
                      on_read, on_written,  on_wake,      on_published};
    tr->user = u;
    sm->ticker = OPS->timer_new(tr, on_tick, sm);
    if (!sm->ticker) {
        free(sm);
        return NULL;
    }
    uint64_t iv = sm->cfg.ticktime_ms / sm->cfg.tick_intensity;
    if (!iv) iv = 1;
    OPS->timer_start(sm->ticker, iv, iv);
    return sm;
}

void dist__sm_free(dist_sm *sm)
{
    free(sm);
}

dist_tr *dist__sm_transport(dist_sm *sm)
{
    return sm->tr;
}

void dist__sm_set_identity(dist_sm *sm, const char *name, uint32_t creation, uint64_t flags)
{
    if (name) snprintf(sm->name, sizeof sm->name, "%s", name);
    sm->creation = creation;
    sm->flags = flags;
}

void dist__sm_close(dist_sm *sm, dist_peer *p, const char *why)
{
    OWN->peer_ref(OWN->ud, p);
    pend_stop(sm, p);
    unseat(sm, p);
    OWN->down(OWN->ud, p, why, DIST_ENOCONN);
    OWN->peer_put(OWN->ud, p);
}

void dist__sm_pause(dist_sm *sm, dist_peer *p, bool pause)
{
    dchan *ch = slot(sm, p)->ch;
    if (!ch || ch->phase != CH_UP || ch->paused == pause) return;
    ch->paused = pause;
    if (pause) {
        OPS->read_stop(ch->s);
    } else {
        int rc = OPS->read_start(ch->s);
        if (rc) chan_fail(ch, "cannot read", rc);
    }
}

void dist__sm_kick(dist_sm *sm, dist_peer *p)
{
    dchan *ch = slot(sm, p)->ch;
    if (ch) start_write(ch);
}

bool dist__sm_writing(dist_sm *sm)
{
    for (dchan *ch = sm->chans; ch; ch = ch->next)
        if (ch->phase == CH_UP && ch->writing) return true;
    return false;
}

void dist__sm_log_unwritten(dist_sm *sm)
{
    for (dchan *ch = sm->chans; ch; ch = ch->next)
        if (ch->phase == CH_UP && ch->writing)
            sm_log(
                sm, DIST_LOG_WARNING,
                "event=stop_unwritten node=%s unfinished_write_bytes=%zu reason=\"the stop's drain "
                "time ran out\"",
                node_text(sm, ch->peer), ch->inflight_bytes);
}

void dist__sm_shutdown(dist_sm *sm)
{
    sm->shut = true;
    while (sm->chans) {
        dchan *ch = sm->chans;
        if (ch->peer && slot(sm, ch->peer)->ch == ch) {
            if (ch->phase == CH_UP) OWN->detach(OWN->ud, ch->peer);
            slot(sm, ch->peer)->ch = NULL;
        }
        chan_close(ch);
    }
    if (sm->ticker) OPS->timer_free(sm->ticker);
    sm->ticker = NULL;
}

void dist__sm_wake(dist_sm *sm)
{
    OPS->wake(sm->tr);
}

void dist__sm_stats(dist_sm *sm, dist_sm_stats *o)
{
    o->bytes_in = atomic_load(&sm->bytes_in);
    o->bytes_out = atomic_load(&sm->bytes_out);
    o->ticks_in = atomic_load(&sm->ticks_in);
    o->ticks_out = atomic_load(&sm->ticks_out);
    o->handshakes_failed = atomic_load(&sm->hs_failed);
    o->protocol_errors = atomic_load(&sm->proto);
    o->layer_failures = atomic_load(&sm->layer_failed);
}
