/* `girder term`: ETF bytes to Erlang term text and back, through stdin and stdout. */
#include "cli.h"

#include <girder/term.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static void term_usage(FILE *f)
{
    fprintf(
        f,
        "usage: girder term decode [--format p|w] [--explicit] < bytes > text\n"
        "       girder term encode [--compressed] [--deterministic] [--utf8-atoms] < text > bytes\n"
        "\n"
        "decode  reads one term in the external term format (as term_to_binary/1 writes it)\n"
        "        on stdin and prints it in Erlang syntax on stdout.\n"
        "          --format p   like io:format(\"~p\") on one line: strings as \"text\" (default)\n"
        "          --format w   like io:format(\"~w\"): lists of integers stay lists\n"
        "          --explicit   pids, ports, refs and funs in their node-carrying form\n"
        "encode  reads one term in Erlang syntax (a trailing '.' is allowed) on stdin and\n"
        "        writes its external term format on stdout, byte-identical to OTP 25's\n"
        "        term_to_binary/1 for terms without maps over 32 keys.\n"
        "          --compressed     compress with zlib when smaller (term_to_binary [compressed])\n"
        "          --deterministic  map keys sorted (always the case in Girder)\n"
        "          --utf8-atoms     atoms as ATOM_UTF8_EXT (minor_version 2, OTP 26's default)\n"
        "\n"
        "Bad input exits with status 1 and one line on stderr saying what and where.\n");
}

static int decode(int argc, char **argv)
{
    unsigned flags = TERM_PRINT_P;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
            const char *f = argv[++i];
            if (strcmp(f, "p") == 0)
                flags |= TERM_PRINT_P;
            else if (strcmp(f, "w") == 0)
                flags &= ~(unsigned)TERM_PRINT_P;
            else {
                cli_err("term decode: unknown format '%s' (p or w)", f);
                return 2;
            }
        } else if (strcmp(argv[i], "--explicit") == 0) {
            flags |= TERM_PRINT_EXPLICIT;
        } else if (strcmp(argv[i], "--help") == 0) {
            term_usage(stdout);
            return 0;
        } else {
            cli_err("term decode: unknown option '%s'", argv[i]);
            return 2;
        }
    }
    uint8_t *in;
    size_t len;
    int rc = cli_read_all(stdin, &in, &len);
    if (rc) {
        cli_err("term decode: reading stdin: %s", strerror(-rc));
        return 1;
    }
    etf_error err;
    term_t t = etf_decode(in, len, NULL, NULL, &err);
    free(in);
    if (t == TERM_NONE) {
        cli_err("term decode: %s (%s) at byte %zu", term_strerror(err.code),
                term_err_name(err.code), err.offset);
        return 1;
    }
    etf_buf out = {0};
    rc = term_print(t, flags, NULL, &out);
    term_free(t);
    if (rc == 0) rc = etf_buf_reserve(&out, 1);
    if (rc == 0) out.data[out.len++] = '\n';
    if (rc == 0) rc = cli_write_all(stdout, out.data, out.len) ? TERM_EINVAL : 0;
    etf_buf_free(&out);
    if (rc) {
        cli_err("term decode: writing output: %s", term_strerror(rc));
        return 1;
    }
    return 0;
}

static int encode(int argc, char **argv)
{
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--compressed") == 0)
            flags |= ETF_ENC_COMPRESSED;
        else if (strcmp(argv[i], "--deterministic") == 0)
            flags |= ETF_ENC_DETERMINISTIC;
        else if (strcmp(argv[i], "--utf8-atoms") == 0)
            flags |= ETF_ENC_UTF8_ATOMS;
        else if (strcmp(argv[i], "--help") == 0) {
            term_usage(stdout);
            return 0;
        } else {
            cli_err("term encode: unknown option '%s'", argv[i]);
            return 2;
        }
    }
    uint8_t *in;
    size_t len;
    int rc = cli_read_all(stdin, &in, &len);
    if (rc) {
        cli_err("term encode: reading stdin: %s", strerror(-rc));
        return 1;
    }
    term_parse_error perr;
    term_t t = term_parse((const char *)in, len, NULL, &perr);
    if (t == TERM_NONE) {
        /* Report line and column as well as the byte offset: people read text by lines. */
        size_t line = 1, col = 1;
        for (size_t i = 0; i < perr.offset && i < len; i++) {
            if (in[i] == '\n')
                line++, col = 1;
            else
                col++;
        }
        cli_err("term encode: %s at byte %zu (line %zu, column %zu)",
                perr.what[0] ? perr.what : term_strerror(perr.code), perr.offset, line, col);
        free(in);
        return 1;
    }
    free(in);
    etf_buf out = {0};
    rc = etf_encode(t, flags, &out);
    term_free(t);
    if (rc == 0 && cli_write_all(stdout, out.data, out.len) != 0) rc = TERM_EINVAL;
    etf_buf_free(&out);
    if (rc) {
        cli_err("term encode: %s", term_strerror(rc));
        return 1;
    }
    return 0;
}

int cli_cmd_term(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        term_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "decode") == 0) return decode(argc - 1, argv + 1);
    if (strcmp(argv[1], "encode") == 0) return encode(argc - 1, argv + 1);
    cli_err("term: unknown subcommand '%s' (decode or encode)", argv[1]);
    return 2;
}
