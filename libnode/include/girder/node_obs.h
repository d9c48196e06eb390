/* libnode's observability API: scheduler trace events and metrics snapshots, for tools. */
#ifndef GIRDER_NODE_OBS_H
#define GIRDER_NODE_OBS_H

#include <girder/node.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
** Applications use girder/node.h; this header is for the tools that watch a node (the control
** API, `girder top`, `girder trace`). Both halves may be used from any thread, a non-process
** thread included, between nd_init and nd_shutdown: a tool's thread must stop calling them
** before nd_shutdown, which frees what they read. docs/observability.md states the contract.
*/

/* ---------------------------------------------------------------- trace events */

/*
** Tracing is off by default; off, each traced point in the runtime costs one predictable
** branch. On, each scheduler thread writes its events into its own ring (one more ring is
** shared by the other threads: distribution's I/O, timers armed from outside, the watchdog),
** and a reader drains them from another thread. A ring that is full, or a scheduler that
** records more than max_rate events a second, drops events and counts them: tracing a busy
** node costs it bounded time and memory.
*/
typedef enum nd_ev_kind {
    ND_EV_SCHED_IN = 1,  /* pid starts running on sched */
    ND_EV_SCHED_OUT,     /* pid stops running; info = ND_OUT_* */
    ND_EV_SPAWN,         /* pid (none from outside a process) spawned peer; info = ND_SPAWN_* */
    ND_EV_EXIT,          /* pid ended with reason */
    ND_EV_SEND,          /* pid sent a message to peer: arg = bytes of its term, id = its trace
                         ** id; to a name: reason = the name, ND_EV_F_NAMED */
    ND_EV_RECEIVE,       /* pid took the message with trace id `id` after looking at arg
                         ** messages (info ND_RECV_MATCHED), or timed out (ND_RECV_TIMEOUT) */
    ND_EV_LINK,          /* link signal, pid to peer */
    ND_EV_UNLINK,        /* unlink signal, pid to peer */
    ND_EV_MONITOR,       /* monitor signal, pid (the monitoring process) to peer */
    ND_EV_DEMONITOR,     /* demonitor signal, pid to peer */
    ND_EV_DOWN,          /* DOWN signal from pid (the monitored process) to peer, with reason;
                         ** id = trace id of the 'DOWN' message it becomes */
    ND_EV_EXIT_SIGNAL,   /* exit signal from pid to peer with reason: info 0 a broken link,
                         ** 1 exit/2; id = trace id of the 'EXIT' message it may become */
    ND_EV_TIMER,         /* a timer fired: the receive timeout of pid (info ND_TIMER_RECEIVE),
                         ** or send_after timer `id` to peer (ND_TIMER_SEND) */
    ND_EV_STEAL,         /* sched took arg processes from scheduler `id` */
    ND_EV_LONG_SCHEDULE, /* pid has run arg ns on sched without calling the runtime */
    ND_EV_MAILBOX,       /* pid's mailbox passed its limit: arg = its length, info = policy */
    ND_EV_BUSY_DIST,     /* pid (or none) found the connection to `node` busy: arg = bytes queued
                         ** (recorded by the distribution layer, nd_trace_busy_dist) */
    ND_EV__COUNT
} nd_ev_kind;

enum { ND_OUT_BUDGET = 1, ND_OUT_YIELD, ND_OUT_WAIT, ND_OUT_HIBERNATE, ND_OUT_EXIT };
enum { ND_SPAWN_LINK = 1, ND_SPAWN_MONITOR = 2 };
enum { ND_RECV_MATCHED = 0, ND_RECV_TIMEOUT = 1 };
enum { ND_TIMER_RECEIVE = 1, ND_TIMER_SEND = 2 };
/* Flags in nd_event.info, above the per-kind value (info & ND_EV_INFO_MASK). */
enum {
    ND_EV_INFO_MASK = 0x0f,
    ND_EV_F_PID_REMOTE = 0x10,  /* pid is a process of node `node` */
    ND_EV_F_PEER_REMOTE = 0x20, /* peer is a process of node `node` */
    ND_EV_F_TAG = 0x40,         /* the reason was a tuple; `reason` is its first element */
    ND_EV_F_NAMED = 0x80        /* the target was a registered name, in `reason` */
};
#define ND_EV_NO_SCHED 0xffff

typedef struct nd_ev_pid {
    uint32_t id, serial; /* a pid's numbers (<0.id.serial>); {0, 0}: none */
} nd_ev_pid;

/* One event, 64 bytes. It holds no reference: pids are numbers, reasons immediates. */
typedef struct nd_event {
    uint64_t ts;       /* nanoseconds of the platform's monotonic clock (nd_platform.now_ns) */
    uint8_t kind;      /* nd_ev_kind */
    uint8_t info;      /* per kind, plus ND_EV_F_* flags */
    uint16_t sched;    /* scheduler index (0-based), ND_EV_NO_SCHED for other threads */
    uint32_t creation; /* creation of the remote pid, if any */
    nd_ev_pid pid;     /* the process the event is about */
    nd_ev_pid peer;    /* the other process */
    term_t node;       /* node atom of the remote pid (ND_EV_F_*_REMOTE), else TERM_NONE */
    uint64_t arg;      /* per kind: bytes, messages looked at, processes, ns, length */
    uint64_t id;       /* per kind: message trace id (never 0), timer id, scheduler index */
    term_t reason;     /* an atom or small integer, or TERM_NONE when it was neither */
} nd_event;

typedef struct nd_trace_opts {
    uint32_t kinds;     /* bit (1u << ND_EV_x) per kind to record; 0 = every kind */
    term_t pid;         /* only events whose pid or peer is this local process; TERM_NONE: all */
    size_t ring_events; /* events per ring (a power of two, 64..16M); 0 = 65536; the rings are
                        ** made by the first start and kept until nd_shutdown */
    uint64_t max_rate;  /* events per second per ring before it drops; 0 = 1000000 */
} nd_trace_opts;

/* Starts recording (opts may be NULL). The rings are kept from one start to the next (events
** not drained stay; a later ring_events is ignored). ND_ESTATE if tracing is on or the runtime
** is not running, ND_EINVAL for a pid that is not a live local process, ND_ENOMEM. */
GIRDER_API int nd_trace_start(const nd_trace_opts *opts);
/* Stops recording: when it returns no event is being written, and the events recorded so far
** can be drained. ND_ESTATE if tracing was off. */
GIRDER_API int nd_trace_stop(void);
/*
** Moves up to max recorded events into out, in timestamp order within the call, and returns
** how many. Callable while tracing runs, from any thread (calls are serialized); it never
** blocks a scheduler. Draining consumes: each event goes to one call only. A scheduler's
** event stamped just before a drain may arrive in the next one, after later events of other
** schedulers: sort by ts when the whole capture is wanted in order.
*/
GIRDER_API size_t nd_trace_drain(nd_event *out, size_t max);

typedef struct nd_trace_stats {
    bool on;
    unsigned rings;                      /* schedulers + 1 */
    size_t ring_events;                  /* capacity of each */
    uint64_t recorded;                   /* events written (all counts: since the first start) */
    uint64_t dropped_full, dropped_rate; /* events lost: a ring was full; past max_rate */
} nd_trace_stats;
GIRDER_API void nd_trace_stats_get(nd_trace_stats *st);

/* The event's pid (peer: its peer) as a pid term (owned), or TERM_NONE. A remote pid gets the
** event's node and creation. */
GIRDER_API term_t nd_event_pid(const nd_event *e, bool peer);
/* "send", "sched_out", ...; "?" for an unknown kind. */
GIRDER_API const char *nd_event_kind_name(unsigned kind);

/* ---------------------------------------------------------------- metrics */

typedef struct nd_sched_metrics {
    /* where the scheduler's wall time went since nd_init, like msacc: running processes and
    ** its own loop, spinning for work before it parks, parked */
    uint64_t running_ns, spinning_ns, idle_ns;
    uint64_t run_queue; /* processes in its own run queue now */
    uint64_t steals, context_switches, reductions;
} nd_sched_metrics;

typedef struct nd_metrics {
    uint64_t uptime_ns;
    unsigned schedulers;
    nd_sched_metrics *sched;   /* `schedulers` entries; nd_metrics_free releases them */
    uint64_t global_run_queue; /* runnable processes no scheduler has taken yet */
    uint64_t processes, process_limit;
    uint64_t spawns, exits, long_schedules;
    uint64_t messages_sent;     /* put in a local mailbox or handed to distribution */
    uint64_t messages_received; /* taken by a receive */
    uint64_t messages_queued;   /* waiting in mailboxes now */
    uint64_t messages_dropped;  /* discarded by ND_MBOX_DROP_NEWEST */
    uint64_t mailbox_reports;   /* processes that passed their mailbox limit */
    uint64_t mailbox_kills;     /* processes killed with mailbox_overflow */
    uint64_t processes_parked;  /* waiting with their stacks parked (nd_config.park_after_ms) */
    uint64_t stack_parks;       /* stacks parked since the start (each resumed at its next run) */
    uint64_t stack_releases;    /* system calls that gave back exited processes' stack pages */
    struct {
        uint64_t process_table; /* process slots allocated */
        uint64_t stacks;        /* coroutine stacks mapped (guard pages included) */
        uint64_t parked_stacks; /* the bytes parked stacks keep on the heap */
        uint64_t mailboxes;     /* queue nodes of waiting messages (their terms not included) */
        uint64_t trace;         /* trace rings */
        uint64_t rss;           /* resident set of the whole OS process (0 if unknown) */
    } memory;                   /* bytes */
} nd_metrics;

/* A snapshot (each figure read atomically, the whole not at one instant). ND_ESTATE if the
** runtime is not running, ND_ENOMEM. */
GIRDER_API int nd_metrics_get(nd_metrics *m);
GIRDER_API void nd_metrics_free(nd_metrics *m);

#ifdef __cplusplus
}
#endif
#endif
