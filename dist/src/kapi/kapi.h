/* What the kernel layer (dist/kernel/) may use of dist's core: the only core header it includes. */
#ifndef DIST_KAPI_H
#define DIST_KAPI_H

#include <girder/dist.h>
#include <girder/node.h>
#include <girder/term.h>

/*
** The kernel layer (net_kernel, rex, global, pg, built-in functions: Erlang's kernel application,
** emulated) sits above the core and uses it one way: through the public API and these calls.
** The core never calls the kernel layer.
*/

/* Starts the core: names, cookie, transport, connection machine, the libnode hook; with a dynamic
** name, connects to the naming node first. Exports made before it are callable at once. */
int dist__core_start(const dist_config *cfg);
/* Brings every connection down and waits up to timeout_ms for the loop; frees the exports. */
int dist__core_stop(int64_t timeout_ms);
/* Frees the export registry (after a failed start). */
void dist__exports_free(void);

/* Applies an exported M:F(Args) in the calling process: DIST_RETURN / DIST_ERROR / DIST_EXIT /
** DIST_THROW with *res (owned); error:undef for an unknown function, as Erlang. */
int dist__apply(term_t m, term_t f, term_t args, term_t *res);
/* [{M, F, ArityOrArgs, []}]: the one-frame stack trace reported with an error (consumes its
** arguments). */
term_t dist__stack1(term_t m, term_t f, term_t arity_or_args);

/* One structured log line at a level (DIST_LOG_*). */
void dist__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
