/* girder top: a live view of a node's schedulers, memory and processes (Girder or Erlang). */
#include "obs.h"
#include "session.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define A(s) term_atom(s)

#define MAX_SCHED 256
#define MAX_MEM   16
#define MAX_CONN  64
#define DEFAULT_K 15

/* ================================================================ the snapshot */

/* One process of the top list. */
typedef struct tproc {
    char pid[80], name[160], status[16], current[200];
    int64_t reductions, memory, mq; /* -1: unknown */
} tproc;

/*
** What one look at the node gives, whichever way it was asked. -1 is "the node does not say"
** (a Girder node has no erlang:memory/0 over distribution, Erlang no spinning time).
*/
typedef struct snap {
    char node[256];
    const char *kind; /* "girder" or "erlang" */
    const char *via;  /* "control_socket" or "distribution" */
    int64_t at_ms;    /* this CLI's monotonic clock when it was taken */
    int64_t uptime_ms;
    unsigned nsched;
    uint64_t active[MAX_SCHED], total[MAX_SCHED]; /* scheduler wall time: running / all */
    int64_t runq[MAX_SCHED];
    int64_t run_queue, processes, process_limit;
    int64_t msgs_sent, msgs_received; /* girder: node-wide counters */
    size_t nmem;
    struct {
        char k[32];
        int64_t v;
    } mem[MAX_MEM];
    size_t nconn;
    struct {
        char node[256];
        int64_t bytes_in, bytes_out, msgs_in, msgs_out, out_queue;
    } conn[MAX_CONN];
    size_t nproc;
    tproc *procs;
} snap;

static void snap_clear(snap *s)
{
    free(s->procs);
    memset(s, 0, sizeof *s);
}

static void snap_init(snap *s)
{
    memset(s, 0, sizeof *s);
    s->uptime_ms = s->run_queue = s->processes = s->process_limit = -1;
    s->msgs_sent = s->msgs_received = -1;
    for (unsigned i = 0; i < MAX_SCHED; i++) s->runq[i] = -1;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct top_ctx {
    const cli_opts *o;
    char name[256];
    term_t node;
    cli_oc oc; /* fd >= 0: through the control socket */
    bool erlang;
    term_t holder; /* on an Erlang node: the process that keeps scheduler_wall_time on */
    unsigned erl_scheds;
    long k;
    const char *sort;
} top_ctx;

/* ================================================================ through the control socket */

static int take_ctl(top_ctx *t, snap *s, char *why, size_t n)
{
    char params[128];
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "top", 3);
    msgpack_pack_int64(&pk, t->k);
    msgpack_pack_str_with_body(&pk, "sort", 4);
    msgpack_pack_str_with_body(&pk, t->sort, strlen(t->sort));
    memcpy(params, sb.data, sb.size);
    size_t plen = sb.size;
    msgpack_sbuffer_destroy(&sb);
    const msgpack_object *r;
    if (cli_oc_call(&t->oc, "metrics.get", params, plen, t->o->timeout_ms, &r, why, n)) return -1;
    s->at_ms = mono_ms();
    s->kind = "girder";
    s->via = "control_socket";
    snprintf(s->node, sizeof s->node, "%s", t->name);
    s->uptime_ms = (int64_t)(cli_mp_u64(r, "uptime_ns") / 1000000u);
    const msgpack_object *sch = cli_mp_get(r, "schedulers");
    s->run_queue = (int64_t)cli_mp_u64(r, "global_run_queue");
    for (uint32_t i = 0;
         sch && sch->type == MSGPACK_OBJECT_ARRAY && i < sch->via.array.size && i < MAX_SCHED;
         i++) {
        const msgpack_object *e = &sch->via.array.ptr[i];
        uint64_t run = cli_mp_u64(e, "running_ns");
        s->active[i] = run;
        s->total[i] = run + cli_mp_u64(e, "spinning_ns") + cli_mp_u64(e, "idle_ns");
        s->runq[i] = (int64_t)cli_mp_u64(e, "run_queue");
        s->run_queue += s->runq[i];
        s->nsched = i + 1;
    }
    s->processes = (int64_t)cli_mp_u64(r, "processes");
    s->process_limit = (int64_t)cli_mp_u64(r, "process_limit");
    const msgpack_object *msgs = cli_mp_get(r, "messages");
    s->msgs_sent = (int64_t)cli_mp_u64(msgs, "sent");
    s->msgs_received = (int64_t)cli_mp_u64(msgs, "received");
    const msgpack_object *mem = cli_mp_get(r, "memory");
    static const char *mk[] = {"rss", "process_table", "stacks", "mailboxes", "trace"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(s->mem[i].k, sizeof s->mem[i].k, "%s", mk[i]);
        s->mem[i].v = (int64_t)cli_mp_u64(mem, mk[i]);
    }
    s->nmem = 5;
    const msgpack_object *conns = cli_mp_get(cli_mp_get(r, "dist"), "connections");
    for (uint32_t i = 0; conns && conns->type == MSGPACK_OBJECT_ARRAY &&
                         i < conns->via.array.size && s->nconn < MAX_CONN;
         i++) {
        const msgpack_object *c = &conns->via.array.ptr[i];
        char nm[256];
        cli_mp_str(cli_mp_get(c, "node"), nm, sizeof nm);
        if (!strncmp(nm, "girder_cli_", 11)) continue; /* this CLI, or another */
        size_t j = s->nconn++;
        snprintf(s->conn[j].node, sizeof s->conn[j].node, "%s", nm);
        s->conn[j].bytes_in = (int64_t)cli_mp_u64(c, "bytes_in");
        s->conn[j].bytes_out = (int64_t)cli_mp_u64(c, "bytes_out");
        s->conn[j].msgs_in = (int64_t)cli_mp_u64(c, "msgs_in");
        s->conn[j].msgs_out = (int64_t)cli_mp_u64(c, "msgs_out");
        s->conn[j].out_queue = (int64_t)cli_mp_u64(c, "out_queue");
    }
    const msgpack_object *top = cli_mp_get(r, "top");
    size_t np = top && top->type == MSGPACK_OBJECT_ARRAY ? top->via.array.size : 0;
    s->procs = calloc(np + 1, sizeof *s->procs);
    for (size_t i = 0; s->procs && i < np; i++) {
        const msgpack_object *p = &top->via.array.ptr[i];
        tproc *q = &s->procs[s->nproc++];
        cli_mp_str(cli_mp_get(p, "pid"), q->pid, sizeof q->pid);
        cli_mp_str(cli_mp_get(p, "name"), q->name, sizeof q->name);
        cli_mp_str(cli_mp_get(p, "status"), q->status, sizeof q->status);
        q->reductions = (int64_t)cli_mp_u64(p, "reductions");
        q->memory = (int64_t)cli_mp_u64(p, "memory");
        q->mq = (int64_t)cli_mp_u64(p, "message_queue_len");
    }
    return 0;
}

/* ================================================================ through distribution */

/* One rpc, TERM_NONE when it failed (badarg, undef: the node does not answer that). */
static term_t ask(top_ctx *t, const char *m, const char *f, term_t args)
{
    char why[600];
    term_t v = cli_call(t->node, m, f, args, why, sizeof why);
    if (v == TERM_NONE && t->o->verbose) cli_err("%s", why);
    return v;
}

static term_t ask1(top_ctx *t, const char *m, const char *f, const char *atom)
{
    return ask(t, m, f, term_list(1, (term_t[]){A(atom)}));
}

static int64_t int_of(term_t v)
{
    int64_t x;
    return v != TERM_NONE && term_get_int64(v, &x) == 0 ? x : -1;
}

static int start_holder(top_ctx *t);

static term_t kv(term_t list, const char *key)
{
    term_t k = A(key);
    for (term_t l = list; term_is_cons(l); l = term_tl(l)) {
        term_t e = term_hd(l);
        if (term_is_tuple(e) && term_tuple_arity(e) == 2 && term_tuple_elem(e, 0) == k)
            return term_tuple_elem(e, 1);
    }
    return TERM_NONE;
}

/* Learns what the node is; on Erlang turns scheduler_wall_time on (remembering to restore). */
static int dist_prepare(top_ctx *t, char *why, size_t n)
{
    if (cli_connect(t->node, why, n) != CLI_OK) return -1;
    term_t m = ask1(t, "erlang", "system_info", "machine");
    char *ms = m != TERM_NONE ? cli_term_text(m, NULL) : NULL;
    t->erlang = ms && strstr(ms, "BEAM");
    free(ms);
    term_free(m);
    term_t sc = ask1(t, "erlang", "system_info", "schedulers");
    t->erl_scheds = int_of(sc) > 0 ? (unsigned)int_of(sc) : 0;
    term_free(sc);
    if (t->erlang && start_holder(t) != 0)
        cli_err("%s: could not turn scheduler_wall_time on: no scheduler figures", t->name);
    /* the holder runs a moment after its spawn is answered: wait for the figures */
    for (int i = 0; t->holder != TERM_NONE && i < 40; i++) {
        term_t v = ask1(t, "erlang", "statistics", "scheduler_wall_time");
        bool on = term_is_list(v) && v != TERM_NIL;
        term_free(v);
        if (on) break;
        struct timespec ts = {0, 25000000};
        nanosleep(&ts, NULL);
    }
    cli_learn_creation(t->node, why, n);
    return 0;
}

/*
** erlang:system_flag(scheduler_wall_time, true) counts per process in OTP 25: the measurement
** stays on while the process that asked lives. So a small process is spawned on the Erlang
** node (erl_eval of the expression below, parsed there) that turns it on and waits for stop or
** for this CLI's process to go (a monitor: a dropped connection ends it too). When it ends,
** the node's flag is as it was before.
*/
static const char holder_src[] =
    "erlang:monitor(process, P), erlang:system_flag(scheduler_wall_time, true), "
    "receive stop -> ok; {'DOWN', _, _, _, _} -> ok after 86400000 -> ok end.";

static int start_holder(top_ctx *t)
{
    term_t toks = ask(t, "erl_scan", "string",
                      term_list(1, (term_t[]){term_string(holder_src, sizeof holder_src - 1)}));
    term_t tl =
        term_is_tuple(toks) && term_tuple_arity(toks) == 3 ? term_tuple_elem(toks, 1) : TERM_NONE;
    term_t ex = tl != TERM_NONE
                    ? ask(t, "erl_parse", "parse_exprs", term_list(1, (term_t[]){term_dup(tl)}))
                    : TERM_NONE;
    term_free(toks);
    if (!term_is_tuple(ex) || term_tuple_arity(ex) != 2 || term_tuple_elem(ex, 0) != TERM_ATOM_OK) {
        term_free(ex);
        return -1;
    }
    term_t binding = term_tuplev(2, A("P"), term_dup(nd_self()));
    cli_rpc r;
    cli_rpc_init(
        &r, t->node, "erl_eval", "exprs",
        term_list(2, (term_t[]){term_dup(term_tuple_elem(ex, 1)), term_list(1, &binding)}));
    r.spawn_only = true;
    cli_rpc_run(&r, 1, 1);
    term_free(ex);
    int rc = -1;
    if (r.out == CLI_RPC_RETURN && term_is_pid(r.value)) {
        t->holder = r.value;
        r.value = TERM_NONE;
        rc = 0;
    }
    cli_rpc_clear(&r);
    return rc;
}

static void dist_finish(top_ctx *t)
{
    if (t->holder == TERM_NONE) return;
    nd_send(t->holder, A("stop"));
    term_free(t->holder);
    t->holder = TERM_NONE;
}

static int proc_cmp_key;
static int proc_cmp(const void *a, const void *b)
{
    const tproc *x = a, *y = b;
    int64_t kx = proc_cmp_key == 1 ? x->memory : proc_cmp_key == 2 ? x->mq : x->reductions;
    int64_t ky = proc_cmp_key == 1 ? y->memory : proc_cmp_key == 2 ? y->mq : y->reductions;
    return kx > ky ? -1 : kx < ky ? 1 : strcmp(x->pid, y->pid);
}

static int take_dist(top_ctx *t, snap *s, char *why, size_t n)
{
    cli_set_deadline_ms(t->o->timeout_ms);
    s->kind = t->erlang ? "erlang" : "girder";
    s->via = "distribution";
    snprintf(s->node, sizeof s->node, "%s", t->name);
    term_t swt = ask1(t, "erlang", "statistics", "scheduler_wall_time");
    s->at_ms = mono_ms();
    for (term_t l = swt; term_is_cons(l); l = term_tl(l)) {
        term_t e = term_hd(l);
        if (!term_is_tuple(e) || term_tuple_arity(e) != 3) continue;
        int64_t id = int_of(term_tuple_elem(e, 0));
        /* Erlang lists its dirty CPU schedulers after the normal ones: leave them out */
        if (id < 1 || id > MAX_SCHED || (t->erl_scheds && id > (int64_t)t->erl_scheds)) continue;
        s->active[id - 1] = (uint64_t)int_of(term_tuple_elem(e, 1));
        s->total[id - 1] = (uint64_t)int_of(term_tuple_elem(e, 2));
        if ((unsigned)id > s->nsched) s->nsched = (unsigned)id;
    }
    term_free(swt);
    term_t rq = ask1(t, "erlang", "statistics", "run_queue_lengths");
    unsigned i = 0;
    for (term_t l = rq; term_is_cons(l) && i < MAX_SCHED; l = term_tl(l))
        s->runq[i++] = int_of(term_hd(l));
    term_free(rq);
    term_t tq = ask1(t, "erlang", "statistics", "total_run_queue_lengths");
    s->run_queue = int_of(tq);
    term_free(tq);
    term_t pc = ask1(t, "erlang", "system_info", "process_count");
    s->processes = int_of(pc);
    term_free(pc);
    term_t pl = ask1(t, "erlang", "system_info", "process_limit");
    s->process_limit = int_of(pl);
    term_free(pl);
    term_t wc = ask1(t, "erlang", "statistics", "wall_clock");
    if (term_is_tuple(wc) && term_tuple_arity(wc) == 2)
        s->uptime_ms = int_of(term_tuple_elem(wc, 0));
    term_free(wc);
    term_t mem = ask(t, "erlang", "memory", TERM_NIL);
    for (term_t l = mem; term_is_cons(l) && s->nmem < MAX_MEM; l = term_tl(l)) {
        term_t e = term_hd(l);
        if (!term_is_tuple(e) || term_tuple_arity(e) != 2 || !term_is_atom(term_tuple_elem(e, 0)))
            continue;
        snprintf(s->mem[s->nmem].k, sizeof s->mem[0].k, "%s",
                 term_atom_name(term_tuple_elem(e, 0), NULL));
        s->mem[s->nmem++].v = int_of(term_tuple_elem(e, 1));
    }
    term_free(mem);
    term_t nodes = ask1(t, "erlang", "nodes", "connected");
    for (term_t l = nodes; term_is_cons(l) && s->nconn < MAX_CONN; l = term_tl(l)) {
        const char *nm = term_is_atom(term_hd(l)) ? term_atom_name(term_hd(l), NULL) : "?";
        if (!strncmp(nm, "girder_cli_", 11)) continue;
        size_t j = s->nconn++;
        snprintf(s->conn[j].node, sizeof s->conn[j].node, "%s", nm);
        s->conn[j].bytes_in = s->conn[j].bytes_out = s->conn[j].msgs_in = s->conn[j].msgs_out =
            s->conn[j].out_queue = -1;
    }
    term_free(nodes);

    /* the processes: process_info of each (as girder ps does), the K largest kept */
    term_t procs = ask(t, "erlang", "processes", TERM_NIL);
    long np = term_list_length(procs);
    if (np < 0) {
        term_free(procs);
        snprintf(why, n, "erlang:processes() on %s did not answer a list", t->name);
        return -1;
    }
    static const char *items[] = {"registered_name", "status", "message_queue_len",
                                  "reductions",      "memory", "current_function"};
    size_t nitems = t->erlang ? 6 : 5; /* a Girder node has no current_function */
    cli_rpc *rs = calloc((size_t)np + 1, sizeof *rs);
    s->procs = calloc((size_t)np + 1, sizeof *s->procs);
    if (!rs || !s->procs) {
        free(rs);
        term_free(procs);
        snprintf(why, n, "out of memory");
        return -1;
    }
    size_t k = 0;
    for (term_t l = procs; term_is_cons(l); l = term_tl(l), k++) {
        term_t it[6];
        for (size_t j = 0; j < nitems; j++) it[j] = A(items[j]);
        cli_rpc_init(&rs[k], t->node, "erlang", "process_info",
                     term_list(2, (term_t[]){term_dup(term_hd(l)), term_list(nitems, it)}));
    }
    cli_rpc_run(rs, (size_t)np, 32);
    term_text_ctx ctx = cli_ctx(t->node);
    k = 0;
    for (term_t l = procs; term_is_cons(l); l = term_tl(l), k++) {
        term_t info = rs[k].out == CLI_RPC_RETURN ? rs[k].value : TERM_NONE;
        if (!term_is_list(info)) continue; /* gone meanwhile, or the call failed */
        tproc *q = &s->procs[s->nproc++];
        char *ps = cli_term_text(term_hd(l), &ctx);
        snprintf(q->pid, sizeof q->pid, "%s", ps);
        free(ps);
        term_t nm = kv(info, "registered_name"), st = kv(info, "status"),
               cf = kv(info, "current_function");
        if (nm != TERM_NONE && term_is_atom(nm) && nm != TERM_NIL)
            snprintf(q->name, sizeof q->name, "%s", term_atom_name(nm, NULL));
        if (st != TERM_NONE && term_is_atom(st))
            snprintf(q->status, sizeof q->status, "%s", term_atom_name(st, NULL));
        if (cf != TERM_NONE && term_is_tuple(cf) && term_tuple_arity(cf) == 3) {
            char *m = cli_term_text(term_tuple_elem(cf, 0), NULL),
                 *f = cli_term_text(term_tuple_elem(cf, 1), NULL);
            snprintf(q->current, sizeof q->current, "%s:%s/%lld", m, f,
                     (long long)int_of(term_tuple_elem(cf, 2)));
            free(m);
            free(f);
        }
        q->mq = int_of(kv(info, "message_queue_len"));
        q->reductions = int_of(kv(info, "reductions"));
        q->memory = int_of(kv(info, "memory"));
    }
    for (k = 0; k < (size_t)np; k++) cli_rpc_clear(&rs[k]);
    free(rs);
    term_free(procs);
    proc_cmp_key = !strcmp(t->sort, "memory") ? 1 : !strcmp(t->sort, "mailbox") ? 2 : 0;
    qsort(s->procs, s->nproc, sizeof *s->procs, proc_cmp);
    if (s->nproc > (size_t)t->k) s->nproc = (size_t)t->k;
    return 0;
}

static int take(top_ctx *t, snap *s, char *why, size_t n)
{
    snap_init(s);
    return t->oc.fd >= 0 ? take_ctl(t, s, why, n) : take_dist(t, s, why, n);
}

/* ================================================================ showing it */

/* Utilisation of scheduler i between two snapshots, 0..1, or -1 when unknown. */
static double util(const snap *a, const snap *b, unsigned i)
{
    if (!a || i >= a->nsched || i >= b->nsched || b->total[i] <= a->total[i]) return -1;
    double d = (double)(b->active[i] - a->active[i]) / (double)(b->total[i] - a->total[i]);
    return d < 0 ? 0 : d > 1 ? 1 : d;
}

static const char *human(int64_t v, char *buf, size_t n)
{
    if (v < 0) return "-";
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    double d = (double)v;
    int k = 0;
    while (d >= 1024 && k < 4) d /= 1024, k++;
    if (k == 0)
        snprintf(buf, n, "%lld B", (long long)v);
    else
        snprintf(buf, n, "%.1f %s", d, u[k]);
    return buf;
}

static const tproc *find_proc(const snap *s, const char *pid)
{
    for (size_t i = 0; s && i < s->nproc; i++)
        if (!strcmp(s->procs[i].pid, pid)) return &s->procs[i];
    return NULL;
}

static void render_text(FILE *f, const snap *a, const snap *b, const top_ctx *t, bool live)
{
    const char *eol = live ? "\x1b[K\n" : "\n";
    int64_t up = b->uptime_ms / 1000;
    fprintf(f, "girder top  %s (%s, via %s)  uptime %lld:%02lld:%02lld  interval %ld ms%s", b->node,
            b->kind, b->via, (long long)(up / 3600), (long long)(up / 60 % 60),
            (long long)(up % 60), t->o->interval_ms, eol);
    fprintf(f, "%s", eol);
    for (unsigned i = 0; i < b->nsched; i++) {
        double u = util(a, b, i);
        char bar[41];
        int fill = u < 0 ? 0 : (int)(u * 40 + 0.5);
        for (int k = 0; k < 40; k++) bar[k] = k < fill ? '#' : '.';
        bar[40] = 0;
        char pct[16], rq[32] = "";
        snprintf(pct, sizeof pct, u < 0 ? "    -" : "%5.1f%%", u * 100);
        if (b->runq[i] >= 0) snprintf(rq, sizeof rq, "  run queue %lld", (long long)b->runq[i]);
        fprintf(f, "sched %3u [%s] %s%s%s", i + 1, bar, pct, rq, eol);
    }
    char l1[32];
    fprintf(f, "%s", eol);
    fprintf(f, "processes %lld", (long long)b->processes);
    if (b->process_limit > 0) fprintf(f, " / %lld", (long long)b->process_limit);
    fprintf(f, "   run queue %lld", (long long)b->run_queue);
    if (a && b->msgs_sent >= 0 && b->at_ms > a->at_ms) {
        double dt = (double)(b->at_ms - a->at_ms) / 1000.0;
        fprintf(f, "   messages %.0f/s sent, %.0f/s received",
                (double)(b->msgs_sent - a->msgs_sent) / dt,
                (double)(b->msgs_received - a->msgs_received) / dt);
    }
    fprintf(f, "%s", eol);
    fprintf(f, "memory   ");
    if (!b->nmem) fprintf(f, " (the node does not answer erlang:memory/0)");
    for (size_t i = 0; i < b->nmem; i++)
        fprintf(f, " %s %s%s", b->mem[i].k, human(b->mem[i].v, l1, sizeof l1),
                i + 1 < b->nmem ? "," : "");
    fprintf(f, "%s", eol);
    fprintf(f, "dist     ");
    if (!b->nconn) fprintf(f, " no connections");
    fprintf(f, "%s", eol);
    for (size_t i = 0; i < b->nconn; i++) {
        fprintf(f, "  %-30s", b->conn[i].node);
        if (b->conn[i].bytes_in >= 0) {
            char x[32], y[32], z[32];
            fprintf(f, " in %s (%lld msgs)  out %s (%lld msgs)  queue %s",
                    human(b->conn[i].bytes_in, x, sizeof x), (long long)b->conn[i].msgs_in,
                    human(b->conn[i].bytes_out, y, sizeof y), (long long)b->conn[i].msgs_out,
                    human(b->conn[i].out_queue, z, sizeof z));
        }
        fprintf(f, "%s", eol);
    }
    fprintf(f, "%s", eol);
    fprintf(f, "%-22s %-24s %12s %9s %10s %7s  %-9s %s%s", "PID", "NAME", "REDUCTIONS", "+REDS",
            "MEMORY", "MSGQ", "STATUS", "CURRENT", eol);
    for (size_t i = 0; i < b->nproc; i++) {
        const tproc *p = &b->procs[i], *o = find_proc(a, p->pid);
        char d[24] = "-";
        if (o && p->reductions >= 0 && o->reductions >= 0)
            snprintf(d, sizeof d, "%lld", (long long)(p->reductions - o->reductions));
        fprintf(f, "%-22s %-24s %12lld %9s %10lld %7lld  %-9s %s%s", p->pid,
                p->name[0] ? p->name : "-", (long long)p->reductions, d, (long long)p->memory,
                (long long)p->mq, p->status[0] ? p->status : "-", p->current[0] ? p->current : "-",
                eol);
    }
}

static void render_json(const snap *a, const snap *b, const top_ctx *t)
{
    cli_json j = {0};
    cli_json_obj(&j);
    cli_json_key(&j, "node");
    cli_json_str(&j, b->node);
    cli_json_key(&j, "kind");
    cli_json_str(&j, b->kind);
    cli_json_key(&j, "via");
    cli_json_str(&j, b->via);
    cli_json_key(&j, "interval_ms");
    cli_json_int(&j, a ? b->at_ms - a->at_ms : 0);
    cli_json_key(&j, "uptime_ms");
    cli_json_int(&j, b->uptime_ms);
    cli_json_key(&j, "schedulers");
    cli_json_arr(&j);
    for (unsigned i = 0; i < b->nsched; i++) {
        cli_json_obj(&j);
        cli_json_key(&j, "id");
        cli_json_int(&j, i + 1);
        cli_json_key(&j, "utilization");
        double u = util(a, b, i);
        if (u < 0) {
            cli_json_null(&j);
        } else {
            cli_json_double(&j, u, 4);
        }
        cli_json_key(&j, "run_queue");
        if (b->runq[i] >= 0)
            cli_json_int(&j, b->runq[i]);
        else
            cli_json_null(&j);
        cli_json_end(&j);
    }
    cli_json_end(&j);
    cli_json_key(&j, "run_queue");
    cli_json_int(&j, b->run_queue);
    cli_json_key(&j, "processes");
    cli_json_int(&j, b->processes);
    cli_json_key(&j, "process_limit");
    cli_json_int(&j, b->process_limit);
    cli_json_key(&j, "memory");
    cli_json_obj(&j);
    for (size_t i = 0; i < b->nmem; i++) {
        cli_json_key(&j, b->mem[i].k);
        cli_json_int(&j, b->mem[i].v);
    }
    cli_json_end(&j);
    cli_json_key(&j, "connections");
    cli_json_arr(&j);
    for (size_t i = 0; i < b->nconn; i++) {
        cli_json_obj(&j);
        cli_json_key(&j, "node");
        cli_json_str(&j, b->conn[i].node);
        if (b->conn[i].bytes_in >= 0) {
            cli_json_key(&j, "bytes_in");
            cli_json_int(&j, b->conn[i].bytes_in);
            cli_json_key(&j, "bytes_out");
            cli_json_int(&j, b->conn[i].bytes_out);
            cli_json_key(&j, "msgs_in");
            cli_json_int(&j, b->conn[i].msgs_in);
            cli_json_key(&j, "msgs_out");
            cli_json_int(&j, b->conn[i].msgs_out);
            cli_json_key(&j, "out_queue");
            cli_json_int(&j, b->conn[i].out_queue);
        }
        cli_json_end(&j);
    }
    cli_json_end(&j);
    cli_json_key(&j, "sort");
    cli_json_str(&j, t->sort);
    cli_json_key(&j, "processes_top");
    cli_json_arr(&j);
    for (size_t i = 0; i < b->nproc; i++) {
        const tproc *p = &b->procs[i], *o = find_proc(a, p->pid);
        cli_json_obj(&j);
        cli_json_key(&j, "pid");
        cli_json_str(&j, p->pid);
        cli_json_key(&j, "name");
        if (p->name[0])
            cli_json_str(&j, p->name);
        else
            cli_json_null(&j);
        cli_json_key(&j, "reductions");
        cli_json_int(&j, p->reductions);
        cli_json_key(&j, "reductions_delta");
        if (o && p->reductions >= 0 && o->reductions >= 0)
            cli_json_int(&j, p->reductions - o->reductions);
        else
            cli_json_null(&j);
        cli_json_key(&j, "memory");
        cli_json_int(&j, p->memory);
        cli_json_key(&j, "message_queue_len");
        cli_json_int(&j, p->mq);
        cli_json_key(&j, "status");
        cli_json_str(&j, p->status[0] ? p->status : NULL);
        cli_json_key(&j, "current_function");
        cli_json_str(&j, p->current[0] ? p->current : NULL);
        cli_json_end(&j);
    }
    cli_json_end(&j);
    cli_json_end(&j);
    cli_json_write(&j, stdout);
}

/* ================================================================ the terminal */

static struct termios saved_tio;
static bool tio_saved;
static volatile sig_atomic_t quit_flag;

static void on_signal(int sig)
{
    (void)sig;
    quit_flag = 1;
}

static void term_restore(void)
{
    if (!tio_saved) return;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    fputs("\x1b[?25h\x1b[?1049l", stdout); /* cursor back, main screen back */
    fflush(stdout);
    tio_saved = false;
}

static void term_setup(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) return;
    if (tcgetattr(STDIN_FILENO, &saved_tio) != 0) return;
    struct termios raw = saved_tio;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO); /* ISIG stays: Ctrl-C is SIGINT */
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) != 0) return;
    tio_saved = true;
    atexit(term_restore);
    fputs("\x1b[?1049h\x1b[?25l", stdout); /* alternate screen, no cursor */
}

/* Waits up to ms for q (or a signal): true when it is time to quit. */
static bool wait_key(int64_t ms)
{
    for (int64_t end = mono_ms() + ms; !quit_flag;) {
        int64_t left = end - mono_ms();
        if (left <= 0) return false;
        struct pollfd p = {STDIN_FILENO, POLLIN, 0};
        int rc = poll(&p, 1, (int)left);
        if (rc > 0) {
            char c;
            ssize_t r = read(STDIN_FILENO, &c, 1);
            if (r == 1 && (c == 'q' || c == 'Q' || c == 3)) return true;
            if (r == 0) { /* stdin closed: keep refreshing, just sleep */
                struct timespec ts = {left / 1000, (left % 1000) * 1000000};
                nanosleep(&ts, NULL);
            }
        } else if (rc < 0 && errno != EINTR) {
            return false;
        }
    }
    return true;
}

/* ================================================================ the command */

static int top_loop(top_ctx *t)
{
    char why[1024] = "";
    snap a, b;
    snap_init(&a);
    snap_init(&b);
    if (take(t, &a, why, sizeof why)) {
        cli_err("%s", why);
        snap_clear(&a);
        return CLI_FAIL;
    }
    int status = CLI_OK;
    if (t->o->once) {
        struct timespec ts = {t->o->interval_ms / 1000, (t->o->interval_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        if (take(t, &b, why, sizeof why)) {
            cli_err("%s", why);
            status = CLI_FAIL;
        } else if (t->o->json) {
            render_json(&a, &b, t);
        } else {
            render_text(stdout, &a, &b, t, false);
        }
        snap_clear(&a);
        snap_clear(&b);
        return status;
    }
    term_setup();
    bool tty = tio_saved;
    if (tty) fputs("\x1b[H\x1b[2J", stdout);
    render_text(stdout, NULL, &a, t, tty);
    fflush(stdout);
    while (!wait_key(t->o->interval_ms)) {
        if (take(t, &b, why, sizeof why)) {
            term_restore();
            cli_err("%s", why);
            status = CLI_FAIL;
            break;
        }
        if (tty)
            fputs("\x1b[H", stdout);
        else
            fputs("\n", stdout);
        render_text(stdout, &a, &b, t, tty);
        if (tty) fputs("\x1b[J", stdout); /* clear what the last frame left below */
        fflush(stdout);
        snap_clear(&a);
        a = b;
        snap_init(&b);
    }
    term_restore();
    snap_clear(&a);
    snap_clear(&b);
    return status;
}

static int dist_body(void *arg)
{
    top_ctx *t = arg;
    char why[1024];
    if (dist_prepare(t, why, sizeof why)) {
        cli_err("%s", why);
        return CLI_FAIL;
    }
    int rc = top_loop(t);
    dist_finish(t);
    return rc;
}

int cli_cmd_top(const cli_opts *o0)
{
    cli_opts o = *o0;
    if (!o.interval_ms) o.interval_ms = 1000;
    if (o.json && !o.once) {
        cli_err("top: --json goes with --once");
        return CLI_USAGE;
    }
    top_ctx t = {0};
    t.o = &o;
    t.oc.fd = -1;
    t.holder = TERM_NONE;
    t.k = o.limit > 0 ? (o.limit > 1000 ? 1000 : o.limit) : DEFAULT_K;
    t.sort = o.sort ? o.sort : "reductions";
    char names[1][256];
    if (cli_node_name(o.argv[0], names[0], sizeof names[0])) return CLI_USAGE;
    snprintf(t.name, sizeof t.name, "%s", names[0]);
    char why[1024];
    if (cli_oc_open_node(&t.oc, &o, t.name, why, sizeof why) == 0) {
        int rc = top_loop(&t);
        cli_oc_close(&t.oc);
        return rc;
    }
    if (o.verbose) cli_err("%s; asking by distribution", why);
    int rc = cli_check_proto(&o);
    if (rc) return rc;
    cli_cookie ck;
    uint16_t eport;
    if ((rc = cli_cookie_resolve(&o, names, 1, &ck, &eport)) != 0) return rc;
    bool longnames = strchr(strchr(names[0], '@') + 1, '.') != NULL;
    /* the live view runs until q: the session's deadline bounds each refresh instead */
    cli_opts so = o;
    if (!o.once) so.timeout_ms = 24L * 3600 * 1000;
    if ((rc = cli_dist_up(&so, longnames, &ck, eport)) != 0) return rc;
    cli_set_deadline_ms(o.once ? 2 * o.timeout_ms + o.interval_ms : so.timeout_ms);
    t.node = A(names[0]);
    rc = cli_run(dist_body, &t);
    cli_dist_down();
    return rc;
}
