/* libnode's provider API: what a distribution layer (dist/) uses to carry signals between nodes. */
#ifndef GIRDER_NODE_DIST_H
#define GIRDER_NODE_DIST_H

#include <girder/node.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
** Applications use girder/node.h; this header is for the one layer that connects a libnode
** runtime to other nodes. It names the node, receives every signal addressed to a process of
** another node through a hook, and injects the signals that arrive from other nodes.
*/

/* Names the local node; called by the distribution layer before it starts. Pids created
** earlier keep the old name. */
GIRDER_API void nd_set_node(term_t node_atom, uint32_t creation);

/*
** The signals that travel between processes. A distribution layer installs a hook with
** nd_set_dist_hook() to carry signals addressed to remote pids, and calls nd_dist_deliver()
** for signals arriving from remote pids (for node-down it delivers ND_SIG_EXIT / ND_SIG_DOWN
** with reason noconnection). All terms are borrowed for the duration of the call.
*/
typedef enum nd_sig_kind {
    ND_SIG_MSG = 1,       /* payload = message; to may be {Name, Node} or an alias (a ref) */
    ND_SIG_EXIT,          /* link broken by from's death; payload = reason */
    ND_SIG_EXIT2,         /* exit/2; payload = reason */
    ND_SIG_LINK,          /* from links to to */
    ND_SIG_UNLINK_ID,     /* id = unlink id */
    ND_SIG_UNLINK_ID_ACK, /* id = unlink id */
    ND_SIG_MONITOR,       /* ref; to may be {Name, Node} */
    ND_SIG_DEMONITOR,     /* ref */
    ND_SIG_DOWN           /* ref, payload = reason; from = monitored pid or {Name, Node} */
} nd_sig_kind;

typedef struct nd_signal {
    nd_sig_kind kind;
    term_t from, to, payload, ref;
    uint64_t id;
} nd_signal;

typedef int (*nd_dist_fn)(void *ud, const nd_signal *sig);
/* Installs (or with NULL removes) the hook for signals to pids of other nodes. */
GIRDER_API void nd_set_dist_hook(nd_dist_fn fn, void *ud);

/*
** Injects a signal from a remote process to a local one. `to` is a local pid; or a name, for
** ND_SIG_MSG and ND_SIG_MONITOR; or a local alias reference, for ND_SIG_MSG and ND_SIG_EXIT2
** (the alias's owner gets it while the alias is active). Returns 0 even when the target is
** dead: the signal then gets Erlang's dead-target answer, sent back through the hook.
*/
GIRDER_API int nd_dist_deliver(const nd_signal *sig);
/* The same, taking over the caller's references to sig's from, ref and payload (released
** whatever the result): a layer that drops its own copies right after, as at a node-down,
** touches those terms' counts neither to take a reference nor to drop one. */
GIRDER_API int nd_dist_deliver_take(const nd_signal *sig);

/*
** An idle poller: the distribution layer's I/O, taken by the node's schedulers when they have
** run out of work, as the BEAM's schedulers poll for I/O themselves. A scheduler spinning before
** it sleeps (ND_SPIN_US) polls at every turn; one that goes to sleep sleeps in the poller (in
** its epoll_wait) instead of on its own futex, if the poller lets it. A message from another
** node then wakes the one thread that reads it and runs its receiver, where an I/O thread
** would be woken by the data and then wake a scheduler: one wake-up a message, not two.
**   poll(ud)        at every turn of an idle scheduler's spin (possibly on several schedulers
**                   at once: the poller serialises them): handles what is ready, without
**                   blocking; true when it did something (read, wrote, accepted), and the
**                   spin starts over.
**   hold(ud)        a scheduler with nothing to do is about to sleep: true if it may sleep in
**                   the poller; it then holds the poller until its release().
**   wait(ud, timeout_ns)
**                   after hold(): waits up to timeout_ns (UINT64_MAX: no limit) for I/O or a
**                   wake(), handling nothing.
**   release(ud, turn)
**                   after hold(): if turn, handles what is ready (as poll); then lets go.
**   wake(ud)        any thread: ends the wait under way, or the next one, at once.
**   idle(ud)        the last spinning scheduler sleeps on its own futex (hold() said no): the
**                   poller gives its I/O back to whoever does it when no scheduler does.
** Processes that the poller's handling makes runnable go to the handling scheduler's own run
** queue, and it runs them next; a handling that has taken more than 50 us by then also wakes
** an idle scheduler to take them. nd_set_idle_poller(NULL) removes the poller and returns once
** no scheduler is inside one of its calls (it wakes a waiting one); nothing of it is called
** after that.
*/
typedef struct nd_idle_poller {
    bool (*poll)(void *ud);
    bool (*hold)(void *ud);
    void (*wait)(void *ud, uint64_t timeout_ns);
    void (*release)(void *ud, bool turn);
    void (*wake)(void *ud);
    void (*idle)(void *ud);
    void *ud;
} nd_idle_poller;
GIRDER_API void nd_set_idle_poller(const nd_idle_poller *p);

/*
** Gives process owner (a local pid) a monitor of target (a pid) under reference ref, as if
** owner had called monitor/2 and got ref, without sending a MONITOR signal: the target's side
** already holds it (spawn_request's monitor option). From any thread; signals pushed to owner
** after this call are handled after it, so a DOWN that follows finds the monitor (called by
** owner itself, it takes effect at once). All arguments are borrowed. ND_ENOPROC if owner is
** dead (if it dies before handling it, the target side is sent a DEMONITOR).
*/
GIRDER_API int nd_monitor_adopt(term_t owner, term_t target, term_t ref);

/*
** For the distribution layer's overload report: records an ND_EV_BUSY_DIST trace event
** (girder/node_obs.h) saying that the calling process (none from another thread) found the
** connection to `node` (an atom, borrowed) too busy to take more, with queued_bytes waiting. One
** predictable branch when tracing is off.
*/
GIRDER_API void nd_trace_busy_dist(term_t node, uint64_t queued_bytes);

#ifdef __cplusplus
}
#endif
#endif
