/* The demo module of girderd (echo, kv, watch, ...): a loadable module like any other, for trying
 * interop. */
#include <girder/module.h>

#include <girder/dist.h>
#include <stdio.h>
#include <stdlib.h>

#define A(s) term_atom(s)

/* ---------------------------------------------------------------- echo */

/* demo:echo/0 (the registered echo is also in pg group girder_echo): {crash, R} exits with R, stop
 * exits normal, {From, Msg} sends Msg back to From. */
static void echo_loop(void)
{
    for (;;) {
        term_t m;
        if (nd_receive(ND_INFINITY, &m) < 0) continue;
        if (m == A("stop")) {
            term_free(m);
            nd_exit(A("normal"));
        }
        if (term_is_tuple(m) && term_tuple_arity(m) == 2) {
            term_t a = term_tuple_elem(m, 0), b = term_tuple_elem(m, 1);
            if (a == A("crash")) {
                term_t r = term_dup(b);
                term_free(m);
                nd_exit(r);
            }
            if (term_is_pid(a) || term_is_ref(a)) nd_send(a, term_dup(b)); /* ref: an alias */
        }
        term_free(m);
    }
}

static void echo_body(void *arg)
{
    (void)arg;
    dist_pg_join(A("girder_echo"), nd_self()); /* visible to pg:get_members/1 on Erlang nodes */
    echo_loop();
}

static int echo_export(void *ud, term_t args, term_t *res)
{
    (void)ud;
    (void)args;
    (void)res;
    echo_loop();
    return DIST_RETURN;
}

static int echo_start(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    (void)arg;
    (void)extra;
    (void)reason;
    nd_spawn_opts o = {0};
    o.link = true;
    o.name = A("echo");
    return nd_spawn(echo_body, NULL, &o, pid);
}

/* ---------------------------------------------------------------- kv */

static int kv_init(void *arg, void **state, term_t *reason)
{
    (void)arg;
    (void)reason;
    term_t *m = malloc(sizeof *m);
    if (!m) return ND_STOP;
    *m = term_map(0, NULL, NULL);
    *state = m;
    return 0;
}

/* {put, K, V} -> ok; {get, K} -> {ok, V} | error. */
static int kv_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    term_t *m = *state;
    (void)from;
    (void)reason;
    size_t n = term_is_tuple(req) ? term_tuple_arity(req) : 0;
    if (n == 3 && term_tuple_elem(req, 0) == A("put")) {
        *m = term_map_put(*m, term_dup(term_tuple_elem(req, 1)), term_dup(term_tuple_elem(req, 2)));
        *reply = TERM_ATOM_OK;
    } else if (n == 2 && term_tuple_elem(req, 0) == A("get")) {
        term_t v = term_map_get(*m, term_tuple_elem(req, 1));
        *reply = v == TERM_NONE ? TERM_ATOM_ERROR : term_tuplev(2, TERM_ATOM_OK, term_dup(v));
    } else {
        *reply = term_tuplev(2, TERM_ATOM_ERROR, A("badrequest"));
    }
    return ND_REPLY;
}

static void kv_terminate(void *state, term_t reason)
{
    term_t *m = state;
    (void)reason;
    term_free(*m);
    free(m);
}

static const nd_server_ops kv_ops = {kv_init, kv_call, NULL, NULL, kv_terminate};

static int kv_start(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    (void)arg;
    (void)extra;
    nd_server_opts o = {0};
    o.name = A("kv");
    o.link = true;
    o.trap_exit = true; /* so terminate runs (and frees the map) when the supervisor stops it */
    return nd_server_start(&kv_ops, NULL, &o, pid, reason);
}

/* ---------------------------------------------------------------- watch */

/* demo:watch(Pid, ReportTo): links to and monitors Pid while trapping exits; reports
** {exit_seen, Pid, R} and {down_seen, Pid, R} to ReportTo, then ends. */
static int watch_export(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t pid = term_hd(args), to = term_hd(term_tl(args));
    if (!term_is_pid(pid) || !term_is_pid(to)) {
        *res = A("badarg");
        return DIST_ERROR;
    }
    nd_trap_exit(true);
    nd_link(pid);
    term_t ref;
    nd_monitor(pid, &ref);
    bool exit_seen = false, down_seen = false;
    while (!exit_seen || !down_seen) {
        term_t m;
        if (nd_receive(ND_INFINITY, &m) < 0) continue;
        size_t n = term_is_tuple(m) ? term_tuple_arity(m) : 0;
        if (n == 3 && term_tuple_elem(m, 0) == A("EXIT") &&
            term_equal(term_tuple_elem(m, 1), pid)) {
            nd_send(to,
                    term_tuplev(3, A("exit_seen"), term_dup(pid), term_dup(term_tuple_elem(m, 2))));
            exit_seen = true;
        } else if (n == 5 && term_tuple_elem(m, 0) == A("DOWN") &&
                   term_equal(term_tuple_elem(m, 1), ref)) {
            nd_send(to,
                    term_tuplev(3, A("down_seen"), term_dup(pid), term_dup(term_tuple_elem(m, 4))));
            down_seen = true;
        }
        term_free(m);
    }
    term_free(ref);
    *res = TERM_ATOM_OK;
    return DIST_RETURN;
}

/* ---------------------------------------------------------------- alias */

/* demo:alias(ReportTo): makes an alias A and sends {alias, Self, A} to ReportTo; then reports
** every message M it gets (through A or its pid) as {got, M}; `unalias` deactivates A
** ({unaliased, Bool} to ReportTo), `stop` ends it. */
static int alias_export(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t to = term_hd(args);
    if (!term_is_pid(to)) {
        *res = A("badarg");
        return DIST_ERROR;
    }
    term_t al = nd_alias(ND_ALIAS_EXPLICIT);
    nd_send(to, term_tuplev(3, A("alias"), term_dup(nd_self()), term_dup(al)));
    for (;;) {
        term_t m;
        if (nd_receive(ND_INFINITY, &m) < 0) continue;
        if (m == A("stop")) break;
        if (m == A("unalias"))
            nd_send(to, term_tuplev(2, A("unaliased"),
                                    nd_unalias(al) ? TERM_ATOM_TRUE : TERM_ATOM_FALSE));
        else
            nd_send(to, term_tuplev(2, A("got"), m));
    }
    term_free(al);
    *res = TERM_ATOM_OK;
    return DIST_RETURN;
}

/* ---------------------------------------------------------------- spawn_monitor */

static bool is_spawn_reply(term_t m, void *ud)
{
    return term_is_tuple(m) && term_tuple_arity(m) == 4 &&
           term_tuple_elem(m, 0) == A("spawn_reply") &&
           term_equal(term_tuple_elem(m, 1), *(term_t *)ud);
}

static bool is_down(term_t m, void *ud)
{
    return term_is_tuple(m) && term_tuple_arity(m) == 5 && term_tuple_elem(m, 0) == A("DOWN") &&
           term_equal(term_tuple_elem(m, 1), *(term_t *)ud);
}

/* demo:spawn_monitor(Node, M, F, Args, ReportTo): spawn_request with the monitor option from
** C; reports {spawned, Pid, Ref} (or {spawn_error, Reason}) and then {down_seen, Ref, Pid, R}. */
static int spawn_monitor_export(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t a[5];
    term_t l = args;
    for (int i = 0; i < 5; i++, l = term_tl(l)) a[i] = term_hd(l);
    term_t ref, m;
    if (!term_is_pid(a[4]) ||
        dist_spawn_request(a[0], a[1], a[2], a[3], DIST_SPAWN_MONITOR, &ref) != 0) {
        *res = A("badarg");
        return DIST_ERROR;
    }
    if (nd_receive_if(is_spawn_reply, &ref, 10000, &m) < 0) {
        term_free(ref);
        *res = A("timeout");
        return DIST_ERROR;
    }
    if (term_tuple_elem(m, 2) != TERM_ATOM_OK) {
        nd_send(a[4], term_tuplev(2, A("spawn_error"), term_dup(term_tuple_elem(m, 3))));
        term_free(m);
        term_free(ref);
        *res = TERM_ATOM_OK;
        return DIST_RETURN;
    }
    term_t pid = term_dup(term_tuple_elem(m, 3));
    term_free(m);
    nd_send(a[4], term_tuplev(3, A("spawned"), term_dup(pid), term_dup(ref)));
    if (nd_receive_if(is_down, &ref, ND_INFINITY, &m) == 0) {
        nd_send(a[4], term_tuplev(4, A("down_seen"), term_dup(ref), pid,
                                  term_dup(term_tuple_elem(m, 4))));
        term_free(m);
    } else {
        term_free(pid);
    }
    term_free(ref);
    *res = TERM_ATOM_OK;
    return DIST_RETURN;
}

/* ---------------------------------------------------------------- the module */

static const girder_export exports[] = {
    {"echo", 0, echo_export, NULL},
    {"watch", 2, watch_export, NULL},
    {"alias", 1, alias_export, NULL},
    {"spawn_monitor", 5, spawn_monitor_export, NULL},
};

static const girder_child children[] = {
    {"echo", echo_start, NULL, ND_PERMANENT, 2000, ND_WORKER},
    {"kv", kv_start, NULL, ND_PERMANENT, 2000, ND_WORKER},
};

/* The atoms this module compares decoded terms with (==), interned at load as Erlang interns a
** module's atoms when it loads it: a peer's atom that is not interned before it is decoded may
** arrive as a foreign atom (term.h), equal by term_equal() but not by ==. */
static int demo_load(const girder_host *host, char *err, size_t errlen)
{
    (void)host;
    static const char *const names[] = {"stop", "crash",       "put",     "get",     "EXIT",
                                        "DOWN", "spawn_reply", "unalias", "spawned", "down_seen"};
    for (size_t i = 0; i < GIRDER_COUNT(names); i++)
        if (term_atom(names[i]) == TERM_NONE) {
            snprintf(err, errlen, "the atom table is full");
            return -1;
        }
    return 0;
}

/* The demo app: the registered echo and kv under a one_for_one supervisor. */
static const girder_app app = {ND_ONE_FOR_ONE, 10, 10000, children, GIRDER_COUNT(children), NULL};

GIRDER_MODULE(.name = "demo", .version = "1.0.0", .exports = exports,
              .nexports = GIRDER_COUNT(exports), .app = &app, .load = demo_load);
