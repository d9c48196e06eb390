/* The cluster directory of `girder cluster`: its state file, cookie file and process identities. */
#ifndef GIRDER_CLI_CLUSTERDIR_H
#define GIRDER_CLI_CLUSTERDIR_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CL_MAX_NODES 64
#define CL_PATH      1024 /* longest path kept in the state (logs, control sockets) */

/* A process the cluster started: pid plus its start time (field 22 of /proc/PID/stat), so a
** recycled pid is never mistaken for ours. */
typedef struct cl_proc {
    pid_t pid; /* 0: none */
    unsigned long long start;
} cl_proc;

typedef struct cl_node {
    char name[256]; /* full node name */
    char kind[16];  /* "girder" or "erlang" */
    cl_proc proc;
    char log[CL_PATH];
    char ctl[CL_PATH]; /* control socket path, "" when the node has none */
} cl_node;

/* About 150 KB: allocate it on the heap. */
typedef struct cl_state {
    uint16_t epmd_port;
    char tls_optfile[CL_PATH]; /* the nodes run TLS distribution with this optfile; "": TCP */
    cl_proc epmd;              /* the port mapper `up` started; pid 0 when it found one running */
    size_t n;
    cl_node nodes[CL_MAX_NODES];
} cl_state;

/* File names inside the directory. */
#define CL_STATE_FILE  "cluster"
#define CL_COOKIE_FILE "cookie"
#define CL_LOCK_FILE   "lock"
#define CL_EPMD_LOG    "epmd.log"

/* Reads DIR/cluster. 0; -ENOENT when there is none; -EINVAL (with a line on stderr) when it
** is malformed. */
int cl_load(const char *dir, cl_state *st);
/* Writes DIR/cluster atomically (temporary file + rename). 0 or -errno. */
int cl_save(const char *dir, const cl_state *st);
/* Reads DIR/cookie (first line) into buf. 0 or -errno. */
int cl_read_cookie(const char *dir, char *buf, size_t n);
/* Writes DIR/cookie with mode 0400 (replacing an old one). 0 or -errno. */
int cl_write_cookie(const char *dir, const char *cookie);

/* The start time of pid (0 if it does not exist). */
unsigned long long cl_proc_start(pid_t pid);
/* The process still exists, is not a zombie, and is the one recorded. */
bool cl_proc_alive(const cl_proc *p);
/* The index of node name in st, or -1. */
int cl_find(const cl_state *st, const char *name);

#endif
