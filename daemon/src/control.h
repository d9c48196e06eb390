/* The control socket: a Unix socket speaking msgpack-rpc, served by an I/O thread and processes. */
#ifndef GIRDERD_CONTROL_H
#define GIRDERD_CONTROL_H
#include "ctlproto.h"

#include <stddef.h>

typedef struct gd_control_cfg {
    const char *path;        /* the socket's path */
    bool make_dir;           /* create the parent directory (0700) if missing */
    size_t max_clients;      /* connected at once */
    size_t max_request;      /* bytes of one request */
    unsigned idle_timeout_s; /* a client without a request in flight or completed is closed */
} gd_control_cfg;

/* Requests in flight per client: reading pauses at this many. */
#define GD_CTL_MAX_INFLIGHT 32

/*
** Binds the socket (mode 0600; a stale socket nobody answers on is replaced) and starts the I/O
** thread. 0, or -1 with a one-line reason in err. Needs the runtime (requests run as processes).
*/
int gd_control_start(const gd_control_cfg *cfg, char *err, size_t errlen);
/* Stops taking connections and requests, lets answers already made reach their clients (at
** most a second), closes every client, joins the thread and removes the socket file. */
void gd_control_stop(void);
/* Frees answers that arrived after the stop; call after nd_shutdown(). */
void gd_control_free(void);

/* What a method asks of the I/O side besides sending its response. */
typedef struct gd_ctl_effects {
    int follow_level;   /* >= 0: stream log lines of this level or more severe (log.follow) */
    bool stop_node;     /* after the response is queued: start the graceful shutdown */
    uint32_t slot, gen; /* in: the client that sent the request (its slot and generation) */
} gd_ctl_effects;

/* methods.c: runs req inside a process and packs the whole response into out. */
void gd_methods_run(gd_ctl_req *req, msgpack_sbuffer *out, gd_ctl_effects *fx);
/* methods.c: the client (slot, generation) has gone; what it owned (a trace) is released. Called
** from the I/O thread when the client is closed. */
void gd_methods_client_gone(uint32_t slot, uint32_t gen);
#endif
