/* Erlang-facing system services: net_kernel, rex, remote spawn, exported C functions, built-ins. */
#include "core.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ================================================================ exports */

typedef struct dexport {
    struct dexport *next;
    term_t m, f;
    unsigned arity;
    dist_fun fn;
    void *ud;
} dexport;

static pthread_mutex_t ex_mu = PTHREAD_MUTEX_INITIALIZER;
static dexport *exports;

int dist_export(term_t module, term_t function, unsigned arity, dist_fun fn, void *ud)
{
    if (!term_is_atom(module) || !term_is_atom(function) || !fn || arity > 255) return DIST_EINVAL;
    pthread_mutex_lock(&ex_mu);
    for (dexport *e = exports; e; e = e->next)
        if (e->m == module && e->f == function && e->arity == arity) {
            pthread_mutex_unlock(&ex_mu);
            return DIST_EEXIST;
        }
    dexport *e = malloc(sizeof *e);
    if (!e) {
        pthread_mutex_unlock(&ex_mu);
        return DIST_ENOMEM;
    }
    e->m = module;
    e->f = function;
    e->arity = arity;
    e->fn = fn;
    e->ud = ud;
    e->next = exports;
    exports = e;
    pthread_mutex_unlock(&ex_mu);
    return 0;
}

static bool export_find(term_t m, term_t f, unsigned arity, dist_fun *fn, void **ud)
{
    bool found = false;
    pthread_mutex_lock(&ex_mu);
    for (dexport *e = exports; e; e = e->next)
        if (e->m == m && e->f == f && e->arity == arity) {
            *fn = e->fn;
            *ud = e->ud;
            found = true;
            break;
        }
    pthread_mutex_unlock(&ex_mu);
    return found;
}

void dist__exports_free(void)
{
    pthread_mutex_lock(&ex_mu);
    while (exports) {
        dexport *e = exports;
        exports = e->next;
        free(e);
    }
    pthread_mutex_unlock(&ex_mu);
}

#define A(s) term_atom(s)

/* [{M, F, ArityOrArgs, []}]: the one-frame stack trace we report. */
static term_t stack1(term_t m, term_t f, term_t arity_or_args)
{
    return term_list(1, (term_t[]){term_tuplev(4, m, f, arity_or_args, TERM_NIL)});
}

/*
** Applies M:F(Args) (inside a process). Returns the class (DIST_RETURN, ...) with *res; an
** unknown function is error:undef as in Erlang.
*/
static int apply(term_t m, term_t f, term_t args, term_t *res)
{
    long n = term_list_length(args);
    dist_fun fn;
    void *ud;
    if (n < 0 || !term_is_atom(m) || !term_is_atom(f)) {
        *res = A("badarg");
        return DIST_ERROR;
    }
    if (!export_find(m, f, (unsigned)n, &fn, &ud)) {
        *res = A("undef");
        return DIST_ERROR;
    }
    *res = TERM_NONE;
    int rc = fn(ud, args, res);
    if (*res == TERM_NONE) *res = rc == DIST_RETURN ? TERM_ATOM_OK : A("undefined");
    return rc;
}

/* ================================================================ remote spawn (incoming) */

typedef struct spawn_job {
    term_t m, f, args; /* owned */
    term_t erpc_ref;   /* erpc:execute_call/4: the Res reference, else TERM_NONE */
    term_t go;         /* the start message's reference */
} spawn_job;

static bool is_go(term_t msg, void *ud)
{
    return term_equal(msg, *(term_t *)ud);
}

static void job_free(spawn_job *j)
{
    term_free(j->args);
    term_free(j->erpc_ref);
    term_free(j->go);
    free(j);
}

static void job_hook(void *arg, term_t reason)
{
    (void)reason;
    job_free(arg);
}

/* The body of a remotely spawned process: waits for the dist layer to finish wiring the links
** and monitors, then runs the function and exits as Erlang would. The job is freed by the exit
** hook, however the process ends. */
static void spawn_body(void *arg)
{
    spawn_job *j = arg;
    term_t m;
    nd_set_exit_hook(job_hook, j);
    if (nd_receive_if(is_go, &j->go, 10000, &m) < 0) nd_exit(A("spawn_setup_timeout"));
    term_free(m);
    term_t res, reason;
    if (j->erpc_ref != TERM_NONE) {
        term_t ref = term_dup(j->erpc_ref);
        int rc = apply(j->m, j->f, j->args, &res);
        switch (rc) {
        case DIST_RETURN:
            reason = term_tuplev(3, ref, A("return"), res);
            break;
        case DIST_THROW:
            reason = term_tuplev(3, ref, A("throw"), res);
            break;
        case DIST_EXIT:
            reason = term_tuplev(3, ref, A("exit"), res);
            break;
        default:
            reason = term_tuplev(4, ref, A("error"), res, stack1(j->m, j->f, term_dup(j->args)));
            break;
        }
        nd_exit(reason);
    }
    int rc = apply(j->m, j->f, j->args, &res);
    switch (rc) {
    case DIST_RETURN:
        term_free(res);
        reason = A("normal");
        break;
    case DIST_EXIT:
        reason = res;
        break;
    case DIST_THROW:
        reason = term_tuplev(2, term_tuplev(2, A("nocatch"), res),
                             stack1(j->m, j->f, term_dup(j->args)));
        break;
    default:
        reason = term_tuplev(2, res, stack1(j->m, j->f, term_dup(j->args)));
        break;
    }
    nd_exit(reason);
}

static bool opt_present(term_t opts, term_t atom)
{
    for (term_t l = opts; term_is_cons(l); l = term_tl(l))
        if (term_hd(l) == atom) return true;
    return false;
}

/*
** SPAWN_REQUEST from the peer (I/O thread): spawns, sets the link and the monitor the request
** asks for, answers SPAWN_REPLY, and only then lets the process run, so the reply precedes
** every signal from the new process.
*/
void dist__spawn_request(dconn *c, dist_ctl *q)
{
    term_t m = term_tuple_elem(q->mfa, 0), f = term_tuple_elem(q->mfa, 1);
    term_t args = q->payload != TERM_NONE ? q->payload : TERM_NIL;
    bool link = opt_present(q->opts, A("link")), mon = opt_present(q->opts, A("monitor"));
    spawn_job *j = calloc(1, sizeof *j);
    term_t pid = TERM_NONE;
    if (j) {
        j->go = nd_make_ref();
        if (m == A("erpc") && f == A("execute_call") && term_list_length(args) == 4) {
            term_t l = args;
            j->erpc_ref = term_dup(term_hd(l));
            l = term_tl(l);
            j->m = term_hd(l);
            l = term_tl(l);
            j->f = term_hd(l);
            j->args = term_dup(term_hd(term_tl(l)));
        } else {
            j->m = m;
            j->f = f;
            j->args = term_dup(args);
        }
        if (nd_spawn(spawn_body, j, NULL, &pid) != 0) {
            job_free(j);
            pid = TERM_NONE;
        }
    }
    if (pid == TERM_NONE) {
        dist__send_ctl(c,
                       term_tuplev(5, term_small(DOP_SPAWN_REPLY), term_dup(q->ref),
                                   term_dup(q->from), term_small(0), A("system_limit")),
                       TERM_NONE);
        return;
    }
    term_t go = term_dup(j->go);
    if (link) {
        pthread_mutex_lock(&c->mu);
        dist__links_add(&c->links, pid, q->from);
        pthread_mutex_unlock(&c->mu);
        nd_signal s = {ND_SIG_LINK, q->from, pid, TERM_NONE, TERM_NONE, 0};
        nd_dist_deliver(&s);
    }
    if (mon) {
        pthread_mutex_lock(&c->mu);
        dist__mons_add(&c->mons, q->ref, MON_IN, pid, q->from, TERM_NONE);
        pthread_mutex_unlock(&c->mu);
        nd_signal s = {ND_SIG_MONITOR, q->from, pid, TERM_NONE, q->ref, 0};
        nd_dist_deliver(&s);
    }
    dist__send_ctl(c,
                   term_tuplev(5, term_small(DOP_SPAWN_REPLY), term_dup(q->ref), term_dup(q->from),
                               term_small((link ? 1 : 0) | (mon ? 2 : 0)), term_dup(pid)),
                   TERM_NONE);
    nd_send(pid, go);
    term_free(pid);
}

/* ================================================================ remote spawn (outgoing) */

int dist_spawn_request(term_t node, term_t module, term_t function, term_t args, unsigned opts,
                       term_t *ref_out)
{
    term_t self = nd_self();
    if (!dist__st) return DIST_ESTATE;
    if (self == TERM_NONE) return DIST_ENOTPROC;
    if (!term_is_atom(node) || !term_is_atom(module) || !term_is_atom(function) ||
        term_list_length(args) < 0 || (opts & ~(unsigned)(DIST_SPAWN_LINK | DIST_SPAWN_MONITOR)))
        return DIST_EINVAL;
    dconn *c = dist__conn_get(node, true);
    if (!c) return DIST_ENOCONN;
    term_t ref = nd_make_ref();
    term_t o = TERM_NIL;
    if (opts & DIST_SPAWN_MONITOR) o = term_cons(A("monitor"), o);
    if (opts & DIST_SPAWN_LINK) o = term_cons(A("link"), o);
    term_t ctl =
        term_tuplev(6, term_small(DOP_SPAWN_REQUEST), term_dup(ref), term_dup(self), term_dup(self),
                    term_tuplev(3, module, function, term_int(term_list_length(args))), o);
    pthread_mutex_lock(&c->mu);
    dist__mons_add(&c->mons, ref, MON_SPAWN, self, node, TERM_NONE);
    pthread_mutex_unlock(&c->mu);
    int rc = dist__send_ctl(c, ctl, term_dup(args));
    dist__conn_put(c);
    if (rc) {
        nd_send(self,
                term_tuplev(4, A("spawn_reply"), term_dup(ref), A("error"), A("noconnection")));
    }
    if (ref_out)
        *ref_out = ref;
    else
        term_free(ref);
    return 0;
}

void dist__spawn_reply(dconn *c, dist_ctl *q)
{
    pthread_mutex_lock(&c->mu);
    dmonrec *r = dist__mons_take(&c->mons, q->ref);
    pthread_mutex_unlock(&c->mu);
    if (!r) return;
    term_t local = r->local;
    if (r->dir == MON_SPAWN && term_is_pid(q->payload)) {
        if (q->id & 1) {
            pthread_mutex_lock(&c->mu);
            dist__links_add(&c->links, local, q->payload);
            pthread_mutex_unlock(&c->mu);
            nd_signal s = {ND_SIG_LINK, q->payload, local, TERM_NONE, TERM_NONE, 0};
            nd_dist_deliver(&s);
        }
        if (q->id & 2) {
            /* the peer monitors the new process for us under the request's reference: record
            ** it here (node-down) and in the requester (DOWN, demonitor) before the reply */
            pthread_mutex_lock(&c->mu);
            dist__mons_add(&c->mons, q->ref, MON_OUT, local, q->payload, TERM_NONE);
            pthread_mutex_unlock(&c->mu);
            if (nd_monitor_adopt(local, q->payload, q->ref) != 0) { /* requester gone */
                pthread_mutex_lock(&c->mu);
                dist__mon_free(dist__mons_take(&c->mons, q->ref));
                pthread_mutex_unlock(&c->mu);
                dist__send_ctl(c,
                               term_tuplev(4, term_small(DOP_DEMONITOR_P), term_dup(local),
                                           term_dup(q->payload), term_dup(q->ref)),
                               TERM_NONE);
            }
        }
        nd_send(local, term_tuplev(4, A("spawn_reply"), term_dup(q->ref), TERM_ATOM_OK,
                                   term_dup(q->payload)));
    } else if (r->dir == MON_SPAWN) {
        nd_send(local, term_tuplev(4, A("spawn_reply"), term_dup(q->ref), A("error"),
                                   term_dup(q->payload)));
    }
    dist__mon_free(r);
}

/* ================================================================ net_kernel */

static int nk_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    (void)state;
    (void)from;
    (void)reason;
    if (term_is_tuple(req) && term_tuple_arity(req) == 2 && term_tuple_elem(req, 0) == A("is_auth"))
        *reply = A("yes");
    else
        *reply = A("ignored");
    return ND_REPLY;
}

static const nd_server_ops nk_ops = {NULL, nk_call, NULL, NULL, NULL};

int dist_ping(term_t node, int64_t timeout_ms)
{
    if (!dist__st) return DIST_ESTATE;
    if (node == dist__st->node) return 0;
    int rc = dist_connect(node, timeout_ms);
    if (rc) return rc;
    term_t reply = TERM_NONE;
    term_t to = term_tuplev(2, A("net_kernel"), node);
    rc = nd_call(to, term_tuplev(2, A("is_auth"), dist__st->node), timeout_ms, &reply);
    term_free(to);
    bool yes = rc == 0 && reply == A("yes");
    term_free(reply);
    return yes ? 0 : DIST_ENOCONN;
}

/* ================================================================ rex */

typedef struct rex_job {
    term_t m, f, args, from; /* owned; from: {Pid, Tag} or {rex, Pid} for the info form */
} rex_job;

static void rex_job_hook(void *arg, term_t reason)
{
    rex_job *j = arg;
    (void)reason;
    term_free(j->args);
    term_free(j->from);
    free(j);
}

static void rex_worker(void *arg)
{
    rex_job *j = arg;
    nd_set_exit_hook(rex_job_hook, j);
    term_t res;
    int rc = apply(j->m, j->f, j->args, &res);
    term_t reply;
    switch (rc) {
    case DIST_RETURN:
    case DIST_THROW:
        reply = res;
        break;
    case DIST_EXIT:
        reply = term_tuplev(2, A("badrpc"), term_tuplev(2, A("EXIT"), res));
        break;
    default:
        reply = term_tuplev(
            2, A("badrpc"),
            term_tuplev(2, A("EXIT"), term_tuplev(2, res, stack1(j->m, j->f, term_dup(j->args)))));
        break;
    }
    if (term_tuple_elem(j->from, 0) == A("rex"))
        nd_send(term_tuple_elem(j->from, 1), term_tuplev(2, A("rex"), reply));
    else
        nd_reply(j->from, reply);
}

static bool rex_spawn(term_t req, term_t from)
{
    /* {call, M, F, A, GL} */
    if (!term_is_tuple(req) || term_tuple_arity(req) != 5 || term_tuple_elem(req, 0) != A("call"))
        return false;
    rex_job *j = calloc(1, sizeof *j);
    if (!j) return false;
    j->m = term_tuple_elem(req, 1);
    j->f = term_tuple_elem(req, 2);
    j->args = term_dup(term_tuple_elem(req, 3));
    j->from = term_dup(from);
    if (nd_spawn(rex_worker, j, NULL, NULL) != 0) {
        term_free(j->args);
        term_free(j->from);
        free(j);
        return false;
    }
    return true;
}

static int rex_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    (void)state;
    (void)reason;
    if (rex_spawn(req, from)) return ND_NOREPLY;
    *reply = term_tuplev(2, A("badrpc"), A("unsupported"));
    return ND_REPLY;
}

static int rex_info(void **state, term_t msg, term_t *reason)
{
    (void)state;
    (void)reason;
    if (!term_is_tuple(msg) || term_tuple_arity(msg) != 2 || !term_is_pid(term_tuple_elem(msg, 0)))
        return ND_NOREPLY;
    term_t from = term_tuple_elem(msg, 0), req = term_tuple_elem(msg, 1);
    if (req == A("features_request")) {
        nd_send(from, term_tuplev(3, A("features_reply"), nd_node(),
                                  term_list(1, (term_t[]){A("erpc")})));
    } else {
        term_t to = term_tuplev(2, A("rex"), term_dup(from));
        rex_spawn(req, to);
        term_free(to);
    }
    return ND_NOREPLY;
}

static const nd_server_ops rex_ops = {NULL, rex_call, NULL, rex_info, NULL};

/* ================================================================ built-in exports */

static int bi_node(void *ud, term_t args, term_t *res)
{
    (void)ud;
    (void)args;
    *res = nd_node();
    return DIST_RETURN;
}

static int bi_nodes(void *ud, term_t args, term_t *res)
{
    (void)ud;
    unsigned which = DIST_VISIBLE;
    if (term_is_cons(args)) {
        term_t a = term_hd(args);
        which = 0;
        term_t l = term_is_atom(a) ? TERM_NIL : a;
        if (term_is_atom(a)) l = term_cons(a, TERM_NIL);
        for (term_t p = l; term_is_cons(p); p = term_tl(p)) {
            term_t k = term_hd(p);
            if (k == A("visible"))
                which |= DIST_VISIBLE;
            else if (k == A("hidden"))
                which |= DIST_HIDDEN;
            else if (k == A("connected"))
                which |= DIST_CONNECTED;
            else if (k == A("this"))
                which |= 8;
            else if (k == A("known"))
                which |= DIST_CONNECTED | 8;
        }
        if (term_is_atom(a)) term_free(l);
    }
    term_t r = dist_nodes(which & DIST_CONNECTED);
    if (which & 8) r = term_cons(nd_node(), r);
    *res = r;
    return DIST_RETURN;
}

static int bi_processes(void *ud, term_t args, term_t *res)
{
    (void)ud;
    (void)args;
    *res = nd_processes();
    return DIST_RETURN;
}

static int bi_registered(void *ud, term_t args, term_t *res)
{
    (void)ud;
    (void)args;
    *res = nd_registered();
    return DIST_RETURN;
}

static int bi_whereis(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t p = nd_whereis(term_hd(args));
    *res = p == TERM_NONE ? A("undefined") : p;
    return DIST_RETURN;
}

static int bi_is_process_alive(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t p = term_hd(args);
    if (!term_is_pid(p)) {
        *res = A("badarg");
        return DIST_ERROR;
    }
    *res = nd_is_alive(p) ? TERM_ATOM_TRUE : TERM_ATOM_FALSE;
    return DIST_RETURN;
}

static int bi_exit(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t p = term_hd(args);
    if (!term_is_pid(p)) {
        *res = A("badarg");
        return DIST_ERROR;
    }
    nd_exit_signal(p, term_dup(term_hd(term_tl(args))));
    *res = TERM_ATOM_TRUE;
    return DIST_RETURN;
}

static int bi_halt(void *ud, term_t args, term_t *res)
{
    (void)ud;
    (void)args;
    dist__log(DIST_LOG_NOTICE, "event=halt_requested node=%s", dist__st ? dist__st->name : "?");
    kill(getpid(), SIGTERM); /* process-directed: the daemon waits for it with sigwait */
    *res = TERM_ATOM_TRUE;
    return DIST_RETURN;
}

static term_t info_item(term_t pid, term_t key, const nd_proc_info *pi)
{
    term_t v;
    if (key == A("message_queue_len"))
        v = term_int((int64_t)pi->message_queue_len);
    else if (key == A("links"))
        v = term_dup(pi->links);
    else if (key == A("monitors"))
        v = term_dup(pi->monitors);
    else if (key == A("monitored_by"))
        v = term_dup(pi->monitored_by);
    else if (key == A("reductions"))
        v = term_uint(pi->reductions);
    else if (key == A("memory"))
        v = term_uint(pi->memory);
    else if (key == A("trap_exit"))
        v = pi->trap_exit ? TERM_ATOM_TRUE : TERM_ATOM_FALSE;
    else if (key == A("registered_name"))
        v = pi->registered_name != TERM_NONE ? pi->registered_name : TERM_NIL;
    else if (key == A("status"))
        v = A(pi->status == ND_ST_RUNNING    ? "running"
              : pi->status == ND_ST_RUNNABLE ? "runnable"
              : pi->status == ND_ST_WAITING  ? "waiting"
                                             : "exiting");
    else
        v = A("undefined");
    (void)pid;
    return term_tuplev(2, key, v);
}

static int bi_process_info(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t pid = term_hd(args);
    nd_proc_info pi;
    if (!term_is_pid(pid)) {
        *res = A("badarg");
        return DIST_ERROR;
    }
    if (nd_process_info(pid, &pi) != 0) {
        *res = A("undefined");
        return DIST_RETURN;
    }
    if (term_is_cons(term_tl(args))) {
        term_t k = term_hd(term_tl(args));
        if (term_is_atom(k)) {
            *res = info_item(pid, k, &pi);
        } else {
            term_t items[32];
            size_t n = 0;
            for (term_t l = k; term_is_cons(l) && n < 32; l = term_tl(l))
                items[n++] = info_item(pid, term_hd(l), &pi);
            *res = term_list(n, items);
        }
    } else {
        static const char *keys[] = {"registered_name", "status",    "message_queue_len",
                                     "links",           "trap_exit", "reductions",
                                     "memory",          "monitors",  "monitored_by"};
        term_t items[9];
        for (size_t i = 0; i < 9; i++) items[i] = info_item(pid, A(keys[i]), &pi);
        *res = term_list(9, items);
    }
    nd_proc_info_free(&pi);
    return DIST_RETURN;
}

static int bi_system_info(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t k = term_hd(args);
    if (k == A("process_count"))
        *res = term_int((int64_t)nd_process_count());
    else if (k == A("otp_release"))
        *res = term_string("25", 2);
    else if (k == A("system_version"))
        *res = term_string("Girder (Erlang distribution compatible)\n", 40);
    else if (k == A("schedulers") || k == A("schedulers_online"))
        *res = term_int(sysconf(_SC_NPROCESSORS_ONLN));
    else if (k == A("machine"))
        *res = term_string("Girder", 6);
    else {
        *res = A("badarg");
        return DIST_ERROR;
    }
    return DIST_RETURN;
}

static uint64_t ms_now(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t t0_wall;

static int bi_statistics(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t k = term_hd(args);
    if (k == A("wall_clock")) {
        *res = term_tuplev(2, term_uint(ms_now(CLOCK_MONOTONIC) - t0_wall), term_int(0));
    } else if (k == A("runtime")) {
        *res = term_tuplev(2, term_uint(ms_now(CLOCK_PROCESS_CPUTIME_ID)), term_int(0));
    } else if (k == A("reductions")) {
        nd_stats s;
        nd_get_stats(&s);
        *res = term_tuplev(2, term_uint(s.context_switches), term_int(0));
    } else if (k == A("context_switches")) {
        nd_stats s;
        nd_get_stats(&s);
        *res = term_tuplev(2, term_uint(s.context_switches), term_int(0));
    } else {
        *res = A("badarg");
        return DIST_ERROR;
    }
    return DIST_RETURN;
}

static int bi_send(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t to = term_hd(args), msg = term_hd(term_tl(args));
    int rc = nd_send(to, term_dup(msg));
    if (rc) {
        *res = A("badarg");
        return DIST_ERROR;
    }
    *res = term_dup(msg);
    return DIST_RETURN;
}

static int bi_ping(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t n = term_hd(args);
    if (!term_is_atom(n)) {
        *res = A("badarg");
        return DIST_ERROR;
    }
    *res = A(dist_ping(n, 7000) == 0 ? "pong" : "pang");
    return DIST_RETURN;
}

static int bi_disconnect(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t n = term_hd(args);
    *res = term_is_atom(n) && dist_disconnect(n) == 0 ? TERM_ATOM_TRUE : TERM_ATOM_FALSE;
    return DIST_RETURN;
}

static bool is_spawn_reply(term_t m, void *ud)
{
    return term_is_tuple(m) && term_tuple_arity(m) == 4 &&
           term_tuple_elem(m, 0) == A("spawn_reply") &&
           term_equal(term_tuple_elem(m, 1), *(term_t *)ud);
}

/* erlang:spawn(Node, M, F, A) and spawn_link/4 from Girder, through dist_spawn_request. */
static int bi_spawn(void *ud, term_t args, term_t *res)
{
    term_t node = term_hd(args), l = term_tl(args);
    term_t m = term_hd(l), f = term_hd(term_tl(l)), a = term_hd(term_tl(term_tl(l)));
    if (node == nd_node() || !term_is_atom(node)) {
        *res = A("badarg");
        return DIST_ERROR;
    }
    term_t ref;
    if (dist_spawn_request(node, m, f, a, ud ? DIST_SPAWN_LINK : 0, &ref) != 0) {
        *res = A("badarg");
        return DIST_ERROR;
    }
    term_t reply;
    if (nd_receive_if(is_spawn_reply, &ref, 10000, &reply) < 0) {
        term_free(ref);
        *res = A("timeout");
        return DIST_ERROR;
    }
    term_free(ref);
    bool ok = term_tuple_elem(reply, 2) == TERM_ATOM_OK;
    *res = term_dup(term_tuple_elem(reply, 3));
    term_free(reply);
    return ok ? DIST_RETURN : DIST_ERROR;
}

static void builtins(void)
{
    term_t e = A("erlang");
    dist_export(e, A("node"), 0, bi_node, NULL);
    dist_export(e, A("nodes"), 0, bi_nodes, NULL);
    dist_export(e, A("nodes"), 1, bi_nodes, NULL);
    dist_export(e, A("registered"), 0, bi_registered, NULL);
    dist_export(e, A("processes"), 0, bi_processes, NULL);
    dist_export(e, A("whereis"), 1, bi_whereis, NULL);
    dist_export(e, A("is_process_alive"), 1, bi_is_process_alive, NULL);
    dist_export(e, A("exit"), 2, bi_exit, NULL);
    dist_export(e, A("halt"), 0, bi_halt, NULL);
    dist_export(e, A("halt"), 1, bi_halt, NULL);
    dist_export(e, A("process_info"), 1, bi_process_info, NULL);
    dist_export(e, A("process_info"), 2, bi_process_info, NULL);
    dist_export(e, A("system_info"), 1, bi_system_info, NULL);
    dist_export(e, A("statistics"), 1, bi_statistics, NULL);
    dist_export(e, A("send"), 2, bi_send, NULL);
    dist_export(e, A("spawn"), 4, bi_spawn, NULL);
    dist_export(e, A("spawn_link"), 4, bi_spawn, (void *)1);
    dist_export(e, A("disconnect_node"), 1, bi_disconnect, NULL);
    dist_export(A("net_adm"), A("ping"), 1, bi_ping, NULL);
}

/* ================================================================ start / stop */

static term_t nk_pid, rex_pid;

/* Registers the built-in exports; a second call finds them taken (DIST_EEXIST) and changes
** nothing. */
void dist__sys_exports(void)
{
    builtins();
    dist__global_exports();
}

int dist__sys_start(void)
{
    t0_wall = ms_now(CLOCK_MONOTONIC);
    dist__sys_exports();
    nd_server_opts o = {0};
    o.name = A("net_kernel");
    int rc = nd_server_start(&nk_ops, NULL, &o, &nk_pid, NULL);
    if (rc) return rc;
    o.name = A("rex");
    rc = nd_server_start(&rex_ops, NULL, &o, &rex_pid, NULL);
    if (rc) return rc;
    return dist__global_start();
}

void dist__sys_stop(void)
{
    dist__global_stop();
    if (nk_pid != TERM_NONE) nd_server_stop(nk_pid, A("shutdown"), 2000);
    if (rex_pid != TERM_NONE) nd_server_stop(rex_pid, A("shutdown"), 2000);
    term_free(nk_pid);
    term_free(rex_pid);
    nk_pid = rex_pid = TERM_NONE;
}
