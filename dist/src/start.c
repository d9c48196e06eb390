/* dist start and stop: names, the cookie, the transport and machine, the loop thread. */
#include "core.h"
#include "tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ================================================================ start / stop */

static int read_cookie(char *out, size_t cap)
{
    const char *home = getenv("HOME");
    char path[4096];
    if (!home) return DIST_ECOOKIE;
    snprintf(path, sizeof path, "%s/.erlang.cookie", home);
    FILE *f = fopen(path, "r");
    if (!f) return DIST_ECOOKIE;
    size_t n = fread(out, 1, cap - 1, f);
    fclose(f);
    out[n] = 0;
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ')) out[--n] = 0;
    return n ? 0 : DIST_ECOOKIE;
}

static int make_name(dist_state *st, const dist_config *cfg)
{
    if (!strcmp(cfg->name, "undefined") || !strncmp(cfg->name, "undefined@", 10)) {
        /* a dynamic name: only the host goes out, in the name request */
        st->dynamic = true;
        if (cfg->name[9] == '@') {
            if (!cfg->name[10] || strchr(cfg->name + 10, '@')) return DIST_ENAME;
            snprintf(st->host, sizeof st->host, "%s", cfg->name + 10);
        } else {
            char h[256];
            if (gethostname(h, sizeof h) != 0) return DIST_ENAME;
            h[sizeof h - 1] = 0;
            if (!cfg->longnames) {
                char *dot = strchr(h, '.');
                if (dot) *dot = 0;
            }
            snprintf(st->host, sizeof st->host, "%s", h);
        }
        snprintf(st->name, sizeof st->name, "%s", st->host);
        return cfg->connect ? 0 : DIST_EINVAL;
    }
    const char *at = strchr(cfg->name, '@');
    if (at) {
        if (at == cfg->name || !at[1] || strchr(at + 1, '@')) return DIST_ENAME;
        snprintf(st->name, sizeof st->name, "%s", cfg->name);
        snprintf(st->host, sizeof st->host, "%s", at + 1);
    } else {
        if (!cfg->name[0]) return DIST_ENAME;
        char h[256];
        if (gethostname(h, sizeof h) != 0) return DIST_ENAME;
        h[sizeof h - 1] = 0;
        if (!cfg->longnames) {
            char *dot = strchr(h, '.');
            if (dot) *dot = 0;
        }
        snprintf(st->host, sizeof st->host, "%s", h);
        if (snprintf(st->name, sizeof st->name, "%s@%s", cfg->name, h) >= (int)sizeof st->name)
            return DIST_ENAME;
    }
    if (!cfg->longnames && strchr(st->host, '.')) return DIST_ENAME;
    if (strlen(st->name) > 255) return DIST_ENAME;
    return 0;
}

/* ================================================================ start / stop */

static int setup_ms(const dist_config *cfg)
{
    return cfg->handshake_timeout_ms > 0 ? cfg->handshake_timeout_ms : 7000;
}

static void tls_line(void *ud, int level, const char *line)
{
    (void)ud;
    dist__log(level, "%s", line);
}

static void tls_warn(void *ud, const char *line)
{
    char why[800];
    (void)ud;
    snprintf(why, sizeof why, "%s", line);
    for (char *p = why; *p; p++)
        if (*p == '"') *p = '\'';
    dist__log(DIST_LOG_WARNING, "event=tls_option_warning reason=\"%s\"", why);
}

/*
** The transport: TCP, or TLS over TCP when the configuration asks for it (its contexts are built
** here, so that a refused option, file or key stops the start with a line saying which).
*/
static int transport_new(dist_state *st)
{
    dist_tr_user none = {0};
    dist_tls_ctx *srv = NULL, *cli = NULL;
    if (st->cfg.proto_dist && strcmp(st->cfg.proto_dist, "inet_tcp")) {
        char err[800];
        int rc = dist__tls_contexts(&st->cfg, &srv, &cli, err, sizeof err, tls_warn, NULL);
        if (rc) {
            for (char *p = err; *p; p++)
                if (*p == '"') *p = '\'';
            dist__log(DIST_LOG_ERROR, "event=tls_config_failed reason=\"%s\"", err);
            return rc;
        }
    }
    st->tr = dist__tcp_new(&none, st->cfg.epmd_port);
    if (st->tr && srv) {
        dist_tr *tls = dist__tls_tr_new(st->tr, srv, cli, tls_line, NULL);
        if (tls)
            st->tr = tls;
        else {
            st->tr->ops->destroy(st->tr);
            st->tr = NULL;
        }
    }
    dist__tls_ctx_free(srv); /* the transport holds its own references */
    dist__tls_ctx_free(cli);
    /* the option words and the file were read: nothing of them is kept */
    st->cfg.ssl_dist_optfile = NULL;
    st->cfg.ssl_dist_opt = NULL;
    st->cfg.ssl_dist_opt_count = 0;
    st->cfg.proto_dist = srv ? "inet_tls" : "inet_tcp";
    return st->tr ? 0 : DIST_ENOMEM;
}

/* Makes the transport and the machine, listens, registers; returns once the creation is known
** (from the port mapper, or made up when there is none) or registration failed. */
static int io_start(dist_state *st)
{
    int trc = transport_new(st);
    if (trc) return trc;
    dist_sm_config sc = {0};
    sc.name = st->name;
    sc.cookie = st->cookie;
    sc.flags = st->flags;
    sc.creation = st->creation;
    sc.ticktime_ms = st->ticktime_s * 1000;
    sc.tick_intensity = 4;
    sc.setup_ms = setup_ms(&st->cfg);
    sc.max_message = st->cfg.max_message;
    sc.max_handshakes_per_addr = st->cfg.max_handshakes_per_addr;
    sc.max_handshakes = st->cfg.max_handshakes;
    st->sm = dist__sm_new(&sc, &dist__owner, st->tr);
    if (!st->sm) {
        st->tr->ops->destroy(st->tr);
        return DIST_ENOMEM;
    }
    const dist_tr_ops *ops = st->tr->ops;
    int rc = 0;
    bool wait = false;
    if (!st->dynamic) {
        rc = ops->listen(st->tr, st->cfg.listen_addr, st->cfg.listen_port, &st->port);
        if (!rc && !st->cfg.no_epmd) {
            const char *at = strchr(st->name, '@');
            char alive[HS_MAX_NAME + 1];
            memcpy(alive, st->name, (size_t)(at - st->name));
            alive[at - st->name] = 0;
            rc = ops->publish(st->tr, alive, st->port, st->cfg.hidden, sc.setup_ms);
            wait = rc == 0;
        } else if (!rc) {
            uint32_t v = 0;
            while (v < 4) ops->random(st->tr, &v, sizeof v);
            st->creation = v;
            dist__sm_set_identity(st->sm, NULL, v, st->flags);
        }
    }
    if (!rc) rc = ops->run(st->tr);
    if (rc) {
        dist__sm_shutdown(st->sm);
        dist__sm_free(st->sm);
        ops->destroy(st->tr);
        st->sm = NULL;
        st->tr = NULL;
        return rc;
    }
    if (!wait) return 0;
    struct timespec dl;
    girder__deadline_ts(CLOCK_REALTIME, (int64_t)sc.setup_ms + 2000, &dl);
    pthread_mutex_lock(&st->start_mu);
    while (!st->started)
        if (pthread_cond_timedwait(&st->start_cv, &st->start_mu, &dl) != 0) break;
    rc = st->started ? st->start_status : DIST_ETIMEOUT;
    pthread_mutex_unlock(&st->start_mu);
    return rc;
}

/* Asks the loop to bring everything down and waits up to timeout_ms for it to end. */
static int io_stop(dist_state *st, int64_t timeout_ms)
{
    pthread_mutex_lock(&st->svc_mu);
    st->stopping = true;
    st->stop_asked = true;
    /* half the time left, at most 2 s, for the connections to write out what they hold */
    st->drain_ms = timeout_ms < 0 ? 2000 : timeout_ms / 2 < 2000 ? (uint64_t)timeout_ms / 2 : 2000;
    pthread_mutex_unlock(&st->svc_mu);
    dist__sm_wake(st->sm);
    int rc = st->tr->ops->join(st->tr, timeout_ms);
    if (rc) return rc;
    dist__decoders_stop(st); /* they finish their queues: node-downs queued behind messages */
    dist__sm_free(st->sm);
    st->tr->ops->destroy(st->tr);
    term_cache_release();
    st->sm = NULL;
    st->tr = NULL;
    return 0;
}

static void state_free(dist_state *st)
{
    dist__atom_budgets_free(st);
    free(st->tab);
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->svc_mu);
    pthread_mutex_destroy(&st->start_mu);
    pthread_cond_destroy(&st->start_cv);
    free(st);
}

int dist__core_start(const dist_config *cfg)
{
    if (dist__st) return DIST_ESTATE;
    if (!cfg || !cfg->name) return DIST_EINVAL;
    term_init();
    dist__atoms_init();
    dist_state *st = calloc(1, sizeof *st);
    if (!st) return DIST_ENOMEM;
    st->cfg = *cfg;
    int rc = make_name(st, cfg);
    if (!rc && cfg->cookie) {
        if (strlen(cfg->cookie) > HS_MAX_COOKIE)
            rc = DIST_EINVAL;
        else
            memcpy(st->cookie, cfg->cookie, strlen(cfg->cookie) + 1);
    } else if (!rc) {
        rc = read_cookie(st->cookie, sizeof st->cookie);
    }
    if (rc) {
        free(st);
        return rc;
    }
    st->cfg.name = st->name;
    st->cfg.cookie = NULL;
    /* the documented default, here once: the decoders' queue bound reads it too (left at 0, a
    ** connection stopped reading after every message queued for the decoders) */
    if (!st->cfg.max_message) st->cfg.max_message = DIST__DEFAULT_MAX_MESSAGE;
    st->ticktime_s = cfg->ticktime_s ? cfg->ticktime_s : 60;
    st->frag_size = cfg->frag_size ? cfg->frag_size : 65536;
    st->flags = DIST_OUR_FLAGS | (cfg->hidden ? 0 : DFLAG_PUBLISHED);
    if (st->dynamic) st->flags = DIST_OUR_FLAGS | DFLAG_NAME_ME; /* as dist_util: hidden */
    st->node = term_atom(st->dynamic ? "nonode@nohost" : st->name);
    if (st->node == TERM_NONE) {
        free(st);
        return DIST_ENAME;
    }
    st->tab = calloc(TAB_BUCKETS, sizeof *st->tab);
    if (!st->tab) {
        free(st);
        return DIST_ENOMEM;
    }
    if ((rc = dist__atom_budgets_init(st, cfg))) {
        dist__atom_budgets_free(st);
        free(st->tab);
        free(st);
        return rc;
    }
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->svc_mu, NULL);
    pthread_mutex_init(&st->start_mu, NULL);
    pthread_cond_init(&st->start_cv, NULL);
    dist__st = st;
    dist__gate_open();
    rc = dist__decoders_start(st, cfg->decoders ? cfg->decoders : 2);
    if (!rc) rc = io_start(st); /* listens, registers, sets creation */
    if (rc) {
        dist__gate_close(-1);
        if (st->tr)
            io_stop(st, 5000);
        else
            dist__decoders_stop(st);
        dist__st = NULL;
        state_free(st);
        return rc;
    }
    if (st->dynamic) {
        /* the first connection names us: the loop sets name, node and creation (and libnode's
        ** node) before the connection carries anything, so the hook must be in place */
        nd_set_dist_hook(dist__hook, NULL);
        int64_t to = 2 * (int64_t)setup_ms(cfg);
        term_t peer = term_atom(cfg->connect);
        rc = peer == TERM_NONE ? DIST_EINVAL : dist_connect(peer, to);
        if (!rc && st->dynamic) rc = DIST_ENOCONN;
        if (rc) {
            dist__core_stop(5000);
            return rc == DIST_EINVAL ? rc : DIST_ENOCONN;
        }
        st->cfg.name = st->name;
    }
    nd_set_node(st->node, st->creation);
    nd_set_dist_hook(dist__hook, NULL);
    dist__log(DIST_LOG_NOTICE,
              "event=started node=%s port=%u creation=%u hidden=%d ticktime=%u transport=%s%s",
              st->name, st->port, st->creation, cfg->hidden || cfg->connect ? 1 : 0, st->ticktime_s,
              st->tr->ops->name,
              cfg->connect && strcmp(st->name, cfg->name) ? " named_by_peer=1" : "");
    return 0;
}

/*
** Stops the system processes, brings every connection down, and waits up to timeout_ms (< 0:
** forever) for the loop to end. DIST_ETIMEOUT leaves the distribution stopping but not freed
** (a later call may finish it).
*/
int dist__core_stop(int64_t timeout_ms)
{
    dist_state *st = dist__st;
    if (!st) return DIST_ESTATE;
    if (!st->stopping) {
        pthread_mutex_lock(&st->mu);
        st->stopping = true;
        pthread_mutex_unlock(&st->mu);
    }
    /* nobody may be inside (a sender in the hook, an API call) when the state is freed */
    int64_t deadline = girder__deadline_ms(timeout_ms);
    int rc = dist__gate_close(timeout_ms);
    if (rc) return rc;
    nd_set_dist_hook(NULL, NULL);
    /* node-down for every connection, then the loop ends */
    rc = io_stop(st, deadline < 0 ? -1 : girder__ms_left(deadline));
    if (rc) return rc;
    pthread_mutex_lock(&st->mu);
    while (st->nodemons) {
        nodemon *m = st->nodemons;
        st->nodemons = m->next;
        term_free(m->pid);
        free(m);
    }
    pthread_mutex_unlock(&st->mu);
    dist__exports_free();
    dist__log(DIST_LOG_NOTICE, "event=stopped node=%s", st->name);
    dist__st = NULL;
    state_free(st);
    return 0;
}
