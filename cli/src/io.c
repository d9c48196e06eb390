/* Small I/O helpers for the girder CLI. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_read_all(FILE *f, uint8_t **data, size_t *len)
{
    size_t cap = 65536, n = 0;
    uint8_t *buf = malloc(cap + 1);
    if (!buf) return -ENOMEM;
    for (;;) {
        if (n == cap) {
            uint8_t *nb = cap > SIZE_MAX / 4 ? NULL : realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                int e = errno ? errno : EIO;
                free(buf);
                return -e;
            }
            break;
        }
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

int cli_write_all(FILE *f, const void *data, size_t len)
{
    if (len && fwrite(data, 1, len, f) != len) return errno ? -errno : -EIO;
    if (fflush(f) != 0) return errno ? -errno : -EIO;
    return 0;
}

void cli_err(const char *fmt, ...)
{
    va_list ap;
    fputs("girder: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

bool cli_fmt(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    return len >= 0 && (size_t)len < n;
}

int cli_exe_dir(char *out, size_t n)
{
    ssize_t len = readlink("/proc/self/exe", out, n - 1);
    if (len <= 0) return -1;
    out[len] = 0;
    char *slash = strrchr(out, '/');
    if (!slash) return -1;
    *slash = 0;
    return 0;
}

char *cli_term_text(term_t t, const term_text_ctx *ctx)
{
    etf_buf b = {0};
    if (term_print(t, TERM_PRINT_P, ctx, &b) != 0 || etf_buf_reserve(&b, 1) != 0) {
        fputs("girder: out of memory\n", stderr);
        abort();
    }
    b.data[b.len] = 0;
    return (char *)b.data;
}

static int put_utf8(etf_buf *out, uint32_t c)
{
    if (c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return -1;
    if (etf_buf_reserve(out, 4) != 0) return -1;
    uint8_t *p = out->data + out->len;
    if (c < 0x80) {
        p[0] = (uint8_t)c;
        out->len += 1;
    } else if (c < 0x800) {
        p[0] = (uint8_t)(0xC0 | (c >> 6));
        p[1] = (uint8_t)(0x80 | (c & 0x3F));
        out->len += 2;
    } else if (c < 0x10000) {
        p[0] = (uint8_t)(0xE0 | (c >> 12));
        p[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        p[2] = (uint8_t)(0x80 | (c & 0x3F));
        out->len += 3;
    } else {
        p[0] = (uint8_t)(0xF0 | (c >> 18));
        p[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
        p[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        p[3] = (uint8_t)(0x80 | (c & 0x3F));
        out->len += 4;
    }
    return 0;
}

/* Chardata can nest deeply ([[[...]]]); walk it with an explicit stack of list positions. */
int cli_chardata(term_t t, bool latin1, etf_buf *out)
{
    size_t cap = 64, sp = 0;
    term_t *stack = malloc(cap * sizeof *stack);
    if (!stack) return -1;
    stack[sp++] = t;
    int rc = 0;
    while (sp && !rc) {
        term_t x = stack[--sp];
        if (term_is_nil(x)) continue;
        if (term_is_binary(x)) {
            size_t n = term_binary_size(x);
            const uint8_t *d = term_binary_data(x);
            if (!d) {
                rc = -1;
            } else if (latin1) {
                for (size_t i = 0; i < n && !rc; i++) rc = put_utf8(out, d[i]);
            } else if (etf_buf_reserve(out, n) == 0) {
                memcpy(out->data + out->len, d, n);
                out->len += n;
            } else {
                rc = -1;
            }
        } else if (term_is_small(x)) {
            int64_t c = term_small_value(x);
            rc = c < 0 ? -1 : put_utf8(out, (uint32_t)c);
        } else if (term_is_cons(x)) {
            if (sp + 2 > cap) {
                term_t *ns = realloc(stack, cap * 2 * sizeof *ns);
                if (!ns) {
                    rc = -1;
                    break;
                }
                stack = ns;
                cap *= 2;
            }
            stack[sp++] = term_tl(x); /* the tail after the head: pushed first */
            stack[sp++] = term_hd(x);
        } else {
            rc = -1;
        }
    }
    free(stack);
    return rc;
}
