/* girderd's log: formats and writes one line per event to stderr or a reopenable file. */
#include "log.h"

#if __has_include("girder_log.h")
#include "girder_log.h" /* the library package's one line format */
#define GD_SHARED_LOG 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef GD_SHARED_LOG
_Static_assert((int)GD_DEBUG == (int)GIRDER_LOG_DEBUG && (int)GD_ERROR == (int)GIRDER_LOG_ERROR,
               "girderd's levels are the shared log's");
#else
static const char *const level_names[] = {"emergency", "alert",  "critical", "error",
                                          "warning",   "notice", "info",     "debug"};
#endif

/* The destination fd stays the same number for the life of the file: a reopen dup2()s the new
** file onto it, so a writer never sees a closed descriptor. */
static atomic_int log_fd = 2;
static atomic_int log_level = GD_INFO;
static _Atomic(gd_log_tap_fn) log_tap;
static pthread_mutex_t path_mu = PTHREAD_MUTEX_INITIALIZER;
static char *log_path;

/* ---------------------------------------------------------------- the line format */

/*
** The format is every Girder program's: where the tree has the library package's
** girder_log.h, its functions write the line; until then the same format is written here.
*/
#ifdef GD_SHARED_LOG
const char *gd_level_name(int level)
{
    const char *n = girder__log_level_name(level);
    return n ? n : "?";
}

int gd_level_parse(const char *name)
{
    return girder__log_level_of(name);
}

const char *gd_q(char *buf, size_t n, const char *s)
{
    if (n < 3) {
        if (n) buf[0] = 0;
        return buf;
    }
    return girder__log_value(buf, n, s, strlen(s));
}

size_t gd_log_format(char *out, size_t n, int level, const char *component, const char *text)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return girder__log_format(out, n, ns, level, component, "%s", text);
}
#else
const char *gd_level_name(int level)
{
    return level >= 0 && level <= GD_DEBUG ? level_names[level] : "?";
}

int gd_level_parse(const char *name)
{
    for (int i = 0; i <= GD_DEBUG; i++)
        if (!strcmp(name, level_names[i])) return i;
    return -1;
}

const char *gd_q(char *buf, size_t n, const char *s)
{
    if (!n) return buf;
    bool plain = *s != 0;
    for (const char *p = s; *p && plain; p++)
        if ((unsigned char)*p <= ' ' || *p == '"' || *p == '\\' || *p == '=' || *p == 127)
            plain = false;
    size_t o = 0;
    if (plain) {
        snprintf(buf, n, "%s", s);
        return buf;
    }
    /* room for a closing quote and the NUL is kept back at every step */
    if (n < 3) {
        buf[0] = 0;
        return buf;
    }
    buf[o++] = '"';
    for (const char *p = s; *p && o + 3 < n; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < ' ' || c == 127) {
            if (o + 6 >= n) break;
            o += (size_t)snprintf(buf + o, n - o, "\\x%02x", c);
        } else {
            buf[o++] = (char)c;
        }
    }
    buf[o++] = '"';
    buf[o] = 0;
    return buf;
}

size_t gd_log_format(char *out, size_t n, int level, const char *component, const char *text)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int k = snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s %s", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, gd_level_name(level), component, text);
    if (k < 0) return 0;
    return (size_t)k < n ? (size_t)k : n - 1;
}
#endif

/* ---------------------------------------------------------------- the destination */

static int open_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    return fd < 0 ? -errno : fd;
}

int gd_log_open(const char *path)
{
    pthread_mutex_lock(&path_mu);
    int rc = 0;
    if (!path) {
        int old = atomic_exchange(&log_fd, 2);
        if (old != 2) close(old);
        free(log_path);
        log_path = NULL;
    } else {
        char *p = strdup(path);
        int fd = p ? open_log(path) : -ENOMEM;
        if (fd < 0) {
            free(p);
            rc = fd;
        } else {
            int old = atomic_exchange(&log_fd, fd);
            if (old != 2) close(old);
            free(log_path);
            log_path = p;
        }
    }
    pthread_mutex_unlock(&path_mu);
    return rc;
}

int gd_log_reopen(void)
{
    pthread_mutex_lock(&path_mu);
    int rc = 0;
    if (log_path) {
        int fd = open_log(log_path);
        if (fd < 0) {
            rc = fd;
        } else {
            if (dup2(fd, atomic_load(&log_fd)) < 0) rc = -errno;
            close(fd);
        }
    }
    pthread_mutex_unlock(&path_mu);
    return rc;
}

void gd_log_close(void)
{
    gd_log_open(NULL);
}

void gd_log_set_level(int level)
{
    if (level >= 0 && level <= GD_DEBUG) atomic_store(&log_level, level);
}

int gd_log_level(void)
{
    return atomic_load(&log_level);
}

void gd_log_set_tap(gd_log_tap_fn fn)
{
    atomic_store(&log_tap, fn);
}

static void vlog(int level, const char *component, const char *fmt, va_list ap)
{
    if (level > atomic_load(&log_level)) return;
    char text[1536], line[2048];
    vsnprintf(text, sizeof text, fmt, ap);
    /* one line per event, whatever the text held */
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    size_t len = gd_log_format(line, sizeof line - 1, level, component, text);
    gd_log_tap_fn tap = atomic_load(&log_tap);
    if (tap) tap(level, line);
    line[len++] = '\n';
    /* one write per line: lines from several threads never interleave (O_APPEND) */
    ssize_t w = write(atomic_load(&log_fd), line, len);
    (void)w;
}

void gd_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, "girderd", fmt, ap);
    va_end(ap);
}

void gd_logc(int level, const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, component, fmt, ap);
    va_end(ap);
}
