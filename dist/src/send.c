/* dist sending: libnode signals to control messages, encoded in the sender's thread, and queued. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

/* ================================================================ control messages out */

/* A control message as the elements of its tuple, borrowed from the signal (or immediates and
** atoms), with its payload (borrowed, TERM_NONE: none); made[] holds what was made here (a
** ghost sender pid, a large unlink id), freed by ctlv_done. Encoded without building the tuple
** (dist__frame_encode_v): building, dup'ing and freeing it cost ~600 instructions a message. */
typedef struct ctlv {
    size_t n; /* 0: no wire form */
    term_t e[5];
    term_t payload;
    term_t made[2];
    size_t nmade;
} ctlv;

static void ctlv_done(ctlv *v)
{
    for (size_t i = 0; i < v->nmade; i++) term_free(v->made[i]);
    v->nmade = 0;
}

/* A term made for v (kept in made[] until ctlv_done); false when it could not be made. */
static bool made(ctlv *v, term_t t, term_t *slot)
{
    if (t == TERM_NONE) return false;
    v->made[v->nmade++] = t;
    *slot = t;
    return true;
}

static bool sender(ctlv *v, term_t from, term_t *slot)
{
    if (term_is_pid(from)) return (*slot = from), true;
    return made(v, term_pid(dist__st->node, 0, 0, dist__st->creation), slot);
}

/* The name in {Name, Node}, or the term itself. */
static term_t proc_of(term_t to)
{
    if (term_is_tuple(to) && term_tuple_arity(to) == 2) return term_tuple_elem(to, 0);
    return to;
}

/*
** The control message (and payload) for a libnode signal given the negotiated flags, its terms
** borrowed from s. False on ENOMEM. A message to an alias for a peer without DFLAG_ALIAS has no
** wire form: true with v->n = 0 (the message is dropped, as Erlang drops it).
*/
static bool ctl_elems(const nd_signal *s, uint64_t fl, ctlv *v)
{
    term_t *e = v->e;
    bool pl = (fl & DFLAG_EXIT_PAYLOAD) != 0;
    v->n = 0;
    v->nmade = 0;
    v->payload = TERM_NONE;
    switch (s->kind) {
    case ND_SIG_MSG:
        v->payload = s->payload;
        if (term_is_ref(s->to)) {
            if (fl & DFLAG_ALTACT_SIG) { /* OTP 28+: ALIAS_SEND is deprecated there */
                e[0] = term_small(DOP_ALTACT_SIG_SEND);
                e[1] = term_small(ALTACT_ALIAS);
                if (!sender(v, s->from, &e[2])) return false;
                e[3] = s->to;
                v->n = 4;
            } else if (fl & DFLAG_ALIAS) {
                e[0] = term_small(DOP_ALIAS_SEND);
                if (!sender(v, s->from, &e[1])) return false;
                e[2] = s->to;
                v->n = 3;
            } else {
                v->payload = TERM_NONE;
            }
            return true;
        }
        if (term_is_tuple(s->to)) {
            e[0] = term_small(DOP_REG_SEND);
            if (!sender(v, s->from, &e[1])) return false;
            e[2] = dist__a.empty;
            e[3] = proc_of(s->to);
            v->n = 4;
        } else if ((fl & DFLAG_SEND_SENDER) && term_is_pid(s->from)) {
            e[0] = term_small(DOP_SEND_SENDER);
            e[1] = s->from;
            e[2] = s->to;
            v->n = 3;
        } else {
            e[0] = term_small(DOP_SEND);
            e[1] = dist__a.empty;
            e[2] = s->to;
            v->n = 3;
        }
        return true;
    case ND_SIG_EXIT:
    case ND_SIG_EXIT2: {
        bool ex = s->kind == ND_SIG_EXIT;
        if (!sender(v, s->from, &e[1])) return false;
        e[2] = s->to;
        if (pl) {
            e[0] = term_small(ex ? DOP_PAYLOAD_EXIT : DOP_PAYLOAD_EXIT2);
            v->payload = s->payload;
            v->n = 3;
        } else {
            e[0] = term_small(ex ? DOP_EXIT : DOP_EXIT2);
            e[3] = s->payload;
            v->n = 4;
        }
        return true;
    }
    case ND_SIG_LINK:
        e[0] = term_small(DOP_LINK);
        if (!sender(v, s->from, &e[1])) return false;
        e[2] = s->to;
        v->n = 3;
        return true;
    case ND_SIG_UNLINK_ID:
    case ND_SIG_UNLINK_ID_ACK:
        e[0] = term_small(s->kind == ND_SIG_UNLINK_ID ? DOP_UNLINK_ID : DOP_UNLINK_ID_ACK);
        if (!made(v, term_uint(s->id ? s->id : 1), &e[1])) return false;
        if (!sender(v, s->from, &e[2])) return false;
        e[3] = s->to;
        v->n = 4;
        return true;
    case ND_SIG_MONITOR:
    case ND_SIG_DEMONITOR:
        e[0] = term_small(s->kind == ND_SIG_MONITOR ? DOP_MONITOR_P : DOP_DEMONITOR_P);
        if (!sender(v, s->from, &e[1])) return false;
        e[2] = proc_of(s->to);
        e[3] = s->ref;
        v->n = 4;
        return true;
    case ND_SIG_DOWN:
        e[1] = proc_of(s->from);
        e[2] = s->to;
        e[3] = s->ref;
        if (pl) {
            e[0] = term_small(DOP_PAYLOAD_MONITOR_P_EXIT);
            v->payload = s->payload;
            v->n = 4;
        } else {
            e[0] = term_small(DOP_MONITOR_P_EXIT);
            e[4] = s->payload;
            v->n = 5;
        }
        return true;
    }
    return false;
}

/*
** Builds the control tuple (and payload) for a libnode signal given the negotiated flags.
** Returns false on ENOMEM. A message to an alias for a peer without DFLAG_ALIAS has no wire
** form: true with *ctl = TERM_NONE (the message is dropped, as Erlang drops it).
*/
bool dist__build_ctl(const nd_signal *s, uint64_t fl, term_t *ctl, term_t *payload)
{
    ctlv v;
    if (!ctl_elems(s, fl, &v)) {
        ctlv_done(&v);
        return false;
    }
    *ctl = *payload = TERM_NONE;
    if (v.n == 0) return true;
    term_t el[5];
    for (size_t i = 0; i < v.n; i++) el[i] = term_dup(v.e[i]);
    term_t c = term_tuple(v.n, el);
    ctlv_done(&v);
    if (c == TERM_NONE) return false;
    *ctl = c;
    *payload = term_dup(v.payload);
    return true;
}

/* Each sending thread encodes into its own buffer, kept between calls (and freed with the
** thread through a key destructor). */
static _Thread_local etf_buf tls_buf;

static _Thread_local bool tls_keyed;

static pthread_key_t tls_key;

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;

static void tls_destroy(void *p)
{
    etf_buf_free(p);
}

static void tls_key_init(void)
{
    pthread_key_create(&tls_key, tls_destroy);
}

static etf_buf *tls_get(void)
{
    if (!tls_keyed) {
        pthread_once(&tls_once, tls_key_init);
        pthread_setspecific(tls_key, &tls_buf);
        tls_keyed = true;
    }
    return &tls_buf;
}

static void tls_trim(void)
{
    tls_buf.len = 0;
    if (tls_buf.cap > (1u << 20)) etf_buf_free(&tls_buf);
}

int dist__encode(dconn *c, term_t ctl, term_t payload, uint64_t fl, etf_buf *b)
{
    uint64_t seq = atomic_fetch_add(&c->seq, 1) + 1;
    return dist__frame_encode(ctl, payload, fl, dist__st->frag_size, seq, b);
}

/* The frame of v (its terms borrowed) into b. */
static int encode_v(dconn *c, const ctlv *v, uint64_t fl, etf_buf *b)
{
    uint64_t seq = atomic_fetch_add(&c->seq, 1) + 1;
    return dist__frame_encode_v(v->e, v->n, v->payload, fl, dist__st->frag_size, seq, b);
}

/*
** A message's encoding into b (empty). With the atom cache header: the payload, after CTL_GAP
** bytes left for the frame's length, header and control message, which dist__acache_frame
** writes under the lock (*gap = CTL_GAP); the payload is so encoded once, where it is queued
** from, and never walked again. A payload to be fragmented becomes the fragments around it
** (dist__frame_fragment: the first fragment's bytes are not moved), which start at *from
** (*gap = 0). Otherwise the whole frame from 0 (*gap = *from = 0).
*/
#define CTL_GAP 512
static int encode_msg(dconn *c, const ctlv *v, uint64_t fl, etf_buf *b, size_t *gap, size_t *from)
{
    *gap = *from = 0;
    if (fl & DFLAG_DIST_HDR_ATOM_CACHE) {
        int rc = etf_buf_reserve(b, CTL_GAP);
        if (rc) return rc;
        b->len = CTL_GAP;
        if (v->payload != TERM_NONE &&
            (rc = etf_encode(v->payload, ETF_ENC_UTF8_ATOMS | ETF_ENC_NO_VERSION, b))) {
            b->len = 0;
            return rc;
        }
        size_t plen = b->len - CTL_GAP, frag = dist__st->frag_size;
        if (!((fl & DFLAG_FRAGMENTS) && frag && plen > frag)) {
            *gap = CTL_GAP;
            return 0;
        }
        uint64_t seq = atomic_fetch_add(&c->seq, 1) + 1;
        rc = dist__frame_fragment(v->e, v->n, frag, seq, b, CTL_GAP, from);
        if (rc != DIST_EINVAL) {
            if (rc) b->len = 0;
            return rc;
        }
        b->len = 0; /* a control message too large for the gap: the whole frame again */
    }
    return encode_v(c, v, fl, b);
}

/* ================================================================ tracking */

/* Records what a signal leaving this node changes in the links/monitors over c (mu held). */
static void track_out(dconn *c, const nd_signal *s)
{
    switch (s->kind) {
    case ND_SIG_LINK:
        if (term_is_pid(s->from)) dist__links_add(&c->links, s->from, s->to);
        break;
    case ND_SIG_UNLINK_ID:
    case ND_SIG_EXIT:
        if (term_is_pid(s->from)) dist__links_del(&c->links, s->from, s->to);
        break;
    case ND_SIG_MONITOR:
        if (term_is_pid(s->from))
            dist__mons_add(&c->mons, s->ref, MON_OUT, s->from, s->to, TERM_NONE);
        break;
    case ND_SIG_DEMONITOR:
    case ND_SIG_DOWN:
        dist__mon_free(dist__mons_take(&c->mons, s->ref));
        break;
    default:
        break;
    }
}

/* ================================================================ the hook */

enum { SEND_RETRY = 1 };

/* The name a monitor by name was set up with (DOWN reports it as FromProc), or TERM_NONE. */
static term_t monitor_name(dconn *c, term_t ref)
{
    term_t name = TERM_NONE;
    pthread_mutex_lock(&c->mu);
    dmonrec *r = dist__mons_find(&c->mons, ref);
    if (r && r->dir == MON_IN && term_is_atom(r->name)) name = r->name;
    pthread_mutex_unlock(&c->mu);
    return name;
}

static int send_sig(dconn *c, const nd_signal *s0)
{
    nd_signal named;
    const nd_signal *s = s0;
    if (s0->kind == ND_SIG_DOWN) {
        term_t name = monitor_name(c, s0->ref);
        if (name != TERM_NONE) {
            named = *s0;
            named.from = name;
            s = &named;
        }
    }
    dist__busy_wait(c, s);
    etf_buf *b = tls_get();
    ctlv v = {0};
    uint64_t fl = 0;
    size_t gap = 0;  /* > 0: b holds the payload from gap on, the rest is written under the lock */
    size_t from = 0; /* gap == 0: b holds complete frames from here on */
    bool encoded = false;
    int rc = 0;
    if (atomic_load(&c->state) == C_UP) {
        fl = atomic_load(&c->flags);
        bool ok = ctl_elems(s, fl, &v);
        if (ok && v.n) rc = encode_msg(c, &v, fl, b, &gap, &from);
        if (!ok || !v.n || rc) {
            ctlv_done(&v);
            tls_trim();
            return !ok ? DIST_ENOMEM : rc;
        }
        encoded = true;
    }
    bool service = false;
    pthread_mutex_lock(&c->mu);
    int state = atomic_load(&c->state);
    if (state == C_DOWN) {
        pthread_mutex_unlock(&c->mu);
        ctlv_done(&v);
        tls_trim();
        return SEND_RETRY;
    }
    if (state == C_UP) {
        if (!encoded) {
            fl = atomic_load(&c->flags);
            if (!ctl_elems(s, fl, &v)) {
                rc = DIST_ENOMEM;
            } else if (v.n) {
                rc = encode_msg(c, &v, fl, b, &gap, &from);
                encoded = true;
            }
        }
        size_t off = from;
        if (!rc && encoded && gap) {
            long at = dist__acache_frame(&c->acache, v.e, v.n, b, gap);
            if (at >= 0) {
                off = (size_t)at;
            } else { /* no room before the payload, or no memory: the whole frame again */
                gap = 0;
                b->len = 0;
                rc = encode_v(c, &v, fl, b);
            }
        }
        /* (fragments made around the payload, from > 0, are not rewritten) */
        if (!rc && encoded && !gap && !from && (fl & DFLAG_DIST_HDR_ATOM_CACHE))
            rc = dist__acache_apply(&c->acache, b);
        if (!rc && encoded) rc = dist__q_send(c, b, off, &service);
    } else {
        psig *p = calloc(1, sizeof *p);
        if (!p) {
            rc = DIST_ENOMEM;
        } else {
            p->sig = *s;
            p->sig.from = term_dup(s->from);
            p->sig.to = term_dup(s->to);
            p->sig.payload = term_dup(s->payload);
            p->sig.ref = term_dup(s->ref);
            dist__count_add(&c->pbytes, sizeof *p + term_memory(s->payload));
            if (c->ptail)
                c->ptail->next = p;
            else
                c->phead = p;
            c->ptail = p;
        }
    }
    if (!rc) track_out(c, s);
    pthread_mutex_unlock(&c->mu);
    ctlv_done(&v);
    tls_trim();
    if (service) dist__service(c);
    if (!rc) {
        atomic_fetch_add_explicit(&dist__st->st_msgs_out, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->m_msgs_out, 1, memory_order_relaxed);
    }
    return rc;
}

static term_t target_node(const nd_signal *s)
{
    term_t to = s->to;
    if (term_is_tuple(to) && term_tuple_arity(to) == 2) return term_tuple_elem(to, 1);
    term_pid_info pi;
    if (term_pid_get(to, &pi) == 0) return pi.node;
    term_ref_info ri;
    if (term_ref_get(to, &ri) == 0) return ri.node; /* an alias */
    return TERM_NONE;
}

/* A pid of this node's name but another creation: an old incarnation, so noproc. */
static int stale_local(const nd_signal *s)
{
    if (!term_is_pid(s->from)) return 0;
    nd_signal a = {0};
    a.from = s->to;
    a.to = s->from;
    a.payload = dist__a.noproc;
    if (s->kind == ND_SIG_LINK) {
        a.kind = ND_SIG_EXIT;
    } else if (s->kind == ND_SIG_MONITOR) {
        a.kind = ND_SIG_DOWN;
        a.ref = s->ref;
    } else {
        return 0;
    }
    nd_dist_deliver(&a);
    return 0;
}

static int hook_inside(const nd_signal *s, bool autoconnect)
{
    term_t node = target_node(s);
    if (!term_is_atom(node)) return 0;
    if (node == dist__st->node) return stale_local(s);
    for (int attempt = 0; attempt < 2; attempt++) {
        dconn *c = dist__conn_get(node, autoconnect);
        if (!c) return autoconnect ? DIST_ENOCONN : 0;
        int rc = send_sig(c, s);
        dist__conn_put(c);
        if (rc != SEND_RETRY) return rc;
    }
    return autoconnect ? DIST_ENOCONN : 0;
}

/* libnode's hook: a signal to a process of another node, from any scheduler thread. */
int dist__hook(void *ud, const nd_signal *s)
{
    (void)ud;
    bool autoconnect = s->kind == ND_SIG_MSG || s->kind == ND_SIG_LINK ||
                       s->kind == ND_SIG_MONITOR || s->kind == ND_SIG_EXIT2;
    if (!dist__enter()) return autoconnect ? DIST_ENOCONN : 0; /* stopping: node-down is done */
    int rc = hook_inside(s, autoconnect);
    dist__leave();
    return rc;
}

/* Queues a control message built here (I/O thread or sys processes); consumes ctl, payload. */
int dist__send_ctl(dconn *c, term_t ctl, term_t payload)
{
    int rc = 0;
    bool service = false;
    pthread_mutex_lock(&c->mu);
    int state = atomic_load(&c->state);
    if (state == C_UP) {
        etf_buf b = {0};
        rc = dist__encode(c, ctl, payload, atomic_load(&c->flags), &b);
        if (!rc && (atomic_load(&c->flags) & DFLAG_DIST_HDR_ATOM_CACHE))
            rc = dist__acache_apply(&c->acache, &b);
        if (!rc) rc = dist__q_send(c, &b, 0, &service);
        etf_buf_free(&b);
        term_free(ctl);
        term_free(payload);
    } else if (state == C_PENDING) {
        psig *p = calloc(1, sizeof *p);
        if (p) {
            p->ctl = ctl;
            p->payload = payload;
            dist__count_add(&c->pbytes, sizeof *p + term_memory(payload));
            if (c->ptail)
                c->ptail->next = p;
            else
                c->phead = p;
            c->ptail = p;
        } else {
            term_free(ctl);
            term_free(payload);
            rc = DIST_ENOMEM;
        }
    } else {
        term_free(ctl);
        term_free(payload);
        rc = DIST_ENOCONN;
    }
    pthread_mutex_unlock(&c->mu);
    if (service) dist__service(c);
    return rc;
}
