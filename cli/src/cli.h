/* Internal interface of the girder CLI: options, commands, the CLI's own node, JSON output. */
#ifndef GIRDER_CLI_H
#define GIRDER_CLI_H

#include <girder/term.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

/* Exit statuses: success; the operation failed (reason on stderr); usage or input error. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* Default bound on every network wait, and the one `cluster up` uses to wait for nodes. */
#define CLI_DEFAULT_TIMEOUT_MS    10000
#define CLI_DEFAULT_UP_TIMEOUT_MS 30000
#define CLI_DEFAULT_DIR           ".girder/cluster"
/* `cluster up --module M` may repeat this many times. */
#define CLI_MAX_MODULES 8

/* ---------------------------------------------------------------- options */

/* One bit per flag, so that a command can refuse the flags it does not take. */
enum {
    CLI_F_COOKIE = 1u << 0,
    CLI_F_TIMEOUT = 1u << 1,
    CLI_F_JSON = 1u << 2,
    CLI_F_DIR = 1u << 3,
    CLI_F_PROTO = 1u << 4,
    CLI_F_SSLOPT = 1u << 5,
    CLI_F_VERBOSE = 1u << 6,
    CLI_F_SORT = 1u << 7,
    CLI_F_LIMIT = 1u << 8,
    CLI_F_N = 1u << 9,
    CLI_F_ERLANG = 1u << 10,
    CLI_F_PREFIX = 1u << 11,
    CLI_F_HELP = 1u << 12,
    CLI_F_MODULE = 1u << 13,
    CLI_F_INTERVAL = 1u << 14, /* top */
    CLI_F_ONCE = 1u << 15,
    CLI_F_DURATION = 1u << 16, /* trace */
    CLI_F_OUT = 1u << 17,
    CLI_F_HTML = 1u << 18,
    CLI_F_PID = 1u << 19,
    CLI_F_NAME = 1u << 20,
};
/* Flags every node command takes. */
#define CLI_F_SHARED                                                                      \
    (CLI_F_COOKIE | CLI_F_TIMEOUT | CLI_F_JSON | CLI_F_DIR | CLI_F_PROTO | CLI_F_SSLOPT | \
     CLI_F_VERBOSE | CLI_F_HELP)

typedef struct cli_opts {
    unsigned given; /* CLI_F_* bits of the flags present */
    const char *cookie, *dir, *proto_dist, *ssl_optfile, *sort, *prefix;
    int64_t timeout_ms; /* CLI_DEFAULT_TIMEOUT_MS unless --timeout */
    long limit, n, erlang;
    bool json, verbose;
    const char *modules[CLI_MAX_MODULES]; /* --module, in order */
    int nmodules;
    long interval_ms, duration_s;        /* top --interval, trace --duration */
    bool once;                           /* top --once */
    const char *out, *html, *pid, *name; /* trace --out, --html, --pid, --name */
    int argc;                            /* positional arguments after the command word(s) */
    char **argv;
} cli_opts;

typedef struct cli_command {
    const char *name; /* "ping", "cluster up" */
    const char *summary;
    const char *help; /* the text of `girder NAME --help`, example included */
    unsigned flags;   /* the CLI_F_* it accepts */
    int min_args;     /* positional arguments */
    int max_args;     /* -1: any number */
    int (*run)(const cli_opts *o);
} cli_command;

/* The text `girder --help` prints about the flags every node command shares. */
extern const char cli_shared_flags_help[];

/* Node commands (cmd_node.c) and cluster commands (cmd_cluster.c). */
int cli_cmd_ping(const cli_opts *o);
int cli_cmd_nodes(const cli_opts *o);
int cli_cmd_ps(const cli_opts *o);
int cli_cmd_info(const cli_opts *o);
int cli_cmd_rpc(const cli_opts *o);
int cli_cmd_spawn(const cli_opts *o);
int cli_cmd_send(const cli_opts *o);
int cli_cmd_exit(const cli_opts *o);
int cli_cmd_stop(const cli_opts *o);
int cli_cmd_cluster_up(const cli_opts *o);
int cli_cmd_cluster_status(const cli_opts *o);
int cli_cmd_cluster_down(const cli_opts *o);
/* Observability (cmd_top.c, cmd_trace.c). */
int cli_cmd_top(const cli_opts *o);
int cli_cmd_trace(const cli_opts *o);
/* `girder term` parses its own arguments (argv[0] == "term"). */
int cli_cmd_term(int argc, char **argv);

/* ---------------------------------------------------------------- small helpers (io.c) */

/* Reads all of f into a malloc'ed buffer (NUL-terminated for text use). 0 or -errno. */
int cli_read_all(FILE *f, uint8_t **data, size_t *len);
/* Writes all bytes to f; 0 or -errno. */
int cli_write_all(FILE *f, const void *data, size_t len);
/* Prints "girder: <fmt>\n" on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* snprintf for messages and paths: true when the text fit (a message may be cut; a path
** that does not fit must be refused by the caller). */
bool cli_fmt(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Directory of the running executable (where girderd and girder-epmd live). 0 or -1. */
int cli_exe_dir(char *out, size_t n);

/* ---------------------------------------------------------------- JSON output (json.c) */

/*
** One JSON document built in memory and written at the end, so stdout carries exactly one
** document. Strings are escaped per RFC 8259; invalid UTF-8 bytes become U+FFFD. Nesting is
** bounded (CLI_JSON_DEPTH); deeper opens are ignored, which only a bug could cause.
*/
#define CLI_JSON_DEPTH 16
typedef struct cli_json {
    etf_buf b;
    int depth;
    bool first[CLI_JSON_DEPTH]; /* nothing written yet at this level */
    uint32_t arrays;            /* bit d: level d is an array (else an object) */
    bool after_key;
    int err; /* first allocation failure, TERM_ENOMEM */
} cli_json;

void cli_json_obj(cli_json *j);
void cli_json_arr(cli_json *j);
void cli_json_end(cli_json *j); /* closes the innermost object or array */
void cli_json_key(cli_json *j, const char *k);
void cli_json_str(cli_json *j, const char *s);
void cli_json_strn(cli_json *j, const char *s, size_t n);
void cli_json_int(cli_json *j, int64_t v);
void cli_json_bool(cli_json *j, bool v);
/* A number with that many decimals (NaN and infinities become 0). */
void cli_json_double(cli_json *j, double v, int decimals);
void cli_json_null(cli_json *j);
/* A term as JSON: the string of its Erlang text (~p form, pids of ctx's node short). */
void cli_json_term(cli_json *j, term_t t, const term_text_ctx *ctx);
/* Writes the document and a newline to f and frees it; 0, or -1 on error. */
int cli_json_write(cli_json *j, FILE *f);
void cli_json_free(cli_json *j);

/* ---------------------------------------------------------------- terms as text */

/* The ~p text of t, malloc'ed (the CLI aborts on ENOMEM). */
char *cli_term_text(term_t t, const term_text_ctx *ctx);
/* Appends UTF-8 text for Erlang chardata (binaries, code points, nested lists) to out.
** latin1: binaries are latin-1 bytes. 0, or -1 if t is not chardata. */
int cli_chardata(term_t t, bool latin1, etf_buf *out);

#endif
