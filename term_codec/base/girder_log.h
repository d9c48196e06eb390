/* One structured log line format for every Girder program: time, level, component, key=value. */
#ifndef GIRDER_LOG_H
#define GIRDER_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/*
** Internal, header-only. A line reads
**
**   2026-11-29T18:00:00.123Z info dist event=nodeup node=b@h type=visible
**
** the time in UTC with milliseconds, the level by Erlang logger's name, the component (one
** word), then event=NAME and key=value pairs. A value with a space, a quote, a backslash, an
** '=' or a control byte is written in double quotes (girder__log_value()), so that a line
** splits on spaces into fields whatever a peer sent.
*/

/* Erlang logger's levels, most severe first; the numbers are syslog's priorities. */
enum {
    GIRDER_LOG_EMERGENCY = 0,
    GIRDER_LOG_ALERT = 1,
    GIRDER_LOG_CRITICAL = 2,
    GIRDER_LOG_ERROR = 3,
    GIRDER_LOG_WARNING = 4,
    GIRDER_LOG_NOTICE = 5,
    GIRDER_LOG_INFO = 6,
    GIRDER_LOG_DEBUG = 7
};

/* The name of a level ("info"), or NULL for a number that is not a level. */
static inline const char *girder__log_level_name(int level)
{
    static const char *const names[] = {"emergency", "alert",  "critical", "error",
                                        "warning",   "notice", "info",     "debug"};
    return level >= 0 && level <= GIRDER_LOG_DEBUG ? names[level] : NULL;
}

/* The level of a name ("warning" -> GIRDER_LOG_WARNING), or -1 for an unknown name. */
static inline int girder__log_level_of(const char *name)
{
    for (int i = 0; name && i <= GIRDER_LOG_DEBUG; i++)
        if (strcmp(girder__log_level_name(i), name) == 0) return i;
    return -1;
}

/*
** Writes s[0..len) into out[cap] as one value of a key=value pair and returns out (so that it
** can be an argument of the line's format). The bytes are kept as they are when they are a
** nonempty run of printable ASCII or bytes >= 0x80 (UTF-8) without space, '"', '\\' or '=';
** otherwise the value is put in double quotes, with '"' and '\\' preceded by a backslash and
** control bytes written as \xNN. A value too long for out is cut (still closed by its quote).
** cap must be at least 3.
*/
static inline const char *girder__log_value(char *out, size_t cap, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    int plain = len > 0;
    for (size_t i = 0; plain && i < len; i++)
        if (u[i] <= 0x20 || u[i] == 0x7f || u[i] == '"' || u[i] == '\\' || u[i] == '=') plain = 0;
    size_t o = 0;
    if (plain) {
        for (size_t i = 0; i < len && o + 1 < cap; i++) out[o++] = (char)u[i];
        out[o] = 0;
        return out;
    }
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        char piece[5];
        size_t n;
        if (u[i] < 0x20 || u[i] == 0x7f) {
            n = (size_t)snprintf(piece, sizeof piece, "\\x%02x", u[i]);
        } else if (u[i] == '"' || u[i] == '\\') {
            piece[0] = '\\', piece[1] = (char)u[i], n = 2;
        } else {
            piece[0] = (char)u[i], n = 1;
        }
        if (o + n + 2 > cap) break; /* room for the closing quote and the NUL */
        memcpy(out + o, piece, n);
        o += n;
    }
    out[o++] = '"';
    out[o] = 0;
    return out;
}

/*
** Formats one line into buf[cap] (NUL-terminated, without a newline): the time realtime_ns
** (CLOCK_REALTIME nanoseconds), the level's name, the component, then fmt/ap, which write the
** event and its pairs ("event=nodeup node=%s"), their values made safe with
** girder__log_value(). Returns the length of the line; a line longer than cap - 1 is cut.
*/
static inline size_t girder__log_vformat(char *buf, size_t cap, uint64_t realtime_ns, int level,
                                         const char *component, const char *fmt, va_list ap)
{
    if (cap == 0) return 0;
    time_t secs = (time_t)(realtime_ns / 1000000000u);
    unsigned ms = (unsigned)(realtime_ns % 1000000000u / 1000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    const char *lv = girder__log_level_name(level);
    int n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ %s %s ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms,
                     lv ? lv : "debug", component);
    if (n < 0) n = 0;
    if ((size_t)n >= cap) return cap - 1;
    int m = vsnprintf(buf + n, cap - (size_t)n, fmt, ap);
    if (m < 0) m = 0;
    size_t len = (size_t)n + (size_t)m;
    return len >= cap ? cap - 1 : len;
}

/* girder__log_vformat() with the arguments inline. */
static inline size_t girder__log_format(char *buf, size_t cap, uint64_t realtime_ns, int level,
                                        const char *component, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static inline size_t girder__log_format(char *buf, size_t cap, uint64_t realtime_ns, int level,
                                        const char *component, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = girder__log_vformat(buf, cap, realtime_ns, level, component, fmt, ap);
    va_end(ap);
    return n;
}

#endif
