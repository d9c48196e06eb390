/* dist: Erlang distribution over TCP — turns a libnode runtime into a peer of Erlang nodes. */
#ifndef GIRDER_DIST_H
#define GIRDER_DIST_H

#include <girder/node.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
** OWNERSHIP follows term.h and node.h: terms passed in are borrowed unless a function says it
** consumes them; terms handed back through out-parameters are references the caller owns.
** One distribution per program, started after nd_init() and stopped before nd_shutdown().
*/

/* ---------------------------------------------------------------- error codes */

/* Every fallible call returns 0 or a negative code of Girder's one error space (error.h).
** The DIST_ names are the codes this library returns, kept as aliases for existing callers;
** DIST_ETIMEOUT is GIRDER_ETIMEDOUT. */
enum {
    DIST_OK = GIRDER_OK,
    DIST_ENOMEM = GIRDER_ENOMEM,
    DIST_EINVAL = GIRDER_EINVAL,
    DIST_ESTATE = GIRDER_ESTATE,
    DIST_ENAME = GIRDER_ENAME,
    DIST_ECOOKIE = GIRDER_ECOOKIE,
    DIST_ELISTEN = GIRDER_ELISTEN,
    DIST_EEPMD = GIRDER_EEPMD,
    DIST_ENOCONN = GIRDER_ENOCONN,
    DIST_ETIMEOUT = GIRDER_ETIMEDOUT,
    DIST_ENOTPROC = GIRDER_ENOTPROC,
    DIST_EEXIST = GIRDER_EEXIST,
    DIST_EPROTO = GIRDER_EPROTO,
    DIST_EAUTH = GIRDER_EAUTH,
    DIST_ETLS = GIRDER_ETLS,
    DIST_ETLSCONF = GIRDER_ETLSCONF,
};

/* Aliases of girder_strerror() and girder_err_name(), which know every Girder code. */
static inline const char *dist_strerror(int err)
{
    return girder_strerror(err);
}
static inline const char *dist_err_name(int err)
{
    return girder_err_name(err);
}

/* ---------------------------------------------------------------- start and stop */

typedef struct dist_config {
    const char *name;         /* "a" (short name: "@<hostname>" is added) or "a@host";
                              ** "undefined" / "undefined@host": a dynamic name (see connect) */
    const char *connect;      /* with a dynamic name: the node that names us (required) */
    bool longnames;           /* --name: the host part is a full name (default short) */
    const char *cookie;       /* NULL: read ~/.erlang.cookie */
    bool hidden;              /* connect as a hidden node */
    const char *listen_addr;  /* numeric address to listen on; NULL: 0.0.0.0 */
    uint16_t listen_port;     /* 0: the kernel chooses */
    unsigned ticktime_s;      /* net_ticktime; 0 = 60 */
    uint16_t epmd_port;       /* 0: ERL_EPMD_PORT, else 4369 */
    bool no_epmd;             /* do not register (tests with fixed ports) */
    int handshake_timeout_ms; /* per handshake step, as net_setuptime; 0 = 7000 */
    size_t max_message;       /* incoming message bytes after reassembly; 0 = 256 MiB */
    size_t max_heap;          /* memory one decoded incoming message may take; 0 = max_message */
    /* Atoms from peers (docs/distribution.md): each peer node (by name, across its connections)
    ** may add max_new_atoms to the atom table (0 = 100000); decodes of all peers together add
    ** at most the table's limit minus atom_reserve (0 = an eighth of the limit; kept for local
    ** code and node names). Past either, a peer's new names arrive as foreign atoms, or with
    ** atoms_disconnect the peer is disconnected. */
    size_t max_new_atoms;
    size_t atom_reserve;
    bool atoms_disconnect;
    unsigned decoders; /* threads decoding large or compressed incoming messages; 0 = 2 */
    size_t frag_size;  /* outgoing fragment payload size; 0 = 64 KiB */
    /* One structured line per event ("event=nodeup node=b@h ..."), without newline, at a level
    ** (DIST_LOG_*). Called from any thread. NULL: stderr, with a timestamp and the level. */
    void (*log)(void *ud, int level, const char *line);
    void *log_ud;
    /* Erlang's -proto_dist: NULL or "inet_tcp" (plain TCP), "inet_tls" (TLS; docs/tls.md). With
    ** TLS, the options come from an optfile (erl's -ssl_dist_optfile) and/or the words of erl's
    ** -ssl_dist_opt ("server_certfile", "F", "client_verify", "verify_peer", ...), combined as
    ** OTP 25 does; both are read by dist_start, not kept. */
    const char *proto_dist;
    const char *ssl_dist_optfile;
    const char *const *ssl_dist_opt;
    int ssl_dist_opt_count;
    /* TESTING ONLY (girderd --sabotage drop-down=N, for testing the chaos checker): when N > 0,
    ** one in N DOWN signals that a lost connection would deliver to local processes is dropped
    ** (and logged as event=sabotage_dropped_down). Breaks Erlang's semantics on purpose. */
    unsigned sabotage_down_one_in;
    /* Inbound connections still in their handshake (TCP or TLS): at most this many from one
    ** address (0 = 32) and in all (0 = 256); past either, the oldest of them is closed
    ** (event=handshakes_evicted, at most one line per 10 s), so that connections that never
    ** finish the handshake cannot use up the node's descriptors. */
    unsigned max_handshakes_per_addr, max_handshakes;
} dist_config;

/* Log levels: Erlang logger's, most severe first. */
enum {
    DIST_LOG_EMERGENCY = 0,
    DIST_LOG_ALERT,
    DIST_LOG_CRITICAL,
    DIST_LOG_ERROR,
    DIST_LOG_WARNING,
    DIST_LOG_NOTICE,
    DIST_LOG_INFO,
    DIST_LOG_DEBUG
};

/*
** Starts distribution: listens, registers with the port mapper (creation comes from it), names
** the node (nd_set_node), installs libnode's distribution hook and starts the system processes
** (net_kernel, rex). Blocks up to the handshake timeout for the port mapper.
** With a dynamic name (DFLAG_NAME_ME, as `erl -sname undefined`) it neither listens nor
** registers: it dials cfg->connect, which gives the node its name and creation, and only then
** names libnode's node and starts the system processes; DIST_ENOCONN if that node is not
** reached. A dynamically named node is hidden.
*/
GIRDER_API int dist_start(const dist_config *cfg);
/* Stops the system processes; lets every connection write out what it has queued (for at most
** half of timeout_ms, and at most 2 s: a message sent just before the stop arrives, as from an
** Erlang node that calls init:stop()); closes every connection (node-down for each),
** unregisters, and waits up to timeout_ms (< 0: forever) for the I/O loop to end: DIST_ETIMEOUT
** if it did not (the distribution is then stopping but not freed; call again to finish). */
GIRDER_API int dist_stop(int64_t timeout_ms);
/* The listening port (0 when not started). */
GIRDER_API uint16_t dist_listen_port(void);
/*
** Checks cfg's choice of protocol and TLS options as dist_start would (reads the optfile, loads
** certificates, keys and CAs) without starting anything: 0 (also for plain TCP), DIST_EINVAL
** for an unknown proto_dist, or DIST_ETLSCONF / DIST_ENOMEM with err naming the file or
** -ssl_dist_opt, the role, the option and why. Warnings (options read but not honoured) go to
** cfg->log when set. dist_start logs the same message (event=tls_config_failed) and returns the
** same code.
*/
GIRDER_API int dist_tls_check(const dist_config *cfg, char *err, size_t errlen);

/* ---------------------------------------------------------------- nodes */

/*
** Connects to node (an atom) unless connected. 0 when up; else why not: DIST_ETIMEOUT, DIST_EAUTH
** (the peer refused our cookie), the port mapper lookup's error (EPMD_ENOENT: no such name on
** that host; EPMD_ECONNREFUSED: no port mapper there; EPMD_EHOSTUNREACH: unknown host),
** DIST_ETLS (TLS refused the connection: the log line event=tls_failed says why), or
** DIST_ENOCONN. Inside a process it waits as a process (a receive), so the other processes of
** its scheduler keep running; elsewhere it blocks the calling thread.
*/
GIRDER_API int dist_connect(term_t node, int64_t timeout_ms);
/* Closes the connection to node: node-down (noconnection) on both sides. */
GIRDER_API int dist_disconnect(term_t node);
/* net_adm:ping/1: 0 for pong; pang is an error, as dist_connect's (or DIST_ENOCONN when the
** connection came up but the peer's net_kernel did not answer). From any thread. */
GIRDER_API int dist_ping(term_t node, int64_t timeout_ms);

enum { DIST_VISIBLE = 1, DIST_HIDDEN = 2, DIST_CONNECTED = 3 };
/* A list (a reference) of the nodes connected in the given categories (erlang:nodes/1). */
GIRDER_API term_t dist_nodes(unsigned which);

/* monitor_node(Node, On) for the calling process: one {nodedown, Node} message per call when
** the connection goes down, or at once when it cannot be set up. */
GIRDER_API int dist_monitor_node(term_t node, bool on);
/* net_kernel:monitor_nodes(On): {nodeup, Node} and {nodedown, Node} for every node. */
GIRDER_API int dist_monitor_nodes(bool on);

/* ---------------------------------------------------------------- exported C functions */

/* Results of an exported function, as the Erlang exception classes. */
enum { DIST_RETURN = 0, DIST_ERROR = 1, DIST_EXIT = 2, DIST_THROW = 3 };

/*
** An exported function runs inside a process (spawned for it); args is the argument list
** (borrowed). It returns DIST_RETURN with *result = the value, or DIST_ERROR / DIST_EXIT /
** DIST_THROW with *result = the reason (owned by the caller). Remote spawn runs it as the
** process body (ending with exit(normal) or the reason); rpc:call / erpc:call return its value.
*/
typedef int (*dist_fun)(void *ud, term_t args, term_t *result);

/* Exports fn under {module, function, arity} (atoms borrowed). DIST_EEXIST if taken. */
GIRDER_API int dist_export(term_t module, term_t function, unsigned arity, dist_fun fn, void *ud);

/* ---------------------------------------------------------------- remote spawn */

/*
** erlang:spawn_request(Node, M, F, Args, Opts) from the calling process. opts: DIST_SPAWN_LINK,
** DIST_SPAWN_MONITOR. The answer is a message {spawn_reply, Ref, ok, Pid} or
** {spawn_reply, Ref, error, Reason}; with a monitor, Ref is also the monitor reference.
*/
enum { DIST_SPAWN_LINK = 1, DIST_SPAWN_MONITOR = 2 };
GIRDER_API int dist_spawn_request(term_t node, term_t module, term_t function, term_t args,
                                  unsigned opts, term_t *ref);

/* ---------------------------------------------------------------- global and pg */

/* global:whereis_name/1 as this node's replica of global's name table knows it: a pid (a
** reference) or TERM_NONE. Names come from the Erlang nodes this node synchronised with. */
GIRDER_API term_t dist_global_whereis(term_t name);
/* pg:join/2 and pg:leave/2 in the default scope for a local pid (borrowed): the Erlang
** nodes' pg sees it. DIST_EINVAL for a pid not local (or, for leave, not a member). */
GIRDER_API int dist_pg_join(term_t group, term_t pid);
GIRDER_API int dist_pg_leave(term_t group, term_t pid);
/* pg:get_members/1 in the default scope: local and remote members (a list, a reference). */
GIRDER_API term_t dist_pg_members(term_t group);

/* ---------------------------------------------------------------- statistics */

typedef struct dist_stats {
    uint64_t msgs_in, msgs_out, bytes_in, bytes_out, ticks_in, ticks_out;
    uint64_t conns_up, conns_down, handshakes_failed, protocol_errors;
    uint64_t tls_failures; /* connections closed for a TLS failure (logged as event=tls_failed) */
    /* Reads from the connections' sockets made by the transport's loop thread, and by idle
    ** schedulers running its loop (docs/distribution.md, Threads), since dist_start. */
    uint64_t reads_loop_thread, reads_schedulers;
} dist_stats;
GIRDER_API void dist_get_stats(dist_stats *out);

/* One connection to a peer node, as dist_connections() sees it. */
typedef struct dist_conn_info {
    char node[256]; /* the peer's name */
    bool up;        /* false: being set up */
    bool visible;   /* both sides visible (not a hidden connection) */
    uint32_t creation;
    uint64_t msgs_in, msgs_out;   /* control messages (messages, signals) received and sent */
    uint64_t bytes_in, bytes_out; /* frames received; frames handed to the connection */
    size_t out_queue;             /* bytes waiting in the output queue now */
    uint64_t busy_events; /* times the output queue passed 8 MiB and senders waited (each also
                          ** an event=busy_dist_port log line, at most one per 10 s) */
    uint64_t read_pauses; /* times reading from the peer stopped because the messages waiting
                          ** for the decoder threads passed max_message bytes (backpressure) */
} dist_conn_info;
/* Fills out[0..max) with the current connections (in no particular order); returns how many
** there are, which may be more than max. */
GIRDER_API size_t dist_connections(dist_conn_info *out, size_t max);

#ifdef __cplusplus
}
#endif
#endif
