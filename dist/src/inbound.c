/* dist inbound: control messages from a peer dispatched to local processes. */
#include "core.h"

#include <stdlib.h>

/* ================================================================ incoming signals */

static bool local_pid(term_t t)
{
    term_pid_info pi;
    return term_pid_get(t, &pi) == 0 && pi.node == dist__st->node;
}

/* Dispatches one control message from c's peer (I/O thread). Consumes ctl. */
void dist__deliver(dconn *c, dist_ctl *m)
{
    nd_signal s = {0};
    s.from = m->from;
    s.to = m->to;
    s.payload = m->payload;
    s.ref = m->ref;
    s.id = m->id;
    atomic_fetch_add_explicit(&dist__st->st_msgs_in, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->m_msgs_in, 1, memory_order_relaxed);
    switch (m->op) {
    case DOP_SEND:
        if (!local_pid(m->to)) break;
        s.kind = ND_SIG_MSG;
        nd_dist_deliver(&s);
        break;
    case DOP_REG_SEND:
        s.kind = ND_SIG_MSG;
        nd_dist_deliver(&s);
        break;
    case DOP_LINK:
        if (!local_pid(m->to)) break;
        pthread_mutex_lock(&c->mu);
        dist__links_add(&c->links, m->to, m->from);
        pthread_mutex_unlock(&c->mu);
        s.kind = ND_SIG_LINK;
        nd_dist_deliver(&s);
        break;
    case DOP_UNLINK_ID:
    case DOP_EXIT:
        if (!local_pid(m->to)) break;
        pthread_mutex_lock(&c->mu);
        dist__links_del(&c->links, m->to, m->from);
        pthread_mutex_unlock(&c->mu);
        s.kind = m->op == DOP_EXIT ? ND_SIG_EXIT : ND_SIG_UNLINK_ID;
        nd_dist_deliver(&s);
        break;
    case DOP_UNLINK_ID_ACK:
        if (!local_pid(m->to)) break;
        s.kind = ND_SIG_UNLINK_ID_ACK;
        nd_dist_deliver(&s);
        break;
    case DOP_EXIT2:
        if (!local_pid(m->to)) break;
        s.kind = ND_SIG_EXIT2;
        nd_dist_deliver(&s);
        break;
    case DOP_MONITOR_P: {
        term_t pid = term_is_atom(m->to) ? nd_whereis(m->to) : term_dup(m->to);
        if (pid == TERM_NONE || !local_pid(pid)) {
            term_t ctl = term_tuplev(4, term_small(DOP_PAYLOAD_MONITOR_P_EXIT), term_dup(m->to),
                                     term_dup(m->from), term_dup(m->ref));
            if (!(atomic_load(&c->flags) & DFLAG_EXIT_PAYLOAD)) {
                term_free(ctl);
                ctl = term_tuplev(5, term_small(DOP_MONITOR_P_EXIT), term_dup(m->to),
                                  term_dup(m->from), term_dup(m->ref), dist__a.noproc);
                dist__send_ctl(c, ctl, TERM_NONE);
            } else {
                dist__send_ctl(c, ctl, dist__a.noproc);
            }
            term_free(pid);
            break;
        }
        pthread_mutex_lock(&c->mu);
        /* by name: the DOWN must name the process as the monitor did ({Name, Node}) */
        dist__mons_add(&c->mons, m->ref, MON_IN, pid, m->from,
                       term_is_atom(m->to) ? m->to : TERM_NONE);
        pthread_mutex_unlock(&c->mu);
        s.kind = ND_SIG_MONITOR;
        s.to = pid;
        nd_dist_deliver(&s);
        term_free(pid);
        break;
    }
    case DOP_DEMONITOR_P: {
        pthread_mutex_lock(&c->mu);
        dmonrec *r = dist__mons_take(&c->mons, m->ref);
        pthread_mutex_unlock(&c->mu);
        if (!r) break;
        s.kind = ND_SIG_DEMONITOR;
        s.to = r->local;
        nd_dist_deliver(&s);
        dist__mon_free(r);
        break;
    }
    case DOP_MONITOR_P_EXIT:
        if (!local_pid(m->to)) break;
        pthread_mutex_lock(&c->mu);
        dist__mon_free(dist__mons_take(&c->mons, m->ref));
        pthread_mutex_unlock(&c->mu);
        s.kind = ND_SIG_DOWN;
        nd_dist_deliver(&s);
        break;
    case DOP_SPAWN_REQUEST:
        dist__spawn_request(c, m);
        break;
    case DOP_SPAWN_REPLY:
        dist__spawn_reply(c, m);
        break;
    case DOP_ALTACT_SIG_SEND: {
        /* a priority signal is delivered as an ordinary one: Girder processes have no priority
        ** aliases, so no signal can jump their queue */
        bool ok;
        if (m->id & ALTACT_ALIAS) {
            term_ref_info ri;
            ok = term_ref_get(m->to, &ri) == 0 && ri.node == dist__st->node;
        } else {
            ok = (m->id & ALTACT_NAME) || local_pid(m->to);
        }
        if (!ok) break;
        s.kind = (m->id & ALTACT_EXIT) ? ND_SIG_EXIT2 : ND_SIG_MSG;
        nd_dist_deliver(&s);
        break;
    }
    case DOP_ALIAS_SEND: {
        term_ref_info ri;
        if (term_ref_get(m->to, &ri) != 0 || ri.node != dist__st->node) break;
        s.kind = ND_SIG_MSG;
        nd_dist_deliver(&s); /* dropped by libnode unless the alias is active */
        break;
    }
    default:
        /* GROUP_LEADER, NODE_LINK, old UNLINK: ignored */
        break;
    }
    dist__ctl_free(m);
}
