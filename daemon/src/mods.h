/* girderd's loadable modules: dlopen, the ABI check, exports, and apps under the root supervisor.
 */
#ifndef GIRDERD_MODS_H
#define GIRDERD_MODS_H
#include <girder/node.h>
#include <stdbool.h>
#include <stddef.h>

/*
** Starts the root supervisor `girder_sup` and the module server `girder_modules` (the one
** process that loads modules and starts and stops apps, so those never race). node is the
** node's name (for girder_host), module_dir where bare module names are found. From a thread
** that is not a process, after dist_start. 0 or an ND_ error.
*/
int gd_mods_start(const char *node, const char *module_dir);

/*
** Loads a module: spec is a path (it holds a '/') or a bare name found as
** <module_dir>/<name>.so. Exports its functions; with start_app, starts its app too. From a
** process or another thread (a call to the module server). 0, or -1 with a one-line reason in
** err (the node is unharmed: a refused module leaves nothing behind). *info (optional) gets
** the module's description (a map, see gd_mods_list) on success.
*/
int gd_mods_load(const char *spec, bool start_app, char *err, size_t errlen, term_t *info);

/* Starts the apps named (in that order), or with n == 0 the app of every loaded module not yet
** started, in load order. Failures are logged; returns how many failed. */
int gd_mods_start_apps(char *const *names, size_t n);

/* Stops every running app, in the reverse order of their start: through its supervisor, then
** its stop() callback. Then stops the root supervisor and the module server. */
void gd_mods_stop(void);

/* The loaded modules: a list (a reference) of maps #{name => Atom, version => Binary,
** path => Binary, abi => Int, exports => [{F, Arity}], app => none | not_started | running |
** failed | exited | stopped, app_pid => Pid (while running), app_error => Binary (when
** failed)}; TERM_NONE if the server is gone. */
term_t gd_mods_list(void);

/*
** Spawns the exported function module:function with args (a proper list, borrowed) as a new
** local process, exiting as a remotely spawned one would (normal on return, the reason of an
** exit, {Reason, Stack} of an error). 0 with *pid; 1 when no module exports that function;
** ND_EINVAL for a bad argument list; another ND_ error if the spawn failed.
*/
int gd_mods_spawn(term_t module, term_t function, term_t args, term_t *pid);

/* Frees what the modules left after the runtime is shut down (bindings, records). */
void gd_mods_free(void);
#endif
