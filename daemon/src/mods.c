/* girderd's loadable modules: dlopen, the ABI check, exports, and apps under the root supervisor.
 */
#include "mods.h"

#include "log.h"

#include <dlfcn.h>
#include <girder/module.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A(s) term_atom(s)

/* ---------------------------------------------------------------- exports */

/*
** Every module function is exported to dist through one trampoline whose ud is an entry of
** this table; the entry points at the module's binding. dist has no way to withdraw an
** export, so an entry, once exported, stays: a module refused half-way leaves its entries
** unbound (calls get error:undef), and a later module with the same name binds them again.
*/
typedef struct binding {
    dist_fun fn;
    void *ud;
} binding;

typedef struct xentry {
    struct xentry *next;
    term_t m, f;
    unsigned arity;
    _Atomic(const binding *) b;
} xentry;

static pthread_mutex_t xmu = PTHREAD_MUTEX_INITIALIZER;
static xentry *xtab;

static xentry *xfind(term_t m, term_t f, unsigned arity)
{
    pthread_mutex_lock(&xmu);
    xentry *e = xtab;
    while (e && !(e->m == m && e->f == f && e->arity == arity)) e = e->next;
    pthread_mutex_unlock(&xmu);
    return e;
}

static int trampoline(void *ud, term_t args, term_t *res)
{
    const binding *b = atomic_load(&((xentry *)ud)->b);
    if (!b) {
        *res = A("undef");
        return DIST_ERROR;
    }
    return b->fn(b->ud, args, res);
}

/* ---------------------------------------------------------------- module records */

enum { APP_NONE, APP_NOT_STARTED, APP_RUNNING, APP_FAILED, APP_EXITED, APP_STOPPED };
static const char *const app_state_names[] = {"none",   "not_started", "running",
                                              "failed", "exited",      "stopped"};

typedef struct gmod {
    struct gmod *next;
    char *path;
    void *dl;
    const girder_module *d;
    term_t name;
    girder_host host;
    binding *binds; /* one per export */
    xentry **entries;
    nd_child_spec *kids;
    nd_sup_start_args sargs;
    int app_state;
    term_t app_pid, app_mon;
    char app_error[256];
    struct gmod *started_prev; /* the app started before this one (stop order) */
} gmod;

typedef struct mstate {
    gmod *mods, *last_started;
    char *node, *module_dir;
} mstate;

static term_t root_sup = TERM_NONE, server = TERM_NONE;
static mstate *ms; /* owned by the server while it runs; freed by gd_mods_free */

static void host_log(const girder_host *h, int level, const char *text)
{
    const gmod *m = h->priv;
    gd_logc(level, term_atom_name(m->name, NULL), "%s", text);
}

static const char *const reserved[] = {"erlang", "init",   "net_adm", "net_kernel", "rpc",
                                       "erpc",   "global", "pg",      "girder",     NULL};

static bool valid_name(const char *s)
{
    return s && *s && strlen(s) <= 255 && term_atom(s) != TERM_NONE;
}

/* Checks everything the descriptor says before anything of it is used. */
static int validate(const girder_module *d, char *err, size_t n)
{
    if (!valid_name(d->name)) return snprintf(err, n, "module name missing or invalid"), -1;
    for (int i = 0; reserved[i]; i++)
        if (!strcmp(d->name, reserved[i]))
            return snprintf(err, n, "module name %s is reserved by the node", d->name), -1;
    if (!d->version) return snprintf(err, n, "module %s has no version", d->name), -1;
    if (d->nexports && !d->exports)
        return snprintf(err, n, "module %s: no export table", d->name), -1;
    for (size_t i = 0; i < d->nexports; i++) {
        const girder_export *x = &d->exports[i];
        if (!valid_name(x->function) || !x->fn || x->arity > 255)
            return snprintf(err, n, "module %s: export %zu is invalid", d->name, i), -1;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(d->exports[j].function, x->function) && d->exports[j].arity == x->arity)
                return snprintf(err, n, "module %s exports %s/%u twice", d->name, x->function,
                                x->arity),
                       -1;
    }
    const girder_app *a = d->app;
    if (a) {
        if (a->strategy > ND_REST_FOR_ONE)
            return snprintf(err, n,
                            "app %s: strategy must be one_for_one, one_for_all or "
                            "rest_for_one",
                            d->name),
                   -1;
        if (a->nchildren && !a->children)
            return snprintf(err, n, "app %s: no child table", d->name), -1;
        for (size_t i = 0; i < a->nchildren; i++) {
            const girder_child *c = &a->children[i];
            if (!valid_name(c->id) || !c->start || c->restart > ND_TEMPORARY ||
                c->type > ND_SUPERVISOR || c->shutdown < ND_INFINITY)
                return snprintf(err, n, "app %s: child %zu is invalid", d->name, i), -1;
            for (size_t j = 0; j < i; j++)
                if (!strcmp(a->children[j].id, c->id))
                    return snprintf(err, n, "app %s: child id %s twice", d->name, c->id), -1;
        }
    }
    return 0;
}

static void mod_free(gmod *m)
{
    free(m->path);
    free(m->binds);
    free(m->entries);
    free(m->kids);
    term_free(m->app_pid);
    term_free(m->app_mon);
    free(m);
}

/* Binds (and the first time exports) every function of m; on failure unbinds what it bound. */
static int export_all(gmod *m, char *err, size_t n)
{
    const girder_module *d = m->d;
    size_t i;
    for (i = 0; i < d->nexports; i++) {
        const girder_export *x = &d->exports[i];
        term_t f = A(x->function);
        m->binds[i] = (binding){x->fn, x->ud};
        xentry *e = xfind(m->name, f, x->arity);
        if (e && atomic_load(&e->b)) {
            snprintf(err, n, "%s:%s/%u is already exported", d->name, x->function, x->arity);
            break;
        }
        if (!e) {
            e = calloc(1, sizeof *e);
            if (!e) {
                snprintf(err, n, "out of memory");
                break;
            }
            e->m = m->name;
            e->f = f;
            e->arity = x->arity;
            int rc = dist_export(m->name, f, x->arity, trampoline, e);
            if (rc) {
                free(e);
                snprintf(err, n, "cannot export %s:%s/%u: %s", d->name, x->function, x->arity,
                         rc == DIST_EEXIST ? "a built-in of the node" : dist_strerror(rc));
                break;
            }
            pthread_mutex_lock(&xmu);
            e->next = xtab;
            xtab = e;
            pthread_mutex_unlock(&xmu);
        }
        atomic_store(&e->b, &m->binds[i]);
        m->entries[i] = e;
    }
    if (i == d->nexports) return 0;
    while (i-- > 0) atomic_store(&m->entries[i]->b, NULL);
    return -1;
}

static term_t bin(const char *s)
{
    return term_binary(s, strlen(s));
}

static term_t mod_info(const gmod *m)
{
    const girder_module *d = m->d;
    term_t xs = TERM_NIL;
    for (size_t i = d->nexports; i-- > 0;)
        xs = term_cons(
            term_tuplev(2, A(d->exports[i].function), term_int((int64_t)d->exports[i].arity)), xs);
    term_t k[8], v[8];
    size_t n = 0;
    k[n] = A("name"), v[n++] = m->name;
    k[n] = A("version"), v[n++] = bin(d->version);
    k[n] = A("path"), v[n++] = bin(m->path);
    k[n] = A("abi"), v[n++] = term_int(d->abi);
    k[n] = A("exports"), v[n++] = xs;
    k[n] = A("app"), v[n++] = A(app_state_names[m->app_state]);
    if (m->app_state == APP_RUNNING) k[n] = A("app_pid"), v[n++] = term_dup(m->app_pid);
    if (m->app_state == APP_FAILED) k[n] = A("app_error"), v[n++] = bin(m->app_error);
    return term_map(n, k, v);
}

/* The app's start function as the root supervisor runs it: records why a start failed. */
static int app_child_start(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    gmod *m = arg;
    term_t why = TERM_NONE;
    int rc = nd_sup_child_start(&m->sargs, extra, pid, &why);
    if (rc != 0) {
        char *s = why != TERM_NONE ? term_to_string(why, TERM_PRINT_P) : NULL;
        snprintf(m->app_error, sizeof m->app_error, "%s", s ? s : nd_strerror(rc));
        free(s);
    }
    if (reason)
        *reason = why;
    else
        term_free(why);
    return rc;
}

static void start_app(mstate *st, gmod *m)
{
    const char *name = term_atom_name(m->name, NULL);
    if (m->app_state == APP_RUNNING) return;
    nd_child_spec spec = {m->name, app_child_start, m, ND_TEMPORARY, ND_INFINITY, ND_SUPERVISOR};
    m->app_error[0] = 0;
    term_t pid = TERM_NONE;
    int rc = nd_sup_start_child(root_sup, &spec, 60000, &pid);
    if (rc == ND_EEXIST) { /* a stale spec of an app that exited: replace it */
        nd_sup_delete_child(root_sup, m->name, 5000);
        rc = nd_sup_start_child(root_sup, &spec, 60000, &pid);
    }
    char q[300];
    if (rc != 0) {
        if (!m->app_error[0]) snprintf(m->app_error, sizeof m->app_error, "%s", nd_strerror(rc));
        m->app_state = APP_FAILED;
        gd_log(GD_ERROR, "event=app_start_failed app=%s reason=%s", name,
               gd_q(q, sizeof q, m->app_error));
        return;
    }
    m->app_state = APP_RUNNING;
    m->app_pid = pid;
    nd_monitor(pid, &m->app_mon);
    m->started_prev = st->last_started;
    st->last_started = m;
    char *ps = term_to_string(pid, TERM_PRINT_W);
    gd_log(GD_INFO, "event=app_started app=%s sup=%s", name, ps ? ps : "?");
    free(ps);
}

static gmod *find_mod(mstate *st, const char *name)
{
    for (gmod *m = st->mods; m; m = m->next)
        if (!strcmp(term_atom_name(m->name, NULL), name)) return m;
    return NULL;
}

/* The server's load: every check before anything is registered. */
static int do_load(mstate *st, const char *spec, bool start, char *err, size_t n, term_t *info)
{
    char path[4096];
    if (strchr(spec, '/'))
        snprintf(path, sizeof path, "%s", spec);
    else if (st->module_dir)
        snprintf(path, sizeof path, "%s/%s.so", st->module_dir, spec);
    else
        return snprintf(err, n, "%s: no module directory to look in", spec), -1;
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        return snprintf(err, n, "cannot load: %s", e ? e : path), -1;
    }
    const girder_module *d = dlsym(dl, GIRDER_MODULE_SYMBOL);
    if (!d) {
        dlclose(dl);
        return snprintf(err, n, "%s is not a girderd module (no symbol %s)", path,
                        GIRDER_MODULE_SYMBOL),
               -1;
    }
    if (d->abi != GIRDER_MODULE_ABI) {
        uint32_t abi = d->abi;
        dlclose(dl);
        return snprintf(err, n, "%s was built for module ABI %u; this girderd has ABI %u", path,
                        abi, GIRDER_MODULE_ABI),
               -1;
    }
    if (d->size != sizeof(girder_module)) {
        uint32_t sz = d->size;
        dlclose(dl);
        return snprintf(err, n, "%s: descriptor size %u, expected %zu (a different header)", path,
                        sz, sizeof(girder_module)),
               -1;
    }
    if (validate(d, err, n)) {
        dlclose(dl);
        return -1;
    }
    gmod *old = find_mod(st, d->name);
    if (old) {
        snprintf(err, n, "module %s is already loaded (from %s)", d->name, old->path);
        dlclose(dl); /* the same file again only drops the extra reference dlopen took */
        return -1;
    }
    gmod *m = calloc(1, sizeof *m);
    size_t nx = d->nexports ? d->nexports : 1;
    if (!m || !(m->path = strdup(path)) || !(m->binds = calloc(nx, sizeof *m->binds)) ||
        !(m->entries = calloc(nx, sizeof *m->entries))) {
        if (m) mod_free(m);
        dlclose(dl);
        return snprintf(err, n, "out of memory"), -1;
    }
    m->dl = dl;
    m->d = d;
    m->name = A(d->name);
    m->app_pid = m->app_mon = TERM_NONE;
    m->host = (girder_host){GIRDER_MODULE_ABI, st->node, host_log, m};
    if (d->app) {
        const girder_app *a = d->app;
        m->kids = calloc(a->nchildren ? a->nchildren : 1, sizeof *m->kids);
        if (!m->kids) {
            mod_free(m);
            dlclose(dl);
            return snprintf(err, n, "out of memory"), -1;
        }
        for (size_t i = 0; i < a->nchildren; i++) {
            const girder_child *c = &a->children[i];
            m->kids[i] =
                (nd_child_spec){A(c->id), c->start, c->arg, c->restart, c->shutdown, c->type};
        }
        m->sargs.flags = (nd_sup_flags){a->strategy, a->intensity, a->period_ms};
        m->sargs.children = m->kids;
        m->sargs.n = a->nchildren;
        m->app_state = APP_NOT_STARTED;
    }
    if (d->load) {
        char lerr[256] = "";
        if (d->load(&m->host, lerr, sizeof lerr) != 0) {
            snprintf(err, n, "module %s refused to load: %s", d->name,
                     lerr[0] ? lerr : "load() failed");
            mod_free(m); /* the library stays mapped: its load() ran and may have left state */
            return -1;
        }
    }
    if (export_all(m, err, n)) {
        mod_free(m);
        return -1;
    }
    gmod **tail = &st->mods;
    while (*tail) tail = &(*tail)->next;
    *tail = m;
    char q[600];
    gd_log(GD_INFO, "event=module_loaded module=%s version=%s path=%s exports=%zu app=%s", d->name,
           gd_q(q, 200, d->version), gd_q(q + 200, 400, path), d->nexports, d->app ? "yes" : "no");
    if (start && d->app) start_app(st, m);
    if (info) *info = mod_info(m);
    if (start && d->app && m->app_state == APP_FAILED) {
        snprintf(err, n, "module %s loaded, but its app did not start: %s", d->name, m->app_error);
        return -2;
    }
    return 0;
}

static void stop_apps(mstate *st)
{
    for (gmod *m = st->last_started; m; m = m->started_prev) {
        if (m->app_state != APP_RUNNING) continue;
        const char *name = term_atom_name(m->name, NULL);
        gd_log(GD_INFO, "event=app_stopping app=%s", name);
        nd_demonitor(m->app_mon, ND_DEMONITOR_FLUSH);
        /* the app supervisor's shutdown is infinity: it takes what its children's take */
        int rc = nd_sup_terminate_child(root_sup, m->name, ND_INFINITY);
        m->app_state = APP_STOPPED;
        if (m->d->app->stop) m->d->app->stop();
        if (rc)
            gd_log(GD_WARNING, "event=app_stopped app=%s result=%s", name, nd_err_name(rc));
        else
            gd_log(GD_INFO, "event=app_stopped app=%s", name);
    }
    st->last_started = NULL;
}

/* ---------------------------------------------------------------- the server */

static int srv_init(void *arg, void **state, term_t *reason)
{
    (void)reason;
    *state = arg;
    return 0;
}

static char *bin_str(term_t b)
{
    if (!term_is_binary(b) || !term_binary_data(b)) return NULL;
    return strndup((const char *)term_binary_data(b), term_binary_size(b));
}

static int srv_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    mstate *st = *state;
    (void)from;
    (void)reason;
    size_t n = term_is_tuple(req) ? term_tuple_arity(req) : 0;
    term_t tag = n ? term_tuple_elem(req, 0) : req;
    if (tag == A("load") && n == 3) {
        char *spec = bin_str(term_tuple_elem(req, 1));
        char err[512] = "";
        term_t info = TERM_NONE;
        int rc = spec ? do_load(st, spec, term_tuple_elem(req, 2) == TERM_ATOM_TRUE, err,
                                sizeof err, &info)
                      : -1;
        if (rc != 0) {
            char q[600];
            gd_log(GD_ERROR, "event=module_refused module=%s reason=%s",
                   gd_q(q, 200, spec ? spec : "?"), gd_q(q + 200, 400, err));
            *reply = term_tuplev(3, TERM_ATOM_ERROR, bin(err), info == TERM_NONE ? TERM_NIL : info);
        } else {
            *reply = term_tuplev(2, TERM_ATOM_OK, info);
        }
        free(spec);
    } else if (tag == A("start_apps") && n == 2) {
        int failed = 0;
        term_t names = term_tuple_elem(req, 1);
        if (names == A("all")) {
            for (gmod *m = st->mods; m; m = m->next)
                if (m->app_state == APP_NOT_STARTED) {
                    start_app(st, m);
                    failed += m->app_state != APP_RUNNING;
                }
        } else {
            for (term_t l = names; term_is_cons(l); l = term_tl(l)) {
                char *nm = bin_str(term_hd(l));
                gmod *m = nm ? find_mod(st, nm) : NULL;
                if (!m || !m->d->app) {
                    char q[300];
                    gd_log(GD_ERROR, "event=app_start_failed app=%s reason=%s",
                           gd_q(q, 100, nm ? nm : "?"),
                           m ? "\"the module has no app\"" : "\"no module of that name loaded\"");
                    failed++;
                } else {
                    start_app(st, m);
                    failed += m->app_state != APP_RUNNING;
                }
                free(nm);
            }
        }
        *reply = term_int(failed);
    } else if (tag == A("list")) {
        term_t l = TERM_NIL;
        size_t cnt = 0;
        for (gmod *m = st->mods; m; m = m->next) cnt++;
        term_t *v = calloc(cnt ? cnt : 1, sizeof *v);
        size_t i = 0;
        for (gmod *m = st->mods; m && v; m = m->next) v[i++] = mod_info(m);
        l = v ? term_list(cnt, v) : TERM_NIL;
        free(v);
        *reply = l;
    } else if (tag == A("stop_apps")) {
        stop_apps(st);
        *reply = TERM_ATOM_OK;
    } else {
        *reply = term_tuplev(2, TERM_ATOM_ERROR, A("badrequest"));
    }
    return ND_REPLY;
}

/* An app's supervisor went down on its own (it gave up restarting): the app has exited. */
static int srv_info(void **state, term_t msg, term_t *reason)
{
    mstate *st = *state;
    (void)reason;
    if (!term_is_tuple(msg) || term_tuple_arity(msg) != 5 || term_tuple_elem(msg, 0) != A("DOWN"))
        return ND_NOREPLY;
    for (gmod *m = st->mods; m; m = m->next)
        if (m->app_state == APP_RUNNING && term_equal(m->app_mon, term_tuple_elem(msg, 1))) {
            m->app_state = APP_EXITED;
            char *r = term_to_string(term_tuple_elem(msg, 4), TERM_PRINT_P);
            char q[300];
            gd_log(GD_ERROR, "event=app_exited app=%s reason=%s", term_atom_name(m->name, NULL),
                   gd_q(q, sizeof q, r ? r : "?"));
            free(r);
            /* unlink it from the stop order */
            for (gmod **p = &st->last_started; *p; p = &(*p)->started_prev)
                if (*p == m) {
                    *p = m->started_prev;
                    break;
                }
        }
    return ND_NOREPLY;
}

static const nd_server_ops srv_ops = {srv_init, srv_call, NULL, srv_info, NULL};

int gd_mods_start(const char *node, const char *module_dir)
{
    ms = calloc(1, sizeof *ms);
    if (!ms) return ND_ENOMEM;
    ms->node = strdup(node);
    ms->module_dir = module_dir ? strdup(module_dir) : NULL;
    nd_sup_flags fl = {ND_ONE_FOR_ONE, 10, 10000};
    nd_server_opts o = {0};
    o.name = A("girder_sup");
    term_t why = TERM_NONE;
    int rc = nd_supervisor_start(&fl, NULL, 0, &o, &root_sup, &why);
    term_free(why);
    if (rc) return rc;
    o.name = A("girder_modules");
    return nd_server_start(&srv_ops, ms, &o, &server, NULL);
}

int gd_mods_load(const char *spec, bool start_app, char *err, size_t errlen, term_t *info)
{
    if (info) *info = TERM_NONE;
    term_t rep;
    int rc = nd_call(
        server, term_tuplev(3, A("load"), bin(spec), start_app ? TERM_ATOM_TRUE : TERM_ATOM_FALSE),
        120000, &rep);
    if (rc) {
        snprintf(err, errlen, "module server: %s", nd_strerror(rc));
        term_free(rep);
        return -1;
    }
    int res = -1;
    if (term_is_tuple(rep) && term_tuple_elem(rep, 0) == TERM_ATOM_OK) {
        if (info) *info = term_dup(term_tuple_elem(rep, 1));
        res = 0;
    } else if (term_is_tuple(rep) && term_tuple_arity(rep) == 3) {
        char *e = bin_str(term_tuple_elem(rep, 1));
        snprintf(err, errlen, "%s", e ? e : "?");
        free(e);
        if (info && term_is_map(term_tuple_elem(rep, 2))) *info = term_dup(term_tuple_elem(rep, 2));
    }
    term_free(rep);
    return res;
}

int gd_mods_start_apps(char *const *names, size_t n)
{
    term_t arg;
    if (n == 0) {
        arg = A("all");
    } else {
        term_t *v = calloc(n, sizeof *v);
        if (!v) return -1;
        for (size_t i = 0; i < n; i++) v[i] = bin(names[i]);
        arg = term_list(n, v);
        free(v);
    }
    term_t rep;
    int rc = nd_call(server, term_tuplev(2, A("start_apps"), arg), ND_INFINITY, &rep);
    int64_t failed = -1;
    if (rc == 0) term_get_int64(rep, &failed);
    term_free(rep);
    return (int)failed;
}

void gd_mods_stop(void)
{
    term_t rep;
    if (server == TERM_NONE) return;
    nd_call(server, A("stop_apps"), ND_INFINITY, &rep);
    term_free(rep);
    nd_server_stop(server, A("shutdown"), 5000);
    nd_server_stop(root_sup, A("shutdown"), 30000);
    term_free(server);
    term_free(root_sup);
    server = root_sup = TERM_NONE;
}

term_t gd_mods_list(void)
{
    term_t rep;
    if (nd_call(server, A("list"), 10000, &rep) != 0) {
        term_free(rep);
        return TERM_NONE;
    }
    return rep;
}

/* ---------------------------------------------------------------- local spawn */

typedef struct spawn_job {
    const binding *b;
    term_t m, f, args;
} spawn_job;

static void job_hook(void *arg, term_t reason)
{
    spawn_job *j = arg;
    (void)reason;
    term_free(j->args);
    free(j);
}

static void spawn_body(void *arg)
{
    spawn_job *j = arg;
    term_t res = TERM_NONE, stack;
    int rc = j->b->fn(j->b->ud, j->args, &res);
    if (res == TERM_NONE) res = rc == DIST_RETURN ? TERM_ATOM_OK : A("undefined");
    switch (rc) {
    case DIST_RETURN:
        term_free(res);
        nd_exit(A("normal"));
    case DIST_EXIT:
        nd_exit(res);
    default:
        stack = term_list(1, (term_t[]){term_tuplev(4, j->m, j->f, term_dup(j->args), TERM_NIL)});
        if (rc == DIST_THROW) res = term_tuplev(2, A("nocatch"), res);
        nd_exit(term_tuplev(2, res, stack));
    }
}

int gd_mods_spawn(term_t module, term_t function, term_t args, term_t *pid)
{
    long n = term_list_length(args);
    if (n < 0 || n > 255 || !term_is_atom(module) || !term_is_atom(function)) return ND_EINVAL;
    xentry *e = xfind(module, function, (unsigned)n);
    const binding *b = e ? atomic_load(&e->b) : NULL;
    if (!b) return 1;
    spawn_job *j = malloc(sizeof *j);
    if (!j) return ND_ENOMEM;
    *j = (spawn_job){b, module, function, term_dup(args)};
    /* the hook from the start: a process killed before it runs still frees its job */
    nd_spawn_opts so = {.exit_hook = job_hook, .exit_hook_arg = j};
    int rc = nd_spawn(spawn_body, j, &so, pid);
    if (rc) job_hook(j, TERM_NONE);
    return rc;
}

void gd_mods_free(void)
{
    while (xtab) {
        xentry *e = xtab;
        xtab = e->next;
        free(e);
    }
    if (!ms) return;
    while (ms->mods) {
        gmod *m = ms->mods;
        ms->mods = m->next;
        mod_free(m); /* libraries stay mapped until exit: code of theirs may still be referenced */
    }
    free(ms->node);
    free(ms->module_dir);
    free(ms);
    ms = NULL;
}
