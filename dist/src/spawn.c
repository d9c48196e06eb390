/* Remote spawn and exported C functions: the registry, apply, SPAWN_REQUEST and SPAWN_REPLY. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

#define A(s) term_atom(s)

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

/* [{M, F, ArityOrArgs, []}]: the one-frame stack trace we report. */
term_t dist__stack1(term_t m, term_t f, term_t arity_or_args)
{
    return term_list(1, (term_t[]){term_tuplev(4, m, f, arity_or_args, TERM_NIL)});
}

/*
** Applies M:F(Args) (inside a process). Returns the class (DIST_RETURN, ...) with *res; an
** unknown function is error:undef as in Erlang.
*/
int dist__apply(term_t m, term_t f, term_t args, term_t *res)
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
    if (nd_receive_if(is_go, &j->go, 10000, &m) < 0) nd_exit(A("spawn_setup_timeout"));
    term_free(m);
    term_t res, reason;
    if (j->erpc_ref != TERM_NONE) {
        term_t ref = term_dup(j->erpc_ref);
        int rc = dist__apply(j->m, j->f, j->args, &res);
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
            reason =
                term_tuplev(4, ref, A("error"), res, dist__stack1(j->m, j->f, term_dup(j->args)));
            break;
        }
        nd_exit(reason);
    }
    int rc = dist__apply(j->m, j->f, j->args, &res);
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
                             dist__stack1(j->m, j->f, term_dup(j->args)));
        break;
    default:
        reason = term_tuplev(2, res, dist__stack1(j->m, j->f, term_dup(j->args)));
        break;
    }
    nd_exit(reason);
}

static bool opt_present(term_t opts, term_t atom)
{
    for (term_t l = opts; term_is_cons(l); l = term_tl(l))
        if (term_equal(term_hd(l), atom)) return true;
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
        if (term_equal(m, A("erpc")) && term_equal(f, A("execute_call")) &&
            term_list_length(args) == 4) {
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
        /* the hook from the start: a process killed before it runs still frees its job */
        nd_spawn_opts so = {.exit_hook = job_hook, .exit_hook_arg = j};
        if (nd_spawn(spawn_body, j, &so, &pid) != 0) {
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

static int spawn_request_inside(term_t node, term_t module, term_t function, term_t args,
                                unsigned opts, term_t *ref_out)
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

int dist_spawn_request(term_t node, term_t module, term_t function, term_t args, unsigned opts,
                       term_t *ref_out)
{
    if (!dist__enter()) return DIST_ESTATE;
    int rc = spawn_request_inside(node, module, function, args, opts, ref_out);
    dist__leave();
    return rc;
}
