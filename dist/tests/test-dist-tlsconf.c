/* Unit tests for the TLS optfile / -ssl_dist_opt reader: every option, every refusal, bad files. */
#include "tls_config.h"

#include <girder/dist.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static char err[1024];
static char warnings[8192];

static void on_warn(void *ud, const char *line)
{
    (void)ud;
    strncat(warnings, line, sizeof warnings - strlen(warnings) - 2);
    strcat(warnings, "\n");
}

static int parse(const char *text, dist_tls_config *cfg)
{
    err[0] = warnings[0] = 0;
    return dist__tls_config_text(text, strlen(text), "t.conf", cfg, err, sizeof err, on_warn, NULL);
}

/* Parses text that must be refused; the message must contain each of the given fragments. */
static void refused(const char *text, const char *frag1, const char *frag2)
{
    dist_tls_config cfg;
    int rc = parse(text, &cfg);
    if (rc != DIST_EINVAL) fprintf(stderr, "accepted: %s\n", text);
    assert_int_equal(rc, DIST_EINVAL);
    if (!strstr(err, frag1) || (frag2 && !strstr(err, frag2)))
        fprintf(stderr, "text: %s\nmessage: %s\nwanted: %s / %s\n", text, err, frag1,
                frag2 ? frag2 : "");
    assert_non_null(strstr(err, frag1));
    if (frag2) assert_non_null(strstr(err, frag2));
    assert_non_null(strstr(err, "t.conf"));
    /* nothing to free: the struct is back to defaults */
    assert_null(cfg.server.certfile);
    assert_null(cfg.client.certfile);
}

/* A client-role option list wrapped in a file. */
static void refused_client(const char *opts, const char *frag1, const char *frag2)
{
    char text[2048];
    snprintf(text, sizeof text, "[{client, [%s]}].", opts);
    refused(text, frag1, frag2);
}

static void test_every_supported_option(void **s)
{
    (void)s;
    dist_tls_config c;
    const char *text =
        "%% a comment\n"
        "[{server, [{certfile, \"/p/node.pem\"}, {keyfile, \"/p/node.key\"},\n"
        "           {password, \"pw\"}, {cacertfile, <<\"/p/ca.pem\">>},\n"
        "           {dhfile, \"/p/dh.pem\"}, {verify, verify_peer},\n"
        "           {fail_if_no_peer_cert, true}, {depth, 3},\n"
        "           {versions, ['tlsv1.3', 'tlsv1.2']},\n"
        "           {ciphers, \"ECDHE-ECDSA-AES256-GCM-SHA384:TLS_AES_128_GCM_SHA256\"},\n"
        "           {secure_renegotiate, false}, {reuse_sessions, false},\n"
        "           {honor_cipher_order, true}, {client_renegotiation, false},\n"
        "           {crl_check, peer},\n"
        "           {crl_cache, {ssl_crl_hash_dir, {internal, [{dir, \"/p/crls\"}]}}},\n"
        "           {customize_hostname_check, []}, {protocol, tls},\n"
        "           {session_tickets, disabled}, {handshake, full}]},\n"
        " {client, [{certfile, \"/p/c.pem\"}, {cacertfile, \"/p/ca.pem\"},\n"
        "           {verify, verify_peer}, {versions, ['tlsv1.3']},\n"
        "           {ciphers, [\"TLS_AES_256_GCM_SHA384\", \"TLS_CHACHA20_POLY1305_SHA256\"]},\n"
        "           {server_name_indication, disable}, {crl_check, true},\n"
        "           {crl_cache, {ssl_crl_hash_dir, {internal, [{dir, \"/p/crls\"}]}}}]}].\n";
    assert_int_equal(parse(text, &c), 0);
    dist_tls_role *r = &c.server;
    assert_true(r->given);
    assert_string_equal(r->certfile, "/p/node.pem");
    assert_string_equal(r->keyfile, "/p/node.key");
    assert_string_equal(r->password, "pw");
    assert_string_equal(r->cacertfile, "/p/ca.pem");
    assert_string_equal(r->dhfile, "/p/dh.pem");
    assert_true(r->verify_peer);
    assert_true(r->fail_if_no_peer_cert);
    assert_int_equal(r->depth, 3);
    assert_int_equal(r->versions, DIST_TLS_V12 | DIST_TLS_V13);
    assert_string_equal(r->ciphers12, "ECDHE-ECDSA-AES256-GCM-SHA384");
    assert_string_equal(r->ciphers13, "TLS_AES_128_GCM_SHA256");
    assert_false(r->secure_renegotiate);
    assert_false(r->reuse_sessions);
    assert_true(r->honor_cipher_order);
    assert_false(r->client_renegotiation);
    assert_int_equal(r->crl_check, DIST_TLS_CRL_PEER);
    assert_string_equal(r->crl_dir, "/p/crls");
    r = &c.client;
    assert_true(r->given);
    assert_string_equal(r->certfile, "/p/c.pem");
    assert_null(r->keyfile);
    assert_int_equal(r->versions, DIST_TLS_V13);
    assert_null(r->ciphers12);
    assert_string_equal(r->ciphers13, "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
    assert_int_equal(r->sni, DIST_TLS_SNI_DISABLE);
    assert_int_equal(r->crl_check, DIST_TLS_CRL_ALL);
    /* the SNI override is read, and said to be replaced as OTP does */
    assert_non_null(strstr(warnings, "server_name_indication"));
    dist__tls_config_free(&c);
}

static void test_defaults_follow_otp(void **s)
{
    (void)s;
    dist_tls_config c;
    assert_int_equal(parse("[{server, []}].", &c), 0);
    assert_true(c.server.given);
    assert_false(c.client.given);
    assert_int_equal(c.server.versions, DIST_TLS_V12); /* dist_defaults: TLS 1.2 only */
    assert_int_equal(c.server.depth, 10);
    assert_false(c.server.verify_peer);
    assert_false(c.server.fail_if_no_peer_cert);
    assert_true(c.server.secure_renegotiate);
    assert_true(c.server.reuse_sessions);
    assert_true(c.server.client_renegotiation);
    assert_false(c.server.honor_cipher_order);
    assert_int_equal(c.server.crl_check, DIST_TLS_CRL_OFF);
    assert_int_equal(c.server.sni, DIST_TLS_SNI_DEFAULT);
    assert_null(c.server.ciphers12);
    assert_non_null(strstr(warnings, "verify_none"));
    assert_non_null(strstr(warnings, "no certfile"));
    dist__tls_config_free(&c);

    /* the other forms of the top term: a single tuple, an empty list, one trailing dot */
    assert_int_equal(parse("{client, [{verify, verify_peer}]}", &c), 0);
    assert_true(c.client.verify_peer);
    dist__tls_config_free(&c);
    assert_int_equal(parse("[]", &c), 0);
    assert_false(c.server.given || c.client.given);
    dist__tls_config_free(&c);
    /* proplist shorthand: an atom alone is {Atom, true} */
    assert_int_equal(parse("[{server, [{verify, verify_peer}, fail_if_no_peer_cert]}].", &c), 0);
    assert_true(c.server.fail_if_no_peer_cert);
    dist__tls_config_free(&c);
    /* an empty string is no file, as OTP's <<>> */
    assert_int_equal(parse("[{client, [{certfile, \"\"}]}].", &c), 0);
    assert_null(c.client.certfile);
    dist__tls_config_free(&c);
}

static void test_ciphers_forms(void **s)
{
    (void)s;
    dist_tls_config c;
    assert_int_equal(parse("[{client, [{ciphers, []}]}].", &c), 0);
    assert_null(c.client.ciphers12);
    assert_null(c.client.ciphers13);
    dist__tls_config_free(&c);
    assert_int_equal(
        parse("[{client, [{ciphers, [\"ECDHE-RSA-AES128-GCM-SHA256\", <<\"x\">>]}]}].", &c),
        DIST_EINVAL); /* a binary in a list of strings */
    assert_int_equal(
        parse("[{client, [{ciphers, [\"A-B\", \"C_D\", \"TLS_AES_128_CCM_SHA256\"]}]}].", &c), 0);
    assert_string_equal(c.client.ciphers12, "A-B:C_D"); /* names are checked by OpenSSL later */
    assert_string_equal(c.client.ciphers13, "TLS_AES_128_CCM_SHA256");
    dist__tls_config_free(&c);
    refused_client("{ciphers, [#{cipher => aes_128_gcm}]}", "ciphers", "maps or tuples");
    refused_client("{ciphers, [{ecdhe_rsa, aes_128_gcm, aead, sha256}]}", "ciphers", "tuples");
    refused_client("{ciphers, [<<192,44>>]}", "ciphers", "binary codes");
    refused_client("{ciphers, \"HIGH:!aNULL\"}", "ciphers", "'!aNULL' is not");
    refused_client("{ciphers, \"A::B\"}", "ciphers", "is not a cipher");
    refused_client("{ciphers, [\"A:B\"]}", "ciphers", "is not a cipher");
    refused_client("{ciphers, 42}", "ciphers", "string");
}

static void test_refusals(void **s)
{
    (void)s;
    static const char *const otp_refused[] = {"cacerts",
                                              "cert",
                                              "key",
                                              "certs_keys",
                                              "verify_fun",
                                              "partial_chain",
                                              "sni_fun",
                                              "sni_hosts",
                                              "user_lookup_fun",
                                              "psk_identity",
                                              "srp_identity",
                                              "reuse_session",
                                              "eccs",
                                              "supported_groups",
                                              "signature_algs",
                                              "signature_algs_cert",
                                              "dh",
                                              "fallback",
                                              "key_update_at",
                                              "renegotiate_at",
                                              "early_data",
                                              "use_ticket",
                                              "anti_replay",
                                              "ocsp_stapling",
                                              "ocsp_responder_certs",
                                              "ocsp_nonce",
                                              "certificate_authorities",
                                              "max_fragment_length",
                                              "cookie",
                                              "cb_info"};
    for (size_t i = 0; i < sizeof otp_refused / sizeof *otp_refused; i++) {
        char opt[200], want[100];
        snprintf(opt, sizeof opt, "{%s, whatever}", otp_refused[i]);
        snprintf(want, sizeof want, "client: option %s: refused", otp_refused[i]);
        refused_client(opt, want, NULL);
    }
    refused_client("{nodelay, true}", "option nodelay: unknown option", NULL);
    refused_client("{certfile, \"a\"}, {certfile, \"b\"}", "certfile", "given twice");
    refused_client("{verify, verify_some}", "verify", "verify_peer or verify_none");
    refused_client("{verify, verify_none}, {fail_if_no_peer_cert, true}", "fail_if_no_peer_cert",
                   "verify_peer");
    refused_client("{depth, 256}", "depth", "0 to 255");
    refused_client("{depth, -1}", "depth", "0 to 255");
    refused_client("{depth, ten}", "depth", "integer");
    refused_client("{versions, []}", "versions", "non-empty");
    refused_client("{versions, ['tlsv1.1']}", "versions", "TLS 1.2 and 1.3 only");
    refused_client("{versions, [tlsv1]}", "versions", "TLS 1.2 and 1.3 only");
    refused_client("{versions, [sslv3]}", "versions", "TLS 1.2 and 1.3 only");
    refused_client("{versions, ['tlsv1.4']}", "versions", "not a TLS version");
    refused_client("{versions, \"tlsv1.2\"}", "versions", "atoms");
    refused_client("{versions, ['tlsv1.3']}, {secure_renegotiate, true}", "secure_renegotiate",
                   "TLS 1.2 only");
    refused_client("{versions, ['tlsv1.3']}, {reuse_sessions, true}", "reuse_sessions",
                   "TLS 1.2 only");
    refused_client("{client_renegotiation, true}, {versions, ['tlsv1.3']}", "client_renegotiation",
                   "TLS 1.2 only");
    refused_client("{secure_renegotiate, yes}", "secure_renegotiate", "true or false");
    refused_client("{reuse_sessions, save}", "reuse_sessions", "'save' is not supported");
    refused_client("{honor_cipher_order, 1}", "honor_cipher_order", "true or false");
    refused_client("{crl_check, true}", "crl_check", "ssl_crl_hash_dir");
    refused_client("{crl_check, true}, {crl_cache, {ssl_crl_cache, {internal, [{http, 5000}]}}}",
                   "crl_check", "does not fetch");
    refused_client("{crl_check, maybe}", "crl_check", "best_effort");
    refused_client("{crl_cache, {my_cache, {internal, []}}}", "crl_cache", "only");
    refused_client("{crl_cache, {ssl_crl_hash_dir, {internal, [{dir, \"d\"}, {x, 1}]}}}",
                   "crl_cache", "{dir, Dir}");
    refused_client("{crl_cache, {ssl_crl_hash_dir, {internal, []}}}", "crl_cache", "missing");
    refused_client("{customize_hostname_check, [{match_fun, x}]}", "customize_hostname_check",
                   "only []");
    refused_client("{protocol, dtls}", "protocol", "only tls");
    refused_client("{session_tickets, auto}", "session_tickets", "not supported");
    refused_client("{handshake, hello}", "handshake", "only full");
    refused_client("{server_name_indication, 42}", "server_name_indication", "string");
    refused_client("{server_name_indication, \"\"}", "server_name_indication", "host name");
    refused_client("{certfile, 'a.pem'}", "certfile", "expected a string");
    refused_client("{certfile, \"a\\0b\"}", "certfile", "string");
    refused_client("{certfile, <<\"a\", 0, \"b\">>}", "certfile", "NUL");
    refused_client("{certfile, [$a | $b]}", "certfile", "string");
    refused_client("{password, [16#D800]}", "password", "string");
    refused_client("{keyfile, \"a\", extra}", "expected a list of {Option, Value}", NULL);
    refused_client("{\"certfile\", \"a\"}", "expected a list of {Option, Value}", NULL);
}

static void test_warned_options(void **s)
{
    (void)s;
    dist_tls_config c;
    assert_int_equal(parse("[{client, [{log_level, debug}, {hibernate_after, 1000},"
                           " {keep_secrets, true}, {middlebox_comp_mode, false}]}].",
                           &c),
                     0);
    assert_non_null(strstr(warnings, "log_level"));
    assert_non_null(strstr(warnings, "hibernate_after"));
    assert_non_null(strstr(warnings, "keep_secrets"));
    assert_non_null(strstr(warnings, "middlebox_comp_mode"));
    dist__tls_config_free(&c);
    assert_int_equal(parse("[{client, [{dhfile, \"x\"}, {crl_cache, {ssl_crl_hash_dir, "
                           "{internal, [{dir, \"d\"}]}}}]}].",
                           &c),
                     0);
    assert_non_null(strstr(warnings, "dhfile: used by servers only"));
    assert_non_null(strstr(warnings, "the CRL directory is not used"));
    dist__tls_config_free(&c);
}

static void test_malformed_files(void **s)
{
    (void)s;
    refused("[{server, [{certfile, \"a\"}]", "not an Erlang term", NULL);
    refused("[{server, []}]. trailing", "not an Erlang term", NULL);
    refused("server", "expected [{server, Options}, {client, Options}]", NULL);
    refused("[{server, []} | tail]", "expected [{server", NULL);
    refused("[{serve, []}]", "expected {server, Options} or {client, Options}", NULL);
    refused("[{server, []}, {server, []}]", "server: given twice", NULL);
    refused("[{server, [], x}]", "expected {server, Options}", NULL);
    refused("[{server, notalist}]", "server: expected a list", NULL);
    refused("[{server, [{certfile, \"a\"} | x]}]", "server: expected a list", NULL);
    refused("", "not an Erlang term", NULL);
    refused("[{server, [{certfile, fun() -> x end}]}]", "not an Erlang term", NULL);
    /* OTP evaluates an expression; Girder reads terms: a call is refused, clearly */
    refused("[{client, [{customize_hostname_check, [{match_fun, "
            "public_key:pkix_verify_hostname_match_fun(https)}]}]}]",
            "not an Erlang term", NULL);
    char *big = malloc((1u << 20) + 10);
    memset(big, ' ', (1u << 20) + 9);
    big[(1u << 20) + 9] = 0;
    refused(big, "larger than", NULL);
    free(big);
}

static void test_encoding(void **s)
{
    (void)s;
    dist_tls_config c;
    /* Latin-1 by default, as OTP: byte E9 is U+00E9, written out as UTF-8 */
    assert_int_equal(parse("[{client, [{certfile, \"/p/caf\xE9.pem\"}]}].", &c), 0);
    assert_string_equal(c.client.certfile, "/p/caf\xC3\xA9.pem");
    dist__tls_config_free(&c);
    /* a coding comment switches to UTF-8 */
    assert_int_equal(
        parse("%% -*- coding: utf-8 -*-\n[{client, [{certfile, \"/p/caf\xC3\xA9\"}]}].", &c), 0);
    assert_string_equal(c.client.certfile, "/p/caf\xC3\xA9");
    dist__tls_config_free(&c);
    refused("%% coding: utf-8\n[{client, [{certfile, \"\xE9\"}]}].", "not an Erlang term", NULL);
}

static void test_file(void **s)
{
    (void)s;
    char path[] = "/tmp/girder-tlsconf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "[{server, [{certfile, \"n.pem\"}]}].\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    dist_tls_config c;
    assert_int_equal(dist__tls_config_file(path, &c, err, sizeof err, NULL, NULL), 0);
    assert_string_equal(c.server.certfile, "n.pem");
    dist__tls_config_free(&c);
    unlink(path);
    assert_int_equal(dist__tls_config_file(path, &c, err, sizeof err, NULL, NULL), DIST_EINVAL);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "cannot open"));
}

static int args(dist_tls_config *c, int argc, const char *const *argv)
{
    err[0] = warnings[0] = 0;
    return dist__tls_config_args(argc, argv, c, err, sizeof err, on_warn, NULL);
}

static void test_args_form(void **s)
{
    (void)s;
    dist_tls_config c;
    const char *const a[] = {"server_certfile",
                             "/p/n.pem",
                             "server_keyfile",
                             "/p/n.key",
                             "server_cacertfile",
                             "/p/ca.pem",
                             "server_verify",
                             "verify_peer",
                             "server_fail_if_no_peer_cert",
                             "true",
                             "server_depth",
                             "4",
                             "server_dhfile",
                             "/p/dh.pem",
                             "server_password",
                             "pw",
                             "client_certfile",
                             "/p/c.pem",
                             "client_verify",
                             "verify_peer",
                             "client_secure_renegotiate",
                             "false",
                             "client_reuse_sessions",
                             "false",
                             "client_ciphers",
                             "ECDHE-RSA-AES128-GCM-SHA256",
                             "client_crl_check",
                             "peer",
                             "client_crl_cache",
                             "{ssl_crl_hash_dir, {internal, [{dir, \"/p/crl\"}]}}",
                             "client_hibernate_after",
                             "100"};
    assert_int_equal(args(&c, sizeof a / sizeof *a, a), 0);
    assert_true(c.server.given && c.client.given);
    assert_string_equal(c.server.certfile, "/p/n.pem");
    assert_string_equal(c.server.keyfile, "/p/n.key");
    assert_string_equal(c.server.dhfile, "/p/dh.pem");
    assert_string_equal(c.server.password, "pw");
    assert_true(c.server.verify_peer && c.server.fail_if_no_peer_cert);
    assert_int_equal(c.server.depth, 4);
    assert_int_equal(c.server.versions, DIST_TLS_V12);
    assert_false(c.client.secure_renegotiate);
    assert_false(c.client.reuse_sessions);
    assert_string_equal(c.client.ciphers12, "ECDHE-RSA-AES128-GCM-SHA256");
    assert_int_equal(c.client.crl_check, DIST_TLS_CRL_PEER);
    assert_string_equal(c.client.crl_dir, "/p/crl");
    assert_non_null(strstr(warnings, "hibernate_after"));
    dist__tls_config_free(&c);

    const char *const odd[] = {"server_certfile"};
    assert_int_equal(args(&c, 1, odd), DIST_EINVAL);
    assert_non_null(strstr(err, "pairs"));
    const char *const noprefix[] = {"certfile", "x"};
    assert_int_equal(args(&c, 2, noprefix), DIST_EINVAL);
    assert_non_null(strstr(err, "server_ or client_"));
    const char *const vers[] = {"client_versions", "tlsv1.3"};
    assert_int_equal(args(&c, 2, vers), DIST_EINVAL);
    assert_non_null(strstr(err, "not accepted in the -ssl_dist_opt form"));
    const char *const cfail[] = {"client_fail_if_no_peer_cert", "true"};
    assert_int_equal(args(&c, 2, cfail), DIST_EINVAL);
    assert_non_null(strstr(err, "client: option fail_if_no_peer_cert"));
    const char *const vf[] = {"client_verify_fun", "{m, f, []}"};
    assert_int_equal(args(&c, 2, vf), DIST_EINVAL);
    assert_non_null(strstr(err, "Erlang functions"));
    const char *const bogus[] = {"client_bogus", "1"};
    assert_int_equal(args(&c, 2, bogus), DIST_EINVAL);
    assert_non_null(strstr(err, "unknown option"));
    const char *const depth[] = {"client_depth", "1x"};
    assert_int_equal(args(&c, 2, depth), DIST_EINVAL);
    assert_non_null(strstr(err, "integer"));
    const char *const crl[] = {"client_crl_cache", "{bad"};
    assert_int_equal(args(&c, 2, crl), DIST_EINVAL);
    assert_non_null(strstr(err, "not an Erlang term"));
    const char *const vn[] = {"server_verify", "verify_none", "server_fail_if_no_peer_cert",
                              "true"};
    assert_int_equal(args(&c, 4, vn), DIST_EINVAL);
    assert_non_null(strstr(err, "verify_peer"));
}

static void test_load_merges_like_otp(void **s)
{
    (void)s;
    char path[] = "/tmp/girder-tlsconf-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "[{server, [{certfile, \"file.pem\"}]}].\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    const char *const a[] = {"server_certfile", "arg.pem", "client_certfile", "argc.pem"};
    dist_tls_config c;
    /* file's server wins, the client comes from the arguments */
    assert_int_equal(dist__tls_config_load(path, 4, a, &c, err, sizeof err, NULL, NULL), 0);
    assert_string_equal(c.server.certfile, "file.pem");
    assert_string_equal(c.client.certfile, "argc.pem");
    assert_int_equal(c.client.versions, DIST_TLS_V12);
    dist__tls_config_free(&c);
    /* no arguments at all: the missing role has ssl's bare defaults (TLS 1.3 and 1.2) */
    warnings[0] = 0;
    assert_int_equal(dist__tls_config_load(path, 0, NULL, &c, err, sizeof err, on_warn, NULL), 0);
    assert_false(c.client.given);
    assert_null(c.client.certfile);
    assert_int_equal(c.client.versions, DIST_TLS_V12 | DIST_TLS_V13);
    assert_int_equal(c.server.versions, DIST_TLS_V12);
    assert_non_null(strstr(warnings, "no client options"));
    dist__tls_config_free(&c);
    /* arguments only */
    assert_int_equal(dist__tls_config_load(NULL, 2, a, &c, err, sizeof err, NULL, NULL), 0);
    assert_string_equal(c.server.certfile, "arg.pem");
    assert_false(c.client.given);
    assert_int_equal(c.client.versions, DIST_TLS_V12); /* any -ssl_dist_opt: dist_defaults */
    dist__tls_config_free(&c);
    /* an error in either source stops the load */
    const char *const bad[] = {"client_bogus", "1"};
    assert_int_equal(dist__tls_config_load(path, 2, bad, &c, err, sizeof err, NULL, NULL),
                     DIST_EINVAL);
    unlink(path);
    assert_int_equal(dist__tls_config_load(path, 0, NULL, &c, err, sizeof err, NULL, NULL),
                     DIST_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_supported_option),
        cmocka_unit_test(test_defaults_follow_otp),
        cmocka_unit_test(test_ciphers_forms),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_warned_options),
        cmocka_unit_test(test_malformed_files),
        cmocka_unit_test(test_encoding),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_args_form),
        cmocka_unit_test(test_load_merges_like_otp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
