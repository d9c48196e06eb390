/* Every benchmark's arguments: --help and usage errors, answered before the benchmark starts. */
#ifndef GIRDER_BENCH_ARGS_H
#define GIRDER_BENCH_ARGS_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Usage lines shared by every program that runs Girder nodes: what libnode reads at nd_init. */
#define BA_ENV_LIBNODE                                                                      \
    "  ND_SCHEDULERS=N         Girder's scheduler threads (default: one per online core)\n" \
    "  ND_SPIN_US=US           microseconds an idle scheduler spins before sleeping (50)\n"
/* The libnode benchmarks' switch for running without Erlang (bs_print() then prints failed and
** no ratio), and the last line of their usage. */
#define BA_ENV_NO_ERLANG \
    "  ND_BENCH_NO_ERLANG=1    no Erlang side (its figures say failed, no ratio)\n"
#define BA_ERL_PATH "erl and erlc are run from PATH. See bench/README.md.\n"
/* The same for the distribution benchmarks, which also start a port mapper. */
#define BA_ERL_EPMD_PATH                                                           \
    "erl and erlc are run from PATH, girder-epmd from this program's directory.\n" \
    "See bench/README.md.\n"
/* The rounds of bs_rounds() (bench_stats.h). */
#define BA_ENV_ROUNDS "  BENCH_ROUNDS=N          rounds per side (default 5, at most 64)\n"

/* The program's name as it was run (argv[0] without its directory), for messages. */
static inline const char *ba_prog(char **argv)
{
    const char *p = argv[0] && *argv[0] ? argv[0] : "bench";
    const char *s = strrchr(p, '/');
    return s && s[1] ? s + 1 : p;
}

/* Prints usage on stdout and exits 0. */
__attribute__((noreturn)) static inline void ba_help(const char *usage)
{
    fputs(usage, stdout);
    fflush(stdout);
    exit(0);
}

/* The one form of every usage error: "PROG: <what> (see PROG --help)" on stderr, exit 2. */
__attribute__((format(printf, 2, 3), noreturn)) static inline void
ba_usage_error(char **argv, const char *fmt, ...)
{
    const char *prog = ba_prog(argv);
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see %s --help)\n", prog);
    exit(2);
}

/* A child mode of a program that runs itself (e.g. `bench-scale-spawn --round N`): the option in
** argv[1] and the number of operands after it, from min to max. */
typedef struct ba_mode {
    const char *opt;
    int min, max;
} ba_mode;

/*
** The first thing main() does in a benchmark without options of its own. modes (may be NULL,
** else ended by {NULL}) are the program's child modes: when argv[1] names one and the operand
** count fits, the arguments are the program's and this returns (a count that does not fit is a
** usage error). Otherwise -h or --help anywhere prints usage (stdout, exit 0); then the first
** other argument is refused, "unknown option 'X'" when it starts with '-' (exit 2): these
** benchmarks take no arguments. Nothing else happens first: no output, no child, no file.
*/
static inline void ba_check(int argc, char **argv, const char *usage, const ba_mode *modes)
{
    if (argc < 2) return;
    for (const ba_mode *m = modes; m && m->opt; m++)
        if (!strcmp(argv[1], m->opt)) {
            if (argc - 2 >= m->min && argc - 2 <= m->max) return;
            break; /* -h still wins below; else the count is reported */
        }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) ba_help(usage);
    for (const ba_mode *m = modes; m && m->opt; m++)
        if (!strcmp(argv[1], m->opt)) {
            if (m->min == m->max)
                ba_usage_error(argv, "'%s' (internal) takes %d argument%s, not %d", m->opt, m->min,
                               m->min == 1 ? "" : "s", argc - 2);
            ba_usage_error(argv, "'%s' (internal) takes %d to %d arguments, not %d", m->opt, m->min,
                           m->max, argc - 2);
        }
    if (argv[1][0] == '-') ba_usage_error(argv, "unknown option '%s'", argv[1]);
    ba_usage_error(argv, "unexpected argument '%s'", argv[1]);
}

#endif
