/* Internal structures of libnode shared by its source files (not a public API). */
#ifndef GIRDER_ND_INT_H
#define GIRDER_ND_INT_H

#include <girder/node.h>
#include <girder/node_dist.h>
#include <girder/node_obs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__) || defined(GIRDER_ASAN)
#define ND__ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) || defined(GIRDER_TSAN)
#define ND__TSAN 1
#endif

#define ND__LIKELY(x)   __builtin_expect(!!(x), 1)
#define ND__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define ND__NO_DEADLINE UINT64_MAX

/* ================================================================ contexts (ctx.c) */

/* A saved execution context: a stack pointer plus what the sanitizers need to follow it. */
typedef struct nd_ctx {
    void *sp;
#ifdef ND__ASAN /* (only the sanitizers' fields: a process record is 32 bytes smaller without) */
    void *stack_lo; /* usable stack bounds */
    size_t stack_size;
    void *fake_stack;
#endif
#ifdef ND__TSAN
    void *fiber;
#endif
#ifdef ND__UCONTEXT
    void *uc; /* ucontext_t * */
#endif
} nd_ctx;

/* Prepares ctx to run fn(arg) on [lo, lo+size) the first time it is switched to. fn must never
** return. */
int nd__ctx_make(nd_ctx *ctx, void *lo, size_t size, void (*fn)(void *), void *arg);
/* Saves the current context into from and resumes to. from_dying: from is never resumed. */
void nd__ctx_switch(nd_ctx *from, nd_ctx *to, bool from_dying);
/* Called first thing in a new context and after each switch lands (sanitizer bookkeeping). */
void nd__ctx_landed(nd_ctx *self);
/* The scheduler thread's own context. */
void nd__ctx_init_thread(nd_ctx *ctx);
void nd__ctx_release(nd_ctx *ctx);

/* ================================================================ stacks (stack.c) */

typedef struct nd_stack {
    struct nd_stack *next;
    void *map;            /* mmap base (the guard page) */
    struct nd_slab *slab; /* default-size stacks: the slab it belongs to (stack.c); else NULL */
    size_t mapsize;       /* guard + usable */
    void *lo;             /* usable low end */
    size_t size;          /* usable bytes */
} nd_stack;

struct nd_sched;
nd_stack *nd__stack_get(struct nd_sched *s, size_t size);
void nd__stack_put(struct nd_sched *s, nd_stack *st);
/* Gives back the pages of the stacks that exits queued (the watchdog, at each tick). */
void nd__stack_release_pending(void);
void nd__stack_cache_drain(struct nd_sched *s);
void nd__stack_global_drain(void);
int nd__segv_install(void);
int nd__altstack_setup(struct nd_sched *s);
void nd__altstack_free(struct nd_sched *s);

/* Parking idle stacks (stack.c). A process that has waited through a whole sweep period gives
** its stack's pages back: the bytes in use are copied to the heap and put back, at the same
** addresses, when it next runs. */
struct nd_proc;
/* Slow path of a wait (finish_prev): lists p for the sweeps or marks it as having waited anew.
** Called only when p->park_mark != PM_WAITED. */
void nd__park_note(struct nd_sched *s, struct nd_proc *p);
/* Puts a parked process's stack back (prepare(), p owned by the caller). */
void nd__stack_unpark(struct nd_proc *p);
/* One sweep (the watchdog thread, every nd__rt.park_ns). */
void nd__park_sweep(void);

/* ================================================================ signals */

enum {
    SIG_MSG = 1,
    SIG_EXIT,
    SIG_EXIT2,
    SIG_LINK,
    SIG_UNLINK,
    SIG_UNLINK_ACK,
    SIG_MONITOR,
    SIG_DEMONITOR,
    SIG_DOWN,
    SIG_MON_ADOPT, /* local only: from = target, ref = the monitor's reference (nd_monitor_adopt) */
    SIG_KILL       /* local only: an untrappable exit with reason payload (mailbox_overflow) */
};

/*
** A queue node: a message or another signal. Terms are owned by the node. A message queued for a
** local process is a compact node (nd__msg_new): only the fields up to `payload` exist, so that
** a small queued message costs a 24-byte node beside its term. Every other node (signals, and
** messages on their way to another node, which carry `from`) is a full one (nd__sig_new), marked
** by `full`; a full signal turned into a message in place stays full.
*/
typedef struct nd_sig {
    struct nd_sig *next;
    uint8_t kind;
    uint8_t full; /* the fields after payload exist */
    uint16_t pad;
    uint32_t tid;   /* trace id of the message or signal (0: untraced) */
    term_t payload; /* message or reason */
    /* ---- full nodes only ---- */
    term_t from; /* sender pid (not for local messages) */
    term_t ref;  /* monitor ref */
    term_t item; /* SIG_MONITOR: what the DOWN should name (pid or {Name, Node}) */
    uint64_t id; /* unlink id */
} nd_sig;

#define ND__MSG_NODE offsetof(nd_sig, from)

nd_sig *nd__sig_new(uint32_t kind);
/* A compact message node holding msg (consumed; on ENOMEM msg is freed and NULL returned). */
nd_sig *nd__msg_new(term_t msg);
void nd__sig_free(nd_sig *s);
/* Empties the calling thread's caches of queue nodes and link records. */
void nd__sig_cache_drain(void);

/* Links and monitors of a process (owner-only list; `lock` held while changing it). */
enum { REL_LINK = 1, REL_MON, REL_MONBY };
typedef struct nd_rel {
    struct nd_rel *next;
    struct nd_rel **pprev; /* the pointer that points at this record (O(1) removal) */
    struct nd_rel *hnext;  /* chain in the process's index by ref (proc.c: rel_index) */
    uint8_t type;
    uint8_t gone;  /* REL_MONBY: a DEMONITOR for it is queued (set by its sender under `lock`) */
    uint32_t hash; /* term_hash(ref), while it is in the index (proc.c: relix_put) */
    uint64_t unlinking; /* REL_LINK: 0 = active, else the unlink id in flight */
    term_t pid;         /* the other process */
    term_t ref;         /* monitors */
    term_t item;        /* REL_MON: pid or {Name, Node}; REL_MONBY: what DOWN names */
} nd_rel;

/* ================================================================ processes */

/* PS_PARKING: a waiting process whose stack a sweep is parking; wake-ups that find it so leave
** it alone, and the sweep, publishing PS_WAITING again, looks for what they pushed (stack.c). */
enum { PS_FREE = 0, PS_RUNNING, PS_RUNNABLE, PS_WAITING, PS_EXITING, PS_PARKING };
/* park_mark: not on a sweep list; listed and has waited since the last sweep looked; listed and
** seen waiting by the last sweep without having waited anew since. */
enum { PM_UNLISTED = 0, PM_WAITED, PM_SEEN };
enum { PF_TRAP = 1, PF_HAS_MARK = 2, PF_STARTED = 4 };
/* mbox_state bits: the limit's line was logged; the overflow kill was sent. */
enum { MB_REPORTED = 1, MB_KILLING = 2 };

/* A timer: receive timeout (embedded in a process) or send_after. */
typedef struct nd_tmr {
    uint64_t deadline;
    int32_t idx; /* heap index, -1 when not in the heap */
    uint8_t kind;
    _Atomic uint8_t arm;  /* receive timeout: TMO_* (see nd__wait) */
    uint64_t rel;         /* receive timeout: ns from when it is armed, or 0 (deadline set) */
    struct nd_proc *proc; /* receive timeout */
    uint64_t id;          /* send_after */
    term_t dest, msg;
} nd_tmr;
enum { TMR_RECV = 1, TMR_SEND };
/* A receive timeout is put in the heap lazily: TMO_PENDING while its process waits with the
** deadline set but not yet in the heap, TMO_ARMED once in it (sched.c: nd__wait). */
enum { TMO_IDLE = 0, TMO_PENDING, TMO_ARMED };

struct nd_waiter;

typedef struct nd_proc {
    /* first cache line: what a sender touches */
    /* low 32 bits (ND__REFS): references, 1 while alive + one per sender holding it; the slot
    ** is freed at 0. High 32 bits: messages ever pushed to outer, mod 2^32 (see nd__push). One
    ** word, so that nd_send takes its reference and counts its message in one locked operation */
    _Atomic uint64_t rc;
    _Atomic uint32_t state; /* PS_* */
    _Atomic uint32_t serial;
    uint32_t id;
    term_t pid;
    _Atomic(nd_sig *) outer;     /* senders push here (LIFO); ND__CLOSED once dead */
    _Atomic uint64_t drained;    /* messages taken from outer into the inner queue (owner) */
    _Atomic size_t nmsg;         /* messages in the inner queue (written by the owner only) */
    _Atomic uint32_t mbox_limit; /* passing it applies mbox_policy; UINT32_MAX: no limit */
    _Atomic uint32_t mbox_hwm;   /* the longest queue a sender has seen */
    /* the rest: the owner's */
    nd_sig *in_head, *in_tail, *mark;
    nd_sig *pending;               /* drained signals not yet handled (kept for the exit path) */
    _Atomic uint64_t mbox_dropped; /* messages discarded by ND_MBOX_DROP_NEWEST */
    nd_rel *rels;
    struct nd_relix *relix; /* monitors by ref, once a process holds many (owner only) */
    atomic_flag lock;       /* guards rels for introspection */
    uint8_t flags;          /* owner-only PF_* */
    uint8_t why;
    _Atomic bool trap;
    _Atomic uint8_t mbox_policy; /* nd_mbox_policy, never ND_MBOX_DEFAULT */
    _Atomic uint8_t mbox_state;  /* MB_* */
    _Atomic uint8_t park_mark;   /* PM_* (kept across the slot's lives: the lists hold slots) */
    int32_t reds;
    uint32_t sched_idx;        /* the scheduler it runs (or last ran) on (set by prepare) */
    _Atomic size_t held_stack; /* what the process asks the scheduler for when it switches out */
    _Atomic uint64_t total_reds;
    _Atomic term_t name;
    term_t reason;
    nd_ctx ctx;
    nd_stack *stack;      /* NULL while it holds none (new, hibernating) or while parked */
    void *_Atomic parked; /* its stack's saved bytes while parked (stack.c), else NULL */
    size_t stack_size;
    nd_entry_fn fn; /* what runs when the process gets a fresh stack */
    void *arg;
    nd_tmr tmo;
    struct nd_waiter *waiter;
    void (*exit_hook)(void *, term_t);
    void *exit_hook_arg;
    uint64_t next_unlink_id;
    term_t aliases; /* owner-only: the aliases it created (alias.c) */
    size_t naliases, alias_prune_at;
    struct nd_proc *park_next; /* on a sweep list (park_mark != PM_UNLISTED) */
} nd_proc;

#define ND__CLOSED ((nd_sig *)(uintptr_t)1)

#define ND__REFS(rc)   ((uint32_t)(rc))         /* the references in an nd_proc's rc */
#define ND__PUSHED(rc) ((uint32_t)((rc) >> 32)) /* the messages pushed, mod 2^32 */
#define ND__PUSH1      ((uint64_t)1 << 32)

enum { WHY_YIELD = 1, WHY_WAIT, WHY_HIBERNATE, WHY_EXIT };

/* Aliases (alias.c). */
void nd__alias_send(term_t alias, term_t msg); /* local alias; msg consumed */
void nd__alias_exit(nd_proc *p);
term_t nd__alias_owner(term_t alias); /* a reference or TERM_NONE */
bool nd__ref_is_local(term_t ref);

/* Process table (proc.c). */
nd_proc *nd__proc_get(term_t pid); /* takes a reference or NULL */
void nd__proc_put(nd_proc *p);
nd_proc *nd__proc_slot(uint32_t id);           /* NULL if never allocated */
void nd__slot_cache_drain(struct nd_sched *s); /* s's free slots back to the table */
bool nd__pid_is_local(term_t pid);
/* Pushes a signal (consumed) to p; false if p is dead (sig not consumed). Wakes p. */
bool nd__push(nd_proc *p, nd_sig *sig);
/* nd__push for a message whose sender took its reference on p and counted the message in with
** one CAS on p->rc (nd_send): d is p->drained as read before that CAS, rc what it replaced.
** false: not queued (p dead or the message dropped); the caller frees s and drops its reference. */
bool nd__push_counted(nd_proc *p, nd_sig *s, uint64_t d, uint64_t rc);
/* Sends a signal to a pid term (local or remote); handles the dead-target answers. */
void nd__send_sig(nd_proc *self, term_t to, nd_sig *sig);
/* Moves what senders pushed to p into its inner queue and handles the signals among them (the
** owner only). Inline for the common empty case: a process that goes to wait drains first. */
void nd__drain_slow(nd_proc *p);
static inline void nd__drain(nd_proc *p)
{
    if (p->pending || atomic_load_explicit(&p->outer, memory_order_relaxed) != NULL)
        nd__drain_slow(p);
}
_Noreturn void nd__proc_exit(nd_proc *p, term_t reason);
void nd__proc_start(void *arg); /* coroutine entry */
void nd__make_runnable(nd_proc *p);
void nd__inner_append(nd_proc *p, nd_sig *s);

/* ================================================================ schedulers (sched.c) */

/* Message counters (metrics): put in a local mailbox, handed to distribution, made from a
** signal (an 'EXIT' or 'DOWN' message), taken by receive, discarded unread at exit. */
enum { CNT_MSG_IN, CNT_MSG_REMOTE, CNT_MSG_CONV, CNT_MSG_RECV, CNT_MSG_DISCARD, CNT__N };
enum { ACCT_RUN, ACCT_SPIN, ACCT_IDLE, ACCT__N };

#define ND__RQ_SIZE    256
#define ND__SLOT_BATCH 32
#define ND__REF_BLOCK  1024
#define ND__LAZY_MAX   64
typedef struct nd_runq {
    _Atomic uint32_t head, tail;
    _Atomic(nd_proc *) buf[ND__RQ_SIZE];
} nd_runq;

typedef struct nd_sched {
    unsigned idx;
    pthread_t thread;
    nd_runq rq;
    nd_parker *parker;
    _Atomic int parked;
    _Atomic int in_poll; /* sleeps, or is about to, in the idle poller (not on its parker) */
    uint64_t turn_since; /* when its idle poller's handling began (0: not in one; own thread) */
    nd_ctx ctx;
    nd_proc *current;
    nd_proc *prev;   /* switched out, its request not yet carried out (nd__finish_prev) */
    unsigned direct; /* process-to-process switches since the loop last ran */
    nd_stack *stack_cache;
    unsigned nstack_cache;
    struct nd_slab *slab;       /* the slab it takes new stacks from (stack.c; g_mu) */
    uint64_t ref_next, ref_end; /* reference numbers taken from the node's counter (proc.c) */
    unsigned nslots;            /* free process slots cached (proc.c) */
    struct nd_proc *slots[2 * ND__SLOT_BATCH]; /* the newest last */
    void *altstack;
    /* for the long-running report (read by the watchdog thread) */
    _Atomic uint64_t slice_seq;
    _Atomic uint32_t cur_id, cur_serial; /* 0 id: idle */
    _Atomic uint64_t switches, steals;   /* written by this scheduler only (relaxed) */
    _Atomic uint64_t reds;               /* reductions its processes used (same rule) */
    uint64_t rng;
    _Atomic uint64_t cnt[CNT__N]; /* message counters (same rule) */
    /* where its time goes (metrics): written by this scheduler at each change of state, under
    ** a sequence count (odd while it changes) so that readers see a consistent set */
    _Atomic uint32_t acct_seq;
    _Atomic uint32_t acct_state; /* ACCT_* */
    _Atomic uint64_t acct_since; /* when acct_state began */
    _Atomic uint64_t acct_ns[ACCT__N];
    uint32_t tid_next;                   /* trace ids of messages sent on this scheduler */
    unsigned tick;                       /* passes through the loop (the global queue's turn) */
    _Atomic(struct nd_proc *) park_list; /* processes that began waiting here (the sweep takes) */
    /* processes that began a wait with a deadline on this scheduler since its loop last ran,
    ** their timeouts not yet in the heap (written by the owner, read by the watchdog) */
    _Atomic unsigned nlazy;
    _Atomic(nd_proc *) lazy[ND__LAZY_MAX];
} nd_sched;

/* libnode's thread-locals are few and small: the initial-exec model keeps each access one
** instruction in the shared library too (not a __tls_get_addr call), at the price of a few
** bytes of the static TLS block. */
#define ND__TLS _Thread_local __attribute__((tls_model("initial-exec")))

extern ND__TLS nd_sched *nd__cur_sched;

/* The scheduler of the calling thread. Not inlined: a process may resume on another thread, so
** the thread-local must be re-read after every switch, never cached by the compiler. */
nd_sched *nd__sched_get(void);
static inline nd_proc *nd__self(void)
{
    nd_sched *s = nd__sched_get();
    return s ? s->current : NULL;
}

/* Term equality with the common case first: a reference or pid compared with a copy of
** itself (the same box, one reference count apart). */
static inline bool nd__same(term_t a, term_t b)
{
    return a == b || term_equal(a, b);
}

/* Switches from the running process back to its scheduler with a request. */
void nd__switch_out(nd_proc *p, int why);
/* Blocks the running process until a signal arrives or the deadline passes. rel_ns != 0: a
** timeout of rel_ns that starts when it is armed (deadline is then ignored). Returns the
** wait's absolute deadline: `deadline`, or the one a relative timeout got when it was armed
** (ND__NO_DEADLINE if the wait ended first). */
uint64_t nd__wait(nd_proc *p, uint64_t deadline, uint64_t rel_ns);
/* Whether p's armed receive timeout has already fired (p is switching out). */
bool nd__timer_fired(nd_tmr *t);
void nd__wake_timer_owner(void);
void nd__finish_prev(nd_sched *s);
void nd__enqueue(nd_proc *p);
/* The same with the calling thread's scheduler (nd__cur_sched, NULL off the schedulers) already
** in hand, from a frame that does not switch. */
void nd__enqueue_on(nd_sched *s, nd_proc *p);
void nd__make_runnable_on(nd_sched *s, nd_proc *p);
uint64_t nd__now(void);
uint64_t nd__deadline(int64_t timeout_ms);

/* Timers (timer.c). */
void nd__timer_remove(nd_tmr *t);
/* Puts the receive timeouts of ps[0..n) that are still TMO_PENDING into the heap. */
void nd__timers_arm(nd_proc *const *ps, unsigned n);
int nd__timers_fire(uint64_t now); /* fires what is due; returns count */
uint64_t nd__timers_next(void);
void nd__timers_init(void);
void nd__timers_destroy(void);

/* Registry (registry.c). */
void nd__registry_init(void);
void nd__registry_destroy(void);
/* Looks a name up and takes a reference on the process. */
nd_proc *nd__whereis_proc(term_t name);
void nd__unregister_proc(nd_proc *p);

/* ================================================================ runtime */

struct nd_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, abandoned;
    term_t reason;
};

/* ================================================================ observability (obs.c) */

struct nd_ring;

typedef struct nd_obs {
    /* read on every traced point: a line of its own, written only by nd_trace_start/stop */
    _Alignas(64) _Atomic int trace_on;
    _Atomic uint32_t kinds;                    /* ND_EV_x bits; 0 = all */
    _Atomic uint32_t filter_id, filter_serial; /* a local pid, or 0 */
    _Atomic uint64_t per_window;               /* events a ring may record per rate window */
    /* allocated by the first nd_trace_start, freed at shutdown: a writer that still believes
    ** tracing is on never finds them gone */
    struct nd_ring *rings; /* nsched + 1: the last is shared by other threads */
    size_t ring_cap;
    /* written from anywhere, rarely */
    _Alignas(64) _Atomic uint64_t fcnt[CNT__N]; /* message counters of non-scheduler threads */
    _Atomic uint64_t dropped, mbox_reports, mbox_kills;
    _Atomic uint64_t stack_bytes; /* stacks mapped (stack.c) */
    _Atomic uint32_t ftid;        /* trace ids of messages sent by non-scheduler threads */
    _Atomic int trim_wanted;      /* a large mailbox was freed: the watchdog returns memory */
    pthread_mutex_t mu;           /* serializes start/stop/drain */
    uint64_t t0;                  /* when the runtime started */
} nd_obs;

typedef struct nd_runtime {
    nd_config cfg;
    const nd_platform *plat;
    unsigned nsched;
    nd_sched *scheds;
    _Atomic int running;
    _Atomic int stopping;
    _Atomic int stopping_threads;
    _Atomic unsigned nidle;
    _Atomic unsigned nspin; /* schedulers spinning before they park (see sched_main) */
    uint64_t spin_ns;       /* how long an idle scheduler spins before parking */
    /* the idle poller (nd_set_idle_poller): `poller` points at poller_set while one is set;
    ** poll_inside counts schedulers between reading `poller` and leaving its call */
    const nd_idle_poller *_Atomic poller;
    nd_idle_poller poller_set;
    _Atomic unsigned poll_inside;
    /* global run queue */
    pthread_mutex_t gq_mu;
    nd_proc **gq;
    size_t gq_head, gq_len, gq_cap;
    _Atomic size_t gq_count;
    /* process table */
    nd_proc *_Atomic *chunks;
    size_t nchunks;
    pthread_mutex_t tab_mu;
    nd_proc **free_slots; /* free slots, a stack (the newest last); room for every slot */
    size_t nfree, free_cap;
    uint32_t next_id;
    _Atomic size_t live;
    /* node identity */
    _Atomic term_t node;
    _Atomic uint32_t creation;
    _Atomic uint64_t ref_counter;
    /* dist hook */
    _Atomic(nd_dist_fn) dist_fn;
    void *_Atomic dist_ud;
    /* stats */
    _Atomic uint64_t st_long, st_spawns, st_exits;
    pthread_t watchdog;
    nd_parker *watchdog_parker;
    /* parking idle stacks (stack.c): the sweep period (0: never), the processes the sweeps
    ** watch (the watchdog's alone), and counters */
    uint64_t park_ns;
    nd_proc *park_watch;
    _Atomic uint64_t parks, unparks, parked_bytes, park_madvises;
    _Atomic uint64_t stack_releases; /* madvise calls giving back stacks of exited processes */
    nd_obs obs;
} nd_runtime;

extern nd_runtime nd__rt;

#define ND__CHUNK 1024

/* Atoms used everywhere, interned at nd_init. */
extern term_t nd__a_normal, nd__a_kill, nd__a_killed, nd__a_noproc, nd__a_EXIT, nd__a_DOWN,
    nd__a_process, nd__a_stack_overflow, nd__a_badmatch, nd__a_shutdown, nd__a_undefined,
    nd__a_gen_call, nd__a_gen_cast, nd__a_noconnection, nd__a_timeout, nd__a_ok, nd__a_error,
    nd__a_worker, nd__a_supervisor, nd__a_specs, nd__a_active, nd__a_supervisors, nd__a_workers,
    nd__a_restarting, nd__a_ignore, nd__a_infinity, nd__a_calling_self, nd__a_mailbox_overflow;

void nd__srv_atoms(void);
void nd__sup_atoms(void);
void nd__spin_lock(atomic_flag *f);
void nd__spin_unlock(atomic_flag *f);

/* Builds {'EXIT', From, Reason} etc.; consume their term arguments. */
term_t nd__exit_msg(term_t from, term_t reason);

/* ---------------------------------------------------------------- observability */

static inline bool nd__tracing(void)
{
    /* acquire (a plain load on x86): what nd_trace_start set up is visible after it */
    return ND__UNLIKELY(atomic_load_explicit(&nd__rt.obs.trace_on, memory_order_acquire));
}
/* Records one event (call only when nd__tracing()). pid, peer: pid terms (or anything else for
** none), borrowed. reason: any term (reduced to an immediate). */
void nd__ev(int kind, int info, term_t pid, term_t peer, uint64_t arg, uint64_t id, term_t reason);
/* The same for an event whose subject is a local process known by its numbers (the watchdog). */
void nd__ev_sched(int kind, unsigned sched, uint32_t id, uint32_t serial, uint64_t arg);
/* A fresh trace id for a message or signal (never 0). */
uint32_t nd__ev_tid(void);
/* The same for an event about local process p, with no peer and no reason. */
void nd__evp(int kind, int info, const nd_proc *p, uint64_t arg, uint64_t id);
/* A SEND event for msg from the calling process to `to` (q: its slot when local, else NULL;
** name: the registered name it was sent to, or TERM_NONE); returns the message's trace id. */
uint32_t nd__ev_send(const nd_proc *q, term_t to, term_t msg, term_t name);
/* Counts one message event on the calling thread's scheduler (or the shared counters). */
void nd__count(int which, uint64_t n);
/* Logs one line through nd_config.log (printf format). */
void nd__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Applies p's mailbox limit to a message that makes its queue `len` long (nd__push). Returns
** MBX_QUEUE, MBX_DROP (do not queue it) or MBX_KILL (queue it, then send the overflow kill). */
enum { MBX_QUEUE = 0, MBX_DROP, MBX_KILL };
int nd__mbox_over(nd_proc *p, uint64_t len);
/* An exit that frees at least this many queued messages asks the watchdog to return memory. */
#define ND__TRIM_AFTER 65536
/* The node-wide mailbox default as a per-process limit (UINT32_MAX: none). */
uint32_t nd__mbox_limit_of(size_t limit);
void nd__obs_init(void);
void nd__obs_destroy(void);
/* The watchdog's periodic work for observability: returning freed memory. */
void nd__obs_tick(void);

/* Runs fn(ctx) inside a temporary process when called from outside one. */
int nd__in_process(nd_entry_fn fn, void *ctx, int64_t timeout_ms);

#endif
