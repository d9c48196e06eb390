/* The name registry: atom -> process, one hash table under a mutex. */
#include "nd_int.h"

typedef struct reg_ent {
    term_t name; /* TERM_NONE: empty; TOMB: deleted */
    nd_proc *proc;
    uint32_t serial;
} reg_ent;

#define TOMB ((term_t)0xE) /* never a valid term */

static pthread_mutex_t r_mu = PTHREAD_MUTEX_INITIALIZER;
static reg_ent *r_tab;
static size_t r_cap, r_used, r_count;

static size_t slot_of(term_t name)
{
    return (size_t)(term_atom_index(name) * 0x9e3779b97f4a7c15ULL >> 7) & (r_cap - 1);
}

/* An entry whose process has exited (or whose slot was reused) is a leftover: a process that
** exits while it is being registered may miss the removal. Such entries count as absent. */
static bool entry_live(const reg_ent *e)
{
    nd_proc *p = e->proc;
    return ND__REFS(atomic_load(&p->rc)) != 0 && atomic_load(&p->serial) == e->serial &&
           atomic_load(&p->state) != PS_EXITING;
}

static reg_ent *find(term_t name)
{
    if (!r_cap || name == TERM_NONE) return NULL;
    for (size_t i = slot_of(name);; i = (i + 1) & (r_cap - 1)) {
        if (r_tab[i].name == TERM_NONE) return NULL;
        if (r_tab[i].name == name) return &r_tab[i];
    }
}

static int grow(void)
{
    size_t ncap = r_cap ? r_cap * 2 : 64;
    reg_ent *n = calloc(ncap, sizeof *n);
    if (!n) return ND_ENOMEM;
    reg_ent *old = r_tab;
    size_t ocap = r_cap;
    r_tab = n;
    r_cap = ncap;
    r_used = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].name != TERM_NONE && old[i].name != TOMB) {
            size_t j = slot_of(old[i].name);
            while (r_tab[j].name != TERM_NONE) j = (j + 1) & (r_cap - 1);
            r_tab[j] = old[i];
            r_used++;
        }
    free(old);
    return 0;
}

void nd__registry_init(void) {}

void nd__registry_destroy(void)
{
    pthread_mutex_lock(&r_mu);
    free(r_tab);
    r_tab = NULL;
    r_cap = r_used = r_count = 0;
    pthread_mutex_unlock(&r_mu);
}

int nd_register(term_t name, term_t pid)
{
    if (!term_is_atom(name)) return ND_EINVAL;
    name = term_atom_interned(name, true); /* names in the table are interned (compared with ==) */
    if (name == TERM_NONE) return ND_ENOMEM; /* the atom table is full */
    if (name == nd__a_undefined) return ND_EINVAL;
    nd_proc *q = nd__proc_get(pid);
    if (!q) return term_is_pid(pid) ? ND_ENOPROC : ND_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&r_mu);
    reg_ent *old = find(name);
    if (old && !entry_live(old)) {
        old->name = TOMB;
        r_count--;
        old = NULL;
    }
    if (atomic_load(&q->state) == PS_EXITING)
        rc = ND_ENOPROC;
    else if (old || atomic_load(&q->name) != TERM_NONE)
        rc = ND_EEXIST;
    else if ((r_used + 1) * 2 > r_cap && (rc = grow()) != 0)
        ;
    else {
        size_t i = slot_of(name);
        while (r_tab[i].name != TERM_NONE && r_tab[i].name != TOMB) i = (i + 1) & (r_cap - 1);
        if (r_tab[i].name == TERM_NONE) r_used++;
        r_tab[i].name = name;
        r_tab[i].proc = q;
        r_tab[i].serial = atomic_load(&q->serial);
        r_count++;
        atomic_store(&q->name, name);
    }
    pthread_mutex_unlock(&r_mu);
    nd__proc_put(q);
    return rc;
}

int nd_unregister(term_t name)
{
    if (!term_is_atom(name)) return ND_EINVAL;
    name = term_atom_interned(name, false);
    pthread_mutex_lock(&r_mu);
    reg_ent *e = find(name);
    bool live = e && entry_live(e);
    if (e) {
        if (live) atomic_store(&e->proc->name, TERM_NONE);
        e->name = TOMB;
        r_count--;
    }
    pthread_mutex_unlock(&r_mu);
    return live ? 0 : ND_ENOTREG;
}

void nd__unregister_proc(nd_proc *p)
{
    pthread_mutex_lock(&r_mu);
    term_t name = atomic_load(&p->name);
    reg_ent *e = name != TERM_NONE ? find(name) : NULL;
    if (e && e->proc == p) {
        e->name = TOMB;
        r_count--;
    }
    atomic_store(&p->name, TERM_NONE);
    pthread_mutex_unlock(&r_mu);
}

nd_proc *nd__whereis_proc(term_t name)
{
    if (!term_is_atom(name)) return NULL;
    name = term_atom_interned(name, false);
    nd_proc *q = NULL;
    pthread_mutex_lock(&r_mu);
    reg_ent *e = find(name);
    if (e) {
        nd_proc *p = e->proc;
        uint64_t r = atomic_load(&p->rc);
        while (ND__REFS(r) && !atomic_compare_exchange_weak(&p->rc, &r, r + 1))
            ;
        if (ND__REFS(r)) {
            if (atomic_load(&p->serial) == e->serial)
                q = p;
            else
                nd__proc_put(p);
        }
    }
    pthread_mutex_unlock(&r_mu);
    return q;
}

term_t nd_whereis(term_t name)
{
    nd_proc *q = nd__whereis_proc(name);
    if (!q) return TERM_NONE;
    term_t pid = term_dup(q->pid);
    nd__proc_put(q);
    return pid;
}

term_t nd_registered(void)
{
    term_t l = TERM_NIL;
    pthread_mutex_lock(&r_mu);
    for (size_t i = 0; i < r_cap; i++)
        if (r_tab[i].name != TERM_NONE && r_tab[i].name != TOMB && entry_live(&r_tab[i]))
            l = term_cons(r_tab[i].name, l);
    pthread_mutex_unlock(&r_mu);
    return l;
}
