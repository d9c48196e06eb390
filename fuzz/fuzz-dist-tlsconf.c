/* libFuzzer target for the TLS optfile reader: the file form, and the -ssl_dist_opt form from
 * NUL-split words. */
#include "tls_config.h"

#include <girder/dist.h>
#include <girder/term.h>

#include <stdlib.h>
#include <string.h>

static void check_role(const dist_tls_role *r)
{
    /* what the reader promises the engine: bounded, consistent values */
    if (r->depth < 0 || r->depth > 255) abort();
    if (r->versions & ~(unsigned)(DIST_TLS_V12 | DIST_TLS_V13)) abort();
    if (r->given && !r->versions) abort();
    if (r->fail_if_no_peer_cert && !r->verify_peer) abort();
    if (r->crl_check != DIST_TLS_CRL_OFF && !r->crl_dir) abort();
    if ((r->sni == DIST_TLS_SNI_NAME) != (r->sni_name != NULL)) abort();
    const char *strs[] = {r->certfile,  r->keyfile,   r->password, r->cacertfile, r->dhfile,
                          r->ciphers12, r->ciphers13, r->sni_name, r->crl_dir};
    for (size_t i = 0; i < sizeof strs / sizeof *strs; i++)
        if (strs[i] && !strs[i][0]) abort(); /* empty strings are absent */
}

static void check(int rc, const dist_tls_config *c, const char *err)
{
    if (rc == 0) {
        check_role(&c->server);
        check_role(&c->client);
    } else if (rc != DIST_EINVAL && rc != DIST_ENOMEM) {
        abort();
    } else if (!err[0]) {
        abort(); /* every refusal says why */
    }
}

static void ignore(void *ud, const char *line)
{
    (void)ud;
    if (!line[0]) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    dist_tls_config c;
    term_init();
    err[0] = 0;
    int rc =
        dist__tls_config_text((const char *)data, size, "fuzz", &c, err, sizeof err, ignore, NULL);
    check(rc, &c, err);
    if (rc == 0) dist__tls_config_free(&c);

    /* the same bytes as -ssl_dist_opt words separated by NUL */
    char *copy = malloc(size + 1);
    const char *argv[64];
    int argc = 0;
    if (!copy) return 0;
    memcpy(copy, data, size);
    copy[size] = 0;
    for (size_t i = 0; i <= size && argc < 64;) {
        argv[argc++] = copy + i;
        i += strlen(copy + i) + 1;
    }
    err[0] = 0;
    rc = dist__tls_config_args(argc, argv, &c, err, sizeof err, ignore, NULL);
    check(rc, &c, err);
    if (rc == 0) dist__tls_config_free(&c);
    free(copy);
    return 0;
}
