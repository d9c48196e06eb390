/* The chaos workload as a girderd module: links, monitors, remote children and message streams
 * toward every other node, each operation and observation one JSON line of the history. */
#include <girder/module.h>

#include <dirent.h>
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

/*
** What this module does is specified once, for it and for its Erlang twin
** (chaos_workload.erl), in docs/chaos.md ("The workload"). Both must behave alike: they meet
** on the wire (a Girder owner spawns its targets on an Erlang node and the other way round)
** and the checker reads their lines as one history. In short, on every node:
**   chaos_rx   (registered) logs every {chaos_seq, Sender, Seq} it gets ("recv");
**   nodemon    logs nodeup / nodedown;
**   sampler    logs connected nodes, descriptors, RSS and process count ("sample");
**   per peer:  a sender (one {chaos_seq, Self, Seq} every rate_ms while connected, "send")
**              and a manager that keeps link (L), monitor (M), unlink (U) and demonitor (D)
**              pairs with targets it spawns on the peer, and probes pids of the peer's earlier
**              incarnations ("stale");
**   keeper     runs a supervisor whose three children are targets on other nodes.
** A target (chaos_workload:target/3, spawned remotely by its owner) traps exits, monitors its
** owner, links to it for L, U and children, answers {chaos_ready, N, Self}, and logs what it
** sees until its owner goes.
*/

#define A(s) term_atom(s)

enum { K_LINK, K_MONITOR, K_UNLINK, K_DEMONITOR, K_CHILD, NKINDS };
static const char *const kind_names[NKINDS] = {"link", "monitor", "unlink", "demonitor", "child"};

/* ---------------------------------------------------------------- the module's state */

typedef struct wl_state {
    int fd; /* the history file, O_APPEND */
    pthread_mutex_t mu;
    uint64_t n; /* lines written by this incarnation (mu) */
    char node[256];
    uint32_t cr;
    term_t *peers; /* atoms, self excluded */
    size_t npeers;
    int64_t sample_ms, rate_ms;
    uint64_t seed;
    atomic_llong next_pair;    /* pair numbers of this incarnation */
    atomic_llong child_starts; /* rotates the nodes children go to */
    char sup_id[300];          /* the running supervisor's id (the keeper writes it) */
} wl_state;

static wl_state W = {.fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64*, one state per process that needs numbers (seeded from the node's seed). */
static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15u;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1du;
}

static int64_t rnd_between(uint64_t *s, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd(s) % (uint64_t)(hi - lo + 1));
}

/* ---------------------------------------------------------------- history lines */

/* One JSON line under construction; lines that do not fit are cut at a field boundary. */
typedef struct jline {
    char b[3072];
    size_t len;
} jline;

static void jl_raw(jline *j, const char *s, size_t n)
{
    if (j->len + n < sizeof j->b - 48) { /* room for the closing ,"n":N} */
        memcpy(j->b + j->len, s, n);
        j->len += n;
    }
}

static void jl_fmt(jline *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void jl_fmt(jline *j, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k > 0) jl_raw(j, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

/* A JSON string body: quotes, backslashes and control bytes escaped. */
static void jl_esc(jline *j, const char *s, size_t n)
{
    char tmp[1024];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof tmp - 8; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            tmp[k++] = '\\';
            tmp[k++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            k += (size_t)snprintf(tmp + k, 8, "\\u%04x", c);
        } else {
            tmp[k++] = (char)c;
        }
    }
    jl_raw(j, tmp, k);
}

static void jl_str(jline *j, const char *key, const char *v)
{
    jl_fmt(j, ",\"%s\":\"", key);
    jl_esc(j, v, strlen(v));
    jl_raw(j, "\"", 1);
}

static void jl_int(jline *j, const char *key, long long v)
{
    jl_fmt(j, ",\"%s\":%lld", key, v);
}

static void jl_bool(jline *j, const char *key, bool v)
{
    jl_fmt(j, ",\"%s\":%s", key, v ? "true" : "false");
}

static const char *atom_text(term_t a)
{
    size_t n;
    const char *s = term_is_atom(a) ? term_atom_name(a, &n) : NULL;
    return s ? s : "?";
}

/* A pid as NODE#ID.SERIAL#CREATION, the form both workloads write. */
static void pid_text(term_t pid, char *out, size_t n)
{
    term_pid_info pi;
    if (!term_is_pid(pid) || term_pid_get(pid, &pi) != 0) {
        snprintf(out, n, "?");
        return;
    }
    snprintf(out, n, "%s#%u.%u#%u", atom_text(pi.node), pi.id, pi.serial, pi.creation);
}

static void jl_pid(jline *j, const char *key, term_t pid)
{
    char t[300];
    pid_text(pid, t, sizeof t);
    jl_str(j, key, t);
}

/* A term as the text io_lib:format("~w") gives, the form both workloads write for reasons. */
static void jl_term(jline *j, const char *key, term_t t)
{
    etf_buf b = {0};
    if (term_print(t, TERM_PRINT_W, NULL, &b) == 0 && b.data) {
        jl_fmt(j, ",\"%s\":\"", key);
        jl_esc(j, (const char *)b.data, b.len);
        jl_raw(j, "\"", 1);
    } else {
        jl_str(j, key, "?");
    }
    etf_buf_free(&b);
}

static void jl_begin(jline *j, const char *kind)
{
    j->len = 0;
    jl_fmt(j, "{\"t\":%lld", (long long)now_us());
    jl_str(j, "node", W.node);
    jl_int(j, "cr", W.cr);
    jl_str(j, "kind", kind);
}

/* Numbers the line and appends it to the history with one write(2), so that lines of
** concurrent processes never interleave and a kill -9 leaves whole lines only. */
static void jl_end(jline *j)
{
    pthread_mutex_lock(&W.mu);
    j->len += (size_t)snprintf(j->b + j->len, sizeof j->b - j->len, ",\"n\":%llu}\n",
                               (unsigned long long)++W.n);
    if (W.fd >= 0) {
        ssize_t w;
        do w = write(W.fd, j->b, j->len);
        while (w < 0 && errno == EINTR);
    }
    pthread_mutex_unlock(&W.mu);
}

/* The id of an owner's pair N: OWNER_NODE/OWNER_CREATION/N; its target adds "/r". */
static void pair_id(term_t owner, long long n, bool remote, char *out, size_t len)
{
    term_pid_info pi;
    if (term_pid_get(owner, &pi) != 0) {
        snprintf(out, len, "?");
        return;
    }
    snprintf(out, len, "%s/%u/%lld%s", atom_text(pi.node), pi.creation, n, remote ? "/r" : "");
}

/* ---------------------------------------------------------------- small helpers */

static bool is_tuple_n(term_t m, size_t n, const char *tag)
{
    return term_is_tuple(m) && term_tuple_arity(m) == n &&
           term_equal(term_tuple_elem(m, 0), A(tag));
}

static bool connected(term_t node)
{
    term_t l = dist_nodes(DIST_VISIBLE);
    bool yes = false;
    for (term_t p = l; term_is_cons(p); p = term_tl(p))
        if (term_hd(p) == node) yes = true;
    term_free(l);
    return yes;
}

static uint32_t pid_creation(term_t pid)
{
    term_pid_info pi;
    return term_pid_get(pid, &pi) == 0 ? pi.creation : 0;
}

/* Number of open descriptors of this process (entries of /proc/self/fd, its own excluded). */
static long count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1;
}

static long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    long long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lld %lld", &size, &res) != 2) res = 0;
        fclose(f);
    }
    return res * sysconf(_SC_PAGESIZE);
}

/* ---------------------------------------------------------------- targets */

/*
** chaos_workload:target(Owner, N, Kind), spawned on this node by an owner elsewhere. Monitors
** the owner; links to it for link, unlink and child; says {chaos_ready, N, Self}. Then logs
** what arrives: {chaos_exit, R} ends it with R; {chaos_unlinked, N} means the owner's unlink
** has arrived; the owner's EXIT and DOWN are logged, and once the owner is gone (both seen,
** or 5 s after the first) the target ends. An EXIT with another reason than noconnection is
** an order to go (a supervisor's shutdown): logged, and the target exits with it.
*/
static bool target_export_ok(term_t args, term_t *owner, long long *n, int *kind)
{
    if (term_list_length(args) != 3) return false;
    *owner = term_hd(args);
    term_t nn = term_hd(term_tl(args)), k = term_hd(term_tl(term_tl(args)));
    int64_t v;
    if (!term_is_pid(*owner) || term_get_int64(nn, &v) != 0 || !term_is_atom(k)) return false;
    *n = v;
    for (int i = 0; i < NKINDS; i++)
        if (term_equal(k, A(kind_names[i]))) {
            *kind = i;
            return true;
        }
    return false;
}

static _Noreturn void target_exit(const char *rid, term_t reason)
{
    jline j;
    jl_begin(&j, "texit");
    jl_str(&j, "id", rid);
    jl_pid(&j, "pid", nd_self());
    jl_term(&j, "reason", reason);
    jl_end(&j);
    nd_exit(reason);
}

static int target_export(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t owner;
    long long n;
    int kind;
    if (!target_export_ok(args, &owner, &n, &kind)) {
        *res = A("badarg");
        return DIST_ERROR;
    }
    owner = term_dup(owner);
    char rid[320];
    pair_id(owner, n, true, rid, sizeof rid);
    nd_trap_exit(true);
    term_t mref;
    jline j;
    nd_monitor(owner, &mref);
    jl_begin(&j, "monitor");
    jl_str(&j, "id", rid);
    jl_pid(&j, "a", nd_self());
    jl_pid(&j, "b", owner);
    jl_end(&j);
    bool linked = kind == K_LINK || kind == K_UNLINK || kind == K_CHILD;
    if (linked) {
        nd_link(owner);
        jl_begin(&j, "link");
        jl_str(&j, "id", rid);
        jl_pid(&j, "a", nd_self());
        jl_pid(&j, "b", owner);
        jl_end(&j);
    }
    nd_send(owner, term_tuplev(3, A("chaos_ready"), term_int(n), term_dup(nd_self())));
    bool got_exit = false, got_down = false;
    int64_t deadline = -1;
    for (;;) {
        int64_t wait = ND_INFINITY;
        if (deadline >= 0) wait = deadline > mono_ms() ? deadline - mono_ms() : 0;
        term_t m;
        if (nd_receive(wait, &m) < 0) break;
        if (is_tuple_n(m, 2, "chaos_exit")) {
            term_t r = term_dup(term_tuple_elem(m, 1));
            term_free(m);
            target_exit(rid, r);
        } else if (is_tuple_n(m, 2, "chaos_unlinked")) {
            jl_begin(&j, "unlink");
            jl_str(&j, "id", rid);
            jl_end(&j);
            linked = false;
        } else if (is_tuple_n(m, 3, "EXIT") && term_equal(term_tuple_elem(m, 1), owner)) {
            term_t r = term_tuple_elem(m, 2);
            jl_begin(&j, "exit");
            jl_str(&j, "id", rid);
            jl_pid(&j, "a", nd_self());
            jl_pid(&j, "b", owner);
            jl_term(&j, "reason", r);
            jl_end(&j);
            got_exit = true;
            linked = false;
            if (!term_equal(r, A("noconnection"))) {
                r = term_dup(r);
                term_free(m);
                target_exit(rid, r);
            }
            if (got_down) {
                term_free(m);
                break;
            }
            deadline = mono_ms() + 5000;
        } else if (is_tuple_n(m, 5, "DOWN") && term_equal(term_tuple_elem(m, 1), mref)) {
            jl_begin(&j, "down");
            jl_str(&j, "id", rid);
            jl_pid(&j, "a", nd_self());
            jl_pid(&j, "b", owner);
            jl_term(&j, "reason", term_tuple_elem(m, 4));
            jl_end(&j);
            got_down = true;
            if (!linked || got_exit) {
                term_free(m);
                break;
            }
            deadline = mono_ms() + 5000;
        }
        term_free(m);
    }
    term_free(mref);
    term_free(owner);
    target_exit(rid, A("normal"));
}

/* ---------------------------------------------------------------- spawning a target */

typedef struct spawn_wait {
    term_t ref;
    long long n;
} spawn_wait;

static bool is_spawn_reply(term_t m, void *ud)
{
    return is_tuple_n(m, 4, "spawn_reply") &&
           term_equal(term_tuple_elem(m, 1), ((spawn_wait *)ud)->ref);
}

static bool is_ready(term_t m, void *ud)
{
    int64_t v;
    return is_tuple_n(m, 3, "chaos_ready") && term_get_int64(term_tuple_elem(m, 1), &v) == 0 &&
           v == ((spawn_wait *)ud)->n;
}

/* Spawns target(Self, n, kind) on node with a spawn request (no link, no monitor). */
static int spawn_target(term_t node, long long n, int kind, term_t *ref)
{
    term_t args = term_list(3, (term_t[]){term_dup(nd_self()), term_int(n), A(kind_names[kind])});
    int rc = dist_spawn_request(node, A("chaos_workload"), A("target"), args, 0, ref);
    term_free(args);
    return rc;
}

/* ---------------------------------------------------------------- the pair manager */

enum { PS_SPAWN, PS_READY, PS_OPEN, PS_RETIRING, PS_SILENT, PS_CLOSED };

typedef struct pair {
    int kind, state;
    long long n;
    char id[320];
    term_t target; /* TERM_NONE until known */
    term_t ref;    /* spawn ref in PS_SPAWN, monitor ref after */
    int64_t due;   /* mono ms: the next step (retire, unlink, demonitor) or a give-up time */
    int64_t closed_at;
} pair;

typedef struct probe {
    term_t pid, ref;
    term_t link_r, mon_r; /* TERM_NONE until seen */
    int64_t due;
} probe;

typedef struct mgr {
    term_t peer;
    uint64_t rs;
    pair *p;
    size_t np, cap;
    int64_t next_at[4]; /* per kind L, M, U, D: when the next pair may start */
    uint32_t peer_cr;   /* the peer's creation as its newest target showed it */
    term_t peer_pid;    /* a pid of that incarnation (for later stale probes) */
    probe pr;           /* pr.pid TERM_NONE: none running */
    int64_t next_connect;
} mgr;

static pair *mgr_add(mgr *g, int kind)
{
    if (g->np == g->cap) {
        size_t c = g->cap ? g->cap * 2 : 16;
        pair *p = realloc(g->p, c * sizeof *p);
        if (!p) return NULL;
        g->p = p;
        g->cap = c;
    }
    pair *p = &g->p[g->np++];
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->target = p->ref = TERM_NONE;
    p->n = atomic_fetch_add(&W.next_pair, 1) + 1;
    pair_id(nd_self(), p->n, false, p->id, sizeof p->id);
    return p;
}

static void pair_close(mgr *g, pair *p)
{
    p->state = PS_CLOSED;
    p->closed_at = mono_ms();
    if (p->kind < 4) g->next_at[p->kind] = mono_ms() + 500;
}

/* Closed and silent pairs are kept a while so that a late signal is still attributed. */
static void mgr_prune(mgr *g)
{
    int64_t now = mono_ms();
    size_t k = 0;
    for (size_t i = 0; i < g->np; i++) {
        pair *p = &g->p[i];
        if ((p->state == PS_CLOSED || p->state == PS_SILENT) && now - p->closed_at > 120000) {
            term_free(p->target);
            term_free(p->ref);
            continue;
        }
        g->p[k++] = *p;
    }
    g->np = k;
}

static void log_pair(const char *kind, const pair *p, term_t target)
{
    jline j;
    jl_begin(&j, kind);
    jl_str(&j, "id", p->id);
    jl_pid(&j, "a", nd_self());
    jl_pid(&j, "b", target);
    jl_end(&j);
}

static void log_signal(const char *kind, const char *id, term_t from, term_t reason)
{
    jline j;
    jl_begin(&j, kind);
    if (id)
        jl_str(&j, "id", id);
    else
        jl_raw(&j, ",\"id\":null", 10);
    jl_pid(&j, "a", nd_self());
    jl_pid(&j, "b", from);
    jl_term(&j, "reason", reason);
    jl_end(&j);
}

static void start_probe(mgr *g, term_t old)
{
    g->pr.pid = term_dup(old);
    g->pr.link_r = g->pr.mon_r = TERM_NONE;
    g->pr.due = mono_ms() + 5000;
    nd_link(old);
    nd_monitor(old, &g->pr.ref);
}

static void probe_finish(mgr *g)
{
    jline j;
    jl_begin(&j, "stale");
    jl_pid(&j, "pid", g->pr.pid);
    if (g->pr.link_r != TERM_NONE)
        jl_term(&j, "link", g->pr.link_r);
    else
        jl_str(&j, "link", "timeout");
    if (g->pr.mon_r != TERM_NONE)
        jl_term(&j, "monitor", g->pr.mon_r);
    else
        jl_str(&j, "monitor", "timeout");
    jl_end(&j);
    if (g->pr.mon_r == TERM_NONE) nd_demonitor(g->pr.ref, ND_DEMONITOR_FLUSH);
    if (g->pr.link_r == TERM_NONE) nd_unlink(g->pr.pid);
    term_free(g->pr.pid);
    term_free(g->pr.ref);
    term_free(g->pr.link_r);
    term_free(g->pr.mon_r);
    g->pr.pid = TERM_NONE;
}

/* A target said it is ready: the pair opens (link and monitor pairs as the kind says). A pid of
** a new incarnation of the peer starts a probe of the previous one's pid. */
static void on_ready(mgr *g, pair *p, term_t t)
{
    uint32_t cr = pid_creation(t);
    if (g->peer_cr && cr != g->peer_cr && g->peer_pid != TERM_NONE && g->pr.pid == TERM_NONE)
        start_probe(g, g->peer_pid);
    if (cr != g->peer_cr || g->peer_pid == TERM_NONE) {
        term_free(g->peer_pid);
        g->peer_pid = term_dup(t);
        g->peer_cr = cr;
    }
    p->target = term_dup(t);
    term_free(p->ref);
    p->ref = TERM_NONE;
    p->state = PS_OPEN;
    switch (p->kind) {
    case K_LINK:
    case K_UNLINK:
        log_pair("link", p, t);
        p->due = mono_ms() + (p->kind == K_LINK ? rnd_between(&g->rs, 3000, 8000)
                                                : rnd_between(&g->rs, 500, 2000));
        break;
    case K_MONITOR:
    case K_DEMONITOR:
        nd_monitor(t, &p->ref);
        log_pair("monitor", p, t);
        p->due = mono_ms() + (p->kind == K_MONITOR ? rnd_between(&g->rs, 3000, 8000)
                                                   : rnd_between(&g->rs, 500, 2000));
        break;
    }
}

static bool is_exit_from(term_t m, void *ud)
{
    return is_tuple_n(m, 3, "EXIT") && term_equal(term_tuple_elem(m, 1), *(term_t *)ud);
}

/* The timed step of an open pair: retire (L, M), unlink (U), demonitor (D). */
static void pair_step(mgr *g, pair *p)
{
    jline j;
    if (p->state == PS_OPEN && (p->kind == K_LINK || p->kind == K_MONITOR)) {
        term_t r = term_tuplev(2, A("retired"), term_int(p->n));
        jl_begin(&j, "retire");
        jl_str(&j, "id", p->id);
        jl_term(&j, "reason", r);
        jl_end(&j);
        nd_send(p->target, term_tuplev(2, A("chaos_exit"), r));
        p->state = PS_RETIRING;
        p->due = mono_ms() + 15000;
    } else if (p->state == PS_OPEN && p->kind == K_UNLINK) {
        nd_unlink(p->target);
        term_t m;
        /* an EXIT queued before the unlink is still ours to see, and is logged before it */
        if (nd_receive_if(is_exit_from, &p->target, 0, &m) >= 0) {
            log_signal("exit", p->id, p->target, term_tuple_elem(m, 2));
            term_free(m);
        }
        jl_begin(&j, "unlink");
        jl_str(&j, "id", p->id);
        jl_end(&j);
        nd_send(p->target, term_tuplev(2, A("chaos_unlinked"), term_int(p->n)));
        nd_send(p->target,
                term_tuplev(2, A("chaos_exit"), term_tuplev(2, A("bye"), term_int(p->n))));
        p->state = PS_SILENT;
        p->closed_at = mono_ms();
        g->next_at[p->kind] = mono_ms() + 500;
    } else if (p->state == PS_OPEN && p->kind == K_DEMONITOR) {
        bool active = nd_demonitor(p->ref, 0) == 0;
        jl_begin(&j, "demonitor");
        jl_str(&j, "id", p->id);
        jl_bool(&j, "active", active);
        jl_end(&j);
        nd_send(p->target,
                term_tuplev(2, A("chaos_exit"), term_tuplev(2, A("bye"), term_int(p->n))));
        p->state = PS_SILENT;
        p->closed_at = mono_ms();
        g->next_at[p->kind] = mono_ms() + 500;
    } else if (p->state == PS_SPAWN || p->state == PS_READY) {
        /* no answer in time: forget it (a target that answers later is told to go) */
        pair_close(g, p);
    } else if (p->state == PS_RETIRING) {
        pair_close(g, p); /* the checker judges the missing signal */
    }
}

/* A short-lived process that asks for a connection to the peer (an atom) and ends. */
static void connector_body(void *arg)
{
    dist_connect((term_t)(uintptr_t)arg, 3000);
}

static void mgr_tick(mgr *g)
{
    int64_t now = mono_ms();
    for (size_t i = 0; i < g->np; i++) {
        pair *p = &g->p[i];
        if (p->state != PS_CLOSED && p->state != PS_SILENT && p->due && now >= p->due)
            pair_step(g, p);
    }
    if (g->pr.pid != TERM_NONE && now >= g->pr.due) probe_finish(g);
    if (!connected(g->peer)) {
        if (now >= g->next_connect) {
            /* connecting can take seconds (a peer cut off answers nothing); meanwhile this
            ** process must go on logging the signals it gets, at the time they come */
            g->next_connect = now + 1000;
            nd_spawn_opts o = {0};
            term_t pid = TERM_NONE;
            if (nd_spawn(connector_body, (void *)(uintptr_t)g->peer, &o, &pid) == 0) term_free(pid);
        }
        return;
    }
    for (int k = 0; k < 4; k++) {
        if (now < g->next_at[k]) continue;
        bool busy = false;
        for (size_t i = 0; i < g->np; i++)
            if (g->p[i].kind == k && g->p[i].state != PS_CLOSED && g->p[i].state != PS_SILENT)
                busy = true;
        if (busy) continue;
        pair *p = mgr_add(g, k);
        if (!p) continue;
        if (spawn_target(g->peer, p->n, k, &p->ref) != 0) {
            pair_close(g, p);
            continue;
        }
        p->state = PS_SPAWN;
        p->due = now + 5000;
    }
    mgr_prune(g);
}

static pair *by_target(mgr *g, term_t pid)
{
    for (size_t i = g->np; i-- > 0;)
        if (g->p[i].target != TERM_NONE && term_equal(g->p[i].target, pid)) return &g->p[i];
    return NULL;
}

static pair *by_ref(mgr *g, term_t ref)
{
    for (size_t i = g->np; i-- > 0;)
        if (g->p[i].ref != TERM_NONE && term_equal(g->p[i].ref, ref)) return &g->p[i];
    return NULL;
}

static pair *by_n(mgr *g, long long n)
{
    for (size_t i = g->np; i-- > 0;)
        if (g->p[i].n == n) return &g->p[i];
    return NULL;
}

/* Returns false when the manager must end (its parent went). */
static bool mgr_handle(mgr *g, term_t m, term_t parent)
{
    if (is_tuple_n(m, 4, "spawn_reply")) {
        pair *p = by_ref(g, term_tuple_elem(m, 1));
        if (!p || p->state != PS_SPAWN) return true;
        if (term_tuple_elem(m, 2) == TERM_ATOM_OK) {
            p->state = PS_READY;
            p->target = term_dup(term_tuple_elem(m, 3));
            p->due = mono_ms() + 5000;
        } else {
            pair_close(g, p);
        }
        return true;
    }
    if (is_tuple_n(m, 3, "chaos_ready")) {
        int64_t n;
        term_t t = term_tuple_elem(m, 2);
        pair *p = term_get_int64(term_tuple_elem(m, 1), &n) == 0 ? by_n(g, n) : NULL;
        if (p && p->state == PS_READY && term_equal(p->target, t))
            on_ready(g, p, t);
        else if (term_is_pid(t)) { /* too late: not wanted any more (and maybe linked) */
            nd_unlink(t);
            nd_send(t, term_tuplev(2, A("chaos_exit"), A("abandoned")));
        }
        return true;
    }
    if (is_tuple_n(m, 3, "EXIT")) {
        term_t from = term_tuple_elem(m, 1), r = term_tuple_elem(m, 2);
        if (term_equal(from, parent)) return false;
        if (g->pr.pid != TERM_NONE && term_equal(from, g->pr.pid)) {
            if (g->pr.link_r == TERM_NONE) g->pr.link_r = term_dup(r);
            if (g->pr.mon_r != TERM_NONE) probe_finish(g);
            return true;
        }
        pair *p = by_target(g, from);
        log_signal("exit", p ? p->id : NULL, from, r);
        if (p && p->state != PS_SILENT && p->state != PS_CLOSED &&
            (p->kind == K_LINK || p->kind == K_UNLINK))
            pair_close(g, p);
        return true;
    }
    if (is_tuple_n(m, 5, "DOWN")) {
        term_t ref = term_tuple_elem(m, 1), r = term_tuple_elem(m, 4);
        if (g->pr.pid != TERM_NONE && term_equal(ref, g->pr.ref)) {
            if (g->pr.mon_r == TERM_NONE) g->pr.mon_r = term_dup(r);
            if (g->pr.link_r != TERM_NONE) probe_finish(g);
            return true;
        }
        pair *p = by_ref(g, ref);
        log_signal("down", p ? p->id : NULL, term_tuple_elem(m, 3), r);
        if (p && p->state != PS_SILENT && p->state != PS_CLOSED &&
            (p->kind == K_MONITOR || p->kind == K_DEMONITOR))
            pair_close(g, p);
        return true;
    }
    return true;
}

typedef struct peer_arg {
    term_t peer, parent;
    uint64_t seed;
} peer_arg;

static void mgr_body(void *arg)
{
    peer_arg *pa = arg;
    mgr g;
    memset(&g, 0, sizeof g);
    g.peer = pa->peer;
    g.rs = pa->seed;
    g.peer_pid = g.pr.pid = TERM_NONE;
    term_t parent = pa->parent;
    free(pa);
    nd_trap_exit(true);
    int64_t next_tick = mono_ms();
    for (;;) {
        int64_t now = mono_ms();
        if (now >= next_tick) {
            mgr_tick(&g);
            next_tick = now + 250;
        }
        term_t m;
        if (nd_receive(next_tick - mono_ms() > 0 ? next_tick - mono_ms() : 0, &m) < 0) continue;
        bool go_on = mgr_handle(&g, m, parent);
        if (!go_on) {
            term_t r = term_dup(term_tuple_elem(m, 2));
            term_free(m);
            nd_exit(r);
        }
        term_free(m);
    }
}

/* ---------------------------------------------------------------- streams */

static void sender_body(void *arg)
{
    peer_arg *pa = arg;
    term_t peer = pa->peer;
    free(pa);
    term_t to = term_tuplev(2, A("chaos_rx"), peer);
    long long seq = 0;
    int64_t next = mono_ms();
    for (;;) {
        next += W.rate_ms;
        int64_t d = next - mono_ms();
        if (d > 0)
            nd_sleep(d);
        else
            next = mono_ms();
        if (!connected(peer)) continue;
        seq++;
        nd_send(to, term_tuplev(3, A("chaos_seq"), term_dup(nd_self()), term_int(seq)));
        jline j;
        jl_begin(&j, "send");
        jl_pid(&j, "s", nd_self());
        jl_str(&j, "to", atom_text(peer));
        jl_int(&j, "seq", seq);
        jl_end(&j);
    }
}

static void rx_body(void *arg)
{
    (void)arg;
    for (;;) {
        term_t m;
        if (nd_receive(ND_INFINITY, &m) < 0) continue;
        int64_t seq;
        if (is_tuple_n(m, 3, "chaos_seq") && term_is_pid(term_tuple_elem(m, 1)) &&
            term_get_int64(term_tuple_elem(m, 2), &seq) == 0) {
            jline j;
            jl_begin(&j, "recv");
            jl_pid(&j, "s", term_tuple_elem(m, 1));
            jl_int(&j, "seq", seq);
            jl_end(&j);
        }
        term_free(m);
    }
}

/* ---------------------------------------------------------------- node events and samples */

static void nodemon_body(void *arg)
{
    (void)arg;
    dist_monitor_nodes(true);
    for (;;) {
        term_t m;
        if (nd_receive(ND_INFINITY, &m) < 0) continue;
        if (is_tuple_n(m, 2, "nodeup") || is_tuple_n(m, 2, "nodedown")) {
            jline j;
            jl_begin(&j, atom_text(term_tuple_elem(m, 0)));
            jl_str(&j, "peer", atom_text(term_tuple_elem(m, 1)));
            jl_end(&j);
        }
        term_free(m);
    }
}

static void sampler_body(void *arg)
{
    (void)arg;
    for (;;) {
        jline j;
        jl_begin(&j, "sample");
        term_t l = dist_nodes(DIST_VISIBLE);
        jl_raw(&j, ",\"nodes\":[", 10);
        bool first = true;
        for (term_t p = l; term_is_cons(p); p = term_tl(p)) {
            const char *s = atom_text(term_hd(p));
            jl_raw(&j, first ? "\"" : ",\"", first ? 1 : 2);
            jl_esc(&j, s, strlen(s));
            jl_raw(&j, "\"", 1);
            first = false;
        }
        jl_raw(&j, "]", 1);
        term_free(l);
        jl_int(&j, "fds", count_fds());
        jl_int(&j, "rss", rss_bytes());
        jl_int(&j, "procs", (long long)nd_process_count());
        jl_end(&j);
        nd_sleep(W.sample_ms);
    }
}

/* ---------------------------------------------------------------- the remote supervisor */

/*
** A child of the remote supervisor: a target on another node (kind child), linked to the
** supervisor by the target itself. The node is the first connected one in the rotation of the
** peers for this child and this start; without any connected peer the start waits (up to
** 30 s), so that a node cut off from the others does not burn its supervisor's intensity.
*/
static int child_start(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    (void)extra;
    long idx = (long)(intptr_t)arg;
    int64_t give_up = mono_ms() + 30000;
    term_t node = TERM_NONE;
    while (node == TERM_NONE) {
        long long k = atomic_fetch_add(&W.child_starts, 1);
        for (size_t i = 0; i < W.npeers && node == TERM_NONE; i++) {
            term_t p = W.peers[(size_t)(idx + k + (long long)i) % W.npeers];
            if (connected(p)) node = p;
        }
        if (node != TERM_NONE) break;
        if (mono_ms() >= give_up) {
            *reason = A("no_peer");
            return ND_ESTART;
        }
        nd_sleep(200);
    }
    spawn_wait sw = {TERM_NONE, atomic_fetch_add(&W.next_pair, 1) + 1};
    term_t m;
    if (spawn_target(node, sw.n, K_CHILD, &sw.ref) != 0) {
        *reason = A("spawn_failed");
        return ND_ESTART;
    }
    int rc = nd_receive_if(is_spawn_reply, &sw, 10000, &m);
    term_free(sw.ref);
    if (rc < 0 || term_tuple_elem(m, 2) != TERM_ATOM_OK) {
        *reason = rc < 0 ? A("timeout") : term_dup(term_tuple_elem(m, 3));
        if (rc >= 0) term_free(m);
        return ND_ESTART;
    }
    term_t t = term_dup(term_tuple_elem(m, 3));
    term_free(m);
    if (nd_receive_if(is_ready, &sw, 10000, &m) < 0) {
        nd_exit_signal(t, A("kill"));
        term_free(t);
        *reason = A("timeout");
        return ND_ESTART;
    }
    term_free(m);
    char id[320], cid[32];
    pair_id(nd_self(), sw.n, false, id, sizeof id);
    snprintf(cid, sizeof cid, "c%ld", idx + 1);
    jline j;
    jl_begin(&j, "child_start");
    jl_str(&j, "sup", W.sup_id);
    jl_str(&j, "child", cid);
    jl_str(&j, "id", id);
    jl_pid(&j, "pid", t);
    jl_str(&j, "on", atom_text(node));
    jl_end(&j);
    *pid = t;
    return 0;
}

#define SUP_INTENSITY 10
#define SUP_PERIOD_MS 10000

static const nd_child_spec sup_children[] = {
    {TERM_NONE, child_start, (void *)0, ND_PERMANENT, 2000, ND_WORKER},
    {TERM_NONE, child_start, (void *)1, ND_PERMANENT, 2000, ND_WORKER},
    {TERM_NONE, child_start, (void *)2, ND_PERMANENT, 2000, ND_WORKER},
};

/* Keeps one remote supervisor running: logs sup_start and sup_exit, starts a new one 2 s after
** the last one gave up. */
static void keeper_body(void *arg)
{
    term_t parent = (term_t)(uintptr_t)arg;
    nd_trap_exit(true);
    nd_child_spec kids[3];
    memcpy(kids, sup_children, sizeof kids);
    kids[0].id = A("c1");
    kids[1].id = A("c2");
    kids[2].id = A("c3");
    long long k = 0;
    for (;;) {
        if (W.npeers == 0) { /* a node alone: nothing to supervise; wait for the end */
            term_t m;
            if (nd_receive(ND_INFINITY, &m) < 0) continue;
            if (is_tuple_n(m, 3, "EXIT") && term_equal(term_tuple_elem(m, 1), parent)) {
                term_t r = term_dup(term_tuple_elem(m, 2));
                term_free(m);
                nd_exit(r);
            }
            term_free(m);
            continue;
        }
        snprintf(W.sup_id, sizeof W.sup_id, "%s/%u/s%lld", W.node, W.cr, ++k);
        jline j;
        jl_begin(&j, "sup_start");
        jl_str(&j, "sup", W.sup_id);
        jl_int(&j, "intensity", SUP_INTENSITY);
        jl_int(&j, "period_ms", SUP_PERIOD_MS);
        jl_end(&j);
        nd_sup_flags fl = {ND_ONE_FOR_ONE, SUP_INTENSITY, SUP_PERIOD_MS};
        nd_server_opts so = {TERM_NONE, true, false, 120000};
        term_t sup = TERM_NONE, why = TERM_NONE;
        if (nd_supervisor_start(&fl, kids, 3, &so, &sup, &why) != 0) {
            jl_begin(&j, "sup_exit");
            jl_str(&j, "sup", W.sup_id);
            jl_term(&j, "reason", why != TERM_NONE ? why : A("start_failed"));
            jl_end(&j);
            term_free(why);
            nd_sleep(2000);
            continue;
        }
        for (;;) {
            term_t m;
            if (nd_receive(ND_INFINITY, &m) < 0) continue;
            if (!is_tuple_n(m, 3, "EXIT")) {
                term_free(m);
                continue;
            }
            term_t from = term_tuple_elem(m, 1);
            if (term_equal(from, parent)) {
                term_t r = term_dup(term_tuple_elem(m, 2));
                term_free(m);
                nd_exit(r);
            }
            if (term_equal(from, sup)) {
                jl_begin(&j, "sup_exit");
                jl_str(&j, "sup", W.sup_id);
                jl_term(&j, "reason", term_tuple_elem(m, 2));
                jl_end(&j);
                term_free(m);
                break;
            }
            term_free(m);
        }
        term_free(sup);
        nd_sleep(2000);
    }
}

/* ---------------------------------------------------------------- main */

typedef struct part {
    const char *what;
    nd_entry_fn fn;
    term_t peer; /* TERM_NONE: not per peer */
    term_t pid;
} part;

static term_t start_part(part *pt, term_t self, uint64_t seed)
{
    nd_spawn_opts o = {0};
    o.link = true;
    if (pt->fn == rx_body) o.name = A("chaos_rx");
    void *arg = NULL;
    if (pt->fn == mgr_body || pt->fn == sender_body) {
        peer_arg *pa = malloc(sizeof *pa);
        if (!pa) return TERM_NONE;
        pa->peer = pt->peer;
        pa->parent = self;
        pa->seed = seed;
        arg = pa;
    } else if (pt->fn == keeper_body) {
        arg = (void *)(uintptr_t)self;
    }
    term_t pid = TERM_NONE;
    if (nd_spawn(pt->fn, arg, &o, &pid) != 0) return TERM_NONE;
    return pid;
}

/* The workload's root: starts every part linked to itself and restarts a part that crashed
** (logging "crash", which the checker counts as a violation); ends with its parent. */
static void main_body(void *arg)
{
    term_t parent = (term_t)(uintptr_t)arg;
    nd_trap_exit(true);
    jline j;
    jl_begin(&j, "start");
    jl_str(&j, "impl", "girder");
    jl_int(&j, "os_pid", getpid());
    jl_int(&j, "sample_ms", W.sample_ms);
    jl_int(&j, "rate_ms", W.rate_ms);
    jl_end(&j);
    size_t np = 4 + 2 * W.npeers, k = 0;
    part *parts = calloc(np, sizeof *parts);
    if (!parts) nd_exit(A("enomem"));
    parts[k++] = (part){"rx", rx_body, TERM_NONE, TERM_NONE};
    parts[k++] = (part){"nodemon", nodemon_body, TERM_NONE, TERM_NONE};
    parts[k++] = (part){"sampler", sampler_body, TERM_NONE, TERM_NONE};
    for (size_t i = 0; i < W.npeers; i++) {
        parts[k++] = (part){"mgr", mgr_body, W.peers[i], TERM_NONE};
        parts[k++] = (part){"sender", sender_body, W.peers[i], TERM_NONE};
    }
    parts[k++] = (part){"keeper", keeper_body, TERM_NONE, TERM_NONE};
    uint64_t rs = W.seed ^ (uint64_t)W.cr;
    for (size_t i = 0; i < np; i++) parts[i].pid = start_part(&parts[i], nd_self(), rnd(&rs));
    for (;;) {
        term_t m;
        if (nd_receive(ND_INFINITY, &m) < 0) continue;
        if (!is_tuple_n(m, 3, "EXIT")) {
            term_free(m);
            continue;
        }
        term_t from = term_tuple_elem(m, 1), r = term_tuple_elem(m, 2);
        if (term_equal(from, parent)) {
            r = term_dup(r);
            term_free(m);
            nd_exit(r);
        }
        for (size_t i = 0; i < np; i++) {
            if (parts[i].pid == TERM_NONE || !term_equal(parts[i].pid, from)) continue;
            jl_begin(&j, "crash");
            jl_str(&j, "what", parts[i].what);
            if (parts[i].peer != TERM_NONE) jl_str(&j, "peer", atom_text(parts[i].peer));
            jl_term(&j, "reason", r);
            jl_end(&j);
            term_free(parts[i].pid);
            nd_sleep(500);
            parts[i].pid = start_part(&parts[i], nd_self(), rnd(&rs));
        }
        term_free(m);
    }
}

static int main_start(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    (void)arg;
    (void)extra;
    (void)reason;
    nd_spawn_opts o = {0};
    o.link = true;
    o.name = A("chaos_workload");
    /* the supervisor calls this: nd_self() is the parent whose exit ends the workload */
    return nd_spawn(main_body, (void *)(uintptr_t)term_dup(nd_self()), &o, pid);
}

/* ---------------------------------------------------------------- loading */

static long long env_int(const char *name, long long def, long long lo, long long hi)
{
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    return (*end || errno || x < lo || x > hi) ? -1 : x;
}

/* Reads CHAOS_HISTORY, CHAOS_PEERS, CHAOS_SAMPLE_MS, CHAOS_RATE_MS and CHAOS_SEED, opens the
** history; refuses the module (with the reason) when one is missing or wrong. */
static int wl_load(const girder_host *host, char *err, size_t errlen)
{
    const char *hist = getenv("CHAOS_HISTORY"), *peers = getenv("CHAOS_PEERS");
    if (!hist || !*hist || !peers) {
        snprintf(err, errlen, "CHAOS_HISTORY and CHAOS_PEERS must be set (docs/chaos.md)");
        return -1;
    }
    W.sample_ms = env_int("CHAOS_SAMPLE_MS", 500, 50, 60000);
    W.rate_ms = env_int("CHAOS_RATE_MS", 100, 5, 60000);
    long long seed = env_int("CHAOS_SEED", 1, 0, INT64_MAX);
    if (W.sample_ms < 0 || W.rate_ms < 0 || seed < 0) {
        snprintf(err, errlen,
                 "CHAOS_SAMPLE_MS, CHAOS_RATE_MS or CHAOS_SEED is not a number in "
                 "range");
        return -1;
    }
    W.seed = (uint64_t)seed;
    snprintf(W.node, sizeof W.node, "%s", host->node);
    W.cr = nd_creation(); /* distribution is up before modules load */
    W.fd = open(hist, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (W.fd < 0) {
        snprintf(err, errlen, "%s: %s", hist, strerror(errno));
        return -1;
    }
    char *copy = strdup(peers);
    if (!copy) return -1;
    size_t cap = 1;
    for (const char *p = peers; *p; p++) cap += *p == ',';
    W.peers = calloc(cap, sizeof *W.peers);
    if (!W.peers) {
        free(copy);
        return -1;
    }
    char *save = NULL;
    for (char *tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
        if (!strcmp(tok, host->node)) continue;
        term_t a = term_atom(tok);
        if (a == TERM_NONE) continue;
        W.peers[W.npeers++] = a;
    }
    free(copy);
    return 0;
}

static const girder_export exports[] = {{"target", 3, target_export, NULL}};
static const girder_child children[] = {
    {"main", main_start, NULL, ND_PERMANENT, 2000, ND_WORKER},
};
/* A crashed main is restarted at most once a minute: a second crash stops the app. */
static const girder_app app = {ND_ONE_FOR_ONE, 1, 60000, children, GIRDER_COUNT(children), NULL};

GIRDER_MODULE(.name = "chaos_workload", .version = "1.0.0", .exports = exports,
              .nexports = GIRDER_COUNT(exports), .app = &app, .load = wl_load);
