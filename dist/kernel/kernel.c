/* The kernel layer's start and stop: dist_start/dist_stop around the core, then its processes. */
#include "kernel.h"

#include <stdlib.h>

kernel_atoms dist__ka;

static term_t nk_pid, rex_pid;
static bool kernel_up;

static void atoms_init(void)
{
#define X(name) dist__ka.name = term_atom(#name);
    KERNEL_ATOMS(X)
#undef X
    dist__ka.gen_cast = term_atom("$gen_cast");
    dist__ka.return_ = term_atom("return");
    dist__ka.register_ = term_atom("register");
}

/* Registers the built-in exports (before the core starts: a dynamically named node's first
** connection may carry calls at once); a second call finds them taken and changes nothing. */
static void kernel_exports(void)
{
    dist__builtins_export();
    dist__global_exports();
}

static void kernel_stop(void)
{
    if (!kernel_up) return;
    kernel_up = false;
    dist__global_stop();
    if (nk_pid != TERM_NONE) nd_server_stop(nk_pid, KA(shutdown), 2000);
    if (rex_pid != TERM_NONE) nd_server_stop(rex_pid, KA(shutdown), 2000);
    term_free(nk_pid);
    term_free(rex_pid);
    nk_pid = rex_pid = TERM_NONE;
}

static int kernel_start(void)
{
    kernel_up = true;
    dist__builtins_start();
    nd_server_opts o = {0};
    o.name = KA(net_kernel);
    int rc = nd_server_start(&dist__nk_ops, NULL, &o, &nk_pid, NULL);
    if (rc) return rc;
    o.name = KA(rex);
    rc = nd_server_start(&dist__rex_ops, NULL, &o, &rex_pid, NULL);
    if (rc) return rc;
    return dist__global_start();
}

int dist_start(const dist_config *cfg)
{
    term_init();
    atoms_init();
    kernel_exports();
    int rc = dist__core_start(cfg);
    if (rc) {
        if (rc != DIST_ESTATE) dist__exports_free();
        return rc;
    }
    rc = kernel_start();
    if (rc) {
        kernel_stop();
        dist__core_stop(5000);
    }
    return rc;
}

int dist_stop(int64_t timeout_ms)
{
    kernel_stop();
    return dist__core_stop(timeout_ms);
}
