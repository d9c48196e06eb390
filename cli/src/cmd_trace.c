/* girder trace: a node's scheduler timeline as Perfetto JSON and a self-contained HTML page. */
#include "obs.h"
#include "session.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trace_page.h"

/*
** The capture goes through the node's control API (trace.start, trace.drain every 50 ms,
** trace.stop, then what is left; docs/control-api.md). Events are kept in memory, sorted by
** timestamp (stable), and turned into two files:
**   - Chrome's Trace Event format (JSON object form), which Perfetto opens: one process (the
**     node), one thread per scheduler plus one for the other threads; process run slices
**     (sched_in .. sched_out, "X"), flow arrows send -> receive ("s"/"f", matched by trace id:
**     a receive takes the latest send with its id before it), instants ("i") for the rest,
**     mailbox depth counters ("C") for the busiest receivers;
**   - with --html, the page of trace_page.h with the same timeline embedded as data.
*/

#define DRAIN_EVERY_MS 50
#define DRAIN_MAX      65536
#define MAX_EVENTS     (8u << 20) /* kept in memory: 8 M events (~400 MB) at most */
#define MAILBOX_TRACKS 8

/* The kinds, in nd_ev_kind order (libnode's names; docs/observability.md). */
static const char *const kind_names[] = {
    "?",           "sched_in", "sched_out", "spawn",         "exit",      "send",
    "receive",     "link",     "unlink",    "monitor",       "demonitor", "down",
    "exit_signal", "timer",    "steal",     "long_schedule", "mailbox",   "busy_dist"};
#define NKINDS (sizeof kind_names / sizeof kind_names[0])
enum {
    K_SCHED_IN = 1,
    K_SCHED_OUT,
    K_SPAWN,
    K_EXIT,
    K_SEND,
    K_RECEIVE,
    K_DOWN = 11,
    K_EXIT_SIGNAL = 12,
};

typedef struct ev {
    uint64_t ts;
    uint64_t arg, id;
    uint32_t seq;         /* arrival order, for a stable sort */
    int32_t pid, peer;    /* indexes into the string table, -1: none */
    int32_t reason, node; /* idem */
    int16_t sched;        /* -1: not a scheduler */
    uint8_t kind, info;
} ev;

/* ---------------------------------------------------------------- strings */

typedef struct strtab {
    char **s;
    size_t n, cap;
    int32_t *slots; /* open addressing: index + 1, 0 empty */
    size_t nslots;
} strtab;

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

/* The index of s[0..n) (added if new), or -1 on ENOMEM. */
static int32_t intern(strtab *t, const char *s, size_t n)
{
    if ((t->n + 1) * 2 > t->nslots) {
        size_t ns = t->nslots ? t->nslots * 2 : 1024;
        int32_t *sl = calloc(ns, sizeof *sl);
        if (!sl) return -1;
        for (size_t i = 0; i < t->n; i++) {
            size_t h = hash(t->s[i], strlen(t->s[i])) & (ns - 1);
            while (sl[h]) h = (h + 1) & (ns - 1);
            sl[h] = (int32_t)i + 1;
        }
        free(t->slots);
        t->slots = sl;
        t->nslots = ns;
    }
    size_t h = hash(s, n) & (t->nslots - 1);
    for (; t->slots[h]; h = (h + 1) & (t->nslots - 1)) {
        const char *x = t->s[t->slots[h] - 1];
        if (strlen(x) == n && !memcmp(x, s, n)) return t->slots[h] - 1;
    }
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 256;
        char **ns = realloc(t->s, nc * sizeof *ns);
        if (!ns) return -1;
        t->s = ns;
        t->cap = nc;
    }
    char *c = malloc(n + 1);
    if (!c) return -1;
    memcpy(c, s, n);
    c[n] = 0;
    t->s[t->n] = c;
    t->slots[h] = (int32_t)t->n + 1;
    return (int32_t)t->n++;
}

static void strtab_free(strtab *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->s[i]);
    free(t->s);
    free(t->slots);
}

/* A str (or nil) field of a drained event. */
static int32_t field_str(strtab *t, const msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_STR) return intern(t, o->via.str.ptr, o->via.str.size);
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)o->via.i64);
        return intern(t, b, strlen(b));
    }
    return -1;
}

/* ---------------------------------------------------------------- the capture */

typedef struct capture {
    const cli_opts *o;
    char node[256];
    cli_oc oc;
    ev *e;
    size_t n, cap;
    uint32_t seq;
    strtab str;
    unsigned schedulers;
    uint64_t recorded, dropped_full, dropped_rate;
    bool truncated;   /* MAX_EVENTS reached: later events were not kept */
    int32_t *name_of; /* per string index of a pid: its registered name's index, or -1 */
    size_t nname_of;
} capture;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pack_opts(msgpack_sbuffer *sb, const char *key, const char *val, int64_t ival)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, key ? 1 : 0);
    if (!key) return;
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, key, strlen(key));
    if (val)
        msgpack_pack_str_with_body(&pk, val, strlen(val));
    else
        msgpack_pack_int64(&pk, ival);
}

static int call(capture *c, const char *method, const char *key, const char *val, int64_t ival,
                const msgpack_object **r, char *why, size_t n)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pack_opts(&sb, key, val, ival);
    int rc = cli_oc_call(&c->oc, method, sb.data, sb.size, c->o->timeout_ms, r, why, n);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* Appends one drained answer's events. */
static int take_events(capture *c, const msgpack_object *r, size_t *got)
{
    const msgpack_object *evs = cli_mp_get(r, "events");
    *got = 0;
    if (!evs || evs->type != MSGPACK_OBJECT_ARRAY) return -1;
    for (uint32_t i = 0; i < evs->via.array.size; i++) {
        const msgpack_object *x = &evs->via.array.ptr[i];
        if (x->type != MSGPACK_OBJECT_ARRAY || x->via.array.size != 10) return -1;
        const msgpack_object *f = x->via.array.ptr;
        if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[1].type != MSGPACK_OBJECT_STR)
            return -1;
        if (c->n >= MAX_EVENTS) {
            c->truncated = true;
            continue;
        }
        if (c->n == c->cap) {
            size_t nc = c->cap ? c->cap * 2 : 65536;
            ev *ne = realloc(c->e, nc * sizeof *ne);
            if (!ne) return -1;
            c->e = ne;
            c->cap = nc;
        }
        ev *e = &c->e[c->n];
        memset(e, 0, sizeof *e);
        e->ts = f[0].via.u64;
        for (unsigned k = 1; k < NKINDS; k++)
            if (f[1].via.str.size == strlen(kind_names[k]) &&
                !memcmp(f[1].via.str.ptr, kind_names[k], f[1].via.str.size))
                e->kind = (uint8_t)k;
        if (!e->kind) continue; /* a kind newer than this CLI */
        e->sched = f[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER && f[2].via.u64 < 4096
                       ? (int16_t)f[2].via.u64
                       : -1;
        e->info = f[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (uint8_t)f[3].via.u64 : 0;
        e->pid = field_str(&c->str, &f[4]);
        e->peer = field_str(&c->str, &f[5]);
        e->arg = f[6].type == MSGPACK_OBJECT_POSITIVE_INTEGER ? f[6].via.u64 : 0;
        e->id = f[7].type == MSGPACK_OBJECT_POSITIVE_INTEGER ? f[7].via.u64 : 0;
        e->reason = field_str(&c->str, &f[8]);
        e->node = field_str(&c->str, &f[9]);
        e->seq = c->seq++;
        c->n++;
        (*got)++;
    }
    return 0;
}

/* The registered names of the node's processes now (metrics.get's top 1000), for labels. */
static void learn_names(capture *c)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "top", 3);
    msgpack_pack_int64(&pk, 1000);
    const msgpack_object *r;
    char why[600];
    int rc =
        cli_oc_call(&c->oc, "metrics.get", sb.data, sb.size, c->o->timeout_ms, &r, why, sizeof why);
    msgpack_sbuffer_destroy(&sb);
    if (rc) return;
    if (!c->schedulers) {
        const msgpack_object *s = cli_mp_get(r, "schedulers");
        if (s && s->type == MSGPACK_OBJECT_ARRAY) c->schedulers = s->via.array.size;
    }
    const msgpack_object *top = cli_mp_get(r, "top");
    for (uint32_t i = 0; top && top->type == MSGPACK_OBJECT_ARRAY && i < top->via.array.size; i++) {
        const msgpack_object *p = &top->via.array.ptr[i], *nm = cli_mp_get(p, "name");
        if (!nm || nm->type != MSGPACK_OBJECT_STR) continue;
        int32_t pi = field_str(&c->str, cli_mp_get(p, "pid")),
                ni = intern(&c->str, nm->via.str.ptr, nm->via.str.size);
        if (pi < 0 || ni < 0) continue;
        if ((size_t)pi >= c->nname_of) {
            size_t nn = (size_t)pi + 1024;
            int32_t *x = realloc(c->name_of, nn * sizeof *x);
            if (!x) return;
            for (size_t k = c->nname_of; k < nn; k++) x[k] = -1;
            c->name_of = x;
            c->nname_of = nn;
        }
        c->name_of[pi] = ni;
    }
}

static volatile sig_atomic_t interrupted;
static void on_int(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int record(capture *c, char *why, size_t n)
{
    const msgpack_object *r;
    learn_names(c);
    const char *pid = c->o->pid, *name = c->o->name;
    char quoted[600];
    if (name) { /* the name as an atom in Erlang text */
        bool plain = name[0] >= 'a' && name[0] <= 'z';
        for (const char *p = name; *p && plain; p++)
            plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '_' || *p == '@';
        if (!plain && (strchr(name, '\'') || strchr(name, '\\'))) {
            snprintf(why, n, "--name: '%s' is not a name this command can quote", name);
            return CLI_USAGE;
        }
        snprintf(quoted, sizeof quoted, plain ? "%s" : "'%s'", name);
    }
    if (call(c, "trace.start", pid || name ? "pid" : NULL,
             pid    ? pid
             : name ? quoted
                    : NULL,
             0, &r, why, n))
        return CLI_FAIL;
    uint64_t sch = cli_mp_u64(r, "schedulers");
    if (sch) c->schedulers = (unsigned)sch;
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_int;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int64_t end = mono_ms() + c->o->duration_s * 1000;
    int status = CLI_OK;
    while (mono_ms() < end && !interrupted) {
        size_t got;
        if (call(c, "trace.drain", "max", NULL, DRAIN_MAX, &r, why, n) || take_events(c, r, &got)) {
            if (!why[0]) snprintf(why, n, "trace.drain answered something unexpected");
            status = CLI_FAIL;
            break;
        }
        if (got < DRAIN_MAX) {
            struct timespec ts = {0, DRAIN_EVERY_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    char why2[600];
    if (call(c, "trace.stop", NULL, NULL, 0, &r, why2, sizeof why2) == 0) {
        const msgpack_object *cap = cli_mp_get(r, "capture");
        c->recorded = cli_mp_u64(cap, "recorded");
        c->dropped_full = cli_mp_u64(cap, "dropped_full");
        c->dropped_rate = cli_mp_u64(cap, "dropped_rate");
    } else if (status == CLI_OK) {
        snprintf(why, n, "%s", why2);
        status = CLI_FAIL;
    }
    for (size_t got = 1; status == CLI_OK && got;) { /* what is left in the rings */
        if (call(c, "trace.drain", "max", NULL, DRAIN_MAX, &r, why, n) || take_events(c, r, &got))
            status = CLI_FAIL;
    }
    learn_names(c);
    return status;
}

/* ---------------------------------------------------------------- Erlang nodes */

/*
** An Erlang node is traced by a process spawned there (erl_eval of the expression below, parsed
** on the node, with P = this CLI's process, T = all or the traced pid, Max = events kept per
** 50 ms): it sends {girder_trace_names, Me, [{Name, Pid}], Schedulers} first, then turns on
** erlang:trace(T, true, [send, 'receive', running, procs, monotonic_timestamp, scheduler_id])
** with itself as the tracer, and every 50 ms sends what it got as one batch
** {girder_trace_batch, Me, Events, Dropped, Final}, each event reduced to a small tuple
** (messages to their erlang:phash2, exit reasons to an atom or a tuple's tag). Past Max events
** in a window it counts instead of keeping. girder_stop (or this CLI's process going: a
** monitor) turns tracing off; after girder_stop it sends the last batch with Final = true.
** Erlang's trace messages carry no message ids: a receive is matched to a send to that process
** of a message with the same hash, the earliest not yet matched (Erlang delivers in order from
** one sender; two senders of equal messages may be paired crosswise, which moves an arrow's
** tail, never its head).
*/
static const char erl_tracer_src[] =
    "erlang:monitor(process, P), Me = self(),"
    "Names = [{N, erlang:whereis(N)} || N <- erlang:registered()],"
    "P ! {girder_trace_names, Me, Names, erlang:system_info(schedulers)},"
    "erlang:trace(T, true, [send, 'receive', running, procs, monotonic_timestamp, scheduler_id,"
    "  {tracer, Me}]),"
    "catch erlang:trace(Me, false, [all]),"
    "Why = fun(R) when is_atom(R) -> R;"
    "         (R) when is_tuple(R), tuple_size(R) > 0, is_atom(element(1, R)) -> element(1, R);"
    "         (_) -> '?' end,"
    "Conv = fun({trace_ts, Pid, in, _, S, Ts}) -> {in, Pid, S, Ts};"
    "          ({trace_ts, Pid, out, _, S, Ts}) -> {out, Pid, S, Ts};"
    "          ({trace_ts, Pid, 'receive', M, S, Ts}) -> {'receive', Pid, erlang:phash2(M), S, Ts};"
    "          ({trace_ts, Pid, send, M, To, S, Ts}) -> {send, Pid, erlang:phash2(M), To, S, Ts};"
    "          ({trace_ts, Pid, exit, R, S, Ts}) -> {exit, Pid, Why(R), S, Ts};"
    "          ({trace_ts, Pid, spawn, C, _, S, Ts}) -> {spawn, Pid, C, S, Ts};"
    "          ({trace_ts, Pid, link, O, S, Ts}) -> {link, Pid, O, S, Ts};"
    "          ({trace_ts, Pid, unlink, O, S, Ts}) -> {unlink, Pid, O, S, Ts};"
    "          (_) -> skip end,"
    "Rest = fun G(B, D) -> receive M2 when is_tuple(M2), element(1, M2) =:= trace_ts ->"
    "                        G([Conv(M2) | B], D) after 20 -> B end end,"
    "erlang:send_after(50, Me, girder_flush),"
    "Loop = fun L(Buf, N, D) ->"
    "  receive"
    "    {'DOWN', _, process, P, _} -> catch erlang:trace(T, false, [all]), done;"
    "    girder_stop -> catch erlang:trace(T, false, [all]),"
    "      P ! {girder_trace_batch, Me, lists:reverse(Rest(Buf, D)), D, true}, done;"
    "    girder_flush -> P ! {girder_trace_batch, Me, lists:reverse(Buf), D, false},"
    "      erlang:send_after(50, Me, girder_flush), L([], 0, 0);"
    "    M1 when is_tuple(M1), element(1, M1) =:= trace_ts, N >= Max -> L(Buf, N, D + 1);"
    "    M3 when is_tuple(M3), element(1, M3) =:= trace_ts -> L([Conv(M3) | Buf], N + 1, D)"
    "  end end,"
    "Loop([], 0, 0).";

#define ERL_MAX_PER_WINDOW 20000 /* 400,000 events a second */

typedef struct erl_rec {
    capture *c;
    term_t node;
    term_t tracer;
    int status;
    char why[1024];
} erl_rec;

static int32_t pid_str(capture *c, term_t t, const term_text_ctx *ctx)
{
    char *s = cli_term_text(t, ctx);
    int32_t i = intern(&c->str, s, strlen(s));
    free(s);
    return i;
}

static void set_name(capture *c, int32_t pid, int32_t name)
{
    if (pid < 0 || name < 0) return;
    if ((size_t)pid >= c->nname_of) {
        size_t nn = (size_t)pid + 1024;
        int32_t *x = realloc(c->name_of, nn * sizeof *x);
        if (!x) return;
        for (size_t k = c->nname_of; k < nn; k++) x[k] = -1;
        c->name_of = x;
        c->nname_of = nn;
    }
    c->name_of[pid] = name;
}

/* The pid registered as name (from the names message), or -1. */
static int32_t pid_of_name(const capture *c, int32_t name)
{
    for (size_t i = 0; i < c->nname_of; i++)
        if (c->name_of[i] == name) return (int32_t)i;
    return -1;
}

static uint64_t erl_ts(term_t t)
{
    int64_t v = 0;
    term_get_int64(t, &v);
    return (uint64_t)(v + (INT64_C(1) << 62)); /* monotonic time may be negative */
}

static unsigned erl_sched(term_t t)
{
    int64_t v = 0;
    term_get_int64(t, &v);
    return v > 0 && v < 4096 ? (unsigned)v : 0;
}

/* One converted event {Tag, Pid, ...} into c; hashes go to id until paired. */
static void erl_event(capture *c, term_t e, const term_text_ctx *ctx)
{
    if (!term_is_tuple(e) || term_tuple_arity(e) < 4 || !term_is_atom(term_tuple_elem(e, 0)))
        return;
    if (c->n >= MAX_EVENTS) {
        c->truncated = true;
        return;
    }
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 65536;
        ev *ne = realloc(c->e, nc * sizeof *ne);
        if (!ne) return;
        c->e = ne;
        c->cap = nc;
    }
    const char *tag = term_atom_name(term_tuple_elem(e, 0), NULL);
    size_t ar = term_tuple_arity(e);
    ev x = {0};
    x.pid = pid_str(c, term_tuple_elem(e, 1), ctx);
    x.peer = x.reason = x.node = -1;
    term_t sched = term_tuple_elem(e, ar - 2), ts = term_tuple_elem(e, ar - 1);
    if (!strcmp(tag, "in") && ar == 4) {
        x.kind = K_SCHED_IN;
    } else if (!strcmp(tag, "out") && ar == 4) {
        x.kind = K_SCHED_OUT;
    } else if (!strcmp(tag, "receive") && ar == 5) {
        x.kind = K_RECEIVE;
        term_get_int64(term_tuple_elem(e, 2), (int64_t *)&x.id);
    } else if (!strcmp(tag, "send") && ar == 6) {
        x.kind = K_SEND;
        term_get_int64(term_tuple_elem(e, 2), (int64_t *)&x.id);
        term_t to = term_tuple_elem(e, 3);
        if (term_is_atom(to)) { /* to a name: the receive is the registered process's */
            const char *nm = term_atom_name(to, NULL);
            int32_t ni = intern(&c->str, nm, strlen(nm));
            x.peer = pid_of_name(c, ni);
            x.reason = ni;
            x.info = 0x80;
        } else {
            x.peer = pid_str(c, to, ctx);
        }
    } else if (!strcmp(tag, "exit") && ar == 5) {
        x.kind = K_EXIT;
        x.reason = pid_str(c, term_tuple_elem(e, 2), NULL);
    } else if ((!strcmp(tag, "spawn") || !strcmp(tag, "link") || !strcmp(tag, "unlink")) &&
               ar == 5) {
        x.kind = tag[0] == 's' ? K_SPAWN : tag[0] == 'l' ? 7 : 8; /* link, unlink */
        x.peer = pid_str(c, term_tuple_elem(e, 2), ctx);
    } else {
        return;
    }
    unsigned sc = erl_sched(sched);
    x.sched = sc ? (int16_t)(sc - 1) : -1;
    x.ts = erl_ts(ts);
    x.seq = c->seq++;
    c->e[c->n++] = x;
}

typedef struct pair_key {
    int32_t who; /* the receiver */
    uint64_t hash, ts;
    uint32_t seq;
    size_t ev;
    bool send;
} pair_key;

static int pair_cmp(const void *a, const void *b)
{
    const pair_key *x = a, *y = b;
    if (x->who != y->who) return x->who < y->who ? -1 : 1;
    if (x->hash != y->hash) return x->hash < y->hash ? -1 : 1;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    if (x->send != y->send) return x->send ? -1 : 1;
    return x->seq < y->seq ? -1 : 1;
}

/* Gives each receive the id of the earliest unmatched send of an equal message to it. */
static void pair_messages(capture *c)
{
    pair_key *k = calloc(c->n + 1, sizeof *k);
    size_t n = 0;
    if (!k) return;
    for (size_t i = 0; i < c->n; i++) {
        ev *e = &c->e[i];
        if (e->kind == K_SEND && e->peer >= 0)
            k[n++] = (pair_key){e->peer, e->id, e->ts, e->seq, i, true};
        else if (e->kind == K_RECEIVE)
            k[n++] = (pair_key){e->pid, e->id, e->ts, e->seq, i, false};
        e->id = 0;
    }
    qsort(k, n, sizeof *k, pair_cmp);
    uint64_t next = 1;
    for (size_t g = 0; g < n;) {
        size_t end = g;
        while (end < n && k[end].who == k[g].who && k[end].hash == k[g].hash) end++;
        size_t head = g; /* the earliest send not yet matched, scanning sends in order */
        for (size_t i = g; i < end; i++) {
            if (k[i].send) continue;
            while (head < i && !k[head].send) head++;
            if (head < i && k[head].send) {
                uint64_t id = next++;
                c->e[k[head].ev].id = id;
                c->e[k[i].ev].id = id;
                k[head].send = false; /* used */
                head++;
            }
        }
        g = end;
    }
    free(k);
}

static bool erl_msg(term_t m, void *ud)
{
    erl_rec *r = ud;
    return term_is_tuple(m) && term_tuple_arity(m) >= 4 &&
           (term_tuple_elem(m, 0) == term_atom("girder_trace_batch") ||
            term_tuple_elem(m, 0) == term_atom("girder_trace_names")) &&
           term_equal(term_tuple_elem(m, 1), r->tracer);
}

static int erl_body(void *arg)
{
    erl_rec *r = arg;
    capture *c = r->c;
    char *why = r->why;
    size_t wn = sizeof r->why;
    if (cli_connect(r->node, why, wn) != CLI_OK) return CLI_FAIL;
    term_t mach = cli_call(r->node, "erlang", "system_info",
                           term_list(1, (term_t[]){term_atom("machine")}), why, wn);
    char *ms = mach != TERM_NONE ? cli_term_text(mach, NULL) : NULL;
    bool beam = ms && strstr(ms, "BEAM");
    free(ms);
    term_free(mach);
    if (!beam) {
        snprintf(why, wn,
                 "%s is a Girder node without a control socket on this machine: girder trace "
                 "records Girder nodes through their control socket",
                 c->node);
        return CLI_FAIL;
    }
    if (cli_learn_creation(r->node, why, wn) != CLI_OK) return CLI_FAIL;
    term_text_ctx ctx = cli_ctx(r->node);
    term_t target = term_atom("all");
    if (c->o->pid) {
        term_parse_error pe;
        target = term_parse(c->o->pid, strlen(c->o->pid), &ctx, &pe);
        if (target == TERM_NONE || !term_is_pid(target)) {
            term_free(target);
            snprintf(why, wn, "--pid '%s' is not a pid of %s", c->o->pid, c->node);
            return CLI_USAGE;
        }
    } else if (c->o->name) {
        target = cli_call(r->node, "erlang", "whereis",
                          term_list(1, (term_t[]){term_atom(c->o->name)}), why, wn);
        if (!term_is_pid(target)) {
            term_free(target);
            snprintf(why, wn, "no process is registered as %s on %s", c->o->name, c->node);
            return CLI_FAIL;
        }
    }
    /* the tracer: parsed on the node, spawned there */
    term_t toks = cli_call(
        r->node, "erl_scan", "string",
        term_list(1, (term_t[]){term_string(erl_tracer_src, sizeof erl_tracer_src - 1)}), why, wn);
    term_t ex =
        term_is_tuple(toks) && term_tuple_arity(toks) == 3
            ? cli_call(r->node, "erl_parse", "parse_exprs",
                       term_list(1, (term_t[]){term_dup(term_tuple_elem(toks, 1))}), why, wn)
            : TERM_NONE;
    term_free(toks);
    if (!term_is_tuple(ex) || term_tuple_elem(ex, 0) != TERM_ATOM_OK) {
        term_free(ex);
        term_free(target);
        if (!why[0]) snprintf(why, wn, "the tracer's code did not parse on %s", c->node);
        return CLI_FAIL;
    }
    term_t binds[3] = {term_tuplev(2, term_atom("P"), term_dup(nd_self())),
                       term_tuplev(2, term_atom("T"), target),
                       term_tuplev(2, term_atom("Max"), term_int(ERL_MAX_PER_WINDOW))};
    cli_rpc sp;
    cli_rpc_init(&sp, r->node, "erl_eval", "exprs",
                 term_list(2, (term_t[]){term_dup(term_tuple_elem(ex, 1)), term_list(3, binds)}));
    sp.spawn_only = true;
    cli_rpc_run(&sp, 1, 1);
    term_free(ex);
    if (sp.out != CLI_RPC_RETURN || !term_is_pid(sp.value)) {
        cli_rpc_describe(&sp, why, wn);
        cli_rpc_clear(&sp);
        return CLI_FAIL;
    }
    r->tracer = sp.value;
    sp.value = TERM_NONE;
    cli_rpc_clear(&sp);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t start = (int64_t)t0.tv_sec * 1000 + t0.tv_nsec / 1000000;
    bool stopped = false, final = false;
    int64_t stop_at = start + c->o->duration_s * 1000, give_up = stop_at + 10000;
    while (!final) {
        int64_t now = mono_ms();
        if ((now >= stop_at || interrupted) && !stopped) {
            nd_send(r->tracer, term_atom("girder_stop"));
            stopped = true;
        }
        if (now >= give_up) {
            snprintf(why, wn, "the tracer on %s did not send its last batch", c->node);
            term_free(r->tracer);
            return CLI_FAIL;
        }
        term_t m;
        int64_t wait = stopped ? give_up - now : stop_at - now;
        if (wait > 100) wait = 100;
        if (nd_receive_if(erl_msg, r, wait > 0 ? wait : 0, &m) != 0) continue;
        if (term_tuple_elem(m, 0) == term_atom("girder_trace_names")) {
            for (term_t l = term_tuple_elem(m, 2); term_is_cons(l); l = term_tl(l)) {
                term_t p = term_hd(l);
                if (!term_is_tuple(p) || term_tuple_arity(p) != 2 ||
                    !term_is_pid(term_tuple_elem(p, 1)))
                    continue;
                const char *nm = term_atom_name(term_tuple_elem(p, 0), NULL);
                set_name(c, pid_str(c, term_tuple_elem(p, 1), &ctx),
                         intern(&c->str, nm, strlen(nm)));
            }
            int64_t sc = 0;
            term_get_int64(term_tuple_elem(m, 3), &sc);
            c->schedulers = sc > 0 && sc < 4096 ? (unsigned)sc : 0;
        } else if (term_tuple_arity(m) == 5) {
            for (term_t l = term_tuple_elem(m, 2); term_is_cons(l); l = term_tl(l))
                erl_event(c, term_hd(l), &ctx);
            int64_t d = 0;
            term_get_int64(term_tuple_elem(m, 3), &d);
            c->dropped_rate += d > 0 ? (uint64_t)d : 0;
            final = term_tuple_elem(m, 4) == TERM_ATOM_TRUE;
        }
        term_free(m);
    }
    term_free(r->tracer);
    c->recorded = c->n + c->dropped_rate;
    return CLI_OK;
}

/* An Erlang node (or a Girder one elsewhere): through distribution. */
static int record_erlang(capture *c, char *why, size_t n)
{
    char names[1][256];
    snprintf(names[0], sizeof names[0], "%s", c->node);
    int rc = cli_check_proto(c->o);
    if (rc) return rc;
    cli_cookie ck;
    uint16_t eport;
    if ((rc = cli_cookie_resolve(c->o, names, 1, &ck, &eport)) != 0) return rc;
    bool longnames = strchr(strchr(names[0], '@') + 1, '.') != NULL;
    cli_opts so = *c->o;
    so.timeout_ms = c->o->timeout_ms + c->o->duration_s * 1000 + 15000;
    if ((rc = cli_dist_up(&so, longnames, &ck, eport)) != 0) return rc;
    erl_rec r = {c, term_atom(c->node), TERM_NONE, CLI_OK, ""};
    struct sigaction sa = {0}, old_int, old_term;
    sa.sa_handler = on_int;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    rc = cli_run(erl_body, &r);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    cli_dist_down();
    snprintf(why, n, "%s", r.why);
    return rc;
}

static int ev_cmp(const void *a, const void *b)
{
    const ev *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq ? 1 : 0;
}

/* ---------------------------------------------------------------- the timeline model */

/*
** What both files draw, computed once from the sorted events: run slices, message arrows and
** mailbox depth samples.
*/
typedef struct slice {
    int16_t sched;
    int32_t proc;
    uint64_t t0, t1;
    uint64_t reds;
    uint8_t out; /* ND_OUT_* of the sched_out, 0 when the capture ended it */
} slice;

typedef struct arrow {
    int16_t s0, s1; /* schedulers (-1: another thread) */
    uint64_t t0, t1;
    int32_t from, to;
    uint8_t kind; /* K_SEND, K_DOWN or K_EXIT_SIGNAL */
} arrow;

typedef struct depth {
    int32_t proc;
    uint64_t ts;
    int64_t n;
} depth;

typedef struct model {
    slice *sl;
    size_t nsl;
    arrow *ar;
    size_t nar;
    depth *dp;
    size_t ndp;
    int32_t mbox_procs[MAILBOX_TRACKS];
    size_t nmbox;
    uint64_t t0, t1;
    unsigned scheds; /* lanes: scheduler indexes seen or announced */
} model;

typedef struct pending {
    uint64_t id; /* 0: free */
    size_t ev;
} pending;

static bool build_model(capture *c, model *m)
{
    memset(m, 0, sizeof *m);
    m->scheds = c->schedulers;
    if (c->n) {
        m->t0 = c->e[0].ts;
        m->t1 = c->e[c->n - 1].ts;
    }
    m->sl = calloc(c->n + 1, sizeof *m->sl);
    m->ar = calloc(c->n + 1, sizeof *m->ar);
    m->dp = calloc(c->n + 1, sizeof *m->dp);
    size_t nstr = c->str.n + 1, nsched = 4096;
    int64_t *open = malloc(nsched * sizeof *open); /* per scheduler: the open slice, or -1 */
    int64_t *qlen = calloc(nstr, sizeof *qlen);    /* per pid: messages waiting (as seen) */
    uint64_t *recvs = calloc(nstr, sizeof *recvs);
    /* sends waiting for their receive: an open-addressed table keyed by trace id */
    size_t npend = 1;
    while (npend < c->n * 2 + 16) npend <<= 1;
    pending *pend = calloc(npend, sizeof *pend);
    if (!m->sl || !m->ar || !m->dp || !open || !qlen || !recvs || !pend) {
        free(open);
        free(qlen);
        free(recvs);
        free(pend);
        return false;
    }
    for (size_t i = 0; i < nsched; i++) open[i] = -1;
    for (size_t i = 0; i < c->n; i++) {
        ev *e = &c->e[i];
        if (e->sched >= 0 && (unsigned)e->sched + 1 > m->scheds) m->scheds = (unsigned)e->sched + 1;
        if (e->kind == K_SCHED_IN && e->sched >= 0) {
            if (open[e->sched] >= 0) m->sl[open[e->sched]].t1 = e->ts; /* a missed sched_out */
            slice *s = &m->sl[m->nsl];
            *s = (slice){e->sched, e->pid, e->ts, e->ts, 0, 0};
            open[e->sched] = (int64_t)m->nsl++;
        } else if (e->kind == K_SCHED_OUT && e->sched >= 0) {
            int64_t k = open[e->sched];
            if (k >= 0 && m->sl[k].proc == e->pid) {
                m->sl[k].t1 = e->ts;
                m->sl[k].reds = e->arg;
                m->sl[k].out = e->info & 0x0f;
                open[e->sched] = -1;
            } else if (k < 0) { /* it was running when the capture started */
                m->sl[m->nsl++] =
                    (slice){e->sched, e->pid, m->t0, e->ts, e->arg, (uint8_t)(e->info & 0x0f)};
            }
        } else if ((e->kind == K_SEND || e->kind == K_DOWN || e->kind == K_EXIT_SIGNAL) && e->id) {
            size_t h = (size_t)(e->id * 0x9e3779b97f4a7c15ull) & (npend - 1);
            while (pend[h].id && pend[h].id != e->id) h = (h + 1) & (npend - 1);
            pend[h].id = e->id; /* the latest send with this id wins */
            pend[h].ev = i;
            int32_t to = e->peer; /* the receiver; for DOWN and EXIT the process told */
            if (to >= 0 && !(e->info & 0x20)) {
                qlen[to]++;
                m->dp[m->ndp++] = (depth){to, e->ts, qlen[to]};
            }
        } else if (e->kind == K_EXIT && e->pid >= 0 && qlen[e->pid]) {
            qlen[e->pid] = 0; /* what was waiting went with the process */
            m->dp[m->ndp++] = (depth){e->pid, e->ts, 0};
        } else if (e->kind == K_RECEIVE && e->id && (e->info & 0x0f) == 0) {
            size_t h = (size_t)(e->id * 0x9e3779b97f4a7c15ull) & (npend - 1);
            while (pend[h].id && pend[h].id != e->id) h = (h + 1) & (npend - 1);
            if (pend[h].id == e->id) {
                ev *s = &c->e[pend[h].ev];
                m->ar[m->nar++] =
                    (arrow){s->sched, e->sched, s->ts, e->ts, s->pid, e->pid, s->kind};
                /* leave the slot marked with an id no event has, so probing goes on past it */
                pend[h].id = UINT64_MAX;
            }
            if (e->pid >= 0) {
                if (qlen[e->pid] > 0) qlen[e->pid]--;
                recvs[e->pid]++;
                m->dp[m->ndp++] = (depth){e->pid, e->ts, qlen[e->pid]};
            }
        }
    }
    for (size_t s = 0; s < nsched; s++)
        if (open[s] >= 0) m->sl[open[s]].t1 = m->t1; /* still running at the end */
    /* the busiest receivers get a mailbox track */
    for (size_t k = 0; k < MAILBOX_TRACKS; k++) {
        int32_t best = -1;
        for (size_t p = 0; p < c->str.n; p++) {
            bool taken = false;
            for (size_t j = 0; j < m->nmbox; j++) taken |= m->mbox_procs[j] == (int32_t)p;
            if (!taken && recvs[p] && (best < 0 || recvs[p] > recvs[best])) best = (int32_t)p;
        }
        if (best < 0) break;
        m->mbox_procs[m->nmbox++] = best;
    }
    free(open);
    free(qlen);
    free(recvs);
    free(pend);
    return true;
}

static void model_free(model *m)
{
    free(m->sl);
    free(m->ar);
    free(m->dp);
}

/* ---------------------------------------------------------------- writing */

/* A JSON string; < > & are escaped too, so the text can sit inside an HTML <script>. */
static void jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&')
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static const char *S(const capture *c, int32_t i)
{
    return i >= 0 && (size_t)i < c->str.n ? c->str.s[i] : NULL;
}

/* "kv <0.11.1>" or "<0.42.1>". */
static void label(const capture *c, int32_t pid, char *buf, size_t n)
{
    const char *p = S(c, pid);
    int32_t nm = pid >= 0 && (size_t)pid < c->nname_of ? c->name_of[pid] : -1;
    if (!p)
        snprintf(buf, n, "-");
    else if (nm >= 0)
        snprintf(buf, n, "%s %s", S(c, nm), p);
    else
        snprintf(buf, n, "%s", p);
}

static double us(const model *m, uint64_t ts)
{
    return (double)(ts - m->t0) / 1000.0;
}

static int tid_of(int16_t sched)
{
    return sched >= 0 ? sched + 1 : 0;
}

static const char *out_name(uint8_t o)
{
    static const char *n[] = {"-", "budget", "yield", "wait", "hibernate", "exit"};
    return o < 6 ? n[o] : "?";
}

static int write_perfetto(const capture *c, const model *m, FILE *f)
{
    char l1[400], l2[420];
    fprintf(f, "{\"displayTimeUnit\":\"ns\",\n\"otherData\":{\"node\":");
    jstr(f, c->node);
    fprintf(f,
            ",\"schedulers\":%u,\"events\":%zu,\"recorded\":%llu,\"dropped_full\":%llu,"
            "\"dropped_rate\":%llu,\"truncated\":%s,\"mailbox_note\":",
            m->scheds, c->n, (unsigned long long)c->recorded, (unsigned long long)c->dropped_full,
            (unsigned long long)c->dropped_rate, c->truncated ? "true" : "false");
    jstr(f, "mailbox depth counts messages sent during the capture minus those taken; what "
            "waited before it started is not counted");
    fprintf(f, "},\n\"traceEvents\":[\n");
    fprintf(f, "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":1,\"args\":{\"name\":");
    snprintf(l1, sizeof l1, "girder node %s", c->node);
    jstr(f, l1);
    fprintf(f, "}}");
    fprintf(f, ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":0,\"args\":{\"name\":"
               "\"other threads (distribution, timers)\"}}");
    for (unsigned s = 0; s < m->scheds; s++)
        fprintf(f,
                ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":%u,\"args\":{"
                "\"name\":\"scheduler %u\"}},\n{\"ph\":\"M\",\"name\":\"thread_sort_index\","
                "\"pid\":1,\"tid\":%u,\"args\":{\"sort_index\":%u}}",
                s + 1, s + 1, s + 1, s + 1);
    for (size_t i = 0; i < m->nsl; i++) {
        const slice *s = &m->sl[i];
        label(c, s->proc, l1, sizeof l1);
        fprintf(f, ",\n{\"ph\":\"X\",\"cat\":\"run\",\"name\":");
        jstr(f, l1);
        fprintf(f, ",\"pid\":1,\"tid\":%d,\"ts\":%.3f,\"dur\":%.3f,\"args\":{\"pid\":",
                tid_of(s->sched), us(m, s->t0), (double)(s->t1 - s->t0) / 1000.0);
        jstr(f, S(c, s->proc));
        fprintf(f, ",\"reductions\":%llu,\"out\":\"%s\"}}", (unsigned long long)s->reds,
                out_name(s->out));
    }
    for (size_t i = 0; i < m->nar; i++) {
        const arrow *a = &m->ar[i];
        const char *what = a->kind == K_SEND ? "message" : a->kind == K_DOWN ? "DOWN" : "EXIT";
        fprintf(f,
                ",\n{\"ph\":\"s\",\"cat\":\"msg\",\"name\":\"%s\",\"id\":%zu,\"pid\":1,"
                "\"tid\":%d,\"ts\":%.3f,\"args\":{\"from\":",
                what, i + 1, tid_of(a->s0), us(m, a->t0));
        jstr(f, S(c, a->from));
        fprintf(f, ",\"to\":");
        jstr(f, S(c, a->to));
        fprintf(f, "}}");
        fprintf(f,
                ",\n{\"ph\":\"f\",\"bp\":\"e\",\"cat\":\"msg\",\"name\":\"%s\",\"id\":%zu,"
                "\"pid\":1,\"tid\":%d,\"ts\":%.3f}",
                what, i + 1, tid_of(a->s1), us(m, a->t1));
    }
    for (size_t i = 0; i < c->n; i++) {
        const ev *e = &c->e[i];
        if (e->kind == K_SCHED_IN || e->kind == K_SCHED_OUT || e->kind == K_SEND ||
            e->kind == K_RECEIVE)
            continue; /* slices and arrows */
        label(c, e->pid, l1, sizeof l1);
        label(c, e->peer, l2, sizeof l2);
        fprintf(f,
                ",\n{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"event\",\"name\":\"%s\",\"pid\":1,"
                "\"tid\":%d,\"ts\":%.3f,\"args\":{\"pid\":",
                kind_names[e->kind], tid_of(e->sched), us(m, e->ts));
        jstr(f, l1);
        fprintf(f, ",\"peer\":");
        jstr(f, l2);
        if (S(c, e->reason)) {
            fprintf(f, ",\"reason\":");
            jstr(f, S(c, e->reason));
        }
        if (S(c, e->node)) {
            fprintf(f, ",\"node\":");
            jstr(f, S(c, e->node));
        }
        fprintf(f, ",\"arg\":%llu,\"id\":%llu,\"info\":%u}}", (unsigned long long)e->arg,
                (unsigned long long)e->id, e->info);
    }
    for (size_t i = 0; i < m->ndp; i++) {
        const depth *d = &m->dp[i];
        bool tracked = false;
        for (size_t k = 0; k < m->nmbox; k++) tracked |= m->mbox_procs[k] == d->proc;
        if (!tracked) continue;
        label(c, d->proc, l1, sizeof l1);
        snprintf(l2, sizeof l2, "mailbox %s", l1);
        fprintf(f, ",\n{\"ph\":\"C\",\"name\":");
        jstr(f, l2);
        fprintf(f, ",\"pid\":1,\"ts\":%.3f,\"args\":{\"messages\":%lld}}", us(m, d->ts),
                (long long)d->n);
    }
    if (c->dropped_full || c->dropped_rate || c->truncated) {
        fprintf(f,
                ",\n{\"ph\":\"i\",\"s\":\"g\",\"name\":\"events were dropped\",\"pid\":1,"
                "\"tid\":0,\"ts\":0,\"args\":{\"dropped_full\":%llu,\"dropped_rate\":%llu,"
                "\"truncated\":%s}}",
                (unsigned long long)c->dropped_full, (unsigned long long)c->dropped_rate,
                c->truncated ? "true" : "false");
    }
    fprintf(f, "\n]}\n");
    return ferror(f) ? -1 : 0;
}

/* The page's data: {node, schedulers, t0, duration_ns, procs: [[pid, name|null]],
** slices: [[sched, proc, t0, t1]], arrows: [[s0, t0, s1, t1, from, to, kind]],
** instants: [[sched, t, kind, proc, reason]], mailbox: [[proc, [[t, n], ...]]], drops} with
** times in ns from t0. */
static void write_page_data(const capture *c, const model *m, FILE *f)
{
    fprintf(f, "{\"node\":");
    jstr(f, c->node);
    fprintf(f, ",\"schedulers\":%u,\"duration_ns\":%llu,\"drops\":%llu,\"truncated\":%s,",
            m->scheds, (unsigned long long)(m->t1 - m->t0),
            (unsigned long long)(c->dropped_full + c->dropped_rate),
            c->truncated ? "true" : "false");
    fprintf(f, "\n\"procs\":[");
    for (size_t i = 0; i < c->str.n; i++) {
        int32_t nm = i < c->nname_of ? c->name_of[i] : -1;
        fprintf(f, "%s[", i ? "," : "");
        jstr(f, c->str.s[i]);
        fputc(',', f);
        if (nm >= 0)
            jstr(f, S(c, nm));
        else
            fputs("null", f);
        fputc(']', f);
    }
    fprintf(f, "],\n\"slices\":[");
    for (size_t i = 0; i < m->nsl; i++)
        fprintf(f, "%s[%d,%d,%llu,%llu]", i ? "," : "", m->sl[i].sched, m->sl[i].proc,
                (unsigned long long)(m->sl[i].t0 - m->t0),
                (unsigned long long)(m->sl[i].t1 - m->t0));
    fprintf(f, "],\n\"arrows\":[");
    for (size_t i = 0; i < m->nar; i++) {
        const arrow *a = &m->ar[i];
        fprintf(f, "%s[%d,%llu,%d,%llu,%d,%d,\"%s\"]", i ? "," : "", a->s0,
                (unsigned long long)(a->t0 - m->t0), a->s1, (unsigned long long)(a->t1 - m->t0),
                a->from, a->to, kind_names[a->kind]);
    }
    fprintf(f, "],\n\"instants\":[");
    bool first = true;
    for (size_t i = 0; i < c->n; i++) {
        const ev *e = &c->e[i];
        if (e->kind == K_SCHED_IN || e->kind == K_SCHED_OUT || e->kind == K_SEND ||
            e->kind == K_RECEIVE)
            continue;
        fprintf(f, "%s[%d,%llu,\"%s\",%d,", first ? "" : ",", e->sched,
                (unsigned long long)(e->ts - m->t0), kind_names[e->kind], e->pid);
        if (S(c, e->reason))
            jstr(f, S(c, e->reason));
        else
            fputs("null", f);
        fputc(']', f);
        first = false;
    }
    fprintf(f, "],\n\"mailbox\":[");
    for (size_t k = 0; k < m->nmbox; k++) {
        fprintf(f, "%s[%d,[", k ? "," : "", m->mbox_procs[k]);
        bool f1 = true;
        for (size_t i = 0; i < m->ndp; i++)
            if (m->dp[i].proc == m->mbox_procs[k]) {
                fprintf(f, "%s[%llu,%lld]", f1 ? "" : ",",
                        (unsigned long long)(m->dp[i].ts - m->t0), (long long)m->dp[i].n);
                f1 = false;
            }
        fprintf(f, "]]");
    }
    fprintf(f, "]}");
}

static int write_html(const capture *c, const model *m, FILE *f)
{
    fputs(trace_page_head, f);
    write_page_data(c, m, f);
    fputs(trace_page_tail, f);
    return ferror(f) ? -1 : 0;
}

static int write_file(const char *path, int (*fn)(const capture *, const model *, FILE *),
                      const capture *c, const model *m)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_err("cannot write %s: %s", path, strerror(errno));
        return CLI_FAIL;
    }
    int rc = fn(c, m, f);
    if (fclose(f) != 0 || rc) {
        cli_err("writing %s failed", path);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* ---------------------------------------------------------------- the command */

int cli_cmd_trace(const cli_opts *o)
{
    if (!o->out) {
        cli_err("trace: --out FILE.json is required");
        return CLI_USAGE;
    }
    if (o->pid && o->name) {
        cli_err("trace: --pid and --name exclude each other");
        return CLI_USAGE;
    }
    if (o->pid && o->pid[0] != '<') {
        cli_err("trace: --pid '%s' is not a pid (<0.X.Y>)", o->pid);
        return CLI_USAGE;
    }
    cli_opts oo = *o;
    if (!oo.duration_s) oo.duration_s = 5;
    capture c = {0};
    c.o = &oo;
    if (cli_node_name(o->argv[0], c.node, sizeof c.node)) return CLI_USAGE;
    char why[1024] = "";
    int status;
    bool erlang = false;
    if (cli_oc_open_node(&c.oc, &oo, c.node, why, sizeof why) == 0) {
        status = record(&c, why, sizeof why);
        cli_oc_close(&c.oc);
    } else {
        if (o->verbose) cli_err("%s; asking by distribution", why);
        why[0] = 0;
        erlang = true;
        status = record_erlang(&c, why, sizeof why);
    }
    if (status != CLI_OK) {
        cli_err("trace: %s", why);
        free(c.e);
        strtab_free(&c.str);
        free(c.name_of);
        return status;
    }
    if (c.n) qsort(c.e, c.n, sizeof *c.e, ev_cmp);
    if (erlang) pair_messages(&c); /* in time order: the earliest unmatched send wins */
    model m = {0};
    if (!build_model(&c, &m)) {
        cli_err("trace: out of memory");
        status = CLI_FAIL;
    }
    if (status == CLI_OK) status = write_file(o->out, write_perfetto, &c, &m);
    if (status == CLI_OK && o->html) status = write_file(o->html, write_html, &c, &m);
    if (status == CLI_OK) {
        FILE *s = o->json ? stderr : stdout;
        fprintf(s,
                "%s: %zu events over %.3f s on %u schedulers (%zu run slices, %zu message arrows)",
                c.node, c.n, c.n ? (double)(m.t1 - m.t0) / 1e9 : 0.0, m.scheds, m.nsl, m.nar);
        if (c.dropped_full || c.dropped_rate)
            fprintf(s, "; %llu events dropped (ring full %llu, rate limit %llu)",
                    (unsigned long long)(c.dropped_full + c.dropped_rate),
                    (unsigned long long)c.dropped_full, (unsigned long long)c.dropped_rate);
        if (c.truncated) fprintf(s, "; more than %u events: the rest were not kept", MAX_EVENTS);
        fprintf(s, "\n  %s%s%s\n", o->out, o->html ? "\n  " : "", o->html ? o->html : "");
        if (o->json) {
            cli_json j = {0};
            cli_json_obj(&j);
            cli_json_key(&j, "node");
            cli_json_str(&j, c.node);
            cli_json_key(&j, "events");
            cli_json_int(&j, (int64_t)c.n);
            cli_json_key(&j, "slices");
            cli_json_int(&j, (int64_t)m.nsl);
            cli_json_key(&j, "arrows");
            cli_json_int(&j, (int64_t)m.nar);
            cli_json_key(&j, "dropped");
            cli_json_int(&j, (int64_t)(c.dropped_full + c.dropped_rate));
            cli_json_key(&j, "out");
            cli_json_str(&j, o->out);
            cli_json_key(&j, "html");
            cli_json_str(&j, o->html);
            cli_json_end(&j);
            cli_json_write(&j, stdout);
        }
    }
    model_free(&m);
    free(c.e);
    strtab_free(&c.str);
    free(c.name_of);
    return status;
}
