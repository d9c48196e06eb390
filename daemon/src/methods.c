/* The control API's methods (docs/control-api.md), each run inside a process of the node. */
#include "control.h"
#include "daemon.h"
#include "log.h"
#include "mods.h"

#include <girder/dist.h>
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
    int err;
    if (!param(c, i) || gd_ctl_str(param(c, i), s, sizeof s))
        return fail(c, GD_CTL_EPARAMS, "%s: a string", what);
    /* only existing atoms: a module function's names exist once the module is loaded */
    *out = term_atom_existing(s, strlen(s));
    (void)err;
    return 0;
}

static int m_proc_spawn(call *c)
{
    term_t m, f, args;
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
        int l;
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

/* ---------------------------------------------------------------- the table */

static const method methods[] = {
    {"api.info", 1, m_api_info},       {"node.info", 1, m_node_info},
    {"node.stop", 1, m_node_stop},     {"node.nodes", 1, m_node_nodes},
    {"node.ping", 1, m_node_ping},     {"proc.list", 1, m_proc_list},
    {"proc.info", 1, m_proc_info},     {"proc.spawn", 1, m_proc_spawn},
    {"proc.send", 1, m_proc_send},     {"proc.exit", 1, m_proc_exit},
    {"module.load", 1, m_module_load}, {"module.list", 1, m_module_list},
    {"log.level", 1, m_log_level},     {"log.follow", 1, m_log_follow},
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
