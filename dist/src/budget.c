/* Atoms from peers: each peer node's budget of new atoms (by name, across its connections),
 * the node-wide quota that keeps room in the atom table for local code and node names, and the
 * log lines that say when either is reached. */
#include "core.h"

#include <stdlib.h>

/* The budget of node (an interned atom: names are interned only once authenticated, so the
** table grows with authenticated names only); made at its first connection, kept until
** dist_stop so that reconnecting does not refill it. NULL when out of memory. */
dist_atom_budget *dist__atom_budget(term_t node)
{
    dist_state *st = dist__st;
    size_t h = dist__bucket(node);
    pthread_mutex_lock(&st->budget_mu);
    dist_atom_budget *b = st->budgets[h];
    while (b && b->node != node) b = b->next;
    if (!b && (b = calloc(1, sizeof *b))) {
        b->node = node;
        b->next = st->budgets[h];
        st->budgets[h] = b;
    }
    pthread_mutex_unlock(&st->budget_mu);
    return b;
}

int dist__atom_budgets_init(dist_state *st, const dist_config *cfg)
{
    st->budgets = calloc(TAB_BUCKETS, sizeof *st->budgets);
    if (!st->budgets) return DIST_ENOMEM;
    pthread_mutex_init(&st->budget_mu, NULL);
    /* the quota: set here unless the embedding program set one */
    if (term_atom_external_quota() == SIZE_MAX) {
        size_t limit = term_atom_limit();
        size_t reserve = cfg->atom_reserve ? cfg->atom_reserve : limit / 8;
        if (reserve >= limit) return DIST_EINVAL;
        term_atom_set_external_quota(limit - reserve);
        st->quota_ours = true;
    }
    return 0;
}

void dist__atom_budgets_free(dist_state *st)
{
    if (!st->budgets) return;
    for (size_t i = 0; i < TAB_BUCKETS; i++)
        while (st->budgets[i]) {
            dist_atom_budget *b = st->budgets[i];
            st->budgets[i] = b->next;
            free(b);
        }
    free(st->budgets);
    st->budgets = NULL;
    pthread_mutex_destroy(&st->budget_mu);
    if (st->quota_ours) term_atom_set_external_quota(SIZE_MAX);
}

void dist__atoms_report(dconn *c)
{
    dist_atom_budget *b = c->rx ? c->rx->budget : NULL;
    if (!b) return;
    if (atomic_load_explicit(&b->over_budget, memory_order_relaxed) &&
        !atomic_exchange(&b->logged_budget, true))
        dist__log(c->rx->atoms_disconnect ? DIST_LOG_ERROR : DIST_LOG_WARNING,
                  "event=atom_budget_exhausted node=%s interned=%zu budget=%zu action=%s",
                  dist__aname(c->node), atomic_load(&b->interned), c->rx->max_new_atoms,
                  c->rx->atoms_disconnect ? "disconnect" : "foreign_atoms");
    if (atomic_load_explicit(&b->over_quota, memory_order_relaxed) &&
        !atomic_exchange(&b->logged_quota, true))
        dist__log(DIST_LOG_WARNING,
                  "event=atom_quota_exhausted node=%s quota=%zu interned_by_peers=%zu "
                  "atoms=%zu limit=%zu action=%s",
                  dist__aname(c->node), term_atom_external_quota(), term_atom_external_count(),
                  term_atom_count(), term_atom_limit(),
                  c->rx->atoms_disconnect ? "disconnect" : "foreign_atoms");
}
