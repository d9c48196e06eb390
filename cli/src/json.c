/* A small JSON writer for `--json`: one document per run, built in memory. */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void put(cli_json *j, const char *s, size_t n)
{
    if (j->err) return;
    if (etf_buf_reserve(&j->b, n) != 0) {
        j->err = TERM_ENOMEM;
        return;
    }
    memcpy(j->b.data + j->b.len, s, n);
    j->b.len += n;
}

static void puts_(cli_json *j, const char *s)
{
    put(j, s, strlen(s));
}

/* Separator before a value: a comma unless it is the first in its container or follows a key. */
static void value_start(cli_json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->depth > 0) {
        if (!j->first[j->depth - 1]) put(j, ",", 1);
        j->first[j->depth - 1] = false;
    }
}

static void open_(cli_json *j, const char *c)
{
    value_start(j);
    put(j, c, 1);
    if (j->depth >= CLI_JSON_DEPTH) return;
    if (*c == '[')
        j->arrays |= 1u << j->depth;
    else
        j->arrays &= ~(1u << j->depth);
    j->first[j->depth++] = true;
}

void cli_json_obj(cli_json *j)
{
    open_(j, "{");
}

void cli_json_arr(cli_json *j)
{
    open_(j, "[");
}

void cli_json_end(cli_json *j)
{
    if (j->depth == 0) return;
    j->depth--;
    put(j, (j->arrays >> j->depth) & 1 ? "]" : "}", 1);
}

static void str_body(cli_json *j, const char *s, size_t n)
{
    put(j, "\"", 1);
    const uint8_t *p = (const uint8_t *)s, *end = p + n;
    while (p < end) {
        uint8_t c = *p;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(j, e, 2);
            p++;
        } else if (c < 0x20) {
            char e[8];
            const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
            if (named) {
                puts_(j, named);
            } else {
                snprintf(e, sizeof e, "\\u%04x", c);
                puts_(j, e);
            }
            p++;
        } else if (c < 0x80) {
            put(j, (const char *)p, 1);
            p++;
        } else {
            /* copy a well-formed UTF-8 sequence, replace anything else by U+FFFD */
            size_t len = c >= 0xF0 && c <= 0xF4   ? 4
                         : c >= 0xE0              ? 3
                         : c >= 0xC2 && c <= 0xDF ? 2
                                                  : 0;
            bool ok = len && (size_t)(end - p) >= len;
            for (size_t i = 1; ok && i < len; i++) ok = (p[i] & 0xC0) == 0x80;
            if (ok && len == 3) {
                uint32_t cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6);
                ok = cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF);
            }
            if (ok && len == 4) {
                uint32_t cp = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(p[1] & 0x3F) << 12);
                ok = cp >= 0x10000 && cp <= 0x10FFFF;
            }
            if (ok) {
                put(j, (const char *)p, len);
                p += len;
            } else {
                puts_(j, "\xEF\xBF\xBD");
                p++;
            }
        }
    }
    put(j, "\"", 1);
}

void cli_json_key(cli_json *j, const char *k)
{
    value_start(j);
    str_body(j, k, strlen(k));
    put(j, ":", 1);
    j->after_key = true;
}

void cli_json_strn(cli_json *j, const char *s, size_t n)
{
    value_start(j);
    str_body(j, s, n);
}

void cli_json_str(cli_json *j, const char *s)
{
    if (!s) {
        cli_json_null(j);
        return;
    }
    cli_json_strn(j, s, strlen(s));
}

void cli_json_int(cli_json *j, int64_t v)
{
    char b[32];
    value_start(j);
    snprintf(b, sizeof b, "%" PRId64, v);
    puts_(j, b);
}

void cli_json_double(cli_json *j, double v, int decimals)
{
    char b[64];
    value_start(j);
    if (v != v || v > 1e300 || v < -1e300) v = 0; /* JSON has no NaN or infinity */
    snprintf(b, sizeof b, "%.*f", decimals, v);
    puts_(j, b);
}

void cli_json_bool(cli_json *j, bool v)
{
    value_start(j);
    puts_(j, v ? "true" : "false");
}

void cli_json_null(cli_json *j)
{
    value_start(j);
    puts_(j, "null");
}

void cli_json_term(cli_json *j, term_t t, const term_text_ctx *ctx)
{
    char *s = cli_term_text(t, ctx);
    cli_json_str(j, s);
    free(s);
}

int cli_json_write(cli_json *j, FILE *f)
{
    put(j, "\n", 1);
    int rc = j->err ? -1 : cli_write_all(f, j->b.data, j->b.len) ? -1 : 0;
    cli_json_free(j);
    return rc;
}

void cli_json_free(cli_json *j)
{
    etf_buf_free(&j->b);
    memset(j, 0, sizeof *j);
}
