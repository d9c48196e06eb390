/* The TLS engine of dist: OpenSSL behind a byte-in/byte-out interface that does no I/O itself. */
#ifndef DIST_TLS_H
#define DIST_TLS_H

#include "tls_config.h"

#include <girder/dist.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/*
** Results besides 0 (done) and the negative DIST_E* codes of girder/dist.h:
** DIST_TLS_AGAIN: nothing more can happen until more ciphertext arrives (output may still be
** pending: check dist__tls_tx_pending()). DIST_TLS_EOF: the peer sent close_notify.
** A failure is DIST_EPROTO with dist__tls_why() saying what OpenSSL said, or DIST_ENOMEM.
*/
enum { DIST_TLS_AGAIN = 1, DIST_TLS_EOF = 2 };

/* ---------------------------------------------------------------- contexts */

/* One role's settings (certificates, CAs, versions...), shared by every connection of that
** role; thread-safe; reference counted (engines hold a reference). */
typedef struct dist_tls_ctx dist_tls_ctx;

/*
** Builds a context from one role of the configuration (the files are read now). Returns 0, or
** DIST_EINVAL with err naming the role, the option and OpenSSL's reason (unreadable file,
** key not matching the certificate, unknown cipher name...), or DIST_ENOMEM.
*/
int dist__tls_ctx_new(const dist_tls_role *role, bool server, dist_tls_ctx **out, char *err,
                      size_t errlen);
/* Takes one more reference (each dist__tls_ctx_free drops one). */
void dist__tls_ctx_ref(dist_tls_ctx *c);
void dist__tls_ctx_free(dist_tls_ctx *c);
/* When to re-key by ourselves, as OTP does: TLS 1.3 KeyUpdate after this many plaintext bytes
** (OTP: 388736063997 for AES-GCM), TLS 1.2 renegotiation after this many records (OTP: 2^28).
** 0 keeps the default. For tests. */
void dist__tls_ctx_set_rekey(dist_tls_ctx *c, uint64_t tls13_bytes, uint64_t tls12_records);

/* ---------------------------------------------------------------- connections */

/* One connection's TLS state; used by one thread at a time. */
typedef struct dist_tls dist_tls;

/*
** A new engine of c's role. A client needs peer_host, the host part of the peer's node name:
** it is sent as SNI and, with verify_peer, the server certificate must name it (OTP 25's
** rule: a SAN dNSName equal to it, ASCII case-insensitive; without any SAN, the subject CN,
** with a wildcard allowed in its first label; IP SANs are not consulted). It also keys the
** TLS 1.2 session cache (reuse_sessions). Servers pass NULL. NULL on ENOMEM.
*/
dist_tls *dist__tls_new(dist_tls_ctx *c, const char *peer_host);
void dist__tls_free(dist_tls *t);

/* ---- ciphertext in */

/* Space to receive ciphertext into (*cap bytes, at least 16 KiB unless the buffer is full,
** then NULL and 0: read plaintext first). Valid until the next call on t. */
uint8_t *dist__tls_rx_space(dist_tls *t, size_t *cap);
/* n bytes were written at dist__tls_rx_space(); nothing is decrypted yet. */
void dist__tls_rx_commit(dist_tls *t, size_t n);
/* Copies up to n bytes in (for transports that own their buffer); returns how many. */
size_t dist__tls_feed(dist_tls *t, const void *p, size_t n);

/* ---- handshake */

/* Runs the handshake as far as the input allows: 0 once established (also on later calls),
** DIST_TLS_AGAIN, DIST_EPROTO (the reason in dist__tls_why(), an alert queued to send). */
int dist__tls_handshake(dist_tls *t);
bool dist__tls_established(const dist_tls *t);

/* ---- plaintext */

/*
** Decrypts into buf: 0 with *n > 0, DIST_TLS_AGAIN (*n = 0: feed more), DIST_TLS_EOF, or
** DIST_EPROTO. Drives the handshake, a renegotiation and KeyUpdate as needed (answers go to
** the output). Call until it returns DIST_TLS_AGAIN after every commit.
*/
int dist__tls_read(dist_tls *t, void *buf, size_t cap, size_t *n);
/*
** Encrypts iov; *n gets the bytes taken: 0 when all were, DIST_TLS_AGAIN when a renegotiation
** waits for the peer (retry the rest after feeding input), DIST_EPROTO. Small pieces are
** gathered into full records, large ones are encrypted in place of a copy. The ciphertext is
** appended to the output (unbounded: the caller keeps dist__tls_tx_pending() in check).
*/
int dist__tls_writev(dist_tls *t, const struct iovec *iov, int iovcnt, size_t *n);

/* ---- ciphertext out */

/* Bytes waiting to be sent. */
size_t dist__tls_tx_pending(const dist_tls *t);
/* Fills up to max iovecs with the pending output, oldest first; returns how many. The memory
** stays put (appending never moves it) until dist__tls_tx_consume() passes it. */
int dist__tls_tx_iov(const dist_tls *t, struct iovec *iov, int max);
/* n bytes of the output were sent (n <= pending). */
void dist__tls_tx_consume(dist_tls *t, size_t n);

/* ---- closing, re-keying, facts */

/* Queues close_notify; after it nothing more is written. */
int dist__tls_close(dist_tls *t);
/* Starts a TLS 1.2 renegotiation (client: a new ClientHello; server: HelloRequest), or a TLS 1.3
** KeyUpdate asking the peer to update too. */
int dist__tls_rekey(dist_tls *t);
/* Why the engine failed: OpenSSL's reason, the certificate check that failed, the alert. */
const char *dist__tls_why(const dist_tls *t);
/* The peer certificate's subject (RFC 2253) into buf; 0, or DIST_EINVAL without a certificate. */
int dist__tls_peer_subject(const dist_tls *t, char *buf, size_t len);
const char *dist__tls_version(const dist_tls *t); /* "TLSv1.2" / "TLSv1.3" */
const char *dist__tls_cipher(const dist_tls *t);  /* OpenSSL's name */
bool dist__tls_resumed(const dist_tls *t);        /* the session was resumed (TLS 1.2) */
/* Handshakes completed on this connection (1 + renegotiations) and KeyUpdates received. */
unsigned dist__tls_handshakes(const dist_tls *t);
unsigned dist__tls_key_updates(const dist_tls *t);

/* OTP 25's host-name rule (see dist__tls_new), for a PEM or DER certificate in memory (tests). */
bool dist__tls_host_matches(const void *cert_pem, size_t len, const char *host);

/* ---------------------------------------------------------------- from dist_config */

/*
** Reads cfg's TLS options (ssl_dist_optfile, ssl_dist_opt) and builds the server and client
** contexts (*server, *client: one reference each). Returns 0, DIST_EINVAL for an unknown
** proto_dist, or DIST_ETLSCONF / DIST_ENOMEM with err naming the file (or -ssl_dist_opt), the
** role, the option and why. warn (may be NULL) gets one line per option read but not honoured.
*/
int dist__tls_contexts(const dist_config *cfg, dist_tls_ctx **server, dist_tls_ctx **client,
                       char *err, size_t errlen, dist_tls_warn_fn warn, void *ud);
/* cfg asks for TLS (proto_dist "inet_tls"). */
bool dist__tls_wanted(const dist_config *cfg);

#endif
