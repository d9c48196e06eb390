/* libnode: BEAM-style processes for C — schedulers, mailboxes, links, monitors, timers, behaviours.
 */
#ifndef GIRDER_NODE_H
#define GIRDER_NODE_H

#include <girder/term.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
** OWNERSHIP: libnode follows term.h. Functions that send (nd_send, nd_exit, nd_reply, ...)
** consume the message/reason terms they are given, even on failure. Pids, names and refs
** passed as targets are borrowed. Terms handed back through an out-parameter (received
** messages, new pids, refs) are references the caller owns. nd_self() is borrowed.
*/

/* ---------------------------------------------------------------- error codes */

/* Every fallible call returns 0 or a negative code of Girder's one error space (error.h).
** The ND_ names are the codes this library returns, kept as aliases for existing callers;
** ND_ETIMEOUT is GIRDER_ETIMEDOUT. */
enum {
    ND_OK = GIRDER_OK,
    ND_ENOMEM = GIRDER_ENOMEM,
    ND_EINVAL = GIRDER_EINVAL,
    ND_ENOPROC = GIRDER_ENOPROC,
    ND_ETIMEOUT = GIRDER_ETIMEDOUT,
    ND_ENOTPROC = GIRDER_ENOTPROC,
    ND_EEXIST = GIRDER_EEXIST,
    ND_ENOTREG = GIRDER_ENOTREG,
    ND_ELIMIT = GIRDER_ELIMIT,
    ND_ESTATE = GIRDER_ESTATE,
    ND_ENOTIMER = GIRDER_ENOTIMER,
    ND_EEXIT = GIRDER_EEXIT,
    ND_ENODIST = GIRDER_ENODIST,
    ND_ENOCHILD = GIRDER_ENOCHILD,
    ND_ERUNNING = GIRDER_ERUNNING,
    ND_ESTART = GIRDER_ESTART,
};

/* Aliases of girder_strerror() and girder_err_name(), which know every Girder code. */
static inline const char *nd_strerror(int err)
{
    return girder_strerror(err);
}
static inline const char *nd_err_name(int err)
{
    return girder_err_name(err);
}

/* Timeouts are milliseconds; ND_INFINITY waits forever, 0 polls. */
#define ND_INFINITY ((int64_t)-1)

/* ---------------------------------------------------------------- platform */

/*
** Time and thread wake-ups, the only contact libnode has with the clock and with blocking.
** A deterministic simulator can replace it. A "parker" belongs to one scheduler thread.
*/
typedef struct nd_parker nd_parker;
typedef struct nd_platform {
    uint64_t (*now_ns)(void *ud);       /* monotonic nanoseconds */
    nd_parker *(*parker_new)(void *ud); /* NULL on ENOMEM */
    void (*parker_free)(void *ud, nd_parker *pk);
    /* Blocks until unpark() or the absolute deadline (UINT64_MAX: none). An unpark made before
    ** park makes it return at once. Scheduler threads and the watchdog park here; nd_run()
    ** and nd_shutdown() (called from other threads) wait on the real clock. */
    void (*park)(void *ud, nd_parker *pk, uint64_t deadline_ns);
    void (*unpark)(void *ud, nd_parker *pk);
    void *ud;
} nd_platform;

/* The default platform: CLOCK_MONOTONIC and futex/condvar wake-ups. */
GIRDER_API const nd_platform *nd_platform_default(void);

/* ---------------------------------------------------------------- runtime */

/* Log levels: Erlang logger's, most severe first (the same numbers as girder/dist.h's). */
enum { ND_LOG_ERROR = 3, ND_LOG_WARNING = 4, ND_LOG_NOTICE = 5, ND_LOG_INFO = 6 };

/*
** What happens when a process's mailbox holds more than its limit of messages. Whatever the
** policy, the first time a process passes its limit one line is logged (nd_config.log) and a
** trace event recorded (ND_EV_MAILBOX, girder/node_obs.h).
*/
typedef enum nd_mbox_policy {
    ND_MBOX_DEFAULT = 0, /* in a spawn option or nd_set_mailbox_limit: the node's policy */
    ND_MBOX_REPORT,      /* Erlang's semantics unchanged: the line and the event only */
    ND_MBOX_KILL,        /* the process exits with reason mailbox_overflow (untrappable) */
    ND_MBOX_DROP_NEWEST  /* a message that would pass the limit is discarded and counted */
} nd_mbox_policy;
#define ND_MBOX_UNLIMITED ((size_t)-1)

typedef struct nd_config {
    unsigned schedulers;       /* scheduler threads; 0 = $ND_SCHEDULERS, else one per online core */
    size_t stack_size;         /* default coroutine stack (bytes, rounded to pages); 0 = 128 KiB */
    size_t max_processes;      /* process table size; 0 = 4194304 */
    unsigned reductions;       /* budget per time slice; 0 = 4000 */
    uint64_t long_schedule_ms; /* slices longer than this are reported; 0 = 100 ms */
    /* Called from the watchdog thread, once per slice that has run for long_schedule_ms without
    ** a runtime call, while it still runs (duration so far); NULL prints a line to stderr.
    ** pid is borrowed. */
    void (*long_schedule)(term_t pid, uint64_t duration_ns, void *ud);
    void *long_schedule_ud;
    const nd_platform *platform; /* NULL = nd_platform_default() */
    /* Mailbox limit (messages) and policy of every process that does not set its own;
    ** 0 = 100000 and ND_MBOX_REPORT. ND_MBOX_UNLIMITED: no limit, nothing reported. */
    size_t mailbox_limit;
    nd_mbox_policy mailbox_policy;
    /* One structured line per event ("event=mailbox_limit pid=<0.7.1> ..."), without newline,
    ** at a level ND_LOG_*: mailbox limits, and long schedules when long_schedule is NULL.
    ** Called from any thread, a scheduler's included: it must not block for long nor call
    ** libnode. NULL prints "libnode: <line>" to stderr. */
    void (*log)(void *ud, int level, const char *line);
    void *log_ud;
    /* A process that has waited in receive this long (between once and twice this) has its
    ** stack parked: the few hundred bytes in use are kept on the heap and the stack's pages
    ** given back, until it next runs (docs/processes.md). 0 = 250 ms; ND_PARK_NEVER: never. */
    uint64_t park_after_ms;
} nd_config;
#define ND_PARK_NEVER UINT64_MAX

/* Starts the runtime (one per program). cfg may be NULL. */
GIRDER_API int nd_init(const nd_config *cfg);
/* Kills every process (reason kill), waits up to timeout_ms for them to finish, stops the
** schedulers and frees the runtime. ND_ETIMEOUT if some process would not die (then nothing
** is freed). */
GIRDER_API int nd_shutdown(int64_t timeout_ms);

/* Installs the SIGSEGV/SIGBUS handler (on a per-scheduler sigaltstack) that turns a fault in a
** stack's guard page into the exit of that process with reason stack_overflow; other faults
** go to the handler that was there before. nd_init() calls it; call it again if something
** (a test framework) replaced the handler. */
GIRDER_API int nd_overflow_handler_install(void);

/* The local node name (an atom, 'nonode@nohost' until a distribution layer sets it with
** nd_set_node(), see girder/node_dist.h) and creation. */
GIRDER_API term_t nd_node(void);
GIRDER_API uint32_t nd_creation(void);

/* ---------------------------------------------------------------- processes */

typedef void (*nd_entry_fn)(void *arg);

typedef struct nd_spawn_opts {
    size_t stack_size; /* 0 = the runtime's default */
    bool link;         /* link to the caller (atomically with the spawn) */
    bool monitor;      /* monitor from the caller; the ref goes to *monitor_ref */
    bool trap_exit;    /* start with trap_exit set */
    term_t name;       /* atom to register at start (TERM_NONE: none) */
    term_t *monitor_ref;
    /* As nd_set_exit_hook from the start: runs however the process ends, even when it is
    ** killed before fn ever runs (so arg's memory is never lost). Not called when nd_spawn
    ** fails: the caller still owns arg then. */
    void (*exit_hook)(void *arg, term_t reason);
    void *exit_hook_arg;
    size_t mailbox_limit;          /* 0 = the node's (nd_config.mailbox_limit) */
    nd_mbox_policy mailbox_policy; /* ND_MBOX_DEFAULT = the node's */
} nd_spawn_opts;

/*
** Starts fn(arg) as a new process; returning from fn is exit(normal). *pid (optional) gets a
** reference to the new pid. link/monitor options need a calling process (else ND_ENOTPROC).
** Fails with ND_EEXIST (and nothing started) if the name is taken.
*/
GIRDER_API int nd_spawn(nd_entry_fn fn, void *arg, const nd_spawn_opts *opts, term_t *pid);
GIRDER_API int nd_spawn_link(nd_entry_fn fn, void *arg, term_t *pid);
GIRDER_API int nd_spawn_monitor(nd_entry_fn fn, void *arg, term_t *pid, term_t *ref);

/* From a thread that is not a process: runs fn(arg) as a process and waits for it to exit
** (up to timeout_ms; ND_ETIMEOUT leaves it running). *reason (optional) gets its exit reason. */
GIRDER_API int nd_run(nd_entry_fn fn, void *arg, int64_t timeout_ms, term_t *reason);

/* The calling process's pid (borrowed), or TERM_NONE outside a process. */
GIRDER_API term_t nd_self(void);
GIRDER_API bool nd_in_process(void);
/* Ends the calling process with reason (consumed). Outside a process: aborts. */
GIRDER_API _Noreturn void nd_exit(term_t reason);
/* Sets the calling process's exit hook: fn(arg, reason) runs on the process's own stack when
** it ends, however it ends (return, nd_exit, exit signal, stack overflow), to free what it owns.
** It must not block. One hook per process; NULL removes it. */
GIRDER_API int nd_set_exit_hook(void (*fn)(void *arg, term_t reason), void *arg);
/* Sends an exit signal (exit/2) to pid; reason consumed. */
GIRDER_API int nd_exit_signal(term_t pid, term_t reason);
/* Gives the scheduler to other runnable processes. */
GIRDER_API void nd_yield(void);
/* Counts n reductions; yields when the slice is used up. Call it inside long loops. */
GIRDER_API void nd_consume(unsigned n);
/* Drops the calling process's stack; fn(arg) runs on a fresh stack when a message or signal
** arrives (erlang:hibernate/3). The pending messages are kept. */
GIRDER_API _Noreturn void nd_hibernate(nd_entry_fn fn, void *arg);
/* Sleeps (receives nothing) for ms. */
GIRDER_API void nd_sleep(int64_t ms);
GIRDER_API bool nd_is_alive(term_t pid);
/* Sets trap_exit; returns the old value (false outside a process). */
GIRDER_API bool nd_trap_exit(bool on);
/* Sets the calling process's mailbox limit and policy (0 / ND_MBOX_DEFAULT: the node's), as
** process_flag does; the limit's line is logged again the next time the new limit is passed.
** ND_ENOTPROC outside a process, ND_EINVAL for an unknown policy. */
GIRDER_API int nd_set_mailbox_limit(size_t limit, nd_mbox_policy policy);

/* A new unique reference. */
GIRDER_API term_t nd_make_ref(void);

/* ---------------------------------------------------------------- messages */

/* Sends msg (consumed) to a pid, a registered name (atom), {Name, Node} or an alias (a
** reference). Sending to a dead pid succeeds and drops the message (as Erlang); an
** unregistered name gives ND_ENOTREG. Targets on other nodes go through the distribution
** layer's hook (girder/node_dist.h). */
GIRDER_API int nd_send(term_t to, term_t msg);

typedef bool (*nd_pred_fn)(term_t msg, void *ud);

/* One receive clause: a compiled pattern and its variable slots (term_pattern_nvars()
** entries; unbound = TERM_NONE, bound = must be equal). */
typedef struct nd_clause {
    const term_pattern *pat;
    term_t *vars;
} nd_clause;

typedef struct nd_recv {
    nd_pred_fn pred; /* either pred ... */
    void *ud;
    const nd_clause *clauses; /* ... or clauses (first matching clause wins) ... */
    size_t nclauses;          /* ... or neither: any message */
    int64_t timeout_ms;
    bool from_mark; /* scan only messages that arrived after nd_recv_mark() */
} nd_recv;

/*
** Takes the first message, in arrival order, accepted by the predicate / clauses, and leaves
** the others in place and in order. Returns the clause index (0 for pred/any) with *msg owning
** the message (clause variables are borrowed from it), or ND_ETIMEOUT. Scanning resumes where it
** stopped when new messages arrive, so a receive never rescans what it has rejected.
*/
GIRDER_API int nd_receive_ex(const nd_recv *r, term_t *msg);
GIRDER_API int nd_receive(int64_t timeout_ms, term_t *msg);
GIRDER_API int nd_receive_if(nd_pred_fn pred, void *ud, int64_t timeout_ms, term_t *msg);
GIRDER_API int nd_receive_match(const nd_clause *clauses, size_t n, int64_t timeout_ms,
                                term_t *msg);
/* Marks the current end of the mailbox; a receive with from_mark skips older messages
** (the receive-marker optimisation for "wait for the reply to this ref"). */
GIRDER_API void nd_recv_mark(void);

/* Match-or-crash: returns if t matches p (binding vars), else exits with {badmatch, t}. */
GIRDER_API void nd_assert_match(const term_pattern *p, term_t t, term_t *vars);

/* ---------------------------------------------------------------- aliases */

/* erlang:alias/1 for the calling process: a new reference (owned) through which nd_send (or a
** remote node's ALIAS_SEND) reaches the process while the alias is active; TERM_NONE outside a
** process. ND_ALIAS_REPLY: the first message through the alias deactivates it ([reply]).
** Messages to an inactive alias are dropped; every alias goes when its process exits. */
enum { ND_ALIAS_EXPLICIT = 0, ND_ALIAS_REPLY = 1 };
GIRDER_API term_t nd_alias(unsigned flags);
/* erlang:unalias/1: true if alias (borrowed) was an active alias of the calling process. */
GIRDER_API bool nd_unalias(term_t alias);

/* ---------------------------------------------------------------- links, monitors */

/* link/1: ND_ENOPROC if pid is dead and the caller does not trap exits; a trapping caller gets
** {'EXIT', Pid, noproc} instead. */
GIRDER_API int nd_link(term_t pid);
GIRDER_API int nd_unlink(term_t pid);
/* monitor(process, Target): target is a pid, a registered name atom or {Name, Node}.
** *ref gets the monitor reference. A dead target gives a DOWN with noproc at once. */
GIRDER_API int nd_monitor(term_t target, term_t *ref);
enum { ND_DEMONITOR_FLUSH = 1 };
/* Returns 0, or ND_ENOPROC when the monitor was not active (already fired/removed). */
GIRDER_API int nd_demonitor(term_t ref, unsigned flags);

/* ---------------------------------------------------------------- registry */

/* A foreign atom (term.h) as name is interned (ND_ENOMEM when the table is full); lookups by a
** foreign atom find the process registered under its name. */
GIRDER_API int nd_register(term_t name, term_t pid); /* ND_EEXIST, ND_ENOPROC, ND_EINVAL */
GIRDER_API int nd_unregister(term_t name);           /* ND_ENOTREG */
GIRDER_API term_t nd_whereis(term_t name);           /* a reference, or TERM_NONE */
GIRDER_API term_t nd_registered(void);               /* a list of atoms (a reference) */

/* ---------------------------------------------------------------- timers */

typedef uint64_t nd_timer_t;
/* Sends msg (consumed) to dest (pid or name) after ms. */
GIRDER_API int nd_send_after(int64_t ms, term_t dest, term_t msg, nd_timer_t *timer);
/* Cancels; returns the milliseconds that were left (>= 0) or ND_ENOTIMER. */
GIRDER_API int64_t nd_cancel_timer(nd_timer_t timer);

/* ---------------------------------------------------------------- introspection */

typedef enum nd_status {
    ND_ST_RUNNING = 1,
    ND_ST_RUNNABLE,
    ND_ST_WAITING,
    ND_ST_EXITING
} nd_status;

typedef struct nd_proc_info {
    nd_status status;
    size_t message_queue_len; /* exact for one sender; an estimate under concurrent senders */
    size_t nlinks, nmonitors, nmonitored_by;
    term_t links;        /* list of pids (a reference) */
    term_t monitors;     /* list of pids or {Name, Node} (a reference) */
    term_t monitored_by; /* list of pids (a reference) */
    uint64_t reductions;
    size_t memory; /* bytes: process structure, stack if held, queue nodes (not message terms) */
    size_t stack_size;      /* 0 when the process holds no stack; the bytes kept if parked */
    bool stack_parked;      /* waiting with its stack parked (nd_config.park_after_ms) */
    term_t registered_name; /* atom or TERM_NONE */
    bool trap_exit;
    size_t message_queue_hwm;      /* the longest the queue has been (as seen by senders) */
    uint64_t messages_dropped;     /* discarded by ND_MBOX_DROP_NEWEST */
    size_t mailbox_limit;          /* ND_MBOX_UNLIMITED when none */
    nd_mbox_policy mailbox_policy; /* never ND_MBOX_DEFAULT */
} nd_proc_info;

/* Fills *info (release it with nd_proc_info_free); ND_ENOPROC for a dead pid. */
GIRDER_API int nd_process_info(term_t pid, nd_proc_info *info);
GIRDER_API void nd_proc_info_free(nd_proc_info *info);
/* Number of live processes. */
GIRDER_API size_t nd_process_count(void);
/* erlang:processes/0: a list (a reference) of the local processes alive at the time of the
** call, in creation-slot order. */
GIRDER_API term_t nd_processes(void);

typedef struct nd_stats {
    uint64_t context_switches, steals, long_schedules, spawns, exits;
    uint64_t reductions; /* used by every process since the runtime started (erlang:statistics) */
    unsigned schedulers; /* scheduler threads */
} nd_stats;
GIRDER_API void nd_get_stats(nd_stats *out);

/* ---------------------------------------------------------------- server behaviour */

/* What a handler asks for. */
enum { ND_REPLY = 0, ND_NOREPLY = 1, ND_STOP = 2 };

/*
** gen_server in C. State is a void* the callbacks own. Messages and From are borrowed for
** the duration of a call. On ND_REPLY *reply (owned) is sent to the caller; on ND_STOP the
** server calls terminate and exits with *reason (owned; if *reply is set it is sent first).
** terminate runs once whenever a started server ends, however it ends (stop, handler crash,
** exit signal, even kill: C state must always be freed). Wire shapes are Erlang's:
** {'$gen_call', {From, Tag}, Req} -> {Tag, Reply}, and {'$gen_cast', Msg}. An idle server
** holds no stack. NULL handlers ignore the message.
*/
typedef struct nd_server_ops {
    /* 0 to start, or ND_STOP with *reason = why init failed. */
    int (*init)(void *arg, void **state, term_t *reason);
    int (*handle_call)(void **state, term_t request, term_t from, term_t *reply, term_t *reason);
    int (*handle_cast)(void **state, term_t msg, term_t *reason);
    int (*handle_info)(void **state, term_t msg, term_t *reason);
    void (*terminate)(void *state, term_t reason);
} nd_server_ops;

typedef struct nd_server_opts {
    term_t name;        /* register as (TERM_NONE: none) */
    bool link;          /* start_link: linked to the caller, which becomes the parent */
    bool trap_exit;     /* set before init (supervisors, servers with a terminate to run) */
    int64_t timeout_ms; /* for init; 0 = 5000 */
} nd_server_opts;

/* Starts a server and waits for init. On failure *reason (optional) gets the reason and the
** call returns ND_ESTART. */
GIRDER_API int nd_server_start(const nd_server_ops *ops, void *arg, const nd_server_opts *opts,
                               term_t *pid, term_t *reason);
/* call: ND_ETIMEOUT, or ND_EEXIT with *reply = the server's exit reason (noproc if it did not
** exist). Works from non-process threads too. */
GIRDER_API int nd_call(term_t server, term_t request, int64_t timeout_ms, term_t *reply);
GIRDER_API int nd_cast(term_t server, term_t msg);
/* Replies to a From kept from handle_call (reply consumed). */
GIRDER_API int nd_reply(term_t from, term_t reply);
/* Stops a server: exit(shutdown-like reason) and waits for it to be gone. */
GIRDER_API int nd_server_stop(term_t server, term_t reason, int64_t timeout_ms);

/* ---------------------------------------------------------------- supervisors */

typedef enum { ND_PERMANENT = 0, ND_TRANSIENT, ND_TEMPORARY } nd_restart;
typedef enum { ND_WORKER = 0, ND_SUPERVISOR } nd_child_type;
typedef enum {
    ND_ONE_FOR_ONE = 0,
    ND_ONE_FOR_ALL,
    ND_REST_FOR_ONE,
    ND_SIMPLE_ONE_FOR_ONE
} nd_strategy;

#define ND_BRUTAL_KILL ((int64_t)0)

/* Starts one child linked to the calling process (the supervisor); extra is the term given
** to start_child of a simple_one_for_one supervisor (TERM_NONE otherwise, borrowed). Returns
** 0 with *pid, 1 for "ignore" (no process), or a negative error / ND_ESTART with *reason. */
typedef int (*nd_child_start_fn)(void *arg, term_t extra, term_t *pid, term_t *reason);

typedef struct nd_child_spec {
    term_t id; /* any term (borrowed; the supervisor keeps its own reference) */
    nd_child_start_fn start;
    void *arg;
    nd_restart restart;
    int64_t shutdown; /* ND_BRUTAL_KILL, milliseconds, or ND_INFINITY */
    nd_child_type type;
} nd_child_spec;

typedef struct nd_sup_flags {
    nd_strategy strategy;
    unsigned intensity; /* restarts allowed ... */
    int64_t period_ms;  /* ... within this window (0 = 5000) */
} nd_sup_flags;

/* Starts a supervisor (linked to the caller when opts->link) with its children, in order.
** For ND_SIMPLE_ONE_FOR_ONE, children[0] is the template and no child starts now. */
GIRDER_API int nd_supervisor_start(const nd_sup_flags *flags, const nd_child_spec *children,
                                   size_t n, const nd_server_opts *opts, term_t *pid,
                                   term_t *reason);
/* Child operations: calls to the supervisor, each with a timeout (ND_ETIMEOUT). */
GIRDER_API int nd_sup_start_child(term_t sup, const nd_child_spec *spec, int64_t timeout_ms,
                                  term_t *pid);
GIRDER_API int nd_sup_start_dynamic(term_t sup, term_t extra, int64_t timeout_ms,
                                    term_t *pid); /* simple_one_for_one */
GIRDER_API int nd_sup_terminate_child(term_t sup, term_t id_or_pid, int64_t timeout_ms);
GIRDER_API int nd_sup_restart_child(term_t sup, term_t id, int64_t timeout_ms, term_t *pid);
GIRDER_API int nd_sup_delete_child(term_t sup, term_t id, int64_t timeout_ms);
/* [{Id, Pid | undefined, worker | supervisor}] in start order (a reference). */
GIRDER_API int nd_sup_which_children(term_t sup, int64_t timeout_ms, term_t *list);
/* [{specs, N}, {active, N}, {supervisors, N}, {workers, N}] (a reference). */
GIRDER_API int nd_sup_count_children(term_t sup, int64_t timeout_ms, term_t *list);

/* Start function for a child that is a supervisor: arg points at an nd_sup_start_args. */
typedef struct nd_sup_start_args {
    nd_sup_flags flags;
    const nd_child_spec *children;
    size_t n;
} nd_sup_start_args;
GIRDER_API int nd_sup_child_start(void *arg, term_t extra, term_t *pid, term_t *reason);

#ifdef __cplusplus
}
#endif
#endif
