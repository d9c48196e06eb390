/* The transport interface under distribution: byte streams, timers, the clock, randomness,
 * wake-ups. */
#ifndef DIST_TRANSPORT_H
#define DIST_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
** A transport owns one event loop ("the loop thread": a thread of its own for TCP, the caller of
** dist__mem_run for the in-memory one). Everything in dist that is not a sender encoding a
** message runs on that loop, called back through dist_tr_user. Apart from wake(), now_ns(),
** realtime_ns(), random() and try_write(), the operations are called on the loop thread, or
** before run(). A stream or timer belongs to the loop; closing/freeing one ends its callbacks
** at once (the transport defers the memory until it is safe).
**
** Errors are negative GIRDER_E* / errno values; 0 is success.
*/

typedef struct dist_tr dist_tr;               /* one transport instance */
typedef struct dist_tr_stream dist_tr_stream; /* one byte stream (a connection) */
typedef struct dist_tr_timer dist_tr_timer;

typedef struct dist_iov {
    const uint8_t *base;
    size_t len;
} dist_iov;

/* What the transport tells its user, on the loop thread. ud is dist_tr_user.ud; a stream's
** own user data is set with stream_set_ud. */
typedef struct dist_tr_user {
    void *ud;
    /* An inbound stream; the user owns it (reads are not started). */
    void (*accepted)(void *ud, dist_tr_stream *s);
    /* An outbound stream from connect() is ready (status 0) or failed (why says how, for the
    ** log). version is the peer's highest handshake version as its port mapper announced it. */
    void (*connected)(void *ud, dist_tr_stream *s, int status, int version, const char *why);
    /* Read buffer for the next read of s: *buf with room *cap (> 0); *cap 0 = out of memory. */
    void (*alloc)(void *ud, dist_tr_stream *s, uint8_t **buf, size_t *cap);
    /* n > 0 bytes were put at the start of the last buffer; n < 0: end of stream or error. */
    void (*read)(void *ud, dist_tr_stream *s, ssize_t n);
    /* A write() finished; status < 0 means the stream failed. */
    void (*written)(void *ud, dist_tr_stream *s, int status, void *req);
    /* Somebody called wake() (coalesced: one call may stand for several wakes). */
    void (*wake)(void *ud);
    /* The port mapper registration from publish(): status 0 with the creation it gave, or an
    ** error (at start, or later when the registration is lost). */
    void (*published)(void *ud, int status, uint32_t creation);
} dist_tr_user;

typedef struct dist_tr_ops {
    const char *name;   /* "tcp", "tls", "mem" */
    int handshake_plen; /* length-prefix bytes of handshake packets: 2 (TCP), 4 (TLS) */

    /* Starts the loop (a thread for TCP). Before it: listen, publish. */
    int (*run)(dist_tr *t);
    /* Loop thread: closes the listener, the registration and the wake-up handle; the loop ends
    ** once the user has closed its streams and timers too. */
    void (*shutdown)(dist_tr *t);
    /* From the thread that called run() (never the loop): waits up to timeout_ms (< 0: forever)
    ** for the loop to end; DIST_ETIMEOUT if it did not. */
    int (*join)(dist_tr *t, int64_t timeout_ms);
    /* Frees the transport (after join, or when run never happened). */
    void (*destroy)(dist_tr *t);

    /* Listens on a numeric address (NULL: any) and port (0: any); *bound gets the port. */
    int (*listen)(dist_tr *t, const char *addr, uint16_t port, uint16_t *bound);
    /* Registers alive/port with the port mapper; the outcome arrives through published(). */
    int (*publish)(dist_tr *t, const char *alive, uint16_t port, bool hidden, int timeout_ms);
    /* Looks node ("alive@host") up and connects to it; the outcome through connected(). The
    ** stream exists at once (close it to abandon the attempt). */
    int (*connect)(dist_tr *t, const char *node, int timeout_ms, void *stream_ud,
                   dist_tr_stream **out);

    void (*stream_set_ud)(dist_tr_stream *s, void *ud);
    void *(*stream_ud)(dist_tr_stream *s);
    /* "ip:port" of the peer, for logs. */
    void (*stream_peer)(dist_tr_stream *s, char *buf, size_t cap);
    int (*read_start)(dist_tr_stream *s);
    void (*read_stop)(dist_tr_stream *s);
    /* Queues the buffers (kept by the caller until written() reports req) in order. */
    int (*write)(dist_tr_stream *s, const dist_iov *iov, size_t n, void *req);
    /*
    ** From any thread, while the user guarantees the stream stays open and no write() is in
    ** flight on it: writes what the stream takes at once without blocking. Returns the bytes
    ** taken (possibly 0), or < 0 when the stream is failing (the loop will see it). Bytes taken
    ** are the transport's to deliver (TLS may leave ciphertext for its loop to write). NULL when
    ** the transport cannot (the in-memory one): callers queue instead.
    */
    ssize_t (*try_write)(dist_tr_stream *s, const uint8_t *p, size_t n);
    /* Closes; no callback for s comes after this returns (an in-flight write's req is not
    ** reported: the user frees what it kept for it). */
    void (*close)(dist_tr_stream *s);
    /*
    ** Optional (NULL when the transport has no protocol of its own under the distribution, as
    ** TCP): whether the stream's own layer (TLS) failed or never finished its setup. Returns
    ** false when it is up and healthy, or not started yet (no connection); else true with why
    ** in buf (OpenSSL's reason, or that its handshake did not finish). The machine asks when a
    ** channel fails, to report the failure as that layer's (event=<name>_failed).
    */
    bool (*stream_fault)(dist_tr_stream *s, char *buf, size_t cap);

    dist_tr_timer *(*timer_new)(dist_tr *t, void (*cb)(void *ud), void *ud);
    /* (Re)arms: cb after ms, then every repeat_ms if non-zero. */
    void (*timer_start)(dist_tr_timer *tm, uint64_t ms, uint64_t repeat_ms);
    void (*timer_stop)(dist_tr_timer *tm);
    void (*timer_free)(dist_tr_timer *tm);

    /* Any thread. */
    uint64_t (*now_ns)(dist_tr *t);      /* monotonic */
    uint64_t (*realtime_ns)(dist_tr *t); /* wall clock, for log lines */
    void (*random)(dist_tr *t, void *buf, size_t n);
    void (*wake)(dist_tr *t);
    /* Optional (NULL: the transport has no such threads): reads made on the loop's own thread
    ** and by idle schedulers running the loop (tr_tcp.c), since the transport was made. */
    void (*reads)(dist_tr *t, uint64_t *on_loop_thread, uint64_t *on_schedulers);
} dist_tr_ops;

/* Every transport instance starts with this header. */
struct dist_tr {
    const dist_tr_ops *ops;
    dist_tr_user user;
};

/* ---------------------------------------------------------------- implementations */

/* TCP over libuv (tr_tcp.c): epmd_port is the port mapper's port (0: ERL_EPMD_PORT/4369). */
dist_tr *dist__tcp_new(const dist_tr_user *user, uint16_t epmd_port);

/*
** The TLS transport (tr_tls.c): a decorator running the TLS engine (tls.h) over the streams of
** inner, which it takes over (inner's user becomes the decorator; destroy frees inner too).
** server and client are the contexts of the two roles; the transport takes a reference to each.
** Connections run TLS from their first byte (a client sends the host part of the node name it
** dials as SNI and checks the server certificate against it), then carry plaintext with the
** handshake's 4-byte length prefixes, as OTP's inet_tls_dist. log (may be NULL) gets one line
** per TLS connection set up; failures are the machine's to log (stream_fault).
*/
struct dist_tls_ctx;
dist_tr *dist__tls_tr_new(dist_tr *inner, struct dist_tls_ctx *server, struct dist_tls_ctx *client,
                          void (*log)(void *ud, int level, const char *line), void *log_ud);
/* Ciphertext the TLS transport keeps waiting to be sent per connection before it stops taking
** plaintext from the machine (a write in flight counts). */
#define DIST_TLS_TX_HIGH (256u << 10)

/*
** The in-memory transport (tr_mem.c), for tests and, later, a simulator: a network of
** transports in one thread, a manual clock, delivery in pieces of a chosen size, and a
** port-mapper table. Nothing runs until dist__mem_run / dist__mem_advance.
*/
typedef struct dist_mem_net dist_mem_net;
dist_mem_net *dist__mem_net_new(uint64_t seed);
void dist__mem_net_free(dist_mem_net *net);
/* A transport on host (the host part of its node names). */
dist_tr *dist__mem_new(dist_mem_net *net, const char *host, const dist_tr_user *user);
/* Runs pending events until there are none (bounded by max_events; returns how many ran). */
size_t dist__mem_run(dist_mem_net *net, size_t max_events);
/* Moves the manual clock forward by ms, running what comes due, in time order. */
void dist__mem_advance(dist_mem_net *net, uint64_t ms);
uint64_t dist__mem_now_ms(dist_mem_net *net);
/* Reads deliver at most chunk bytes at a time (0: unlimited); split_at > 0 cuts the byte stream
** of every stream once more at that offset, whatever the chunk size. */
void dist__mem_set_delivery(dist_mem_net *net, size_t chunk, size_t split_at);
/* Silences host a towards host b (bytes a writes to b are held, not delivered) until undone. */
void dist__mem_silence(dist_mem_net *net, const char *a, const char *b, bool on);
/* Sets the handshake version the port-mapper entry alive@host announces (5 or 6; default 6). */
void dist__mem_set_version(dist_mem_net *net, const char *alive, const char *host, int version);
/* A listener on host that accepts and then never answers (a stalled peer): streams to it
** connect and everything written to them is swallowed. */
void dist__mem_blackhole(dist_mem_net *net, const char *alive, const char *host, int version);

#endif
