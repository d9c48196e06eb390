/* The TLS engine of dist: every OpenSSL call of dist lives here; bytes in, bytes out, no I/O. */
#include "tls.h"

#include <girder/dist.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RX_INITIAL   (64u << 10) /* ciphertext receive buffer, grown up to RX_MAX */
#define RX_MAX       (1u << 20)
#define RX_MIN_SPACE (16u << 10) /* what rx_space offers at least (a whole record) */
#define TX_CHUNK     (64u << 10) /* output is a list of chunks that never move */
#define STAGE_SIZE   16384u      /* small writes are gathered into records of this size */
#define STAGE_BELOW  2048u       /* pieces smaller than this are gathered, larger go direct */
#define NCACHE       64          /* client sessions kept per context (TLS 1.2 resumption) */
#define MAX_HOST     255

/* OTP 25's re-keying points (ssl_internal.hrl KEY_USAGE_LIMIT_AES_GCM, ssl_record.hrl) */
#define OTP_KEY_UPDATE_AT  388736063997ull
#define OTP_RENEGOTIATE_AT 268435456ull

/* OTP 25's default TLS 1.2 suites (ssl:cipher_suites(default, 'tlsv1.2')), in its order, as
** OpenSSL names them; OpenSSL skips the ones it does not implement (static ECDH). */
static const char OTP25_CIPHERS12[] =
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES256-CCM:"
    "ECDHE-ECDSA-AES256-CCM8:ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:"
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-CCM:ECDHE-ECDSA-AES128-CCM8:"
    "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:DHE-RSA-AES256-GCM-SHA384:"
    "DHE-DSS-AES256-GCM-SHA384:DHE-RSA-AES256-SHA256:DHE-DSS-AES256-SHA256:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-DSS-AES128-GCM-SHA256:DHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-SHA256:DHE-DSS-AES128-SHA256:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:"
    "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:DHE-RSA-AES256-SHA:DHE-DSS-AES256-SHA:"
    "DHE-RSA-AES128-SHA:DHE-DSS-AES128-SHA";
/* OTP 25's default groups (ssl:groups(default)) */
static const char OTP25_GROUPS[] = "X25519:X448:P-256:P-384";

/* ================================================================ contexts */

typedef struct cached_session {
    char host[MAX_HOST + 1];
    SSL_SESSION *s;
} cached_session;

struct dist_tls_ctx {
    SSL_CTX *ssl;
    bool server;
    bool verify_peer;
    int crl_check;
    bool reuse_sessions;
    atomic_uint refs;
    uint64_t key_update_at, renegotiate_at;
    pthread_mutex_t mu; /* guards cache */
    cached_session cache[NCACHE];
    unsigned cache_next;
};

/* ================================================================ connections */

typedef struct tx_chunk {
    struct tx_chunk *next;
    size_t head, tail;
    uint8_t data[TX_CHUNK];
} tx_chunk;

struct dist_tls {
    dist_tls_ctx *ctx;
    SSL *ssl;
    char host[MAX_HOST + 1]; /* client: the peer's host */
    /* ciphertext in: rx[head, tail) not yet given to OpenSSL */
    uint8_t *rx;
    size_t rx_head, rx_tail, rx_cap;
    /* ciphertext out */
    tx_chunk *tx_first, *tx_last, *tx_spare;
    size_t tx_pending;
    /* plaintext gathered for the next record */
    uint8_t *stage;
    size_t stage_len;
    bool established, failed, closed;
    unsigned handshakes, key_updates;
    uint64_t bytes13, records12; /* since the last re-key */
    char verify_why[600];        /* the certificate check that failed */
    char alert[120];             /* the last fatal alert sent or received */
    char why[1000];
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static BIO_METHOD *bio_method;
static int ssl_index = -1;

/* ---------------------------------------------------------------- the BIO: rx and tx buffers */

static int bio_read(BIO *b, char *out, int len)
{
    dist_tls *t = BIO_get_data(b);
    size_t have = t->rx_tail - t->rx_head;
    BIO_clear_retry_flags(b);
    if (have == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = (size_t)len < have ? (size_t)len : have;
    memcpy(out, t->rx + t->rx_head, n);
    t->rx_head += n;
    return (int)n;
}

/* Appends to the output chunks; never moves what is already there. */
static int tx_append(dist_tls *t, const uint8_t *p, size_t n)
{
    while (n) {
        tx_chunk *c = t->tx_last;
        if (!c || c->tail == TX_CHUNK) {
            c = t->tx_spare;
            if (c)
                t->tx_spare = NULL;
            else if (!(c = malloc(sizeof *c)))
                return -1;
            c->next = NULL;
            c->head = c->tail = 0;
            if (t->tx_last)
                t->tx_last->next = c;
            else
                t->tx_first = c;
            t->tx_last = c;
        }
        size_t k = TX_CHUNK - c->tail < n ? TX_CHUNK - c->tail : n;
        memcpy(c->data + c->tail, p, k);
        c->tail += k;
        t->tx_pending += k;
        p += k;
        n -= k;
    }
    return 0;
}

static int bio_write(BIO *b, const char *in, int len)
{
    dist_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    if (tx_append(t, (const uint8_t *)in, (size_t)len)) return -1;
    return len;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void init_once(void)
{
    bio_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "girder-dist-tls");
    if (bio_method) {
        BIO_meth_set_read(bio_method, bio_read);
        BIO_meth_set_write(bio_method, bio_write);
        BIO_meth_set_ctrl(bio_method, bio_ctrl);
        BIO_meth_set_create(bio_method, bio_create);
    }
    ssl_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* ---------------------------------------------------------------- OTP's host-name rule */

static bool is_ip_literal(const char *h)
{
    unsigned char buf[16];
    bool digits = *h != 0;
    for (const char *p = h; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.')) digits = false;
    return digits || inet_pton(AF_INET6, h, buf) == 1; /* inet:parse_address/1 is lenient */
}

/* public_key's match_wild/2 on one label: one '*' in the pattern, none in the name. */
static bool match_wild_label(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0;
    while (i < bn && b[i] != '*') {
        if (i >= an || a[i] != b[i]) return false;
        i++;
    }
    if (i == bn) return an == bn;
    const char *bs = b + i + 1; /* after '*' */
    size_t bsn = bn - i - 1, rest = an - i;
    if (memchr(bs, '*', bsn)) return false;
    if (bsn > rest) return false;
    if (memcmp(a + an - bsn, bs, bsn) != 0) return false;
    return memchr(a + i, '*', rest) == NULL;
}

/* Splits s into '.'-separated non-empty labels (string:tokens/2). */
static size_t labels(const char *s, const char **lab, size_t *len, size_t max)
{
    size_t n = 0;
    while (*s && n < max) {
        while (*s == '.') s++;
        if (!*s) break;
        const char *e = strchr(s, '.');
        size_t k = e ? (size_t)(e - s) : strlen(s);
        lab[n] = s;
        len[n++] = k;
        s += k;
    }
    return n;
}

/* public_key:verify_hostname_match_wildcard/2 (both already lower-case). */
static bool match_wildcard(const char *fqdn, const char *name)
{
    const char *fl[128], *nl[128];
    size_t fk[128], nk[128];
    size_t nf = labels(fqdn, fl, fk, 128), nn = labels(name, nl, nk, 128);
    if (nf == 0 || nn == 0 || nf != nn) return false;
    if (!match_wild_label(fl[0], fk[0], nl[0], nk[0])) return false;
    for (size_t i = 1; i < nf; i++)
        if (fk[i] != nk[i] || memcmp(fl[i], nl[i], fk[i]) != 0) return false;
    return true;
}

static void lower_copy(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] + 32) : src[i];
    dst[n] = 0;
}

/*
** public_key:pkix_verify_hostname(Cert, [{dns_id, Host}]) with the default options, which is
** what OTP 25's client checks on a distribution connection (SNI is always the node's host).
*/
static bool otp_host_matches(X509 *cert, const char *host)
{
    char h[MAX_HOST + 1], v[MAX_HOST + 1];
    size_t hn = strlen(host);
    if (hn == 0 || hn > MAX_HOST) return false;
    lower_copy(h, host, hn);
    GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int nsans = sans ? sk_GENERAL_NAME_num(sans) : 0;
    bool ok = false;
    if (nsans > 0) {
        for (int i = 0; i < nsans && !ok; i++) {
            const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
            if (g->type != GEN_DNS) continue;
            const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
            int dn = ASN1_STRING_length(g->d.dNSName);
            if (dn < 0 || (size_t)dn != hn) continue;
            lower_copy(v, (const char *)d, hn);
            ok = memcmp(v, h, hn) == 0;
        }
        GENERAL_NAMES_free(sans);
        return ok;
    }
    GENERAL_NAMES_free(sans);
    if (is_ip_literal(host)) return false; /* verify_hostname_fqnds/2 drops addresses */
    X509_NAME *subj = X509_get_subject_name(cert);
    for (int i = -1; !ok && (i = X509_NAME_get_index_by_NID(subj, NID_commonName, i)) >= 0;) {
        ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i));
        unsigned char *u = NULL;
        int un = ASN1_STRING_to_UTF8(&u, cn);
        if (un > 0 && (size_t)un <= MAX_HOST && !memchr(u, 0, (size_t)un)) {
            lower_copy(v, (const char *)u, (size_t)un);
            ok = strcmp(v, h) == 0 ? strchr(h, '*') == NULL : match_wildcard(h, v);
        }
        OPENSSL_free(u);
    }
    return ok;
}

bool dist__tls_host_matches(const void *cert_pem, size_t len, const char *host)
{
    BIO *b = BIO_new_mem_buf(cert_pem, (int)len);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    bool ok = x && otp_host_matches(x, host);
    X509_free(x);
    BIO_free(b);
    return ok;
}

/* ---------------------------------------------------------------- callbacks */

static void subject_of(X509 *x, char *buf, size_t len)
{
    BIO *b = BIO_new(BIO_s_mem());
    buf[0] = 0;
    if (!b) return;
    if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(b, buf, (int)len - 1);
        buf[n > 0 ? n : 0] = 0;
    }
    BIO_free(b);
}

/* "DNS names: a, b" of a certificate's subjectAltName, or what OTP looks at without one. */
static void dns_names(X509 *cert, char *buf, size_t len)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int n = sans ? sk_GENERAL_NAME_num(sans) : 0;
    size_t k = (size_t)snprintf(buf, len, "%s", n > 0 ? "DNS names:" : "no subjectAltName: the CN");
    int shown = 0;
    for (int i = 0; i < n && k < len; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type != GEN_DNS) continue;
        const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
        int dn = ASN1_STRING_length(g->d.dNSName);
        char v[64];
        size_t m = 0;
        for (int j = 0; j < dn && m < sizeof v - 1; j++) /* the peer's bytes: printable only */
            v[m++] = d[j] > ' ' && d[j] < 0x7f && d[j] != '"' && d[j] != '\\' ? (char)d[j] : '?';
        v[m] = 0;
        k += (size_t)snprintf(buf + k, len - k, "%s %s", shown++ ? "," : "", v);
    }
    if (n > 0 && !shown && k < len) snprintf(buf + k, len - k, " none");
    GENERAL_NAMES_free(sans);
}

static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    dist_tls *t = ssl ? SSL_get_ex_data(ssl, ssl_index) : NULL;
    if (!t) return ok;
    int depth = X509_STORE_CTX_get_error_depth(xs);
    X509 *cert = X509_STORE_CTX_get_current_cert(xs);
    char subj[160] = "";
    if (!ok) {
        int e = X509_STORE_CTX_get_error(xs);
        if (e == X509_V_ERR_UNABLE_TO_GET_CRL && t->ctx->crl_check == DIST_TLS_CRL_BEST_EFFORT)
            return 1; /* OTP's best_effort: no CRL to be found is not a failure */
        if (!t->verify_why[0]) {
            if (cert) subject_of(cert, subj, sizeof subj);
            snprintf(t->verify_why, sizeof t->verify_why, "%s at depth %d (%s)",
                     X509_verify_cert_error_string(e), depth, subj);
        }
        return 0;
    }
    if (depth == 0 && !t->ctx->server && t->ctx->verify_peer && t->host[0] &&
        !otp_host_matches(cert, t->host)) {
        X509_STORE_CTX_set_error(xs, X509_V_ERR_HOSTNAME_MISMATCH);
        subject_of(cert, subj, sizeof subj);
        char names[200];
        dns_names(cert, names, sizeof names);
        snprintf(t->verify_why, sizeof t->verify_why,
                 "certificate host name mismatch: '%s' is not a DNS name of %s (%s)", t->host, subj,
                 names);
        return 0;
    }
    return 1;
}

/* An alert's name; OpenSSL 3.0 calls the ones TLS 1.3 added "unknown". */
static const char *alert_name(int ret)
{
    switch (ret & 0xff) {
    case 109:
        return "missing extension";
    case 115:
        return "unknown PSK identity";
    case 116:
        return "certificate required";
    case 120:
        return "no application protocol";
    }
    return SSL_alert_desc_string_long(ret);
}

static void info_cb(const SSL *ssl, int where, int ret)
{
    dist_tls *t = SSL_get_ex_data(ssl, ssl_index);
    if (!t) return;
    if ((where & SSL_CB_ALERT) && (ret >> 8) == SSL3_AL_FATAL)
        snprintf(t->alert, sizeof t->alert, "%s fatal alert '%s'",
                 (where & SSL_CB_READ) ? "received" : "sent", alert_name(ret));
}

static void msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    (void)version;
    (void)arg;
    dist_tls *t = SSL_get_ex_data(ssl, ssl_index);
    if (!t || write_p || content_type != SSL3_RT_HANDSHAKE || len < 1) return;
    uint8_t type = ((const uint8_t *)buf)[0];
    if (type == SSL3_MT_KEY_UPDATE) t->key_updates++;
    if (type == SSL3_MT_FINISHED) t->handshakes++; /* one received per handshake */
}

static int pw_cb(char *buf, int size, int rwflag, void *ud)
{
    (void)rwflag;
    const char *pw = ud;
    if (!pw) return 0; /* never ask a terminal */
    size_t n = strlen(pw);
    if (n > (size_t)size) return 0;
    memcpy(buf, pw, n);
    return (int)n;
}

/* ---------------------------------------------------------------- context construction */

/* err: "ROLE: option OPT: WHAT: OpenSSL's reason"; returns DIST_EINVAL. */
static int ctx_fail(char *err, size_t errlen, bool server, const char *opt, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (err && errlen)
        snprintf(err, errlen, "%s: %s%s%s%s%s%s", server ? "server" : "client",
                 opt ? "option " : "", opt ? opt : "", opt ? ": " : "", what, r ? ": " : "",
                 r ? r : "");
    ERR_clear_error();
    return DIST_EINVAL;
}

/* Every name of list must be a cipher OpenSSL knows by exactly that name. */
static int check_cipher_names(SSL_CTX *c, const char *list, char *err, size_t errlen, bool server)
{
    char name[128];
    const char *s = list;
    while (*s) {
        const char *e = strchr(s, ':');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name ? n : sizeof name - 1), s);
        STACK_OF(SSL_CIPHER) *sk = NULL;
        int found = 0, others = 0; /* the TLS 1.3 suites are always in the list: skip them */
        if (SSL_CTX_set_cipher_list(c, name) == 1 && (sk = SSL_CTX_get_ciphers(c)))
            for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
                const SSL_CIPHER *ci = sk_SSL_CIPHER_value(sk, i);
                if (strcmp(SSL_CIPHER_get_version(ci), "TLSv1.3") == 0) continue;
                if (strcmp(SSL_CIPHER_get_name(ci), name) == 0)
                    found++;
                else
                    others++;
            }
        bool ok = found == 1 && others == 0;
        if (!ok)
            return ctx_fail(err, errlen, server, "ciphers",
                            "'%s' is not a TLS 1.2 cipher "
                            "suite OpenSSL knows",
                            name);
        s += n + (e ? 1 : 0);
    }
    return 0;
}

/* A file OpenSSL is about to read must be readable: say why not in the system's words (OpenSSL
** would only say "system lib"). */
static int check_file(char *err, size_t errlen, bool server, const char *opt, const char *path)
{
    FILE *f = fopen(path, "r");
    if (f) {
        fclose(f);
        return 0;
    }
    int e = errno;
    ERR_clear_error();
    return ctx_fail(err, errlen, server, opt, "cannot read %s: %s", path, strerror(e));
}

static int load_dh(SSL_CTX *c, const char *path, char *err, size_t errlen)
{
    int rc = check_file(err, errlen, true, "dhfile", path);
    if (rc) return rc;
    BIO *b = BIO_new_file(path, "r");
    EVP_PKEY *dh = b ? PEM_read_bio_Parameters(b, NULL) : NULL;
    BIO_free(b);
    if (!dh)
        return ctx_fail(err, errlen, true, "dhfile", "cannot read DH parameters from %s", path);
    if (SSL_CTX_set0_tmp_dh_pkey(c, dh) != 1) {
        EVP_PKEY_free(dh);
        return ctx_fail(err, errlen, true, "dhfile", "unusable DH parameters in %s", path);
    }
    return 0;
}

static int configure(dist_tls_ctx *x, const dist_tls_role *r, char *err, size_t errlen)
{
    SSL_CTX *c = x->ssl;
    bool sv = x->server;
    int rc;
    SSL_CTX_set_min_proto_version(c,
                                  (r->versions & DIST_TLS_V12) ? TLS1_2_VERSION : TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(c,
                                  (r->versions & DIST_TLS_V13) ? TLS1_3_VERSION : TLS1_2_VERSION);
    uint64_t opts = SSL_OP_NO_TICKET | SSL_OP_NO_COMPRESSION; /* OTP: session ids, no tickets */
    if (!r->secure_renegotiate)
        opts |= SSL_OP_LEGACY_SERVER_CONNECT | SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION;
    if (sv && r->honor_cipher_order) opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
    if (sv && r->client_renegotiation) opts |= SSL_OP_ALLOW_CLIENT_RENEGOTIATION;
    SSL_CTX_set_options(c, opts);
    if (!r->secure_renegotiate)
        SSL_CTX_clear_options(c, 0);
    else
        SSL_CTX_clear_options(c, SSL_OP_LEGACY_SERVER_CONNECT);
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_num_tickets(c, 0); /* OTP 25: session_tickets disabled */
    if (sv) {
        SSL_CTX_set_session_id_context(c, (const unsigned char *)"girder-dist", 11);
        SSL_CTX_set_session_cache_mode(c, r->reuse_sessions ? SSL_SESS_CACHE_SERVER
                                                            : SSL_SESS_CACHE_OFF);
    } else {
        SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF); /* ours, keyed by host */
    }
    if (SSL_CTX_set1_groups_list(c, OTP25_GROUPS) != 1)
        return ctx_fail(err, errlen, sv, NULL, "cannot set the key exchange groups");
    /* ciphers */
    if (r->ciphers12) {
        if ((rc = check_cipher_names(c, r->ciphers12, err, errlen, sv))) return rc;
        if (SSL_CTX_set_cipher_list(c, r->ciphers12) != 1)
            return ctx_fail(err, errlen, sv, "ciphers", "rejected");
    } else if (SSL_CTX_set_cipher_list(c, OTP25_CIPHERS12) != 1) {
        return ctx_fail(err, errlen, sv, "ciphers", "OTP 25's default suites were rejected");
    }
    if (r->ciphers13 && SSL_CTX_set_ciphersuites(c, r->ciphers13) != 1)
        return ctx_fail(err, errlen, sv, "ciphers", "TLS 1.3 suites '%s' rejected", r->ciphers13);
    /* own certificate and key */
    SSL_CTX_set_default_passwd_cb(c, pw_cb);
    SSL_CTX_set_default_passwd_cb_userdata(c, r->password);
    if (r->certfile) {
        const char *key = r->keyfile ? r->keyfile : r->certfile;
        if ((rc = check_file(err, errlen, sv, "certfile", r->certfile)) ||
            (r->keyfile && (rc = check_file(err, errlen, sv, "keyfile", r->keyfile))))
            return rc;
        if (SSL_CTX_use_certificate_chain_file(c, r->certfile) != 1)
            return ctx_fail(err, errlen, sv, "certfile", "cannot use %s", r->certfile);
        if (SSL_CTX_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM) != 1)
            return ctx_fail(err, errlen, sv, r->keyfile ? "keyfile" : "certfile",
                            "cannot use the private key in %s%s", key,
                            r->password ? " (wrong password?)" : "");
        if (SSL_CTX_check_private_key(c) != 1)
            return ctx_fail(err, errlen, sv, "keyfile", "%s does not match %s", key, r->certfile);
    } else if (r->keyfile) {
        return ctx_fail(err, errlen, sv, "keyfile", "given without certfile");
    }
    SSL_CTX_set_default_passwd_cb_userdata(c, NULL); /* the role struct may go away */
    /* trust */
    if (r->cacertfile) {
        if ((rc = check_file(err, errlen, sv, "cacertfile", r->cacertfile))) return rc;
        if (SSL_CTX_load_verify_locations(c, r->cacertfile, NULL) != 1)
            return ctx_fail(err, errlen, sv, "cacertfile", "cannot load %s", r->cacertfile);
        if (sv && r->verify_peer) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(r->cacertfile);
            if (names) SSL_CTX_set_client_CA_list(c, names);
        }
    }
    if (r->dhfile && sv && (rc = load_dh(c, r->dhfile, err, errlen))) return rc;
    if (!r->dhfile && sv) SSL_CTX_set_dh_auto(c, 1);
    int mode = SSL_VERIFY_NONE;
    if (r->verify_peer)
        mode =
            SSL_VERIFY_PEER | (sv && r->fail_if_no_peer_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0);
    SSL_CTX_set_verify(c, mode, verify_cb);
    SSL_CTX_set_verify_depth(c, r->depth);
    if (r->crl_check != DIST_TLS_CRL_OFF) {
        X509_STORE *st = SSL_CTX_get_cert_store(c);
        X509_LOOKUP *lk = X509_STORE_add_lookup(st, X509_LOOKUP_hash_dir());
        if (!lk || X509_LOOKUP_add_dir(lk, r->crl_dir, X509_FILETYPE_PEM) != 1)
            return ctx_fail(err, errlen, sv, "crl_cache", "cannot use directory %s", r->crl_dir);
        unsigned long fl = X509_V_FLAG_CRL_CHECK;
        if (r->crl_check != DIST_TLS_CRL_PEER) fl |= X509_V_FLAG_CRL_CHECK_ALL;
        X509_STORE_set_flags(st, fl);
    }
    SSL_CTX_set_info_callback(c, info_cb);
    SSL_CTX_set_msg_callback(c, msg_cb);
    return 0;
}

int dist__tls_ctx_new(const dist_tls_role *role, bool server, dist_tls_ctx **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    pthread_once(&once, init_once);
    if (!bio_method || ssl_index < 0) return DIST_ENOMEM;
    dist_tls_ctx *x = calloc(1, sizeof *x);
    if (!x) return DIST_ENOMEM;
    ERR_clear_error();
    x->ssl = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!x->ssl) {
        free(x);
        return DIST_ENOMEM;
    }
    x->server = server;
    x->verify_peer = role->verify_peer;
    x->crl_check = role->crl_check;
    x->reuse_sessions = role->reuse_sessions;
    x->key_update_at = OTP_KEY_UPDATE_AT;
    x->renegotiate_at = OTP_RENEGOTIATE_AT;
    atomic_init(&x->refs, 1);
    pthread_mutex_init(&x->mu, NULL);
    int rc = configure(x, role, err, errlen);
    if (rc) {
        dist__tls_ctx_free(x);
        return rc;
    }
    *out = x;
    return 0;
}

void dist__tls_ctx_set_rekey(dist_tls_ctx *c, uint64_t tls13_bytes, uint64_t tls12_records)
{
    c->key_update_at = tls13_bytes ? tls13_bytes : OTP_KEY_UPDATE_AT;
    c->renegotiate_at = tls12_records ? tls12_records : OTP_RENEGOTIATE_AT;
}

void dist__tls_ctx_ref(dist_tls_ctx *c)
{
    atomic_fetch_add(&c->refs, 1);
}

void dist__tls_ctx_free(dist_tls_ctx *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1) return;
    for (int i = 0; i < NCACHE; i++) SSL_SESSION_free(c->cache[i].s);
    pthread_mutex_destroy(&c->mu);
    SSL_CTX_free(c->ssl);
    free(c);
}

/* ---------------------------------------------------------------- client session cache */

static void cache_lookup(dist_tls *t)
{
    dist_tls_ctx *c = t->ctx;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < NCACHE; i++)
        if (c->cache[i].s && strcmp(c->cache[i].host, t->host) == 0) {
            SSL_set_session(t->ssl, c->cache[i].s);
            break;
        }
    pthread_mutex_unlock(&c->mu);
}

static void cache_store(dist_tls *t)
{
    dist_tls_ctx *c = t->ctx;
    SSL_SESSION *s = SSL_get1_session(t->ssl);
    if (!s) return;
    if (!SSL_SESSION_is_resumable(s) || SSL_SESSION_get_protocol_version(s) != TLS1_2_VERSION) {
        SSL_SESSION_free(s);
        return;
    }
    pthread_mutex_lock(&c->mu);
    int slot = -1;
    for (int i = 0; i < NCACHE && slot < 0; i++)
        if (c->cache[i].s && strcmp(c->cache[i].host, t->host) == 0) slot = i;
    if (slot < 0) slot = (int)(c->cache_next++ % NCACHE);
    SSL_SESSION_free(c->cache[slot].s);
    c->cache[slot].s = s;
    snprintf(c->cache[slot].host, sizeof c->cache[slot].host, "%s", t->host);
    pthread_mutex_unlock(&c->mu);
}

/* ---------------------------------------------------------------- engine */

dist_tls *dist__tls_new(dist_tls_ctx *c, const char *peer_host)
{
    if (!c->server && (!peer_host || !peer_host[0] || strlen(peer_host) > MAX_HOST)) return NULL;
    dist_tls *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->ctx = c;
    atomic_fetch_add(&c->refs, 1);
    t->rx_cap = RX_INITIAL;
    t->rx = malloc(t->rx_cap);
    t->ssl = SSL_new(c->ssl);
    BIO *b = bio_method ? BIO_new(bio_method) : NULL;
    if (!t->rx || !t->ssl || !b) {
        BIO_free(b);
        dist__tls_free(t);
        return NULL;
    }
    BIO_set_data(b, t);
    SSL_set_bio(t->ssl, b, b); /* one BIO both ways; the SSL owns it */
    SSL_set_ex_data(t->ssl, ssl_index, t);
    if (c->server) {
        SSL_set_accept_state(t->ssl);
    } else {
        snprintf(t->host, sizeof t->host, "%s", peer_host);
        SSL_set_connect_state(t->ssl);
        /* OTP sends the node's host as SNI, whatever it is (an address too) */
        if (SSL_set_tlsext_host_name(t->ssl, t->host) != 1) {
            dist__tls_free(t);
            return NULL;
        }
        if (c->reuse_sessions) cache_lookup(t);
    }
    return t;
}

void dist__tls_free(dist_tls *t)
{
    if (!t) return;
    /* OpenSSL drops the session of a connection freed without close_notify from the server's
    ** cache; a distribution connection usually ends that way (TCP closed, node down), and OTP
    ** keeps resuming: keep the session unless the connection failed. */
    if (t->ssl && t->established && !t->failed)
        SSL_set_shutdown(t->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(t->ssl);
    while (t->tx_first) {
        tx_chunk *n = t->tx_first->next;
        free(t->tx_first);
        t->tx_first = n;
    }
    free(t->tx_spare);
    free(t->stage);
    free(t->rx);
    dist__tls_ctx_free(t->ctx);
    free(t);
}

uint8_t *dist__tls_rx_space(dist_tls *t, size_t *cap)
{
    if (t->rx_head == t->rx_tail) t->rx_head = t->rx_tail = 0;
    if (t->rx_cap - t->rx_tail < RX_MIN_SPACE && t->rx_head > 0) {
        memmove(t->rx, t->rx + t->rx_head, t->rx_tail - t->rx_head);
        t->rx_tail -= t->rx_head;
        t->rx_head = 0;
    }
    if (t->rx_cap - t->rx_tail < RX_MIN_SPACE && t->rx_cap < RX_MAX) {
        uint8_t *n = realloc(t->rx, t->rx_cap * 2);
        if (n) {
            t->rx = n;
            t->rx_cap *= 2;
        }
    }
    *cap = t->rx_cap - t->rx_tail;
    return *cap ? t->rx + t->rx_tail : NULL;
}

void dist__tls_rx_commit(dist_tls *t, size_t n)
{
    t->rx_tail += n;
}

size_t dist__tls_feed(dist_tls *t, const void *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t cap;
        uint8_t *d = dist__tls_rx_space(t, &cap);
        if (!d) break;
        size_t k = n - done < cap ? n - done : cap;
        memcpy(d, (const uint8_t *)p + done, k);
        dist__tls_rx_commit(t, k);
        done += k;
    }
    return done;
}

/* Composes t->why from OpenSSL's error queue, the failed check and the alert; DIST_EPROTO. */
static int failed(dist_tls *t, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    char reason[160];
    if (r)
        snprintf(reason, sizeof reason, "%s", r);
    else if (e)
        snprintf(reason, sizeof reason, "OpenSSL error %lx", e);
    else
        snprintf(reason, sizeof reason, "connection failed");
    snprintf(t->why, sizeof t->why, "%s: %s%s%s%s%s", what, reason, t->verify_why[0] ? "; " : "",
             t->verify_why, t->alert[0] ? "; " : "", t->alert);
    ERR_clear_error();
    t->failed = true;
    return DIST_EPROTO;
}

/* Maps an SSL_get_error() result. */
static int ssl_result(dist_tls *t, int ret, const char *what)
{
    switch (SSL_get_error(t->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return DIST_TLS_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return DIST_TLS_EOF;
    default:
        return failed(t, what);
    }
}

static void on_established(dist_tls *t)
{
    t->established = true;
    if (!t->ctx->server && t->ctx->reuse_sessions && !SSL_session_reused(t->ssl)) cache_store(t);
}

int dist__tls_handshake(dist_tls *t)
{
    if (t->failed) return DIST_EPROTO;
    if (t->established) return 0;
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        on_established(t);
        return 0;
    }
    int rc = ssl_result(t, r, "TLS handshake failed");
    return rc == DIST_TLS_EOF ? failed(t, "TLS handshake failed") : rc;
}

bool dist__tls_established(const dist_tls *t)
{
    return t->established;
}

/* Sends what is gathered in the stage; 0 when it is empty after, else AGAIN or a failure. */
static int flush_stage(dist_tls *t);

/* Counts what was written and re-keys where OTP would. */
static void written(dist_tls *t, size_t n)
{
    t->bytes13 += n;
    t->records12 += (n + 16383) / 16384;
    if (SSL_version(t->ssl) == TLS1_3_VERSION) {
        if (t->bytes13 >= t->ctx->key_update_at) dist__tls_rekey(t);
    } else if (t->records12 >= t->ctx->renegotiate_at) {
        dist__tls_rekey(t);
    }
}

/* SSL_write_ex until all of p is taken or OpenSSL waits for the peer; *done gets the count. */
static int write_some(dist_tls *t, const uint8_t *p, size_t n, size_t *done)
{
    *done = 0;
    while (*done < n) {
        size_t k = 0;
        ERR_clear_error();
        int r = SSL_write_ex(t->ssl, p + *done, n - *done, &k);
        if (r != 1) {
            int rc = ssl_result(t, r, "TLS write failed");
            return rc == DIST_TLS_EOF ? failed(t, "TLS write failed") : rc;
        }
        *done += k;
        written(t, k);
    }
    return 0;
}

static int flush_stage(dist_tls *t)
{
    if (!t->stage_len) return 0;
    size_t done;
    int rc = write_some(t, t->stage, t->stage_len, &done);
    memmove(t->stage, t->stage + done, t->stage_len - done);
    t->stage_len -= done;
    return rc;
}

int dist__tls_writev(dist_tls *t, const struct iovec *iov, int iovcnt, size_t *n)
{
    int rc = 0;
    *n = 0;
    if (t->failed) return DIST_EPROTO;
    if (t->closed) {
        snprintf(t->why, sizeof t->why, "TLS write after close");
        return DIST_EPROTO;
    }
    if (!t->established) return DIST_TLS_AGAIN;
    if (!t->stage && !(t->stage = malloc(STAGE_SIZE))) return DIST_ENOMEM;
    for (int i = 0; i < iovcnt && rc == 0; i++) {
        const uint8_t *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        if (len < STAGE_BELOW) { /* gather: one record for many small pieces */
            while (len) {
                if (t->stage_len == STAGE_SIZE && (rc = flush_stage(t))) break;
                size_t k = STAGE_SIZE - t->stage_len < len ? STAGE_SIZE - t->stage_len : len;
                memcpy(t->stage + t->stage_len, p, k);
                t->stage_len += k;
                *n += k;
                p += k;
                len -= k;
            }
            continue;
        }
        if ((rc = flush_stage(t))) break;
        size_t done;
        rc = write_some(t, p, len, &done);
        *n += done;
    }
    if (rc == 0) rc = flush_stage(t); /* AGAIN: the stage is sent once the peer answers */
    return rc;
}

int dist__tls_read(dist_tls *t, void *buf, size_t cap, size_t *n)
{
    *n = 0;
    if (t->failed) return DIST_EPROTO;
    if (!t->established) {
        int rc = dist__tls_handshake(t);
        if (rc) return rc;
    }
    ERR_clear_error();
    int r = SSL_read_ex(t->ssl, buf, cap, n);
    int rc = r == 1 ? 0 : ssl_result(t, r, "TLS read failed");
    /* a renegotiation or KeyUpdate may have been waiting for this input to let data go */
    if (rc != DIST_EPROTO && t->stage_len) {
        int f = flush_stage(t);
        if (f == DIST_EPROTO) return f;
    }
    return rc;
}

size_t dist__tls_tx_pending(const dist_tls *t)
{
    return t->tx_pending;
}

int dist__tls_tx_iov(const dist_tls *t, struct iovec *iov, int max)
{
    int k = 0;
    for (tx_chunk *c = t->tx_first; c && k < max; c = c->next) {
        if (c->tail == c->head) continue;
        iov[k].iov_base = c->data + c->head;
        iov[k].iov_len = c->tail - c->head;
        k++;
    }
    return k;
}

void dist__tls_tx_consume(dist_tls *t, size_t n)
{
    if (n > t->tx_pending) n = t->tx_pending;
    t->tx_pending -= n;
    while (n && t->tx_first) {
        tx_chunk *c = t->tx_first;
        size_t k = c->tail - c->head < n ? c->tail - c->head : n;
        c->head += k;
        n -= k;
        if (c->head == c->tail) {
            t->tx_first = c->next;
            if (!t->tx_first) t->tx_last = NULL;
            if (!t->tx_spare)
                t->tx_spare = c;
            else
                free(c);
        }
    }
}

int dist__tls_close(dist_tls *t)
{
    if (t->closed || t->failed || !t->established) {
        t->closed = true;
        return 0;
    }
    flush_stage(t);
    t->closed = true;
    ERR_clear_error();
    int r = SSL_shutdown(t->ssl); /* queues close_notify into the output */
    if (r < 0 && SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ) return failed(t, "TLS close");
    return 0;
}

int dist__tls_rekey(dist_tls *t)
{
    if (!t->established || t->failed || t->closed) return DIST_EINVAL;
    ERR_clear_error();
    int ok = SSL_version(t->ssl) == TLS1_3_VERSION
                 ? SSL_key_update(t->ssl, SSL_KEY_UPDATE_REQUESTED)
                 : SSL_renegotiate(t->ssl);
    t->bytes13 = t->records12 = 0;
    if (ok != 1) return failed(t, "TLS re-key refused");
    int r = SSL_do_handshake(t->ssl); /* writes the KeyUpdate / ClientHello / HelloRequest */
    if (r != 1) {
        int rc = ssl_result(t, r, "TLS re-key failed");
        if (rc == DIST_EPROTO) return rc;
    }
    return 0;
}

const char *dist__tls_why(const dist_tls *t)
{
    return t->why[0] ? t->why : "no error";
}

int dist__tls_peer_subject(const dist_tls *t, char *buf, size_t len)
{
    X509 *x = SSL_get1_peer_certificate(t->ssl);
    if (!x) {
        if (len) buf[0] = 0;
        return DIST_EINVAL;
    }
    subject_of(x, buf, len);
    X509_free(x);
    return 0;
}

const char *dist__tls_version(const dist_tls *t)
{
    return SSL_get_version(t->ssl);
}

const char *dist__tls_cipher(const dist_tls *t)
{
    return SSL_get_cipher_name(t->ssl);
}

bool dist__tls_resumed(const dist_tls *t)
{
    return SSL_session_reused(t->ssl) == 1;
}

unsigned dist__tls_handshakes(const dist_tls *t)
{
    return t->handshakes;
}

unsigned dist__tls_key_updates(const dist_tls *t)
{
    return t->key_updates;
}
