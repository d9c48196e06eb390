/* The CLI's own node: a hidden, unregistered distribution node; connect diagnosis; erpc calls. */
#include "session.h"

#include "clusterdir.h"

#include <arpa/inet.h>
#include <errno.h>
#include <girder/epmd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define A(s) term_atom(s)

/* What the log callback saw about failed connections: the last reason per node. */
#define MAX_FAILS 32
/* Creations learnt from pids, so that <0.X.Y> means a pid of that node. */
#define MAX_CREATIONS 64

static struct {
    char self_name[300];
    term_t self;
    uint64_t deadline_ns;
    int64_t timeout_ms;
    uint16_t epmd_port;
    bool verbose;
    bool down;  /* cli_dist_down() ran */
    bool stuck; /* ... and the runtime did not stop: it cannot be freed */
    cli_cookie cookie;
    FILE *io;
    pthread_mutex_t mu; /* guards fails (written by dist's I/O thread) */
    struct {
        char node[256];
        char why[600];
    } fails[MAX_FAILS];
    size_t nfails;
    struct {
        term_t node;
        uint32_t creation;
    } creations[MAX_CREATIONS];
    size_t ncreations;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void cli_set_deadline_ms(int64_t ms)
{
    S.deadline_ns = now_ns() + (uint64_t)(ms > 0 ? ms : 0) * 1000000u;
}

int64_t cli_remaining_ms(void)
{
    uint64_t now = now_ns();
    return now >= S.deadline_ns ? 0 : (int64_t)((S.deadline_ns - now) / 1000000u);
}

term_t cli_self_node(void)
{
    return S.self;
}

uint16_t cli_epmd_port(void)
{
    return S.epmd_port;
}

void cli_set_io_stream(FILE *f)
{
    S.io = f;
}

/* ================================================================ names and cookie */

const char *cli_short_host(void)
{
    static char host[256];
    if (!host[0]) {
        if (gethostname(host, sizeof host - 1) != 0 || !host[0])
            snprintf(host, sizeof host, "localhost");
        host[strcspn(host, ".")] = 0;
    }
    return host;
}

/* The host part this node uses with long names: the canonical name when it has a dot. */
static const char *long_host(void)
{
    static char host[256];
    if (host[0]) return host;
    char h[256];
    if (gethostname(h, sizeof h - 1) != 0) h[0] = 0;
    h[sizeof h - 1] = 0;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_flags = AI_CANONNAME;
    if (h[0] && getaddrinfo(h, NULL, &hints, &ai) == 0 && ai && ai->ai_canonname &&
        strchr(ai->ai_canonname, '.'))
        snprintf(host, sizeof host, "%s", ai->ai_canonname);
    else if (strchr(h, '.'))
        snprintf(host, sizeof host, "%s", h);
    else
        snprintf(host, sizeof host, "127.0.0.1");
    if (ai) freeaddrinfo(ai);
    return host;
}

int cli_node_name(const char *arg, char *out, size_t n)
{
    const char *at = strchr(arg, '@');
    size_t alive = at ? (size_t)(at - arg) : strlen(arg);
    bool bad = alive == 0 || (at && (!at[1] || strchr(at + 1, '@')));
    for (const char *p = arg; !bad && *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '\'' || *p == '"') bad = true;
    if (bad) {
        cli_err("'%s' is not a node name (name@host, or a bare name for name@%s)", arg,
                cli_short_host());
        return -1;
    }
    int len = at ? snprintf(out, n, "%s", arg) : snprintf(out, n, "%s@%s", arg, cli_short_host());
    if (len < 0 || (size_t)len >= n || len > 255) {
        cli_err("node name '%s' is too long (at most 255 characters)", arg);
        return -1;
    }
    return 0;
}

static bool read_first_line(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "re");
    if (!f) return false;
    bool ok = fgets(buf, (int)n, f) != NULL;
    fclose(f);
    if (ok) buf[strcspn(buf, "\r\n")] = 0;
    return ok && buf[0];
}

int cli_cookie_resolve(const cli_opts *o, char names[][256], size_t n, cli_cookie *out,
                       uint16_t *epmd_port)
{
    const char *dir = o->dir ? o->dir : CLI_DEFAULT_DIR;
    const char *env = getenv("ERL_EPMD_PORT");
    *epmd_port = epmd_default_port();
    memset(out, 0, sizeof *out);
    cl_state *st = malloc(sizeof *st);
    bool member = false;
    if (st && cl_load(dir, st) == 0) {
        for (size_t i = 0; i < n && !member; i++) member = cl_find(st, names[i]) >= 0;
        if (member && !(env && *env)) *epmd_port = st->epmd_port;
    }
    if (o->proto_dist) { /* checked by cli_check_proto */
        out->tls = !strcmp(o->proto_dist, "inet_tls");
        if (out->tls && o->ssl_optfile)
            snprintf(out->optfile, sizeof out->optfile, "%s", o->ssl_optfile);
    } else if (member && st->tls_optfile[0]) {
        out->tls = true;
        snprintf(out->optfile, sizeof out->optfile, "%s", st->tls_optfile);
    }
    free(st);
    if (o->cookie) {
        if (!o->cookie[0] || strlen(o->cookie) >= sizeof out->value) {
            cli_err("--cookie: the cookie must have 1 to 255 characters");
            return CLI_USAGE;
        }
        snprintf(out->value, sizeof out->value, "%s", o->cookie);
        snprintf(out->source, sizeof out->source, "--cookie");
        return CLI_OK;
    }
    if (member) {
        if (cl_read_cookie(dir, out->value, sizeof out->value) != 0) {
            cli_err("cannot read the cluster's cookie %s/%s", dir, CL_COOKIE_FILE);
            return CLI_USAGE;
        }
        snprintf(out->source, sizeof out->source, "%s/%s", dir, CL_COOKIE_FILE);
        return CLI_OK;
    }
    const char *home = getenv("HOME");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/.erlang.cookie", home && *home ? home : ".");
    if (!read_first_line(path, out->value, sizeof out->value)) {
        cli_err("no cookie: give --cookie C (%s cannot be read, and no node belongs to the "
                "cluster in %s)",
                path, dir);
        return CLI_USAGE;
    }
    snprintf(out->source, sizeof out->source, "%s", path);
    return CLI_OK;
}

int cli_check_proto(const cli_opts *o)
{
    const char *p = o->proto_dist;
    if (p && strcmp(p, "inet_tcp") && strcmp(p, "inet_tls")) {
        cli_err("--proto-dist %s: unknown protocol (inet_tcp or inet_tls)", p);
        return CLI_USAGE;
    }
    bool tls = p && !strcmp(p, "inet_tls");
    if (o->ssl_optfile && !tls) {
        cli_err("--ssl-dist-optfile is for TLS distribution: add --proto-dist inet_tls");
        return CLI_USAGE;
    }
    if (!tls) return CLI_OK;
    dist_config cfg = {0};
    cfg.proto_dist = p;
    cfg.ssl_dist_optfile = o->ssl_optfile;
    char err[1000];
    int rc = dist_tls_check(&cfg, err, sizeof err);
    if (rc) {
        cli_err("%s: %s", o->ssl_optfile ? "--ssl-dist-optfile" : "--proto-dist inet_tls",
                err[0] ? err : dist_strerror(rc));
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* ================================================================ the CLI's node */

/* Copies the value of key="..." (or key=word) from a dist log line. */
static bool log_field(const char *line, const char *key, char *out, size_t n)
{
    size_t kl = strlen(key);
    for (const char *p = line; (p = strstr(p, key)); p++) {
        if ((p != line && p[-1] != ' ') || p[kl] != '=') continue;
        const char *v = p + kl + 1, *end;
        if (*v == '"') {
            v++;
            end = strrchr(v, '"');
            if (!end) end = v + strlen(v);
        } else {
            end = v + strcspn(v, " ");
        }
        size_t len = (size_t)(end - v) < n - 1 ? (size_t)(end - v) : n - 1;
        memcpy(out, v, len);
        out[len] = 0;
        return true;
    }
    return false;
}

/* dist's event lines: kept per node for the diagnosis of failed connections; shown with
** --verbose. Called from any thread. */
static void on_log(void *ud, int level, const char *line)
{
    (void)ud;
    (void)level;
    if (S.verbose) fprintf(stderr, "girder: dist %s\n", line);
    bool precise = strstr(line, "event=handshake_failed") || strstr(line, "event=tls_failed");
    if (!strstr(line, "event=connect_failed") && !precise) return;
    char node[256], why[600];
    if (!log_field(line, "node", node, sizeof node) || !log_field(line, "reason", why, sizeof why))
        return;
    pthread_mutex_lock(&S.mu);
    size_t i = 0;
    while (i < S.nfails && strcmp(S.fails[i].node, node)) i++;
    if (i == S.nfails && S.nfails < MAX_FAILS) S.nfails++;
    if (i < S.nfails) {
        snprintf(S.fails[i].node, sizeof S.fails[i].node, "%s", node);
        /* the first reason of an attempt is the precise one (handshake_failed or tls_failed
        ** precedes the connect_failed line that repeats it) */
        if (precise || !S.fails[i].why[0])
            snprintf(S.fails[i].why, sizeof S.fails[i].why, "%s", why);
    }
    pthread_mutex_unlock(&S.mu);
}

static bool take_fail(const char *node, char *why, size_t n)
{
    bool found = false;
    pthread_mutex_lock(&S.mu);
    for (size_t i = 0; i < S.nfails; i++)
        if (!strcmp(S.fails[i].node, node) && S.fails[i].why[0]) {
            snprintf(why, n, "%s", S.fails[i].why);
            S.fails[i].why[0] = 0;
            found = true;
        }
    pthread_mutex_unlock(&S.mu);
    return found;
}

/* The command's process blocks in dist_connect() by design; libnode's report of such long
** slices is noise for a CLI, shown only with --verbose. */
static void on_long_schedule(term_t pid, uint64_t duration_ns, void *ud)
{
    (void)ud;
    if (!S.verbose) return;
    char *t = cli_term_text(pid, NULL);
    fprintf(stderr, "girder: long schedule of %s: %llu ms\n", t,
            (unsigned long long)(duration_ns / 1000000u));
    free(t);
}

int cli_dist_up(const cli_opts *o, bool longnames, const cli_cookie *ck, uint16_t epmd_port)
{
    S.verbose = o->verbose;
    S.timeout_ms = o->timeout_ms;
    S.epmd_port = epmd_port;
    S.cookie = *ck;
    S.io = o->json ? stderr : stdout;
    S.deadline_ns = now_ns() + (uint64_t)o->timeout_ms * 1000000u;
    uint16_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) rnd = (uint16_t)now_ns();
    snprintf(S.self_name, sizeof S.self_name, "girder_cli_%d_%04x@%s", (int)getpid(), rnd,
             longnames ? long_host() : cli_short_host());
    nd_config nc = {0};
    nc.schedulers = 2; /* the command's process blocks in dist_connect; keep one spare */
    nc.stack_size = 256 * 1024;
    nc.long_schedule = on_long_schedule;
    int rc = nd_init(&nc);
    if (rc) {
        cli_err("the runtime did not start: %s", nd_strerror(rc));
        return CLI_FAIL;
    }
    dist_config cfg = {0};
    cfg.name = S.self_name;
    cfg.longnames = longnames;
    cfg.cookie = S.cookie.value;
    cfg.hidden = true;
    cfg.no_epmd = true; /* like erl_call: nobody needs to find us */
    cfg.listen_addr = "127.0.0.1";
    cfg.epmd_port = epmd_port;
    int64_t hs = o->timeout_ms < 7000 ? o->timeout_ms : 7000;
    cfg.handshake_timeout_ms = hs > 0 ? (int)hs : 1;
    cfg.log = on_log;
    if (ck->tls) {
        cfg.proto_dist = "inet_tls";
        cfg.ssl_dist_optfile = ck->optfile[0] ? ck->optfile : NULL;
        char err[1000];
        if ((rc = dist_tls_check(&cfg, err, sizeof err)) != 0) {
            cli_err("TLS distribution: %s", err[0] ? err : dist_strerror(rc));
            nd_shutdown(1000);
            return CLI_FAIL;
        }
    }
    /* the atoms the CLI compares decoded replies with (==), interned before anything is
    ** decoded: a node that floods us with new atoms could otherwise make these arrive as foreign
    ** atoms (term.h), equal by term_equal() only */
    static const char *const vocabulary[] = {
        "DOWN",        "connected",   "erpc",           "execute_call", "exit",
        "hidden",      "io_reply",    "io_request",     "noconnection", "normal",
        "otp_release", "pong",        "process_count",  "put_chars",    "request",
        "return",      "spawn_reply", "system_version", "throw",        "undef",
        "user",        "visible",     "latin1",         "unicode",      "badrpc",
        "EXIT",        "ok",          "error",          "true",         "false"};
    for (size_t i = 0; i < sizeof vocabulary / sizeof vocabulary[0]; i++) term_atom(vocabulary[i]);
    rc = dist_start(&cfg);
    if (rc) {
        cli_err("distribution did not start: %s", dist_strerror(rc));
        nd_shutdown(1000);
        return CLI_FAIL;
    }
    S.self = nd_node();
    return CLI_OK;
}

typedef struct run_ctx {
    int (*body)(void *);
    void *arg;
    int status;
} run_ctx;

static void trampoline(void *arg)
{
    run_ctx *c = arg;
    c->status = c->body(c->arg);
}

int cli_run(int (*body)(void *), void *arg)
{
    run_ctx c = {body, arg, CLI_FAIL};
    term_t reason = TERM_NONE;
    int rc = nd_run(trampoline, &c, cli_remaining_ms() + 1500, &reason);
    if (rc == ND_ETIMEOUT) {
        /* something waited past the deadline: report and leave without a shutdown that
        ** could wait on it too */
        cli_err("timed out after %lld ms (--timeout)", (long long)S.timeout_ms);
        fflush(stdout);
        _exit(CLI_FAIL);
    }
    if (rc) {
        cli_err("the command's process did not run: %s", nd_strerror(rc));
        return CLI_FAIL;
    }
    if (reason != TERM_NONE && reason != A("normal")) {
        char *t = cli_term_text(reason, NULL);
        cli_err("internal error: the command's process exited with %s", t);
        free(t);
        term_free(reason);
        return CLI_FAIL;
    }
    term_free(reason);
    return c.status;
}

/*
** dist_stop() closes every connection (the peers see this node go) and waits, behind its gate,
** for every thread that is inside distribution; nd_shutdown() then ends the processes and frees
** the runtime. Both are bounded; if either does not finish, the runtime cannot be freed and
** cli_exit() ends the program without it.
*/
void cli_dist_down(void)
{
    fflush(stdout);
    if (S.self == TERM_NONE || S.down) return;
    S.down = true;
    int rc = dist_stop(3000);
    if (rc) {
        cli_err("the distribution layer did not stop within 3 s: %s", dist_strerror(rc));
        S.stuck = true;
        return;
    }
    if ((rc = nd_shutdown(3000)) != 0) {
        cli_err("the runtime did not stop within 3 s: %s", nd_strerror(rc));
        S.stuck = true;
    }
}

int cli_exit(int status)
{
    if (S.self != TERM_NONE && !S.down) cli_dist_down();
    if (!S.stuck) return status;
    fflush(stdout);
    fflush(stderr);
    _exit(status);
}

/* ================================================================ connecting */

/* The first IPv4 address (else any) of host, as text. */
static bool resolve(const char *host, char *ip, size_t n)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai) return false;
    struct addrinfo *pick = ai;
    for (struct addrinfo *a = ai; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    if (pick->ai_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)pick->ai_addr)->sin_addr, ip, (socklen_t)n);
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr, ip, (socklen_t)n);
    freeaddrinfo(ai);
    return true;
}

/* The names registered with the port mapper at ip, as "a, b, c" (or "no names"). 0 or the
** port mapper's error. */
static int epmd_names_text(const char *ip, char *out, size_t n)
{
    epmd_name_list nl;
    int er = epmd_names(ip, S.epmd_port, 2000, &nl);
    if (er) return er;
    size_t used = 0;
    out[0] = 0;
    for (size_t i = 0; i < nl.count; i++) {
        int w = snprintf(out + used, n - used, "%s%s", used ? ", " : "", nl.entries[i].name);
        if (w > 0 && used + (size_t)w < n) used += (size_t)w;
    }
    if (!nl.count) snprintf(out, n, "no names");
    epmd_names_free(&nl);
    return 0;
}

/*
** The one line for a failed connection. The code from dist_connect/dist_ping says what failed;
** the port mapper (asked again for the names it has, or the node's port) and the reason dist
** logged for the attempt only add detail.
*/
static void epmd_refused(char *why, size_t n, const char *ip, const char *name)
{
    snprintf(why, n,
             "cannot reach the port mapper at %s:%u for %s: connection refused (no epmd "
             "listening)",
             ip, S.epmd_port, name);
}

void cli_diagnose(term_t node, int rc, char *why, size_t n)
{
    const char *name = term_atom_name(node, NULL);
    const char *at = strchr(name, '@');
    char alive[256], host[256], ip[64] = "", reason[600] = "", port[32] = "";
    size_t al = at ? (size_t)(at - name) : 0;
    if (!at || al >= sizeof alive) {
        snprintf(why, n, "%s is not a valid node name", name);
        return;
    }
    memcpy(alive, name, al);
    alive[al] = 0;
    snprintf(host, sizeof host, "%s", at + 1);
    if (rc == EPMD_EHOSTUNREACH || !resolve(host, ip, sizeof ip)) {
        snprintf(why, n, "cannot resolve the host '%s' of %s", host, name);
        return;
    }
    if (rc == EPMD_ECONNREFUSED) {
        epmd_refused(why, n, ip, name);
        return;
    }
    if (rc == EPMD_ENOENT) {
        char names[512];
        if (epmd_names_text(ip, names, sizeof names) == 0)
            snprintf(why, n,
                     "no node named '%s' is registered with the port mapper at %s:%u (it %s%s)",
                     alive, ip, S.epmd_port, strcmp(names, "no names") ? "has: " : "has ", names);
        else
            snprintf(why, n, "no node named '%s' is registered with the port mapper at %s:%u",
                     alive, ip, S.epmd_port);
        return;
    }
    /* the dist layer logs the reason of the failed attempt: detail for the codes below */
    for (int i = 0; i < 20 && !take_fail(name, reason, sizeof reason); i++) nd_sleep(10);
    epmd_node_info info;
    if (epmd_port_please(ip, S.epmd_port, alive, 1000, &info) == 0)
        snprintf(port, sizeof port, " (port %u)", info.port);
    switch (rc) {
    case DIST_EAUTH:
        snprintf(why, n,
                 "%s%s closed the connection during the handshake: the cookie is most "
                 "likely wrong (girder used the cookie from %s)",
                 name, port, S.cookie.source);
        return;
    case DIST_ETLS:
        if (strstr(reason, "TLS handshake not finished"))
            snprintf(why, n,
                     "%s%s did not complete the TLS handshake: %s (does it run TLS "
                     "distribution, -proto_dist inet_tls?)",
                     name, port, reason);
        else
            snprintf(why, n, "TLS failure with %s%s: %s", name, port,
                     reason[0] ? reason : "the TLS handshake failed");
        return;
    case DIST_ETIMEOUT:
        /* the attempt failed at the port mapper after --timeout ran out (a slow lookup) */
        if (strstr(reason, "port mapper lookup") && strstr(reason, "connection refused")) {
            epmd_refused(why, n, ip, name);
            return;
        }
        if (reason[0])
            snprintf(why, n, "cannot connect to %s%s: %s", name, port, reason);
        else
            snprintf(why, n, "%s%s did not answer within %lld ms (--timeout)", name, port,
                     (long long)S.timeout_ms);
        return;
    case DIST_ENOCONN:
        if (!S.cookie.tls && strstr(reason, "closed by peer")) {
            /* closed before our challenge reply: not a cookie check (that comes later) */
            snprintf(
                why, n,
                "%s%s closed the connection during the handshake, before checking "
                "the cookie: it may run TLS distribution (then add --proto-dist inet_tls "
                "--ssl-dist-optfile F), or the cookie is wrong (girder used the cookie from %s)",
                name, port, S.cookie.source);
            return;
        }
        if (strstr(reason, "refused") && port[0]) {
            snprintf(why, n, "%s is registered at port %u but refuses connections (%s)", name,
                     info.port, reason);
            return;
        }
        break;
    default:
        break;
    }
    if (reason[0])
        snprintf(why, n, "cannot connect to %s%s: %s", name, port, reason);
    else
        snprintf(why, n, "cannot connect to %s%s: %s", name, port, dist_strerror(rc));
}

int cli_connect(term_t node, char *why, size_t n)
{
    int64_t left = cli_remaining_ms();
    int rc = left > 0 ? dist_connect(node, left) : DIST_ETIMEOUT;
    if (rc == 0) return CLI_OK;
    cli_diagnose(node, rc, why, n);
    return CLI_FAIL;
}

/* ================================================================ creations */

static void learn_pid(term_t pid)
{
    term_pid_info pi;
    if (term_pid_get(pid, &pi) != 0) return;
    for (size_t i = 0; i < S.ncreations; i++)
        if (S.creations[i].node == pi.node) {
            S.creations[i].creation = pi.creation; /* the newest incarnation wins */
            return;
        }
    if (S.ncreations < MAX_CREATIONS) {
        S.creations[S.ncreations].node = pi.node;
        S.creations[S.ncreations++].creation = pi.creation;
    }
}

static bool known_creation(term_t node, uint32_t *c)
{
    for (size_t i = 0; i < S.ncreations; i++)
        if (S.creations[i].node == node) {
            *c = S.creations[i].creation;
            return true;
        }
    return false;
}

term_text_ctx cli_ctx(term_t node)
{
    term_text_ctx ctx = {TERM_NONE, 0};
    uint32_t c;
    if (known_creation(node, &c)) {
        ctx.node = node;
        ctx.creation = c;
    }
    return ctx;
}

int cli_learn_creation(term_t node, char *why, size_t n)
{
    uint32_t c;
    if (known_creation(node, &c)) return CLI_OK;
    term_t v = cli_call(node, "erlang", "node", TERM_NIL, why, n);
    if (v == TERM_NONE) return CLI_FAIL;
    term_free(v);
    if (known_creation(node, &c)) return CLI_OK;
    snprintf(why, n, "could not learn the creation of %s", term_atom_name(node, NULL));
    return CLI_FAIL;
}

/* ================================================================ rpc */

void cli_rpc_init(cli_rpc *r, term_t node, const char *mod, const char *fun, term_t args)
{
    memset(r, 0, sizeof *r);
    r->node = node;
    r->mod = A(mod);
    r->fun = A(fun);
    r->args = args;
}

void cli_rpc_clear(cli_rpc *r)
{
    term_free(r->args);
    term_free(r->value);
    term_free(r->stack);
    term_free(r->res_);
    term_free(r->req_);
    memset(r, 0, sizeof *r);
}

/* Sends the spawn request of erpc:execute_call(Res, M, F, A) with a monitor. false: failed at
** once (r->out set). */
static bool rpc_start(cli_rpc *r)
{
    if (r->spawn_only) {
        if (dist_spawn_request(r->node, r->mod, r->fun, r->args, 0, &r->req_) == 0) return true;
        r->out = CLI_RPC_NOCONN;
        return false;
    }
    r->res_ = nd_make_ref();
    term_t a = term_list(4, (term_t[]){term_dup(r->res_), r->mod, r->fun, term_dup(r->args)});
    int rc = a == TERM_NONE ? DIST_ENOMEM
                            : dist_spawn_request(r->node, A("erpc"), A("execute_call"), a,
                                                 DIST_SPAWN_MONITOR, &r->req_);
    term_free(a);
    if (rc) {
        r->out = CLI_RPC_NOCONN;
        return false;
    }
    return true;
}

/* The exit reason of erpc:execute_call's process -> the call's outcome. */
static void rpc_down(cli_rpc *r, term_t reason)
{
    size_t ar = term_is_tuple(reason) ? term_tuple_arity(reason) : 0;
    if ((ar == 3 || ar == 4) && term_equal(term_tuple_elem(reason, 0), r->res_)) {
        term_t cls = term_tuple_elem(reason, 1);
        r->value = term_dup(term_tuple_elem(reason, 2));
        if (ar == 3 && cls == A("return"))
            r->out = CLI_RPC_RETURN;
        else if (ar == 3 && cls == A("throw"))
            r->out = CLI_RPC_THROW;
        else if (ar == 3 && cls == A("exit"))
            r->out = CLI_RPC_EXIT;
        else {
            r->out = CLI_RPC_ERROR; /* {Res, error, R, Stack} or erpc's {Res, error, {erpc, R}} */
            if (ar == 4) r->stack = term_dup(term_tuple_elem(reason, 3));
        }
        return;
    }
    if (reason == A("noconnection")) {
        r->out = CLI_RPC_NOCONN;
        return;
    }
    r->out = CLI_RPC_KILLED;
    r->value = term_dup(reason);
}

/* An io request whose text a node must make (io:format -> io_lib:format): evaluated by one
** more call on that node while the first waits. */
typedef struct io_job {
    cli_rpc r;
    term_t from, reply_as;
    bool latin1;
} io_job;

static void io_reply(term_t from, term_t reply_as, term_t reply)
{
    nd_send(from, term_tuplev(3, A("io_reply"), term_dup(reply_as), reply));
}

static bool io_emit(term_t chars, bool latin1)
{
    etf_buf b = {0};
    bool ok = cli_chardata(chars, latin1, &b) == 0;
    if (ok && b.len) cli_write_all(S.io ? S.io : stdout, b.data, b.len);
    etf_buf_free(&b);
    return ok;
}

/*
** {io_request, From, ReplyAs, Request}: we are the group leader of the processes our calls
** start. put_chars with text is written at once; put_chars with {M, F, A} (io:format) becomes
** an io_job; every other request is answered {error, request}.
*/
static void io_request(term_t msg, io_job **jobs, size_t *njobs)
{
    term_t from = term_tuple_elem(msg, 1), reply_as = term_tuple_elem(msg, 2);
    term_t req = term_tuple_elem(msg, 3);
    size_t ar = term_is_tuple(req) ? term_tuple_arity(req) : 0;
    if (!term_is_pid(from)) return;
    if ((ar == 3 || ar == 5) && term_tuple_elem(req, 0) == A("put_chars")) {
        bool latin1 = term_tuple_elem(req, 1) == A("latin1");
        if (ar == 3) {
            bool ok = io_emit(term_tuple_elem(req, 2), latin1);
            io_reply(from, reply_as,
                     ok ? TERM_ATOM_OK : term_tuplev(2, TERM_ATOM_ERROR, A("put_chars")));
            return;
        }
        term_t m = term_tuple_elem(req, 2), f = term_tuple_elem(req, 3),
               a = term_tuple_elem(req, 4);
        term_pid_info pi;
        io_job *nj = realloc(*jobs, (*njobs + 1) * sizeof **jobs);
        if (nj) *jobs = nj;
        if (!nj || !term_is_atom(m) || !term_is_atom(f) || term_list_length(a) < 0 ||
            term_pid_get(from, &pi) != 0) {
            io_reply(from, reply_as, term_tuplev(2, TERM_ATOM_ERROR, A("put_chars")));
            return;
        }
        io_job *j = &(*jobs)[(*njobs)++];
        memset(j, 0, sizeof *j);
        cli_rpc_init(&j->r, pi.node, term_atom_name(m, NULL), term_atom_name(f, NULL), term_dup(a));
        j->from = term_dup(from);
        j->reply_as = term_dup(reply_as);
        j->latin1 = latin1;
        if (!rpc_start(&j->r)) {
            io_reply(from, reply_as, term_tuplev(2, TERM_ATOM_ERROR, A("put_chars")));
            j->r.out = CLI_RPC_NOCONN;
        }
        return;
    }
    io_reply(from, reply_as, term_tuplev(2, TERM_ATOM_ERROR, A("request")));
}

static void io_job_done(io_job *j)
{
    bool ok = j->r.out == CLI_RPC_RETURN && io_emit(j->r.value, j->latin1);
    io_reply(j->from, j->reply_as,
             ok ? TERM_ATOM_OK : term_tuplev(2, TERM_ATOM_ERROR, A("put_chars")));
}

/* The call (user or io job) whose request reference is ref, or NULL. */
static cli_rpc *find_call(cli_rpc *rs, size_t n, io_job *jobs, size_t njobs, term_t ref,
                          io_job **job)
{
    *job = NULL;
    for (size_t i = 0; i < n; i++)
        if (rs[i].req_ != TERM_NONE && rs[i].out == CLI_RPC_PENDING && term_equal(rs[i].req_, ref))
            return &rs[i];
    for (size_t i = 0; i < njobs; i++)
        if (jobs[i].r.req_ != TERM_NONE && jobs[i].r.out == CLI_RPC_PENDING &&
            term_equal(jobs[i].r.req_, ref)) {
            *job = &jobs[i];
            return &jobs[i].r;
        }
    return NULL;
}

size_t cli_rpc_run(cli_rpc *rs, size_t n, size_t window)
{
    size_t next = 0, done = 0, inflight = 0, njobs = 0;
    io_job *jobs = NULL;
    if (window == 0) window = 1;
    while (done < n) {
        while (next < n && inflight < window) {
            if (rpc_start(&rs[next]))
                inflight++;
            else
                done++;
            next++;
        }
        if (done >= n) break;
        int64_t left = cli_remaining_ms();
        term_t msg;
        if (left <= 0 || nd_receive(left, &msg) < 0) break;
        size_t ar = term_is_tuple(msg) ? term_tuple_arity(msg) : 0;
        term_t tag = ar ? term_tuple_elem(msg, 0) : TERM_NONE;
        io_job *job;
        cli_rpc *r;
        if (ar == 4 && tag == A("spawn_reply") &&
            (r = find_call(rs, n, jobs, njobs, term_tuple_elem(msg, 1), &job))) {
            if (term_tuple_elem(msg, 2) == TERM_ATOM_OK) {
                learn_pid(term_tuple_elem(msg, 3));
                if (r->spawn_only) {
                    r->out = CLI_RPC_RETURN;
                    r->value = term_dup(term_tuple_elem(msg, 3));
                }
            } else {
                r->out = CLI_RPC_SPAWN;
                r->value = term_dup(term_tuple_elem(msg, 3));
            }
        } else if (ar == 5 && tag == A("DOWN") &&
                   (r = find_call(rs, n, jobs, njobs, term_tuple_elem(msg, 1), &job))) {
            rpc_down(r, term_tuple_elem(msg, 4));
        } else if (ar == 4 && tag == A("io_request")) {
            io_request(msg, &jobs, &njobs);
            r = NULL;
        } else {
            r = NULL;
            if (S.verbose) {
                char *t = cli_term_text(msg, NULL);
                fprintf(stderr, "girder: ignored message %s\n", t);
                free(t);
            }
        }
        if (r && r->out != CLI_RPC_PENDING) {
            if (job) {
                io_job_done(job);
            } else {
                done++;
                inflight--;
            }
        }
        term_free(msg);
    }
    size_t returned = 0;
    for (size_t i = 0; i < n; i++) {
        if (rs[i].out == CLI_RPC_PENDING) rs[i].out = CLI_RPC_TIMEOUT;
        if (rs[i].out == CLI_RPC_RETURN) returned++;
    }
    for (size_t i = 0; i < njobs; i++) {
        cli_rpc_clear(&jobs[i].r);
        term_free(jobs[i].from);
        term_free(jobs[i].reply_as);
    }
    free(jobs);
    return returned;
}

/* "m:f/a" of a stack frame {M, F, ArityOrArgs, Location}, or "" */
static void frame_text(term_t stack, char *out, size_t n)
{
    out[0] = 0;
    if (!term_is_cons(stack)) return;
    term_t fr = term_hd(stack);
    if (!term_is_tuple(fr) || term_tuple_arity(fr) < 3) return;
    term_t m = term_tuple_elem(fr, 0), f = term_tuple_elem(fr, 1), a = term_tuple_elem(fr, 2);
    if (!term_is_atom(m) || !term_is_atom(f)) return;
    long arity = term_is_small(a) ? (long)term_small_value(a) : term_list_length(a);
    char *ms = cli_term_text(m, NULL), *fs = cli_term_text(f, NULL);
    snprintf(out, n, " in %s:%s/%ld", ms, fs, arity);
    free(ms);
    free(fs);
}

void cli_rpc_describe(const cli_rpc *r, char *buf, size_t n)
{
    term_text_ctx ctx = cli_ctx(r->node);
    char *v = r->value != TERM_NONE ? cli_term_text(r->value, &ctx) : NULL;
    const char *node = term_atom_name(r->node, NULL);
    char fr[600];
    switch (r->out) {
    case CLI_RPC_RETURN:
        snprintf(buf, n, "returned %s", v);
        break;
    case CLI_RPC_THROW:
        snprintf(buf, n, "exception throw: %s", v);
        break;
    case CLI_RPC_EXIT:
        snprintf(buf, n, "exception exit: %s", v);
        break;
    case CLI_RPC_ERROR:
        frame_text(r->stack, fr, sizeof fr);
        snprintf(buf, n, "exception error: %s%s", v, fr);
        break;
    case CLI_RPC_SPAWN:
        snprintf(buf, n, "%s refused to run the call: %s", node, v);
        break;
    case CLI_RPC_KILLED:
        snprintf(buf, n, "the call's process on %s was ended by an exit signal: %s", node, v);
        break;
    case CLI_RPC_NOCONN:
        snprintf(buf, n, "the connection to %s went down during the call", node);
        break;
    case CLI_RPC_TIMEOUT:
        snprintf(buf, n, "no answer from %s within %lld ms (--timeout)", node,
                 (long long)S.timeout_ms);
        break;
    default:
        snprintf(buf, n, "no answer");
    }
    free(v);
}

term_t cli_call(term_t node, const char *mod, const char *fun, term_t args, char *why, size_t n)
{
    cli_rpc r;
    cli_rpc_init(&r, node, mod, fun, args);
    cli_rpc_run(&r, 1, 1);
    term_t v = TERM_NONE;
    if (r.out == CLI_RPC_RETURN) {
        v = r.value;
        r.value = TERM_NONE;
    } else {
        char d[1024];
        cli_rpc_describe(&r, d, sizeof d);
        snprintf(why, n, "%s:%s/%ld on %s: %s", mod, fun, term_list_length(r.args),
                 term_atom_name(node, NULL), d);
    }
    cli_rpc_clear(&r);
    return v;
}
