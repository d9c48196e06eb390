/* A small msgpack-rpc client of girderd's control socket, for the daemon's integration tests. */
#ifndef CTLCLIENT_H
#define CTLCLIENT_H
#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct ctl_conn {
    int fd;
    msgpack_unpacker up;
} ctl_conn;

/* 0, or -errno. */
int ctl_connect(ctl_conn *c, const char *path);
void ctl_close(ctl_conn *c);
/* Writes all of buf; 0 or -errno. */
int ctl_send(ctl_conn *c, const void *buf, size_t n);
/* The next msgpack object within timeout_ms: 1 (u filled; msgpack_unpacked_destroy it), 0 when
** the daemon closed the connection, -1 on timeout or error. */
int ctl_read(ctl_conn *c, msgpack_unpacked *u, int timeout_ms);

/*
** Packs [0, msgid, method, Params] where each arg is one of
**   s:TEXT  a string (Erlang text for term params)   i:N  an integer
**   e:TEXT  a bin holding the ETF of the term TEXT     b:true|false  a boolean
**   opt:KEY=VALUE  an entry of the trailing options map (true/false, an integer, or a string)
** Returns 0, or -1 for an arg it does not understand.
*/
int ctl_pack_request(msgpack_sbuffer *sb, uint32_t msgid, const char *method, int nargs,
                     char *const *args);

/* Sends a request and waits (up to timeout_ms) for the response with that msgid, skipping
** notifications. 1 with *u holding [1, MsgId, Error, Result]; 0 closed; -1 timeout/error. */
int ctl_call(ctl_conn *c, uint32_t msgid, const char *method, int nargs, char *const *args,
             msgpack_unpacked *u, int timeout_ms);

/* Prints an object as JSON-like text (bins as b64-free hex: <<..>>). */
void ctl_print(FILE *f, const msgpack_object *o);
const msgpack_object *ctl_get(const msgpack_object *map, const char *key);
bool ctl_str_eq(const msgpack_object *o, const char *s);
/* A str object as a malloc'ed C string (NULL if not a str). */
char *ctl_strdup(const msgpack_object *o);
#endif
