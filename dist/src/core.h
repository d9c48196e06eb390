/* dist internals shared by the runtime core (connections, hook, node-down) and the I/O thread. */
#ifndef DIST_CORE_H
#define DIST_CORE_H

#include "dist_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <girder/epmd_uv.h>

/* ---------------------------------------------------------------- small hash table */

/* An entry keyed by up to two terms (links: local+remote pids; monitors: the ref in a). */
typedef struct dent {
    struct dent *next;
    uint64_t h;
    term_t a, b, c; /* owned */
    int dir;
} dent;

typedef struct dtab {
    dent **b;
    size_t nb, n;
} dtab;

/* ---------------------------------------------------------------- output queue */

typedef struct dchunk {
    struct dchunk *next;
    size_t len, cap;
    uint8_t *data;
} dchunk;

/* A signal kept while the connection is being set up (encoded once the flags are known). */
typedef struct psig {
    struct psig *next;
    term_t ctl, payload; /* control tuple built with the no-flags assumption fixed at flush */
    nd_signal sig;       /* terms dup'ed; kind 0 for a prebuilt ctl */
} psig;

/* ---------------------------------------------------------------- connections */

enum { C_PENDING = 1, C_UP, C_DOWN };
enum { MON_OUT = 1, MON_IN, MON_SPAWN };

typedef struct dsock dsock;

/*
** One peer node. Reference counted; the node table holds one reference while the connection
** is PENDING or UP. Fields under mu unless marked; `sock` belongs to the I/O thread.
*/
typedef struct dconn {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* PENDING -> UP / DOWN */
    atomic_int refs;
    atomic_int state;
    term_t node;            /* atom, immutable */
    _Atomic uint64_t flags; /* negotiated; valid once UP */
    uint32_t creation;
    bool published; /* both sides visible */
    /* out queue */
    dchunk *qhead, *qtail;
    size_t qbytes;
    bool wpending;        /* on the service list or a write in flight */
    int fd;               /* the socket while UP, for direct writes (-1: none) */
    uint64_t last_direct; /* when a sender last wrote directly (ns) */
    bool svc_queued;
    bool want_connect, want_close;
    const char *close_why;
    struct dconn *svc_next;
    psig *phead, *ptail; /* while PENDING */
    dtab links, mons;
    dist_acache acache; /* what the peer's atom cache holds (frames rewritten in wire order) */
    atomic_uint_fast64_t seq;
    atomic_uint_fast64_t out_frames; /* frames sent or queued (ticks are skipped when it moves) */
    /* I/O thread only */
    dsock *sock;
    uv_timer_t *pend_timer; /* PENDING without a socket (lost a simultaneous connect) */
    struct dconn *tab_next;
} dconn;

/* ---------------------------------------------------------------- the distribution */

typedef struct nodemon {
    struct nodemon *next;
    term_t pid;  /* owned */
    term_t node; /* atom, or TERM_NONE for monitor_nodes */
} nodemon;

typedef struct dist_state {
    dist_config cfg;
    char name[HS_MAX_NAME + 1];
    char host[256];
    char cookie[HS_MAX_COOKIE + 1];
    term_t node;
    uint32_t creation;
    uint64_t flags;
    bool dynamic; /* waiting to be named (name holds only the host); I/O thread writes it once */
    unsigned ticktime_s;
    size_t frag_size;
    /* node table */
    pthread_mutex_t mu;
    dconn **tab;
    size_t ntab;
    nodemon *nodemons;
    /* service list: connections the I/O thread must look at */
    pthread_mutex_t svc_mu;
    dconn *svc_head;
    atomic_bool stopping;
    /* I/O thread */
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t async;
    uv_tcp_t listener;
    uv_timer_t ticker;
    epmd_uv_registration *epmd;
    uint16_t port;
    int start_status;
    bool started;
    pthread_mutex_t start_mu;
    pthread_cond_t start_cv;
    dsock *socks; /* every open socket */
    /* stats */
    atomic_uint_fast64_t st_msgs_in, st_msgs_out, st_bytes_in, st_bytes_out, st_ticks_in,
        st_ticks_out, st_up, st_down, st_hs_failed, st_proto;
} dist_state;

extern dist_state *dist__st;

/* core.c */
void dist__conn_put(dconn *c);
dconn *dist__conn_get(term_t node, bool create);
void dist__service(dconn *c);
int dist__send_ctl(dconn *c, term_t ctl, term_t payload);
void dist__conn_up(dconn *c, uint64_t flags, uint32_t creation, int fd);
void dist__conn_fd(dconn *c, int fd);
void dist__send_tick(dconn *c);
void dist__node_down(dconn *c, const char *why);
void dist__deliver(dconn *c, dist_ctl *ctl);
hs_status dist__decide(term_t peer, dsock *s, dconn **out);
dchunk *dist__take_queue(dconn *c, size_t *bytes);
void dist__chunks_free(dchunk *ch);
void dist__nodemon_notify(term_t node, int ev);

/* io.c */
int dist__io_start(void);
void dist__io_stop(void);
void dist__io_wake(void);
void dist__io_start_write(dconn *c);
void dist__io_detach(dconn *c);

/* sys.c */
int dist__sys_start(void);
void dist__sys_exports(void);    /* the built-in exports (before any peer can call them) */
void dist__global_exports(void); /* global:/pg: exports (global.c) */
int dist__global_start(void);    /* global_name_server and pg (global.c) */
void dist__global_stop(void);
void dist__sys_stop(void);
void dist__spawn_request(dconn *c, dist_ctl *ctl);
void dist__spawn_reply(dconn *c, dist_ctl *ctl);
void dist__exports_free(void);

/* table */
void dist__tab_free(dtab *t);
bool dist__tab_add(dtab *t, term_t a, term_t b, term_t c, int dir, bool unique_ab);
bool dist__tab_del(dtab *t, term_t a, term_t b, dent *out);
dent *dist__tab_find(dtab *t, term_t a, term_t b);
dent *dist__tab_take_all(dtab *t);

#endif
