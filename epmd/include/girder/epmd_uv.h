/* Girder epmd client for libuv programs: asynchronous registration on the caller's loop. */
#ifndef GIRDER_EPMD_UV_H
#define GIRDER_EPMD_UV_H

#include <uv.h>

#include <girder/epmd.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
** The registration handle is caller-allocated and must stay valid until close_cb runs. The
** calls run on the loop's thread only.
*/
typedef struct epmd_uv_registration epmd_uv_registration;

/*
** Called once when the registration completes or fails (status 0 or a negative error), then,
** for a live registration, once more with EPMD_ECONNRESET if epmd closes the connection (the
** registration is gone).
*/
typedef void (*epmd_uv_cb)(epmd_uv_registration *reg, int status);
typedef void (*epmd_uv_close_cb)(epmd_uv_registration *reg);

struct epmd_uv_registration {
    void *data;        /* for the caller */
    uint32_t creation; /* valid after a status-0 callback */
    int extended;
    /* private */
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    uv_timer_t timer;
    epmd_uv_cb cb;
    epmd_uv_close_cb close_cb;
    int state;
    int pending_closes;
    size_t got;
    uint8_t buf[EPMD_MAX_PACKET + 1];
};

/*
** Starts registering `node` with the epmd at `addr` (numeric IPv4/IPv6 and port). Returns 0
** if started (cb will run) or a negative error (cb will not). Either way the handles exist
** afterwards: end with epmd_uv_unregister.
*/
GIRDER_API int epmd_uv_register(uv_loop_t *loop, epmd_uv_registration *reg,
                                const struct sockaddr *addr, const epmd_node_info *node,
                                int timeout_ms, epmd_uv_cb cb);

/* Ends the registration (or aborts it) and closes the handles; no cb after this. */
GIRDER_API void epmd_uv_unregister(epmd_uv_registration *reg, epmd_uv_close_cb close_cb);

#ifdef __cplusplus
}
#endif
#endif
