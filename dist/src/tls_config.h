/* TLS distribution options: Erlang's -ssl_dist_optfile / -ssl_dist_opt read into plain C structs.
 */
#ifndef DIST_TLS_CONFIG_H
#define DIST_TLS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* TLS versions, as a bit set (OTP's 'tlsv1.2' and 'tlsv1.3'; older ones are refused). */
enum { DIST_TLS_V12 = 1, DIST_TLS_V13 = 2 };

/* crl_check */
enum {
    DIST_TLS_CRL_OFF = 0,     /* false (OTP default) */
    DIST_TLS_CRL_PEER,        /* peer: the peer certificate only */
    DIST_TLS_CRL_ALL,         /* true: every certificate of the chain */
    DIST_TLS_CRL_BEST_EFFORT, /* best_effort: the chain, a missing CRL is not an error */
};

/* server_name_indication (OTP 25's inet_tls_dist overrides it with the peer's host: see
** docs/tls.md; the value is read, validated and kept for the record) */
enum { DIST_TLS_SNI_DEFAULT = 0, DIST_TLS_SNI_NAME, DIST_TLS_SNI_DISABLE };

/*
** One role's options (the client or the server side of every connection). Strings are
** malloc'ed, NUL-terminated UTF-8 (file names as OTP would encode them), NULL when absent.
** Defaults are OTP 25's for a distribution connection (docs/tls.md, "Options").
*/
typedef struct dist_tls_role {
    bool given;       /* the role came from the file or the arguments (else all defaults) */
    bool from_args;   /* dist__tls_config_load took it from the -ssl_dist_opt arguments */
    char *certfile;   /* PEM; NULL: no certificate */
    char *keyfile;    /* PEM; NULL: the key is in certfile (OTP: keyfile defaults to certfile) */
    char *password;   /* for an encrypted keyfile; NULL: none */
    char *cacertfile; /* PEM bundle of trusted CAs; NULL: none */
    char *dhfile;     /* server: PEM DH parameters; NULL: OpenSSL's built-in groups */
    bool verify_peer; /* verify: verify_peer (true) / verify_none (false, OTP default) */
    bool fail_if_no_peer_cert; /* server: a client without a certificate is refused */
    int depth;                 /* intermediate CAs allowed in a chain, 0..255; default 10 */
    unsigned versions;         /* DIST_TLS_V12 | DIST_TLS_V13 */
    char *ciphers12;           /* OpenSSL TLS 1.2 cipher names, ':'-separated; NULL: default */
    char *ciphers13;           /* TLS 1.3 suite names, ':'-separated; NULL: default */
    bool secure_renegotiate;   /* default true: RFC 5746 required */
    bool reuse_sessions;       /* default true: TLS 1.2 session resumption */
    bool honor_cipher_order;   /* server: our order wins; default false */
    bool
        client_renegotiation; /* server: accept renegotiation started by the client; default true */
    int sni;                  /* DIST_TLS_SNI_* */
    char *sni_name;           /* with DIST_TLS_SNI_NAME */
    int crl_check;            /* DIST_TLS_CRL_* */
    char *crl_dir;            /* crl_cache {ssl_crl_hash_dir, {internal, [{dir, D}]}} */
} dist_tls_role;

typedef struct dist_tls_config {
    dist_tls_role server, client;
} dist_tls_config;

/* Warnings (an option read but not honoured, a weak setting): one line each, no newline. */
typedef void (*dist_tls_warn_fn)(void *ud, const char *line);

/*
** Reads an optfile: one Erlang term, [{server, Opts}, {client, Opts}] (either may be missing),
** in Latin-1 unless the file's first two lines say "coding: utf-8" (as OTP's consult does).
** Fills *cfg (roles not in the file get defaults with given = false). Returns 0, or
** DIST_EINVAL / DIST_ENOMEM with err (errlen bytes) naming the file, the role, the option and
** why; *cfg then holds nothing to free. warn may be NULL.
*/
int dist__tls_config_file(const char *path, dist_tls_config *cfg, char *err, size_t errlen,
                          dist_tls_warn_fn warn, void *ud);
/* The same for text already in memory; origin names it in messages. */
int dist__tls_config_text(const char *text, size_t len, const char *origin, dist_tls_config *cfg,
                          char *err, size_t errlen, dist_tls_warn_fn warn, void *ud);
/*
** Reads Erlang's -ssl_dist_opt form: argv holds pairs "server_certfile" "F" "client_verify"
** "verify_peer" ... (an odd count is an error). Only the keys OTP 25 accepts in this form are
** accepted. A role named by no argument keeps defaults (given = false).
*/
int dist__tls_config_args(int argc, const char *const *argv, dist_tls_config *cfg, char *err,
                          size_t errlen, dist_tls_warn_fn warn, void *ud);
/*
** What OTP 25 does with both: per role, the optfile's entry if the file has one, else the
** -ssl_dist_opt arguments if any were given, else defaults (with TLS 1.3 allowed, as OTP's
** bare ssl defaults). path or argc may be absent (NULL / 0).
*/
int dist__tls_config_load(const char *path, int argc, const char *const *argv, dist_tls_config *cfg,
                          char *err, size_t errlen, dist_tls_warn_fn warn, void *ud);
void dist__tls_config_free(dist_tls_config *cfg);
/* Defaults of one role as OTP 25 applies them to a distribution connection (TLS 1.2 only). */
void dist__tls_role_defaults(dist_tls_role *r);

#endif
