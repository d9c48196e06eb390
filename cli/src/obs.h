/* What `girder top` and `girder trace` share: finding a local girderd's control socket, and a
 * connection to it that stays open for many calls. */
#ifndef GIRDER_CLI_OBS_H
#define GIRDER_CLI_OBS_H

#include "cli.h"

#include <msgpack.h>

/* An open control connection (msgpack-rpc over the node's Unix socket). */
typedef struct cli_oc {
    int fd;
    uint32_t next_id;
    msgpack_unpacker up;
    msgpack_unpacked u; /* the latest answer: valid until the next call */
    char path[1024];
} cli_oc;

/*
** Finds and opens the control socket of the local girderd called node (a full name): the path
** recorded for it in the cluster directory (--dir, default ./.girder/cluster) if it is there,
** else girderd's default path for ERL_EPMD_PORT (docs/control-api.md); node.info must answer
** with that name. 0, or -1 with why (then distribution is the way to the node).
*/
int cli_oc_open_node(cli_oc *c, const cli_opts *o, const char *node, char *why, size_t n);
void cli_oc_close(cli_oc *c);

/*
** One call: params is a packed msgpack array (the Params of the request). On success 0 and
** *result points into c->u (valid until the next call); -1 with why (an error answer, a
** timeout after timeout_ms, a closed socket, an answer larger than 64 MiB).
*/
int cli_oc_call(cli_oc *c, const char *method, const char *params, size_t len, int64_t timeout_ms,
                const msgpack_object **result, char *why, size_t n);

/* Helpers over msgpack maps: the value of key or NULL; an unsigned (0 if absent); a string into
** buf ("" if absent). */
const msgpack_object *cli_mp_get(const msgpack_object *m, const char *key);
uint64_t cli_mp_u64(const msgpack_object *m, const char *key);
const char *cli_mp_str(const msgpack_object *o, char *buf, size_t n);

#endif
