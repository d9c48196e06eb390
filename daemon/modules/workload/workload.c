/* The workload of `make demo`: a supervisor on one girderd whose workers run on other nodes. */
#include <girder/module.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
** workload:start(Nodes, N, Watcher), called on one node (say g1), starts two registered processes
** there, unlinked from the caller:
**   workload_sup     libnode's one_for_one supervisor of N workers w1..wN. Each child's start
**                    function runs in the supervisor and spawns workload:worker(Id) on one of
**                    Nodes with a remote spawn request linked to the supervisor, so a worker's
**                    death (noconnection when its node goes) is an exit signal to the
**                    supervisor, which restarts the worker on a node that is still connected.
**   workload_events  the event log: told of every (re)start by the start function, it links to
**                    and monitors each worker while trapping exits, so the exit signal and the
**                    DOWN a node-down delivers on g1 are recorded, with the time they arrived.
** Watcher is {Name, Node} of a process (the Erlang watcher of the demo) told {watch, Id, Pid}
** of every (re)started worker, or undefined.
**
** Events are {TimeMs, ObservedOn, What, Id, Pid, WorkerNode, Detail}: TimeMs is wall-clock
** milliseconds (erlang:system_time(millisecond) on the same host); What is started (Detail
** none), restarted (Detail {was, OldPid, OldNode}), exit (Detail the exit signal's reason) or
** down (Detail the DOWN's reason).
*/

#define A(s) term_atom(s)

#define MAX_WORKERS 32
#define MAX_NODES   16
#define SPAWN_WAIT  5000 /* ms for one spawn reply */

/*
** What the supervisor's start functions share with the exported functions (which run in rpc
** processes on any scheduler), guarded by mu. Only atoms and numbers: nothing to free.
*/
static struct {
    pthread_mutex_t mu;
    bool started;
    term_t nodes[MAX_NODES];
    size_t nnodes;
    term_t watcher_name, watcher_node; /* atoms; TERM_NONE: no watcher */
    struct wslot {
        term_t id;   /* w1, w2, ... */
        term_t node; /* where it runs now, TERM_NONE before its first start */
        unsigned index;
    } w[MAX_WORKERS];
    size_t nw;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static term_t event(term_t what, term_t id, term_t pid, term_t node, term_t detail)
{
    term_t e[7] = {term_int(wall_ms()), nd_node(), what, id, pid, node, detail};
    return term_tuple(7, e);
}

static term_t pid_node(term_t pid)
{
    term_pid_info pi;
    return term_pid_get(pid, &pi) == 0 ? pi.node : A("undefined");
}

/* ================================================================ the worker */

/* workload:worker(Id): registers as workload_<Id> on its node (so `girder ps` names it),
** answers {ping, From, Ref} with {pong, Ref, Id, node()}; stop ends it. */
static int worker_export(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t id = term_hd(args);
    char name[64];
    if (term_is_atom(id) &&
        snprintf(name, sizeof name, "workload_%s", term_atom_name(id, NULL)) < (int)sizeof name)
        nd_register(A(name), nd_self()); /* a name still held by an old incarnation: go without */
    for (;;) {
        term_t m;
        if (nd_receive(ND_INFINITY, &m) < 0) continue;
        if (m == A("stop")) break;
        if (term_is_tuple(m) && term_tuple_arity(m) == 3 && term_tuple_elem(m, 0) == A("ping") &&
            term_is_pid(term_tuple_elem(m, 1)))
            nd_send(term_tuple_elem(m, 1),
                    term_tuplev(4, A("pong"), term_dup(term_tuple_elem(m, 2)), term_dup(id),
                                nd_node()));
        term_free(m);
    }
    *res = TERM_ATOM_OK;
    return DIST_RETURN;
}

/* ================================================================ the event log */

typedef struct evlog {
    term_t events; /* newest first */
    term_t ids;    /* map Pid => Id of every worker it watches */
    term_t cur;    /* map Id => the pid of its latest start */
} evlog;

static int ev_init(void *arg, void **state, term_t *reason)
{
    (void)arg;
    (void)reason;
    evlog *l = malloc(sizeof *l);
    if (!l) return ND_STOP;
    l->events = TERM_NIL;
    l->ids = term_map(0, NULL, NULL);
    l->cur = term_map(0, NULL, NULL);
    *state = l;
    return 0;
}

static void ev_add(evlog *l, term_t e)
{
    l->events = term_cons(e, l->events);
}

static term_t reverse(term_t list)
{
    term_t r = TERM_NIL;
    for (term_t x = list; term_is_cons(x); x = term_tl(x)) r = term_cons(term_dup(term_hd(x)), r);
    return r;
}

/* events -> the list, oldest first. */
static int ev_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    evlog *l = *state;
    (void)from;
    (void)reason;
    *reply = req == A("events") ? reverse(l->events) : term_tuplev(2, A("error"), A("badarg"));
    return ND_REPLY;
}

/* {started, Event}: record it (a restart with the pid it replaces), then link to and monitor
** the worker (trap_exit is on). */
static int ev_cast(void **state, term_t msg, term_t *reason)
{
    evlog *l = *state;
    (void)reason;
    if (!term_is_tuple(msg) || term_tuple_arity(msg) != 2 ||
        term_tuple_elem(msg, 0) != A("started"))
        return ND_NOREPLY;
    term_t e = term_tuple_elem(msg, 1), el[7];
    for (size_t i = 0; i < 7; i++) el[i] = term_dup(term_tuple_elem(e, i));
    term_t id = el[3], pid = el[4];
    if (el[2] == A("restarted")) {
        term_t old = term_map_get(l->cur, id), was = term_dup(term_tuple_elem(el[6], 1));
        term_free(el[6]);
        el[6] = term_tuplev(3, A("was"), old != TERM_NONE ? term_dup(old) : A("undefined"), was);
    }
    l->ids = term_map_put(l->ids, term_dup(pid), id);
    l->cur = term_map_put(l->cur, id, term_dup(pid));
    nd_link(pid);
    term_t ref;
    if (nd_monitor(pid, &ref) == 0) term_free(ref);
    ev_add(l, term_tuple(7, el));
    return ND_NOREPLY;
}

/* {'EXIT', Pid, R} and {'DOWN', Ref, process, Pid, R} of a watched worker become events. */
static int ev_info(void **state, term_t msg, term_t *reason)
{
    evlog *l = *state;
    (void)reason;
    size_t ar = term_is_tuple(msg) ? term_tuple_arity(msg) : 0;
    term_t tag = ar ? term_tuple_elem(msg, 0) : TERM_NONE, pid, why, what;
    if (ar == 3 && tag == A("EXIT")) {
        pid = term_tuple_elem(msg, 1);
        why = term_tuple_elem(msg, 2);
        what = A("exit");
    } else if (ar == 5 && tag == A("DOWN")) {
        pid = term_tuple_elem(msg, 3);
        why = term_tuple_elem(msg, 4);
        what = A("down");
    } else {
        return ND_NOREPLY;
    }
    term_t id = term_map_get(l->ids, pid);
    if (id == TERM_NONE) return ND_NOREPLY; /* not a worker (the supervisor never links to us) */
    ev_add(l, event(what, term_dup(id), term_dup(pid), pid_node(pid), term_dup(why)));
    return ND_NOREPLY;
}

static void ev_terminate(void *state, term_t reason)
{
    evlog *l = state;
    (void)reason;
    term_free(l->events);
    term_free(l->ids);
    term_free(l->cur);
    free(l);
}

static const nd_server_ops ev_ops = {ev_init, ev_call, ev_cast, ev_info, ev_terminate};

/* ================================================================ the supervisor's children */

static bool is_spawn_reply(term_t m, void *ud)
{
    return term_is_tuple(m) && term_tuple_arity(m) == 4 &&
           term_tuple_elem(m, 0) == A("spawn_reply") &&
           term_equal(term_tuple_elem(m, 1), *(term_t *)ud);
}

static bool connected(term_t node)
{
    term_t l = dist_nodes(DIST_CONNECTED);
    bool found = false;
    for (term_t x = l; term_is_cons(x) && !found; x = term_tl(x)) found = term_hd(x) == node;
    term_free(l);
    return found;
}

/*
** The order in which worker slot tries the nodes: connected nodes first, the one running the
** fewest workers first (ties: the list rotated by the worker's index, so the first start
** spreads the workers round robin); then the nodes not connected (dialled on demand).
*/
static size_t placement(const struct wslot *slot, term_t *order)
{
    pthread_mutex_lock(&W.mu);
    size_t n = W.nnodes, load[MAX_NODES] = {0};
    term_t cand[MAX_NODES];
    for (size_t k = 0; k < n; k++) {
        cand[k] = W.nodes[(slot->index + k) % n];
        for (size_t i = 0; i < W.nw; i++)
            if (&W.w[i] != slot && W.w[i].node == cand[k]) load[k]++;
    }
    pthread_mutex_unlock(&W.mu);
    bool up[MAX_NODES];
    for (size_t k = 0; k < n; k++) up[k] = connected(cand[k]);
    size_t m = 0;
    bool used[MAX_NODES] = {false};
    for (int pass = 0; pass < 2; pass++)
        for (;;) {
            size_t best = n;
            for (size_t k = 0; k < n; k++)
                if (!used[k] && up[k] == (pass == 0) && (best == n || load[k] < load[best]))
                    best = k;
            if (best == n) break;
            used[best] = true;
            order[m++] = cand[best];
        }
    return m;
}

/* Spawns workload:worker(Id) on node, linked to the calling process (the supervisor). The
** pid (owned), or TERM_NONE. */
static term_t spawn_worker(term_t node, term_t id)
{
    term_t ref, m;
    term_t args = term_list(1, (term_t[]){id});
    int rc = dist_spawn_request(node, A("workload"), A("worker"), args, DIST_SPAWN_LINK, &ref);
    term_free(args);
    if (rc != 0) return TERM_NONE;
    term_t pid = TERM_NONE;
    if (nd_receive_if(is_spawn_reply, &ref, SPAWN_WAIT, &m) == 0) {
        if (term_tuple_elem(m, 2) == TERM_ATOM_OK) pid = term_dup(term_tuple_elem(m, 3));
        term_free(m);
    }
    term_free(ref);
    return pid;
}

/*
** A worker's start function (nd_child_start_fn), run by the supervisor for the first start and
** for every restart: places the worker, spawns it linked to the supervisor, and tells the event
** log and the watcher. Fails (the supervisor counts it against its restart intensity) only when
** no node would run it.
*/
static int worker_start(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    struct wslot *slot = arg;
    (void)extra;
    term_t order[MAX_NODES];
    size_t n = placement(slot, order);
    term_t p = TERM_NONE, node = TERM_NONE;
    for (size_t k = 0; k < n && p == TERM_NONE; k++) p = spawn_worker(node = order[k], slot->id);
    if (p == TERM_NONE) {
        *reason = term_tuplev(2, A("no_node_would_run"), slot->id);
        return ND_ESTART;
    }
    pthread_mutex_lock(&W.mu);
    term_t old_node = slot->node, wname = W.watcher_name, wnode = W.watcher_node;
    slot->node = node;
    pthread_mutex_unlock(&W.mu);
    /* the event log knows the previous pid of this id; it is told which kind of start this is */
    term_t e = old_node == TERM_NONE ? event(A("started"), slot->id, term_dup(p), node, A("none"))
                                     : event(A("restarted"), slot->id, term_dup(p), node,
                                             term_tuplev(2, A("was_on"), old_node));
    nd_cast(A("workload_events"), term_tuplev(2, A("started"), e));
    if (wname != TERM_NONE) {
        term_t to = term_tuplev(2, wname, wnode); /* nd_send consumes the message only */
        nd_send(to, term_tuplev(3, A("watch"), slot->id, term_dup(p)));
        term_free(to);
    }
    *pid = p;
    return 0;
}

/* ================================================================ exports */

static term_t error2(const char *what)
{
    return term_tuplev(2, TERM_ATOM_ERROR, A(what));
}

/* workload:start(Nodes, N, Watcher) -> {ok, SupervisorPid} | {error, Why}. */
static int start_export(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t nodes = term_hd(args), nt = term_hd(term_tl(args)),
           watcher = term_hd(term_tl(term_tl(args)));
    long nn = term_list_length(nodes);
    int64_t n;
    bool ok =
        nn >= 1 && nn <= MAX_NODES && term_get_int64(nt, &n) == 0 && n >= 1 && n <= MAX_WORKERS;
    for (term_t x = nodes; ok && term_is_cons(x); x = term_tl(x)) ok = term_is_atom(term_hd(x));
    bool has_watcher = term_is_tuple(watcher) && term_tuple_arity(watcher) == 2 &&
                       term_is_atom(term_tuple_elem(watcher, 0)) &&
                       term_is_atom(term_tuple_elem(watcher, 1));
    if (!ok || (!has_watcher && watcher != A("undefined"))) {
        *res = A("badarg");
        return DIST_ERROR;
    }
    pthread_mutex_lock(&W.mu);
    if (W.started) {
        pthread_mutex_unlock(&W.mu);
        *res = error2("already_started");
        return DIST_RETURN;
    }
    W.started = true;
    W.nnodes = 0;
    for (term_t x = nodes; term_is_cons(x); x = term_tl(x)) W.nodes[W.nnodes++] = term_hd(x);
    W.watcher_name = has_watcher ? term_tuple_elem(watcher, 0) : TERM_NONE;
    W.watcher_node = has_watcher ? term_tuple_elem(watcher, 1) : TERM_NONE;
    W.nw = (size_t)n;
    for (size_t i = 0; i < W.nw; i++) {
        char id[32];
        snprintf(id, sizeof id, "w%zu", i + 1);
        W.w[i].id = A(id);
        W.w[i].node = TERM_NONE;
        W.w[i].index = (unsigned)i;
    }
    pthread_mutex_unlock(&W.mu);
    /* placement prefers connected nodes: connect to each first (one that fails is tried last) */
    for (term_t x = nodes; term_is_cons(x); x = term_tl(x)) dist_connect(term_hd(x), 5000);

    term_t evpid = TERM_NONE, sup = TERM_NONE, why = TERM_NONE;
    nd_server_opts eo = {0};
    eo.name = A("workload_events");
    eo.trap_exit = true;
    int rc = nd_server_start(&ev_ops, NULL, &eo, &evpid, &why);
    if (rc == 0) {
        nd_child_spec spec[MAX_WORKERS];
        for (size_t i = 0; i < W.nw; i++)
            spec[i] =
                (nd_child_spec){W.w[i].id, worker_start, &W.w[i], ND_PERMANENT, 2000, ND_WORKER};
        /* a node going takes about half the workers with it; a few such falls in a row are
        ** what the demo shows, more within 10 s means something is wrong */
        nd_sup_flags fl = {ND_ONE_FOR_ONE, (unsigned)(3 * W.nw + 3), 10000};
        nd_server_opts so = {0};
        so.name = A("workload_sup");
        rc = nd_supervisor_start(&fl, spec, W.nw, &so, &sup, &why);
        if (rc != 0) nd_server_stop(evpid, A("shutdown"), 5000);
    }
    term_free(evpid);
    if (rc != 0) {
        pthread_mutex_lock(&W.mu);
        W.started = false;
        pthread_mutex_unlock(&W.mu);
        *res = term_tuplev(2, TERM_ATOM_ERROR, why != TERM_NONE ? why : A(nd_err_name(rc)));
        return DIST_RETURN;
    }
    term_free(why);
    *res = term_tuplev(2, TERM_ATOM_OK, sup);
    return DIST_RETURN;
}

/* workload:workers() -> [{Id, Pid, Node}] as the supervisor has them now. */
static int workers_export(void *ud, term_t args, term_t *res)
{
    (void)ud;
    (void)args;
    term_t kids;
    if (nd_sup_which_children(A("workload_sup"), 5000, &kids) != 0) {
        *res = A("not_started");
        return DIST_ERROR;
    }
    term_t out = TERM_NIL;
    for (term_t x = kids; term_is_cons(x); x = term_tl(x)) {
        term_t c = term_hd(x), id = term_tuple_elem(c, 0), pid = term_tuple_elem(c, 1);
        out = term_cons(term_tuplev(3, term_dup(id), term_dup(pid),
                                    term_is_pid(pid) ? pid_node(pid) : A("undefined")),
                        out);
    }
    term_free(kids);
    *res = reverse(out);
    term_free(out);
    return DIST_RETURN;
}

/* workload:events() -> the event log, oldest first. */
static int events_export(void *ud, term_t args, term_t *res)
{
    (void)ud;
    (void)args;
    term_t r;
    if (nd_call(A("workload_events"), A("events"), 5000, &r) != 0) {
        term_free(r);
        *res = A("not_started");
        return DIST_ERROR;
    }
    *res = r;
    return DIST_RETURN;
}

static bool is_pong(term_t m, void *ud)
{
    (void)ud;
    return term_is_tuple(m) && term_tuple_arity(m) == 4 && term_tuple_elem(m, 0) == A("pong");
}

/* workload:check() -> [{Id, Node, pong | no_answer}]: every worker pinged, 2 s for all answers. */
static int check_export(void *ud, term_t args, term_t *res)
{
    int rc = workers_export(ud, args, res);
    if (rc != DIST_RETURN) return rc;
    term_t ws = *res;
    long n = term_list_length(ws);
    term_t refs[MAX_WORKERS];
    bool answered[MAX_WORKERS] = {false};
    long i = 0;
    for (term_t x = ws; term_is_cons(x) && i < MAX_WORKERS; x = term_tl(x), i++) {
        refs[i] = nd_make_ref();
        term_t pid = term_tuple_elem(term_hd(x), 1);
        if (term_is_pid(pid))
            nd_send(pid, term_tuplev(3, A("ping"), term_dup(nd_self()), term_dup(refs[i])));
    }
    int64_t end = wall_ms() + 2000;
    for (long got = 0; got < n && wall_ms() < end;) {
        term_t m;
        if (nd_receive_if(is_pong, NULL, end - wall_ms(), &m) < 0) break;
        for (long k = 0; k < i; k++)
            if (!answered[k] && term_equal(term_tuple_elem(m, 1), refs[k])) {
                answered[k] = true;
                got++;
            }
        term_free(m);
    }
    term_t out = TERM_NIL;
    i = 0;
    term_t rev = reverse(ws);
    for (term_t x = rev; term_is_cons(x); x = term_tl(x), i++) {
        term_t w = term_hd(x);
        long k = n - 1 - i;
        out = term_cons(term_tuplev(3, term_dup(term_tuple_elem(w, 0)),
                                    term_dup(term_tuple_elem(w, 2)),
                                    answered[k] ? A("pong") : A("no_answer")),
                        out);
    }
    term_free(rev);
    for (long k = 0; k < n && k < MAX_WORKERS; k++) term_free(refs[k]);
    term_free(ws);
    *res = out;
    return DIST_RETURN;
}

/* workload:stop() -> ok: the supervisor (and with it the workers) and the event log stop. */
static int stop_export(void *ud, term_t args, term_t *res)
{
    (void)ud;
    (void)args;
    term_t sup = nd_whereis(A("workload_sup")), ev = nd_whereis(A("workload_events"));
    if (sup != TERM_NONE) nd_server_stop(sup, A("shutdown"), 10000);
    if (ev != TERM_NONE) nd_server_stop(ev, A("shutdown"), 5000);
    term_free(sup);
    term_free(ev);
    pthread_mutex_lock(&W.mu);
    W.started = false;
    pthread_mutex_unlock(&W.mu);
    *res = TERM_ATOM_OK;
    return DIST_RETURN;
}

static const girder_export exports[] = {
    {"start", 3, start_export, NULL},     {"worker", 1, worker_export, NULL},
    {"workers", 0, workers_export, NULL}, {"events", 0, events_export, NULL},
    {"check", 0, check_export, NULL},     {"stop", 0, stop_export, NULL},
};

/* The atoms this module compares decoded terms with (==), interned at load as Erlang interns a
** module's atoms: a peer's name not interned before it is decoded may arrive as a foreign atom
** (term.h), equal by term_equal() only. */
static int workload_load(const girder_host *host, char *err, size_t errlen)
{
    (void)host;
    static const char *const names[] = {"stop",   "ping",        "events",    "error",
                                        "badarg", "started",     "restarted", "EXIT",
                                        "DOWN",   "spawn_reply", "undefined", "pong"};
    for (size_t i = 0; i < GIRDER_COUNT(names); i++)
        if (term_atom(names[i]) == TERM_NONE) {
            snprintf(err, errlen, "the atom table is full");
            return -1;
        }
    return 0;
}

GIRDER_MODULE(.name = "workload", .version = "1.0.0", .exports = exports,
              .nexports = GIRDER_COUNT(exports), .load = workload_load);
