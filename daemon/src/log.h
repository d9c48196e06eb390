/* girderd's log: one line per event (timestamp, level, component, event=... key=value). */
#ifndef GIRDERD_LOG_H
#define GIRDERD_LOG_H
#include <stdbool.h>
#include <stddef.h>

/* Erlang logger's levels, numbered as syslog's (lower is more severe). */
enum {
    GD_EMERGENCY = 0,
    GD_ALERT,
    GD_CRITICAL,
    GD_ERROR,
    GD_WARNING,
    GD_NOTICE,
    GD_INFO,
    GD_DEBUG
};

const char *gd_level_name(int level);
/* The level named name ("info", ...), or -1. */
int gd_level_parse(const char *name);

/* Sends lines to path (appending; created 0640) instead of stderr; NULL: stderr. On failure
** returns -errno and keeps the current destination. */
int gd_log_open(const char *path);
/* Reopens the log file by its path (SIGHUP, after logrotate moved it): lines written after the
** call go to the new file. Any thread. 0, or -errno with the old file kept. */
int gd_log_reopen(void);
void gd_log_close(void);
void gd_log_set_level(int level);
int gd_log_level(void);

/*
** Writes one line "<time> <level> <component> <text>" when level is enabled; text is
** printf-formatted "event=... key=value ...". Values that may hold spaces or quotes go through
** gd_q(). Any thread; never blocks on anything but the write(2) of the line.
*/
void gd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void gd_logc(int level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A value as a key=value token: s itself when it is a plain word, else "..." with \" \\ \n
** escaped. Writes into buf (n bytes, truncating) and returns buf. */
const char *gd_q(char *buf, size_t n, const char *s);

/* The line formatter alone (what gd_log writes, without the newline), for tests and streams. */
size_t gd_log_format(char *out, size_t n, int level, const char *component, const char *text);

/* A tap that sees every line written (level, the full line without newline); used by the
** control socket's log streams. It must not log. NULL removes it. */
typedef void (*gd_log_tap_fn)(int level, const char *line);
void gd_log_set_tap(gd_log_tap_fn fn);
#endif
