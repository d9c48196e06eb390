/* The CLI's own hidden distribution node: names, cookie, connecting with diagnosis, rpc. */
#ifndef GIRDER_CLI_SESSION_H
#define GIRDER_CLI_SESSION_H

#include "cli.h"

#include <girder/dist.h>
#include <limits.h>

/* ---------------------------------------------------------------- names and cookie */

/* This host's short name (hostname up to the first dot). */
const char *cli_short_host(void);

/* NODE as the user wrote it -> a full node name: "name@host" kept, bare "name" gets
** "@<short host>". 0, or -1 after printing one usage line. */
int cli_node_name(const char *arg, char *out, size_t n);

typedef struct cli_cookie {
    char value[256];
    char source[PATH_MAX + 40]; /* "--cookie", "/dir/cookie (the cluster's)", "~/.erlang.cookie" */
    bool tls;                   /* TLS distribution (--proto-dist inet_tls, or the cluster's) */
    char optfile[PATH_MAX];     /* with tls: the optfile ("": none, OTP's bare defaults) */
} cli_cookie;

/*
** The cookie for talking to nodes[0..n): --cookie if given; else the cookie of the cluster in
** --dir (default ./.girder/cluster) when one of the nodes belongs to it; else
** ~/.erlang.cookie. Also picks the port mapper port: ERL_EPMD_PORT if set, else the cluster's
** when a node belongs to it, else 4369; and the protocol: --proto-dist if given, else the
** cluster's (TLS with its optfile) when a node belongs to it, else TCP. CLI_OK, or CLI_USAGE
** after printing why.
*/
int cli_cookie_resolve(const cli_opts *o, char names[][256], size_t n, cli_cookie *out,
                       uint16_t *epmd_port);

/* --proto-dist / --ssl-dist-optfile: CLI_OK when they are valid (with inet_tls, the optfile
** and the files it names are read now), else CLI_USAGE with a message. */
int cli_check_proto(const cli_opts *o);

/* ---------------------------------------------------------------- the CLI's node */

/*
** Starts libnode and distribution as a hidden node named girder_cli_<pid>_<random>@<host>,
** not registered with the port mapper (like erl_call). longnames follows the target nodes.
** Sets the deadline: every later wait ends at start + o->timeout_ms. CLI_OK or CLI_FAIL.
*/
int cli_dist_up(const cli_opts *o, bool longnames, const cli_cookie *ck, uint16_t epmd_port);
/* Runs body(arg) as a process and returns its status; CLI_FAIL with a line if the deadline
** passes (plus a grace second) before it ends. */
int cli_run(int (*body)(void *), void *arg);
/* Stops the CLI's node: every connection closes, then the runtime stops and is freed (each
** step bounded). Does nothing when the node never started or is down already. */
void cli_dist_down(void);
/* Returns status for main() to return, after cli_dist_down() if the node is still up; when
** the runtime could not be stopped, ends the program here (flushing stdio) instead. */
int cli_exit(int status);

/* Moves the deadline to ms from now (a long-running command, such as `girder top`'s live view,
** bounds each refresh rather than the whole run). */
void cli_set_deadline_ms(int64_t ms);
/* Milliseconds left before the deadline (>= 0). */
int64_t cli_remaining_ms(void);
/* The CLI node's own name (an atom). */
term_t cli_self_node(void);
uint16_t cli_epmd_port(void);

/* ---------------------------------------------------------------- inside the process */

/*
** Connects to node. CLI_OK, or CLI_FAIL with a one-line reason in why: the port mapper is
** unreachable (address:port), no such name is registered (with the names it has), the
** connection was refused, or the node closed the handshake (usually a wrong cookie).
*/
int cli_connect(term_t node, char *why, size_t n);
/* Same diagnosis for a failed attempt, without connecting again. */
void cli_diagnose(term_t node, int rc, char *why, size_t n);

/* Text context for terms coming from node: its pids print <0.X.Y> once its creation is known
** (learnt from the pid of any rpc answered by that node). */
term_text_ctx cli_ctx(term_t node);
/* Learns node's creation (one rpc) if not known yet. CLI_OK or CLI_FAIL with why. */
int cli_learn_creation(term_t node, char *why, size_t n);

/* ---------------------------------------------------------------- rpc */

typedef enum cli_rpc_outcome {
    CLI_RPC_PENDING = 0,
    CLI_RPC_RETURN, /* value: the result */
    CLI_RPC_THROW,  /* value: the thrown term */
    CLI_RPC_EXIT,   /* value: the exit reason */
    CLI_RPC_ERROR,  /* value: the error reason, stack: the stack (or TERM_NONE) */
    CLI_RPC_SPAWN,  /* value: why the node refused the spawn request */
    CLI_RPC_KILLED, /* value: the exit signal that ended the call's process */
    CLI_RPC_NOCONN, /* the connection went down */
    CLI_RPC_TIMEOUT
} cli_rpc_outcome;

/* One erpc:call(Node, M, F, A): a spawn request of erpc:execute_call/4 with a monitor, as
** OTP's erpc does; works the same on Erlang and Girder nodes. */
typedef struct cli_rpc {
    term_t node, mod, fun, args; /* owned */
    bool spawn_only;             /* a plain spawn request of mod:fun(args): RETURN gives the pid */
    cli_rpc_outcome out;
    term_t value, stack; /* owned */
    term_t res_, req_;   /* private: erpc's result tag and the request (monitor) reference */
} cli_rpc;

/* Fills r for node:mod:fun(args); args (a list) is consumed, node borrowed. Set spawn_only
** afterwards for a spawn request instead of a call. */
void cli_rpc_init(cli_rpc *r, term_t node, const char *mod, const char *fun, term_t args);
void cli_rpc_clear(cli_rpc *r);
/*
** Runs the n calls with at most window in flight, until all are answered or the deadline.
** While waiting it serves io requests of the calls' processes (we are their group leader):
** output goes to stdout, or stderr with --json. Returns the number of calls that returned.
*/
size_t cli_rpc_run(cli_rpc *rs, size_t n, size_t window);
/* One line describing a failed call: "exception error: undef in erlang:foo/0", ... */
void cli_rpc_describe(const cli_rpc *r, char *buf, size_t n);
/* Convenience: one call; the value (owned) or TERM_NONE with a description in why. */
term_t cli_call(term_t node, const char *mod, const char *fun, term_t args, char *why, size_t n);

/* Where io output of remote processes goes (stdout, or stderr when stdout carries JSON). */
void cli_set_io_stream(FILE *f);

#endif
