/* Small I/O helpers for the girder CLI. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

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
