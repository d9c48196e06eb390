/* bench-etf-codec: term_codec against Erlang's ei, decode+encode of one erl-made ETF corpus. */
#include <girder/term.h>
#include <ei.h>

#include <errno.h>
#include <getopt.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_args.h"
#include "bench_stats.h"

/*
** What is measured. A real Erlang node (erl, seeded) writes term_to_binary(T, [{minor_version,
** 2}]) of a mixed corpus: the atom encoding the distribution protocol and OTP 26 use, and the
** only one ei encodes. For every item, one "round trip" is:
**   Girder: etf_decode() to a term, etf_encode() back into a reused etf_buf, term_free().
**   ei:     a full walk that decodes every element into C values (ei_decode_long, _double,
**           _atom_as, _binary, _string, _pid, _ref, _big, headers) and re-encodes each with
**           ei_x_encode_* into a reused ei_x_buff. ei builds no term tree at all, so it is the
**           cheapest way ei can be used; Girder builds a complete shareable term.
** Both sides must reproduce the input bytes exactly; this is checked for every item before
** timing. Timing alternates the two sides in rounds; each side's figure is the median of its
** rounds, in items/s; ratio = Girder / ei. The BENCH line uses CLOCK_MONOTONIC (-k cpu:
** CLOCK_THREAD_CPUTIME_ID); both are printed on stderr, because on a loaded machine the
** on-CPU figures are the stable ones (both sides run on this one thread).
*/

#define ROUNDS 7

/* The corpus generator, run as `erl -noshell -eval CODE -extra OUTFILE`. 12 kinds x 64. */
static const char corpus_erl[] =
    "try\n"
    "  [Out] = init:get_plain_arguments(),\n"
    "  rand:seed(exsss, {17, 42, 4711}),\n"
    "  Node = <<\"bench@girder.example\">>, NL = byte_size(Node),\n"
    "  FPid = fun(I) -> binary_to_term(<<131, 88, 119, NL, Node/binary,\n"
    "                                     I:32, 0:32, 1700000001:32>>) end,\n"
    "  FRef = fun(I) -> binary_to_term(<<131, 90, 3:16, 119, NL, Node/binary, 1700000001:32,\n"
    "                                     I:32, (rand:uniform(1 bsl 32) - 1):32, 77:32>>) end,\n"
    "  LPid = spawn(fun() -> receive stop -> ok end end),\n"
    "  Uni = binary_to_atom(<<\"r\\x{e9}sum\\x{e9}_\\x{4e16}\"/utf8>>, utf8),\n"
    "  Kinds = [\n"
    "    fun(I) -> {hello, I, rand:bytes(32)} end,\n"
    "    fun(I) -> {'$gen_call', {FPid(I), [alias | FRef(I)]},\n"
    "               {get, list_to_atom(\"key_\" ++ integer_to_list(I rem 50))}} end,\n"
    "    fun(I) -> {FRef(I), {ok, I * 1000}} end,\n"
    "    fun(_) -> [rand:uniform(100000) || _ <- lists:seq(1, 20)] end,\n"
    "    fun(I) -> \"user-\" ++ integer_to_list(I) ++ \"@example.com\" end,\n"
    "    fun(I) -> #{id => I, name => <<\"user\", (integer_to_binary(I))/binary>>,\n"
    "                active => I rem 2 =:= 0, score => rand:uniform() * 100,\n"
    "                tags => [admin, staff]} end,\n"
    "    fun(I) -> {a, {b, {c, {d, {e, I, [x, {y, z}]}}}}} end,\n"
    "    fun(_) -> {point, rand:uniform() * 1000, -rand:uniform() * 1000, rand:normal()} end,\n"
    "    fun(I) -> {big, (1 bsl 100) + I, -(1 bsl 70) - I, (1 bsl 62) + I} end,\n"
    "    fun(I) -> {data, I, rand:bytes(1024)} end,\n"
    "    fun(I) -> {user, I, <<\"\\x{c6}r\\x{f8}sk\\x{f8}bing\"/utf8>>, \"alice@example.com\",\n"
    "               {{2024, 5, I rem 28 + 1}, {12, 30, 0}}, [admin, Uni]} end,\n"
    "    fun(I) -> {'DOWN', FRef(I), process,\n"
    "               if I rem 2 =:= 0 -> LPid; true -> FPid(I) end, normal} end],\n"
    "  Items = [term_to_binary(K(I), [{minor_version, 2}])\n"
    "           || I <- lists:seq(1, 64), K <- Kinds],\n"
    "  ok = file:write_file(Out, [<<(byte_size(B)):32, B/binary>> || B <- Items]),\n"
    "  halt(0)\n"
    "catch C:R:S ->\n"
    "  io:format(standard_error, \"corpus generation failed: ~p:~p ~p~n\", [C, R, S]),\n"
    "  halt(2)\n"
    "end.\n";

typedef struct item {
    const uint8_t *data;
    size_t len;
} item;

typedef struct corpus {
    uint8_t *raw;
    size_t rawlen;
    item *items;
    size_t n, bytes;
} corpus;

static double now(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ================================================================ corpus */

/* Runs erl to write the corpus into path; erl's output goes to our stderr. 0 or -1. */
static int run_erl(const char *path)
{
    const char *erl = getenv("ERL");
    if (!erl || !*erl) erl = "erl";
    char *argv[] = {(char *)erl,        "-noshell",       "-noinput",   "-eval",
                    (char *)corpus_erl, (char *)"-extra", (char *)path, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, 2, 1); /* stdout carries only the BENCH line */
    extern char **environ;
    pid_t pid;
    int rc = posix_spawnp(&pid, erl, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "bench-etf-codec: cannot run %s: %s\n", erl, strerror(rc));
        return -1;
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return -1;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "bench-etf-codec: %s failed to generate the corpus\n", erl);
        return -1;
    }
    return 0;
}

/* Reads a corpus file (items as <<Len:32, Bytes/binary>>). 0 or -1 with a message. */
static int load_corpus(const char *path, corpus *c)
{
    memset(c, 0, sizeof *c);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench-etf-codec: %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size < 4) {
        fprintf(stderr, "bench-etf-codec: %s: empty or unreadable corpus\n", path);
        fclose(f);
        return -1;
    }
    c->rawlen = (size_t)sb.st_size;
    c->raw = malloc(c->rawlen);
    if (!c->raw || fread(c->raw, 1, c->rawlen, f) != c->rawlen) {
        fprintf(stderr, "bench-etf-codec: %s: read failed\n", path);
        fclose(f);
        return -1;
    }
    fclose(f);
    size_t cap = 0;
    for (size_t pos = 0; pos < c->rawlen;) {
        if (c->rawlen - pos < 4) goto bad;
        const uint8_t *p = c->raw + pos;
        size_t len = ((size_t)p[0] << 24) | ((size_t)p[1] << 16) | ((size_t)p[2] << 8) | p[3];
        if (len == 0 || len > c->rawlen - pos - 4 || len > INT32_MAX) goto bad;
        if (c->n == cap) {
            cap = cap ? 2 * cap : 256;
            item *ni = realloc(c->items, cap * sizeof *ni);
            if (!ni) goto bad;
            c->items = ni;
        }
        c->items[c->n++] = (item){p + 4, len};
        c->bytes += len;
        pos += 4 + len;
    }
    if (c->n > 0) return 0;
bad:
    fprintf(stderr, "bench-etf-codec: %s: malformed corpus file\n", path);
    return -1;
}

/* ================================================================ Girder side */

/* One round trip; 0 or a TERM_E code. The output is left in out. */
static int girder_trip(const item *it, etf_buf *out)
{
    etf_error err;
    term_t t = etf_decode(it->data, it->len, NULL, NULL, &err);
    if (t == TERM_NONE) return err.code;
    out->len = 0;
    int rc = etf_encode(t, ETF_ENC_UTF8_ATOMS, out);
    term_free(t);
    return rc;
}

/* ================================================================ ei side */

/* Scratch space ei decodes into, allocated once and grown only for a larger item. */
typedef struct ei_scratch {
    char *bin;
    size_t bincap;
    erlang_big big;
    size_t bigcap; /* digit bytes the big's buffer holds */
    char str[65536];
    erlang_pid pid;
    erlang_port port;
    erlang_ref ref;
} ei_scratch;

static int grow(char **p, size_t *cap, size_t need)
{
    if (need <= *cap) return 0;
    char *np = realloc(*p, need);
    if (!np) return -1;
    *p = np;
    *cap = need;
    return 0;
}

/*
** Decodes the term at *ix into C values and re-encodes them into x, the way an ei user who
** needs every value would. Recursive, as ei programs are; the corpus nests a few levels.
** 0 or -1 (including for types this benchmark does not walk: funs).
*/
static int ei_trip_term(const char *buf, int *ix, ei_x_buff *x, ei_scratch *s)
{
    int type, size, arity;
    if (ei_get_type(buf, ix, &type, &size) < 0) return -1;
    switch (type) {
    case ERL_SMALL_INTEGER_EXT:
    case ERL_INTEGER_EXT: {
        long v;
        return ei_decode_long(buf, ix, &v) < 0 || ei_x_encode_long(x, v) < 0 ? -1 : 0;
    }
    case ERL_SMALL_BIG_EXT:
    case ERL_LARGE_BIG_EXT: {
        char *d = s->big.digits;
        size_t need = ((size_t)size + 1) & ~(size_t)1;
        if (grow(&d, &s->bigcap, need) < 0) return -1;
        s->big.digits = d;
        s->big.arity = (unsigned)size;
        return ei_decode_big(buf, ix, &s->big) < 0 || ei_x_encode_big(x, &s->big) < 0 ? -1 : 0;
    }
    case ERL_FLOAT_EXT: {
        double d;
        return ei_decode_double(buf, ix, &d) < 0 || ei_x_encode_double(x, d) < 0 ? -1 : 0;
    }
    case ERL_ATOM_EXT: {
        char a[MAXATOMLEN_UTF8];
        /* size is the byte length, exact when no conversion happens (UTF-8 in and out) */
        if (ei_decode_atom_as(buf, ix, a, sizeof a, ERLANG_UTF8, NULL, NULL) < 0) return -1;
        return ei_x_encode_atom_len_as(x, a, size, ERLANG_UTF8, ERLANG_UTF8) < 0 ? -1 : 0;
    }
    case ERL_SMALL_TUPLE_EXT:
    case ERL_LARGE_TUPLE_EXT:
        if (ei_decode_tuple_header(buf, ix, &arity) < 0) return -1;
        if (ei_x_encode_tuple_header(x, arity) < 0) return -1;
        for (int i = 0; i < arity; i++)
            if (ei_trip_term(buf, ix, x, s) < 0) return -1;
        return 0;
    case ERL_MAP_EXT:
        if (ei_decode_map_header(buf, ix, &arity) < 0) return -1;
        if (ei_x_encode_map_header(x, arity) < 0) return -1;
        for (int i = 0; i < 2 * arity; i++)
            if (ei_trip_term(buf, ix, x, s) < 0) return -1;
        return 0;
    case ERL_NIL_EXT:
        if (ei_decode_list_header(buf, ix, &arity) < 0) return -1;
        return ei_x_encode_empty_list(x) < 0 ? -1 : 0;
    case ERL_LIST_EXT:
        if (ei_decode_list_header(buf, ix, &arity) < 0) return -1;
        if (ei_x_encode_list_header(x, arity) < 0) return -1;
        for (int i = 0; i <= arity; i++) /* the elements, then the tail */
            if (ei_trip_term(buf, ix, x, s) < 0) return -1;
        return 0;
    case ERL_STRING_EXT:
        if (ei_decode_string(buf, ix, s->str) < 0) return -1;
        return ei_x_encode_string_len(x, s->str, size) < 0 ? -1 : 0;
    case ERL_BINARY_EXT: {
        long len;
        if (grow(&s->bin, &s->bincap, (size_t)size + 1) < 0) return -1;
        if (ei_decode_binary(buf, ix, s->bin, &len) < 0) return -1;
        return ei_x_encode_binary(x, s->bin, len) < 0 ? -1 : 0;
    }
    case ERL_BIT_BINARY_EXT: {
        const char *p;
        unsigned int off;
        size_t bits;
        if (ei_decode_bitstring(buf, ix, &p, &off, &bits) < 0) return -1;
        if (grow(&s->bin, &s->bincap, (bits + 7) / 8 + 1) < 0) return -1;
        memcpy(s->bin, p, (bits + 7) / 8);
        return ei_x_encode_bitstring(x, s->bin, off, bits) < 0 ? -1 : 0;
    }
    case ERL_PID_EXT:
        return ei_decode_pid(buf, ix, &s->pid) < 0 || ei_x_encode_pid(x, &s->pid) < 0 ? -1 : 0;
    case ERL_PORT_EXT:
        return ei_decode_port(buf, ix, &s->port) < 0 || ei_x_encode_port(x, &s->port) < 0 ? -1 : 0;
    case ERL_NEW_REFERENCE_EXT:
        return ei_decode_ref(buf, ix, &s->ref) < 0 || ei_x_encode_ref(x, &s->ref) < 0 ? -1 : 0;
    }
    return -1;
}

/* One round trip with ei; 0 or -1. The output is left in x (x->index bytes). */
static int ei_trip(const item *it, ei_x_buff *x, ei_scratch *s)
{
    const char *buf = (const char *)it->data;
    int ix = 0, version;
    x->index = 0;
    if (ei_decode_version(buf, &ix, &version) < 0 || ei_x_encode_version(x) < 0) return -1;
    if (ei_trip_term(buf, &ix, x, s) < 0) return -1;
    return (size_t)ix == it->len ? 0 : -1;
}

/* ================================================================ checking and timing */

/* Both sides must give back every item byte for byte. 0 or -1 with a message. */
static int verify(const corpus *c, etf_buf *gb, ei_x_buff *x, ei_scratch *s)
{
    for (size_t i = 0; i < c->n; i++) {
        const item *it = &c->items[i];
        int rc = girder_trip(it, gb);
        if (rc != 0) {
            fprintf(stderr, "bench-etf-codec: item %zu: Girder failed: %s\n", i, term_strerror(rc));
            return -1;
        }
        if (gb->len != it->len || memcmp(gb->data, it->data, it->len) != 0) {
            fprintf(stderr, "bench-etf-codec: item %zu: Girder's bytes differ from Erlang's\n", i);
            return -1;
        }
        if (ei_trip(it, x, s) != 0) {
            fprintf(stderr, "bench-etf-codec: item %zu: ei failed to decode or encode\n", i);
            return -1;
        }
        if ((size_t)x->index != it->len || memcmp(x->buff, it->data, it->len) != 0) {
            fprintf(stderr, "bench-etf-codec: item %zu: ei's bytes differ from Erlang's\n", i);
            return -1;
        }
    }
    return 0;
}

typedef struct side {
    etf_buf *gb;
    ei_x_buff *x;
    ei_scratch *s;
} side;

/* Wall-clock and on-CPU seconds of one run. */
typedef struct took {
    double wall, cpu;
} took;

/* Runs `passes` passes over the corpus on one side; false if a round trip failed. */
static bool run_passes(const corpus *c, const side *sd, bool girder, long passes, took *t)
{
    double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
    for (long p = 0; p < passes; p++)
        for (size_t i = 0; i < c->n; i++) {
            int rc =
                girder ? girder_trip(&c->items[i], sd->gb) : ei_trip(&c->items[i], sd->x, sd->s);
            if (rc != 0) return false;
        }
    t->cpu = now(CLOCK_THREAD_CPUTIME_ID) - c0;
    t->wall = now(CLOCK_MONOTONIC) - w0;
    return true;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static const char usage[] =
    "usage: bench-etf-codec [-t SECONDS | -n PASSES] [-k wall|cpu] [-c CORPUS | -w CORPUS]\n"
    "       bench-etf-codec -h | --help\n"
    "Term codec: decode+encode of one mixed ETF corpus made by a real erl (768 items), Girder's\n"
    "term_codec against Erlang's C library ei, in this process (items/s), rounds alternating.\n"
    "One BENCH line (etf_codec) on stdout, every round on stderr.\n"
    "  -t S     time each side for about S seconds in all (default 1.5)\n"
    "  -n N     one round of exactly N passes per side (for profilers)\n"
    "  -k CLOCK wall (default) or cpu: the clock the BENCH line reports\n"
    "  -c FILE  use a corpus file instead of generating one with erl\n"
    "  -w FILE  generate the corpus with erl and keep it in FILE\n"
    "\n"
    "Environment:\n"
    "  ERL=PATH  the erl program that makes the corpus (default: erl on PATH)\n"
    "See bench/README.md.\n";

int main(int argc, char **argv)
{
    double seconds = 1.5;
    long fixed = 0;
    bool use_cpu = false;
    const char *use = NULL, *keep = NULL;
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int opt, at;
    opterr = 0; /* the messages are ours (bench_args.h) */
    /* "+": options end at the first argument that is none (no reordering), so the argument
    ** getopt_long is on is always argv[at] */
    while ((at = optind, opt = getopt_long(argc, argv, "+:t:n:k:c:w:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 't':
            seconds = atof(optarg);
            break;
        case 'n':
            fixed = atol(optarg);
            break;
        case 'k':
            if (strcmp(optarg, "cpu") != 0 && strcmp(optarg, "wall") != 0)
                ba_usage_error(argv, "-k takes wall or cpu, not '%s'", optarg);
            use_cpu = strcmp(optarg, "cpu") == 0;
            break;
        case 'c':
            use = optarg;
            break;
        case 'w':
            keep = optarg;
            break;
        case 'h':
            ba_help(usage);
            break;
        case ':':
            ba_usage_error(argv, "option '-%c' needs a value", optopt);
        default: /* an unknown option: a long one whole, a short one alone */
            if (!strncmp(argv[at], "--", 2) || !optopt)
                ba_usage_error(argv, "unknown option '%s'", argv[at]);
            ba_usage_error(argv, "unknown option '-%c'", optopt);
        }
    }
    if (optind < argc) ba_usage_error(argv, "unexpected argument '%s'", argv[optind]);
    if (seconds <= 0) ba_usage_error(argv, "-t takes a number of seconds above 0");
    if (fixed < 0) ba_usage_error(argv, "-n takes a count of passes, 0 or more");
    if (use && keep) ba_usage_error(argv, "-c and -w exclude each other");
    bs_machine("bench-etf-codec");

    corpus c;
    char tmp[] = "/tmp/girder-bench-etf-XXXXXX";
    if (use) {
        if (load_corpus(use, &c) != 0) return 1;
    } else {
        const char *path = keep;
        if (!path) {
            int fd = mkstemp(tmp);
            if (fd < 0) {
                fprintf(stderr, "bench-etf-codec: mkstemp: %s\n", strerror(errno));
                return 1;
            }
            close(fd);
            path = tmp;
        }
        int rc = run_erl(path) == 0 ? load_corpus(path, &c) : -1;
        if (!keep) unlink(tmp);
        if (rc != 0) return 1;
    }

    etf_buf gb = {0};
    ei_x_buff x;
    ei_scratch *s = calloc(1, sizeof *s);
    if (!s || ei_x_new(&x) != 0) return 1;
    if (verify(&c, &gb, &x, s) != 0) return 1;
    side sd = {&gb, &x, s};

    /* Size the rounds from one timed pass per side so each side gets `seconds` in total. */
    took t1g, t1e;
    if (!run_passes(&c, &sd, true, 1, &t1g) || !run_passes(&c, &sd, false, 1, &t1e)) return 1;
    int rounds = fixed ? 1 : ROUNDS;
    long pg = fixed ? fixed : (long)(seconds / rounds / t1g.wall) + 1;
    long pe = fixed ? fixed : (long)(seconds / rounds / t1e.wall) + 1;
    /* items/s of each round: [0] girder, [1] ei; by wall clock and by on-CPU time */
    double wall[2][ROUNDS], cpu[2][ROUNDS];
    for (int r = 0; r < rounds; r++) {
        took a, b;
        bool ok = r % 2 ? run_passes(&c, &sd, false, pe, &b) && run_passes(&c, &sd, true, pg, &a)
                        : run_passes(&c, &sd, true, pg, &a) && run_passes(&c, &sd, false, pe, &b);
        if (!ok) {
            fprintf(stderr, "bench-etf-codec: a round trip failed while timing\n");
            return 1;
        }
        wall[0][r] = (double)c.n * (double)pg / a.wall;
        wall[1][r] = (double)c.n * (double)pe / b.wall;
        cpu[0][r] = (double)c.n * (double)pg / a.cpu;
        cpu[1][r] = (double)c.n * (double)pe / b.cpu;
        fprintf(stderr, "round %d: girder %.0f items/s (cpu %.0f), ei %.0f items/s (cpu %.0f)\n",
                r + 1, wall[0][r], cpu[0][r], wall[1][r], cpu[1][r]);
    }
    /* spreads on stderr (the side that went first alternated between rounds) */
    bs_side("etf_codec (wall)", "girder", wall[0], rounds, "items/s");
    bs_side("etf_codec (wall)", "ei", wall[1], rounds, "items/s");
    bs_side("etf_codec (cpu)", "girder", cpu[0], rounds, "items/s");
    bs_side("etf_codec (cpu)", "ei", cpu[1], rounds, "items/s");
    fprintf(stderr, "etf_codec: load at the end %s\n", bs_load());
    double gw = median(wall[0], rounds), ew = median(wall[1], rounds);
    double gc = median(cpu[0], rounds), ec = median(cpu[1], rounds);
    fprintf(stderr,
            "corpus: %zu items, %zu bytes (mean %.0f B/item)\n"
            "median of %d rounds, wall clock: girder %.0f items/s, ei %.0f items/s, ratio %.2f\n"
            "median of %d rounds, on-CPU:     girder %.0f items/s, ei %.0f items/s, ratio %.2f\n",
            c.n, c.bytes, (double)c.bytes / (double)c.n, rounds, gw, ew, gw / ew, rounds, gc, ec,
            gc / ec);
    double g = use_cpu ? gc : gw, e = use_cpu ? ec : ew;
    bs_print("etf_codec", g, e, "items/s", true);

    ei_x_free(&x);
    etf_buf_free(&gb);
    free(s->bin);
    free(s->big.digits);
    free(s);
    free(c.items);
    free(c.raw);
    return 0;
}
