/* dist core internals: connections, the output queue, sending, node-up/down, the machine's owner.
 */
#ifndef DIST_CORE_H
#define DIST_CORE_H

#include "chan.h"
#include "kapi/kapi.h"
#include "dist_int.h"
#include "transport.h"

#include <girder/node_dist.h>
#include <girder_deadline.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---------------------------------------------------------------- atoms, interned once */

#define DIST_ATOMS(X)               \
    X(noconnection, "noconnection") \
    X(noproc, "noproc")             \
    X(nodeup, "nodeup")             \
    X(nodedown, "nodedown")         \
    X(spawn_reply, "spawn_reply")   \
    X(error, "error")               \
    X(empty, "")                    \
    X(dist_connect, "$dist_connect")

typedef struct dist_atoms {
#define X(name, text) term_t name;
    DIST_ATOMS(X)
#undef X
} dist_atoms;
extern dist_atoms dist__a;
void dist__atoms_init(void);

/* ---------------------------------------------------------------- links and monitors (track.c) */

/* A link between a local process and a process of the peer. */
typedef struct dlinkrec {
    struct dlinkrec *next;
    uint64_t h;
    term_t local, remote; /* pids, owned */
} dlinkrec;

typedef enum {
    MON_OUT = 1, /* local monitors remote (a pid, or {Name, Node}) */
    MON_IN,      /* remote (a pid) monitors local (a pid), by name when name is an atom */
    MON_SPAWN    /* local waits for the answer to a spawn request it sent to node `remote` */
} dmon_dir;

/* A monitor across the connection, keyed by its reference. */
typedef struct dmonrec {
    struct dmonrec *next;
    uint64_t h;
    term_t ref;
    dmon_dir dir;
    term_t local, remote, name; /* owned; name TERM_NONE unless MON_IN by name */
} dmonrec;

typedef struct dlinks {
    dlinkrec **b;
    size_t nb, n;
} dlinks;

typedef struct dmons {
    dmonrec **b;
    size_t nb, n;
} dmons;

/* Adding an existing key changes nothing; false only when out of memory. Terms are dup'ed. */
bool dist__links_add(dlinks *t, term_t local, term_t remote);
bool dist__links_del(dlinks *t, term_t local, term_t remote);
dlinkrec *dist__links_take_all(dlinks *t); /* a list; free each with dist__link_free */
void dist__link_free(dlinkrec *r);
void dist__links_free(dlinks *t);
bool dist__mons_add(dmons *t, term_t ref, dmon_dir dir, term_t local, term_t remote, term_t name);
dmonrec *dist__mons_find(dmons *t, term_t ref);
dmonrec *dist__mons_take(dmons *t, term_t ref); /* removed; free with dist__mon_free */
dmonrec *dist__mons_take_all(dmons *t);
void dist__mon_free(dmonrec *r);
void dist__mons_free(dmons *t);

/* ---------------------------------------------------------------- output queue */

typedef dist_chunk dchunk;

/* A signal kept while the connection is being set up (encoded once the flags are known). */
typedef struct psig {
    struct psig *next;
    term_t ctl, payload; /* control tuple built with the no-flags assumption fixed at flush */
    nd_signal sig;       /* terms dup'ed; kind 0 for a prebuilt ctl */
} psig;

/* A process waiting in dist_connect: told {'$dist_connect', Ref, Status} (0 or a DIST_E* code)
** when the connection comes up or fails. */
typedef struct cwaiter {
    struct cwaiter *next;
    term_t pid, ref; /* owned */
} cwaiter;

/* ---------------------------------------------------------------- connections */

enum { C_PENDING = PEER_PENDING, C_UP = PEER_UP, C_DOWN = PEER_DOWN };

/*
** One peer node (the connection state machine's dist_peer). Reference counted; the node table
** holds one reference while the connection is PENDING or UP. Fields under mu unless marked;
** `sm` and `rx` belong to the loop thread.
*/
struct dist_peer {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* PENDING -> UP / DOWN */
    atomic_int refs;
    atomic_int state;
    term_t node;            /* atom, immutable */
    _Atomic uint64_t flags; /* negotiated; valid once UP */
    uint32_t creation;
    bool published; /* both sides visible */
    /* out queue */
    dchunk *qhead, *qtail;
    atomic_size_t qbytes;   /* changed under mu; read without it by busy_wait (relaxed) */
    bool wpending;          /* on the service list or a write in flight */
    dist_tr_stream *direct; /* the stream while UP, for direct writes (NULL: none) */
    uint64_t last_direct;   /* when a sender last wrote directly (ns) */
    bool svc_queued;
    bool want_connect, want_close;
    const char *close_why;
    struct dist_peer *svc_next;
    psig *phead, *ptail;  /* while PENDING */
    atomic_size_t pbytes; /* memory the signals waiting while PENDING hold (busy at BUSY_LIMIT);
                          ** as qbytes */
    cwaiter *waiters;     /* while PENDING */
    int down_err;         /* why it went down (DIST_E*), once DOWN */
    dlinks links;
    dmons mons;
    dist_acache acache; /* what the peer's atom cache holds (frames rewritten in wire order) */
    atomic_uint_fast64_t seq;
    atomic_uint_fast64_t out_frames; /* frames sent or queued (ticks are skipped when it moves) */
    /* metrics (dist_connections): bytes of frames received and handed to the connection,
    ** messages (control messages) in and out, busy episodes of the output queue, times reading
    ** stopped because the decoders' queue was over its bound */
    atomic_uint_fast64_t m_bytes_in, m_bytes_out, m_msgs_in, m_msgs_out, m_busy, m_read_pauses;
    bool busy; /* (mu) in a busy episode: the queue passed BUSY_LIMIT, not yet drained */
    uint64_t busy_logged_ns; /* (mu) when the last busy line was logged */
    uint64_t busy_unlogged;  /* (mu) episodes since then */
    /* decoding (decode.c): messages waiting for a decoder thread, in arrival order */
    pthread_mutex_t dq_mu;
    struct rxjob *dq_head, *dq_tail;
    size_t dq_bytes;
    atomic_bool dq_busy;   /* queued, or a decoder is at it: everything goes through the queue;
                           ** set (under dq_mu) by the loop thread only, so the loop reads it
                           ** without the lock */
    bool dq_paused;        /* the queue is over its bound: the loop stopped reading */
    atomic_bool dq_failed; /* a decoder found a protocol error: drop the rest, close */
    struct dist_peer *dq_ready_next;
    bool want_resume; /* (mu) the loop reads again */
    /* loop thread only */
    dist_sm_slot sm;
    dist_rx *rx; /* while UP: the atom cache and fragments of this connection */
    struct dist_peer *tab_next;
};
typedef struct dist_peer dconn;

/* ---------------------------------------------------------------- the distribution */

typedef struct nodemon {
    struct nodemon *next;
    term_t pid;  /* owned */
    term_t node; /* atom, or TERM_NONE for monitor_nodes */
} nodemon;

typedef struct dist_state {
    dist_config cfg;
    char name[HS_MAX_NAME + 1];
    char host[256];
    char cookie[HS_MAX_COOKIE + 1];
    term_t node;
    uint32_t creation;
    uint64_t flags;
    bool dynamic; /* waiting to be named (name holds only the host); I/O thread writes it once */
    unsigned ticktime_s;
    size_t frag_size;
    /* node table */
    pthread_mutex_t mu;
    dconn **tab;
    size_t ntab;
    nodemon *nodemons;
    /* service list: connections the I/O thread must look at */
    pthread_mutex_t svc_mu;
    dconn *svc_head;
    atomic_bool stopping;
    bool shut; /* the loop began shutting down (svc_mu) */
    /* io_stop asked the loop to stop: connections write out what they hold first, for at most
    ** drain_ms (both set together: a service turn between dist__core_stop's `stopping` and
    ** io_stop must not begin the stop with no drain time) */
    bool stop_asked;            /* (svc_mu) */
    uint64_t drain_ms;          /* (svc_mu) */
    uint64_t drain_deadline_ns; /* (loop) */
    dist_tr_timer *drain;       /* (loop) */
    /* the loop, and the decoders of large messages */
    dist_tr *tr;
    dist_sm *sm;
    struct dist_decoders *dec;
    uint16_t port;
    int start_status;
    bool started;
    pthread_mutex_t start_mu;
    pthread_cond_t start_cv;
    /* atoms from peers (budget.c) */
    pthread_mutex_t budget_mu;
    dist_atom_budget **budgets; /* TAB_BUCKETS chains */
    bool quota_ours;            /* dist_start set the external atom quota (dist_stop lifts it) */
    /* stats */
    atomic_uint_fast64_t st_msgs_in, st_msgs_out, st_bytes_direct, st_up, st_down, st_proto;
    /* cfg.sabotage_down_one_in: noconnection DOWNs counted so far (testing only) */
    atomic_uint_fast64_t sabotage_downs;
} dist_state;

extern dist_state *dist__st;

#define TAB_BUCKETS 256

/* conns.c */
dist_state *dist__enter(void); /* NULL: not started, or stopping */
void dist__leave(void);
void dist__gate_open(void);
bool dist__gate_closing(void);
int dist__gate_close(int64_t timeout_ms);
/* Keys of dist's tables are interned node atoms (compared with ==): term_atom_interned(). */
size_t dist__bucket(term_t node);
dconn *dist__conn_new(term_t node);
void dist__conn_put(dconn *c);
dconn *dist__conn_get(term_t node, bool create);
bool dist__conn_unlink(dconn *c);
void dist__service(dconn *c);
void dist__psigs_free(psig *p);
void dist__waiters_notify(cwaiter *w, int status);

/* outq.c */
/* Adds n to a byte count changed only under the connection's lock (no locked instruction). */
static inline void dist__count_add(atomic_size_t *v, size_t n)
{
    atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
                          memory_order_relaxed);
}
int dist__q_push(dconn *c, etf_buf *b, size_t off);
int dist__q_send(dconn *c, etf_buf *b, size_t off, bool *service);
dchunk *dist__take_queue(dconn *c, size_t *bytes);
void dist__send_tick(dconn *c);
void dist__busy_wait(dconn *c, const nd_signal *s);

/* send.c */
bool dist__build_ctl(const nd_signal *s, uint64_t fl, term_t *ctl, term_t *payload);
int dist__encode(dconn *c, term_t ctl, term_t payload, uint64_t fl, etf_buf *b);
int dist__hook(void *ud, const nd_signal *s);
int dist__send_ctl(dconn *c, term_t ctl, term_t payload);

/* updown.c */
void dist__conn_up(dconn *c, uint64_t flags, uint32_t creation, dist_tr_stream *stream);
void dist__node_down(dconn *c, const char *why, int err);
/* The second half of a node-down (signals, node monitors, log), now or from c's decode queue. */
void dist__node_down_finish(dconn *c, int was, const char *why);
void dist__nodemon_notify(term_t node, int ev);

/* budget.c */
dist_atom_budget *dist__atom_budget(term_t node);
int dist__atom_budgets_init(dist_state *st, const dist_config *cfg);
void dist__atom_budgets_free(dist_state *st);
/* Logs, once per peer node and reason, that its new atoms went foreign (or it was refused). */
void dist__atoms_report(dconn *c);

/* decode.c */
typedef struct dist_decoders dist_decoders;
/* A frame of c's peer (loop thread): decoded and delivered, or queued for a decoder. */
int dist__rx_take(dconn *c, const uint8_t *f, size_t n, const char **why);
/* Queues c's node-down behind its undecoded messages; false when there are none (do it now). */
bool dist__rx_defer_down(dconn *c, int was, const char *why);
int dist__decoders_start(dist_state *st, unsigned n);
void dist__decoders_stop(dist_state *st);

/* inbound.c */
void dist__deliver(dconn *c, dist_ctl *ctl);

/* owner.c */
extern const dist_sm_owner dist__owner;
void dist__started(int status);
void dist__shutdown_all(void);

/* log.c */
const char *dist__aname(term_t a);

/* spawn.c */
void dist__spawn_request(dconn *c, dist_ctl *ctl);
void dist__spawn_reply(dconn *c, dist_ctl *ctl);

#endif
