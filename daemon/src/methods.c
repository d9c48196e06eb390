/* The control API's methods (docs/control-api.md), each run inside a process of the node. */
#include "control.h"
#include "daemon.h"
#include "log.h"
#include "mods.h"

#include <girder/dist.h>
#include <girder/node_obs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define A(s) term_atom(s)

/* One call: its params, the result packer, and the error if it failed. */
typedef struct call {
    gd_ctl_req *req;
    term_text_ctx ctx;
    msgpack_packer pk; /* the result */
    int code;          /* 0, or the GD_CTL_E code */
    char msg[512];
    gd_ctl_effects *fx;
} call;

static int fail(call *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(call *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    c->code = code;
    return -1;
}

static const msgpack_object *param(call *c, size_t i)
{
    return i < c->req->nparams ? &c->req->params.via.array.ptr[i] : NULL;
}

/* A term param i; on error the call has failed. */
static int term_param(call *c, size_t i, const char *what, term_t *out)
{
    char err[256];
    if (gd_ctl_term(param(c, i), &c->ctx, out, err, sizeof err))
        return fail(c, GD_CTL_EPARAMS, "%s: %s", what, err);
    return 0;
}

static void pack_term(call *c, term_t t)
{
    gd_ctl_pack_term(&c->pk, t, c->req->terms, &c->ctx);
}

static void kv_str(call *c, const char *k, const char *v)
{
    gd_ctl_pack_str(&c->pk, k);
    gd_ctl_pack_str(&c->pk, v);
}

static void kv_int(call *c, const char *k, int64_t v)
{
    gd_ctl_pack_str(&c->pk, k);
    msgpack_pack_int64(&c->pk, v);
}

static void kv_bool(call *c, const char *k, bool v)
{
    gd_ctl_pack_str(&c->pk, k);
    if (v)
        msgpack_pack_true(&c->pk);
    else
        msgpack_pack_false(&c->pk);
}

static const char *aname(term_t a)
{
    return term_is_atom(a) ? term_atom_name(a, NULL) : "?";
}

/* ---------------------------------------------------------------- api, node */

typedef struct method {
    const char *name;
    unsigned version;
    int (*fn)(call *c);
} method;
static const method *method_table(size_t *n);

static int m_api_info(call *c)
{
    size_t n;
    const method *d = method_table(&n);
    msgpack_pack_map(&c->pk, 4);
    kv_str(c, "protocol", "msgpack-rpc");
    kv_int(c, "version", 1);
    kv_str(c, "node", aname(nd_node()));
    gd_ctl_pack_str(&c->pk, "methods");
    msgpack_pack_map(&c->pk, n);
    for (size_t i = 0; i < n; i++) {
        gd_ctl_pack_str(&c->pk, d[i].name);
        msgpack_pack_uint32(&c->pk, d[i].version);
    }
    return 0;
}

/* Resident and virtual memory of the daemon, from /proc/self/statm (pages). */
static void memory_of_self(uint64_t *rss, uint64_t *vm)
{
    unsigned long long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &res) != 2) size = res = 0;
        fclose(f);
    }
    long pg = sysconf(_SC_PAGESIZE);
    *rss = res * (uint64_t)pg;
    *vm = size * (uint64_t)pg;
}

static void pack_node_list(call *c, term_t l)
{
    msgpack_pack_array(&c->pk, (size_t)(term_list_length(l) > 0 ? term_list_length(l) : 0));
    for (; term_is_cons(l); l = term_tl(l)) gd_ctl_pack_str(&c->pk, aname(term_hd(l)));
}

static int m_node_info(call *c)
{
    uint64_t rss, vm;
    memory_of_self(&rss, &vm);
    dist_stats ds;
    dist_get_stats(&ds);
    term_t nodes = dist_nodes(DIST_CONNECTED);
    msgpack_pack_map(&c->pk, 13);
    kv_str(c, "name", aname(nd_node()));
    kv_str(c, "version", GD_VERSION);
    kv_int(c, "os_pid", getpid());
    kv_int(c, "uptime_ms", (int64_t)(gd_now_ms() - gd_self.start_ms));
    kv_int(c, "schedulers", gd_self.schedulers);
    kv_int(c, "processes", (int64_t)nd_process_count());
    gd_ctl_pack_str(&c->pk, "memory");
    msgpack_pack_map(&c->pk, 3);
    kv_int(c, "rss", (int64_t)rss);
    kv_int(c, "virtual", (int64_t)vm);
    kv_int(c, "atoms", (int64_t)term_atom_count());
    gd_ctl_pack_str(&c->pk, "nodes");
    pack_node_list(c, nodes);
    kv_int(c, "listen_port", dist_listen_port());
    kv_bool(c, "tls", gd_self.tls);
    kv_bool(c, "hidden", gd_self.hidden);
    kv_int(c, "creation", nd_creation());
    gd_ctl_pack_str(&c->pk, "dist");
    msgpack_pack_map(&c->pk, 7);
    kv_int(c, "msgs_in", (int64_t)ds.msgs_in);
    kv_int(c, "msgs_out", (int64_t)ds.msgs_out);
    kv_int(c, "bytes_in", (int64_t)ds.bytes_in);
    kv_int(c, "bytes_out", (int64_t)ds.bytes_out);
    kv_int(c, "conns_up", (int64_t)ds.conns_up);
    kv_int(c, "handshakes_failed", (int64_t)ds.handshakes_failed);
    kv_int(c, "tls_failures", (int64_t)ds.tls_failures);
    term_free(nodes);
    return 0;
}

static int m_node_stop(call *c)
{
    gd_ctl_pack_str(&c->pk, "ok");
    c->fx->stop_node = true;
    return 0;
}

static int m_node_nodes(call *c)
{
    term_t vis = dist_nodes(DIST_VISIBLE), hid = dist_nodes(DIST_HIDDEN);
    long nv = term_list_length(vis), nh = term_list_length(hid);
    msgpack_pack_array(&c->pk, (size_t)((nv > 0 ? nv : 0) + (nh > 0 ? nh : 0)));
    for (int k = 0; k < 2; k++)
        for (term_t l = k ? hid : vis; term_is_cons(l); l = term_tl(l)) {
            msgpack_pack_map(&c->pk, 2);
            kv_str(c, "name", aname(term_hd(l)));
            kv_str(c, "type", k ? "hidden" : "visible");
        }
    term_free(vis);
    term_free(hid);
    return 0;
}

static int m_node_ping(call *c)
{
    char node[1100];
    if (!param(c, 0) || gd_ctl_str(param(c, 0), node, sizeof node))
        return fail(c, GD_CTL_EPARAMS, "node.ping [Node]: Node is a string");
    int err;
    term_t n = term_atom_n(node, strlen(node), &err);
    if (n == TERM_NONE || !strchr(node, '@'))
        return fail(c, GD_CTL_EPARAMS, "not a node name: %s", node);
    gd_ctl_pack_str(&c->pk, dist_ping(n, 10000) == 0 ? "pong" : "pang");
    return 0;
}

/* ---------------------------------------------------------------- processes */

static const char *status_name(nd_status s)
{
    return s == ND_ST_RUNNING    ? "running"
           : s == ND_ST_RUNNABLE ? "runnable"
           : s == ND_ST_WAITING  ? "waiting"
                                 : "exiting";
}

static int m_proc_list(call *c)
{
    int64_t limit = 1000;
    const msgpack_object *l = gd_ctl_map_get(c->req->opts, "limit");
    if (l && gd_ctl_int(l, 0, 1000000, &limit))
        return fail(c, GD_CTL_EPARAMS, "option limit: an integer 0..1000000");
    if (c->req->nparams) return fail(c, GD_CTL_EPARAMS, "proc.list takes only options");
    term_t all = nd_processes();
    long total = term_list_length(all);
    /* processes that die between the listing and the info are left out */
    term_t *pids = calloc((size_t)(total > 0 ? total : 1), sizeof *pids);
    nd_proc_info *infos = calloc((size_t)(total > 0 ? total : 1), sizeof *infos);
    size_t n = 0;
    for (term_t x = all; pids && infos && term_is_cons(x) && (int64_t)n < limit; x = term_tl(x)) {
        if (nd_process_info(term_hd(x), &infos[n]) != 0) continue;
        pids[n++] = term_hd(x);
        nd_consume(10);
    }
    msgpack_pack_map(&c->pk, 2);
    kv_int(c, "total", total);
    gd_ctl_pack_str(&c->pk, "processes");
    msgpack_pack_array(&c->pk, n);
    for (size_t i = 0; i < n; i++) {
        nd_proc_info *pi = &infos[i];
        msgpack_pack_map(&c->pk, 6);
        gd_ctl_pack_str(&c->pk, "pid");
        pack_term(c, pids[i]);
        gd_ctl_pack_str(&c->pk, "name");
        if (pi->registered_name != TERM_NONE)
            gd_ctl_pack_str(&c->pk, aname(pi->registered_name));
        else
            msgpack_pack_nil(&c->pk);
        kv_str(c, "status", status_name(pi->status));
        kv_int(c, "message_queue_len", (int64_t)pi->message_queue_len);
        kv_int(c, "reductions", (int64_t)pi->reductions);
        kv_int(c, "memory", (int64_t)pi->memory);
        nd_proc_info_free(pi);
    }
    free(pids);
    free(infos);
    term_free(all);
    return 0;
}

/* A pid param, or a registered name (an atom) resolved to its pid. */
static int pid_param(call *c, size_t i, term_t *pid)
{
    term_t t;
    if (!param(c, i)) return fail(c, GD_CTL_EPARAMS, "missing the process (a pid or a name)");
    if (term_param(c, i, "process", &t)) return -1;
    if (term_is_atom(t)) {
        term_t p = nd_whereis(t);
        if (p == TERM_NONE)
            return fail(c, GD_CTL_ENOTFOUND, "no process registered as %s", aname(t));
        *pid = p;
        return 0;
    }
    if (!term_is_pid(t)) {
        term_free(t);
        return fail(c, GD_CTL_EPARAMS, "the process is a pid or a registered name");
    }
    *pid = t;
    return 0;
}

static int m_proc_info(call *c)
{
    term_t pid;
    if (pid_param(c, 0, &pid)) return -1;
    nd_proc_info pi;
    if (nd_process_info(pid, &pi) != 0) {
        term_free(pid);
        return fail(c, GD_CTL_ENOTFOUND, "no such process");
    }
    msgpack_pack_map(&c->pk, 11);
    gd_ctl_pack_str(&c->pk, "pid");
    pack_term(c, pid);
    gd_ctl_pack_str(&c->pk, "registered_name");
    if (pi.registered_name != TERM_NONE)
        gd_ctl_pack_str(&c->pk, aname(pi.registered_name));
    else
        msgpack_pack_nil(&c->pk);
    kv_str(c, "status", status_name(pi.status));
    kv_int(c, "message_queue_len", (int64_t)pi.message_queue_len);
    gd_ctl_pack_str(&c->pk, "links");
    pack_term(c, pi.links);
    gd_ctl_pack_str(&c->pk, "monitors");
    pack_term(c, pi.monitors);
    gd_ctl_pack_str(&c->pk, "monitored_by");
    pack_term(c, pi.monitored_by);
    kv_int(c, "reductions", (int64_t)pi.reductions);
    kv_int(c, "memory", (int64_t)pi.memory);
    kv_int(c, "stack_size", (int64_t)pi.stack_size);
    kv_bool(c, "trap_exit", pi.trap_exit);
    nd_proc_info_free(&pi);
    term_free(pid);
    return 0;
}

static int atom_param(call *c, size_t i, const char *what, term_t *out)
{
    char s[1100];
    if (!param(c, i) || gd_ctl_str(param(c, i), s, sizeof s))
        return fail(c, GD_CTL_EPARAMS, "%s: a string", what);
    /* only existing atoms: a module function's names exist once the module is loaded */
    *out = term_atom_existing(s, strlen(s));
    return 0;
}

static int m_proc_spawn(call *c)
{
    term_t m = TERM_NONE, f = TERM_NONE, args;
    if (c->req->nparams != 3) return fail(c, GD_CTL_EPARAMS, "proc.spawn [Module, Function, Args]");
    if (atom_param(c, 0, "Module", &m) || atom_param(c, 1, "Function", &f)) return -1;
    if (term_param(c, 2, "Args", &args)) return -1;
    if (term_list_length(args) < 0) {
        term_free(args);
        return fail(c, GD_CTL_EPARAMS, "Args must be a proper list");
    }
    term_t pid = TERM_NONE;
    int rc = m == TERM_NONE || f == TERM_NONE ? 1 : gd_mods_spawn(m, f, args, &pid);
    long arity = term_list_length(args);
    term_free(args);
    if (rc == 1) {
        char ms[300], fs[300];
        gd_ctl_str(param(c, 0), ms, sizeof ms);
        gd_ctl_str(param(c, 1), fs, sizeof fs);
        return fail(c, GD_CTL_ENOTFOUND, "no module exports %s:%s/%ld", ms, fs, arity);
    }
    if (rc) return fail(c, GD_CTL_EFAILED, "spawn: %s", nd_strerror(rc));
    pack_term(c, pid);
    term_free(pid);
    return 0;
}

static int m_proc_send(call *c)
{
    term_t to, msg;
    if (c->req->nparams != 2) return fail(c, GD_CTL_EPARAMS, "proc.send [To, Message]");
    if (term_param(c, 0, "To", &to)) return -1;
    if (term_param(c, 1, "Message", &msg)) {
        term_free(to);
        return -1;
    }
    bool ok = term_is_pid(to) || term_is_atom(to) || term_is_ref(to) ||
              (term_is_tuple(to) && term_tuple_arity(to) == 2 &&
               term_is_atom(term_tuple_elem(to, 0)) && term_is_atom(term_tuple_elem(to, 1)));
    if (!ok) {
        term_free(to);
        term_free(msg);
        return fail(c, GD_CTL_EPARAMS, "To is a pid, a name, {Name, Node} or an alias");
    }
    int rc = nd_send(to, msg);
    term_free(to);
    if (rc == ND_ENOTREG) return fail(c, GD_CTL_ENOTFOUND, "no process registered under that name");
    if (rc) return fail(c, GD_CTL_EFAILED, "send: %s", nd_strerror(rc));
    gd_ctl_pack_str(&c->pk, "ok");
    return 0;
}

static int m_proc_exit(call *c)
{
    term_t pid, reason;
    if (c->req->nparams != 2) return fail(c, GD_CTL_EPARAMS, "proc.exit [Pid, Reason]");
    if (pid_param(c, 0, &pid)) return -1;
    if (term_param(c, 1, "Reason", &reason)) {
        term_free(pid);
        return -1;
    }
    bool alive = nd_is_alive(pid);
    int rc = nd_exit_signal(pid, reason);
    term_free(pid);
    if (rc) return fail(c, GD_CTL_EFAILED, "exit: %s", nd_strerror(rc));
    if (!alive) return fail(c, GD_CTL_ENOTFOUND, "no such process");
    gd_ctl_pack_str(&c->pk, "ok");
    return 0;
}

/* ---------------------------------------------------------------- modules */

static void pack_module(call *c, term_t info)
{
    size_t n = term_map_size(info);
    msgpack_pack_map(&c->pk, n);
    for (size_t i = 0; i < n; i++) {
        term_t k = term_map_key(info, i), v = term_map_value(info, i);
        gd_ctl_pack_str(&c->pk, aname(k));
        if (k == A("exports")) {
            msgpack_pack_array(&c->pk, (size_t)term_list_length(v));
            for (term_t l = v; term_is_cons(l); l = term_tl(l)) {
                char buf[300];
                int64_t ar = 0;
                term_get_int64(term_tuple_elem(term_hd(l), 1), &ar);
                snprintf(buf, sizeof buf, "%s/%lld", aname(term_tuple_elem(term_hd(l), 0)),
                         (long long)ar);
                gd_ctl_pack_str(&c->pk, buf);
            }
        } else if (term_is_atom(v)) {
            gd_ctl_pack_str(&c->pk, aname(v));
        } else if (term_is_binary(v)) {
            msgpack_pack_str(&c->pk, term_binary_size(v));
            msgpack_pack_str_body(&c->pk, term_binary_data(v), term_binary_size(v));
        } else if (term_is_int(v)) {
            int64_t x = 0;
            term_get_int64(v, &x);
            msgpack_pack_int64(&c->pk, x);
        } else {
            pack_term(c, v); /* app_pid */
        }
    }
}

static int m_module_load(call *c)
{
    char path[4096], err[512];
    if (c->req->nparams != 1 || gd_ctl_str(param(c, 0), path, sizeof path) || !path[0])
        return fail(c, GD_CTL_EPARAMS, "module.load [Path] (a path, or a name in module_dir)");
    bool app = true;
    const msgpack_object *o = gd_ctl_map_get(c->req->opts, "app");
    if (o) {
        if (o->type != MSGPACK_OBJECT_BOOLEAN)
            return fail(c, GD_CTL_EPARAMS, "option app: true or false");
        app = o->via.boolean;
    }
    term_t info;
    if (gd_mods_load(path, app, err, sizeof err, &info) != 0) {
        term_free(info);
        return fail(c, GD_CTL_EFAILED, "%s", err);
    }
    pack_module(c, info);
    term_free(info);
    return 0;
}

static int m_module_list(call *c)
{
    term_t l = gd_mods_list();
    if (l == TERM_NONE) return fail(c, GD_CTL_EFAILED, "the module server is not running");
    msgpack_pack_array(&c->pk, (size_t)term_list_length(l));
    for (term_t x = l; term_is_cons(x); x = term_tl(x)) pack_module(c, term_hd(x));
    term_free(l);
    return 0;
}

/* ---------------------------------------------------------------- log */

static int level_param(call *c, size_t i, int *level)
{
    char s[32];
    if (gd_ctl_str(param(c, i), s, sizeof s) || (*level = gd_level_parse(s)) < 0)
        return fail(c, GD_CTL_EPARAMS,
                    "a level: emergency, alert, critical, error, warning, notice, info, debug");
    return 0;
}

static int m_log_level(call *c)
{
    if (c->req->nparams > 1) return fail(c, GD_CTL_EPARAMS, "log.level [] or [Level]");
    if (c->req->nparams == 1) {
        int l = 0;
        if (level_param(c, 0, &l)) return -1;
        int old = gd_log_level();
        gd_log_set_level(l);
        gd_log(GD_NOTICE, "event=log_level level=%s was=%s", gd_level_name(l), gd_level_name(old));
    }
    gd_ctl_pack_str(&c->pk, gd_level_name(gd_log_level()));
    return 0;
}

static int m_log_follow(call *c)
{
    int l = gd_log_level();
    if (c->req->nparams > 1) return fail(c, GD_CTL_EPARAMS, "log.follow [] or [Level]");
    if (c->req->nparams == 1 && level_param(c, 0, &l)) return -1;
    c->fx->follow_level = l;
    gd_ctl_pack_str(&c->pk, "ok");
    return 0;
}

/* ---------------------------------------------------------------- metrics */

static void kv_u64(call *c, const char *k, uint64_t v)
{
    gd_ctl_pack_str(&c->pk, k);
    msgpack_pack_uint64(&c->pk, v);
}

/* One process of metrics.get's "top". */
typedef struct top_ent {
    term_t pid; /* borrowed from the process list */
    term_t name;
    nd_status status;
    uint64_t reductions, memory, mq, hwm, dropped;
    uint64_t key; /* what it is sorted by */
} top_ent;

enum { SORT_REDUCTIONS, SORT_MEMORY, SORT_MAILBOX };

static int top_cmp(const void *a, const void *b)
{
    const top_ent *x = a, *y = b;
    return x->key < y->key ? 1 : x->key > y->key ? -1 : 0;
}

/*
** "top": every process is looked at (nd_process_info, a little budget each so the request stays
** fair to the node's own processes), the K largest by the sort key are packed. Processes that
** die while it runs are left out.
*/
static void pack_top(call *c, int64_t k, int sort)
{
    term_t all = nd_processes();
    long total = term_list_length(all);
    top_ent *e = calloc((size_t)(total > 0 ? total : 1), sizeof *e);
    size_t n = 0;
    for (term_t x = all; e && term_is_cons(x); x = term_tl(x)) {
        nd_proc_info pi;
        if (nd_process_info(term_hd(x), &pi) != 0) continue;
        top_ent *t = &e[n];
        t->pid = term_hd(x);
        t->name = pi.registered_name;
        t->status = pi.status;
        t->reductions = pi.reductions;
        t->memory = pi.memory;
        t->mq = pi.message_queue_len;
        t->hwm = pi.message_queue_hwm;
        t->dropped = pi.messages_dropped;
        t->key = sort == SORT_MEMORY ? t->memory : sort == SORT_MAILBOX ? t->mq : t->reductions;
        n++;
        nd_proc_info_free(&pi);
        nd_consume(10);
    }
    if (n) qsort(e, n, sizeof *e, top_cmp);
    size_t m = (int64_t)n < k ? n : (size_t)k;
    msgpack_pack_array(&c->pk, m);
    for (size_t i = 0; i < m; i++) {
        msgpack_pack_map(&c->pk, 8);
        gd_ctl_pack_str(&c->pk, "pid");
        pack_term(c, e[i].pid);
        gd_ctl_pack_str(&c->pk, "name");
        if (e[i].name != TERM_NONE)
            gd_ctl_pack_str(&c->pk, aname(e[i].name));
        else
            msgpack_pack_nil(&c->pk);
        kv_str(c, "status", status_name(e[i].status));
        kv_u64(c, "reductions", e[i].reductions);
        kv_u64(c, "memory", e[i].memory);
        kv_u64(c, "message_queue_len", e[i].mq);
        kv_u64(c, "message_queue_hwm", e[i].hwm);
        kv_u64(c, "messages_dropped", e[i].dropped);
    }
    free(e);
    term_free(all);
}

static void pack_dist(call *c)
{
    dist_stats ds;
    dist_get_stats(&ds);
    size_t cap = dist_connections(NULL, 0);
    dist_conn_info *ci = calloc(cap ? cap : 1, sizeof *ci);
    size_t n = ci ? dist_connections(ci, cap) : 0;
    if (n > cap) n = cap;
    msgpack_pack_map(&c->pk, 10);
    kv_u64(c, "msgs_in", ds.msgs_in);
    kv_u64(c, "msgs_out", ds.msgs_out);
    kv_u64(c, "bytes_in", ds.bytes_in);
    kv_u64(c, "bytes_out", ds.bytes_out);
    kv_u64(c, "conns_up", ds.conns_up);
    kv_u64(c, "conns_down", ds.conns_down);
    kv_u64(c, "handshakes_failed", ds.handshakes_failed);
    kv_u64(c, "protocol_errors", ds.protocol_errors);
    kv_u64(c, "tls_failures", ds.tls_failures);
    gd_ctl_pack_str(&c->pk, "connections");
    msgpack_pack_array(&c->pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(&c->pk, 10);
        ci[i].node[sizeof ci[i].node - 1] = 0;
        kv_str(c, "node", ci[i].node);
        kv_bool(c, "up", ci[i].up);
        kv_bool(c, "visible", ci[i].visible);
        kv_u64(c, "msgs_in", ci[i].msgs_in);
        kv_u64(c, "msgs_out", ci[i].msgs_out);
        kv_u64(c, "bytes_in", ci[i].bytes_in);
        kv_u64(c, "bytes_out", ci[i].bytes_out);
        kv_u64(c, "out_queue", ci[i].out_queue);
        kv_u64(c, "busy_events", ci[i].busy_events);
        kv_u64(c, "read_pauses", ci[i].read_pauses);
    }
    free(ci);
}

static int m_metrics_get(call *c)
{
    int64_t top = 0;
    int sort = SORT_REDUCTIONS;
    if (c->req->nparams) return fail(c, GD_CTL_EPARAMS, "metrics.get takes only options");
    const msgpack_object *o = gd_ctl_map_get(c->req->opts, "top");
    if (o && gd_ctl_int(o, 0, 1000, &top))
        return fail(c, GD_CTL_EPARAMS, "option top: an integer 0..1000");
    o = gd_ctl_map_get(c->req->opts, "sort");
    if (o) {
        char s[16];
        if (gd_ctl_str(o, s, sizeof s) ||
            (strcmp(s, "reductions") && strcmp(s, "memory") && strcmp(s, "mailbox")))
            return fail(c, GD_CTL_EPARAMS, "option sort: reductions, memory or mailbox");
        sort = !strcmp(s, "memory")    ? SORT_MEMORY
               : !strcmp(s, "mailbox") ? SORT_MAILBOX
                                       : SORT_REDUCTIONS;
    }
    nd_metrics m;
    int rc = nd_metrics_get(&m);
    if (rc) {
        nd_metrics_free(&m);
        return fail(c, GD_CTL_EFAILED, "metrics: %s", nd_strerror(rc));
    }
    msgpack_pack_map(&c->pk, top > 0 ? 16 : 15);
    kv_str(c, "node", aname(nd_node()));
    kv_u64(c, "uptime_ns", m.uptime_ns);
    gd_ctl_pack_str(&c->pk, "schedulers");
    msgpack_pack_array(&c->pk, m.schedulers);
    for (unsigned i = 0; i < m.schedulers; i++) {
        const nd_sched_metrics *s = &m.sched[i];
        msgpack_pack_map(&c->pk, 8);
        kv_u64(c, "id", i + 1);
        kv_u64(c, "running_ns", s->running_ns);
        kv_u64(c, "spinning_ns", s->spinning_ns);
        kv_u64(c, "idle_ns", s->idle_ns);
        kv_u64(c, "run_queue", s->run_queue);
        kv_u64(c, "steals", s->steals);
        kv_u64(c, "context_switches", s->context_switches);
        kv_u64(c, "reductions", s->reductions);
    }
    kv_u64(c, "global_run_queue", m.global_run_queue);
    kv_u64(c, "processes", m.processes);
    kv_u64(c, "process_limit", m.process_limit);
    kv_u64(c, "spawns", m.spawns);
    kv_u64(c, "exits", m.exits);
    kv_u64(c, "long_schedules", m.long_schedules);
    gd_ctl_pack_str(&c->pk, "messages");
    msgpack_pack_map(&c->pk, 4);
    kv_u64(c, "sent", m.messages_sent);
    kv_u64(c, "received", m.messages_received);
    kv_u64(c, "queued", m.messages_queued);
    kv_u64(c, "dropped", m.messages_dropped);
    kv_u64(c, "mailbox_reports", m.mailbox_reports);
    kv_u64(c, "mailbox_kills", m.mailbox_kills);
    gd_ctl_pack_str(&c->pk, "memory");
    msgpack_pack_map(&c->pk, 5);
    kv_u64(c, "process_table", m.memory.process_table);
    kv_u64(c, "stacks", m.memory.stacks);
    kv_u64(c, "mailboxes", m.memory.mailboxes);
    kv_u64(c, "trace", m.memory.trace);
    kv_u64(c, "rss", m.memory.rss);
    gd_ctl_pack_str(&c->pk, "dist");
    pack_dist(c);
    kv_str(c, "sort",
           sort == SORT_MEMORY    ? "memory"
           : sort == SORT_MAILBOX ? "mailbox"
                                  : "reductions");
    if (top > 0) {
        gd_ctl_pack_str(&c->pk, "top");
        pack_top(c, top, sort);
    }
    nd_metrics_free(&m);
    return 0;
}

/* ---------------------------------------------------------------- tracing */

/*
** One capture per node, owned by the client that started it: only it drains (draining
** consumes) and stops. It ends when that client calls trace.stop (it may still drain what is
** left) or goes away (the I/O thread calls gd_methods_client_gone). A client that goes away
** while its trace.start is running must not leave tracing on: gone[] remembers, per slot, the
** generation after the latest client that went, and a start checks it under the same mutex.
*/
static struct {
    pthread_mutex_t mu;
    bool owned, on;
    uint32_t slot, gen;
    uint32_t *gone; /* per slot: 1 + the generation of the latest client gone there */
    size_t ngone;
    nd_trace_stats base; /* the counters when the capture started */
} T = {.mu = PTHREAD_MUTEX_INITIALIZER};

#define DRAIN_MAX     65536
#define DRAIN_DEFAULT 4096

static bool owner_is(const call *c)
{
    return T.owned && T.slot == c->fx->slot && T.gen == c->fx->gen;
}

/* Throws away what earlier captures left in the rings (bounded by their capacity). */
static void discard_leftovers(void)
{
    nd_event *buf = malloc(1024 * sizeof *buf);
    if (!buf) return;
    nd_trace_stats st;
    nd_trace_stats_get(&st);
    size_t bound = (size_t)st.rings * st.ring_events;
    for (size_t got = 0, n; got <= bound && (n = nd_trace_drain(buf, 1024)) > 0; got += n) {
    }
    free(buf);
}

void gd_methods_client_gone(uint32_t slot, uint32_t gen)
{
    pthread_mutex_lock(&T.mu);
    if (slot >= T.ngone) {
        size_t n = (size_t)slot + 16;
        uint32_t *g = realloc(T.gone, n * sizeof *g);
        if (g) {
            memset(g + T.ngone, 0, (n - T.ngone) * sizeof *g);
            T.gone = g;
            T.ngone = n;
        }
    }
    if (slot < T.ngone && T.gone[slot] < gen + 1) T.gone[slot] = gen + 1;
    if (T.owned && T.slot == slot && T.gen == gen) {
        if (T.on) {
            nd_trace_stop();
            gd_log(GD_NOTICE, "event=trace_stopped reason=client_gone");
        }
        T.owned = T.on = false;
    }
    pthread_mutex_unlock(&T.mu);
}

/* trace.start's options into o; pid (owned, or TERM_NONE) goes to *pid. */
static int trace_opts(call *c, nd_trace_opts *o, term_t *pid)
{
    const msgpack_object *v;
    int64_t x;
    *pid = TERM_NONE;
    if ((v = gd_ctl_map_get(c->req->opts, "kinds"))) {
        /* a list of kind names, or one string of them separated by commas */
        char list[512];
        bool arr = v->type == MSGPACK_OBJECT_ARRAY;
        uint32_t n = arr ? v->via.array.size : 1;
        if ((!arr && gd_ctl_str(v, list, sizeof list)) || n == 0 || n > 64)
            return fail(c, GD_CTL_EPARAMS, "option kinds: a non-empty list of event kinds");
        for (uint32_t i = 0; i < n; i++) {
            char s[32];
            if (arr && gd_ctl_str(&v->via.array.ptr[i], s, sizeof s))
                return fail(c, GD_CTL_EPARAMS, "option kinds: unknown event kind (see docs)");
            for (char *tok = arr ? s : list, *save = NULL, *k;
                 (k = strtok_r(tok, ",", &save)) != NULL; tok = NULL) {
                unsigned kind = 0;
                for (unsigned j = 1; j < ND_EV__COUNT && !kind; j++)
                    if (!strcmp(k, nd_event_kind_name(j))) kind = j;
                if (!kind)
                    return fail(c, GD_CTL_EPARAMS, "option kinds: unknown event kind (see docs)");
                o->kinds |= 1u << kind;
            }
        }
        if (!o->kinds) return fail(c, GD_CTL_EPARAMS, "option kinds: no event kind given");
    }
    if ((v = gd_ctl_map_get(c->req->opts, "ring"))) {
        if (gd_ctl_int(v, 64, 16 << 20, &x) || (x & (x - 1)))
            return fail(c, GD_CTL_EPARAMS, "option ring: a power of two, 64..16777216");
        o->ring_events = (size_t)x;
    }
    if ((v = gd_ctl_map_get(c->req->opts, "max_rate"))) {
        if (gd_ctl_int(v, 1, 1000000000, &x))
            return fail(c, GD_CTL_EPARAMS, "option max_rate: events a second, 1..1000000000");
        o->max_rate = (uint64_t)x;
    }
    if ((v = gd_ctl_map_get(c->req->opts, "pid"))) {
        char err[256];
        term_t t;
        if (gd_ctl_term(v, &c->ctx, &t, err, sizeof err))
            return fail(c, GD_CTL_EPARAMS, "option pid: %s", err);
        if (term_is_atom(t)) {
            term_t p = nd_whereis(t);
            if (p == TERM_NONE)
                return fail(c, GD_CTL_ENOTFOUND, "no process registered as %s", aname(t));
            t = p;
        } else if (!term_is_pid(t)) {
            term_free(t);
            return fail(c, GD_CTL_EPARAMS, "option pid: a pid or a registered name");
        }
        *pid = t;
    }
    return 0;
}

static void pack_trace_stats(call *c)
{
    nd_trace_stats st;
    nd_trace_stats_get(&st);
    msgpack_pack_map(&c->pk, 8);
    kv_bool(c, "on", st.on);
    gd_ctl_pack_str(&c->pk, "owner");
    if (!T.owned)
        msgpack_pack_nil(&c->pk);
    else
        gd_ctl_pack_str(&c->pk, owner_is(c) ? "this_client" : "another_client");
    kv_u64(c, "rings", st.rings);
    kv_u64(c, "ring_events", st.ring_events);
    kv_u64(c, "recorded", st.recorded);
    kv_u64(c, "dropped_full", st.dropped_full);
    kv_u64(c, "dropped_rate", st.dropped_rate);
    /* since the latest trace.start through this API */
    gd_ctl_pack_str(&c->pk, "capture");
    msgpack_pack_map(&c->pk, 3);
    kv_u64(c, "recorded", st.recorded - T.base.recorded);
    kv_u64(c, "dropped_full", st.dropped_full - T.base.dropped_full);
    kv_u64(c, "dropped_rate", st.dropped_rate - T.base.dropped_rate);
}

static int m_trace_start(call *c)
{
    if (c->req->nparams) return fail(c, GD_CTL_EPARAMS, "trace.start takes only options");
    nd_trace_opts o = {0};
    term_t pid;
    if (trace_opts(c, &o, &pid)) return -1;
    o.pid = pid;
    pthread_mutex_lock(&T.mu);
    int rc = 0;
    if (T.owned && T.on && !owner_is(c))
        rc = fail(c, GD_CTL_EBUSY,
                  "another client is tracing this node (one tracer per node: it ends when that "
                  "client calls trace.stop or disconnects)");
    else if (T.owned && T.on)
        rc = fail(c, GD_CTL_EFAILED, "this client is tracing already (trace.stop first)");
    else if (c->fx->slot < T.ngone && T.gone[c->fx->slot] > c->fx->gen)
        rc = fail(c, GD_CTL_EFAILED, "the client has gone");
    if (!rc) {
        T.owned = false;
        discard_leftovers();
        nd_trace_stats_get(&T.base);
        int e = nd_trace_start(&o);
        if (e == ND_ESTATE)
            rc = fail(c, GD_CTL_EBUSY, "tracing is on in this node already (not through this API)");
        else if (e == ND_EINVAL)
            rc = fail(c, GD_CTL_ENOTFOUND, "option pid: not a live process of this node");
        else if (e)
            rc = fail(c, GD_CTL_EFAILED, "trace: %s", nd_strerror(e));
    }
    if (!rc) {
        T.owned = T.on = true;
        T.slot = c->fx->slot;
        T.gen = c->fx->gen;
        nd_trace_stats st;
        nd_trace_stats_get(&st);
        msgpack_pack_map(&c->pk, 3);
        kv_u64(c, "schedulers", st.rings ? st.rings - 1 : 0);
        kv_u64(c, "rings", st.rings);
        kv_u64(c, "ring_events", st.ring_events);
    }
    pthread_mutex_unlock(&T.mu);
    term_free(pid);
    return rc;
}

/* An event: [Ts, Kind, Sched, Info, Pid, Peer, Arg, Id, Reason, Node] (docs/control-api.md). */
static void pack_event(call *c, const nd_event *e)
{
    msgpack_pack_array(&c->pk, 10);
    msgpack_pack_uint64(&c->pk, e->ts);
    gd_ctl_pack_str(&c->pk, nd_event_kind_name(e->kind));
    if (e->sched == ND_EV_NO_SCHED)
        msgpack_pack_nil(&c->pk);
    else
        msgpack_pack_uint16(&c->pk, e->sched);
    msgpack_pack_uint8(&c->pk, e->info);
    for (int k = 0; k < 2; k++) {
        term_t p = nd_event_pid(e, k == 1);
        if (p == TERM_NONE) {
            msgpack_pack_nil(&c->pk);
        } else {
            pack_term(c, p);
            term_free(p);
        }
    }
    msgpack_pack_uint64(&c->pk, e->arg);
    msgpack_pack_uint64(&c->pk, e->id);
    if (e->reason == TERM_NONE)
        msgpack_pack_nil(&c->pk);
    else
        pack_term(c, e->reason);
    if (term_is_atom(e->node))
        gd_ctl_pack_str(&c->pk, aname(e->node));
    else
        msgpack_pack_nil(&c->pk);
}

static int m_trace_drain(call *c)
{
    int64_t max = DRAIN_DEFAULT;
    if (c->req->nparams) return fail(c, GD_CTL_EPARAMS, "trace.drain takes only options");
    const msgpack_object *o = gd_ctl_map_get(c->req->opts, "max");
    if (o && gd_ctl_int(o, 1, DRAIN_MAX, &max))
        return fail(c, GD_CTL_EPARAMS, "option max: an integer 1..%d", DRAIN_MAX);
    nd_event *ev = malloc((size_t)max * sizeof *ev);
    if (!ev) return fail(c, GD_CTL_EBUSY, "out of memory");
    pthread_mutex_lock(&T.mu);
    if (!owner_is(c)) {
        pthread_mutex_unlock(&T.mu);
        free(ev);
        return fail(c, GD_CTL_EBUSY,
                    T.owned ? "another client owns the trace (one drainer per node)"
                            : "no trace to drain (trace.start first)");
    }
    size_t n = nd_trace_drain(ev, (size_t)max);
    bool on = T.on;
    pthread_mutex_unlock(&T.mu);
    msgpack_pack_map(&c->pk, 2);
    kv_bool(c, "on", on);
    gd_ctl_pack_str(&c->pk, "events");
    msgpack_pack_array(&c->pk, n);
    for (size_t i = 0; i < n; i++) {
        pack_event(c, &ev[i]);
        if ((i & 255) == 255) nd_consume(10);
    }
    free(ev);
    return 0;
}

static int m_trace_stop(call *c)
{
    if (c->req->nparams) return fail(c, GD_CTL_EPARAMS, "trace.stop takes no params");
    pthread_mutex_lock(&T.mu);
    if (!owner_is(c)) {
        pthread_mutex_unlock(&T.mu);
        return fail(c, GD_CTL_EBUSY,
                    T.owned ? "another client owns the trace"
                            : "no trace to stop (trace.start first)");
    }
    if (T.on) nd_trace_stop();
    T.on = false;
    pack_trace_stats(c);
    pthread_mutex_unlock(&T.mu);
    return 0;
}

static int m_trace_stats(call *c)
{
    if (c->req->nparams) return fail(c, GD_CTL_EPARAMS, "trace.stats takes no params");
    pthread_mutex_lock(&T.mu);
    pack_trace_stats(c);
    pthread_mutex_unlock(&T.mu);
    return 0;
}

/* ---------------------------------------------------------------- the table */

static const method methods[] = {
    {"api.info", 1, m_api_info},       {"node.info", 1, m_node_info},
    {"node.stop", 1, m_node_stop},     {"node.nodes", 1, m_node_nodes},
    {"node.ping", 1, m_node_ping},     {"proc.list", 1, m_proc_list},
    {"proc.info", 1, m_proc_info},     {"proc.spawn", 1, m_proc_spawn},
    {"proc.send", 1, m_proc_send},     {"proc.exit", 1, m_proc_exit},
    {"module.load", 1, m_module_load}, {"module.list", 1, m_module_list},
    {"log.level", 1, m_log_level},     {"log.follow", 1, m_log_follow},
    {"metrics.get", 1, m_metrics_get}, {"trace.start", 1, m_trace_start},
    {"trace.drain", 1, m_trace_drain}, {"trace.stop", 1, m_trace_stop},
    {"trace.stats", 1, m_trace_stats},
};
static const size_t nmethods = sizeof methods / sizeof methods[0];

static const method *method_table(size_t *n)
{
    *n = nmethods;
    return methods;
}

void gd_methods_run(gd_ctl_req *req, msgpack_sbuffer *out, gd_ctl_effects *fx)
{
    call c = {0};
    c.req = req;
    c.fx = fx;
    c.ctx.node = nd_node();
    c.ctx.creation = nd_creation();
    msgpack_sbuffer res;
    msgpack_sbuffer_init(&res);
    msgpack_packer_init(&c.pk, &res, msgpack_sbuffer_write);
    const method *m = NULL;
    for (size_t i = 0; i < nmethods && !m; i++)
        if (!strcmp(methods[i].name, req->method)) m = &methods[i];
    if (!m)
        fail(&c, GD_CTL_EMETHOD, "no method %s (api.info lists them)", req->method);
    else
        m->fn(&c);
    if (c.code) {
        fx->follow_level = -1;
        fx->stop_node = false;
        gd_ctl_response_err(out, req->msgid, c.code, c.msg);
    } else {
        gd_ctl_response_ok(out, req->msgid, res.data, res.size);
    }
    msgpack_sbuffer_destroy(&res);
}
