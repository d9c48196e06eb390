/* The connection state machine: handshake driving, framing, ticks, simultaneous connects, naming.
 */
#ifndef DIST_CHAN_H
#define DIST_CHAN_H

#include "dist_int.h"
#include "transport.h"

/*
** A channel is one byte stream to a peer node, from its connect or accept to its close. A peer
** (the owner's per-node connection, opaque here) is carried by at most one channel at a time;
** the machine decides which, answers the handshake, frames the stream, ticks, and tells the
** owner when a peer comes up, when a frame arrives and when a peer goes down. It runs only on
** the transport's loop thread and knows nothing of sockets, libuv, processes or terms beyond
** node-name atoms.
*/

typedef struct dist_peer dist_peer; /* the owner's */
typedef struct dchan dchan;
typedef struct dist_sm dist_sm;

/* Peer states as the owner keeps them. */
enum { PEER_PENDING = 1, PEER_UP, PEER_DOWN };

/* The machine's part of a peer, embedded in the owner's peer; loop thread only. */
typedef struct dist_sm_slot {
    dchan *ch;           /* the channel carrying, or trying to carry, the peer */
    dist_tr_timer *pend; /* lost a simultaneous connect: how long to wait for the peer's dial */
    dist_sm *sm;         /* while pend is armed: the machine and ... */
    dist_peer *self;     /* ... the peer (a reference) */
} dist_sm_slot;

/* Queued output, as the owner hands it over: a list of byte chunks. */
typedef struct dist_chunk {
    struct dist_chunk *next;
    size_t len, cap; /* bytes at data, room from data */
    uint8_t *data;
    uint8_t *base; /* the allocation data lies in (freed with the chunk) */
} dist_chunk;
/* Frees the chunks; their allocations (from term_alloc_raw) go back through term_free_raw,
** which keeps large ones for the encoders (term_cache_release, girder/term.h). Any thread. */
void dist__chunks_free(dist_chunk *ch);

/* What the machine tells the owner when a peer comes up. */
typedef struct dist_up_info {
    const char *name; /* the peer's node name */
    uint64_t flags;   /* negotiated */
    uint32_t creation;
    dist_tr_stream *stream; /* for direct writes (try_write) until detach() */
} dist_up_info;

/* Upcalls, all on the loop thread. A dist_peer handed out by peer_get is a reference. */
typedef struct dist_sm_owner {
    void *ud;
    /* The peer for node (an atom), created PENDING when missing and create is set; NULL if
    ** none (or the owner refuses: stopping, out of memory). */
    dist_peer *(*peer_get)(void *ud, term_t node, bool create);
    void (*peer_ref)(void *ud, dist_peer *p);
    void (*peer_put)(void *ud, dist_peer *p);
    int (*peer_state)(void *ud, dist_peer *p);
    term_t (*peer_node)(void *ud, dist_peer *p);
    dist_sm_slot *(*slot)(void *ud, dist_peer *p);
    /* The handshake is over: p is up. */
    void (*up)(void *ud, dist_peer *p, const dist_up_info *info);
    /* Senders must stop writing to the stream given at up() (it is about to close). */
    void (*detach)(void *ud, dist_peer *p);
    /* The one node-down: p's connection (up, or being set up) is gone. err: DIST_E* code. */
    void (*down)(void *ud, dist_peer *p, const char *why, int err);
    /* One complete frame (not a tick) from p; < 0 (with *why) closes the channel. */
    int (*frame)(void *ud, dist_peer *p, const uint8_t *f, size_t n, const char **why);
    /* Takes p's queued output (NULL: nothing; the owner then notes that no write is pending). */
    dist_chunk *(*take_output)(void *ud, dist_peer *p, size_t *bytes);
    /* Frames the owner queued or wrote since up (ticks are skipped when it moves). */
    uint64_t (*out_frames)(void *ud, dist_peer *p);
    /* Queues a tick (an empty frame) behind p's output. */
    void (*tick)(void *ud, dist_peer *p);
    /* A dynamically named node was given its name by the peer (before that peer's up()). */
    void (*named)(void *ud, const char *name, uint32_t creation);
    /* The loop was woken (dist__sm_wake from any thread): the owner's service list. */
    void (*service)(void *ud);
    /* The port mapper registration (dist_tr_user.published), passed through. */
    void (*published)(void *ud, int status, uint32_t creation);
    /* One log line "event=... key=value" at an Erlang logger level (see dist__log). */
    void (*log)(void *ud, int level, const char *line);
} dist_sm_owner;

typedef struct dist_sm_config {
    const char *name;     /* our node name; with a dynamic name, only the host */
    const char *cookie;   /* copied */
    uint64_t flags;       /* what we offer (DFLAG_NAME_ME for a dynamic name) */
    uint32_t creation;    /* may be set later (dist__sm_set_identity) */
    unsigned ticktime_ms; /* net_ticktime; ticks every ticktime/tick_intensity */
    unsigned tick_intensity;
    int setup_ms;       /* a handshake must finish within this (net_setuptime) */
    size_t max_message; /* a frame longer than this closes the channel */
    /* inbound connections still in their handshake, from one address and in all (0: 32 and
    ** 256); past either the oldest is closed (see admit() in chan.c) */
    unsigned max_handshakes_per_addr, max_handshakes;
} dist_sm_config;

/*
** Creates the machine over transport tr, which it takes over: tr's user is the machine (and,
** through it, owner). The transport is not started; the caller listens/publishes and runs it.
*/
dist_sm *dist__sm_new(const dist_sm_config *cfg, const dist_sm_owner *owner, dist_tr *tr);
/* Frees the machine (after dist__sm_shutdown and the transport's stop) but not the transport. */
void dist__sm_free(dist_sm *sm);
dist_tr *dist__sm_transport(dist_sm *sm);
/* Our name and creation (after the port mapper or the naming peer gave them). Loop thread, or
** before run. */
void dist__sm_set_identity(dist_sm *sm, const char *name, uint32_t creation, uint64_t flags);

/* Loop thread: starts an outgoing attempt for a PENDING peer without a channel. */
void dist__sm_connect(dist_sm *sm, dist_peer *p);
/* Loop thread: closes p's channel (if any) and brings p down with why. */
void dist__sm_close(dist_sm *sm, dist_peer *p, const char *why);
/* Loop thread: stops (true) or resumes reading p's channel; ticks do not count a paused
** channel's silence. */
void dist__sm_pause(dist_sm *sm, dist_peer *p, bool pause);
/* Loop thread: true while some connected channel has a write in flight. */
bool dist__sm_writing(dist_sm *sm);
/* Loop thread, stopping: logs each connected channel whose write is still in flight (what it
** held is lost when the channels close). */
void dist__sm_log_unwritten(dist_sm *sm);
/* Loop thread: p has output queued; writes it unless a write is in flight. */
void dist__sm_kick(dist_sm *sm, dist_peer *p);
/* Loop thread: closes every channel and the tick timer (the owner brought its peers down). */
void dist__sm_shutdown(dist_sm *sm);
/* Any thread: wakes the loop, which calls owner.service. */
void dist__sm_wake(dist_sm *sm);

typedef struct dist_sm_stats {
    uint64_t bytes_in, bytes_out, ticks_in, ticks_out, handshakes_failed, protocol_errors;
    uint64_t layer_failures; /* channels failed in the transport's own layer (TLS) */
} dist_sm_stats;
void dist__sm_stats(dist_sm *sm, dist_sm_stats *out);

#endif
