/* Girder epmd internals: wire codec, name registry, request handler (pure) and the libuv server. */
#ifndef GIRDER_EPMD_INT_H
#define GIRDER_EPMD_INT_H

#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>

#include "girder/epmd.h"
#include "girder_be.h"
#include "girder_log.h"

/* ---------------------------------------------------------------------------
** Wire codec (proto.c): pure functions over bytes, no I/O, no allocation.
** ------------------------------------------------------------------------ */

/* A decoded request. Pointers borrow from the bytes given to epmd__parse_request. */
typedef struct epmd__request {
    int type; /* EPMD_*_REQ */
    /* ALIVE2_REQ */
    uint16_t port;
    uint8_t node_type;
    uint8_t protocol;
    uint16_t highest_version;
    uint16_t lowest_version;
    /* ALIVE2_REQ, PORT2_REQ, STOP_REQ */
    const uint8_t *name;
    size_t name_len;
    /* ALIVE2_REQ */
    const uint8_t *extra;
    size_t extra_len;
} epmd__request;

/*
** Framing: `got` bytes of a stream start with a 2-byte length. Returns the
** whole packet's size (header included) once it is known and valid, 0 while
** fewer than 2 bytes are there, EPMD_EMSGSIZE for an empty or oversized
** packet (the connection must be closed).
*/
int epmd__frame_size(const uint8_t *buf, size_t got);

/*
** Decodes one request body (the bytes after the length header). Returns 0,
** or EPMD_EPROTO when the body is not a well-formed request of a known type
** (Erlang's epmd closes such connections without an answer). Field values
** (name encoding, lengths against limits) are checked by epmd__name_valid
** and the handler, because some of them get an error answer, not a close.
*/
int epmd__parse_request(const uint8_t *body, size_t len, epmd__request *req);

/* 1 if `name` is 1..255 characters of valid UTF-8 without NUL, within EPMD_MAX_NAME_BYTES. */
int epmd__name_valid(const uint8_t *name, size_t len);

/* Builds a request packet (header included) into out[cap]. Returns its length or
 * EPMD_EMSGSIZE/EPMD_EINVAL. */
int epmd__encode_alive2(const epmd_node_info *node, uint8_t *out, size_t cap);
int epmd__encode_name_req(int type, const char *name, uint8_t *out, size_t cap);

/*
** Answer decoders, incremental: given the first `len` bytes received, return
** 0 when complete (filling the outputs), a positive count of total bytes
** needed when incomplete, or a negative error (EPMD_EPROTO for garbage,
** EPMD_EEXIST for a refused registration, EPMD_ENOENT for an unknown name).
*/
int epmd__decode_alive_resp(const uint8_t *buf, size_t len, uint32_t *creation, int *extended);
int epmd__decode_port2_resp(const uint8_t *buf, size_t len, epmd_node_info *out);

/* Parses NAMES text into entries; text must be NUL-terminated and is modified in place. */
int epmd__parse_names(char *text, size_t len, epmd_name_entry **entries, size_t *count);

/* ---------------------------------------------------------------------------
** Registry (registry.c): live names plus a bounded memory of old names, so a
** re-registered name gets a new creation (epmd's rule). No I/O.
** ------------------------------------------------------------------------ */

typedef struct epmd__node {
    struct epmd__node *next;
    uint64_t conn_id;    /* the registering connection; 0 once unregistered */
    int fd;              /* that connection's descriptor, for DUMP only */
    uint32_t cr_counter; /* creation counter: starts at the clock, only grows (mod 2^32), >= 4 */
    epmd_node_info info;
} epmd__node;

typedef struct epmd__registry {
    epmd__node *reg;                /* live, newest first (the order NAMES shows) */
    epmd__node *unreg, *unreg_tail; /* old names, oldest first */
    size_t reg_count, unreg_count;
    size_t unreg_max; /* old names kept (1000; 5 with -debug) */
} epmd__registry;

void epmd__registry_init(epmd__registry *r, size_t unreg_max);
void epmd__registry_free(epmd__registry *r);

/* The creation a client sees: 32-bit counter for version >= 6 nodes, else 1..3. */
uint32_t epmd__node_creation(const epmd__node *n);

/*
** Registers req's node for connection conn_id; `now` seeds the creation of a
** never-seen name. Returns the node, or NULL with *err = EPMD_EEXIST (name
** live), EPMD_EINVAL (bad name or extra) or EPMD_ENOMEM.
*/
epmd__node *epmd__registry_add(epmd__registry *r, const epmd__request *req, uint64_t conn_id,
                               int fd, uint32_t now, int *err);
epmd__node *epmd__registry_find(const epmd__registry *r, const uint8_t *name, size_t len);
/* Unregisters the node of conn_id / of that name; returns it (now in the old list) or NULL. */
epmd__node *epmd__registry_remove_conn(epmd__registry *r, uint64_t conn_id);
epmd__node *epmd__registry_remove_name(epmd__registry *r, const uint8_t *name, size_t len);

/* ---------------------------------------------------------------------------
** Request handler (handler.c): what epmd does with one complete request.
** Pure over the registry; the caller does the I/O the result asks for.
** ------------------------------------------------------------------------ */

/* A log sink: level is a GIRDER_LOG_* level; fmt/ap write "event=NAME key=value ...", the
** fields of girder_log.h's line (the sink adds time, level and component). */
typedef void (*epmd__log_fn)(void *arg, int level, const char *fmt, va_list ap);

typedef struct epmd__ctx {
    epmd__registry *reg;
    uint16_t port;    /* the port NAMES and DUMP report */
    int relaxed;      /* -relaxed_command_check */
    epmd__log_fn log; /* may be NULL */
    void *log_arg;
} epmd__ctx;

typedef struct epmd__conn_info {
    uint64_t id;
    int fd;
    int local_peer; /* peer is loopback or this host's own address */
    uint32_t now;   /* seconds, seeds creations */
} epmd__conn_info;

enum epmd__action {
    EPMD__CLOSE = 0, /* close the connection (after sending out, if any) */
    EPMD__KEEP = 1,  /* send out and keep the connection: it holds a registration */
    EPMD__EXIT = 2,  /* send out, then epmd exits (KILL) */
};

typedef struct epmd__reply {
    int action;
    uint8_t *out; /* malloc'd answer, may be NULL; the caller frees it */
    size_t out_len;
    uint64_t stop_conn; /* STOP: close this connection too (its name is already unregistered) */
} epmd__reply;

/*
** Handles one request body from connection `ci`. Always fills `rep`;
** returns 0, or EPMD_ENOMEM (rep->action is then EPMD__CLOSE).
*/
int epmd__handle_request(epmd__ctx *ctx, const epmd__conn_info *ci, const uint8_t *body, size_t len,
                         epmd__reply *rep);

/* Logs through ctx at a GIRDER_LOG_* level (girder-epmd shows notice and above, info with -d,
** debug with -d -d). */
void epmd__log(epmd__ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Room for a node name from the wire as a log value (girder__log_value(): escaped, quoted). */
#define EPMD__LOG_NAME_CAP (EPMD_MAX_NAME_BYTES * 4 + 3)

/* ---------------------------------------------------------------------------
** Server (server.c): the daemon's libuv event loop part.
** ------------------------------------------------------------------------ */
#ifdef UV_VERSION_MAJOR

#define EPMD__MAX_LISTEN 16

typedef struct epmd__server_config {
    uint16_t port;         /* 0: the kernel picks (tests) */
    const char *addresses; /* NULL/empty: any address; else comma/space list, loopback added */
    int relaxed;
    int debug;
    int packet_timeout_s; /* non-registration connections live at most this long */
    size_t max_conns;     /* connections beyond this are closed at once */
    epmd__log_fn log;
    void *log_arg;
} epmd__server_config;

typedef struct epmd__conn epmd__conn;

typedef struct epmd__server {
    uv_loop_t *loop;
    epmd__server_config cfg;
    epmd__registry reg;
    epmd__ctx ctx;
    uv_tcp_t listeners[EPMD__MAX_LISTEN];
    uint8_t listener_closed[EPMD__MAX_LISTEN];
    int nlisteners; /* slots used */
    int nbound;     /* listeners actually listening */
    uv_timer_t sweep;
    epmd__conn *conns; /* doubly linked */
    size_t nconns;
    uint64_t next_id;
    uint16_t bound_port;
    int closing;
    int killed; /* a KILL request was obeyed */
    int pending_closes;
    void (*close_cb)(struct epmd__server *);
} epmd__server;

/*
** Binds and listens. Returns 0, EPMD_EADDRINUSE when the port is taken (an
** epmd is already running), or another error; on error nothing stays open
** (but the loop must still run once to finish closing handles).
*/
int epmd__server_start(epmd__server *s, uv_loop_t *loop, const epmd__server_config *cfg);

/* Closes listeners and connections; close_cb (may be NULL) runs when all are closed. */
void epmd__server_close(epmd__server *s, void (*close_cb)(epmd__server *));

#endif

#endif
