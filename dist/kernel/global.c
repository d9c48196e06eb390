/* Responders for Erlang's `global` (global_name_server) and `pg` (the default scope) protocols. */
#include "kernel.h"

#include <stdatomic.h>
#include <stdlib.h>

/* The protocol version we announce in init_connect: OTP 25's global (?vsn = 8). */
#define GLOBAL_VSN 8

static term_t node_of(term_t pid)
{
    term_pid_info pi;
    if (term_pid_get(pid, &pi) != 0) return TERM_NONE;
    return pi.node;
}

/* A new list (a reference) without the elements equal to x (list borrowed). */
static term_t list_without(term_t list, term_t x)
{
    term_t out = TERM_NIL;
    for (term_t l = list; term_is_cons(l); l = term_tl(l))
        if (!term_equal(term_hd(l), x)) out = term_cons(term_dup(term_hd(l)), out);
    return out;
}

static bool list_has(term_t list, term_t x)
{
    for (term_t l = list; term_is_cons(l); l = term_tl(l))
        if (term_equal(term_hd(l), x)) return true;
    return false;
}

/* {Name, Node} ! {'$gen_cast', Msg}; msg consumed. */
static void cast_to(term_t name, term_t node, term_t msg)
{
    term_t to = term_tuplev(2, name, node);
    nd_cast(to, msg);
    term_free(to);
}

static void send_to(term_t name, term_t node, term_t msg)
{
    term_t to = term_tuplev(2, name, node);
    nd_send(to, msg);
    term_free(to);
}

/* ================================================================ global_name_server */

/*
** State of the global_name_server (touched only by its own process). All maps are references:
**   peers:  Node -> {MyTag, HisTag}          sync sessions under way (init_connect seen)
**   names:  Name -> {Pid, Method, MonRef}    the replicated global name table
**   locks:  ResourceId -> {LockRequesterId, [{Pid, MonRef}]}
**   known:  Node -> true                     nodes we completed a name exchange with
*/
typedef struct gns {
    term_t peers, names, locks, known;
    int64_t next_tag;
} gns;

static gns *gns_new(void)
{
    gns *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->peers = term_map(0, NULL, NULL);
    g->names = term_map(0, NULL, NULL);
    g->locks = term_map(0, NULL, NULL);
    g->known = term_map(0, NULL, NULL);
    g->next_tag = 1;
    return g;
}

static void name_delete(gns *g, term_t name, bool demonitor)
{
    term_t e = term_map_get(g->names, name);
    if (e == TERM_NONE) return;
    if (demonitor) nd_demonitor(term_tuple_elem(e, 2), 0);
    g->names = term_map_remove(g->names, name);
}

/* Inserts (replaces) Name -> Pid, monitoring Pid so the name goes when the process does. */
static void name_insert(gns *g, term_t name, term_t pid, term_t method)
{
    if (!term_is_pid(pid)) return;
    name_delete(g, name, true);
    term_t ref = TERM_NONE;
    if (nd_monitor(pid, &ref) != 0) return; /* gone already: no name */
    g->names = term_map_put(g->names, term_dup(name),
                            term_tuplev(3, term_dup(pid), term_dup(method), ref));
}

/* Applies global's name operations: [{insert, {Name, Pid, Method}} | {delete, Name}]. */
static void apply_ops(gns *g, term_t ops)
{
    for (term_t l = ops; term_is_cons(l); l = term_tl(l)) {
        term_t op = term_hd(l);
        if (!term_is_tuple(op) || term_tuple_arity(op) != 2) continue;
        term_t what = term_tuple_elem(op, 0), arg = term_tuple_elem(op, 1);
        if (what == KA(insert) && term_is_tuple(arg) && term_tuple_arity(arg) == 3)
            name_insert(g, term_tuple_elem(arg, 0), term_tuple_elem(arg, 1),
                        term_tuple_elem(arg, 2));
        else if (what == KA(delete))
            name_delete(g, arg, true);
    }
}

/* [{Name, Pid, Method}] of our table, as sent in {exchange, ...}. */
static term_t name_list(gns *g)
{
    term_t out = TERM_NIL;
    for (size_t i = 0, n = term_map_size(g->names); i < n; i++) {
        term_t v = term_map_value(g->names, i);
        out =
            term_cons(term_tuplev(3, term_dup(term_map_key(g->names, i)),
                                  term_dup(term_tuple_elem(v, 0)), term_dup(term_tuple_elem(v, 1))),
                      out);
    }
    return out;
}

/*
** set_lock {ResourceId, LockRequesterId} for Pid: granted when the resource is free or held by
** the same requester id (global's rule), Pid then monitored. Returns the answer.
*/
static bool lock_set(gns *g, term_t lock, term_t pid)
{
    if (!term_is_tuple(lock) || term_tuple_arity(lock) != 2 || !term_is_pid(pid)) return false;
    term_t rid = term_tuple_elem(lock, 0), req = term_tuple_elem(lock, 1);
    term_t cur = term_map_get(g->locks, rid);
    term_t holders = TERM_NIL;
    if (cur != TERM_NONE) {
        if (!term_equal(term_tuple_elem(cur, 0), req)) return false;
        for (term_t l = term_tuple_elem(cur, 1); term_is_cons(l); l = term_tl(l))
            if (term_equal(term_tuple_elem(term_hd(l), 0), pid)) return true;
        holders = term_dup(term_tuple_elem(cur, 1));
    }
    term_t ref = TERM_NONE;
    if (nd_monitor(pid, &ref) != 0) {
        term_free(holders);
        return false;
    }
    holders = term_cons(term_tuplev(2, term_dup(pid), ref), holders);
    g->locks = term_map_put(g->locks, term_dup(rid), term_tuplev(2, term_dup(req), holders));
    return true;
}

/* Drops Pid from the lock on ResourceId (all requester ids when lock is TERM_NONE: a DOWN). */
static void lock_release(gns *g, term_t rid, term_t req, term_t pid)
{
    term_t cur = term_map_get(g->locks, rid);
    if (cur == TERM_NONE || (req != TERM_NONE && !term_equal(term_tuple_elem(cur, 0), req))) return;
    term_t keep = TERM_NIL;
    for (term_t l = term_tuple_elem(cur, 1); term_is_cons(l); l = term_tl(l)) {
        term_t h = term_hd(l);
        if (term_equal(term_tuple_elem(h, 0), pid))
            nd_demonitor(term_tuple_elem(h, 1), 0);
        else
            keep = term_cons(term_dup(h), keep);
    }
    if (keep == TERM_NIL)
        g->locks = term_map_remove(g->locks, rid);
    else
        g->locks = term_map_put(g->locks, term_dup(rid),
                                term_tuplev(2, term_dup(term_tuple_elem(cur, 0)), keep));
}

/* A monitored process went: its names and locks go with it. */
static void gns_down(gns *g, term_t ref, term_t pid)
{
    for (size_t i = term_map_size(g->names); i-- > 0;) {
        term_t v = term_map_value(g->names, i);
        if (term_equal(term_tuple_elem(v, 2), ref)) {
            term_t name = term_dup(term_map_key(g->names, i));
            g->names = term_map_remove(g->names, name);
            term_free(name);
        }
    }
    for (size_t i = term_map_size(g->locks); i-- > 0;) {
        term_t rid = term_dup(term_map_key(g->locks, i));
        lock_release(g, rid, TERM_NONE, pid);
        term_free(rid);
    }
}

/* The peer's session {MyTag, HisTag} if tag matches our tag for node, else TERM_NONE. */
static term_t session(gns *g, term_t node, term_t my_tag)
{
    term_t s = term_map_get(g->peers, node);
    if (s == TERM_NONE || !term_equal(term_tuple_elem(s, 0), my_tag)) return TERM_NONE;
    return s;
}

/*
** {init_connect, {Vsn, HisTag}, Node, {locker, _, _, HisLocker}}: a new sync session. We answer
** with our own init_connect (our "locker" is this process) and init_connect_ack; the rest of
** the session is driven by the peer's locker.
*/
static void on_init_connect(gns *g, term_t m)
{
    term_t vt = term_tuple_elem(m, 1), node = term_tuple_elem(m, 2);
    if (!term_is_tuple(vt) || term_tuple_arity(vt) != 2 || !term_is_atom(node) || node == nd_node())
        return;
    term_t his_tag = term_tuple_elem(vt, 1);
    term_t my_tag = term_int(g->next_tag++);
    g->peers = term_map_put(g->peers, node, term_tuplev(2, term_dup(my_tag), term_dup(his_tag)));
    g->known = term_map_remove(g->known, node);
    term_t locker = term_tuplev(4, KA(locker), KA(no_longer_a_pid), term_map(0, NULL, NULL),
                                term_dup(nd_self()));
    cast_to(KA(global_name_server), node,
            term_tuplev(4, KA(init_connect),
                        term_tuplev(2, term_small(GLOBAL_VSN), term_dup(my_tag)), nd_node(),
                        locker));
    send_to(KA(global_name_server), node,
            term_tuplev(4, KA(init_connect_ack), nd_node(), term_dup(his_tag), my_tag));
}

/*
** {lock_set, HisLocker, true, HisKnown, MyTag}: the peer's locker holds global's lock on both
** nodes; we say we hold it too (true) unless someone else holds global's lock here.
*/
static void on_lock_set(gns *g, term_t m)
{
    term_t pid = term_tuple_elem(m, 1);
    term_t node = node_of(pid);
    if (node == TERM_NONE || term_tuple_elem(m, 2) != TERM_ATOM_TRUE) return;
    term_t s = session(g, node, term_tuple_elem(m, 4));
    if (s == TERM_NONE) return;
    term_t cur = term_map_get(g->locks, KA(global));
    bool ok = cur == TERM_NONE ||
              (term_is_list(term_tuple_elem(cur, 0)) && list_has(term_tuple_elem(cur, 0), pid));
    cast_to(KA(global_name_server), node,
            term_tuplev(5, KA(lock_set), term_dup(nd_self()), ok ? TERM_ATOM_TRUE : TERM_ATOM_FALSE,
                        TERM_NIL, term_dup(term_tuple_elem(s, 1))));
}

/*
** {exchange, Node, NameList, _, MyTag}: we send our names, take the peer's (a clash is settled
** in favour of the peer's entry: we cannot run an Erlang resolve function), and answer resolved
** with no operations for the peer to apply.
*/
static void on_exchange(gns *g, term_t m)
{
    term_t node = term_tuple_elem(m, 1);
    term_t s = session(g, node, term_tuple_elem(m, 4));
    if (s == TERM_NONE) return;
    term_t his_tag = term_dup(term_tuple_elem(s, 1));
    cast_to(KA(global_name_server), node,
            term_tuplev(5, KA(exchange), nd_node(), name_list(g), TERM_NIL, term_dup(his_tag)));
    for (term_t l = term_tuple_elem(m, 2); term_is_cons(l); l = term_tl(l)) {
        term_t e = term_hd(l);
        if (!term_is_tuple(e) || term_tuple_arity(e) != 3) continue;
        term_t cur = term_map_get(g->names, term_tuple_elem(e, 0));
        if (cur != TERM_NONE && term_equal(term_tuple_elem(cur, 0), term_tuple_elem(e, 1)))
            continue;
        name_insert(g, term_tuple_elem(e, 0), term_tuple_elem(e, 1), term_tuple_elem(e, 2));
    }
    cast_to(
        KA(global_name_server), node,
        term_tuplev(7, KA(resolved), nd_node(), TERM_NIL, TERM_NIL, KA(unused), TERM_NIL, his_tag));
}

/* {resolved, Node, HisResolved, HisKnown, _, NamesExt, MyTag}: the session is complete. */
static void on_resolved(gns *g, term_t m)
{
    term_t node = term_tuple_elem(m, 1);
    if (session(g, node, term_tuple_elem(m, 6)) == TERM_NONE) return;
    apply_ops(g, term_tuple_elem(m, 2));
    g->peers = term_map_remove(g->peers, node);
    g->known = term_map_put(g->known, node, TERM_ATOM_TRUE);
}

static int gns_init(void *arg, void **state, term_t *reason)
{
    (void)arg;
    gns *g = gns_new();
    if (!g) {
        *reason = KA(enomem);
        return ND_STOP;
    }
    *state = g;
    dist_monitor_nodes(true);
    return 0;
}

static int gns_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    gns *g = *state;
    (void)reason;
    term_t fpid = term_tuple_elem(from, 0);
    size_t n = term_is_tuple(req) ? term_tuple_arity(req) : 0;
    term_t tag = n ? term_tuple_elem(req, 0) : req;
    if (n == 2 && tag == KA(set_lock)) {
        *reply = lock_set(g, term_tuple_elem(req, 1), fpid) ? TERM_ATOM_TRUE : TERM_ATOM_FALSE;
    } else if (n == 2 && tag == KA(del_lock)) {
        term_t lock = term_tuple_elem(req, 1);
        if (term_is_tuple(lock) && term_tuple_arity(lock) == 2)
            lock_release(g, term_tuple_elem(lock, 0), term_tuple_elem(lock, 1), fpid);
        *reply = TERM_ATOM_TRUE;
    } else if ((n == 4 && tag == KA(register_)) || (n == 5 && tag == KA(register_ext))) {
        name_insert(g, term_tuple_elem(req, 1), term_tuple_elem(req, 2), term_tuple_elem(req, 3));
        *reply = KA(yes);
    } else if (n == 2 && tag == KA(unregister)) {
        name_delete(g, term_tuple_elem(req, 1), true);
        *reply = TERM_ATOM_OK;
    } else if (n == 2 && tag == KA(girder_whereis)) {
        term_t e = term_map_get(g->names, term_tuple_elem(req, 1));
        *reply = e == TERM_NONE ? KA(undefined) : term_dup(term_tuple_elem(e, 0));
    } else if (req == KA(girder_names)) {
        term_t l = TERM_NIL;
        for (size_t i = 0, k = term_map_size(g->names); i < k; i++)
            l = term_cons(term_dup(term_map_key(g->names, i)), l);
        *reply = l;
    } else if (req == KA(get_known) || req == KA(get_synced)) {
        term_t l = TERM_NIL;
        for (size_t i = 0, k = term_map_size(g->known); i < k; i++)
            l = term_cons(term_dup(term_map_key(g->known, i)), l);
        *reply = l;
    } else if (req == KA(get_protocol_version)) {
        *reply = term_small(GLOBAL_VSN);
    } else if (n == 2 && tag == KA(sync)) {
        *reply = TERM_ATOM_OK; /* nothing of our own to wait for */
    } else {
        return ND_NOREPLY; /* registrar funs and the like: Erlang code we cannot run */
    }
    return ND_REPLY;
}

static int gns_cast(void **state, term_t m, term_t *reason)
{
    gns *g = *state;
    (void)reason;
    if (!term_is_tuple(m)) return ND_NOREPLY;
    size_t n = term_tuple_arity(m);
    term_t tag = term_tuple_elem(m, 0);
    if (n == 4 && tag == KA(init_connect))
        on_init_connect(g, m);
    else if (n == 5 && tag == KA(lock_set))
        on_lock_set(g, m);
    else if (n == 5 && tag == KA(exchange))
        on_exchange(g, m);
    else if (n == 7 && tag == KA(resolved))
        on_resolved(g, m);
    else if (n == 6 && tag == KA(new_nodes))
        apply_ops(g, term_tuple_elem(m, 2));
    /* in_sync, async_del_lock and the rest need no action from us */
    return ND_NOREPLY;
}

static int gns_info(void **state, term_t m, term_t *reason)
{
    gns *g = *state;
    (void)reason;
    if (!term_is_tuple(m)) return ND_NOREPLY;
    size_t n = term_tuple_arity(m);
    term_t tag = term_tuple_elem(m, 0);
    if (n == 5 && tag == KA(DOWN)) {
        gns_down(g, term_tuple_elem(m, 1), term_tuple_elem(m, 3));
    } else if (n == 2 && tag == KA(nodedown)) {
        g->peers = term_map_remove(g->peers, term_tuple_elem(m, 1));
        g->known = term_map_remove(g->known, term_tuple_elem(m, 1));
    } else if (n == 3 && tag == KA(cancel_connect)) {
        /* the peer restarts the session with a new init_connect */
        if (session(g, term_tuple_elem(m, 1), term_tuple_elem(m, 2)) != TERM_NONE)
            g->peers = term_map_remove(g->peers, term_tuple_elem(m, 1));
    }
    return ND_NOREPLY;
}

static void gns_terminate(void *state, term_t reason)
{
    gns *g = state;
    (void)reason;
    if (!g) return;
    term_free(g->peers);
    term_free(g->names);
    term_free(g->locks);
    term_free(g->known);
    free(g);
}

static const nd_server_ops gns_ops = {gns_init, gns_call, gns_cast, gns_info, gns_terminate};

/* ================================================================ pg (default scope) */

/*
** State of the `pg` scope process:
**   local:  Group -> [Pid]               groups of local processes (joined through dist_pg_join)
**   lmons:  Pid -> MonRef                one monitor per local member
**   remote: Peer -> {MonRef, #{Group -> [Pid]}}   what each peer scope process told us
*/
typedef struct pgs {
    term_t local, lmons, remote;
} pgs;

/* [{Group, [Pid]}] of the local groups. */
static term_t pg_local_list(pgs *p)
{
    term_t out = TERM_NIL;
    for (size_t i = 0, n = term_map_size(p->local); i < n; i++)
        out = term_cons(term_tuplev(2, term_dup(term_map_key(p->local, i)),
                                    term_dup(term_map_value(p->local, i))),
                        out);
    return out;
}

static void pg_broadcast(pgs *p, term_t msg)
{
    for (size_t i = 0, n = term_map_size(p->remote); i < n; i++)
        nd_send(term_map_key(p->remote, i), term_dup(msg));
    term_free(msg);
}

static void pg_add_peer(pgs *p, term_t peer, term_t groups)
{
    term_t cur = term_map_get(p->remote, peer);
    term_t ref;
    if (cur != TERM_NONE) {
        ref = term_dup(term_tuple_elem(cur, 0));
    } else if (nd_monitor(peer, &ref) != 0) {
        term_free(groups);
        return;
    }
    p->remote = term_map_put(p->remote, term_dup(peer), term_tuplev(2, ref, groups));
}

/* Pids of a join/leave: one pid or a list. A new list (reference). */
static term_t pids_of(term_t pid_or_pids)
{
    if (term_is_pid(pid_or_pids)) return term_cons(term_dup(pid_or_pids), TERM_NIL);
    return term_is_list(pid_or_pids) ? term_dup(pid_or_pids) : TERM_NIL;
}

static void pg_remote_update(pgs *p, term_t peer, term_t group, term_t pids, bool join)
{
    term_t cur = term_map_get(p->remote, peer);
    if (cur == TERM_NONE) return; /* not in our overlay (yet): ignored, as pg does */
    term_t groups = term_dup(term_tuple_elem(cur, 1));
    term_t members = term_map_get(groups, group);
    term_t nl = members == TERM_NONE ? TERM_NIL : term_dup(members);
    for (term_t l = pids; term_is_cons(l); l = term_tl(l)) {
        term_t t = list_without(nl, term_hd(l));
        term_free(nl);
        nl = join ? term_cons(term_dup(term_hd(l)), t) : t;
    }
    groups =
        nl == TERM_NIL ? term_map_remove(groups, group) : term_map_put(groups, term_dup(group), nl);
    if (nl == TERM_NIL) term_free(nl);
    p->remote = term_map_put(p->remote, term_dup(peer),
                             term_tuplev(2, term_dup(term_tuple_elem(cur, 0)), groups));
}

/* Adds or removes one local pid in group; broadcasts the change to the peers. */
static void pg_local_update(pgs *p, term_t group, term_t pid, bool join)
{
    term_t members = term_map_get(p->local, group);
    term_t nl = members == TERM_NONE ? TERM_NIL : list_without(members, pid);
    if (join) {
        if (term_map_get(p->lmons, pid) == TERM_NONE) {
            term_t ref;
            if (nd_monitor(pid, &ref) != 0) {
                term_free(nl);
                return;
            }
            p->lmons = term_map_put(p->lmons, term_dup(pid), ref);
        }
        nl = term_cons(term_dup(pid), nl);
    }
    if (nl == TERM_NIL)
        p->local = term_map_remove(p->local, group);
    else
        p->local = term_map_put(p->local, term_dup(group), nl);
    if (join)
        pg_broadcast(p,
                     term_tuplev(4, KA(join), term_dup(nd_self()), term_dup(group), term_dup(pid)));
    else
        pg_broadcast(p, term_tuplev(4, KA(leave), term_dup(nd_self()), term_dup(pid),
                                    term_cons(term_dup(group), TERM_NIL)));
}

static bool pg_in_any_group(pgs *p, term_t pid)
{
    for (size_t i = 0, n = term_map_size(p->local); i < n; i++)
        if (list_has(term_map_value(p->local, i), pid)) return true;
    return false;
}

static int pg_init(void *arg, void **state, term_t *reason)
{
    (void)arg;
    pgs *p = calloc(1, sizeof *p);
    if (!p) {
        *reason = KA(enomem);
        return ND_STOP;
    }
    p->local = term_map(0, NULL, NULL);
    p->lmons = term_map(0, NULL, NULL);
    p->remote = term_map(0, NULL, NULL);
    *state = p;
    dist_monitor_nodes(true);
    return 0;
}

static int pg_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    pgs *p = *state;
    (void)from;
    (void)reason;
    size_t n = term_is_tuple(req) ? term_tuple_arity(req) : 0;
    term_t tag = n ? term_tuple_elem(req, 0) : TERM_NONE;
    if (n == 3 && (tag == KA(join) || tag == KA(leave)) && term_is_pid(term_tuple_elem(req, 2)) &&
        node_of(term_tuple_elem(req, 2)) == nd_node()) {
        bool join = tag == KA(join);
        term_t group = term_tuple_elem(req, 1), pid = term_tuple_elem(req, 2);
        term_t members = term_map_get(p->local, group);
        bool was = members != TERM_NONE && list_has(members, pid);
        if (join || was) pg_local_update(p, group, pid, join);
        if (!join && was && !pg_in_any_group(p, pid)) {
            nd_demonitor(term_map_get(p->lmons, pid), 0);
            p->lmons = term_map_remove(p->lmons, pid);
        }
        *reply = join || was ? TERM_ATOM_OK : KA(not_joined);
    } else if (n == 2 && tag == KA(get_members)) {
        term_t group = term_tuple_elem(req, 1);
        term_t m = term_map_get(p->local, group);
        term_t out = m == TERM_NONE ? TERM_NIL : term_dup(m);
        for (size_t i = 0, k = term_map_size(p->remote); i < k; i++) {
            term_t r = term_map_get(term_tuple_elem(term_map_value(p->remote, i), 1), group);
            for (term_t l = r == TERM_NONE ? TERM_NIL : r; term_is_cons(l); l = term_tl(l))
                out = term_cons(term_dup(term_hd(l)), out);
        }
        *reply = out;
    } else if (req == KA(which_groups)) {
        term_t out = TERM_NIL;
        for (size_t i = 0, k = term_map_size(p->local); i < k; i++)
            out = term_cons(term_dup(term_map_key(p->local, i)), out);
        for (size_t i = 0, k = term_map_size(p->remote); i < k; i++) {
            term_t gm = term_tuple_elem(term_map_value(p->remote, i), 1);
            for (size_t j = 0, q = term_map_size(gm); j < q; j++)
                if (!list_has(out, term_map_key(gm, j)))
                    out = term_cons(term_dup(term_map_key(gm, j)), out);
        }
        *reply = out;
    } else {
        *reply = KA(badarg);
    }
    return ND_REPLY;
}

static int pg_cast(void **state, term_t m, term_t *reason)
{
    pgs *p = *state;
    (void)reason;
    /* {sync, Peer, [{Group, [Pid]}]}: the peer's complete view replaces what we had */
    if (term_is_tuple(m) && term_tuple_arity(m) == 3 && term_tuple_elem(m, 0) == KA(sync) &&
        term_is_pid(term_tuple_elem(m, 1))) {
        term_t groups = term_map(0, NULL, NULL);
        for (term_t l = term_tuple_elem(m, 2); term_is_cons(l); l = term_tl(l)) {
            term_t e = term_hd(l);
            if (term_is_tuple(e) && term_tuple_arity(e) == 2 && term_is_list(term_tuple_elem(e, 1)))
                groups = term_map_put(groups, term_dup(term_tuple_elem(e, 0)),
                                      term_dup(term_tuple_elem(e, 1)));
        }
        pg_add_peer(p, term_tuple_elem(m, 1), groups);
    }
    return ND_NOREPLY;
}

static int pg_info(void **state, term_t m, term_t *reason)
{
    pgs *p = *state;
    (void)reason;
    if (!term_is_tuple(m)) return ND_NOREPLY;
    size_t n = term_tuple_arity(m);
    term_t tag = term_tuple_elem(m, 0);
    if (n == 2 && tag == KA(discover) && term_is_pid(term_tuple_elem(m, 1))) {
        term_t peer = term_tuple_elem(m, 1);
        nd_send(peer, term_tuplev(2, KA(gen_cast),
                                  term_tuplev(3, KA(sync), term_dup(nd_self()), pg_local_list(p))));
        if (term_map_get(p->remote, peer) == TERM_NONE) {
            pg_add_peer(p, peer, term_map(0, NULL, NULL));
            nd_send(peer, term_tuplev(2, KA(discover), term_dup(nd_self())));
        }
    } else if (n == 4 && tag == KA(join)) {
        term_t pids = pids_of(term_tuple_elem(m, 3));
        pg_remote_update(p, term_tuple_elem(m, 1), term_tuple_elem(m, 2), pids, true);
        term_free(pids);
    } else if (n == 4 && tag == KA(leave)) {
        term_t pids = pids_of(term_tuple_elem(m, 2));
        for (term_t l = term_tuple_elem(m, 3); term_is_cons(l); l = term_tl(l))
            pg_remote_update(p, term_tuple_elem(m, 1), term_hd(l), pids, false);
        term_free(pids);
    } else if (n == 5 && tag == KA(DOWN)) {
        term_t pid = term_tuple_elem(m, 3);
        if (term_map_get(p->remote, pid) != TERM_NONE) {
            p->remote = term_map_remove(p->remote, pid);
        } else if (term_map_get(p->lmons, pid) != TERM_NONE) {
            p->lmons = term_map_remove(p->lmons, pid);
            term_t left = TERM_NIL;
            for (size_t i = term_map_size(p->local); i-- > 0;) {
                term_t g = term_map_key(p->local, i);
                if (!list_has(term_map_value(p->local, i), pid)) continue;
                left = term_cons(term_dup(g), left);
            }
            for (term_t l = left; term_is_cons(l); l = term_tl(l)) {
                term_t nl = list_without(term_map_get(p->local, term_hd(l)), pid);
                if (nl == TERM_NIL)
                    p->local = term_map_remove(p->local, term_hd(l));
                else
                    p->local = term_map_put(p->local, term_dup(term_hd(l)), nl);
            }
            if (left != TERM_NIL)
                pg_broadcast(p,
                             term_tuplev(4, KA(leave), term_dup(nd_self()), term_dup(pid), left));
            else
                term_free(left);
        }
    } else if (n == 2 && tag == KA(nodeup) && term_tuple_elem(m, 1) != nd_node()) {
        /* as pg does: ask the new node's scope process to join our overlay */
        send_to(KA(pg), term_tuple_elem(m, 1), term_tuplev(2, KA(discover), term_dup(nd_self())));
    }
    return ND_NOREPLY;
}

static void pg_terminate(void *state, term_t reason)
{
    pgs *p = state;
    (void)reason;
    if (!p) return;
    term_free(p->local);
    term_free(p->lmons);
    term_free(p->remote);
    free(p);
}

static const nd_server_ops pg_ops = {pg_init, pg_call, pg_cast, pg_info, pg_terminate};

/* ================================================================ public calls and exports */

static term_t gns_pid, pg_pid;

term_t dist_global_whereis(term_t name)
{
    term_t reply = TERM_NONE;
    if (nd_call(KA(global_name_server), term_tuplev(2, KA(girder_whereis), term_dup(name)), 5000,
                &reply) != 0 ||
        !term_is_pid(reply)) {
        term_free(reply);
        return TERM_NONE;
    }
    return reply;
}

static int pg_request(term_t req, term_t *reply)
{
    return nd_call(KA(pg), req, 5000, reply) == 0 ? 0 : DIST_ESTATE;
}

int dist_pg_join(term_t group, term_t pid)
{
    term_t r = TERM_NONE;
    int rc = pg_request(term_tuplev(3, KA(join), term_dup(group), term_dup(pid)), &r);
    if (rc == 0 && r != TERM_ATOM_OK) rc = DIST_EINVAL;
    term_free(r);
    return rc;
}

int dist_pg_leave(term_t group, term_t pid)
{
    term_t r = TERM_NONE;
    int rc = pg_request(term_tuplev(3, KA(leave), term_dup(group), term_dup(pid)), &r);
    if (rc == 0 && r != TERM_ATOM_OK) rc = DIST_EINVAL;
    term_free(r);
    return rc;
}

term_t dist_pg_members(term_t group)
{
    term_t r = TERM_NONE;
    if (pg_request(term_tuplev(2, KA(get_members), term_dup(group)), &r) != 0) return TERM_NIL;
    return r;
}

static int bi_global_whereis(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t p = dist_global_whereis(term_hd(args));
    *res = p == TERM_NONE ? KA(undefined) : p;
    return DIST_RETURN;
}

static int bi_global_names(void *ud, term_t args, term_t *res)
{
    (void)ud;
    (void)args;
    if (nd_call(KA(global_name_server), KA(girder_names), 5000, res) != 0) *res = TERM_NIL;
    return DIST_RETURN;
}

static int bi_pg_members(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t group = term_hd(args);
    if (term_is_cons(term_tl(args))) { /* get_members(Scope, Group): only the default scope */
        if (group != KA(pg)) {
            *res = TERM_NIL;
            return DIST_RETURN;
        }
        group = term_hd(term_tl(args));
    }
    *res = dist_pg_members(group);
    return DIST_RETURN;
}

static int bi_pg_groups(void *ud, term_t args, term_t *res)
{
    (void)ud;
    (void)args;
    if (pg_request(KA(which_groups), res) != 0) *res = TERM_NIL;
    return DIST_RETURN;
}

void dist__global_exports(void)
{
    dist_export(KA(global), KA(whereis_name), 1, bi_global_whereis, NULL);
    dist_export(KA(global), KA(registered_names), 0, bi_global_names, NULL);
    dist_export(KA(pg), KA(get_members), 1, bi_pg_members, NULL);
    dist_export(KA(pg), KA(get_members), 2, bi_pg_members, NULL);
    dist_export(KA(pg), KA(which_groups), 0, bi_pg_groups, NULL);
}

int dist__global_start(void)
{
    nd_server_opts o = {0};
    o.name = KA(global_name_server);
    int rc = nd_server_start(&gns_ops, NULL, &o, &gns_pid, NULL);
    if (rc) return rc;
    o.name = KA(pg);
    return nd_server_start(&pg_ops, NULL, &o, &pg_pid, NULL);
}

void dist__global_stop(void)
{
    if (pg_pid != TERM_NONE) nd_server_stop(pg_pid, KA(shutdown), 2000);
    if (gns_pid != TERM_NONE) nd_server_stop(gns_pid, KA(shutdown), 2000);
    term_free(pg_pid);
    term_free(gns_pid);
    pg_pid = gns_pid = TERM_NONE;
}
