/* A client of girderd's control socket (msgpack-rpc over a Unix socket), for `girder cluster`. */
#ifndef GIRDER_CLI_CTL_H
#define GIRDER_CLI_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What node.info tells `cluster status`. */
typedef struct cli_ctl_info {
    char name[256];
    int64_t os_pid;
    int64_t processes;
    int64_t connections; /* connected nodes, hidden ones included, girder CLIs excluded */
} cli_ctl_info;

/*
** One request without parameters to the control socket at path, waiting at most timeout_ms in
** all (connect, write, answer). node.info fills *info (may be NULL for other methods). 0 on
** success; -1 with one line in why: the socket is missing or refuses (then distribution is the
** way to the node), the node answered an error, or the answer is not what the API documents.
*/
int cli_ctl_node_info(const char *path, int64_t timeout_ms, cli_ctl_info *info, char *why,
                      size_t n);
/* node.stop: the node answered "ok" and is stopping gracefully. 0, or -1 with why. */
int cli_ctl_node_stop(const char *path, int64_t timeout_ms, char *why, size_t n);
/* module.list: 1 when the node loaded the module spec (a bare NAME, found in the node's module
** directory as NAME.so, or an absolute path), 0 when it did not, -1 with why. */
int cli_ctl_has_module(const char *path, int64_t timeout_ms, const char *spec, char *why, size_t n);

#endif
