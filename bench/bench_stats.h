/* Shared by every benchmark: the machine on stderr, median and spread of rounds, the BENCH line. */
#ifndef GIRDER_BENCH_STATS_H
#define GIRDER_BENCH_STATS_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Rounds per side: 5 (the rule the figures are held to), or BENCH_ROUNDS (1..64; fewer than 5
** only for a quick look, and said so on stderr). */
static inline int bs_rounds(void)
{
    const char *s = getenv("BENCH_ROUNDS");
    int n = s ? atoi(s) : 5;
    n = n < 1 ? 5 : n > 64 ? 64 : n;
    if (n < 5) fprintf(stderr, "BENCH_ROUNDS=%d: fewer than the 5 rounds a figure is held to\n", n);
    return n;
}

/* The load average now, as "a b c" (or "?"). */
static inline const char *bs_load(void)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        double a, b, c;
        if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
            snprintf(buf, sizeof buf, "%.2f %.2f %.2f", a, b, c);
        fclose(f);
    }
    return buf;
}

/* Prints, on stderr, the CPU model, the cores, the kernel and the load average. */
static inline void bs_machine(const char *prog)
{
    char model[256] = "?", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
                snprintf(model, sizeof model, "%s", strchr(line, ':') + 2);
                model[strcspn(model, "\n")] = 0;
                break;
            }
        fclose(f);
    }
    struct utsname u;
    if (uname(&u) != 0) snprintf(u.release, sizeof u.release, "?");
    fprintf(stderr, "%s: machine: %s, %ld cores online, Linux %s, load %s\n", prog, model,
            sysconf(_SC_NPROCESSORS_ONLN), u.release, bs_load());
}

static inline int bs_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of the n > 0 values of v (v is sorted in place). */
static inline double bs_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], bs_cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A whole number in [1, max] from s up to its end or a comma (*end set past it), or -1. */
static inline long bs_parse_count(const char *s, long max, const char **end)
{
    long v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        if (v > (max - (*p - '0')) / 10) return -1;
        v = v * 10 + (*p++ - '0');
    }
    if (p == s || (*p && *p != ',') || v < 1) return -1;
    *end = p;
    return v;
}

/* The environment variable `name` as a whole number in [1, max], or def when it is unset. Any
** other value is refused before the benchmark starts anything: a message, exit status 2. */
static inline long bs_env_count(const char *name, long def, long max)
{
    const char *v = getenv(name), *end;
    if (!v) return def;
    long n = bs_parse_count(v, max, &end);
    if (n < 0 || *end) {
        fprintf(stderr, "%s=%s: expected a whole number from 1 to %ld\n", name, v, max);
        exit(2);
    }
    return n;
}

/* The sizes of a scale benchmark: BENCH_SCALE_NS, up to 8 whole numbers from 1 to 10,000,000
** separated by commas, else the n defaults already in sizes. Refused as bs_env_count() does. */
static inline int bs_scale_sizes(long sizes[8], int n)
{
    const char *v = getenv("BENCH_SCALE_NS");
    if (!v) return n;
    n = 0;
    for (const char *p = v;; p++) {
        long x = n < 8 ? bs_parse_count(p, 10000000, &p) : -1;
        if (x < 0) {
            fprintf(stderr,
                    "BENCH_SCALE_NS=%s: expected up to 8 whole numbers from 1 to 10000000, "
                    "separated by commas\n",
                    v);
            exit(2);
        }
        sizes[n++] = x;
        if (!*p) return n;
    }
}

/* Rounds per side of a scale benchmark: BENCH_SCALE_ROUNDS (1..64), by default 5 like every
** other benchmark (they are heavy: BENCH_SCALE_ROUNDS=1 for a quick look). */
static inline int bs_scale_rounds(void)
{
    return (int)bs_env_count("BENCH_SCALE_ROUNDS", 5, 64);
}

/* Summarises one side's rounds on stderr ("girder: median M, min..max, spread S%") and returns
** the median, or -1 when a round failed (a value <= 0) or there was none. */
static inline double bs_side(const char *name, const char *side, const double *rounds, int n,
                             const char *unit)
{
    double v[64];
    int k = 0;
    bool failed = n <= 0;
    for (int i = 0; i < n && i < 64; i++) {
        if (rounds[i] <= 0)
            failed = true;
        else
            v[k++] = rounds[i];
    }
    fprintf(stderr, "%s %s:", name, side);
    for (int i = 0; i < n && i < 64; i++) fprintf(stderr, " %.4g", rounds[i]);
    if (failed || k == 0) {
        fprintf(stderr, " %s -- a round failed\n", unit);
        return -1;
    }
    double m = bs_median(v, k);
    fprintf(stderr, " %s; median %.4g, min %.4g, max %.4g, spread %.1f%% of the median\n", unit, m,
            v[0], v[k - 1], 100.0 * (v[k - 1] - v[0]) / m);
    return m;
}

/* Prints the BENCH line for the two medians (-1: failed). ratio is how many times better Girder
** is; without both figures the line says failed and carries no ratio. */
static inline void bs_print(const char *name, double girder, double erlang, const char *unit,
                            bool higher_is_better)
{
    char g[64], e[64];
    if (girder > 0)
        snprintf(g, sizeof g, "%.3f", girder);
    else
        snprintf(g, sizeof g, "failed");
    if (erlang > 0)
        snprintf(e, sizeof e, "%.3f", erlang);
    else
        snprintf(e, sizeof e, "failed");
    if (girder > 0 && erlang > 0)
        printf("BENCH %s girder=%s erlang=%s unit=%s ratio=%.2f\n", name, g, e, unit,
               higher_is_better ? girder / erlang : erlang / girder);
    else
        printf("BENCH %s girder=%s erlang=%s unit=%s ratio=none\n", name, g, e, unit);
    fflush(stdout);
}

/* bs_side for both sides, then bs_print, with the load at the end on stderr. */
static inline void bs_report(const char *name, const double *g, int ng, const double *e, int ne,
                             const char *unit, bool higher_is_better)
{
    double gm = bs_side(name, "girder", g, ng, unit);
    double em = bs_side(name, "erlang", e, ne, unit);
    fprintf(stderr, "%s: load at the end %s\n", name, bs_load());
    bs_print(name, gm, em, unit, higher_is_better);
}

#endif
