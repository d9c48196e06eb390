/* girderd's options: the table, argv, the config file (an Erlang proplist), the environment. */
#include "opts.h"

#include "daemon.h"
#include "log.h"

#include <errno.h>
#include <girder/dist.h>
#include <girder/term.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* T_WORDS: a list whose flag takes every following word up to the next --flag (erl's
** -ssl_dist_opt); in the file, a list of strings or atoms. */
typedef enum { T_STR, T_PATH, T_INT, T_BOOL, T_LEVEL, T_LIST, T_WORDS } otype;

typedef struct gd_option {
    const char *key;  /* config key */
    const char *flag; /* long flag without "--"; NULL: the key with '-' for '_' */
    otype type;
    long long min, max; /* T_INT */
    const char *env;    /* environment variable, or NULL */
    const char *def;    /* default as text (NULL: not set) */
    const char *meta;   /* the value's name in --help */
    const char *help;   /* one line */
    size_t off;         /* field in gd_config */
} gd_option;

#define F(field) offsetof(gd_config, field)

/* The one table. Precedence: flag > file > environment > default. */
static const gd_option opts[] = {
    {"sname", NULL, T_STR, 0, 0, NULL, NULL, "NAME",
     "short node name NAME@<host without domain>; `undefined`: a dynamic name (needs connect)",
     F(sname)},
    {"name", NULL, T_STR, 0, 0, NULL, NULL, "NAME@HOST", "long node name", F(name)},
    {"cookie", NULL, T_STR, 0, 0, NULL, NULL, "COOKIE",
     "distribution cookie; default: ~/.erlang.cookie, which must be accessible by its owner only",
     F(cookie)},
    {"hidden", NULL, T_BOOL, 0, 0, NULL, "false", NULL, "connect to other nodes as a hidden node",
     F(hidden)},
    {"connect", NULL, T_STR, 0, 0, NULL, NULL, "NODE",
     "with a dynamic name: the node that gives this one its name", F(connect)},
    {"listen_addr", NULL, T_STR, 0, 0, NULL, NULL, "ADDR",
     "numeric address to listen on for distribution; default: every address", F(listen_addr)},
    {"listen_port", NULL, T_INT, 0, 65535, NULL, "0", "PORT",
     "distribution port; 0: chosen by the kernel", F(listen_port)},
    {"epmd_port", NULL, T_INT, 1, 65535, "ERL_EPMD_PORT", "4369", "PORT", "port mapper port",
     F(epmd_port)},
    {"start_epmd", NULL, T_BOOL, 0, 0, NULL, "true", NULL,
     "start girder-epmd when no port mapper answers, as erl starts epmd", F(start_epmd)},
    {"ticktime", NULL, T_INT, 1, 86400, NULL, "60", "SECONDS",
     "net_ticktime: a tick every SECONDS/4; a peer silent for about SECONDS is down", F(ticktime)},
    {"setuptime", NULL, T_INT, 1, 3600, NULL, "7", "SECONDS",
     "net_setuptime: timeout of each handshake step", F(setuptime)},
    {"mailbox_limit", NULL, T_INT, 0, 4294967295LL, NULL, "100000", "N",
     "messages a process may hold before its mailbox policy applies (and one line is logged); "
     "0: no limit (docs/observability.md)",
     F(mailbox_limit)},
    {"mailbox_policy", NULL, T_STR, 0, 0, NULL, "report", "report|kill|drop_newest",
     "past the mailbox limit: report (Erlang semantics, the log line only), kill (exit reason "
     "mailbox_overflow) or drop_newest (discard and count)",
     F(mailbox_policy)},
    {"max_new_atoms", NULL, T_INT, 1, 1048576, NULL, "100000", "N",
     "atoms one peer node (by name, across reconnects) may add to the atom table; its further "
     "new names arrive as foreign atoms (docs/distribution.md)",
     F(max_new_atoms)},
    {"atom_reserve", NULL, T_INT, 0, 1048575, NULL, "0", "N",
     "atom table entries that peers' atoms may never take (kept for local code and node names); "
     "0: an eighth of the table",
     F(atom_reserve)},
    {"atoms_disconnect", NULL, T_BOOL, 0, 0, NULL, "false", NULL,
     "disconnect a peer past its max_new_atoms (or when the reserve is reached) instead of "
     "giving it foreign atoms",
     F(atoms_disconnect)},
    {"max_handshakes_per_addr", NULL, T_INT, 1, 65536, NULL, "32", "N",
     "inbound connections still in their handshake from one address; past it the oldest is "
     "closed (docs/reliability.md)",
     F(max_handshakes_per_addr)},
    {"max_handshakes", NULL, T_INT, 1, 65536, NULL, "256", "N",
     "inbound connections still in their handshake in all; past it the oldest is closed",
     F(max_handshakes)},
    {"schedulers", NULL, T_INT, 0, 1024, "ND_SCHEDULERS", "0", "N",
     "scheduler threads; 0: one per online core", F(schedulers)},
    {"proto_dist", NULL, T_STR, 0, 0, NULL, "inet_tcp", "inet_tcp|inet_tls",
     "distribution over plain TCP, or over TLS as erl's `-proto_dist inet_tls` (docs/tls.md)",
     F(proto_dist)},
    {"ssl_dist_optfile", NULL, T_PATH, 0, 0, NULL, NULL, "FILE",
     "with inet_tls: erl's `-ssl_dist_optfile`, the TLS options `[{server, Opts}, {client, "
     "Opts}]` (the same file as the Erlang nodes')",
     F(ssl_dist_optfile)},
    {"ssl_dist_opt", NULL, T_WORDS, 0, 0, NULL, NULL, "KEY VALUE...",
     "with inet_tls: erl's `-ssl_dist_opt` words (`server_certfile F client_verify verify_peer "
     "...`); a role the optfile gives is taken from the optfile",
     F(ssl_dist_opt)},
    {"control_socket", NULL, T_PATH, 0, 0, NULL, NULL, "PATH",
     "control socket (mode 0600); default $XDG_RUNTIME_DIR/girder/<node>.sock (/run instead of "
     "$XDG_RUNTIME_DIR for root or without it; girder/epmd-<port>/ with a port mapper port other "
     "than 4369); \"\": none",
     F(control_socket)},
    {"control_max_clients", NULL, T_INT, 1, 4096, NULL, "64", "N",
     "control clients connected at once; more are refused", F(control_max_clients)},
    {"control_max_request", NULL, T_INT, 64, 64 << 20, NULL, "1048576", "BYTES",
     "largest control request; a client sending a larger one is closed", F(control_max_request)},
    {"control_idle_timeout", NULL, T_INT, 1, 86400, NULL, "300", "SECONDS",
     "a control client with no request in flight and none completed for this long is closed",
     F(control_idle_timeout)},
    {"log_file", NULL, T_PATH, 0, 0, NULL, NULL, "FILE",
     "log to FILE (appended to; SIGHUP reopens it) instead of stderr", F(log_file)},
    {"log_level", NULL, T_LEVEL, 0, 0, "GIRDER_LOG_LEVEL", "info", "LEVEL",
     "emergency, alert, critical, error, warning, notice, info or debug", F(log_level)},
    {"pid_file", NULL, T_PATH, 0, 0, NULL, NULL, "FILE",
     "write the daemon's pid to FILE once the node is ready; removed at exit", F(pid_file)},
    {"module_dir", NULL, T_PATH, 0, 0, NULL, NULL, "DIR",
     "where a module given by a bare NAME is found (DIR/NAME.so); default: girder/modules in "
     "the installation's library directory",
     F(module_dir)},
    {"modules", "module", T_LIST, 0, 0, NULL, NULL, "PATH|NAME",
     "modules to load at start, in order (the flag repeats)", F(modules)},
    {"apps", "app", T_LIST, 0, 0, NULL, NULL, "NAME",
     "apps to start, in order; default: the app of every loaded module (the flag repeats)",
     F(apps)},
    {"demo", NULL, T_BOOL, 0, 0, NULL, "true", NULL,
     "load the built-in demo module (echo, kv, watch) before the others", F(demo)},
    {"sabotage", NULL, T_STR, 0, 0, NULL, NULL, "drop-down=N",
     "TESTING ONLY, breaks Erlang's guarantees: drop one in N DOWN signals of lost connections "
     "(tests that the chaos checker notices, docs/chaos.md)",
     F(sabotage)},
};
#define NOPTS (sizeof opts / sizeof opts[0])
_Static_assert(NOPTS <= 64, "gd_config.src has 64 slots");

/* ---------------------------------------------------------------- helpers */

static void *field(gd_config *c, const gd_option *o)
{
    return (char *)c + o->off;
}

static const char *flag_name(const gd_option *o, char *buf, size_t n)
{
    if (o->flag) return o->flag;
    snprintf(buf, n, "%s", o->key);
    for (char *p = buf; *p; p++)
        if (*p == '_') *p = '-';
    return buf;
}

static void list_free(gd_strlist *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static int list_push(gd_strlist *l, const char *s)
{
    char **v = realloc(l->v, (l->n + 1) * sizeof *v);
    if (!v) return -1;
    l->v = v;
    if (!(v[l->n] = strdup(s))) return -1;
    l->n++;
    return 0;
}

/* Where a problem is: "FILE:LINE: key K", "--flag", "VARIABLE". */
typedef struct where {
    char text[512];
} where;

static void errf(FILE *err, const where *w, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(FILE *err, const where *w, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(err, "girderd: %s: %s\n", w->text, msg);
}

static const char *range_text(const gd_option *o, char *buf, size_t n)
{
    snprintf(buf, n, "%lld..%lld", o->min, o->max);
    return buf;
}

/* Releases the value of o (strings, lists) so it can be set again. */
static void clear_value(gd_config *c, const gd_option *o)
{
    if (o->type == T_STR || o->type == T_PATH) {
        char **p = field(c, o);
        free(*p);
        *p = NULL;
    } else if (o->type == T_LIST || o->type == T_WORDS) {
        list_free(field(c, o));
    }
}

/*
** Sets o from text (a flag's or a variable's value). Lists append (the caller clears them once
** per source). Returns 0 or prints why not and returns -1.
*/
static int set_from_text(gd_config *c, const gd_option *o, const char *s, const where *w, FILE *err)
{
    char rb[64];
    switch (o->type) {
    case T_STR:
    case T_PATH: {
        char **p = field(c, o);
        free(*p);
        if (!(*p = strdup(s))) return errf(err, w, "out of memory"), -1;
        return 0;
    }
    case T_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (!*s || *end || errno == ERANGE) {
            errf(err, w, "expected an integer in %s, got \"%s\"", range_text(o, rb, sizeof rb), s);
            return -1;
        }
        if (v < o->min || v > o->max) {
            errf(err, w, "%lld is out of range %s", v, range_text(o, rb, sizeof rb));
            return -1;
        }
        *(long long *)field(c, o) = v;
        return 0;
    }
    case T_BOOL:
        if (!strcmp(s, "true"))
            *(bool *)field(c, o) = true;
        else if (!strcmp(s, "false"))
            *(bool *)field(c, o) = false;
        else
            return errf(err, w, "expected true or false, got \"%s\"", s), -1;
        return 0;
    case T_LEVEL: {
        int l = gd_level_parse(s);
        if (l < 0) {
            errf(err, w,
                 "expected one of emergency, alert, critical, error, warning, notice, info, "
                 "debug, got \"%s\"",
                 s);
            return -1;
        }
        *(long long *)field(c, o) = l;
        return 0;
    }
    case T_LIST:
        if (!*s) return errf(err, w, "an empty name"), -1;
        if (list_push(field(c, o), s)) return errf(err, w, "out of memory"), -1;
        return 0;
    case T_WORDS:
        if (!*s) return errf(err, w, "an empty word"), -1;
        if (list_push(field(c, o), s)) return errf(err, w, "out of memory"), -1;
        return 0;
    }
    return -1;
}

/* ---------------------------------------------------------------- terms from the file */

/* A C string from a term: "..." (a list of code points), <<"...">> (UTF-8) or an atom.
** Returns a malloc'ed string, or NULL if t is none of those (or holds a NUL). */
static char *term_cstr(term_t t)
{
    if (term_is_atom(t)) {
        size_t n;
        const char *s = term_atom_name(t, &n);
        return strndup(s, n);
    }
    if (term_is_binary(t)) {
        size_t n = term_binary_size(t);
        const uint8_t *d = term_binary_data(t);
        if (!d || memchr(d, 0, n)) return NULL;
        return strndup((const char *)d, n);
    }
    if (!term_is_list(t) || term_list_length(t) < 0) return NULL;
    size_t cap = 4 * (size_t)term_list_length(t) + 1, n = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    for (term_t l = t; term_is_cons(l); l = term_tl(l)) {
        int64_t cp;
        if (term_get_int64(term_hd(l), &cp) || cp <= 0 || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            free(s);
            return NULL;
        }
        if (cp < 0x80) {
            s[n++] = (char)cp;
        } else if (cp < 0x800) {
            s[n++] = (char)(0xC0 | (cp >> 6));
            s[n++] = (char)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            s[n++] = (char)(0xE0 | (cp >> 12));
            s[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            s[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
            s[n++] = (char)(0xF0 | (cp >> 18));
            s[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
            s[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
            s[n++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    s[n] = 0;
    return s;
}

/* The value as Erlang text, shortened, for messages. */
static const char *shown(term_t t, char *buf, size_t n)
{
    char *s = term_to_string(t, TERM_PRINT_P);
    if (!s) {
        snprintf(buf, n, "?");
        return buf;
    }
    if (strlen(s) > 60)
        snprintf(buf, n, "%.57s...", s);
    else
        snprintf(buf, n, "%s", s);
    free(s);
    return buf;
}

/* Relative paths in a file are relative to the file's directory. */
static char *resolve(const char *dir, const char *p)
{
    if (p[0] == '/' || !dir || !*p) return strdup(p);
    size_t n = strlen(dir) + strlen(p) + 2;
    char *r = malloc(n);
    if (r) snprintf(r, n, "%s/%s", dir, p);
    return r;
}

static int set_from_term(gd_config *c, const gd_option *o, term_t v, const char *dir,
                         const where *w, FILE *err)
{
    char sb[96], rb[64];
    switch (o->type) {
    case T_STR:
    case T_PATH: {
        char *s = term_cstr(v);
        if (!s) return errf(err, w, "expected a string, got %s", shown(v, sb, sizeof sb)), -1;
        char **p = field(c, o);
        free(*p);
        *p = o->type == T_PATH ? resolve(dir, s) : s;
        if (o->type == T_PATH) free(s);
        return *p ? 0 : -1;
    }
    case T_INT: {
        int64_t x;
        if (!term_is_int(v))
            return errf(err, w, "expected an integer in %s, got %s", range_text(o, rb, sizeof rb),
                        shown(v, sb, sizeof sb)),
                   -1;
        if (term_get_int64(v, &x) || x < o->min || x > o->max)
            return errf(err, w, "%s is out of range %s", shown(v, sb, sizeof sb),
                        range_text(o, rb, sizeof rb)),
                   -1;
        *(long long *)field(c, o) = x;
        return 0;
    }
    case T_BOOL:
        if (v != TERM_ATOM_TRUE && v != TERM_ATOM_FALSE)
            return errf(err, w, "expected true or false, got %s", shown(v, sb, sizeof sb)), -1;
        *(bool *)field(c, o) = v == TERM_ATOM_TRUE;
        return 0;
    case T_LEVEL: {
        char *s = term_cstr(v);
        int l = s ? gd_level_parse(s) : -1;
        free(s);
        if (l < 0)
            return errf(err, w,
                        "expected one of emergency, alert, critical, error, warning, notice, "
                        "info, debug, got %s",
                        shown(v, sb, sizeof sb)),
                   -1;
        *(long long *)field(c, o) = l;
        return 0;
    }
    case T_WORDS: {
        if (term_list_length(v) < 0)
            return errf(err, w, "expected a list of words, got %s", shown(v, sb, sizeof sb)), -1;
        gd_strlist *l = field(c, o);
        list_free(l);
        for (term_t x = v; term_is_cons(x); x = term_tl(x)) {
            char *s = term_cstr(term_hd(x));
            if (!s || !*s || list_push(l, s)) {
                free(s);
                return errf(err, w, "expected a list of words (strings or atoms), got element %s",
                            shown(term_hd(x), sb, sizeof sb)),
                       -1;
            }
            free(s);
        }
        return 0;
    }
    case T_LIST: {
        if (term_list_length(v) < 0)
            return errf(err, w, "expected a list of names, got %s", shown(v, sb, sizeof sb)), -1;
        gd_strlist *l = field(c, o);
        list_free(l);
        for (term_t x = v; term_is_cons(x); x = term_tl(x)) {
            char *s = term_cstr(term_hd(x));
            if (!s || !*s) {
                free(s);
                return errf(err, w, "expected a list of names, got element %s",
                            shown(term_hd(x), sb, sizeof sb)),
                       -1;
            }
            /* module paths (with a '/') are relative to the file; bare names are not paths */
            char *r = !strcmp(o->key, "modules") && strchr(s, '/') ? resolve(dir, s) : strdup(s);
            free(s);
            if (!r || list_push(l, r)) {
                free(r);
                return errf(err, w, "out of memory"), -1;
            }
            free(r);
        }
        return 0;
    }
    }
    return -1;
}

static int line_of(const char *text, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off && text[i]; i++)
        if (text[i] == '\n') line++;
    return line;
}

/* Skips whitespace and % comments. */
static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n) {
        if ((unsigned char)s[i] <= ' ')
            i++;
        else if (s[i] == '%')
            while (i < n && s[i] != '\n') i++;
        else
            break;
    }
    return i;
}

/* Skips a quoted "..." or '...' starting at s[i] (the quote); returns the index after it. */
static size_t skip_quoted(const char *s, size_t n, size_t i)
{
    char q = s[i++];
    while (i < n && s[i] != q) i += s[i] == '\\' ? 2 : 1;
    return i + 1;
}

/*
** The byte offsets at which the elements of the top-level list start, for error lines. The
** text has already parsed as a term, so only brackets, quotes, character literals and comments
** need tracking. Returns the number found (at most max).
*/
static size_t element_offsets(const char *s, size_t n, size_t *offs, size_t max)
{
    size_t i = skip_ws(s, n, 0), k = 0;
    if (i >= n || s[i] != '[') return 0;
    i = skip_ws(s, n, i + 1);
    if (i < n && s[i] != ']' && k < max) offs[k++] = i;
    int depth = 0;
    while (i < n) {
        char c = s[i];
        if (c == '"' || c == '\'') {
            i = skip_quoted(s, n, i);
        } else if (c == '$') {
            i += 2;
            if (i - 1 < n && s[i - 1] == '\\') i++; /* $\x: the escaped character */
        } else if (c == '%') {
            while (i < n && s[i] != '\n') i++;
        } else if (c == '(' || c == '[' || c == '{' || (c == '<' && i + 1 < n && s[i + 1] == '<')) {
            depth++;
            i += c == '<' ? 2 : 1;
        } else if (c == ')' || c == ']' || c == '}' || (c == '>' && i + 1 < n && s[i + 1] == '>')) {
            if (depth == 0) break;
            depth--;
            i += c == '>' ? 2 : 1;
        } else if (c == ',' && depth == 0) {
            i = skip_ws(s, n, i + 1);
            if (k < max) offs[k++] = i;
        } else {
            i++;
        }
    }
    return k;
}

static const gd_option *find_key(const char *key, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts[i].key) == len && !memcmp(opts[i].key, key, len)) return &opts[i];
    return NULL;
}

#define MAX_CONFIG_BYTES (1 << 20)

static int load_file(gd_config *c, const char *path, FILE *err)
{
    where w;
    snprintf(w.text, sizeof w.text, "%s", path);
    FILE *f = fopen(path, "r");
    if (!f) return errf(err, &w, "cannot read: %s", strerror(errno)), -1;
    char *text = malloc(MAX_CONFIG_BYTES + 1);
    errno = 0;
    size_t n = text ? fread(text, 1, MAX_CONFIG_BYTES + 1, f) : 0;
    int rerr = ferror(f) ? (errno ? errno : EIO) : 0;
    fclose(f);
    if (!text) return errf(err, &w, "out of memory"), -1;
    if (rerr) {
        free(text);
        return errf(err, &w, "cannot read: %s", strerror(rerr)), -1;
    }
    if (n > MAX_CONFIG_BYTES) {
        free(text);
        return errf(err, &w, "larger than %d bytes", MAX_CONFIG_BYTES), -1;
    }
    text[n] = 0;
    if (memchr(text, 0, n)) {
        snprintf(w.text, sizeof w.text, "%s:%d", path,
                 line_of(text, (size_t)((char *)memchr(text, 0, n) - text)));
        free(text);
        return errf(err, &w, "a NUL byte (not a text file)"), -1;
    }
    term_parse_error pe = {0};
    term_t t = term_parse(text, n, NULL, &pe);
    if (t == TERM_NONE) {
        snprintf(w.text, sizeof w.text, "%s:%d", path, line_of(text, pe.offset));
        errf(err, &w, "syntax error: %s", pe.what[0] ? pe.what : term_strerror(pe.code));
        free(text);
        return -1;
    }
    int rc = 0;
    long len = term_list_length(t);
    if (len < 0) {
        snprintf(w.text, sizeof w.text, "%s:%d", path, line_of(text, skip_ws(text, n, 0)));
        errf(err, &w, "expected a list [{Key, Value}, ...]");
        rc = -1;
        goto out;
    }
    size_t *offs = calloc((size_t)len + 1, sizeof *offs);
    if (!offs) {
        rc = -1;
        goto out;
    }
    size_t found = element_offsets(text, n, offs, (size_t)len);
    char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
    if (slash)
        *slash = 0;
    else if (dir) {
        free(dir);
        dir = NULL;
    }
    size_t i = 0;
    for (term_t l = t; term_is_cons(l) && rc == 0; l = term_tl(l), i++) {
        term_t e = term_hd(l);
        int line = line_of(text, i < found ? offs[i] : 0);
        snprintf(w.text, sizeof w.text, "%s:%d", path, line);
        if (!term_is_tuple(e) || term_tuple_arity(e) != 2 || !term_is_atom(term_tuple_elem(e, 0))) {
            char sb[96];
            errf(err, &w, "expected {Key, Value}, got %s", shown(e, sb, sizeof sb));
            rc = -1;
            break;
        }
        size_t klen;
        const char *key = term_atom_name(term_tuple_elem(e, 0), &klen);
        const gd_option *o = find_key(key, klen);
        if (!o) {
            errf(err, &w, "unknown key %.*s", (int)klen, key);
            rc = -1;
            break;
        }
        size_t idx = (size_t)(o - opts);
        snprintf(w.text, sizeof w.text, "%s:%d: key %s", path, line, o->key);
        if (c->src[idx] == GD_SRC_FILE) {
            errf(err, &w, "given twice (also on line %d)", c->line[idx]);
            rc = -1;
            break;
        }
        clear_value(c, o);
        if (set_from_term(c, o, term_tuple_elem(e, 1), dir, &w, err)) {
            rc = -1;
            break;
        }
        c->src[idx] = GD_SRC_FILE;
        c->line[idx] = line;
    }
    free(dir);
    free(offs);
out:
    term_free(t);
    free(text);
    return rc;
}

/* ---------------------------------------------------------------- argv */

typedef struct pending {
    const gd_option *o;
    const char *value;
    char **words; /* T_WORDS: argv's words, nwords of them */
    int nwords;
    char flag[64]; /* as written, for messages */
} pending;

static const gd_option *find_flag(const char *name, size_t len, bool *negated)
{
    char buf[64];
    *negated = false;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < NOPTS; i++) {
            const char *f = flag_name(&opts[i], buf, sizeof buf);
            if (strlen(f) == len && !memcmp(f, name, len)) return &opts[i];
        }
        /* --no-foo for a boolean foo */
        if (pass == 0 && len > 3 && !memcmp(name, "no-", 3)) {
            name += 3;
            len -= 3;
            *negated = true;
        } else {
            break;
        }
    }
    return NULL;
}

static void usage(FILE *f)
{
    char buf[64];
    fprintf(f, "usage: girderd [--config FILE] [--OPTION VALUE ...]\n"
               "       girderd --check-config FILE [--OPTION VALUE ...]\n"
               "Runs a Girder node. Every option is also a key of the config file (an Erlang\n"
               "proplist [{Key, Value}, ...]): --foo-bar V is {foo_bar, V}. Precedence: flag >\n"
               "file > environment > default. Boolean options: --foo, --no-foo.\n\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const gd_option *o = &opts[i];
        char head[96];
        const char *fl = flag_name(o, buf, sizeof buf);
        if (o->type == T_BOOL)
            snprintf(head, sizeof head, "--[no-]%s", fl);
        else
            snprintf(head, sizeof head, "--%s %s", fl, o->meta);
        fprintf(f, "  %-30s %s", head, o->help);
        if (o->type == T_INT) fprintf(f, " [%lld..%lld]", o->min, o->max);
        if (o->def) fprintf(f, " (default %s)", o->def);
        if (o->env) fprintf(f, " (env %s)", o->env);
        fprintf(f, "\n");
    }
    fprintf(f, "  %-30s %s\n", "--config FILE", "read options from FILE");
    fprintf(f, "  %-30s %s\n", "--check-config FILE",
            "validate FILE with the other options, print the result, exit");
    fprintf(f, "  %-30s %s\n", "--help, --version", "this text; the version");
    fprintf(f, "Signals: SIGTERM/SIGINT stop gracefully (a second one forces the exit), SIGHUP "
               "reopens the log file.\n");
}

/* Text in a markdown table cell: '|' escaped; outside code, '<' too (it would start HTML). */
static void md_text(FILE *out, const char *s, bool prose)
{
    bool code = false;
    for (const char *p = s; *p; p++) {
        if (*p == '`') code = !code;
        if (*p == '|') fputc('\\', out);
        if (*p == '<' && prose && !code) {
            fputs("&lt;", out);
            continue;
        }
        fputc(*p, out);
    }
}

void gd_options_markdown(FILE *out)
{
    char buf[64];
    fprintf(out, "| flag | key | type | default | environment | meaning |\n"
                 "|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const gd_option *o = &opts[i];
        const char *fl = flag_name(o, buf, sizeof buf);
        if (o->type == T_BOOL) {
            fprintf(out, "| `--%s`, `--no-%s` ", fl, fl);
        } else {
            fprintf(out, "| `--%s ", fl);
            md_text(out, o->meta, false);
            fprintf(out, "` ");
        }
        fprintf(out, "| `%s` | ", o->key);
        switch (o->type) {
        case T_STR:
            fprintf(out, "string");
            break;
        case T_PATH:
            fprintf(out, "path");
            break;
        case T_INT:
            fprintf(out, "integer %lld..%lld", o->min, o->max);
            break;
        case T_BOOL:
            fprintf(out, "`true` \\| `false`");
            break;
        case T_LEVEL:
            fprintf(out, "level");
            break;
        case T_LIST:
            fprintf(out, "list of strings");
            break;
        case T_WORDS:
            fprintf(out, "list of words");
            break;
        }
        fprintf(out, " | %s%s%s | %s%s%s | ", o->def ? "`" : "", o->def ? o->def : "",
                o->def ? "`" : "", o->env ? "`" : "", o->env ? o->env : "", o->env ? "`" : "");
        md_text(out, o->help, true);
        fprintf(out, " |\n");
    }
}

/* ---------------------------------------------------------------- validation */

static void src_text(const gd_config *c, size_t idx, char *buf, size_t n)
{
    char fb[64];
    switch (c->src[idx]) {
    case GD_SRC_FLAG:
        snprintf(buf, n, "--%s", flag_name(&opts[idx], fb, sizeof fb));
        break;
    case GD_SRC_FILE:
        snprintf(buf, n, "%s:%d: key %s", c->config_file, c->line[idx], opts[idx].key);
        break;
    case GD_SRC_ENV:
        snprintf(buf, n, "%s", opts[idx].env);
        break;
    default:
        snprintf(buf, n, "default");
        break;
    }
}

static size_t idx_of(const char *key)
{
    return (size_t)(find_key(key, strlen(key)) - opts);
}

/* Erlang's own check of the cookie file (auth.erl): a regular file, accessible by its owner
** only; the messages are Erlang's. A missing file is left to the distribution layer. */
static int check_cookie_file(FILE *err)
{
    const char *home = getenv("HOME");
    if (!home) return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/.erlang.cookie", home);
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) {
            fprintf(err, "girderd: no cookie: give --cookie (key cookie) or create %s\n", path);
            return -1;
        }
        fprintf(err, "girderd: Error when reading %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(err, "girderd: Cookie file %s is of type %s\n", path,
                S_ISDIR(st.st_mode) ? "directory" : "other");
        return -1;
    }
    if (st.st_mode & 077) {
        fprintf(err, "girderd: Cookie file %s must be accessible by owner only\n", path);
        return -1;
    }
    return 0;
}

static bool is_dynamic(const char *name)
{
    return !strcmp(name, "undefined") || !strncmp(name, "undefined@", 10);
}

/* proto_dist, and with inet_tls the TLS options as the distribution will read them: the
** optfile, every certificate, key and CA file (a missing one is one line naming it). */
static int validate_tls(gd_config *c, FILE *err)
{
    char a[600];
    size_t ip = idx_of("proto_dist"), io = idx_of("ssl_dist_optfile"), iw = idx_of("ssl_dist_opt");
    bool tls = !strcmp(c->proto_dist, "inet_tls");
    if (!tls && strcmp(c->proto_dist, "inet_tcp")) {
        src_text(c, ip, a, sizeof a);
        fprintf(err, "girderd: %s: expected inet_tcp or inet_tls, got \"%s\"\n", a, c->proto_dist);
        return -1;
    }
    if (!tls && (c->ssl_dist_optfile || c->ssl_dist_opt.n)) {
        src_text(c, c->ssl_dist_optfile ? io : iw, a, sizeof a);
        fprintf(err,
                "girderd: %s: TLS options, but proto_dist is inet_tcp (add --proto-dist "
                "inet_tls)\n",
                a);
        return -1;
    }
    if (!tls) return 0;
    dist_config dc = {0};
    dc.proto_dist = c->proto_dist;
    dc.ssl_dist_optfile = c->ssl_dist_optfile;
    dc.ssl_dist_opt = (const char *const *)c->ssl_dist_opt.v;
    dc.ssl_dist_opt_count = (int)c->ssl_dist_opt.n;
    char e[1000];
    int rc = dist_tls_check(&dc, e, sizeof e);
    if (rc) {
        src_text(c, c->ssl_dist_optfile ? io : c->ssl_dist_opt.n ? iw : ip, a, sizeof a);
        fprintf(err, "girderd: %s: %s\n", a, e[0] ? e : dist_strerror(rc));
        return -1;
    }
    return 0;
}

static int validate(gd_config *c, FILE *err)
{
    char a[600], b[600];
    if (strcmp(c->mailbox_policy, "report") && strcmp(c->mailbox_policy, "kill") &&
        strcmp(c->mailbox_policy, "drop_newest")) {
        src_text(c, idx_of("mailbox_policy"), a, sizeof a);
        fprintf(err, "girderd: %s: expected report, kill or drop_newest, got \"%s\"\n", a,
                c->mailbox_policy);
        return -1;
    }
    size_t is = idx_of("sname"), in = idx_of("name");
    if (c->sname && c->name) {
        src_text(c, is, a, sizeof a);
        src_text(c, in, b, sizeof b);
        fprintf(err, "girderd: sname (%s) and name (%s) are both set; give one\n", a, b);
        return -1;
    }
    if (!c->sname && !c->name) {
        fprintf(err, "girderd: no node name: give --sname NAME or --name NAME@HOST "
                     "(keys sname, name)\n");
        return -1;
    }
    const char *nm = c->sname ? c->sname : c->name;
    size_t inm = c->sname ? is : in;
    src_text(c, inm, a, sizeof a);
    if (!*nm) {
        fprintf(err, "girderd: %s: an empty node name\n", a);
        return -1;
    }
    if (is_dynamic(nm)) {
        if (!c->connect) {
            fprintf(err, "girderd: %s: a dynamic name (undefined) needs connect (--connect NODE)\n",
                    a);
            return -1;
        }
    } else if (c->name && !strchr(c->name, '@')) {
        fprintf(err, "girderd: %s: expected NAME@HOST, got \"%s\"\n", a, c->name);
        return -1;
    } else if (c->sname && strchr(c->sname, '@') && strchr(c->sname, '.')) {
        fprintf(err, "girderd: %s: a short name's host has no dots, got \"%s\"\n", a, c->sname);
        return -1;
    }
    if (validate_tls(c, err)) return -1;
    if (c->sabotage) {
        char *end;
        const char *v = c->sabotage;
        unsigned long n = 0;
        if (!strncmp(v, "drop-down=", 10) && v[10] >= '1' && v[10] <= '9') {
            errno = 0;
            n = strtoul(v + 10, &end, 10);
            if (*end || errno || n > 1000000) n = 0;
        }
        if (!n) {
            src_text(c, idx_of("sabotage"), a, sizeof a);
            fprintf(err, "girderd: %s: expected drop-down=N with N in 1..1000000, got \"%s\"\n", a,
                    v);
            return -1;
        }
        c->sabotage_down_one_in = (unsigned)n;
    }
    if (!c->cookie && check_cookie_file(err)) return -1;
    if (c->cookie && !*c->cookie) {
        src_text(c, idx_of("cookie"), a, sizeof a);
        fprintf(err, "girderd: %s: an empty cookie\n", a);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- load */

static int set_defaults(gd_config *c)
{
    where w;
    for (size_t i = 0; i < NOPTS; i++) {
        if (!opts[i].def) continue;
        snprintf(w.text, sizeof w.text, "default %s", opts[i].key);
        if (set_from_text(c, &opts[i], opts[i].def, &w, stderr)) return -1;
    }
    return 0;
}

int gd_config_load(gd_config *c, int argc, char **argv, FILE *out, FILE *err)
{
    memset(c, 0, sizeof *c);
    if (set_defaults(c)) return GD_EXIT_USAGE;
    pending *pend = calloc((size_t)argc + 1, sizeof *pend);
    size_t np = 0;
    int rc = GD_EXIT_USAGE;
    if (!pend) return GD_EXIT_USAGE;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(out);
            rc = GD_EXIT_OK;
            goto done;
        }
        if (!strcmp(a, "--version")) {
            fprintf(out, "girderd %s\n", GD_VERSION);
            rc = GD_EXIT_OK;
            goto done;
        }
        if (!strcmp(a, "--help-markdown")) {
            gd_options_markdown(out);
            rc = GD_EXIT_OK;
            goto done;
        }
        if (strncmp(a, "--", 2) || !a[2]) {
            fprintf(err, "girderd: unexpected argument \"%s\" (see --help)\n", a);
            goto done;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const char *val = eq ? eq + 1 : NULL;
        if ((nlen == 6 && !memcmp(name, "config", 6)) ||
            (nlen == 12 && !memcmp(name, "check-config", 12))) {
            if (!val && i + 1 < argc) val = argv[++i];
            if (!val || !*val) {
                fprintf(err, "girderd: --%.*s needs a FILE\n", (int)nlen, name);
                goto done;
            }
            if (c->config_file) {
                fprintf(err, "girderd: only one --config / --check-config FILE\n");
                goto done;
            }
            c->config_file = strdup(val);
            c->check_only = nlen == 12;
            continue;
        }
        bool neg;
        const gd_option *o = find_flag(name, nlen, &neg);
        if (!o || (neg && o->type != T_BOOL)) {
            fprintf(err, "girderd: unknown option --%.*s (see --help)\n", (int)nlen, name);
            goto done;
        }
        pending *p = &pend[np++];
        p->o = o;
        snprintf(p->flag, sizeof p->flag, "--%.*s", (int)nlen, name);
        if (o->type == T_WORDS) {
            if (val) {
                fprintf(err, "girderd: %s takes words (%s), not =VALUE\n", p->flag, o->meta);
                goto done;
            }
            p->words = argv + i + 1;
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2)) {
                i++;
                p->nwords++;
            }
            if (!p->nwords) {
                fprintf(err, "girderd: %s needs words (%s)\n", p->flag, o->meta);
                goto done;
            }
        } else if (o->type == T_BOOL) {
            if (neg && val) {
                fprintf(err, "girderd: %s takes no value\n", p->flag);
                goto done;
            }
            p->value = neg ? "false" : val ? val : "true";
        } else {
            if (!val && i + 1 < argc) val = argv[++i];
            if (!val) {
                fprintf(err, "girderd: %s needs a value (%s)\n", p->flag, o->meta);
                goto done;
            }
            p->value = val;
        }
    }
    /* environment */
    where w;
    for (size_t i = 0; i < NOPTS; i++) {
        const char *v = opts[i].env ? getenv(opts[i].env) : NULL;
        if (!v || !*v) continue;
        snprintf(w.text, sizeof w.text, "%s", opts[i].env);
        clear_value(c, &opts[i]);
        if (set_from_text(c, &opts[i], v, &w, err)) goto done;
        c->src[i] = GD_SRC_ENV;
    }
    if (c->config_file && load_file(c, c->config_file, err)) goto done;
    for (size_t k = 0; k < np; k++) {
        size_t idx = (size_t)(pend[k].o - opts);
        snprintf(w.text, sizeof w.text, "%s", pend[k].flag);
        /* a list given by flags replaces the list from the file or environment */
        if (c->src[idx] != GD_SRC_FLAG) clear_value(c, pend[k].o);
        if (pend[k].o->type == T_WORDS) {
            for (int j = 0; j < pend[k].nwords; j++)
                if (set_from_text(c, pend[k].o, pend[k].words[j], &w, err)) goto done;
        } else if (set_from_text(c, pend[k].o, pend[k].value, &w, err)) {
            goto done;
        }
        c->src[idx] = GD_SRC_FLAG;
    }
    if (validate(c, err)) goto done;
    gd_log_set_level((int)c->log_level);
    rc = GD_RUN;
done:
    free(pend);
    return rc;
}

void gd_config_free(gd_config *c)
{
    for (size_t i = 0; i < NOPTS; i++) clear_value(c, &opts[i]);
    free(c->config_file);
    c->config_file = NULL;
}

static void print_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', out);
        fputc(*p, out);
    }
    fputc('"', out);
}

static bool is_unset(gd_config *c, const gd_option *o)
{
    return (o->type == T_STR || o->type == T_PATH) && !*(char **)field(c, o);
}

void gd_config_print(const gd_config *c0, FILE *out)
{
    gd_config *c = (gd_config *)c0;
    bool first = true;
    size_t last = 0;
    for (size_t i = 0; i < NOPTS; i++)
        if (!is_unset(c, &opts[i])) last = i;
    for (size_t i = 0; i < NOPTS; i++) {
        const gd_option *o = &opts[i];
        char src[600];
        src_text(c, i, src, sizeof src);
        if (is_unset(c, o)) {
            fprintf(out, "%% %s: not set\n", o->key);
            continue;
        }
        fprintf(out, "%s{%s, ", first ? "[" : " ", o->key);
        first = false;
        switch (o->type) {
        case T_STR:
        case T_PATH:
            print_string(out, *(char **)field(c, o));
            break;
        case T_INT:
            fprintf(out, "%lld", *(long long *)field(c, o));
            break;
        case T_BOOL:
            fprintf(out, "%s", *(bool *)field(c, o) ? "true" : "false");
            break;
        case T_LEVEL:
            fprintf(out, "%s", gd_level_name((int)*(long long *)field(c, o)));
            break;
        case T_LIST:
        case T_WORDS: {
            const gd_strlist *l = field(c, o);
            fputc('[', out);
            for (size_t k = 0; k < l->n; k++) {
                if (k) fputs(", ", out);
                print_string(out, l->v[k]);
            }
            fputc(']', out);
            break;
        }
        }
        fprintf(out, "}%s %% %s\n", i < last ? "," : "", src);
    }
    fprintf(out, "%s].\n", first ? "[" : "");
}

int gd_default_control_socket(const char *node, unsigned epmd_port, char *buf, size_t n)
{
    /* root always uses /run/girder, so that root's shells (with XDG_RUNTIME_DIR=/run/user/0)
    ** and system services agree; so does a service user without a session (systemd's
    ** RuntimeDirectory=girder) */
    const char *dir = getenv("XDG_RUNTIME_DIR");
    if (geteuid() == 0 || !dir || !*dir) dir = "/run";
    /* a node name is unique only under its port mapper: nodes of other port mappers (test
    ** clusters, each with its own) get a directory per port mapper port */
    char sub[32] = "";
    if (epmd_port != 4369) snprintf(sub, sizeof sub, "epmd-%u/", epmd_port);
    int k = snprintf(buf, n, "%s/girder/%s%s.sock", dir, sub, node);
    return k > 0 && (size_t)k < n ? 0 : -1;
}
