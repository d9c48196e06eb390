/* Selective receive: scan the private inner queue in arrival order, wait for more, time out. */
#include "nd_int.h"
#include "girder_deadline.h"

static bool accepts(const nd_recv *r, term_t msg, int *which)
{
    if (r->pred) {
        *which = 0;
        return r->pred(msg, r->ud);
    }
    if (!r->nclauses) {
        *which = 0;
        return true;
    }
    for (size_t i = 0; i < r->nclauses; i++)
        if (term_match(r->clauses[i].pat, msg, r->clauses[i].vars)) {
            *which = (int)i;
            return true;
        }
    return false;
}

/* Takes the accepted message cur (after prev, or first) out of p's inner queue into *msg and
** returns which. */
static inline int take(nd_proc *p, nd_sig *prev, nd_sig *cur, uint64_t scanned, bool use_mark,
                       int which, term_t *msg)
{
    if (prev)
        prev->next = cur->next;
    else
        p->in_head = cur->next;
    if (p->in_tail == cur) p->in_tail = prev;
    if (p->mark == cur) p->mark = prev;
    if (use_mark) {
        p->flags &= (uint8_t)~PF_HAS_MARK;
        p->mark = NULL;
    }
    atomic_store_explicit(&p->nmsg, atomic_load_explicit(&p->nmsg, memory_order_relaxed) - 1,
                          memory_order_relaxed);
    *msg = cur->payload;
    cur->payload = TERM_NONE;
    if (nd__tracing()) nd__evp(ND_EV_RECEIVE, ND_RECV_MATCHED, p, scanned, cur->tid);
    nd__sig_free(cur);
    /* counted on the scheduler p runs on (no thread-local: p may have moved) */
    nd_sched *rs = &nd__rt.scheds[p->sched_idx];
    atomic_store_explicit(&rs->cnt[CNT_MSG_RECV],
                          atomic_load_explicit(&rs->cnt[CNT_MSG_RECV], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (--p->reds <= 0) nd_yield();
    return which;
}

/*
** The scan keeps `prev` (the last rejected node) across waits, so each message is looked at
** once per receive call: new arrivals are appended after it. With from_mark the scan starts
** after the node remembered by nd_recv_mark(), skipping everything older.
*/
int nd_receive_ex(const nd_recv *r, term_t *msg)
{
    nd_proc *p = nd__self();
    if (!p) return ND_ENOTPROC;
    /*
    ** A timeout starts as relative (rel): the first wait hands it to the scheduler, which gives
    ** it a deadline only if it arms it (sched.c: nd__wait), so a wait that a reply ends soon
    ** reads no clock (a clock read costs ~100 ns under KVM). If that wait ends before being
    ** armed and the receive has to wait again, the timeout restarts from there as a deadline.
    */
    enum { T_REL, T_REL_WAITED, T_DEADLINE } tstate = T_REL;
    uint64_t deadline = 0;
    nd__drain(p);
    nd_sig *prev = NULL;
    bool use_mark = r->from_mark && (p->flags & PF_HAS_MARK);
    if (use_mark) prev = p->mark;
    nd_sig *cur = prev ? prev->next : p->in_head;
    uint64_t scanned = 0; /* messages looked at (trace) */
    for (;;) {
        for (; cur; prev = cur, cur = cur->next) {
            int which;
            scanned++;
            if (!accepts(r, cur->payload, &which)) continue;
            return take(p, prev, cur, scanned, use_mark, which, msg);
        }
        if (r->timeout_ms < 0) {
            nd__wait(p, ND__NO_DEADLINE, 0);
        } else {
            uint64_t rel = (uint64_t)r->timeout_ms * 1000000u;
            if (tstate == T_REL_WAITED) {
                deadline = nd__now() + rel;
                tstate = T_DEADLINE;
            }
            if (rel == 0 || (tstate == T_DEADLINE && nd__now() >= deadline)) {
                if (nd__tracing()) nd__evp(ND_EV_RECEIVE, ND_RECV_TIMEOUT, p, scanned, 0);
                if (--p->reds <= 0) nd_yield();
                return ND_ETIMEOUT;
            }
            if (tstate == T_DEADLINE) {
                nd__wait(p, deadline, 0);
            } else {
                uint64_t d = nd__wait(p, 0, rel);
                tstate = T_REL_WAITED;
                if (d != ND__NO_DEADLINE) { /* armed: the deadline it got */
                    deadline = d;
                    tstate = T_DEADLINE;
                }
            }
        }
        nd__drain(p);
        cur = prev ? prev->next : p->in_head;
    }
}

/* Any message: the first in the queue, waiting for one (wait) or not (a zero timeout). Needs
** none of nd_receive_ex's scan, clause or timeout state: a ring's hop, a server's poll before
** it hibernates. */
static inline int receive_any(nd_proc *p, bool wait, term_t *msg)
{
    for (;;) {
        nd__drain(p);
        if (p->in_head) return take(p, NULL, p->in_head, 1, false, 0, msg);
        if (!wait) {
            if (nd__tracing()) nd__evp(ND_EV_RECEIVE, ND_RECV_TIMEOUT, p, 0, 0);
            if (--p->reds <= 0) nd_yield();
            return ND_ETIMEOUT;
        }
        nd__wait(p, ND__NO_DEADLINE, 0);
    }
}

int nd_receive(int64_t timeout_ms, term_t *msg)
{
    if (timeout_ms <= 0) {
        nd_proc *p = nd__self();
        if (p) return receive_any(p, timeout_ms < 0, msg);
    }
    nd_recv r = {NULL, NULL, NULL, 0, timeout_ms, false};
    return nd_receive_ex(&r, msg);
}

int nd_receive_if(nd_pred_fn pred, void *ud, int64_t timeout_ms, term_t *msg)
{
    nd_recv r = {pred, ud, NULL, 0, timeout_ms, false};
    return nd_receive_ex(&r, msg);
}

int nd_receive_match(const nd_clause *clauses, size_t n, int64_t timeout_ms, term_t *msg)
{
    nd_recv r = {NULL, NULL, clauses, n, timeout_ms, false};
    if (n == 0) return ND_EINVAL;
    return nd_receive_ex(&r, msg);
}

void nd_recv_mark(void)
{
    nd_proc *p = nd__self();
    if (!p) return;
    nd__drain(p);
    p->mark = p->in_tail;
    p->flags |= PF_HAS_MARK;
}

static bool never(term_t m, void *ud)
{
    return false;
}

void nd_sleep(int64_t ms)
{
    nd_proc *p = nd__self();
    if (!p) {
        struct timespec ts = girder__ts_of_ms(ms);
        nanosleep(&ts, NULL);
        return;
    }
    term_t m;
    nd_receive_if(never, NULL, ms, &m);
}

void nd_assert_match(const term_pattern *pat, term_t t, term_t *vars)
{
    if (term_match(pat, t, vars)) return;
    nd_exit(term_tuplev(2, nd__a_badmatch, term_dup(t)));
}
