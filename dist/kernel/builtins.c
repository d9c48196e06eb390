/* Built-in functions (erlang:node/0, processes/0, process_info/2, ...) answered for rpc callers. */
#include "kernel.h"

#include <girder/node_obs.h>
#include <girder_deadline.h>
#include <stdatomic.h>
#include <stdio.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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
            if (k == KA(visible))
                which |= DIST_VISIBLE;
            else if (k == KA(hidden))
                which |= DIST_HIDDEN;
            else if (k == KA(connected))
                which |= DIST_CONNECTED;
            else if (k == KA(this))
                which |= 8;
            else if (k == KA(known))
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

/* register/2 as Erlang's: true, or badarg (a name taken or undefined, a process registered or
** dead, not a local pid). */
static int bi_register(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t name = term_hd(args), pid = term_hd(term_tl(args));
    if (nd_register(name, pid) != 0) {
        *res = KA(badarg);
        return DIST_ERROR;
    }
    *res = TERM_ATOM_TRUE;
    return DIST_RETURN;
}

static int bi_whereis(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t p = nd_whereis(term_hd(args));
    *res = p == TERM_NONE ? KA(undefined) : p;
    return DIST_RETURN;
}

static int bi_is_process_alive(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t p = term_hd(args);
    if (!term_is_pid(p)) {
        *res = KA(badarg);
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
        *res = KA(badarg);
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
    dist__log(DIST_LOG_NOTICE, "event=halt_requested node=%s", term_atom_name(nd_node(), NULL));
    kill(getpid(), SIGTERM); /* process-directed: the daemon waits for it with sigwait */
    *res = TERM_ATOM_TRUE;
    return DIST_RETURN;
}

/*
** process_info/2 items Girder can answer truthfully. Any other item is badarg, as Erlang answers
** an item it does not know: Erlang items that have no Girder meaning (heap_size, dictionary,
** group_leader, current_function, ...) are not made up.
*/
static bool info_key_ok(term_t k)
{
    return k == KA(registered_name) || k == KA(status) || k == KA(message_queue_len) ||
           k == KA(links) || k == KA(trap_exit) || k == KA(reductions) || k == KA(memory) ||
           k == KA(monitors) || k == KA(monitored_by);
}

static term_t info_value(term_t key, const nd_proc_info *pi)
{
    if (key == KA(message_queue_len)) return term_int((int64_t)pi->message_queue_len);
    if (key == KA(links)) return term_dup(pi->links);
    if (key == KA(monitors)) return term_dup(pi->monitors);
    if (key == KA(monitored_by)) return term_dup(pi->monitored_by);
    if (key == KA(reductions)) return term_uint(pi->reductions);
    if (key == KA(memory)) return term_uint(pi->memory);
    if (key == KA(trap_exit)) return pi->trap_exit ? TERM_ATOM_TRUE : TERM_ATOM_FALSE;
    if (key == KA(registered_name))
        return pi->registered_name != TERM_NONE ? pi->registered_name : TERM_NIL;
    return pi->status == ND_ST_RUNNING    ? KA(running)
           : pi->status == ND_ST_RUNNABLE ? KA(runnable)
           : pi->status == ND_ST_WAITING  ? KA(waiting)
                                          : KA(exiting);
}

/*
** process_info/1,2 as Erlang answers them: items checked first (badarg), a dead process is
** undefined, registered_name alone is [] when there is none, and process_info/1 lists the
** items Girder has, leaving registered_name out when there is none.
*/
static int bi_process_info(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t pid = term_hd(args);
    bool one = false, all = !term_is_cons(term_tl(args));
    term_t k = all ? TERM_NIL : term_hd(term_tl(args));
    if (!term_is_pid(pid)) goto badarg;
    if (!all) {
        one = term_is_atom(k);
        if (one && !info_key_ok(k)) goto badarg;
        if (!one) {
            if (term_list_length(k) < 0) goto badarg;
            for (term_t l = k; term_is_cons(l); l = term_tl(l))
                if (!info_key_ok(term_hd(l))) goto badarg;
        }
    }
    nd_proc_info pi;
    if (nd_process_info(pid, &pi) != 0) {
        *res = KA(undefined);
        return DIST_RETURN;
    }
    if (one) {
        term_t v = info_value(k, &pi);
        *res = k == KA(registered_name) && v == TERM_NIL ? TERM_NIL : term_tuplev(2, k, v);
    } else if (!all) {
        long n = term_list_length(k);
        term_t *items = malloc(sizeof(term_t) * (size_t)(n ? n : 1));
        size_t i = 0;
        if (items)
            for (term_t l = k; term_is_cons(l); l = term_tl(l), i++)
                items[i] = term_tuplev(2, term_hd(l), info_value(term_hd(l), &pi));
        *res = items ? term_list(i, items) : KA(enomem);
        free(items);
    } else {
        const term_t keys[] = {KA(registered_name), KA(status),    KA(message_queue_len),
                               KA(links),           KA(trap_exit), KA(reductions),
                               KA(memory),          KA(monitors),  KA(monitored_by)};
        term_t items[9];
        size_t n = 0;
        for (size_t i = 0; i < 9; i++) {
            if (keys[i] == KA(registered_name) && pi.registered_name == TERM_NONE) continue;
            items[n++] = term_tuplev(2, keys[i], info_value(keys[i], &pi));
        }
        *res = term_list(n, items);
    }
    nd_proc_info_free(&pi);
    return DIST_RETURN;
badarg:
    *res = KA(badarg);
    return DIST_ERROR;
}

/* system_info/1: only what has a true answer here; otp_release and the like are badarg (this is
** not an OTP release), as are the keys Erlang itself does not know. */
static int bi_system_info(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t k = term_hd(args);
    nd_stats st;
    nd_get_stats(&st);
    if (k == KA(process_count)) {
        *res = term_int((int64_t)nd_process_count());
    } else if (k == KA(system_version)) {
        static const char v[] = "Girder (Erlang distribution compatible)\n";
        *res = term_string(v, sizeof v - 1);
    } else if (k == KA(schedulers) || k == KA(schedulers_online)) {
        *res = term_int((int64_t)st.schedulers);
    } else if (k == KA(machine)) {
        *res = term_string("Girder", 6);
    } else if (k == KA(atom_count)) {
        *res = term_int((int64_t)term_atom_count());
    } else if (k == KA(atom_limit)) {
        *res = term_int((int64_t)term_atom_limit());
    } else {
        *res = KA(badarg);
        return DIST_ERROR;
    }
    return DIST_RETURN;
}

/* statistics/1's "since the last call" halves, node-wide as in Erlang. */
static _Atomic uint64_t last_wall, last_runtime, last_reds;
static uint64_t t0_wall;

static term_t since(uint64_t total, _Atomic uint64_t *last)
{
    uint64_t prev = atomic_exchange(last, total);
    return term_tuplev(2, term_uint(total), term_uint(total >= prev ? total - prev : 0));
}

/* statistics/1 keys answered from libnode's metrics (interned by dist__builtins_export). */
static term_t a_run_queue, a_total_run_queue_lengths, a_total_run_queue_lengths_all,
    a_scheduler_wall_time, a_scheduler_wall_time_all;

/*
** The run queues' total (Erlang's run_queue and total_run_queue_lengths[_all]: processes ready
** to run, here the schedulers' own queues and the global one), or scheduler_wall_time[_all]:
** [{SchedulerId, ActiveTime, TotalTime}] in nanoseconds, active being the time spent running
** processes (not spinning, not parked). Girder measures this always, so it answers without
** erlang:system_flag(scheduler_wall_time, true), and has no dirty schedulers to add for _all.
*/
static int metrics_stat(term_t k, term_t *res)
{
    nd_metrics m;
    if (nd_metrics_get(&m) != 0) {
        *res = KA(badarg);
        return DIST_ERROR;
    }
    if (k == a_scheduler_wall_time || k == a_scheduler_wall_time_all) {
        term_t l = TERM_NIL;
        for (unsigned i = m.schedulers; i-- > 0;) {
            const nd_sched_metrics *s = &m.sched[i];
            l = term_cons(term_tuplev(3, term_int((int64_t)i + 1), term_uint(s->running_ns),
                                      term_uint(s->running_ns + s->spinning_ns + s->idle_ns)),
                          l);
        }
        *res = l;
    } else {
        uint64_t n = m.global_run_queue;
        for (unsigned i = 0; i < m.schedulers; i++) n += m.sched[i].run_queue;
        *res = term_uint(n);
    }
    nd_metrics_free(&m);
    return DIST_RETURN;
}

/* statistics/1: wall_clock, runtime and reductions as {Total, SinceLastCall} (milliseconds,
** milliseconds of CPU, reductions of every process), context_switches as {N, 0}, the run
** queues and scheduler_wall_time (metrics_stat); other keys badarg. */
static int bi_statistics(void *ud, term_t args, term_t *res)
{
    (void)ud;
    term_t k = term_hd(args);
    if (k == a_run_queue || k == a_total_run_queue_lengths || k == a_total_run_queue_lengths_all ||
        k == a_scheduler_wall_time || k == a_scheduler_wall_time_all)
        return metrics_stat(k, res);
    nd_stats st;
    nd_get_stats(&st);
    if (k == KA(wall_clock)) {
        *res = since((uint64_t)girder__now_ms(CLOCK_MONOTONIC) - t0_wall, &last_wall);
    } else if (k == KA(runtime)) {
        *res = since((uint64_t)girder__now_ms(CLOCK_PROCESS_CPUTIME_ID), &last_runtime);
    } else if (k == KA(reductions)) {
        *res = since(st.reductions, &last_reds);
    } else if (k == KA(context_switches)) {
        *res = term_tuplev(2, term_uint(st.context_switches), term_int(0));
    } else {
        *res = KA(badarg);
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
        *res = KA(badarg);
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
        *res = KA(badarg);
        return DIST_ERROR;
    }
    *res = term_atom(dist_ping(n, 7000) == 0 ? "pong" : "pang");
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
           term_tuple_elem(m, 0) == KA(spawn_reply) &&
           term_equal(term_tuple_elem(m, 1), *(term_t *)ud);
}

/* erlang:spawn(Node, M, F, A) and spawn_link/4 from Girder, through dist_spawn_request. */
static int bi_spawn(void *ud, term_t args, term_t *res)
{
    term_t node = term_hd(args), l = term_tl(args);
    term_t m = term_hd(l), f = term_hd(term_tl(l)), a = term_hd(term_tl(term_tl(l)));
    if (node == nd_node() || !term_is_atom(node)) {
        *res = KA(badarg);
        return DIST_ERROR;
    }
    term_t ref;
    if (dist_spawn_request(node, m, f, a, ud ? DIST_SPAWN_LINK : 0, &ref) != 0) {
        *res = KA(badarg);
        return DIST_ERROR;
    }
    term_t reply;
    if (nd_receive_if(is_spawn_reply, &ref, 10000, &reply) < 0) {
        term_free(ref);
        *res = KA(timeout);
        return DIST_ERROR;
    }
    term_free(ref);
    bool ok = term_tuple_elem(reply, 2) == TERM_ATOM_OK;
    *res = term_dup(term_tuple_elem(reply, 3));
    term_free(reply);
    return ok ? DIST_RETURN : DIST_ERROR;
}

void dist__builtins_export(void)
{
    term_t e = KA(erlang);
    a_run_queue = term_atom("run_queue");
    a_total_run_queue_lengths = term_atom("total_run_queue_lengths");
    a_total_run_queue_lengths_all = term_atom("total_run_queue_lengths_all");
    a_scheduler_wall_time = term_atom("scheduler_wall_time");
    a_scheduler_wall_time_all = term_atom("scheduler_wall_time_all");
    dist_export(e, KA(node), 0, bi_node, NULL);
    dist_export(e, KA(nodes), 0, bi_nodes, NULL);
    dist_export(e, KA(nodes), 1, bi_nodes, NULL);
    dist_export(e, KA(registered), 0, bi_registered, NULL);
    dist_export(e, KA(register_), 2, bi_register, NULL);
    dist_export(e, KA(processes), 0, bi_processes, NULL);
    dist_export(e, KA(whereis), 1, bi_whereis, NULL);
    dist_export(e, KA(is_process_alive), 1, bi_is_process_alive, NULL);
    dist_export(e, KA(exit), 2, bi_exit, NULL);
    dist_export(e, KA(halt), 0, bi_halt, NULL);
    dist_export(e, KA(halt), 1, bi_halt, NULL);
    dist_export(e, KA(process_info), 1, bi_process_info, NULL);
    dist_export(e, KA(process_info), 2, bi_process_info, NULL);
    dist_export(e, KA(system_info), 1, bi_system_info, NULL);
    dist_export(e, KA(statistics), 1, bi_statistics, NULL);
    dist_export(e, KA(send), 2, bi_send, NULL);
    dist_export(e, KA(spawn), 4, bi_spawn, NULL);
    dist_export(e, KA(spawn_link), 4, bi_spawn, (void *)1);
    dist_export(e, KA(disconnect_node), 1, bi_disconnect, NULL);
    dist_export(KA(net_adm), KA(ping), 1, bi_ping, NULL);
}

void dist__builtins_start(void)
{
    t0_wall = (uint64_t)girder__now_ms(CLOCK_MONOTONIC);
    atomic_store(&last_wall, 0);
    atomic_store(&last_runtime, 0);
    atomic_store(&last_reds, 0);
}
