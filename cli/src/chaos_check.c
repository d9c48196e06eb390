/* girder chaos: the checker — every invariant of docs/chaos.md over a history, each violation
 * with the fewest lines that show it. */
#include "chaos.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *const chaos_inv_names[NINV] = {
    "exactly-once", "timely", "reason",     "silence", "stale-noproc", "detect",
    "order",        "loss",   "supervisor", "mesh",    "resources",    "workload",
};

const char *const chaos_inv_meaning[NINV] = {
    "every link and monitor whose peer was lost (node down, partition, restart) or exited fired "
    "exactly once",
    "a noconnection EXIT/DOWN came with its node-down (within the delivery bound), never later",
    "the reason was noconnection, or the peer process's own exit reason",
    "no EXIT after unlink, no DOWN after a demonitor that found the monitor active",
    "a link or monitor to a pid of a node's earlier incarnation answered noproc",
    "a node cut off (kill, restart, partition, long pause) was seen down by every connected node "
    "within the tick bound",
    "per sender, messages arrived in the order sent and at most once",
    "a message was lost only across a disconnect of its two nodes",
    "supervisors restored children lost with their node, and gave up only past their intensity",
    "after each heal the mesh reconnected within the settle bound",
    "descriptors, memory and processes of every node came back within bounds after each round",
    "the workload did not crash, every signal belonged to a pair it made, every line was whole",
};

#define NEVER INT64_MAX

/* ---------------------------------------------------------------- violations */

static int add_violation(chaos_result *r, int inv, const chaos_ev *const *w, size_t nw,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int add_violation(chaos_result *r, int inv, const chaos_ev *const *w, size_t nw,
                         const char *fmt, ...)
{
    if (r->nv == r->capv) {
        size_t c = r->capv ? r->capv * 2 : 16;
        chaos_violation *v = realloc(r->v, c * sizeof *v);
        if (!v) return -ENOMEM;
        r->v = v;
        r->capv = c;
    }
    chaos_violation *v = &r->v[r->nv];
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    v->inv = inv;
    v->msg = strdup(buf);
    v->w = calloc(nw ? nw : 1, sizeof *v->w);
    if (!v->msg || !v->w) {
        free(v->msg);
        free(v->w);
        return -ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < nw; i++)
        if (w[i]) v->w[k++] = w[i];
    v->nw = k;
    r->nv++;
    r->failed[inv]++;
    return 0;
}

#define VIOL(inv, ...)                                                                       \
    do {                                                                                     \
        const chaos_ev *w_[] = {__VA_ARGS__};                                                \
        if (add_violation(r, inv, w_, sizeof w_ / sizeof w_[0], "%s", msg) != 0) goto nomem; \
    } while (0)

static double secs(int64_t us)
{
    return (double)us / 1e6;
}

/* ---------------------------------------------------------------- indices over the history */

typedef struct evlist {
    const chaos_ev **e;
    size_t n, cap;
} evlist;

static int evl_push(evlist *l, const chaos_ev *e)
{
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 8;
        const chaos_ev **x = realloc(l->e, c * sizeof *x);
        if (!x) return -ENOMEM;
        l->e = x;
        l->cap = c;
    }
    l->e[l->n++] = e;
    return 0;
}

/* Lists of events keyed by an interned string (map -> index into an array of lists). */
typedef struct keyed {
    chaos_map m;
    evlist *l;
    size_t n, cap;
} keyed;

static evlist *keyed_get(keyed *k, const void *key, bool create)
{
    size_t i;
    if (chaos_map_get(&k->m, key, &i)) return &k->l[i];
    if (!create) return NULL;
    if (k->n == k->cap) {
        size_t c = k->cap ? k->cap * 2 : 64;
        evlist *l = realloc(k->l, c * sizeof *l);
        if (!l) return NULL;
        k->l = l;
        k->cap = c;
    }
    memset(&k->l[k->n], 0, sizeof k->l[k->n]);
    if (chaos_map_put(&k->m, key, k->n) != 0) return NULL;
    return &k->l[k->n++];
}

static void keyed_free(keyed *k)
{
    for (size_t i = 0; i < k->n; i++) free(k->l[i].e);
    free(k->l);
    chaos_map_free(&k->m);
}

/* A link or a monitor, seen from the process that made it (a) toward b. */
typedef struct rec {
    const chaos_ev *op;
    const char *node_b;
    int64_t cr_b;
    const chaos_ev *closer;       /* unlink, active demonitor, the texit of a */
    bool silent;                  /* closer forbids later signals */
    const chaos_ev *inactive;     /* a demonitor that found the monitor gone */
    const chaos_ev *owner_unlink; /* for a target's link: the owner's unlink */
    const chaos_ev *retire;
    evlist sig;
} rec;

typedef struct fault {
    const chaos_ev *start, *heal;
} fault;

typedef struct ctx {
    chaos_hist *h;
    chaos_result *r;
    int64_t t_end;
    const chaos_ev *run;
    keyed downs;     /* "X|Y" -> nodedown events of X about Y, in time order */
    keyed starts;    /* node -> start events */
    keyed stops;     /* node -> node_kill / node_stop events */
    keyed samples;   /* node -> samples */
    chaos_map texit; /* pid -> index of its texit */
    fault *f;
    size_t nf;
    rec *rec;
    size_t nrec, caprec;
    chaos_map links, mons; /* id -> rec */
} ctx;

static const char *pair_key(ctx *c, const char *x, const char *y)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s|%s", x, y);
    return chaos_intern(c->h, buf, n > 0 && (size_t)n < sizeof buf ? (size_t)n : 0);
}

/* The first node-down X logged about Y at or after t (NULL: none). */
static const chaos_ev *down_after(ctx *c, const char *x, const char *y, int64_t t)
{
    evlist *l = keyed_get(&c->downs, pair_key(c, x, y), false);
    if (!l) return NULL;
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (l->e[mid]->t < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->n ? l->e[lo] : NULL;
}

/* The last node-down X logged about Y before t (NULL: none). */
static const chaos_ev *down_before(ctx *c, const char *x, const char *y, int64_t t)
{
    evlist *l = keyed_get(&c->downs, pair_key(c, x, y), false);
    const chaos_ev *best = NULL;
    for (size_t i = 0; l && i < l->n && l->e[i]->t < t; i++) best = l->e[i];
    return best;
}

/* When the incarnation (node, cr) ended: the next start of node, or the runner's kill / stop
** after it began (NEVER: it lived to the end). */
static int64_t inc_end(ctx *c, const char *node, int64_t cr)
{
    evlist *s = keyed_get(&c->starts, node, false);
    int64_t began = -1, end = NEVER;
    for (size_t i = 0; s && i < s->n; i++) {
        if (began >= 0) {
            end = s->e[i]->t;
            break;
        }
        if (s->e[i]->cr == cr) began = s->e[i]->t;
    }
    if (began < 0) return NEVER; /* unknown incarnation: assume it lives */
    evlist *k = keyed_get(&c->stops, node, false);
    for (size_t i = 0; k && i < k->n; i++)
        if (k->e[i]->t >= began && k->e[i]->t < end) {
            end = k->e[i]->t;
            break;
        }
    return end;
}

/* A runner kill or stop of node in [t0, t1] (NULL: none). */
static const chaos_ev *stopped_within(ctx *c, const char *node, int64_t t0, int64_t t1)
{
    evlist *k = keyed_get(&c->stops, node, false);
    for (size_t i = 0; k && i < k->n; i++)
        if (k->e[i]->t >= t0 && k->e[i]->t <= t1) return k->e[i];
    return NULL;
}

/* The fault whose window (start .. heal + tick bound) contains t, or NULL. */
static const fault *fault_at(ctx *c, int64_t t, int64_t after_heal)
{
    const fault *best = NULL;
    for (size_t i = 0; i < c->nf; i++) {
        int64_t heal = c->f[i].heal ? c->f[i].heal->t : c->t_end;
        if (c->f[i].start->t <= t && t <= heal + after_heal) best = &c->f[i];
    }
    return best;
}

static int64_t bound_detect(const ctx *c)
{
    return c->r->prm.ticktime_ms * 1250 + c->r->prm.slack_ms * 1000;
}

/* ---------------------------------------------------------------- pass 1: indices */

static int index_events(ctx *c)
{
    chaos_hist *h = c->h;
    for (size_t i = 0; i < h->n; i++) {
        const chaos_ev *e = &h->ev[i];
        evlist *l = NULL;
        switch (e->kind) {
        case EV_RUN_START:
            if (!c->run) c->run = e;
            break;
        case EV_RUN_END:
            if (c->t_end == NEVER) c->t_end = e->t;
            break;
        case EV_NODEDOWN:
            if (e->peer && !(l = keyed_get(&c->downs, pair_key(c, e->node, e->peer), true)))
                return -ENOMEM;
            break;
        case EV_START:
            if (!(l = keyed_get(&c->starts, e->node, true))) return -ENOMEM;
            break;
        case EV_NODE_KILL:
        case EV_NODE_STOP:
            if (e->victim && !(l = keyed_get(&c->stops, e->victim, true))) return -ENOMEM;
            break;
        case EV_SAMPLE:
            if (!(l = keyed_get(&c->samples, e->node, true))) return -ENOMEM;
            break;
        case EV_TEXIT:
            if (e->pid && !chaos_map_get(&c->texit, e->pid, NULL) &&
                chaos_map_put(&c->texit, e->pid, i) != 0)
                return -ENOMEM;
            break;
        case EV_FAULT_START: {
            fault *f = realloc(c->f, (c->nf + 1) * sizeof *f);
            if (!f) return -ENOMEM;
            c->f = f;
            c->f[c->nf++] = (fault){e, NULL};
            break;
        }
        case EV_FAULT_HEAL:
            for (size_t k = c->nf; k-- > 0;)
                if (!c->f[k].heal && c->f[k].start->round == e->round &&
                    c->f[k].start->victim == e->victim) {
                    c->f[k].heal = e;
                    break;
                }
            break;
        default:
            break;
        }
        if (l && evl_push(l, e) != 0) return -ENOMEM;
    }
    return 0;
}

/* ---------------------------------------------------------------- pass 2: links and monitors */

static rec *rec_new(ctx *c, chaos_map *m, const chaos_ev *op)
{
    if (c->nrec == c->caprec) {
        size_t n = c->caprec ? c->caprec * 2 : 1024;
        rec *x = realloc(c->rec, n * sizeof *x);
        if (!x) return NULL;
        c->rec = x;
        c->caprec = n;
    }
    rec *x = &c->rec[c->nrec];
    memset(x, 0, sizeof *x);
    x->op = op;
    if (!chaos_pid_split(c->h, op->b, &x->node_b, &x->cr_b)) x->node_b = NULL;
    if (chaos_map_put(m, op->id, c->nrec) != 0) return NULL;
    c->nrec++;
    return x;
}

static rec *rec_find(ctx *c, chaos_map *m, const char *id)
{
    size_t i;
    return id && chaos_map_get(m, id, &i) ? &c->rec[i] : NULL;
}

static const char *remote_id(ctx *c, const char *id)
{
    char buf[600];
    int n = snprintf(buf, sizeof buf, "%s/r", id);
    return n > 0 && (size_t)n < sizeof buf ? chaos_intern(c->h, buf, (size_t)n) : NULL;
}

static int build_records(ctx *c)
{
    chaos_result *r = c->r;
    chaos_hist *h = c->h;
    char msg[600];
    for (size_t i = 0; i < h->n; i++) {
        const chaos_ev *e = &h->ev[i];
        rec *x;
        switch (e->kind) {
        case EV_LINK:
        case EV_MONITOR:
            if (!e->id || !e->a || !e->b) break;
            if (!rec_new(c, e->kind == EV_LINK ? &c->links : &c->mons, e)) return -ENOMEM;
            break;
        case EV_EXIT:
        case EV_DOWN: {
            chaos_map *m = e->kind == EV_EXIT ? &c->links : &c->mons;
            x = rec_find(c, m, e->id);
            if (!x) {
                snprintf(msg, sizeof msg, "%s got %s from %s that no %s of the workload explains",
                         e->node, e->kind == EV_EXIT ? "an EXIT" : "a DOWN", e->b ? e->b : "?",
                         e->kind == EV_EXIT ? "link" : "monitor");
                VIOL(INV_WORKLOAD, e);
                break;
            }
            if (evl_push(&x->sig, e) != 0) return -ENOMEM;
            break;
        }
        case EV_UNLINK:
            if ((x = rec_find(c, &c->links, e->id)) && !x->closer) {
                x->closer = e;
                x->silent = true;
            }
            if ((x = rec_find(c, &c->links, remote_id(c, e->id ? e->id : "?"))) && !x->owner_unlink)
                x->owner_unlink = e;
            break;
        case EV_DEMONITOR:
            if ((x = rec_find(c, &c->mons, e->id)) && !x->closer) {
                if (e->active) {
                    x->closer = e;
                    x->silent = true;
                } else {
                    x->inactive = e;
                }
            }
            break;
        case EV_RETIRE:
            if ((x = rec_find(c, &c->links, e->id)) && !x->retire) x->retire = e;
            if ((x = rec_find(c, &c->mons, e->id)) && !x->retire) x->retire = e;
            break;
        case EV_TEXIT:
            if ((x = rec_find(c, &c->links, e->id)) && !x->closer) x->closer = e;
            if ((x = rec_find(c, &c->mons, e->id)) && !x->closer) x->closer = e;
            break;
        default:
            break;
        }
    }
    return 0;
nomem:
    return -ENOMEM;
}

static bool is_child_remote(ctx *c, const char *id, const char **sup)
{
    /* a child's target id is the child_start's id + "/r" */
    size_t n = strlen(id);
    if (n < 3 || strcmp(id + n - 2, "/r")) return false;
    const char *owner = chaos_intern(c->h, id, n - 2);
    for (size_t i = 0; i < c->h->n; i++)
        if (c->h->ev[i].kind == EV_CHILD_START && c->h->ev[i].id == owner) {
            if (sup) *sup = c->h->ev[i].sup;
            return true;
        }
    return false;
}

/* The checks on one record: exactly once, silence, timely, reason. */
static int check_record(ctx *c, rec *x)
{
    chaos_result *r = c->r;
    const chaos_ev *op = x->op;
    bool is_link = op->kind == EV_LINK;
    const char *what = is_link ? "EXIT" : "DOWN";
    int64_t deliver = r->prm.deliver_ms * 1000;
    char msg[1024];

    /* silence */
    int64_t quiet_from = NEVER;
    if (x->closer && x->silent) quiet_from = x->closer->t;
    for (size_t i = 0; i < x->sig.n; i++) {
        const chaos_ev *s = x->sig.e[i];
        if (s->t > quiet_from || (s->t == quiet_from && s->n > x->closer->n)) {
            r->checked[INV_SILENCE]++;
            snprintf(msg, sizeof msg, "%s: %s %s from %s after %s", op->node, op->id, what,
                     s->b ? s->b : "?", is_link ? "unlink" : "demonitor (the monitor was active)");
            VIOL(INV_SILENCE, op, x->closer, s);
        }
    }
    if (x->closer && x->silent) r->checked[INV_SILENCE]++;

    /* duplicates */
    if (x->sig.n > 1) {
        snprintf(msg, sizeof msg, "%s: %s %s delivered %zu times (from %s, reasons %s and %s)",
                 op->node, op->id, what, x->sig.n, x->sig.e[0]->b ? x->sig.e[0]->b : "?",
                 x->sig.e[0]->reason ? x->sig.e[0]->reason : "?",
                 x->sig.e[1]->reason ? x->sig.e[1]->reason : "?");
        VIOL(INV_ONCE, op, x->sig.e[0], x->sig.e[1]);
    }

    /*
    ** What should have made it fire while it was open. An unlink or a demonitor that found the
    ** monitor active closes it: a cause before that counts only when a's own node had seen
    ** the node-down well before (an exit far away may not have reached a yet: a paused or
    ** cut-off node learns late, and then rightly unlinks an active link).
    */
    int64_t open_until = NEVER, remote_until = NEVER;
    if (x->closer && x->silent) {
        open_until = x->closer->t - deliver;
        remote_until = x->closer->t - deliver;
    }
    if (x->owner_unlink && x->owner_unlink->t < open_until) open_until = x->owner_unlink->t;
    if (x->owner_unlink && x->owner_unlink->t < remote_until) remote_until = x->owner_unlink->t;
    if (x->closer && x->silent) remote_until = op->t - 1; /* no remote cause at all */
    const chaos_ev *cause = NULL;
    const chaos_ev *nd = x->node_b ? down_after(c, op->node, x->node_b, op->t) : NULL;
    if (nd && nd->t < open_until && nd->t <= c->t_end) cause = nd;
    if (x->retire && x->retire->t < open_until && x->retire->t <= c->t_end &&
        (!cause || x->retire->t < cause->t))
        cause = x->retire;
    size_t ti;
    if (op->b && chaos_map_get(&c->texit, op->b, &ti)) {
        const chaos_ev *te = &c->h->ev[ti];
        if (te->t >= op->t && te->t < remote_until && te->t <= c->t_end &&
            (!cause || te->t < cause->t))
            cause = te;
    }
    if (cause) {
        int64_t need = cause->t + deliver;
        bool a_alive =
            (!x->closer || x->closer->t > need || x->silent) && inc_end(c, op->node, op->cr) > need;
        if (x->sig.n > 0 || a_alive) r->checked[INV_ONCE]++;
        if (x->sig.n == 0 && a_alive) {
            snprintf(msg, sizeof msg, "%s: %s %s missing: %s's %s of %s%s, and no %s followed",
                     op->node, op->id, what, op->node, is_link ? "link" : "monitor", op->b,
                     cause->kind == EV_NODEDOWN ? " went with its node (node-down)"
                     : cause->kind == EV_RETIRE ? " was told to exit"
                                                : " exited",
                     what);
            VIOL(INV_ONCE, op, cause, x->closer);
        }
    } else if (x->sig.n > 0) {
        r->checked[INV_ONCE]++;
    }

    /* each signal: timely, and with the right reason */
    for (size_t i = 0; i < x->sig.n && i < 1; i++) {
        const chaos_ev *s = x->sig.e[i];
        if (s->t > c->t_end) continue; /* the cluster's own shutdown */
        const char *why = s->reason ? s->reason : "?";
        r->checked[INV_REASON]++;
        if (!strcmp(why, "noconnection")) {
            /* a's own node is being stopped: it drops its connections, and its node monitor
            ** may already be gone, so there is no node-down to time the signal against */
            if (s->t >= inc_end(c, op->node, op->cr)) continue;
            r->checked[INV_TIMELY]++;
            const chaos_ev *after =
                x->node_b ? down_after(c, op->node, x->node_b, s->t - deliver) : NULL;
            if (after && after->t <= s->t + deliver) continue;
            const chaos_ev *before = x->node_b ? down_before(c, op->node, x->node_b, s->t) : NULL;
            if (before)
                snprintf(msg, sizeof msg,
                         "%s: %s %s noconnection %.3f s after %s saw %s go down (bound %.3f s)",
                         op->node, op->id, what, secs(s->t - before->t), op->node, x->node_b,
                         secs(deliver));
            else
                snprintf(msg, sizeof msg, "%s: %s %s noconnection without a node-down of %s",
                         op->node, op->id, what, x->node_b ? x->node_b : "?");
            VIOL(INV_TIMELY, op, before, s);
            continue;
        }
        if (x->retire && !strcmp(why, x->retire->reason ? x->retire->reason : "")) continue;
        if (op->b && chaos_map_get(&c->texit, op->b, &ti) && c->h->ev[ti].reason &&
            !strcmp(why, c->h->ev[ti].reason))
            continue;
        bool stop_word = !strcmp(why, "killed") || !strcmp(why, "shutdown") ||
                         !strcmp(why, "noproc") || !strcmp(why, "normal");
        if (stop_word && x->node_b &&
            (stopped_within(c, x->node_b, op->t - 1000000, s->t + 1000000) ||
             inc_end(c, x->node_b, x->cr_b) <= s->t + deliver))
            continue;
        if (!strcmp(why, "shutdown") && is_child_remote(c, op->id, NULL)) continue;
        snprintf(msg, sizeof msg, "%s: %s %s with reason %s: neither noconnection nor %s's own",
                 op->node, op->id, what, why, op->b);
        VIOL(INV_REASON, op, s);
    }
    return 0;
nomem:
    return -ENOMEM;
}

/* ---------------------------------------------------------------- stale pids */

static int check_stale(ctx *c)
{
    chaos_result *r = c->r;
    char msg[1024];
    for (size_t i = 0; i < c->h->n; i++) {
        const chaos_ev *e = &c->h->ev[i];
        if (e->kind != EV_STALE) continue;
        r->checked[INV_STALE]++;
        const char *lr = e->link_r ? e->link_r : "?", *mr = e->mon_r ? e->mon_r : "?";
        if (strcmp(lr, "noproc") || strcmp(mr, "noproc")) {
            snprintf(msg, sizeof msg,
                     "%s: link to %s (an earlier incarnation's pid) gave %s, monitor gave %s; "
                     "both must be noproc",
                     e->node, e->pid ? e->pid : "?", lr, mr);
            VIOL(INV_STALE, e);
        }
    }
    return 0;
nomem:
    return -ENOMEM;
}

/* ---------------------------------------------------------------- node-down detection */

/* X's last sample before t (NULL: none). */
static const chaos_ev *sample_before(ctx *c, const char *x, int64_t t)
{
    evlist *l = keyed_get(&c->samples, x, false);
    const chaos_ev *best = NULL;
    for (size_t i = 0; l && i < l->n && l->e[i]->t < t; i++) best = l->e[i];
    return best;
}

static bool lists(const chaos_ev *s, const char *node)
{
    for (size_t i = 0; s && i < s->nnodes; i++)
        if (s->nodes[i] == node) return true;
    return false;
}

static int check_detect(ctx *c)
{
    chaos_result *r = c->r;
    char msg[1024];
    if (!c->run) return 0;
    int64_t b = bound_detect(c), slack = r->prm.slack_ms * 1000;
    for (size_t i = 0; i < c->nf; i++) {
        const chaos_ev *f = c->f[i].start, *heal = c->f[i].heal;
        if (!f->sever || !f->victim || f->t > c->t_end) continue;
        const char *v = f->victim;
        bool victim_lives = f->fault && strcmp(f->fault, "kill") && strcmp(f->fault, "restart");
        bool pause = f->fault && !strcmp(f->fault, "pause");
        for (size_t k = 0; k < c->run->nnodes; k++) {
            const char *x = c->run->nodes[k];
            if (x == v) continue;
            /* the others see the victim go */
            const chaos_ev *sx = sample_before(c, x, f->t);
            if (lists(sx, v) && inc_end(c, x, sx->cr) > f->t + b) {
                r->checked[INV_DETECT]++;
                const chaos_ev *nd = down_after(c, x, v, f->t);
                if (!nd || nd->t > f->t + b) {
                    snprintf(msg, sizeof msg,
                             "round %lld: %s (%s) was not seen down by %s within %.1f s%s",
                             (long long)f->round, v, f->fault, x, secs(b),
                             nd ? " (it was, later)" : "");
                    VIOL(INV_DETECT, f, sx, nd);
                }
            }
            /* and a victim that lives through the fault sees them go */
            if (!victim_lives) continue;
            const chaos_ev *sv = sample_before(c, v, f->t);
            if (!lists(sv, x) || inc_end(c, v, sv->cr) <= f->t + b) continue;
            int64_t from = pause && heal ? heal->t : f->t;
            int64_t until = pause && heal ? heal->t + slack + r->prm.ticktime_ms * 250 : f->t + b;
            r->checked[INV_DETECT]++;
            const chaos_ev *nd = down_after(c, v, x, f->t);
            if (!nd || nd->t > until) {
                snprintf(msg, sizeof msg,
                         "round %lld: %s (%s) did not see %s go down within %.1f s of %s%s",
                         (long long)f->round, v, f->fault, x, secs(until - from),
                         pause ? "its resume" : "the fault", nd ? " (it did, later)" : "");
                VIOL(INV_DETECT, f, heal, sv, nd);
            }
        }
    }
    return 0;
nomem:
    return -ENOMEM;
}

/* ---------------------------------------------------------------- message streams */

typedef struct stream {
    evlist send, recv;
} stream;

static int check_streams(ctx *c)
{
    chaos_result *r = c->r;
    chaos_hist *h = c->h;
    char msg[1024];
    keyed sends = {0}, recvs = {0};
    int rc = 0;
    for (size_t i = 0; i < h->n; i++) {
        const chaos_ev *e = &h->ev[i];
        if ((e->kind != EV_SEND && e->kind != EV_RECV) || !e->s || e->seq < 1) continue;
        evlist *l = keyed_get(e->kind == EV_SEND ? &sends : &recvs, e->s, true);
        if (!l || evl_push(l, e) != 0) {
            rc = -ENOMEM;
            goto out;
        }
    }
    int64_t deliver = r->prm.deliver_ms * 1000;
    for (size_t si = 0; si < sends.n; si++) {
        evlist *sl = &sends.l[si];
        const char *sender = sl->e[0]->s;
        evlist *rl = keyed_get(&recvs, sender, false);
        int64_t maxseq = 0;
        for (size_t i = 0; i < sl->n; i++)
            if (sl->e[i]->seq > maxseq) maxseq = sl->e[i]->seq;
        for (size_t i = 0; rl && i < rl->n; i++)
            if (rl->e[i]->seq > maxseq) maxseq = rl->e[i]->seq;
        const chaos_ev **first = calloc((size_t)maxseq + 1, sizeof *first);
        if (!first) {
            rc = -ENOMEM;
            goto out;
        }
        /* order and duplicates, in the receiver's order */
        const chaos_ev *top = NULL;
        for (size_t i = 0; rl && i < rl->n; i++) {
            const chaos_ev *e = rl->e[i];
            r->checked[INV_ORDER]++;
            if (first[e->seq]) {
                snprintf(msg, sizeof msg, "%s got message %lld of %s twice", e->node,
                         (long long)e->seq, sender);
                if (add_violation(r, INV_ORDER, (const chaos_ev *[]){first[e->seq], e}, 2, "%s",
                                  msg)) {
                    free(first);
                    rc = -ENOMEM;
                    goto out;
                }
                continue;
            }
            first[e->seq] = e;
            if (top && e->seq < top->seq) {
                snprintf(msg, sizeof msg, "%s got message %lld of %s after message %lld", e->node,
                         (long long)e->seq, sender, (long long)top->seq);
                if (add_violation(r, INV_ORDER, (const chaos_ev *[]){top, e}, 2, "%s", msg)) {
                    free(first);
                    rc = -ENOMEM;
                    goto out;
                }
            }
            if (!top || e->seq > top->seq) top = e;
        }
        /* losses: only across a disconnect of the two nodes */
        for (size_t i = 0; i < sl->n; i++) {
            const chaos_ev *s = sl->e[i];
            if (s->t > c->t_end - deliver || !s->to) continue;
            r->checked[INV_LOSS]++;
            if (first[s->seq]) continue;
            const chaos_ev *next = NULL;
            for (size_t k = 0; rl && k < rl->n; k++)
                if (rl->e[k]->seq > s->seq && rl->e[k]->t >= s->t) {
                    next = rl->e[k];
                    break;
                }
            int64_t t0 = s->t - deliver, t1 = (next ? next->t : c->t_end) + deliver;
            const chaos_ev *d1 = down_after(c, s->node, s->to, t0);
            const chaos_ev *d2 = down_after(c, s->to, s->node, t0);
            if ((d1 && d1->t <= t1) || (d2 && d2->t <= t1) || stopped_within(c, s->to, t0, t1) ||
                stopped_within(c, s->node, t0, t1))
                continue;
            snprintf(msg, sizeof msg,
                     "message %lld from %s to %s was lost, and the two nodes never "
                     "disconnected%s",
                     (long long)s->seq, sender, s->to, next ? " (a later one arrived)" : "");
            if (add_violation(r, INV_LOSS, (const chaos_ev *[]){s, next}, next ? 2 : 1, "%s",
                              msg)) {
                free(first);
                rc = -ENOMEM;
                goto out;
            }
        }
        free(first);
    }
out:
    keyed_free(&sends);
    keyed_free(&recvs);
    return rc;
}

/* ---------------------------------------------------------------- supervisors */

static int check_supervisors(ctx *c)
{
    chaos_result *r = c->r;
    chaos_hist *h = c->h;
    char msg[1024];
    int64_t restore = 3 * r->prm.slack_ms * 1000 + r->prm.ticktime_ms * 1000;
    for (size_t i = 0; i < h->n; i++) {
        const chaos_ev *cs = &h->ev[i];
        if (cs->kind != EV_CHILD_START || !cs->sup || !cs->child || !cs->pid) continue;
        const chaos_ev *next = NULL, *sx = NULL;
        for (size_t k = i + 1; k < h->n; k++) {
            const chaos_ev *e = &h->ev[k];
            if (e->sup != cs->sup) continue;
            if (e->kind == EV_CHILD_START && e->child == cs->child) {
                next = e;
                break;
            }
            if (e->kind == EV_SUP_EXIT && !sx) sx = e;
        }
        const char *ynode;
        int64_t ycr;
        if (!chaos_pid_split(h, cs->pid, &ynode, &ycr)) continue;
        /* when the child was lost: its node down (seen by the supervisor's node), its own exit,
        ** its node's incarnation over */
        int64_t tb = NEVER;
        const chaos_ev *why = NULL;
        const chaos_ev *nd = down_after(c, cs->node, ynode, cs->t);
        if (nd) {
            tb = nd->t;
            why = nd;
        }
        size_t ti;
        if (chaos_map_get(&c->texit, cs->pid, &ti) && h->ev[ti].t < tb) {
            tb = h->ev[ti].t;
            why = &h->ev[ti];
        }
        int64_t ye = inc_end(c, ynode, ycr);
        if (ye < tb) tb = ye;
        if (next && next->t < tb) continue; /* replaced before it was lost: a restart */
        if (tb == NEVER || tb > c->t_end) continue;
        /* the supervisor restarts at once on another node, unless its own node was the one
        ** cut off: then once that is healed */
        const fault *f = fault_at(c, tb, bound_detect(c));
        int64_t base =
            f && f->heal && f->heal->t > tb && f->start->victim == cs->node ? f->heal->t : tb;
        int64_t deadline = base + restore;
        if (deadline > c->t_end && (!next || next->t > c->t_end)) continue;
        if (sx && sx->t <= deadline) continue; /* judged below */
        if (inc_end(c, cs->node, cs->cr) <= deadline) continue;
        r->checked[INV_SUP]++;
        if (!next || next->t > deadline) {
            snprintf(msg, sizeof msg,
                     "%s: child %s of %s (%s on %s) was lost and not restarted within %.0f s",
                     cs->node, cs->child, cs->sup, cs->pid, ynode, secs(deadline - tb));
            VIOL(INV_SUP, cs, why, next);
        }
    }
    /* a supervisor that gave up must have gone past its intensity */
    for (size_t i = 0; i < h->n; i++) {
        const chaos_ev *sx = &h->ev[i];
        if (sx->kind != EV_SUP_EXIT || !sx->sup || sx->t > c->t_end) continue;
        if (stopped_within(c, sx->node, sx->t - 15000000, sx->t + 1000000)) continue;
        const chaos_ev *ss = NULL;
        int64_t starts = 0, in_window = 0;
        for (size_t k = 0; k < h->n; k++) {
            const chaos_ev *e = &h->ev[k];
            if (e->sup != sx->sup) continue;
            if (e->kind == EV_SUP_START) ss = e;
            if (e->kind != EV_CHILD_START && e->kind != EV_CHILD_FAIL) continue;
            if (++starts <= 3) continue; /* the first start of each child is no restart */
            if (ss && e->t >= sx->t - ss->period_ms * 1000 && e->t <= sx->t) in_window++;
        }
        r->checked[INV_SUP]++;
        /* a child that failed to start while the supervisor started (its first start, as in
        ** OTP: {shutdown, {failed_to_start_child, Id, Why}}) ends it at once: not a give-up */
        static const char init_failure[] = "{shutdown,{failed_to_start_child,";
        if (sx->reason && !strncmp(sx->reason, init_failure, sizeof init_failure - 1) &&
            starts <= 3)
            continue;
        if (ss && in_window <= ss->intensity) {
            snprintf(msg, sizeof msg,
                     "%s: supervisor %s gave up (%s) after %lld restarts in %lld ms; its intensity "
                     "allows %lld",
                     sx->node, sx->sup, sx->reason ? sx->reason : "?", (long long)in_window,
                     (long long)ss->period_ms, (long long)ss->intensity);
            VIOL(INV_SUP, ss, sx);
        }
    }
    return 0;
nomem:
    return -ENOMEM;
}

/* ---------------------------------------------------------------- mesh and resources */

static int check_mesh(ctx *c)
{
    chaos_result *r = c->r;
    chaos_hist *h = c->h;
    char msg[1024];
    if (!c->run || c->run->nnodes < 2) return 0;
    size_t nn = c->run->nnodes;
    const chaos_ev **last = calloc(nn, sizeof *last);
    const chaos_ev **base = calloc(nn, sizeof *base);
    if (!last || !base) {
        free(last);
        free(base);
        return -ENOMEM;
    }
    int64_t settle = r->prm.settle_ms * 1000;
    /* baselines: each node's first sample after the first settled */
    int64_t t_settled = NEVER;
    for (size_t i = 0; i < h->n; i++)
        if (h->ev[i].kind == EV_SETTLED) {
            t_settled = h->ev[i].t;
            break;
        }
    for (size_t i = 0; i < h->n && t_settled != NEVER; i++) {
        const chaos_ev *e = &h->ev[i];
        if (e->kind != EV_SAMPLE || e->t < t_settled) continue;
        for (size_t k = 0; k < nn; k++)
            if (c->run->nodes[k] == e->node && !base[k]) base[k] = e;
    }
    for (size_t fi = 0; fi < c->nf; fi++) {
        const chaos_ev *heal = c->f[fi].heal;
        if (!heal || heal->t > c->t_end) continue;
        /* is there a moment, within the bound, when every node's latest sample (taken after
        ** the heal) lists every other node? */
        memset(last, 0, nn * sizeof *last);
        int64_t whole = NEVER;
        for (size_t i = 0; i < h->n && whole == NEVER; i++) {
            const chaos_ev *e = &h->ev[i];
            if (e->t < heal->t) continue;
            if (e->t > heal->t + settle) break;
            if (e->kind != EV_SAMPLE) continue;
            for (size_t k = 0; k < nn; k++)
                if (c->run->nodes[k] == e->node) last[k] = e;
            bool ok = true;
            for (size_t k = 0; k < nn && ok; k++) {
                if (!last[k]) {
                    ok = false;
                    break;
                }
                for (size_t j = 0; j < nn; j++)
                    if (j != k && !lists(last[k], c->run->nodes[j])) ok = false;
            }
            if (ok) whole = e->t;
        }
        r->checked[INV_MESH]++;
        if (whole == NEVER) {
            size_t bad = 0;
            for (size_t k = 0; k < nn; k++) {
                bool ok = last[k] != NULL;
                for (size_t j = 0; j < nn && ok; j++)
                    if (j != k && !lists(last[k], c->run->nodes[j])) ok = false;
                if (!ok) bad = k;
            }
            snprintf(msg, sizeof msg,
                     "round %lld: the mesh was not whole within %.0f s of healing (%s: %s)",
                     (long long)heal->round, secs(settle), c->run->nodes[bad],
                     last[bad] ? "not connected to every node" : "no sample");
            VIOL(INV_MESH, heal, last[bad]);
        }
    }
    /* resources at each round's end against the baseline */
    for (size_t i = 0; i < h->n; i++) {
        const chaos_ev *re = &h->ev[i];
        if (re->kind != EV_ROUND_END) continue;
        for (size_t k = 0; k < nn; k++) {
            if (!base[k]) continue;
            const chaos_ev *s = sample_before(c, c->run->nodes[k], re->t);
            if (!s || s->t < re->t - 5000000 || s->fds < 0) continue;
            r->checked[INV_RESOURCE]++;
            const chaos_ev *b = base[k];
            const char *what = NULL;
            long long have = 0, bound = 0;
            if (s->fds > b->fds + 16) {
                what = "descriptors";
                have = s->fds;
                bound = b->fds + 16;
            } else if (s->procs > b->procs * 3 / 2 + 40) {
                what = "processes";
                have = s->procs;
                bound = b->procs * 3 / 2 + 40;
            } else if (s->rss > b->rss * 2 + (64ll << 20)) {
                what = "resident bytes";
                have = s->rss;
                bound = b->rss * 2 + (64ll << 20);
            }
            if (what) {
                snprintf(msg, sizeof msg,
                         "round %lld: %s has %lld %s at the round's end (bound %lld from its "
                         "first settled sample)",
                         (long long)re->round, s->node, have, what, bound);
                VIOL(INV_RESOURCE, b, s);
            }
        }
    }
    free(last);
    free(base);
    return 0;
nomem:
    free(last);
    free(base);
    return -ENOMEM;
}

static int check_workload(ctx *c)
{
    chaos_result *r = c->r;
    char msg[1024];
    r->checked[INV_WORKLOAD] += (int64_t)c->h->n;
    if (c->h->malformed) {
        snprintf(msg, sizeof msg, "%zu history lines are not events (the first: line %zu)",
                 c->h->malformed, c->h->first_malformed);
        if (add_violation(r, INV_WORKLOAD, NULL, 0, "%s", msg)) return -ENOMEM;
    }
    for (size_t i = 0; i < c->h->n; i++) {
        const chaos_ev *e = &c->h->ev[i];
        if (e->kind != EV_CRASH) continue;
        snprintf(msg, sizeof msg, "%s: the workload's %s%s%s crashed: %s", e->node,
                 e->what ? e->what : "?", e->peer ? " for " : "", e->peer ? e->peer : "",
                 e->reason ? e->reason : "?");
        VIOL(INV_WORKLOAD, e);
    }
    /* node-downs no fault explains are noted (a loaded machine can miss ticks) */
    for (size_t i = 0; i < c->h->n; i++) {
        const chaos_ev *e = &c->h->ev[i];
        if (e->kind == EV_NODEDOWN && e->t <= c->t_end && !fault_at(c, e->t, bound_detect(c)))
            r->unexplained_downs++;
    }
    return 0;
nomem:
    return -ENOMEM;
}

/* ---------------------------------------------------------------- entry */

int chaos_check(chaos_hist *h, chaos_result *r)
{
    memset(r, 0, sizeof *r);
    ctx c = {0};
    c.h = h;
    c.r = r;
    c.t_end = NEVER;
    int rc = index_events(&c);
    if (rc) goto out;
    r->prm.ticktime_ms = c.run && c.run->ticktime > 0 ? c.run->ticktime : 60000;
    r->prm.slack_ms = c.run && c.run->slack_ms > 0 ? c.run->slack_ms : 2000;
    r->prm.deliver_ms = r->prm.slack_ms;
    r->prm.settle_ms = c.run && c.run->settle_ms > 0 ? c.run->settle_ms : 30000;
    if (c.run) {
        r->seed = c.run->seed;
        r->rounds_planned = c.run->rounds;
        r->backend = c.run->backend;
    }
    if (h->n) {
        r->t0 = h->ev[0].t;
        r->t1 = h->ev[h->n - 1].t;
    }
    if (c.t_end == NEVER) c.t_end = r->t1;
    for (size_t i = 0; i < h->n; i++)
        if (h->ev[i].kind == EV_ROUND_END) r->rounds_done++;
    if ((rc = build_records(&c))) goto out;
    for (size_t i = 0; i < c.nrec; i++)
        if ((rc = check_record(&c, &c.rec[i]))) goto out;
    if ((rc = check_stale(&c)) || (rc = check_detect(&c)) || (rc = check_streams(&c)) ||
        (rc = check_supervisors(&c)) || (rc = check_mesh(&c)) || (rc = check_workload(&c)))
        goto out;
out:
    for (size_t i = 0; i < c.nrec; i++) free(c.rec[i].sig.e);
    free(c.rec);
    free(c.f);
    chaos_map_free(&c.links);
    chaos_map_free(&c.mons);
    chaos_map_free(&c.texit);
    keyed_free(&c.downs);
    keyed_free(&c.starts);
    keyed_free(&c.stops);
    keyed_free(&c.samples);
    return rc;
}

void chaos_result_free(chaos_result *r)
{
    for (size_t i = 0; i < r->nv; i++) {
        free(r->v[i].msg);
        free(r->v[i].w);
    }
    free(r->v);
    memset(r, 0, sizeof *r);
}
