/* girder/module.h: what a girderd module (a shared object) declares — its exports and its app. */
#ifndef GIRDER_MODULE_H
#define GIRDER_MODULE_H

#include <girder/dist.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
** A module is a shared object built against the installed Girder headers and linked with
** `pkg-config --libs girder`. It defines one symbol, girder_module_info (use GIRDER_MODULE),
** which girderd reads after dlopen(): first the ABI number, and only when it equals girderd's
** own, the rest. girderd then runs load(), exports every function as {Name, Function, Arity}
** (callable by rpc:call, erpc:call and spawn from Erlang and Girder nodes, and by a local
** spawn through the control socket), and, when the module has an app, starts the app's
** supervisor under the node's root supervisor. A module stays loaded until the node stops.
**
** Exported functions and child start functions run inside processes, with the contracts of
** dist_fun (girder/dist.h) and nd_child_start_fn (girder/node.h).
*/

/* Raised whenever this header, or anything in term.h, node.h or dist.h a module relies on,
** changes incompatibly. girderd refuses a module built for another value. */
#define GIRDER_MODULE_ABI 2 /* 2: nd_proc_info and dist_config grew (2026-11-30) */

/* The symbol girderd looks up. */
#define GIRDER_MODULE_SYMBOL "girder_module_info"

typedef struct girder_export {
    const char *function; /* the Erlang function name (an atom's text) */
    unsigned arity;       /* 0..255 */
    dist_fun fn;
    void *ud; /* given to fn */
} girder_export;

typedef struct girder_child {
    const char *id; /* the child's id (an atom's text), unique in the app */
    nd_child_start_fn start;
    void *arg;
    nd_restart restart;
    int64_t shutdown; /* ND_BRUTAL_KILL, milliseconds, or ND_INFINITY */
    nd_child_type type;
} girder_child;

/* An app: a supervisor with these children, started under the node's root supervisor. When
** the node stops, apps stop in the reverse order of their start, each through its supervisor
** (children in reverse order, each within its shutdown time), then stop() is called. */
typedef struct girder_app {
    nd_strategy strategy; /* not ND_SIMPLE_ONE_FOR_ONE */
    unsigned intensity;   /* restarts allowed ... */
    int64_t period_ms;    /* ... within this window (0 = 5000) */
    const girder_child *children;
    size_t nchildren;
    void (*stop)(void); /* optional: after the app's supervisor is gone */
} girder_app;

/* What girderd gives a module's load(). Valid for as long as the module is loaded. */
typedef struct girder_host {
    uint32_t abi;     /* GIRDER_MODULE_ABI */
    const char *node; /* this node's name */
    /* Writes one log line "<time> <level> <module name> <text>"; level 0..7 as syslog
    ** (3 error, 4 warning, 6 info, 7 debug); text is "event=... key=value ...". Any thread. */
    void (*log)(const struct girder_host *host, int level, const char *text);
    void *priv; /* girderd's */
} girder_host;

typedef struct girder_module {
    uint32_t abi;        /* GIRDER_MODULE_ABI, first: read before anything else */
    uint32_t size;       /* sizeof(girder_module) as the module was built */
    const char *name;    /* module name (the Module of the exports) and app name */
    const char *version; /* free text, e.g. "1.2.0" */
    const girder_export *exports;
    size_t nexports;
    const girder_app *app; /* NULL: no app */
    /* Optional: runs once at load, before the exports are visible and from a process. 0 to
    ** accept; anything else refuses the module with the message written to err. The place to
    ** intern (term_atom) the atoms the module compares decoded terms with using ==: a peer's
    ** name not interned before it is decoded may arrive as a foreign atom (term.h), equal to
    ** the interned one by term_equal() only. */
    int (*load)(const girder_host *host, char *err, size_t errlen);
} girder_module;

/* The number of elements of a static array. */
#define GIRDER_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/*
** Defines the module's descriptor from designated initializers:
**   GIRDER_MODULE(.name = "hello", .version = "1.0.0",
**                 .exports = exports, .nexports = GIRDER_COUNT(exports));
*/
#define GIRDER_MODULE(...)                                                                \
    extern __attribute__((visibility("default"))) const girder_module girder_module_info; \
    const girder_module girder_module_info = {                                            \
        .abi = GIRDER_MODULE_ABI, .size = sizeof(girder_module), __VA_ARGS__}

#ifdef __cplusplus
}
#endif
#endif
