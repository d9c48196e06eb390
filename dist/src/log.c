/* dist logging: one structured line per event, through dist_config.log or to stderr. */
#include "core.h"

#include <girder_log.h>
#include <stdarg.h>
#include <stdio.h>

/* The atoms dist uses, interned once. */
dist_atoms dist__a;

void dist__atoms_init(void)
{
#define X(name, text) dist__a.name = term_atom(text);
    DIST_ATOMS(X)
#undef X
}

void dist__log(int level, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    dist_state *st = dist__st;
    if (level < DIST_LOG_EMERGENCY || level > DIST_LOG_DEBUG) level = DIST_LOG_INFO;
    if (st && st->cfg.log) {
        st->cfg.log(st->cfg.log_ud, level, line);
        return;
    }
    /* no sink given: stderr in the shared format, stamped by the transport's clock */
    uint64_t ns = st && st->tr ? st->tr->ops->realtime_ns(st->tr) : girder__now_ns(CLOCK_REALTIME);
    char out[1200];
    girder__log_format(out, sizeof out, ns, level, "dist", "%s", line);
    fprintf(stderr, "%s\n", out);
}

const char *dist__aname(term_t a)
{
    return term_is_atom(a) ? term_atom_name(a, NULL) : "?";
}
