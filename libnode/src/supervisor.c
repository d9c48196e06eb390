/* Supervisors: OTP's restart strategies, intensity, child-spec operations, on the server behaviour.
 */
#include "nd_int.h"

typedef struct sup_child {
    term_t id;
    nd_child_start_fn start;
    void *arg;
    nd_restart restart;
    int64_t shutdown;
    nd_child_type type;
    term_t pid;   /* running pid, or TERM_NONE */
    term_t extra; /* simple_one_for_one: the start argument */
} sup_child;

typedef struct sup_state {
    nd_sup_flags flags;
    sup_child *kids; /* in start order */
    size_t n, cap;
    sup_child tmpl;     /* simple_one_for_one */
    uint64_t *restarts; /* timestamps (ns) of recent restarts */
    size_t nrestarts;
} sup_state;

typedef struct sup_init {
    nd_sup_flags flags;
    const nd_child_spec *children;
    size_t n;
} sup_init;

static term_t a_start_child, a_start_dynamic, a_terminate_child, a_restart_child, a_delete_child,
    a_which_children, a_count_children, a_not_found, a_running, a_already_present,
    a_failed_to_start_child, a_reached_max_restart_intensity;

void nd__sup_atoms(void)
{
    if (a_start_child) return;
    a_start_child = term_atom("start_child");
    a_start_dynamic = term_atom("start_dynamic");
    a_terminate_child = term_atom("terminate_child");
    a_restart_child = term_atom("restart_child");
    a_delete_child = term_atom("delete_child");
    a_which_children = term_atom("which_children");
    a_count_children = term_atom("count_children");
    a_not_found = term_atom("not_found");
    a_running = term_atom("running");
    a_already_present = term_atom("already_present");
    a_failed_to_start_child = term_atom("failed_to_start_child");
    a_reached_max_restart_intensity = term_atom("reached_max_restart_intensity");
}

static void child_from_spec(sup_child *c, const nd_child_spec *sp)
{
    c->id = term_dup(sp->id);
    c->start = sp->start;
    c->arg = sp->arg;
    c->restart = sp->restart;
    c->shutdown = sp->shutdown;
    c->type = sp->type;
    c->pid = TERM_NONE;
    c->extra = TERM_NONE;
}

static void child_clear(sup_child *c)
{
    term_free(c->id);
    term_free(c->pid);
    term_free(c->extra);
    memset(c, 0, sizeof *c);
}

static int add_child(sup_state *s, const sup_child *c)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 8;
        sup_child *k = realloc(s->kids, ncap * sizeof *k);
        if (!k) return ND_ENOMEM;
        s->kids = k;
        s->cap = ncap;
    }
    s->kids[s->n++] = *c;
    return 0;
}

static void remove_child(sup_state *s, size_t i)
{
    child_clear(&s->kids[i]);
    memmove(&s->kids[i], &s->kids[i + 1], (s->n - i - 1) * sizeof *s->kids);
    s->n--;
}

static long find_by_id(sup_state *s, term_t id)
{
    for (size_t i = 0; i < s->n; i++)
        if (term_equal(s->kids[i].id, id)) return (long)i;
    return -1;
}

static long find_by_pid(sup_state *s, term_t pid)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->kids[i].pid != TERM_NONE && term_equal(s->kids[i].pid, pid)) return (long)i;
    return -1;
}

/* Starts child c (linked to us). 0 = started (or ignored: pid stays NONE), else ND_ESTART with
** *reason. */
static int start_one(sup_child *c, term_t *reason)
{
    term_t pid = TERM_NONE;
    *reason = TERM_NONE;
    int rc = c->start(c->arg, c->extra, &pid, reason);
    if (rc == 1) {
        c->pid = TERM_NONE;
        return 0;
    }
    if (rc != 0) {
        if (*reason == TERM_NONE) *reason = term_atom(nd_err_name(rc));
        term_free(pid);
        return ND_ESTART;
    }
    c->pid = pid;
    return 0;
}

static bool is_exit_from(term_t m, void *ud)
{
    return term_is_tuple(m) && term_tuple_arity(m) == 3 && term_tuple_elem(m, 0) == nd__a_EXIT &&
           term_equal(term_tuple_elem(m, 1), *(term_t *)ud);
}

static bool is_down_ref(term_t m, void *ud)
{
    return term_is_tuple(m) && term_tuple_arity(m) == 5 && term_tuple_elem(m, 0) == nd__a_DOWN &&
           term_equal(term_tuple_elem(m, 1), *(term_t *)ud);
}

/*
** OTP's shutdown: monitor, unlink (taking an EXIT already queued), then exit(shutdown) and wait
** `shutdown` ms for the DOWN before killing; brutal_kill kills at once.
*/
static void stop_one(sup_child *c)
{
    if (c->pid == TERM_NONE) return;
    term_t pid = c->pid, mref, m;
    c->pid = TERM_NONE;
    nd_monitor(pid, &mref);
    nd_unlink(pid);
    if (nd_receive_if(is_exit_from, &pid, 0, &m) >= 0) term_free(m);
    nd_exit_signal(pid, c->shutdown == ND_BRUTAL_KILL ? nd__a_kill : nd__a_shutdown);
    int64_t wait = c->shutdown == ND_BRUTAL_KILL ? ND_INFINITY : c->shutdown;
    if (nd_receive_if(is_down_ref, &mref, wait, &m) < 0) {
        nd_exit_signal(pid, nd__a_kill);
        nd_receive_if(is_down_ref, &mref, ND_INFINITY, &m);
    }
    term_free(m);
    term_free(mref);
    term_free(pid);
}

static void stop_all(sup_state *s)
{
    for (size_t i = s->n; i-- > 0;) stop_one(&s->kids[i]);
}

/* Records a restart; false when more than intensity restarts fall within the period. */
static bool add_restart(sup_state *s)
{
    uint64_t now = nd__now();
    uint64_t period = (uint64_t)(s->flags.period_ms ? s->flags.period_ms : 5000) * 1000000u;
    size_t k = 0;
    for (size_t i = 0; i < s->nrestarts; i++)
        if (now - s->restarts[i] < period) s->restarts[k++] = s->restarts[i];
    s->nrestarts = k;
    uint64_t *r = realloc(s->restarts, (k + 1) * sizeof *r);
    if (!r) return false;
    s->restarts = r;
    s->restarts[s->nrestarts++] = now;
    return s->nrestarts <= s->flags.intensity;
}

static bool is_shutdown_reason(term_t r)
{
    return r == nd__a_normal || r == nd__a_shutdown ||
           (term_is_tuple(r) && term_tuple_arity(r) == 2 &&
            term_tuple_elem(r, 0) == nd__a_shutdown);
}

/*
** Restarts per the strategy after child i died. Returns false when the intensity is exceeded
** (the caller then stops the supervisor with reason shutdown).
*/
static bool restart(sup_state *s, size_t i)
{
    for (;;) {
        if (!add_restart(s)) return false;
        size_t from = i, to = i + 1;
        if (s->flags.strategy == ND_ONE_FOR_ALL) {
            from = 0;
            to = s->n;
        } else if (s->flags.strategy == ND_REST_FOR_ONE) {
            to = s->n;
        }
        for (size_t k = to; k-- > from;) stop_one(&s->kids[k]);
        /* temporary children that were stopped are not restarted */
        for (size_t k = to; k-- > from;)
            if (k != i && s->kids[k].restart == ND_TEMPORARY) {
                remove_child(s, k);
                if (k < i) i--;
                to--;
            }
        bool failed = false;
        for (size_t k = from; k < to; k++) {
            term_t why;
            if (start_one(&s->kids[k], &why) != 0) {
                term_free(why);
                failed = true;
                i = k;
                break;
            }
        }
        if (!failed) return true;
    }
}

static int sup_init_cb(void *arg, void **state, term_t *reason)
{
    sup_init *in = arg;

    sup_state *s = calloc(1, sizeof *s);
    if (!s) return ND_STOP;
    s->flags = in->flags;
    *state = s;
    if (s->flags.strategy == ND_SIMPLE_ONE_FOR_ONE) {
        if (in->n != 1) {
            *reason = term_atom("bad_simple_one_for_one_spec");
            free(s);
            return ND_STOP;
        }
        child_from_spec(&s->tmpl, &in->children[0]);
        return 0;
    }
    for (size_t i = 0; i < in->n; i++) {
        sup_child c;
        child_from_spec(&c, &in->children[i]);
        if (find_by_id(s, c.id) >= 0 || add_child(s, &c) != 0) {
            child_clear(&c);
            stop_all(s);
            *reason = term_atom("duplicate_child_name");
            return ND_STOP;
        }
        term_t why;
        if (start_one(&s->kids[s->n - 1], &why) != 0) {
            term_t id = term_dup(c.id);
            stop_all(s);
            for (size_t k = s->n; k-- > 0;) remove_child(s, k);
            free(s->kids);
            free(s);
            *state = NULL;
            *reason =
                term_tuplev(2, nd__a_shutdown, term_tuplev(3, a_failed_to_start_child, id, why));
            return ND_STOP;
        }
    }
    return 0;
}

static void sup_terminate(void *state, term_t reason)
{
    sup_state *s = state;
    if (!s) return;
    stop_all(s);
    for (size_t k = s->n; k-- > 0;) remove_child(s, k);
    child_clear(&s->tmpl);
    free(s->kids);
    free(s->restarts);
    free(s);
}

static int sup_info(void **state, term_t msg, term_t *reason)
{
    sup_state *s = *state;
    if (!term_is_tuple(msg) || term_tuple_arity(msg) != 3 || term_tuple_elem(msg, 0) != nd__a_EXIT)
        return ND_NOREPLY;
    long i = find_by_pid(s, term_tuple_elem(msg, 1));
    if (i < 0) return ND_NOREPLY;
    term_t why = term_tuple_elem(msg, 2);
    sup_child *c = &s->kids[i];
    term_free(c->pid);
    c->pid = TERM_NONE;
    bool dynamic = s->flags.strategy == ND_SIMPLE_ONE_FOR_ONE;
    if (c->restart == ND_TEMPORARY || (c->restart == ND_TRANSIENT && is_shutdown_reason(why))) {
        if (c->restart == ND_TEMPORARY || dynamic) remove_child(s, (size_t)i);
        return ND_NOREPLY;
    }
    if (!restart(s, (size_t)i)) {
        *reason = nd__a_shutdown;
        return ND_STOP;
    }
    return ND_NOREPLY;
}

static term_t ok_pid(term_t pid)
{
    return term_tuplev(2, nd__a_ok, pid != TERM_NONE ? term_dup(pid) : nd__a_undefined);
}

static term_t err(term_t what)
{
    return term_tuplev(2, nd__a_error, what);
}

static term_t start_new(sup_state *s, sup_child *c)
{
    term_t why;
    if (start_one(c, &why) != 0) {
        child_clear(c);
        return err(why);
    }
    if (add_child(s, c) != 0) {
        stop_one(c);
        child_clear(c);
        return err(term_atom("enomem"));
    }
    return ok_pid(c->pid);
}

static int sup_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    sup_state *s = *state;
    term_t op = term_is_tuple(req) ? term_tuple_elem(req, 0) : req;
    term_t a1 =
        term_is_tuple(req) && term_tuple_arity(req) > 1 ? term_tuple_elem(req, 1) : TERM_NONE;
    bool dynamic = s->flags.strategy == ND_SIMPLE_ONE_FOR_ONE;
    long i;
    if (op == a_start_child && !dynamic) {
        int64_t ptr;
        term_get_int64(a1, &ptr);
        sup_child c;
        child_from_spec(&c, (const nd_child_spec *)(intptr_t)ptr);
        if ((i = find_by_id(s, c.id)) >= 0) {
            *reply = err(s->kids[i].pid != TERM_NONE ? a_running : a_already_present);
            child_clear(&c);
        } else {
            *reply = start_new(s, &c);
        }
    } else if (op == a_start_dynamic && dynamic) {
        sup_child c = s->tmpl;
        c.id = nd__a_undefined;
        c.pid = TERM_NONE;
        c.extra = term_dup(a1);
        *reply = start_new(s, &c);
    } else if (op == a_terminate_child) {
        i = term_is_pid(a1) ? find_by_pid(s, a1) : dynamic ? -1 : find_by_id(s, a1);
        if (i < 0) {
            *reply = err(a_not_found);
        } else {
            stop_one(&s->kids[i]);
            if (dynamic || s->kids[i].restart == ND_TEMPORARY) remove_child(s, (size_t)i);
            *reply = nd__a_ok;
        }
    } else if (op == a_restart_child && !dynamic) {
        if ((i = find_by_id(s, a1)) < 0) {
            *reply = err(a_not_found);
        } else if (s->kids[i].pid != TERM_NONE) {
            *reply = err(a_running);
        } else {
            term_t why;
            *reply = start_one(&s->kids[i], &why) == 0 ? ok_pid(s->kids[i].pid) : err(why);
        }
    } else if (op == a_delete_child && !dynamic) {
        if ((i = find_by_id(s, a1)) < 0) {
            *reply = err(a_not_found);
        } else if (s->kids[i].pid != TERM_NONE) {
            *reply = err(a_running);
        } else {
            remove_child(s, (size_t)i);
            *reply = nd__a_ok;
        }
    } else if (op == a_which_children) {
        term_t l = TERM_NIL;
        for (size_t k = s->n; k-- > 0;) {
            sup_child *c = &s->kids[k];
            l = term_cons(term_tuplev(3, term_dup(c->id),
                                      c->pid != TERM_NONE ? term_dup(c->pid) : nd__a_undefined,
                                      c->type == ND_SUPERVISOR ? nd__a_supervisor : nd__a_worker),
                          l);
        }
        *reply = l;
    } else if (op == a_count_children) {
        long active = 0, sups = 0, workers = 0;
        for (size_t k = 0; k < s->n; k++) {
            if (s->kids[k].pid != TERM_NONE) active++;
            if (s->kids[k].type == ND_SUPERVISOR)
                sups++;
            else
                workers++;
        }
        term_t e[4] = {term_tuplev(2, nd__a_specs, term_int(dynamic ? 1 : (long)s->n)),
                       term_tuplev(2, nd__a_active, term_int(active)),
                       term_tuplev(2, nd__a_supervisors, term_int(sups)),
                       term_tuplev(2, nd__a_workers, term_int(workers))};
        *reply = term_list(4, e);
    } else {
        *reply = err(term_atom("badarg"));
    }
    return ND_REPLY;
}

static const nd_server_ops sup_ops = {sup_init_cb, sup_call, NULL, sup_info, sup_terminate};

int nd_supervisor_start(const nd_sup_flags *flags, const nd_child_spec *children, size_t n,
                        const nd_server_opts *opts, term_t *pid, term_t *reason)
{

    sup_init in = {*flags, children, n};
    nd_server_opts o = {0};
    if (opts) o = *opts;
    o.trap_exit = true;
    if (!o.timeout_ms) o.timeout_ms = 60000;
    return nd_server_start(&sup_ops, &in, &o, pid, reason);
}

int nd_sup_child_start(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    const nd_sup_start_args *a = arg;
    nd_server_opts o = {0};
    o.link = true;
    return nd_supervisor_start(&a->flags, a->children, a->n, &o, pid, reason);
}

/* ---------------------------------------------------------------- client side */

/* Calls the supervisor; maps {ok, X} -> 0 (+X), ok -> 0, {error, E} -> a code. */
static int sup_request(term_t sup, term_t req, term_t *out)
{

    term_t rep;
    int rc = nd_call(sup, req, ND_INFINITY, &rep);
    if (out) *out = TERM_NONE;
    if (rc != 0) {
        term_free(rep);
        return rc;
    }
    if (rep == nd__a_ok) return 0;
    if (term_is_tuple(rep) && term_tuple_arity(rep) == 2) {
        term_t tag = term_tuple_elem(rep, 0), v = term_tuple_elem(rep, 1);
        if (tag == nd__a_ok) {
            if (out) *out = term_dup(v);
            term_free(rep);
            return 0;
        }
        rc = v == a_not_found         ? ND_ENOCHILD
             : v == a_running         ? ND_ERUNNING
             : v == a_already_present ? ND_EEXIST
                                      : ND_ESTART;
        term_free(rep);
        return rc;
    }
    if (out)
        *out = rep;
    else
        term_free(rep);
    return 0;
}

int nd_sup_start_child(term_t sup, const nd_child_spec *spec, term_t *pid)
{

    return sup_request(sup, term_tuplev(2, a_start_child, term_int((int64_t)(intptr_t)spec)), pid);
}

int nd_sup_start_dynamic(term_t sup, term_t extra, term_t *pid)
{

    return sup_request(sup, term_tuplev(2, a_start_dynamic, term_dup(extra)), pid);
}

int nd_sup_terminate_child(term_t sup, term_t id_or_pid)
{

    return sup_request(sup, term_tuplev(2, a_terminate_child, term_dup(id_or_pid)), NULL);
}

int nd_sup_restart_child(term_t sup, term_t id, term_t *pid)
{

    return sup_request(sup, term_tuplev(2, a_restart_child, term_dup(id)), pid);
}

int nd_sup_delete_child(term_t sup, term_t id)
{

    return sup_request(sup, term_tuplev(2, a_delete_child, term_dup(id)), NULL);
}

int nd_sup_which_children(term_t sup, term_t *list)
{

    return sup_request(sup, a_which_children, list);
}

int nd_sup_count_children(term_t sup, term_t *list)
{

    return sup_request(sup, a_count_children, list);
}
