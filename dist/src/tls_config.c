/* TLS distribution options: reads Erlang's -ssl_dist_optfile and -ssl_dist_opt forms, validated. */
#include "tls_config.h"

#include <girder/dist.h>
#include <girder/term.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPTFILE (1u << 20) /* an optfile is a few hundred bytes; refuse megabytes */
#define MAX_STRING  4096       /* a file name, a password, a cipher list */

/* ================================================================ state and messages */

typedef struct reader {
    const char *origin; /* file name or "-ssl_dist_opt" */
    const char *role;   /* "server" / "client" while reading a role, else NULL */
    char *err;
    size_t errlen;
    dist_tls_warn_fn warn;
    void *ud;
} reader;

/* Fills the error message "ORIGIN: ROLE: option NAME: why" and returns DIST_EINVAL. */
static int fail(reader *R, const char *opt, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (R->err && R->errlen)
        snprintf(R->err, R->errlen, "%s: %s%s%s%s%s%s", R->origin, R->role ? R->role : "",
                 R->role ? ": " : "", opt ? "option " : "", opt ? opt : "", opt ? ": " : "", why);
    return DIST_EINVAL;
}

static int oom(reader *R)
{
    if (R->err && R->errlen) snprintf(R->err, R->errlen, "%s: out of memory", R->origin);
    return DIST_ENOMEM;
}

static void warnf(reader *R, const char *opt, const char *fmt, ...)
{
    char why[512], line[800];
    va_list ap;
    if (!R->warn) return;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "%s: %s%s%s%s%s%s", R->origin, R->role ? R->role : "",
             R->role ? ": " : "", opt ? "option " : "", opt ? opt : "", opt ? ": " : "", why);
    R->warn(R->ud, line);
}

/* ================================================================ values */

static bool is_atom(term_t v, const char *name)
{
    size_t n;
    const char *s;
    if (!term_is_atom(v)) return false;
    s = term_atom_name(v, &n);
    return strlen(name) == n && memcmp(s, name, n) == 0;
}

static int get_bool(reader *R, const char *opt, term_t v, bool *out)
{
    if (is_atom(v, "true"))
        *out = true;
    else if (is_atom(v, "false"))
        *out = false;
    else
        return fail(R, opt, "expected true or false");
    return 0;
}

/* Appends code point c as UTF-8. */
static size_t put_utf8(char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/*
** A string value: an Erlang string (a flat list of code points) or a binary (its bytes, as OTP
** takes a binary file name). *out is malloc'ed UTF-8, or NULL for the empty string. NUL
** characters are refused (they would cut a C string short).
*/
static int get_string(reader *R, const char *opt, term_t v, char **out)
{
    *out = NULL;
    if (term_is_binary(v)) {
        size_t n = term_binary_size(v);
        const uint8_t *d = term_binary_data(v);
        if (n > MAX_STRING) return fail(R, opt, "longer than %d bytes", MAX_STRING);
        if (n == 0) return 0;
        if (!d || memchr(d, 0, n)) return fail(R, opt, "expected a string without NUL characters");
        if (!(*out = malloc(n + 1))) return oom(R);
        memcpy(*out, d, n);
        (*out)[n] = 0;
        return 0;
    }
    long len = term_list_length(v);
    if (len < 0) return fail(R, opt, "expected a string");
    if (len > MAX_STRING) return fail(R, opt, "longer than %d characters", MAX_STRING);
    if (len == 0) return 0;
    char *s = malloc((size_t)len * 4 + 1), *o = s;
    if (!s) return oom(R);
    for (term_t l = v; term_is_cons(l); l = term_tl(l)) {
        term_t c = term_hd(l);
        int64_t cp = term_is_small(c) ? term_small_value(c) : -1;
        if (cp <= 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            free(s);
            return fail(R, opt, "expected a string (a list of character codes, no NUL)");
        }
        o += put_utf8(o, (uint32_t)cp);
    }
    *o = 0;
    *out = s;
    return 0;
}

/* Replaces *slot with a new string value (the old one, a default, is freed). */
static int set_string(reader *R, const char *opt, term_t v, char **slot)
{
    char *s;
    int r = get_string(R, opt, v, &s);
    if (r) return r;
    free(*slot);
    *slot = s;
    return 0;
}

/* ================================================================ options */

typedef enum {
    K_CERTFILE,
    K_KEYFILE,
    K_PASSWORD,
    K_CACERTFILE,
    K_DHFILE,
    K_VERIFY,
    K_FAIL_IF_NO_PEER_CERT,
    K_DEPTH,
    K_VERSIONS,
    K_CIPHERS,
    K_SECURE_RENEGOTIATE,
    K_REUSE_SESSIONS,
    K_HONOR_CIPHER_ORDER,
    K_CLIENT_RENEGOTIATION,
    K_SNI,
    K_CUSTOMIZE_HOSTNAME_CHECK,
    K_CRL_CHECK,
    K_CRL_CACHE,
    K_PROTOCOL,
    K_SESSION_TICKETS,
    K_HANDSHAKE,
    K_WARN,   /* read and ignored with a warning: no effect on security */
    K_REFUSE, /* an OTP option Girder cannot honour and that matters for security */
    K_NKINDS
} opt_kind;

typedef struct opt_def {
    const char *name;
    opt_kind kind;
    const char *note; /* K_WARN / K_REFUSE: why */
} opt_def;

static const opt_def OPTS[] = {
    {"certfile", K_CERTFILE, NULL},
    {"keyfile", K_KEYFILE, NULL},
    {"password", K_PASSWORD, NULL},
    {"cacertfile", K_CACERTFILE, NULL},
    {"dhfile", K_DHFILE, NULL},
    {"verify", K_VERIFY, NULL},
    {"fail_if_no_peer_cert", K_FAIL_IF_NO_PEER_CERT, NULL},
    {"depth", K_DEPTH, NULL},
    {"versions", K_VERSIONS, NULL},
    {"ciphers", K_CIPHERS, NULL},
    {"secure_renegotiate", K_SECURE_RENEGOTIATE, NULL},
    {"reuse_sessions", K_REUSE_SESSIONS, NULL},
    {"honor_cipher_order", K_HONOR_CIPHER_ORDER, NULL},
    {"client_renegotiation", K_CLIENT_RENEGOTIATION, NULL},
    {"server_name_indication", K_SNI, NULL},
    {"customize_hostname_check", K_CUSTOMIZE_HOSTNAME_CHECK, NULL},
    {"crl_check", K_CRL_CHECK, NULL},
    {"crl_cache", K_CRL_CACHE, NULL},
    {"protocol", K_PROTOCOL, NULL},
    {"session_tickets", K_SESSION_TICKETS, NULL},
    {"handshake", K_HANDSHAKE, NULL},
    /* no effect on what is accepted or refused: read, ignored, said */
    {"log_level", K_WARN, "Girder logs one line per TLS failure; OTP's ssl log level is ignored"},
    {"log_alert", K_WARN, "Girder logs one line per TLS failure; ignored"},
    {"hibernate_after", K_WARN, "Erlang process hibernation has no meaning in Girder; ignored"},
    {"keep_secrets", K_WARN, "Girder never exports TLS secrets; ignored"},
    {"erl_dist", K_WARN, "always true for distribution connections; ignored"},
    {"padding_check", K_WARN, "TLS 1.0 only, which Girder does not speak; ignored"},
    {"beast_mitigation", K_WARN, "TLS 1.0 only, which Girder does not speak; ignored"},
    {"middlebox_comp_mode", K_WARN,
     "OpenSSL always sends TLS 1.3 in middlebox-compatible form; "
     "ignored"},
    {"max_handshake_size", K_WARN, "OpenSSL's own bound on handshake messages applies; ignored"},
    {"honor_ecc_order", K_WARN, "OpenSSL picks the group by the client's order; ignored"},
    {"alpn_advertised_protocols", K_WARN, "distribution negotiates no ALPN; ignored"},
    {"alpn_preferred_protocols", K_WARN, "distribution negotiates no ALPN; ignored"},
    {"next_protocols_advertised", K_WARN, "distribution negotiates no NPN; ignored"},
    {"client_preferred_next_protocols", K_WARN, "distribution negotiates no NPN; ignored"},
    {"sender_spawn_opts", K_WARN, "Erlang process options have no meaning in Girder; ignored"},
    {"receiver_spawn_opts", K_WARN, "Erlang process options have no meaning in Girder; ignored"},
    /* would change what is trusted or how: Girder cannot honour them, so it does not start */
    {"cacerts", K_REFUSE, "DER certificates inline are not supported; use cacertfile"},
    {"cert", K_REFUSE, "a DER certificate inline is not supported; use certfile"},
    {"key", K_REFUSE, "an inline key is not supported; use keyfile"},
    {"certs_keys", K_REFUSE, "several certificate/key pairs are not supported; use certfile"},
    {"verify_fun", K_REFUSE, "Erlang functions cannot run in Girder"},
    {"partial_chain", K_REFUSE, "Erlang functions cannot run in Girder"},
    {"sni_fun", K_REFUSE, "Erlang functions cannot run in Girder"},
    {"sni_hosts", K_REFUSE, "per-SNI server options are not supported"},
    {"user_lookup_fun", K_REFUSE, "PSK/SRP are not supported"},
    {"psk_identity", K_REFUSE, "PSK is not supported"},
    {"srp_identity", K_REFUSE, "SRP is not supported"},
    {"reuse_session", K_REFUSE, "choosing sessions by function or id is not supported"},
    {"eccs", K_REFUSE, "not supported (OTP 25's default groups are used)"},
    {"supported_groups", K_REFUSE, "not supported (OTP 25's default groups are used)"},
    {"signature_algs", K_REFUSE, "not supported (OpenSSL's default signature algorithms)"},
    {"signature_algs_cert", K_REFUSE, "not supported (OpenSSL's default signature algorithms)"},
    {"dh", K_REFUSE, "inline DH parameters are not supported; use dhfile"},
    {"fallback", K_REFUSE, "TLS fallback signalling is not supported"},
    {"key_update_at", K_REFUSE, "not supported (Girder updates keys at OTP's default limit)"},
    {"renegotiate_at", K_REFUSE, "not supported (Girder renegotiates at OTP's default limit)"},
    {"early_data", K_REFUSE, "TLS 1.3 early data is not supported"},
    {"use_ticket", K_REFUSE, "TLS 1.3 session tickets are not supported"},
    {"anti_replay", K_REFUSE, "TLS 1.3 session tickets are not supported"},
    {"ocsp_stapling", K_REFUSE, "OCSP is not supported"},
    {"ocsp_responder_certs", K_REFUSE, "OCSP is not supported"},
    {"ocsp_nonce", K_REFUSE, "OCSP is not supported"},
    {"certificate_authorities", K_REFUSE, "not supported"},
    {"max_fragment_length", K_REFUSE, "not supported"},
    {"cookie", K_REFUSE, "DTLS only"},
    {"cb_info", K_REFUSE, "the transport is Girder's own"},
};

static const opt_def *find_opt(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof OPTS / sizeof *OPTS; i++)
        if (strlen(OPTS[i].name) == n && memcmp(OPTS[i].name, name, n) == 0) return &OPTS[i];
    return NULL;
}

/* Cipher names: letters, digits, '-' and '_' only (no OpenSSL cipher-string operators). */
static bool cipher_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 100) return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

static bool is_tls13_suite(const char *s, size_t n)
{
    static const char *const v13[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                      "TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_CCM_SHA256",
                                      "TLS_AES_128_CCM_8_SHA256"};
    for (size_t i = 0; i < sizeof v13 / sizeof *v13; i++)
        if (strlen(v13[i]) == n && memcmp(v13[i], s, n) == 0) return true;
    return false;
}

/* Appends name (n bytes) to the ':'-separated list *list. */
static int list_add(reader *R, char **list, const char *name, size_t n)
{
    size_t old = *list ? strlen(*list) : 0;
    char *s = realloc(*list, old + n + 2);
    if (!s) return oom(R);
    if (old) s[old++] = ':';
    memcpy(s + old, name, n);
    s[old + n] = 0;
    *list = s;
    return 0;
}

/* Splits one cipher string ("A:B" or "A") into the TLS 1.2 and 1.3 lists. */
static int add_ciphers(reader *R, dist_tls_role *r, const char *s)
{
    while (*s) {
        const char *e = strchr(s, ':');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (!cipher_name_ok(s, n))
            return fail(R, "ciphers", "'%.*s' is not a cipher suite name", (int)(n > 60 ? 60 : n),
                        s);
        int rc = list_add(R, is_tls13_suite(s, n) ? &r->ciphers13 : &r->ciphers12, s, n);
        if (rc) return rc;
        s += n + (e ? 1 : 0);
    }
    return 0;
}

static int opt_ciphers(reader *R, dist_tls_role *r, term_t v)
{
    free(r->ciphers12);
    free(r->ciphers13);
    r->ciphers12 = r->ciphers13 = NULL;
    if (term_is_nil(v)) return 0; /* OTP: [] means the default suites */
    term_t first = term_is_cons(v) ? term_hd(v) : TERM_NONE;
    if (first != TERM_NONE && (term_is_tuple(first) || term_is_map(first)))
        return fail(R, "ciphers",
                    "cipher suites as maps or tuples are not supported; give OpenSSL names "
                    "(\"ECDHE-ECDSA-AES256-GCM-SHA384\", \"TLS_AES_256_GCM_SHA384\")");
    if (first != TERM_NONE && term_is_binary(first))
        return fail(R, "ciphers",
                    "cipher suites as binary codes are not supported; give "
                    "OpenSSL names");
    if (first != TERM_NONE && term_is_list(first)) { /* ["A", "B"] */
        if (term_list_length(v) < 0) return fail(R, "ciphers", "expected a list of strings");
        for (term_t l = v; term_is_cons(l); l = term_tl(l)) {
            char *s;
            if (!term_is_list(term_hd(l))) return fail(R, "ciphers", "expected a list of strings");
            int rc = get_string(R, "ciphers", term_hd(l), &s);
            if (rc) return rc;
            if (!s) return fail(R, "ciphers", "an empty cipher name");
            rc = strchr(s, ':') ? fail(R, "ciphers", "'%s' is not a cipher suite name", s)
                                : add_ciphers(R, r, s);
            free(s);
            if (rc) return rc;
        }
        return 0;
    }
    char *s; /* "A:B:C" */
    int rc = get_string(R, "ciphers", v, &s);
    if (rc) return rc;
    rc = s ? add_ciphers(R, r, s) : 0;
    free(s);
    return rc;
}

static int opt_versions(reader *R, dist_tls_role *r, term_t v)
{
    unsigned set = 0;
    if (term_list_length(v) <= 0) return fail(R, "versions", "expected a non-empty list of atoms");
    for (term_t l = v; term_is_cons(l); l = term_tl(l)) {
        term_t a = term_hd(l);
        if (is_atom(a, "tlsv1.3"))
            set |= DIST_TLS_V13;
        else if (is_atom(a, "tlsv1.2"))
            set |= DIST_TLS_V12;
        else if (is_atom(a, "tlsv1.1") || is_atom(a, "tlsv1") || is_atom(a, "sslv3"))
            return fail(R, "versions", "'%s' is refused: Girder speaks TLS 1.2 and 1.3 only",
                        term_atom_name(a, NULL));
        else if (term_is_atom(a))
            return fail(R, "versions", "'%s' is not a TLS version", term_atom_name(a, NULL));
        else
            return fail(R, "versions", "expected a list of atoms ('tlsv1.2', 'tlsv1.3')");
    }
    r->versions = set;
    return 0;
}

/* crl_cache {ssl_crl_hash_dir, {internal, [{dir, Dir}]}} (the form that needs no fetching) */
static int opt_crl_cache(reader *R, dist_tls_role *r, term_t v)
{
    if (term_is_tuple(v) && term_tuple_arity(v) == 2 &&
        is_atom(term_tuple_elem(v, 0), "ssl_crl_cache")) {
        free(r->crl_dir);
        r->crl_dir = NULL; /* OTP's default: CRLs only from the cache, which nothing fills */
        return 0;
    }
    if (!(term_is_tuple(v) && term_tuple_arity(v) == 2 &&
          is_atom(term_tuple_elem(v, 0), "ssl_crl_hash_dir")))
        return fail(R, "crl_cache",
                    "only {ssl_crl_hash_dir, {internal, [{dir, Dir}]}} is "
                    "supported");
    term_t in = term_tuple_elem(v, 1);
    if (!(term_is_tuple(in) && term_tuple_arity(in) == 2 &&
          is_atom(term_tuple_elem(in, 0), "internal") &&
          term_list_length(term_tuple_elem(in, 1)) >= 0))
        return fail(R, "crl_cache", "expected {ssl_crl_hash_dir, {internal, [{dir, Dir}]}}");
    bool found = false;
    for (term_t l = term_tuple_elem(in, 1); term_is_cons(l); l = term_tl(l)) {
        term_t e = term_hd(l);
        if (!(term_is_tuple(e) && term_tuple_arity(e) == 2 &&
              is_atom(term_tuple_elem(e, 0), "dir")))
            return fail(R, "crl_cache", "only the {dir, Dir} setting is supported");
        int rc = set_string(R, "crl_cache", term_tuple_elem(e, 1), &r->crl_dir);
        if (rc) return rc;
        found = true;
    }
    if (!found || !r->crl_dir) return fail(R, "crl_cache", "{dir, Dir} is missing or empty");
    return 0;
}

/*
** Applies one option to role r. seen (a bit per kind) catches duplicates; dup is the
** option's name as written, for messages.
*/
static int apply(reader *R, dist_tls_role *r, bool server, const char *name, size_t n, term_t v,
                 uint64_t *seen)
{
    char nm[64];
    snprintf(nm, sizeof nm, "%.*s", (int)(n > 60 ? 60 : n), name);
    const opt_def *d = find_opt(name, n);
    if (!d) return fail(R, nm, "unknown option");
    if (d->kind == K_REFUSE) return fail(R, nm, "refused: %s", d->note);
    if (d->kind == K_WARN) {
        warnf(R, nm, "%s", d->note);
        return 0;
    }
    if (*seen & (1ull << d->kind)) return fail(R, nm, "given twice");
    *seen |= 1ull << d->kind;
    switch (d->kind) {
    case K_CERTFILE:
        return set_string(R, nm, v, &r->certfile);
    case K_KEYFILE:
        return set_string(R, nm, v, &r->keyfile);
    case K_PASSWORD:
        return set_string(R, nm, v, &r->password);
    case K_CACERTFILE:
        return set_string(R, nm, v, &r->cacertfile);
    case K_DHFILE:
        if (!server) warnf(R, nm, "used by servers only; ignored here");
        return set_string(R, nm, v, &r->dhfile);
    case K_VERIFY:
        if (is_atom(v, "verify_peer"))
            r->verify_peer = true;
        else if (is_atom(v, "verify_none"))
            r->verify_peer = false;
        else
            return fail(R, nm, "expected verify_peer or verify_none");
        return 0;
    case K_FAIL_IF_NO_PEER_CERT:
        return get_bool(R, nm, v, &r->fail_if_no_peer_cert);
    case K_DEPTH: {
        int64_t d64;
        if (term_get_int64(v, &d64) != 0 || d64 < 0 || d64 > 255)
            return fail(R, nm, "expected an integer from 0 to 255");
        r->depth = (int)d64;
        return 0;
    }
    case K_VERSIONS:
        return opt_versions(R, r, v);
    case K_CIPHERS:
        return opt_ciphers(R, r, v);
    case K_SECURE_RENEGOTIATE:
        return get_bool(R, nm, v, &r->secure_renegotiate);
    case K_REUSE_SESSIONS: {
        int rc = get_bool(R, nm, v, &r->reuse_sessions);
        if (rc == 0 || !(is_atom(v, "save"))) return rc;
        return fail(R, nm, "'save' is not supported; use true or false");
    }
    case K_HONOR_CIPHER_ORDER:
        return get_bool(R, nm, v, &r->honor_cipher_order);
    case K_CLIENT_RENEGOTIATION:
        return get_bool(R, nm, v, &r->client_renegotiation);
    case K_SNI:
        free(r->sni_name);
        r->sni_name = NULL;
        if (is_atom(v, "disable"))
            r->sni = DIST_TLS_SNI_DISABLE;
        else if (is_atom(v, "undefined"))
            r->sni = DIST_TLS_SNI_DEFAULT;
        else {
            int rc = get_string(R, nm, v, &r->sni_name);
            if (rc) return rc;
            if (!r->sni_name) return fail(R, nm, "expected a host name or disable");
            r->sni = DIST_TLS_SNI_NAME;
        }
        if (!server)
            warnf(R, nm,
                  "OTP 25's inet_tls_dist replaces it with the host of the peer's node name "
                  "(for SNI and the host-name check); Girder does the same");
        return 0;
    case K_CUSTOMIZE_HOSTNAME_CHECK:
        if (term_is_nil(v)) return 0;
        return fail(R, nm, "only [] (the default check) is supported");
    case K_CRL_CHECK:
        if (is_atom(v, "true"))
            r->crl_check = DIST_TLS_CRL_ALL;
        else if (is_atom(v, "false"))
            r->crl_check = DIST_TLS_CRL_OFF;
        else if (is_atom(v, "peer"))
            r->crl_check = DIST_TLS_CRL_PEER;
        else if (is_atom(v, "best_effort"))
            r->crl_check = DIST_TLS_CRL_BEST_EFFORT;
        else
            return fail(R, nm, "expected true, false, peer or best_effort");
        return 0;
    case K_CRL_CACHE:
        return opt_crl_cache(R, r, v);
    case K_PROTOCOL:
        if (is_atom(v, "tls")) return 0;
        return fail(R, nm, "only tls is supported");
    case K_SESSION_TICKETS:
        if (is_atom(v, "disabled")) return 0;
        return fail(R, nm, "TLS 1.3 session tickets are not supported (only disabled)");
    case K_HANDSHAKE:
        if (is_atom(v, "full")) return 0;
        return fail(R, nm, "only full is supported");
    default:
        return fail(R, nm, "internal error");
    }
}

/* Checks one role once all of its options are read, as OTP 25 would refuse them (or worse). */
static int check_role(reader *R, dist_tls_role *r, bool server, uint64_t seen)
{
    if (r->fail_if_no_peer_cert && !r->verify_peer)
        return fail(R, "fail_if_no_peer_cert",
                    "true needs {verify, verify_peer} (OTP refuses the combination)");
    if (r->versions == DIST_TLS_V13) {
        /* OTP 25 asserts these depend on a pre-1.3 version: every connection fails (pang) */
        static const struct {
            opt_kind k;
            const char *name;
        } pre13[] = {{K_SECURE_RENEGOTIATE, "secure_renegotiate"},
                     {K_REUSE_SESSIONS, "reuse_sessions"},
                     {K_CLIENT_RENEGOTIATION, "client_renegotiation"}};
        for (size_t i = 0; i < sizeof pre13 / sizeof *pre13; i++)
            if (seen & (1ull << pre13[i].k))
                return fail(R, pre13[i].name,
                            "applies to TLS 1.2 only, and versions is ['tlsv1.3']: OTP 25 "
                            "fails every connection with this combination; remove it");
    }
    if (r->crl_check != DIST_TLS_CRL_OFF && !r->crl_dir)
        return fail(R, "crl_check",
                    "needs {crl_cache, {ssl_crl_hash_dir, {internal, [{dir, Dir}]}}}: Girder "
                    "does not fetch CRLs");
    if (r->crl_check == DIST_TLS_CRL_OFF && r->crl_dir)
        warnf(R, "crl_cache", "crl_check is false: the CRL directory is not used");
    if (r->ciphers12 && !(r->versions & DIST_TLS_V12))
        warnf(R, "ciphers", "TLS 1.2 suites listed but versions excludes TLS 1.2");
    if (r->ciphers13 && !(r->versions & DIST_TLS_V13))
        warnf(R, "ciphers", "TLS 1.3 suites listed but versions excludes TLS 1.3");
    if (!r->verify_peer)
        warnf(R, NULL, "verify_none: the %s does not authenticate its peers",
              server ? "server" : "client");
    if (server && !r->certfile)
        warnf(R, NULL, "no certfile: this node cannot accept TLS connections");
    if (r->password && !r->keyfile && !r->certfile)
        warnf(R, "password", "no keyfile or certfile to decrypt");
    return 0;
}

/* ================================================================ roles */

void dist__tls_role_defaults(dist_tls_role *r)
{
    memset(r, 0, sizeof *r);
    r->depth = 10;
    r->versions = DIST_TLS_V12; /* inet_tls_dist:dist_defaults/1 */
    r->secure_renegotiate = true;
    r->reuse_sessions = true;
    r->client_renegotiation = true;
}

static void role_free(dist_tls_role *r)
{
    free(r->certfile);
    free(r->keyfile);
    free(r->password);
    free(r->cacertfile);
    free(r->dhfile);
    free(r->ciphers12);
    free(r->ciphers13);
    free(r->sni_name);
    free(r->crl_dir);
    dist__tls_role_defaults(r);
}

void dist__tls_config_free(dist_tls_config *cfg)
{
    role_free(&cfg->server);
    role_free(&cfg->client);
}

static void config_init(dist_tls_config *cfg)
{
    dist__tls_role_defaults(&cfg->server);
    dist__tls_role_defaults(&cfg->client);
}

/* Reads one role's option list (a proplist of {Name, Value}). */
static int read_role(reader *R, dist_tls_role *r, bool server, term_t opts)
{
    uint64_t seen = 0;
    if (term_list_length(opts) < 0) return fail(R, NULL, "expected a list of {Option, Value}");
    r->given = true;
    for (term_t l = opts; term_is_cons(l); l = term_tl(l)) {
        term_t e = term_hd(l);
        if (term_is_atom(e)) { /* proplists shorthand: Atom means {Atom, true} */
            size_t n;
            const char *s = term_atom_name(e, &n);
            int rc = apply(R, r, server, s, n, TERM_ATOM_TRUE, &seen);
            if (rc) return rc;
            continue;
        }
        if (!term_is_tuple(e) || term_tuple_arity(e) != 2 || !term_is_atom(term_tuple_elem(e, 0)))
            return fail(R, NULL, "expected a list of {Option, Value}");
        size_t n;
        const char *s = term_atom_name(term_tuple_elem(e, 0), &n);
        int rc = apply(R, r, server, s, n, term_tuple_elem(e, 1), &seen);
        if (rc) return rc;
    }
    return check_role(R, r, server, seen);
}

/* ================================================================ optfile */

/* True when the first two lines carry an Emacs-style "coding: utf-8" (epp's rule). */
static bool declares_utf8(const char *t, size_t len)
{
    size_t end = 0;
    for (int line = 0; line < 2 && end < len; line++) {
        while (end < len && t[end] != '\n') end++;
        end++;
    }
    if (end > len) end = len;
    for (size_t i = 0; i + 6 <= end; i++) {
        if (memcmp(t + i, "coding", 6) != 0) continue;
        size_t j = i + 6;
        while (j < end && (t[j] == ' ' || t[j] == '\t')) j++;
        if (j >= end || (t[j] != ':' && t[j] != '=')) continue;
        j++;
        while (j < end && (t[j] == ' ' || t[j] == '\t')) j++;
        static const char *const utf8[] = {"utf-8", "utf8", "UTF-8", "UTF8"};
        for (size_t k = 0; k < 4; k++) {
            size_t n = strlen(utf8[k]);
            if (j + n <= end && memcmp(t + j, utf8[k], n) == 0) return true;
        }
    }
    return false;
}

static int read_config_term(reader *R, term_t t, dist_tls_config *cfg)
{
    term_t one[1] = {t};
    bool list = term_is_list(t);
    if (!list && !term_is_tuple(t))
        return fail(R, NULL, "expected [{server, Options}, {client, Options}]");
    if (list && term_list_length(t) < 0)
        return fail(R, NULL, "expected [{server, Options}, {client, Options}]");
    size_t n = list ? (size_t)term_list_length(t) : 1;
    term_t l = t;
    for (size_t i = 0; i < n; i++) {
        term_t e = list ? term_hd(l) : one[0];
        if (list) l = term_tl(l);
        if (!term_is_tuple(e) || term_tuple_arity(e) != 2)
            return fail(R, NULL, "expected {server, Options} or {client, Options}");
        term_t key = term_tuple_elem(e, 0);
        bool server = is_atom(key, "server");
        if (!server && !is_atom(key, "client"))
            return fail(R, NULL, "expected {server, Options} or {client, Options}");
        dist_tls_role *r = server ? &cfg->server : &cfg->client;
        R->role = server ? "server" : "client";
        if (r->given) return fail(R, NULL, "given twice");
        int rc = read_role(R, r, server, term_tuple_elem(e, 1));
        if (rc) return rc;
        R->role = NULL;
    }
    return 0;
}

int dist__tls_config_text(const char *text, size_t len, const char *origin, dist_tls_config *cfg,
                          char *err, size_t errlen, dist_tls_warn_fn warn, void *ud)
{
    reader R = {origin ? origin : "optfile", NULL, err, errlen, warn, ud};
    char *conv = NULL;
    config_init(cfg);
    if (len > MAX_OPTFILE) return fail(&R, NULL, "larger than %u bytes", MAX_OPTFILE);
    if (!declares_utf8(text, len)) { /* Latin-1: each byte is a code point */
        size_t hi = 0;
        for (size_t i = 0; i < len; i++) hi += (uint8_t)text[i] >= 0x80;
        if (hi) {
            if (!(conv = malloc(len + hi))) return oom(&R);
            size_t o = 0;
            for (size_t i = 0; i < len; i++) o += put_utf8(conv + o, (uint8_t)text[i]);
            text = conv;
            len = o;
        }
    }
    term_parse_error pe;
    term_t t = term_parse(text, len, NULL, &pe);
    free(conv);
    if (t == TERM_NONE) {
        if (pe.code == TERM_ENOMEM) return oom(&R);
        return fail(&R, NULL, "not an Erlang term: %s at byte %zu (%s)", pe.what, pe.offset,
                    term_err_name(pe.code));
    }
    int rc = read_config_term(&R, t, cfg);
    term_free(t);
    if (rc) dist__tls_config_free(cfg);
    return rc;
}

int dist__tls_config_file(const char *path, dist_tls_config *cfg, char *err, size_t errlen,
                          dist_tls_warn_fn warn, void *ud)
{
    reader R = {path, NULL, err, errlen, warn, ud};
    config_init(cfg);
    FILE *f = fopen(path, "rb");
    if (!f) return fail(&R, NULL, "cannot open: %s", strerror(errno));
    char *buf = malloc(MAX_OPTFILE + 1);
    if (!buf) {
        fclose(f);
        return oom(&R);
    }
    size_t n = fread(buf, 1, MAX_OPTFILE + 1, f);
    int bad = ferror(f);
    fclose(f);
    int rc;
    if (bad)
        rc = fail(&R, NULL, "read error");
    else if (n > MAX_OPTFILE)
        rc = fail(&R, NULL, "larger than %u bytes", MAX_OPTFILE);
    else
        rc = dist__tls_config_text(buf, n, path, cfg, err, errlen, warn, ud);
    free(buf);
    return rc;
}

/* ================================================================ -ssl_dist_opt */

typedef enum { A_STRING, A_ATOM, A_INT, A_TERM, A_REFUSE } arg_conv;

/* The keys OTP 25's inet_tls_dist:ssl_option/2 accepts, and how it converts each value. */
static int arg_key(bool server, const char *k, arg_conv *conv)
{
    static const struct {
        const char *k;
        arg_conv c;
        bool server_only;
    } keys[] = {{"dhfile", A_STRING, true},        {"fail_if_no_peer_cert", A_ATOM, true},
                {"certfile", A_STRING, false},     {"cacertfile", A_STRING, false},
                {"keyfile", A_STRING, false},      {"password", A_STRING, false},
                {"verify", A_ATOM, false},         {"verify_fun", A_REFUSE, false},
                {"crl_check", A_ATOM, false},      {"crl_cache", A_TERM, false},
                {"reuse_sessions", A_ATOM, false}, {"secure_renegotiate", A_ATOM, false},
                {"depth", A_INT, false},           {"hibernate_after", A_INT, false},
                {"ciphers", A_STRING, false}};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (strcmp(keys[i].k, k) == 0 && (server || !keys[i].server_only)) {
            *conv = keys[i].c;
            return 0;
        }
    return -1;
}

/* Builds the term OTP would make from the argument text. */
static int arg_value(reader *R, const char *opt, arg_conv conv, const char *s, term_t *out)
{
    int e = 0;
    switch (conv) {
    case A_STRING:
        *out = term_string_utf8(s, strlen(s), &e);
        break;
    case A_ATOM:
        *out = term_atom_n(s, strlen(s), &e);
        break;
    case A_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (!*s || *end || errno) return fail(R, opt, "expected an integer, got '%s'", s);
        *out = term_int(v);
        break;
    }
    case A_TERM: {
        term_parse_error pe;
        *out = term_parse(s, strlen(s), NULL, &pe);
        if (*out == TERM_NONE) return fail(R, opt, "not an Erlang term: %s", pe.what);
        return 0;
    }
    default:
        return fail(R, opt, "refused: Erlang functions cannot run in Girder");
    }
    if (*out == TERM_NONE) {
        if (e == TERM_ENOMEM || e == 0) return oom(R);
        return fail(R, opt, "invalid value '%s' (%s)", s, term_strerror(e));
    }
    return 0;
}

int dist__tls_config_args(int argc, const char *const *argv, dist_tls_config *cfg, char *err,
                          size_t errlen, dist_tls_warn_fn warn, void *ud)
{
    reader R = {"-ssl_dist_opt", NULL, err, errlen, warn, ud};
    uint64_t seen[2] = {0, 0};
    int rc = 0;
    config_init(cfg);
    if (argc % 2)
        return fail(&R, NULL, "options come in pairs (key value), got %d word%s", argc,
                    argc == 1 ? "" : "s");
    for (int i = 0; i < argc && rc == 0; i += 2) {
        const char *k = argv[i];
        bool server = strncmp(k, "server_", 7) == 0;
        if (!server && strncmp(k, "client_", 7) != 0) {
            rc = fail(&R, k, "must start with server_ or client_");
            break;
        }
        R.role = server ? "server" : "client";
        const char *name = k + 7;
        arg_conv conv;
        if (arg_key(server, name, &conv) != 0) {
            rc = fail(&R, name,
                      find_opt(name, strlen(name))
                          ? "not accepted in the -ssl_dist_opt form (OTP 25 refuses "
                            "it too); use an optfile"
                          : "unknown option");
            break;
        }
        term_t v;
        if ((rc = arg_value(&R, name, conv, argv[i + 1], &v))) break;
        dist_tls_role *r = server ? &cfg->server : &cfg->client;
        r->given = true;
        rc = apply(&R, r, server, name, strlen(name), v, &seen[server]);
        term_free(v);
    }
    if (rc == 0 && cfg->server.given) {
        R.role = "server";
        rc = check_role(&R, &cfg->server, true, seen[1]);
    }
    if (rc == 0 && cfg->client.given) {
        R.role = "client";
        rc = check_role(&R, &cfg->client, false, seen[0]);
    }
    if (rc) dist__tls_config_free(cfg);
    return rc;
}

/* ================================================================ both */

int dist__tls_config_load(const char *path, int argc, const char *const *argv, dist_tls_config *cfg,
                          char *err, size_t errlen, dist_tls_warn_fn warn, void *ud)
{
    dist_tls_config file, args;
    int rc;
    config_init(cfg);
    config_init(&file);
    config_init(&args);
    if (path && (rc = dist__tls_config_file(path, &file, err, errlen, warn, ud))) return rc;
    if (argc > 0 && (rc = dist__tls_config_args(argc, argv, &args, err, errlen, warn, ud))) {
        dist__tls_config_free(&file);
        return rc;
    }
    dist_tls_role *out[2] = {&cfg->server, &cfg->client};
    dist_tls_role *f[2] = {&file.server, &file.client}, *a[2] = {&args.server, &args.client};
    for (int i = 0; i < 2; i++) {
        if (f[i]->given) {
            *out[i] = *f[i];
            dist__tls_role_defaults(f[i]);
        } else if (argc > 0) { /* inet_tls_dist:get_ssl_dist_arguments/1 */
            *out[i] = *a[i];
            out[i]->from_args = true;
            dist__tls_role_defaults(a[i]);
        } else { /* only {erl_dist, true}: ssl's own defaults, TLS 1.3 and 1.2 */
            out[i]->versions = DIST_TLS_V12 | DIST_TLS_V13;
            if (warn) {
                char line[300];
                snprintf(line, sizeof line,
                         "%s: no %s options: OTP's bare defaults apply (verify_none, no "
                         "certificate)",
                         path ? path : "-ssl_dist_opt", i == 0 ? "server" : "client");
                warn(ud, line);
            }
        }
    }
    dist__tls_config_free(&file);
    dist__tls_config_free(&args);
    return 0;
}
