/* The kernel layer's internals: Erlang's kernel services emulated above dist's core. */
#ifndef DIST_KERNEL_H
#define DIST_KERNEL_H

#include "kapi.h"

#include <stdbool.h>
#include <stdint.h>

/* The atoms the kernel layer uses, interned once at start. */
/* (kept out of clang-format: version 14 reflows this list differently on each pass) */
/* clang-format off */
#define KERNEL_ATOMS(X) \
    X(badarg) \
    X(undefined) \
    X(pg) \
    X(leave) \
    X(join) \
    X(spawn_reply) \
    X(shutdown) \
    X(rex) \
    X(get_members) \
    X(yes) \
    X(which_groups) \
    X(sync) \
    X(global_name_server) \
    X(global) \
    X(error) \
    X(discover) \
    X(badrpc) \
    X(resolved) \
    X(reductions) \
    X(process_info) \
    X(nodes) \
    X(net_kernel) \
    X(monitor) \
    X(lock_set) \
    X(link) \
    X(is_auth) \
    X(init_connect) \
    X(halt) \
    X(girder_whereis) \
    X(girder_names) \
    X(exit) \
    X(exchange) \
    X(erpc) \
    X(enomem) \
    X(EXIT) \
    X(DOWN) \
    X(whereis_name) \
    X(whereis) \
    X(wall_clock) \
    X(visible) \
    X(unused) \
    X(unsupported) \
    X(unregister) \
    X(undef) \
    X(trap_exit) \
    X(timeout) \
    X(throw) \
    X(this) \
    X(system_version) \
    X(system_limit) \
    X(system_info) \
    X(status) \
    X(statistics) \
    X(spawn_link) \
    X(spawn) \
    X(set_lock) \
    X(send) \
    X(schedulers_online) \
    X(schedulers) \
    X(runtime) \
    X(registered_names) \
    X(registered_name) \
    X(registered) \
    X(register_ext) \
    X(processes) \
    X(process_count) \
    X(ping) \
    X(not_joined) \
    X(normal) \
    X(nodeup) \
    X(nodedown) \
    X(node) \
    X(noconnection) \
    X(nocatch) \
    X(no_longer_a_pid) \
    X(new_nodes) \
    X(net_adm) \
    X(monitors) \
    X(monitored_by) \
    X(message_queue_len) \
    X(memory) \
    X(machine) \
    X(atom_count) \
    X(atom_limit) \
    X(locker) \
    X(links) \
    X(known) \
    X(is_process_alive) \
    X(insert) \
    X(init_connect_ack) \
    X(ignored) \
    X(hidden) \
    X(get_synced) \
    X(get_protocol_version) \
    X(get_known) \
    X(features_request) \
    X(features_reply) \
    X(execute_call) \
    X(erlang) \
    X(disconnect_node) \
    X(delete) \
    X(del_lock) \
    X(context_switches) \
    X(connected) \
    X(cancel_connect) \
    X(call) \
    X(running) \
    X(runnable) \
    X(waiting) \
    X(exiting) \
    X(spawn_setup_timeout) \
    X(in_sync) \
    X(vsn)
/* clang-format on */

typedef struct kernel_atoms {
#define X(name) term_t name;
    KERNEL_ATOMS(X)
#undef X
    term_t gen_cast;  /* '$gen_cast' */
    term_t return_;   /* return (a C keyword) */
    term_t register_; /* register */
} kernel_atoms;
extern kernel_atoms dist__ka;
#define KA(name) (dist__ka.name)

/* builtins.c */
void dist__builtins_export(void);
void dist__builtins_start(void);
/* net_kernel.c, rex.c */
extern const nd_server_ops dist__nk_ops, dist__rex_ops;
/* global.c */
void dist__global_exports(void);
int dist__global_start(void);
void dist__global_stop(void);

#endif
