/* Girder epmd client library: Erlang's port mapper protocol, for girder-epmd or Erlang's epmd. */
#ifndef GIRDER_EPMD_H
#define GIRDER_EPMD_H

#include <stddef.h>
#include <stdint.h>

#include <girder/error.h>
#include <girder/export.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------
** Protocol constants (erts/doc erl_dist_protocol, "EPMD Protocol").
** ------------------------------------------------------------------------ */
#define EPMD_DEFAULT_PORT 4369

#define EPMD_ALIVE2_REQ    120 /* 'x' */
#define EPMD_ALIVE2_RESP   121 /* 'y', 16-bit creation */
#define EPMD_ALIVE2_X_RESP 118 /* 'v', 32-bit creation */
#define EPMD_PORT2_REQ     122 /* 'z' */
#define EPMD_PORT2_RESP    119 /* 'w' */
#define EPMD_NAMES_REQ     110 /* 'n' */
#define EPMD_DUMP_REQ      100 /* 'd' */
#define EPMD_KILL_REQ      107 /* 'k' */
#define EPMD_STOP_REQ      115 /* 's' */

#define EPMD_NODE_TYPE_NORMAL 77 /* 'M' */
#define EPMD_NODE_TYPE_HIDDEN 72 /* 'H' */
#define EPMD_PROTOCOL_TCP     0

/* A node name is an atom: at most 255 characters, UTF-8, so at most 1020 bytes. */
#define EPMD_MAX_NAME_CHARS 255
#define EPMD_MAX_NAME_BYTES (255 * 4)
#define EPMD_MAX_EXTRA      (255 * 4)
/* Largest request epmd accepts, length header included (Erlang's INBUF_SIZE - 1). */
#define EPMD_MAX_PACKET (3 * EPMD_MAX_NAME_BYTES - 1)

/* ---------------------------------------------------------------------------
** Errors: 0 on success, or a negative code of Girder's one error space
** (girder/error.h): a negative errno where one fits, so system and libuv
** errors pass through unchanged. The EPMD_ names are aliases kept for
** existing callers.
** ------------------------------------------------------------------------ */
enum {
    EPMD_EINVAL = GIRDER_EINVAL,
    EPMD_ENOMEM = GIRDER_ENOMEM,
    EPMD_ETIMEDOUT = GIRDER_ETIMEDOUT,
    EPMD_ECONNREFUSED = GIRDER_ECONNREFUSED,
    EPMD_ECONNRESET = GIRDER_ECONNRESET,
    EPMD_EPROTO = GIRDER_EPROTO,
    EPMD_ENOENT = GIRDER_ENOENT,
    EPMD_EEXIST = GIRDER_EEXIST,
    EPMD_EPERM = GIRDER_EPERM,
    EPMD_ENAMETOOLONG = GIRDER_ENAMETOOLONG,
    EPMD_EMSGSIZE = GIRDER_EMSGSIZE,
    EPMD_EHOSTUNREACH = GIRDER_EHOSTUNREACH,
    EPMD_EADDRINUSE = GIRDER_EADDRINUSE,
    EPMD_EIO = GIRDER_EIO,
};

/* Aliases of girder_strerror() and girder_err_name(). */
static inline const char *epmd_strerror(int err)
{
    return girder_strerror(err);
}
static inline const char *epmd_err_name(int err)
{
    return girder_err_name(err);
}

/* ---------------------------------------------------------------------------
** Client. Every call is blocking with a timeout in milliseconds (< 0: wait
** forever, which only tools should do). `host` NULL means 127.0.0.1; name
** resolution through getaddrinfo() is not covered by the timeout, so pass
** numeric addresses where that matters. `epmd_port` 0 means ERL_EPMD_PORT
** from the environment, else 4369. The functions are thread-safe: they share
** no state.
** ------------------------------------------------------------------------ */

/* What a node tells epmd about itself, and what PORT_PLEASE2 answers. */
typedef struct epmd_node_info {
    uint16_t port;            /* the node's distribution listen port */
    uint8_t node_type;        /* EPMD_NODE_TYPE_NORMAL or _HIDDEN */
    uint8_t protocol;         /* EPMD_PROTOCOL_TCP */
    uint16_t highest_version; /* distribution protocol versions, 5 or 6 */
    uint16_t lowest_version;
    size_t name_len;                    /* bytes in name */
    char name[EPMD_MAX_NAME_BYTES + 1]; /* alive part ("foo" of foo@host), NUL-terminated */
    size_t extra_len;
    uint8_t extra[EPMD_MAX_EXTRA];
} epmd_node_info;

/* Fills `info` with the usual values of an OTP 25 node: visible, TCP, versions 6..6. */
int epmd_node_info_init(epmd_node_info *info, const char *name, uint16_t port);

/* The port epmd uses when epmd_port is 0: ERL_EPMD_PORT if valid, else 4369. */
uint16_t epmd_default_port(void);

/* A registration lives exactly as long as its connection to epmd. */
typedef struct epmd_registration {
    int fd;            /* the open connection; -1 once unregistered */
    uint32_t creation; /* the creation epmd assigned */
    int extended;      /* 1: ALIVE2_X_RESP (32-bit creation), 0: ALIVE2_RESP (16-bit) */
} epmd_registration;

/*
** Registers `node` (ALIVE2_REQ) and keeps the connection open in `reg`.
** Returns 0 with reg->creation set; EPMD_EEXIST when epmd refuses (name in
** use, or invalid); EPMD_ECONNRESET when epmd closes without answering (it
** does so for requests from a non-local address); network errors otherwise.
** On failure reg->fd is -1 and nothing stays open.
*/
int epmd_register(const char *host, uint16_t epmd_port, const epmd_node_info *node, int timeout_ms,
                  epmd_registration *reg);

/*
** Checks, without blocking, that epmd still holds the registration: returns
** 0 if the connection is open, EPMD_ECONNRESET if epmd closed it (the
** registration is gone; call epmd_unregister to release the descriptor).
*/
int epmd_registration_check(const epmd_registration *reg);

/* Ends the registration by closing its connection. Safe to call twice. */
void epmd_unregister(epmd_registration *reg);

/*
** PORT_PLEASE2: looks `name` up. 0 with `out` filled, EPMD_ENOENT when epmd
** does not know the name, other errors as above.
*/
int epmd_port_please(const char *host, uint16_t epmd_port, const char *name, int timeout_ms,
                     epmd_node_info *out);

/* One registered name as NAMES_REQ lists it. */
typedef struct epmd_name_entry {
    const char *name; /* NUL-terminated, owned by the epmd_names it came in */
    uint16_t port;
} epmd_name_entry;

typedef struct epmd_name_list {
    uint32_t epmd_port; /* the port epmd says it listens on */
    size_t count;
    epmd_name_entry *entries;
    char *text; /* the raw "name X at port N\n" text, NUL-terminated */
    size_t text_len;
    char *storage_; /* private: what entries point into */
} epmd_name_list;

/*
** NAMES_REQ: lists registered names. On 0 the caller owns `out` and frees
** it with epmd_names_free. Lines that are not "name N at port P" give EPMD_EPROTO.
*/
int epmd_names(const char *host, uint16_t epmd_port, int timeout_ms, epmd_name_list *out);
void epmd_names_free(epmd_name_list *names);

/* DUMP_REQ: the raw dump text (lines end in "\n\0" as Erlang's epmd sends them). Free with free().
 */
int epmd_dump(const char *host, uint16_t epmd_port, int timeout_ms, uint32_t *epmd_port_out,
              char **text, size_t *text_len);

/* KILL_REQ: 0 if epmd answered OK (it exits), EPMD_EPERM if it answered NO (live nodes). */
int epmd_kill(const char *host, uint16_t epmd_port, int timeout_ms);

/*
** STOP_REQ: forcibly unregisters `name`. 0 for STOPPED, EPMD_ENOENT for
** NOEXIST, EPMD_ECONNRESET when epmd refuses silently (no relaxed command check).
*/
int epmd_stop(const char *host, uint16_t epmd_port, const char *name, int timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
