/* The server behaviour (gen_server): callbacks run per message; an idle server holds no stack. */
#include "nd_int.h"

typedef struct nd_srv {
    const nd_server_ops *ops;
    void *state;
    term_t parent; /* linked starter, or TERM_NONE */
    /* start handshake */
    void *init_arg;
    term_t starter, tag;
    term_t cur; /* the message being handled (freed by the exit hook if a handler ends us) */
    bool live;  /* init succeeded and terminate has not run yet */
} nd_srv;

static term_t a_ack, a_stop_req;

void nd__srv_atoms(void)
{
    if (!a_ack) {
        a_ack = term_atom("$nd_ack");
        a_stop_req = term_atom("$nd_stop");
    }
}

/* Exit hook: however the server ends (handler crash, exit signal, kill), terminate runs once so
** C state is always released (OTP skips it for kills; C has no garbage collector). */
static void srv_free(void *arg, term_t reason)
{
    nd_srv *s = arg;
    if (s->live && s->ops->terminate) {
        s->live = false;
        s->ops->terminate(s->state, reason);
    }
    term_free(s->parent);
    term_free(s->starter);
    term_free(s->tag);
    term_free(s->cur);
    free(s);
}

_Noreturn static void srv_stop(nd_srv *s, term_t reason)
{
    s->live = false;
    if (s->ops->terminate) s->ops->terminate(s->state, reason);
    nd_exit(reason);
}

static void srv_loop(void *arg);

/* Handles one message (borrowed). */
static void dispatch(nd_srv *s, term_t m)
{
    const nd_server_ops *ops = s->ops;
    term_t reply = TERM_NONE, reason = TERM_NONE;
    if (term_is_tuple(m)) {
        size_t n = term_tuple_arity(m);
        term_t tag = term_tuple_elem(m, 0);
        if (n == 3 && tag == nd__a_gen_call) {
            term_t from = term_tuple_elem(m, 1);
            term_t req = term_tuple_elem(m, 2);
            if (!term_is_tuple(from) || term_tuple_arity(from) != 2) return;
            if (term_is_tuple(req) && term_tuple_arity(req) == 2 &&
                term_tuple_elem(req, 0) == a_stop_req) {
                term_t why = term_dup(term_tuple_elem(req, 1));
                s->live = false;
                if (ops->terminate) ops->terminate(s->state, why);
                nd_reply(from, nd__a_ok);
                nd_exit(why);
            }
            if (!ops->handle_call) return;
            int rc = ops->handle_call(&s->state, req, from, &reply, &reason);
            if (rc == ND_REPLY || (rc == ND_STOP && reply != TERM_NONE)) nd_reply(from, reply);
            if (rc == ND_STOP) srv_stop(s, reason);
            return;
        }
        if (n == 2 && tag == nd__a_gen_cast) {
            if (!ops->handle_cast) return;
            if (ops->handle_cast(&s->state, term_tuple_elem(m, 1), &reason) == ND_STOP)
                srv_stop(s, reason);
            return;
        }
        if (n == 3 && tag == nd__a_EXIT && s->parent != TERM_NONE &&
            term_equal(term_tuple_elem(m, 1), s->parent))
            srv_stop(s, term_dup(term_tuple_elem(m, 2)));
    }
    if (ops->handle_info && ops->handle_info(&s->state, m, &reason) == ND_STOP) srv_stop(s, reason);
}

/* Runs on a fresh stack each time messages arrive; hibernates (drops the stack) when idle. */
static void srv_loop(void *arg)
{
    nd_srv *s = arg;
    for (;;) {
        term_t m;
        if (nd_receive(0, &m) < 0) nd_hibernate(srv_loop, s);
        s->cur = m;
        dispatch(s, m);
        s->cur = TERM_NONE;
        term_free(m);
    }
}

static void srv_main(void *arg)
{
    nd_srv *s = arg;
    nd_set_exit_hook(srv_free, s);
    term_t reason = TERM_NONE;
    int rc = s->ops->init ? s->ops->init(s->init_arg, &s->state, &reason) : 0;
    if (rc != 0) {
        if (reason == TERM_NONE) reason = term_atom("init_failed");
        /* OTP 26 style: the starter gets the error, not an exit signal as well */
        if (s->parent != TERM_NONE) nd_unlink(s->parent);
        nd_send(s->starter, term_tuplev(3, a_ack, term_dup(s->tag),
                                        term_tuplev(2, nd__a_error, term_dup(reason))));
        nd_exit(reason);
    }
    s->live = true;
    nd_send(s->starter, term_tuplev(3, a_ack, term_dup(s->tag), nd__a_ok));
    term_free(s->starter);
    term_free(s->tag);
    s->starter = s->tag = TERM_NONE;
    nd_hibernate(srv_loop, s);
}

typedef struct start_wait {
    term_t tag, mref;
} start_wait;

static bool is_ack(term_t m, void *ud)
{
    start_wait *w = ud;
    if (!term_is_tuple(m)) return false;
    size_t n = term_tuple_arity(m);
    if (n == 3 && term_tuple_elem(m, 0) == a_ack) return term_equal(term_tuple_elem(m, 1), w->tag);
    return n == 5 && term_tuple_elem(m, 0) == nd__a_DOWN &&
           term_equal(term_tuple_elem(m, 1), w->mref);
}

typedef struct start_ctx {
    const nd_server_ops *ops;
    void *arg;
    nd_server_opts opts;
    term_t *pid, *reason;
    int rc;
} start_ctx;

static void start_in_process(void *arg)
{
    start_ctx *c = arg;
    c->rc = nd_server_start(c->ops, c->arg, &c->opts, c->pid, c->reason);
}

int nd_server_start(const nd_server_ops *ops, void *arg, const nd_server_opts *opts,
                    term_t *pid_out, term_t *reason_out)
{
    static const nd_server_opts none;
    if (!opts) opts = &none;
    if (pid_out) *pid_out = TERM_NONE;
    if (reason_out) *reason_out = TERM_NONE;

    nd_proc *self = nd__self();
    if (!self) {
        start_ctx c = {ops, arg, *opts, pid_out, reason_out, ND_ESTATE};
        c.opts.link = false;
        int rc = nd__in_process(start_in_process, &c, opts->timeout_ms ? opts->timeout_ms : 5000);
        return rc ? rc : c.rc;
    }
    nd_srv *s = calloc(1, sizeof *s);
    if (!s) return ND_ENOMEM;
    s->ops = ops;
    s->init_arg = arg;
    s->parent = opts->link ? term_dup(self->pid) : TERM_NONE;
    s->starter = term_dup(self->pid);
    s->tag = nd_make_ref();
    start_wait w = {term_dup(s->tag), TERM_NONE};
    nd_spawn_opts so = {0};
    so.link = opts->link;
    so.trap_exit = opts->trap_exit;
    so.name = opts->name;
    nd_recv_mark();
    term_t pid;
    int rc = nd_spawn(srv_main, s, &so, &pid);
    if (rc != 0) {
        srv_free(s, TERM_NONE);
        term_free(w.tag);
        return rc;
    }
    nd_monitor(pid, &w.mref);
    nd_recv r = {is_ack, &w, NULL, 0, opts->timeout_ms ? opts->timeout_ms : 5000, true};
    term_t m;
    rc = nd_receive_ex(&r, &m);
    nd_demonitor(w.mref, ND_DEMONITOR_FLUSH);
    term_free(w.mref);
    term_free(w.tag);
    if (rc < 0) { /* init took too long: kill it, as OTP does */
        if (opts->link) nd_unlink(pid);
        nd_exit_signal(pid, nd__a_kill);
        if (reason_out) *reason_out = nd__a_timeout;
        term_free(pid);
        return ND_ETIMEOUT;
    }
    term_t res = term_tuple_elem(m, term_tuple_arity(m) == 3 ? 2 : 4);
    if (res == nd__a_ok) {
        term_free(m);
        if (pid_out)
            *pid_out = pid;
        else
            term_free(pid);
        return 0;
    }
    if (reason_out) *reason_out = term_dup(term_is_tuple(res) ? term_tuple_elem(res, 1) : res);
    term_free(m);
    term_free(pid);
    return ND_ESTART;
}

/* ---------------------------------------------------------------- call / cast / reply */

typedef struct call_ctx {
    term_t server, request, *reply;
    int64_t timeout;
    int rc;
} call_ctx;

static bool is_reply(term_t m, void *ud)
{
    term_t mref = *(term_t *)ud;
    if (!term_is_tuple(m)) return false;
    size_t n = term_tuple_arity(m);
    if (n == 2) return nd__same(term_tuple_elem(m, 0), mref);
    return n == 5 && term_tuple_elem(m, 0) == nd__a_DOWN && nd__same(term_tuple_elem(m, 1), mref);
}

/* Whether the pid t is the calling process (a full comparison only when the numbers match). */
static bool is_self(const nd_proc *self, term_t t)
{
    term_pid_info pi;
    if (t == self->pid) return true;
    return term_pid_get(t, &pi) == 0 && pi.id == self->id && term_equal(t, self->pid);
}

static int do_call(term_t server, term_t request, int64_t timeout_ms, term_t *reply)
{
    nd_proc *self = nd__self();
    if (is_self(self, server)) {
        term_free(request);
        if (reply) *reply = nd__a_calling_self;
        return ND_EINVAL;
    }
    term_t mref;
    nd_recv_mark();
    int rc = nd_monitor(server, &mref);
    if (rc != 0) {
        term_free(request);
        return rc;
    }
    term_t from[2] = {term_dup(self->pid), term_dup(mref)};
    term_t req[3] = {nd__a_gen_call, term_tuple(2, from), request};
    term_t msg = term_tuple(3, req);
    /* by name, a missing name shows up as the monitor's DOWN noproc */
    nd_send(server, msg);
    nd_recv r = {is_reply, &mref, NULL, 0, timeout_ms, true};
    term_t m;
    rc = nd_receive_ex(&r, &m);
    if (rc < 0) {
        nd_demonitor(mref, ND_DEMONITOR_FLUSH);
        term_free(mref);
        if (reply) *reply = nd__a_timeout;
        return ND_ETIMEOUT;
    }
    if (term_tuple_arity(m) == 2) {
        nd_demonitor(mref, ND_DEMONITOR_FLUSH);
        if (reply) *reply = term_dup(term_tuple_elem(m, 1));
        rc = 0;
    } else {
        if (reply) *reply = term_dup(term_tuple_elem(m, 4));
        rc = ND_EEXIT;
    }
    term_free(m);
    term_free(mref);
    return rc;
}

static void call_in_process(void *arg)
{
    call_ctx *c = arg;
    c->rc = do_call(c->server, c->request, c->timeout, c->reply);
}

int nd_call(term_t server, term_t request, int64_t timeout_ms, term_t *reply)
{
    if (reply) *reply = TERM_NONE;
    if (nd__self()) return do_call(server, request, timeout_ms, reply);
    call_ctx c = {server, request, reply, timeout_ms, ND_ESTATE};
    int rc = nd__in_process(call_in_process, &c, timeout_ms);
    if (rc != 0) {
        return rc;
    }
    return c.rc;
}

int nd_cast(term_t server, term_t msg)
{
    int rc = nd_send(server, term_tuplev(2, nd__a_gen_cast, msg));
    return rc == ND_ENOTREG ? 0 : rc;
}

int nd_reply(term_t from, term_t reply)
{
    if (!term_is_tuple(from) || term_tuple_arity(from) != 2) {
        term_free(reply);
        return ND_EINVAL;
    }
    term_t m[2] = {term_dup(term_tuple_elem(from, 1)), reply};
    return nd_send(term_tuple_elem(from, 0), term_tuple(2, m));
}

typedef struct stop_ctx {
    term_t server, reason;
    int64_t timeout;
    int rc;
} stop_ctx;

static void stop_in_process(void *arg)
{
    stop_ctx *c = arg;
    term_t mref, reply = TERM_NONE, m;
    nd_monitor(c->server, &mref);
    c->rc = do_call(c->server, term_tuplev(2, a_stop_req, c->reason), c->timeout, &reply);
    term_free(reply);
    if (c->rc == ND_EEXIT) c->rc = 0; /* it was already on its way out */
    if (c->rc == 0) {
        nd_recv r = {is_reply, &mref, NULL, 0, c->timeout, false};
        if (nd_receive_ex(&r, &m) < 0)
            c->rc = ND_ETIMEOUT;
        else
            term_free(m);
    }
    nd_demonitor(mref, ND_DEMONITOR_FLUSH);
    term_free(mref);
}

/* Asks the server to run terminate and exit with reason, then waits until it is gone. */
int nd_server_stop(term_t server, term_t reason, int64_t timeout_ms)
{

    stop_ctx c = {server, reason, timeout_ms, ND_ESTATE};
    int rc = nd__in_process(stop_in_process, &c, timeout_ms);
    return rc ? rc : c.rc;
}
