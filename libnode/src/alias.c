/* Process aliases (erlang:alias/1, unalias/1): references that route messages to a process while
 * active. */
#include "nd_int.h"

/*
** One table of active aliases, keyed by the reference, under one mutex. An entry holds the
** owner's pid; a process also keeps the list of the aliases it created (owner-only), so that
** they all go when it exits. A "reply" alias is removed by the first message through it (by
** the sender), which leaves a stale reference in the owner's list: the list is pruned when it
** grows, and removing a stale reference from the table is a no-op (references are never
** reused).
*/
typedef struct alias_ent {
    struct alias_ent *next;
    term_t ref, pid; /* owned */
    uint64_t h;
    unsigned flags;
} alias_ent;

#define NB 1024
static pthread_mutex_t a_mu = PTHREAD_MUTEX_INITIALIZER;
static alias_ent *a_tab[NB];

/* Unlinks and returns the entry for ref (NULL if none); under a_mu. */
static alias_ent *take(term_t ref, uint64_t h)
{
    for (alias_ent **pp = &a_tab[h % NB]; *pp; pp = &(*pp)->next)
        if ((*pp)->h == h && term_equal((*pp)->ref, ref)) {
            alias_ent *e = *pp;
            *pp = e->next;
            return e;
        }
    return NULL;
}

static alias_ent *find(term_t ref, uint64_t h)
{
    for (alias_ent *e = a_tab[h % NB]; e; e = e->next)
        if (e->h == h && term_equal(e->ref, ref)) return e;
    return NULL;
}

static void ent_free(alias_ent *e)
{
    term_free(e->ref);
    term_free(e->pid);
    free(e);
}

/* Drops from p's list the references that are no longer in the table. */
static void prune(nd_proc *p)
{
    term_t keep = TERM_NIL;
    size_t n = 0;
    pthread_mutex_lock(&a_mu);
    for (term_t l = p->aliases; term_is_cons(l); l = term_tl(l))
        if (find(term_hd(l), term_hash(term_hd(l)))) {
            keep = term_cons(term_dup(term_hd(l)), keep);
            n++;
        }
    pthread_mutex_unlock(&a_mu);
    term_free(p->aliases);
    p->aliases = keep;
    p->naliases = n;
}

term_t nd_alias(unsigned flags)
{
    nd_proc *p = nd__self();
    if (!p) return TERM_NONE;
    if (p->naliases >= p->alias_prune_at) {
        prune(p);
        p->alias_prune_at = p->naliases * 2 > 64 ? p->naliases * 2 : 64;
    }
    alias_ent *e = malloc(sizeof *e);
    if (!e) return TERM_NONE;
    e->ref = nd_make_ref();
    e->pid = term_dup(p->pid);
    e->h = term_hash(e->ref);
    e->flags = flags;
    pthread_mutex_lock(&a_mu);
    e->next = a_tab[e->h % NB];
    a_tab[e->h % NB] = e;
    pthread_mutex_unlock(&a_mu);
    p->aliases = term_cons(term_dup(e->ref), p->aliases);
    p->naliases++;
    return term_dup(e->ref);
}

bool nd_unalias(term_t alias)
{
    nd_proc *p = nd__self();
    if (!p || !term_is_ref(alias)) return false;
    uint64_t h = term_hash(alias);
    pthread_mutex_lock(&a_mu);
    alias_ent *e = find(alias, h);
    if (e && term_equal(e->pid, p->pid))
        e = take(alias, h);
    else
        e = NULL;
    pthread_mutex_unlock(&a_mu);
    if (!e) return false;
    ent_free(e);
    return true;
}

/*
** Delivers msg (consumed) to the owner of the local alias `alias`, if it is active: the message
** is dropped otherwise (Erlang's rule). A reply alias is deactivated by this message.
*/
void nd__alias_send(term_t alias, term_t msg)
{
    uint64_t h = term_hash(alias);
    term_t pid = TERM_NONE;
    pthread_mutex_lock(&a_mu);
    alias_ent *e = find(alias, h);
    if (e && (e->flags & ND_ALIAS_REPLY)) {
        e = take(alias, h);
        pid = e->pid;
        e->pid = TERM_NONE;
        ent_free(e);
    } else if (e) {
        pid = term_dup(e->pid);
    }
    pthread_mutex_unlock(&a_mu);
    nd_proc *q = pid != TERM_NONE ? nd__proc_get(pid) : NULL;
    term_free(pid);
    if (!q) {
        term_free(msg);
        return;
    }
    nd_sig *s = nd__msg_new(msg);
    if (!s) {
        nd__proc_put(q);
        return;
    }
    if (!nd__push(q, s)) nd__sig_free(s);
    nd__proc_put(q);
}

/* The owner (a reference) of the active local alias `alias`, or TERM_NONE. */
term_t nd__alias_owner(term_t alias)
{
    uint64_t h = term_hash(alias);
    pthread_mutex_lock(&a_mu);
    alias_ent *e = find(alias, h);
    term_t pid = e ? term_dup(e->pid) : TERM_NONE;
    pthread_mutex_unlock(&a_mu);
    return pid;
}

/* The exiting process p's aliases all become inactive. */
void nd__alias_exit(nd_proc *p)
{
    if (p->aliases == TERM_NIL || p->aliases == TERM_NONE) return;
    pthread_mutex_lock(&a_mu);
    for (term_t l = p->aliases; term_is_cons(l); l = term_tl(l)) {
        alias_ent *e = take(term_hd(l), term_hash(term_hd(l)));
        if (e) ent_free(e);
    }
    pthread_mutex_unlock(&a_mu);
    term_free(p->aliases);
    p->aliases = TERM_NIL;
    p->naliases = 0;
}
