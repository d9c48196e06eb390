/* Processes: the pid table, spawn and exit, signals (links, monitors, exit rules) and sending. */
#include "nd_int.h"
#include "girder_deadline.h"

/* ================================================================ small helpers */

void nd__spin_lock(atomic_flag *f)
{
    while (atomic_flag_test_and_set_explicit(f, memory_order_acquire)) {
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
    }
}

void nd__spin_unlock(atomic_flag *f)
{
    atomic_flag_clear_explicit(f, memory_order_release);
}

/* Queue nodes are recycled through two small per-thread caches, one per node size: a node freed
** by the receiver's thread is reused by the next send from that thread (the ring and call paths
** stay off malloc). */
#define ND__SIG_CACHE 512
typedef struct sig_cache {
    nd_sig *head;
    unsigned n;
} sig_cache;
static ND__TLS sig_cache caches[2]; /* [0] compact message nodes, [1] full nodes */

/* Link and monitor records are recycled the same way: a server call makes one on each side
** (the caller's monitor, the server's monitored-by) and drops both. */
#define ND__REL_CACHE 256
typedef struct rel_cache {
    struct nd_rel *head;
    unsigned n;
} rel_cache;
static ND__TLS rel_cache rcache;

void nd__sig_cache_drain(void)
{
    for (int i = 0; i < 2; i++) {
        while (caches[i].head) {
            nd_sig *s = caches[i].head;
            caches[i].head = s->next;
            free(s);
        }
        caches[i].n = 0;
    }
    while (rcache.head) {
        struct nd_rel *r = rcache.head;
        rcache.head = r->next;
        free(r);
    }
    rcache.n = 0;
}

static nd_sig *node_alloc(int full)
{
    sig_cache *c = &caches[full];
    nd_sig *s = c->head;
    if (s) {
        c->head = s->next;
        c->n--;
        return s;
    }
    return malloc(full ? sizeof(nd_sig) : ND__MSG_NODE);
}

nd_sig *nd__sig_new(uint32_t kind)
{
    nd_sig *s = node_alloc(1);
    if (!s) return NULL;
    s->next = NULL;
    s->kind = (uint8_t)kind;
    s->full = 1;
    s->pad = 0;
    s->tid = 0;
    s->payload = s->from = s->ref = s->item = TERM_NONE;
    s->id = 0;
    return s;
}

nd_sig *nd__msg_new(term_t msg)
{
    nd_sig *s = node_alloc(0);
    if (!s) {
        term_free(msg);
        return NULL;
    }
    s->next = NULL;
    s->kind = SIG_MSG;
    s->full = 0;
    s->pad = 0;
    s->tid = 0;
    s->payload = msg;
    return s;
}

void nd__sig_free(nd_sig *s)
{
    term_free(s->payload);
    if (s->full) {
        term_free(s->from);
        term_free(s->ref);
        term_free(s->item);
    }
    sig_cache *c = &caches[s->full];
    if (c->n < ND__SIG_CACHE && nd__cur_sched) {
        s->next = c->head;
        c->head = s;
        c->n++;
        return;
    }
    free(s);
}

term_t nd__exit_msg(term_t from, term_t reason)
{
    return term_tuplev(3, nd__a_EXIT, from, reason);
}

term_t nd_node(void)
{
    return atomic_load(&nd__rt.node);
}

uint32_t nd_creation(void)
{
    return atomic_load(&nd__rt.creation);
}

void nd_set_node(term_t node_atom, uint32_t creation)
{
    atomic_store(&nd__rt.node, node_atom);
    atomic_store(&nd__rt.creation, creation);
}

/*
** Reference numbers: each scheduler takes a block of ND__REF_BLOCK from the node's counter and
** hands them out without a locked operation (a server call makes one per call); other threads
** take theirs from the counter one at a time. Unique, not ordered across schedulers (nor are
** Erlang's). Not inlined: it reads the scheduler thread-local, see nd__push.
*/
static __attribute__((noinline)) uint64_t ref_number(void)
{
    nd_sched *s = nd__cur_sched;
    if (!s) return atomic_fetch_add(&nd__rt.ref_counter, 1) + 1;
    if (s->ref_next == s->ref_end) {
        s->ref_next = atomic_fetch_add(&nd__rt.ref_counter, ND__REF_BLOCK) + 1;
        s->ref_end = s->ref_next + ND__REF_BLOCK;
    }
    return s->ref_next++;
}

term_t nd_make_ref(void)
{
    uint64_t n = ref_number();
    uint32_t w[3] = {(uint32_t)(n & 0x3ffff), (uint32_t)(n >> 18), (uint32_t)(n >> 50)};
    return term_ref(nd_node(), nd_creation(), 3, w);
}

/* ================================================================ pid table */

nd_proc *nd__proc_slot(uint32_t id)
{
    size_t c = id / ND__CHUNK;
    if (c >= nd__rt.nchunks) return NULL;
    nd_proc *chunk = atomic_load_explicit(&nd__rt.chunks[c], memory_order_acquire);
    return chunk ? &chunk[id % ND__CHUNK] : NULL;
}

/*
** Free slots: a stack of pointers under tab_mu, and in front of it a small one per scheduler
** (nd_sched.slots, its thread's alone), so that a process that exits and the next one spawned
** on the same scheduler (spawn_exit, a worker pool) take no lock; the scheduler's stack is
** refilled and spilled ND__SLOT_BATCH at a time by copying pointers, without touching the
** records (a linked free list would make every refill a chain of cache misses). The table's
** stack has room for every slot ever made, so giving one back never fails. A cached slot is an
** ordinary free one (refs 0, PS_FREE): lookups, nd_processes and the kill at shutdown skip it
** as before. Not inlined: they read the scheduler thread-local, see nd__push.
*/

/* A never-used slot, or NULL at max_processes or without memory (tab_mu held). */
static nd_proc *slot_fresh(void)
{
    if (nd__rt.next_id >= nd__rt.nchunks * ND__CHUNK) return NULL;
    uint32_t id = nd__rt.next_id;
    size_t c = id / ND__CHUNK;
    nd_proc *chunk = atomic_load_explicit(&nd__rt.chunks[c], memory_order_relaxed);
    if (!chunk) {
        size_t cap = (c + 1) * ND__CHUNK; /* the free stack makes room for this chunk first */
        if (cap > nd__rt.free_cap) {
            nd_proc **fs = realloc(nd__rt.free_slots, cap * sizeof *fs);
            if (!fs) return NULL;
            nd__rt.free_slots = fs;
            nd__rt.free_cap = cap;
        }
        chunk = calloc(ND__CHUNK, sizeof(nd_proc));
        if (!chunk) return NULL;
        atomic_store_explicit(&nd__rt.chunks[c], chunk, memory_order_release);
    }
    nd__rt.next_id++;
    nd_proc *p = &chunk[id % ND__CHUNK];
    p->id = id;
    p->tmo.idx = -1;
    return p;
}

static __attribute__((noinline)) nd_proc *slot_alloc(void)
{
    nd_sched *s = nd__cur_sched;
    if (s && s->nslots) return s->slots[--s->nslots];
    nd_proc *p;
    pthread_mutex_lock(&nd__rt.tab_mu);
    if (nd__rt.nfree) {
        p = nd__rt.free_slots[--nd__rt.nfree];
        if (s) { /* and up to a batch more for the next spawns here */
            size_t n = nd__rt.nfree < ND__SLOT_BATCH ? nd__rt.nfree : ND__SLOT_BATCH;
            nd__rt.nfree -= n;
            memcpy(s->slots, nd__rt.free_slots + nd__rt.nfree, n * sizeof *s->slots);
            s->nslots = (unsigned)n;
        }
    } else {
        p = slot_fresh();
    }
    pthread_mutex_unlock(&nd__rt.tab_mu);
    return p;
}

/* Moves ps[0..n) to the table's free stack. */
static void slots_give(nd_proc *const *ps, size_t n)
{
    if (!n) return; /* (the table's stack may not exist yet: no slot was ever made) */
    pthread_mutex_lock(&nd__rt.tab_mu);
    memcpy(nd__rt.free_slots + nd__rt.nfree, ps, n * sizeof *ps);
    nd__rt.nfree += n;
    pthread_mutex_unlock(&nd__rt.tab_mu);
}

void nd__slot_cache_drain(nd_sched *s)
{
    slots_give(s->slots, s->nslots);
    s->nslots = 0;
}

static __attribute__((noinline)) void slot_release(nd_proc *p)
{
    term_free(p->pid);
    p->pid = TERM_NONE;
    term_free(p->reason);
    p->reason = TERM_NONE;
    atomic_store(&p->state, PS_FREE);
    nd_sched *s = nd__cur_sched;
    if (!s) {
        slots_give(&p, 1);
        return;
    }
    if (s->nslots == 2 * ND__SLOT_BATCH) { /* full: the older half goes */
        slots_give(s->slots, ND__SLOT_BATCH);
        memmove(s->slots, s->slots + ND__SLOT_BATCH, ND__SLOT_BATCH * sizeof *s->slots);
        s->nslots = ND__SLOT_BATCH;
    }
    s->slots[s->nslots++] = p;
}

void nd__proc_put(nd_proc *p)
{
    if (ND__REFS(atomic_fetch_sub_explicit(&p->rc, 1, memory_order_acq_rel)) == 1) slot_release(p);
}

static bool node_is_local(term_t node, uint32_t creation)
{
    term_t me = nd_node();
    if (node == me) return creation == nd_creation() || creation == 0;
    return node == TERM_ATOM_NONODE;
}

bool nd__ref_is_local(term_t ref)
{
    term_ref_info ri;
    if (term_ref_get(ref, &ri) != 0) return false;
    return node_is_local(ri.node, ri.creation);
}

bool nd__pid_is_local(term_t pid)
{
    term_pid_info pi;
    if (term_pid_get(pid, &pi) != 0) return false;
    return node_is_local(pi.node, pi.creation);
}

/* Drops a reference and takes back n - 1 counted in with it (ND__PUSH1 for a message). */
static inline void proc_put_n(nd_proc *p, uint64_t n)
{
    if (ND__REFS(atomic_fetch_sub_explicit(&p->rc, n, memory_order_acq_rel)) == 1) slot_release(p);
}

/*
** Takes a reference on the live process of a local pid's fields, or returns NULL (dead,
** stale): adds `add` to its rc in one CAS, 1 for a reference, 1 + ND__PUSH1 for a reference and
** a message counted in as pushed (nd_send, then nd__push_counted). Optional: *d the drained
** count, read before the CAS; *rc the word the CAS replaced.
*/
static inline nd_proc *proc_ref(const term_pid_info *pi, uint64_t add, uint64_t *d, uint64_t *rc)
{
    nd_proc *p = nd__proc_slot(pi->id);
    if (!p) return NULL;
    if (d) *d = atomic_load_explicit(&p->drained, memory_order_acquire);
    uint64_t r = atomic_load_explicit(&p->rc, memory_order_acquire);
    do {
        if (ND__REFS(r) == 0) return NULL;
    } while (!atomic_compare_exchange_weak_explicit(&p->rc, &r, r + add, memory_order_acquire,
                                                    memory_order_acquire));
    if (atomic_load_explicit(&p->serial, memory_order_acquire) != pi->serial) {
        proc_put_n(p, add); /* a reused slot: its rc back as it was */
        return NULL;
    }
    if (rc) *rc = r;
    return p;
}

/* Takes a reference on a live local process, or returns NULL (dead, stale, remote, not a pid). */
nd_proc *nd__proc_get(term_t pid)
{
    term_pid_info pi;
    if (term_pid_get(pid, &pi) != 0 || !node_is_local(pi.node, pi.creation)) return NULL;
    return proc_ref(&pi, 1, NULL, NULL);
}

/* Iterates over live processes (shutdown). */
void nd__kill_all(void)
{
    uint32_t n;
    pthread_mutex_lock(&nd__rt.tab_mu);
    n = nd__rt.next_id;
    pthread_mutex_unlock(&nd__rt.tab_mu);
    for (uint32_t id = 1; id < n; id++) {
        nd_proc *p = nd__proc_slot(id);
        if (!p) continue;
        uint64_t r = atomic_load(&p->rc);
        do {
            if (ND__REFS(r) == 0) break;
        } while (!atomic_compare_exchange_weak(&p->rc, &r, r + 1));
        if (ND__REFS(r) == 0) continue;
        nd_sig *s = nd__sig_new(SIG_EXIT2);
        if (s) {
            s->payload = nd__a_kill;
            s->from = nd__a_undefined;
            if (!nd__push(p, s)) nd__sig_free(s);
        }
        nd__proc_put(p);
    }
}

void nd__table_free(void)
{
    for (size_t c = 0; c < nd__rt.nchunks; c++) free(atomic_load(&nd__rt.chunks[c]));
    free(nd__rt.chunks);
    nd__rt.chunks = NULL;
    free(nd__rt.free_slots);
    nd__rt.free_slots = NULL;
    nd__rt.nfree = nd__rt.free_cap = 0;
}

term_t nd_processes(void)
{
    uint32_t n;
    pthread_mutex_lock(&nd__rt.tab_mu);
    n = nd__rt.next_id;
    pthread_mutex_unlock(&nd__rt.tab_mu);
    term_t out = TERM_NIL;
    for (uint32_t id = n; id-- > 1;) {
        nd_proc *p = nd__proc_slot(id);
        if (!p) continue;
        uint64_t r = atomic_load_explicit(&p->rc, memory_order_acquire);
        do {
            if (ND__REFS(r) == 0) break;
        } while (!atomic_compare_exchange_weak_explicit(&p->rc, &r, r + 1, memory_order_acquire,
                                                        memory_order_acquire));
        if (ND__REFS(r) == 0) continue;
        if (atomic_load(&p->state) != PS_EXITING && atomic_load(&p->state) != PS_FREE)
            out = term_cons(term_dup(p->pid), out);
        nd__proc_put(p);
    }
    return out;
}

size_t nd_process_count(void)
{
    return atomic_load(&nd__rt.live);
}

/* ================================================================ queues */

/*
** A demonitor takes effect in the monitored process's state at once, even while it waits: its
** sender marks the monitored-by entry gone (under the lock introspection takes), so
** process_info stops listing it now, and its exit sends no DOWN for it. The owner removes the
** entry when it handles the signal.
*/
static void demonitor_mark(nd_proc *p, term_t ref)
{
    nd__spin_lock(&p->lock);
    for (nd_rel *r = p->rels; r; r = r->next)
        if (r->type == REL_MONBY && nd__same(r->ref, ref)) {
            r->gone = 1;
            break;
        }
    nd__spin_unlock(&p->lock);
}

/* The rest of nd__push for a message that makes the queue `len` long, when len passes the
** longest queue seen or the limit. */
static __attribute__((noinline)) bool push_msg_over(nd_proc *p, nd_sig *s, uint64_t len)
{
    int act = nd__mbox_over(p, len);
    if (act == MBX_DROP) {
        atomic_fetch_sub_explicit(&p->rc, ND__PUSH1, memory_order_relaxed);
        return false;
    }
    nd_sig *h = atomic_load_explicit(&p->outer, memory_order_relaxed);
    do {
        if (h == ND__CLOSED) return false;
        s->next = h;
    } while (!atomic_compare_exchange_weak(&p->outer, &h, s));
    nd__count(CNT_MSG_IN, 1);
    nd__make_runnable(p);
    if (act == MBX_KILL) {
        nd_sig *k = nd__sig_new(SIG_KILL);
        if (k) {
            k->payload = nd__a_mailbox_overflow;
            if (!nd__push(p, k)) nd__sig_free(k);
        }
    }
    return true;
}

/* The queue length len (this message included) against the longest seen and the limit, then
** the push and the wake-up. Reads the scheduler thread-local: only for frames that never
** switch stacks (a caller that did could resume on another thread). */
static inline bool push_msg(nd_proc *p, nd_sig *s, uint64_t len)
{
    if (ND__UNLIKELY(len > atomic_load_explicit(&p->mbox_hwm, memory_order_relaxed) ||
                     len > atomic_load_explicit(&p->mbox_limit, memory_order_relaxed)))
        return push_msg_over(p, s, len);
    nd_sig *h = atomic_load_explicit(&p->outer, memory_order_relaxed);
    do {
        if (h == ND__CLOSED) return false;
        s->next = h;
    } while (!atomic_compare_exchange_weak(&p->outer, &h, s));
    nd_sched *cs = nd__cur_sched;
    if (ND__LIKELY(cs != NULL))
        atomic_store_explicit(&cs->cnt[CNT_MSG_IN],
                              atomic_load_explicit(&cs->cnt[CNT_MSG_IN], memory_order_relaxed) + 1,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&nd__rt.obs.fcnt[CNT_MSG_IN], 1, memory_order_relaxed);
    nd__make_runnable_on(cs, p);
    return true;
}

/*
** The queue's length, checked against the longest seen and the limit: the messages pushed and
** not yet drained (the senders count them in atomically in rc's high half, mod 2^32; the owner
** counts what its drains take, without a locked operation) plus the inner queue's (same cache
** line). `drained` is read before the count-in (acquire: pairs with the drain's release, see
** nd__drain): every message it counts was counted in before this sender's own, so the pushed
** count is never below it, and one it counts is already in nmsg: a message is counted twice at
** worst, never zero times, so a limit is never overrun.
*/
static inline uint64_t queue_len(nd_proc *p, uint64_t d, uint64_t rc)
{
    uint32_t outer = ND__PUSHED(rc) + 1 - (uint32_t)d;
    return (uint64_t)outer + atomic_load_explicit(&p->nmsg, memory_order_relaxed);
}

__attribute__((noinline)) bool nd__push_counted(nd_proc *p, nd_sig *s, uint64_t d, uint64_t rc)
{
    return push_msg(p, s, queue_len(p, d, rc));
}

/* Not inlined: it reads the scheduler thread-local (see push_msg). */
__attribute__((noinline)) bool nd__push(nd_proc *p, nd_sig *s)
{
    if (s->kind == SIG_MSG) {
        uint64_t d = atomic_load_explicit(&p->drained, memory_order_acquire);
        uint64_t rc = atomic_fetch_add_explicit(&p->rc, ND__PUSH1, memory_order_relaxed);
        return push_msg(p, s, queue_len(p, d, rc));
    }
    /* Removals need no prompt attention: they wait for the next wake-up (a DEMONITOR after every
    ** server call would otherwise wake the server a second time). Read before publishing: once
    ** pushed, the node belongs to the receiver. */
    bool wake = s->kind != SIG_DEMONITOR && s->kind != SIG_UNLINK_ACK;
    if (s->kind == SIG_DEMONITOR) demonitor_mark(p, s->ref);
    nd_sig *h = atomic_load_explicit(&p->outer, memory_order_relaxed);
    do {
        if (h == ND__CLOSED) return false;
        s->next = h;
    } while (!atomic_compare_exchange_weak(&p->outer, &h, s));
    if (wake) nd__make_runnable(p);
    return true;
}

void nd__inner_append(nd_proc *p, nd_sig *s)
{
    s->next = NULL;
    if (p->in_tail)
        p->in_tail->next = s;
    else
        p->in_head = s;
    p->in_tail = s;
    atomic_store_explicit(&p->nmsg, atomic_load_explicit(&p->nmsg, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Turns a signal node into a message node carrying msg. */
static void to_message(nd_proc *p, nd_sig *s, term_t msg)
{
    term_free(s->payload);
    term_free(s->from);
    term_free(s->ref);
    term_free(s->item);
    s->from = s->ref = s->item = TERM_NONE;
    s->payload = msg;
    s->kind = SIG_MSG;
    nd__inner_append(p, s);
    nd__count(CNT_MSG_CONV, 1);
}

static nd_sig *reverse(nd_sig *l)
{
    nd_sig *r = NULL;
    while (l) {
        nd_sig *n = l->next;
        l->next = r;
        r = l;
        l = n;
    }
    return r;
}

/* ================================================================ links and monitors */

/*
** A process that holds many monitors (a watcher of 100,000 remote processes) found and removed
** each by walking its whole list: N DOWN messages cost N^2/2 reference comparisons (10,000
** monitors took 5.5 s to go down against erl's 0.1 s). Past RELIX_MIN records with a ref, they
** are also chained in a hash table by ref, and removal is O(1) through pprev. Only the owner
** touches the index; the list itself stays as it was for introspection.
*/
#define RELIX_MIN 32
typedef struct nd_relix {
    size_t n, nb;
    nd_rel **b;
} nd_relix;

/* Chains r (whose hash is set) in x. */
static void relix_put(nd_relix *x, nd_rel *r)
{
    nd_rel **b = &x->b[r->hash & (x->nb - 1)];
    r->hnext = *b;
    *b = r;
    x->n++;
}

/* Doubles x's buckets when it is full; keeps the old ones if it cannot. */
static void relix_grow(nd_relix *x)
{
    if (x->n < x->nb) return;
    size_t nb = x->nb * 2;
    nd_rel **b = calloc(nb, sizeof *b);
    if (!b) return;
    nd_rel **old = x->b;
    size_t onb = x->nb;
    x->b = b;
    x->nb = nb;
    x->n = 0;
    for (size_t i = 0; i < onb; i++)
        for (nd_rel *r = old[i], *n; r; r = n) {
            n = r->hnext;
            relix_put(x, r);
        }
    free(old);
}

/* Builds p's index from its list once it has RELIX_MIN records with a ref. */
static void relix_maybe_build(nd_proc *p)
{
    size_t k = 0;
    for (nd_rel *r = p->rels; r && k < RELIX_MIN; r = r->next)
        if (r->ref != TERM_NONE) k++;
    if (k < RELIX_MIN) return;
    nd_relix *x = calloc(1, sizeof *x);
    if (!x) return;
    x->nb = 2 * RELIX_MIN;
    x->b = calloc(x->nb, sizeof *x->b);
    if (!x->b) {
        free(x);
        return;
    }
    for (nd_rel *r = p->rels; r; r = r->next)
        if (r->ref != TERM_NONE) {
            r->hash = (uint32_t)term_hash(r->ref);
            relix_put(x, r);
            relix_grow(x);
        }
    p->relix = x;
}

static void relix_drop(nd_proc *p)
{
    if (!p->relix) return;
    free(p->relix->b);
    free(p->relix);
    p->relix = NULL;
}

static nd_rel *rel_find(nd_proc *p, int type, term_t pid, term_t ref)
{
    if (ref != TERM_NONE && p->relix) {
        nd_relix *x = p->relix;
        for (nd_rel *r = x->b[term_hash(ref) & (x->nb - 1)]; r; r = r->hnext)
            if (r->type == type && nd__same(r->ref, ref)) return r;
        return NULL;
    }
    for (nd_rel *r = p->rels; r; r = r->next) {
        if (r->type != type) continue;
        if (ref != TERM_NONE ? nd__same(r->ref, ref) : nd__same(r->pid, pid)) return r;
    }
    return NULL;
}

/* Not inlined (nor rel_free): they read the thread-local cache, see nd__push. */
static __attribute__((noinline)) nd_rel *rel_alloc(void)
{
    nd_rel *r = rcache.head;
    if (r) {
        rcache.head = r->next;
        rcache.n--;
        return r;
    }
    return malloc(sizeof *r);
}

/* Frees a record whose terms are already released. */
static __attribute__((noinline)) void rel_free(nd_rel *r)
{
    if (rcache.n < ND__REL_CACHE && nd__cur_sched) {
        r->next = rcache.head;
        rcache.head = r;
        rcache.n++;
        return;
    }
    free(r);
}

/* What a monitor record names in DOWN messages and process_info: its item, or for a monitor
** of a pid (stored without one) the pid. */
static inline term_t rel_item(const nd_rel *r)
{
    return r->item != TERM_NONE ? r->item : r->pid;
}

static nd_rel *rel_add(nd_proc *p, int type, term_t pid, term_t ref, term_t item)
{
    nd_rel *r = rel_alloc();
    if (!r) {
        term_free(pid);
        term_free(ref);
        term_free(item);
        return NULL;
    }
    r->type = (uint8_t)type;
    r->gone = 0;
    r->unlinking = 0;
    r->pid = pid;
    r->ref = ref;
    r->item = item;
    r->hnext = NULL;
    nd__spin_lock(&p->lock);
    r->next = p->rels;
    r->pprev = &p->rels;
    if (r->next) r->next->pprev = &r->next;
    p->rels = r;
    nd__spin_unlock(&p->lock);
    if (ref != TERM_NONE) {
        if (p->relix) {
            r->hash = (uint32_t)term_hash(ref);
            relix_put(p->relix, r);
            relix_grow(p->relix);
        } else {
            relix_maybe_build(p);
        }
    }
    return r;
}

/* Takes r out of p's list and index and frees the record; its terms are the caller's. */
static void rel_detach(nd_proc *p, nd_rel *r)
{
    if (p->relix && r->ref != TERM_NONE) {
        nd_relix *x = p->relix;
        for (nd_rel **l = &x->b[r->hash & (x->nb - 1)]; *l; l = &(*l)->hnext)
            if (*l == r) {
                *l = r->hnext;
                x->n--;
                break;
            }
    }
    nd__spin_lock(&p->lock);
    *r->pprev = r->next;
    if (r->next) r->next->pprev = r->pprev;
    nd__spin_unlock(&p->lock);
    rel_free(r);
}

static void rel_remove(nd_proc *p, nd_rel *r)
{
    term_t pid = r->pid, ref = r->ref, item = r->item;
    rel_detach(p, r);
    term_free(pid);
    term_free(ref);
    term_free(item);
}

/* ================================================================ sending signals */

static void dist_out(nd_sig *s, term_t to);

/*
** The answer a dead (or unreachable) target gives to a signal: a link gets an exit signal with
** `why`, a monitor a DOWN with `why`, an unlink its ack. Consumes s.
*/
static void dead_answer(term_t to, nd_sig *s, term_t why)
{
    if (!s->full) { /* a message: nothing to answer */
        nd__sig_free(s);
        return;
    }
    nd_sig *a = NULL;
    switch (s->kind) {
    case SIG_LINK:
        if ((a = nd__sig_new(SIG_EXIT))) a->payload = why;
        break;
    case SIG_MONITOR:
        if ((a = nd__sig_new(SIG_DOWN))) {
            a->payload = why;
            a->ref = s->ref;
            s->ref = TERM_NONE;
        }
        break;
    case SIG_UNLINK:
        if ((a = nd__sig_new(SIG_UNLINK_ACK))) a->id = s->id;
        break;
    default:
        break;
    }
    term_t back = s->from;
    s->from = TERM_NONE;
    if (a && term_is_pid(back)) {
        a->from = term_dup(to);
        nd__send_sig(NULL, back, a);
    } else if (a) {
        nd__sig_free(a);
    }
    term_free(back);
    nd__sig_free(s);
}

/* Records the trace event of signal s from s->from to `to`; a signal that may become a message
** (exit, DOWN) gets a trace id, which its receive reports. */
static void ev_signal(nd_sig *s, term_t to)
{
    int kind, info = 0;
    term_t reason = TERM_NONE;
    switch (s->kind) {
    case SIG_EXIT2:
        info = 1;
        /* fall through */
    case SIG_EXIT:
        kind = ND_EV_EXIT_SIGNAL;
        reason = s->payload;
        s->tid = nd__ev_tid();
        break;
    case SIG_DOWN:
        kind = ND_EV_DOWN;
        reason = s->payload;
        s->tid = nd__ev_tid();
        break;
    case SIG_LINK:
        kind = ND_EV_LINK;
        break;
    case SIG_UNLINK:
        kind = ND_EV_UNLINK;
        break;
    case SIG_MONITOR:
        kind = ND_EV_MONITOR;
        break;
    case SIG_DEMONITOR:
        kind = ND_EV_DEMONITOR;
        break;
    default:
        return;
    }
    nd__ev(kind, info, s->from, to, 0, s->tid, reason);
}

/* Sends s (consumed) to the pid `to`, local or remote. */
void nd__send_sig(nd_proc *self, term_t to, nd_sig *s)
{
    (void)self;
    if (nd__tracing() && s->full) ev_signal(s, to);
    nd_proc *q = nd__proc_get(to); /* a live local process, the common case: one lookup */
    if (q) {
        bool ok = nd__push(q, s);
        nd__proc_put(q);
        if (ok) return;
        dead_answer(to, s, nd__a_noproc);
        return;
    }
    if (nd__pid_is_local(to)) {
        dead_answer(to, s, nd__a_noproc);
        return;
    }
    if ((!term_is_pid(to) && !term_is_tuple(to)) || !s->full) {
        nd__sig_free(s); /* a compact node is only ever made for a local process */
        return;
    }
    dist_out(s, to);
}

static void dist_out(nd_sig *s, term_t to)
{
    nd_dist_fn fn = atomic_load(&nd__rt.dist_fn);
    if (!fn) {
        dead_answer(to, s, nd__a_noconnection);
        return;
    }
    nd_signal sig;
    memset(&sig, 0, sizeof sig);
    switch (s->kind) {
    case SIG_MSG:
        sig.kind = ND_SIG_MSG;
        break;
    case SIG_EXIT:
        sig.kind = ND_SIG_EXIT;
        break;
    case SIG_EXIT2:
        sig.kind = ND_SIG_EXIT2;
        break;
    case SIG_LINK:
        sig.kind = ND_SIG_LINK;
        break;
    case SIG_UNLINK:
        sig.kind = ND_SIG_UNLINK_ID;
        break;
    case SIG_UNLINK_ACK:
        sig.kind = ND_SIG_UNLINK_ID_ACK;
        break;
    case SIG_MONITOR:
        sig.kind = ND_SIG_MONITOR;
        break;
    case SIG_DEMONITOR:
        sig.kind = ND_SIG_DEMONITOR;
        break;
    case SIG_DOWN:
        sig.kind = ND_SIG_DOWN;
        break;
    }
    sig.from = s->from;
    sig.to = s->kind == SIG_MONITOR && s->item != TERM_NONE && !term_is_pid(s->item) ? s->item : to;
    sig.payload = s->payload;
    sig.ref = s->ref;
    sig.id = s->id;
    int rc = fn(atomic_load(&nd__rt.dist_ud), &sig);
    if (rc != 0) {
        dead_answer(to, s, nd__a_noconnection);
        return;
    }
    if (s->kind == SIG_MSG) nd__count(CNT_MSG_REMOTE, 1);
    nd__sig_free(s);
}

void nd_set_dist_hook(nd_dist_fn fn, void *ud)
{
    atomic_store(&nd__rt.dist_ud, ud);
    atomic_store(&nd__rt.dist_fn, fn);
}

/* The internal kind of each ND_SIG_* (nd_dist_deliver, nd_dist_deliver_take). */
static const uint32_t sig_kinds[] = {
    0,          SIG_MSG,        SIG_EXIT,    SIG_EXIT2,     SIG_LINK,
    SIG_UNLINK, SIG_UNLINK_ACK, SIG_MONITOR, SIG_DEMONITOR, SIG_DOWN};

int nd_dist_deliver(const nd_signal *sig)
{
    if (sig->kind < ND_SIG_MSG || sig->kind > ND_SIG_DOWN) return ND_EINVAL;
    term_t to = sig->to;
    nd_proc *q = NULL;
    term_t item = TERM_NONE;
    term_t owner = TERM_NONE;
    if (term_is_ref(to)) { /* through an alias: a message, or an exit signal (OTP 28) */
        if ((sig->kind != ND_SIG_MSG && sig->kind != ND_SIG_EXIT2) || !nd__ref_is_local(to))
            return ND_EINVAL;
        if (sig->kind == ND_SIG_MSG) {
            nd__alias_send(to, term_dup(sig->payload));
            return 0;
        }
        if ((owner = nd__alias_owner(to)) == TERM_NONE) return 0; /* inactive: dropped */
        to = owner;
    }
    if (term_is_atom(to) || term_is_tuple(to)) {
        term_t name = term_is_atom(to) ? to : term_tuple_elem(to, 0);
        if (sig->kind != ND_SIG_MSG && sig->kind != ND_SIG_MONITOR) return ND_EINVAL;
        q = nd__whereis_proc(name);
        item = term_tuplev(2, name, nd_node());
        if (!q) {
            if (sig->kind == ND_SIG_MONITOR) {
                nd_sig *s = nd__sig_new(SIG_MONITOR);
                if (!s) return ND_ENOMEM;
                s->from = term_dup(sig->from);
                s->ref = term_dup(sig->ref);
                dead_answer(item, s, nd__a_noproc);
            }
            term_free(item);
            return 0;
        }
        to = q->pid;
    } else if (!nd__pid_is_local(to)) {
        term_pid_info pi;
        if (term_pid_get(to, &pi) != 0 || pi.node != nd_node()) return ND_EINVAL;
        /* a pid of an earlier incarnation of this node (another creation): a dead process,
        ** which answers as one (a link gets noproc, a monitor a DOWN noproc), as Erlang does */
        nd_sig *d = nd__sig_new(sig_kinds[sig->kind]);
        if (!d) return ND_ENOMEM;
        d->from = term_dup(sig->from);
        d->ref = term_dup(sig->ref);
        d->id = sig->id;
        dead_answer(to, d, nd__a_noproc);
        return 0;
    }
    /* a message keeps only its payload (a compact node): holding `from` would keep the
    ** sender's decoded control message alive as long as the message waits */
    nd_sig *s = sig->kind == ND_SIG_MSG ? nd__msg_new(term_dup(sig->payload))
                                        : nd__sig_new(sig_kinds[sig->kind]);
    if (!s) {
        term_free(item);
        term_free(owner);
        if (q) nd__proc_put(q);
        return ND_ENOMEM;
    }
    if (s->full) {
        s->payload = term_dup(sig->payload);
        s->from = term_dup(sig->from);
        s->ref = term_dup(sig->ref);
        s->id = sig->id;
        if (s->kind == SIG_MONITOR) {
            s->item = item != TERM_NONE ? item : term_dup(to);
            item = TERM_NONE;
        }
    }
    term_free(item);
    if (!s->full && nd__tracing()) {
        s->tid = nd__ev_tid();
        nd__ev(ND_EV_SEND, term_is_atom(sig->to) ? ND_EV_F_NAMED : 0, sig->from, to,
               term_is_boxed(s->payload) ? term_memory(s->payload) : 0, s->tid,
               term_is_atom(sig->to) ? sig->to : TERM_NONE);
    }
    nd__send_sig(NULL, to, s);
    if (q) nd__proc_put(q);
    term_free(owner);
    return 0;
}

int nd_dist_deliver_take(const nd_signal *sig)
{
    /* the common case, a signal other than a message to a live incarnation's pid, as
    ** nd_dist_deliver() does it without the references it would take and the caller drop */
    if (sig->kind > ND_SIG_MSG && sig->kind <= ND_SIG_DOWN && term_is_pid(sig->to) &&
        nd__pid_is_local(sig->to)) {
        nd_sig *s = nd__sig_new(sig_kinds[sig->kind]);
        if (s) {
            s->payload = sig->payload;
            s->from = sig->from;
            s->ref = sig->ref;
            s->id = sig->id;
            if (s->kind == SIG_MONITOR) s->item = term_dup(sig->to);
            nd__send_sig(NULL, sig->to, s);
            return 0;
        }
    }
    int rc = nd_dist_deliver(sig);
    term_free(sig->from);
    term_free(sig->ref);
    term_free(sig->payload);
    return rc;
}

/* ================================================================ receiving signals */

/* Exit-signal rules (Erlang reference manual, "Receiving Exit Signals"). Consumes s. */
static void handle_exit(nd_proc *p, nd_sig *s)
{
    term_t reason = s->payload;
    bool trap = atomic_load_explicit(&p->trap, memory_order_relaxed);
    if (s->kind == SIG_EXIT) {
        nd_rel *r = rel_find(p, REL_LINK, s->from, TERM_NONE);
        if (!r || r->unlinking) {
            /* an unlink under way is not answered once the connection is lost: its state goes
            ** with the connection, or it would stay forever */
            if (r && reason == nd__a_noconnection) rel_remove(p, r);
            nd__sig_free(s);
            return;
        }
        rel_remove(p, r);
    } else if (reason == nd__a_kill) {
        nd__sig_free(s);
        nd__proc_exit(p, nd__a_killed);
    }
    if (trap) {
        term_t from = s->from;
        s->from = s->payload = TERM_NONE;
        to_message(p, s, nd__exit_msg(from, reason));
        return;
    }
    if (reason == nd__a_normal) {
        bool from_self = s->kind == SIG_EXIT2 && term_equal(s->from, p->pid);
        nd__sig_free(s);
        if (from_self) nd__proc_exit(p, nd__a_normal);
        return;
    }
    s->payload = TERM_NONE;
    nd__sig_free(s);
    nd__proc_exit(p, reason);
}

/* Handles one signal for a live process; may end it. Consumes s. */
static void handle_sig(nd_proc *p, nd_sig *s)
{
    nd_rel *r;
    switch (s->kind) {
    case SIG_MSG: /* counted in nmsg by the drain */
        s->next = NULL;
        if (p->in_tail)
            p->in_tail->next = s;
        else
            p->in_head = s;
        p->in_tail = s;
        return;
    case SIG_EXIT:
    case SIG_EXIT2:
        handle_exit(p, s);
        return;
    case SIG_LINK:
        if (!rel_find(p, REL_LINK, s->from, TERM_NONE)) {
            rel_add(p, REL_LINK, s->from, TERM_NONE, TERM_NONE);
            s->from = TERM_NONE;
        }
        break;
    case SIG_UNLINK:
        r = rel_find(p, REL_LINK, s->from, TERM_NONE);
        if (r && !r->unlinking) rel_remove(p, r);
        {
            nd_sig *a = nd__sig_new(SIG_UNLINK_ACK);
            if (a) {
                a->id = s->id;
                a->from = term_dup(p->pid);
                nd__send_sig(p, s->from, a);
            }
        }
        break;
    case SIG_UNLINK_ACK:
        r = rel_find(p, REL_LINK, s->from, TERM_NONE);
        if (r && r->unlinking == s->id) rel_remove(p, r);
        break;
    case SIG_MONITOR:
        rel_add(p, REL_MONBY, s->from, s->ref, s->item);
        s->from = s->ref = s->item = TERM_NONE;
        break;
    case SIG_DEMONITOR:
        if ((r = rel_find(p, REL_MONBY, TERM_NONE, s->ref))) rel_remove(p, r);
        break;
    case SIG_DOWN:
        if ((r = rel_find(p, REL_MON, TERM_NONE, s->ref))) {
            /* the record's references go into the message (a 100,000-monitor node-down
            ** spent a third of its time taking and dropping references on cold boxes) */
            term_t ref = r->ref, pid = r->pid, item = r->item;
            rel_detach(p, r);
            if (item != TERM_NONE) term_free(pid);
            term_t msg = term_tuplev(5, nd__a_DOWN, ref, nd__a_process,
                                     item != TERM_NONE ? item : pid, s->payload);
            s->payload = TERM_NONE;
            to_message(p, s, msg);
            return;
        }
        break;
    case SIG_KILL: {
        term_t reason = s->payload;
        s->payload = TERM_NONE;
        nd__sig_free(s);
        nd__proc_exit(p, reason);
    }
    case SIG_MON_ADOPT:
        if (!rel_find(p, REL_MON, TERM_NONE, s->ref)) {
            rel_add(p, REL_MON, term_dup(s->from), s->ref, s->from);
            s->from = s->ref = TERM_NONE;
        }
        break;
    }
    nd__sig_free(s);
}

void nd__drain_slow(nd_proc *p)
{
    if (!p->pending) {
        /* reversed into arrival order, the messages counted on the way */
        nd_sig *l = atomic_exchange(&p->outer, NULL), *last = l, *r = NULL;
        int64_t n = 0, all = 0;
        while (l) {
            nd_sig *next = l->next;
            n += l->kind == SIG_MSG;
            all++;
            l->next = r;
            r = l;
            l = next;
        }
        if (n == all && all) { /* only messages (a ring, a reply): appended in one go */
            if (p->in_tail)
                p->in_tail->next = r;
            else
                p->in_head = r;
            p->in_tail = last;
        } else {
            p->pending = r;
        }
        if (n) {
            /* into the inner count first, then into the drained count (release, paired with the
            ** senders' acquire): a sender in between counts these messages twice, never zero
            ** times, so a mailbox limit is never overrun. Only the owner writes either: plain
            ** additions, no locked operation */
            atomic_store_explicit(&p->nmsg,
                                  atomic_load_explicit(&p->nmsg, memory_order_relaxed) + (size_t)n,
                                  memory_order_relaxed);
            atomic_store_explicit(
                &p->drained, atomic_load_explicit(&p->drained, memory_order_relaxed) + (uint64_t)n,
                memory_order_release);
        }
    }
    while (p->pending) {
        nd_sig *s = p->pending;
        p->pending = s->next;
        handle_sig(p, s);
    }
}

/* A signal that reaches a process while it exits (or queued when it died). Consumes s. */
static void handle_sig_exiting(nd_proc *p, nd_sig *s)
{
    switch (s->kind) {
    case SIG_MON_ADOPT: {
        /* the owner is gone: the monitor set up for it is taken down, as its exit would */
        nd_sig *d = nd__sig_new(SIG_DEMONITOR);
        if (d) {
            d->from = term_dup(p->pid);
            d->ref = s->ref;
            s->ref = TERM_NONE;
            nd__send_sig(p, s->from, d);
        }
        nd__sig_free(s);
        return;
    }
    case SIG_LINK:
    case SIG_MONITOR:
    case SIG_UNLINK:
    case SIG_UNLINK_ACK:
    case SIG_DEMONITOR:
        handle_sig(p, s);
        return;
    default:
        nd__sig_free(s);
        return;
    }
}

/* ================================================================ exit */

static void notify_waiter(nd_proc *p)
{
    struct nd_waiter *w = p->waiter;
    if (!w) return;
    p->waiter = NULL;
    pthread_mutex_lock(&w->mu);
    bool abandoned = w->abandoned;
    if (!abandoned) {
        w->reason = term_dup(p->reason);
        w->done = true;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    if (abandoned) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
    }
}

/*
** Ends p with reason (consumed): closes its queue, answers the signals still in it, sends an
** exit signal to every active link and a DOWN to every monitor (once each), and switches to
** the scheduler, which frees the stack. Runs on p's own stack.
*/
_Noreturn void nd__proc_exit(nd_proc *p, term_t reason)
{
    if (p->exit_hook) {
        void (*hook)(void *, term_t) = p->exit_hook;
        p->exit_hook = NULL;
        hook(p->exit_hook_arg, reason);
    }
    atomic_store(&p->state, PS_EXITING);
    p->reason = reason;
    if (nd__tracing()) nd__ev(ND_EV_EXIT, 0, p->pid, TERM_NONE, 0, 0, reason);
    nd__alias_exit(p);
    if (atomic_load(&p->name) != TERM_NONE) nd__unregister_proc(p);
    nd_sig *late = reverse(atomic_exchange(&p->outer, ND__CLOSED));
    nd_sig **tail = &p->pending;
    while (*tail) tail = &(*tail)->next;
    *tail = late;
    uint64_t discarded = 0;
    while (p->pending) {
        nd_sig *s = p->pending;
        p->pending = s->next;
        discarded += s->kind == SIG_MSG;
        handle_sig_exiting(p, s);
    }
    while (p->in_head) {
        nd_sig *s = p->in_head;
        p->in_head = s->next;
        nd__sig_free(s);
        discarded++;
    }
    p->in_tail = p->mark = NULL;
    atomic_store(&p->nmsg, 0);
    if (discarded) {
        nd__count(CNT_MSG_DISCARD, discarded);
        /* a large mailbox went back to malloc in small chunks: have them returned (obs.c) */
        if (discarded >= ND__TRIM_AFTER) atomic_store(&nd__rt.obs.trim_wanted, 1);
    }
    nd__spin_lock(&p->lock);
    nd_rel *rels = p->rels;
    p->rels = NULL;
    nd__spin_unlock(&p->lock);
    relix_drop(p);
    while (rels) {
        nd_rel *r = rels;
        rels = r->next;
        nd_sig *s = NULL;
        if (r->type == REL_LINK && !r->unlinking) {
            if ((s = nd__sig_new(SIG_EXIT))) s->payload = term_dup(reason);
        } else if (r->type == REL_MON) {
            if ((s = nd__sig_new(SIG_DEMONITOR))) {
                s->ref = r->ref;
                r->ref = TERM_NONE;
            }
        } else if (r->type == REL_MONBY && !r->gone) {
            if ((s = nd__sig_new(SIG_DOWN))) {
                s->ref = r->ref;
                r->ref = TERM_NONE;
                s->payload = term_dup(reason);
            }
        }
        if (s) {
            s->from = term_dup(p->pid);
            nd__send_sig(p, r->pid, s);
        }
        term_free(r->pid);
        term_free(r->ref);
        term_free(r->item);
        rel_free(r);
    }
    notify_waiter(p);
    atomic_fetch_add_explicit(&nd__rt.st_exits, 1, memory_order_relaxed);
    atomic_fetch_sub(&nd__rt.live, 1);
    nd__switch_out(p, WHY_EXIT);
    abort(); /* never resumed */
}

_Noreturn void nd_exit(term_t reason)
{
    nd_proc *p = nd__self();
    if (!p) {
        fprintf(stderr, "libnode: nd_exit called outside a process\n");
        abort();
    }
    nd__proc_exit(p, reason);
}

void nd__proc_start(void *arg)
{
    nd_proc *p = arg;
    nd__ctx_landed(NULL);
    nd__finish_prev(nd__sched_get());
    nd__drain(p);
    p->fn(p->arg);
    nd__proc_exit(nd__self(), nd__a_normal);
}

_Noreturn void nd_hibernate(nd_entry_fn fn, void *arg)
{
    nd_proc *p = nd__self();
    if (!p) abort();
    p->fn = fn;
    p->arg = arg;
    nd__drain(p);
    nd__switch_out(p, WHY_HIBERNATE);
    abort();
}

/* ================================================================ spawn */

static int spawn_internal(nd_entry_fn fn, void *arg, const nd_spawn_opts *opts, term_t *pid_out,
                          struct nd_waiter *waiter)
{
    static const nd_spawn_opts none;
    if (!opts) opts = &none;
    if (atomic_load(&nd__rt.running) != 1 || atomic_load(&nd__rt.stopping)) return ND_ESTATE;
    nd_proc *self = nd__self();
    if ((opts->link || opts->monitor) && !self) return ND_ENOTPROC;
    if (opts->name != TERM_NONE && !term_is_atom(opts->name)) return ND_EINVAL;
    if ((unsigned)opts->mailbox_policy > ND_MBOX_DROP_NEWEST) return ND_EINVAL;
    nd_proc *p = slot_alloc();
    if (!p) return ND_ELIMIT;
    uint32_t serial = atomic_load_explicit(&p->serial, memory_order_relaxed) + 1;
    term_t pid = term_pid(nd_node(), p->id, serial, nd_creation());
    if (pid == TERM_NONE) {
        atomic_store(&p->rc, 1);
        nd__proc_put(p);
        return ND_ENOMEM;
    }
    atomic_store_explicit(&p->serial, serial, memory_order_relaxed);
    p->pid = pid;
    atomic_store_explicit(&p->outer, NULL, memory_order_relaxed);
    atomic_store_explicit(&p->drained, 0, memory_order_relaxed); /* pushed: with rc, below */
    p->in_head = p->in_tail = p->mark = p->pending = NULL;
    atomic_store_explicit(&p->nmsg, 0, memory_order_relaxed);
    atomic_store_explicit(&p->mbox_limit, nd__mbox_limit_of(opts->mailbox_limit),
                          memory_order_relaxed);
    atomic_store_explicit(
        &p->mbox_policy,
        (uint8_t)(opts->mailbox_policy ? opts->mailbox_policy : nd__rt.cfg.mailbox_policy),
        memory_order_relaxed);
    atomic_store_explicit(&p->mbox_hwm, 0, memory_order_relaxed);
    atomic_store_explicit(&p->mbox_state, 0, memory_order_relaxed);
    atomic_store_explicit(&p->mbox_dropped, 0, memory_order_relaxed);
    p->rels = NULL;
    p->relix = NULL;
    atomic_flag_clear(&p->lock);
    p->flags = 0;
    atomic_store_explicit(&p->trap, opts->trap_exit, memory_order_relaxed);
    atomic_store_explicit(&p->held_stack, 0, memory_order_relaxed);
    p->why = 0;
    p->reds = 0;
    atomic_store_explicit(&p->total_reds, 0, memory_order_relaxed);
    atomic_store_explicit(&p->name, TERM_NONE, memory_order_relaxed);
    p->reason = TERM_NONE;
    p->stack = NULL;
    p->stack_size = opts->stack_size;
    p->fn = fn;
    p->arg = arg;
    p->tmo.idx = -1;
    p->tmo.kind = TMR_RECV;
    p->tmo.proc = p;
    p->tmo.deadline = ND__NO_DEADLINE;
    p->waiter = waiter;
    p->exit_hook = opts->exit_hook;
    p->exit_hook_arg = opts->exit_hook_arg;
    p->next_unlink_id = 0;
    p->aliases = TERM_NIL;
    p->naliases = 0;
    p->alias_prune_at = 64;
    atomic_store(&p->state, PS_RUNNABLE);
    atomic_store_explicit(&p->rc, 1, memory_order_release); /* one reference, none pushed */
    atomic_fetch_add(&nd__rt.live, 1);
    if (opts->name != TERM_NONE) {
        int rc = nd_register(opts->name, pid);
        if (rc != 0) {
            atomic_store(&p->state, PS_FREE);
            atomic_store(&p->outer, ND__CLOSED);
            atomic_fetch_sub(&nd__rt.live, 1);
            nd__proc_put(p);
            return rc;
        }
    }
    if (opts->link) {
        rel_add(p, REL_LINK, term_dup(self->pid), TERM_NONE, TERM_NONE);
        nd_rel *r = rel_find(self, REL_LINK, pid, TERM_NONE);
        if (r)
            r->unlinking = 0;
        else
            rel_add(self, REL_LINK, term_dup(pid), TERM_NONE, TERM_NONE);
    }
    if (opts->monitor) {
        term_t ref = nd_make_ref();
        rel_add(p, REL_MONBY, term_dup(self->pid), term_dup(ref), term_dup(pid));
        rel_add(self, REL_MON, term_dup(pid), term_dup(ref), term_dup(pid));
        if (opts->monitor_ref)
            *opts->monitor_ref = ref;
        else
            term_free(ref);
    }
    if (pid_out) *pid_out = term_dup(pid);
    atomic_fetch_add_explicit(&nd__rt.st_spawns, 1, memory_order_relaxed);
    if (nd__tracing())
        nd__ev(ND_EV_SPAWN,
               (opts->link ? ND_SPAWN_LINK : 0) | (opts->monitor ? ND_SPAWN_MONITOR : 0),
               self ? self->pid : TERM_NONE, pid, 0, 0, TERM_NONE);
    nd__enqueue(p);
    if (self && --self->reds <= 0) nd_yield();
    return 0;
}

int nd_spawn(nd_entry_fn fn, void *arg, const nd_spawn_opts *opts, term_t *pid)
{
    return spawn_internal(fn, arg, opts, pid, NULL);
}

int nd_spawn_link(nd_entry_fn fn, void *arg, term_t *pid)
{
    nd_spawn_opts o = {0};
    o.link = true;
    return spawn_internal(fn, arg, &o, pid, NULL);
}

int nd_spawn_monitor(nd_entry_fn fn, void *arg, term_t *pid, term_t *ref)
{
    nd_spawn_opts o = {0};
    o.monitor = true;
    o.monitor_ref = ref;
    return spawn_internal(fn, arg, &o, pid, NULL);
}

int nd_run(nd_entry_fn fn, void *arg, int64_t timeout_ms, term_t *reason)
{
    if (nd__self()) return ND_EINVAL;
    struct nd_waiter *w = calloc(1, sizeof *w);
    if (!w) return ND_ENOMEM;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = spawn_internal(fn, arg, NULL, NULL, w);
    if (rc != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return rc;
    }
    pthread_mutex_lock(&w->mu);
    struct timespec ts;
    bool timed = girder__deadline_ts(CLOCK_MONOTONIC, timeout_ms, &ts);
    while (!w->done) {
        if (!timed)
            pthread_cond_wait(&w->cv, &w->mu);
        else if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0 && !w->done)
            break;
    }
    if (!w->done) {
        w->abandoned = true;
        pthread_mutex_unlock(&w->mu);
        return ND_ETIMEOUT;
    }
    pthread_mutex_unlock(&w->mu);
    if (reason)
        *reason = w->reason;
    else
        term_free(w->reason);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
    return 0;
}

int nd__in_process(nd_entry_fn fn, void *ctx, int64_t timeout_ms)
{
    if (nd__self()) {
        fn(ctx);
        return 0;
    }
    int64_t t = timeout_ms < 0 ? -1 : timeout_ms + 1000;
    return nd_run(fn, ctx, t, NULL);
}

/* ================================================================ process API */

term_t nd_self(void)
{
    nd_proc *p = nd__self();
    return p ? p->pid : TERM_NONE;
}

int nd_set_exit_hook(void (*fn)(void *arg, term_t reason), void *arg)
{
    nd_proc *p = nd__self();
    if (!p) return ND_ENOTPROC;
    p->exit_hook = fn;
    p->exit_hook_arg = arg;
    return 0;
}

bool nd_in_process(void)
{
    return nd__self() != NULL;
}

bool nd_trap_exit(bool on)
{
    nd_proc *p = nd__self();
    if (!p) return false;
    return atomic_exchange(&p->trap, on);
}

bool nd_is_alive(term_t pid)
{
    nd_proc *q = nd__proc_get(pid);
    if (!q) return false;
    bool alive = atomic_load(&q->state) != PS_EXITING;
    nd__proc_put(q);
    return alive;
}

static void consume1(nd_proc *p)
{
    if (p && --p->reds <= 0) nd_yield();
}

/* Hands a message for a target on another node (alias or {Name, Node}) to distribution.
** Consumes msg. */
static int send_remote(nd_proc *self, term_t to, term_t msg)
{
    nd_sig *s = nd__sig_new(SIG_MSG);
    if (!s) {
        term_free(msg);
        return ND_ENOMEM;
    }
    s->payload = msg;
    if (self) s->from = term_dup(self->pid);
    if (nd__tracing())
        s->tid = nd__ev_send(NULL, to, msg, term_is_tuple(to) ? term_tuple_elem(to, 0) : TERM_NONE);
    dist_out(s, to);
    return 0;
}

int nd_send(term_t to, term_t msg)
{
    nd_proc *self = nd__self();
    term_pid_info pi; /* one look at the pid's fields: its type, its node, its slot */
    if (term_pid_get(to, &pi) == 0) {
        bool local = node_is_local(pi.node, pi.creation);
        uint64_t d, was;
        nd_proc *q = local ? proc_ref(&pi, 1 + ND__PUSH1, &d, &was) : NULL;
        if (q) {
            nd_sig *s = nd__msg_new(msg);
            if (!s) {
                proc_put_n(q, 1 + ND__PUSH1);
                return ND_ENOMEM;
            }
            if (nd__tracing()) s->tid = nd__ev_send(q, to, s->payload, TERM_NONE);
            if (!nd__push_counted(q, s, d, was)) nd__sig_free(s);
            nd__proc_put(q);
        } else if (local) {
            term_free(msg);
        } else {
            int rc = send_remote(self, to, msg);
            if (rc) return rc;
        }
        consume1(self);
        return 0;
    }
    if (term_is_ref(to)) { /* an alias */
        if (nd__ref_is_local(to)) {
            nd__alias_send(to, msg);
        } else {
            int rc = send_remote(self, to, msg);
            if (rc) return rc;
        }
        consume1(self);
        return 0;
    }
    term_t name = to;
    if (term_is_tuple(to) && term_tuple_arity(to) == 2) {
        name = term_tuple_elem(to, 0);
        term_t node = term_tuple_elem(to, 1);
        if (node != nd_node()) {
            int rc = send_remote(self, to, msg);
            if (rc) return rc;
            consume1(self);
            return 0;
        }
    }
    if (!term_is_atom(name)) {
        term_free(msg);
        return ND_EINVAL;
    }
    nd_proc *q = nd__whereis_proc(name);
    if (!q) {
        term_free(msg);
        return ND_ENOTREG;
    }
    nd_sig *s = nd__msg_new(msg);
    if (!s) {
        nd__proc_put(q);
        return ND_ENOMEM;
    }
    if (nd__tracing()) s->tid = nd__ev_send(q, q->pid, s->payload, name);
    if (!nd__push(q, s)) nd__sig_free(s);
    nd__proc_put(q);
    consume1(self);
    return 0;
}

int nd_exit_signal(term_t pid, term_t reason)
{
    nd_proc *self = nd__self();
    if (!term_is_pid(pid)) {
        term_free(reason);
        return ND_EINVAL;
    }
    nd_sig *s = nd__sig_new(SIG_EXIT2);
    if (!s) {
        term_free(reason);
        return ND_ENOMEM;
    }
    s->payload = reason;
    s->from = self ? term_dup(self->pid) : nd__a_undefined;
    nd__send_sig(self, pid, s);
    /* exit(self(), R) takes effect before exit/2 returns */
    if (self && term_equal(pid, self->pid)) nd__drain(self);
    consume1(self);
    return 0;
}

int nd_link(term_t pid)
{
    nd_proc *p = nd__self();
    if (!p) return ND_ENOTPROC;
    if (!term_is_pid(pid)) return ND_EINVAL;
    if (term_equal(pid, p->pid)) return 0;
    nd_rel *r = rel_find(p, REL_LINK, pid, TERM_NONE);
    if (r && !r->unlinking) return 0;
    if (nd__pid_is_local(pid)) {
        nd_proc *q = nd__proc_get(pid);
        nd_sig *s = q ? nd__sig_new(SIG_LINK) : NULL;
        if (s) s->from = term_dup(p->pid);
        if (s && nd__tracing()) ev_signal(s, pid);
        if (s && nd__push(q, s)) {
            if (r)
                r->unlinking = 0;
            else
                rel_add(p, REL_LINK, term_dup(pid), TERM_NONE, TERM_NONE);
            nd__proc_put(q);
            consume1(p);
            return 0;
        }
        if (s) nd__sig_free(s);
        if (q) nd__proc_put(q);
        if (!atomic_load(&p->trap)) return ND_ENOPROC;
        nd_sig *m = nd__msg_new(nd__exit_msg(term_dup(pid), nd__a_noproc));
        if (!m) return ND_ENOMEM;
        nd__drain(p);
        nd__inner_append(p, m);
        nd__count(CNT_MSG_CONV, 1);
        return 0;
    }
    nd_sig *s = nd__sig_new(SIG_LINK);
    if (!s) return ND_ENOMEM;
    s->from = term_dup(p->pid);
    if (r)
        r->unlinking = 0;
    else
        rel_add(p, REL_LINK, term_dup(pid), TERM_NONE, TERM_NONE);
    nd__send_sig(p, pid, s);
    return 0;
}

int nd_unlink(term_t pid)
{
    nd_proc *p = nd__self();
    if (!p) return ND_ENOTPROC;
    if (!term_is_pid(pid)) return ND_EINVAL;
    nd_rel *r = rel_find(p, REL_LINK, pid, TERM_NONE);
    if (!r || r->unlinking) return 0;
    nd_sig *s = nd__sig_new(SIG_UNLINK);
    if (!s) return ND_ENOMEM;
    r->unlinking = s->id = ++p->next_unlink_id;
    s->from = term_dup(p->pid);
    nd__send_sig(p, pid, s);
    consume1(p);
    return 0;
}

int nd_monitor_adopt(term_t owner, term_t target, term_t ref)
{
    if (!term_is_pid(target) || !term_is_ref(ref)) return ND_EINVAL;
    nd_proc *self = nd__self();
    if (self && term_equal(self->pid, owner)) { /* the owner itself: at once */
        if (!rel_find(self, REL_MON, TERM_NONE, ref))
            rel_add(self, REL_MON, term_dup(target), term_dup(ref), term_dup(target));
        return 0;
    }
    nd_proc *q = nd__proc_get(owner);
    if (!q) return ND_ENOPROC;
    nd_sig *s = nd__sig_new(SIG_MON_ADOPT);
    if (!s) {
        nd__proc_put(q);
        return ND_ENOMEM;
    }
    s->from = term_dup(target);
    s->ref = term_dup(ref);
    bool ok = nd__push(q, s);
    nd__proc_put(q);
    if (!ok) {
        nd__sig_free(s);
        return ND_ENOPROC;
    }
    return 0;
}

int nd_monitor(term_t target, term_t *ref_out)
{
    nd_proc *p = nd__self();
    if (!p) return ND_ENOTPROC;
    /* a monitor of a pid keeps no item (rel_item: the pid is what its DOWN names) */
    term_t item = TERM_NONE, pid = TERM_NONE;
    nd_proc *q = NULL;
    if (term_is_pid(target)) {
        pid = term_dup(target);
    } else {
        term_t name = target, node = nd_node();
        if (term_is_tuple(target) && term_tuple_arity(target) == 2) {
            name = term_tuple_elem(target, 0);
            node = term_tuple_elem(target, 1);
        }
        if (!term_is_atom(name) || !term_is_atom(node)) return ND_EINVAL;
        item = term_tuplev(2, name, node);
        if (node == nd_node()) {
            q = nd__whereis_proc(name);
            pid = q ? term_dup(q->pid) : TERM_NONE;
        }
    }
    term_t ref = nd_make_ref();
    nd_sig *s = nd__sig_new(SIG_MONITOR);
    if (!s || ref == TERM_NONE || (item == TERM_NONE && !term_is_pid(target))) {
        if (s) nd__sig_free(s);
        term_free(ref);
        term_free(item);
        term_free(pid);
        if (q) nd__proc_put(q);
        return ND_ENOMEM;
    }
    s->from = term_dup(p->pid);
    s->ref = term_dup(ref);
    s->item = term_dup(item);
    if (pid == TERM_NONE && !term_is_pid(target) && term_tuple_elem(item, 1) == nd_node()) {
        /* unregistered local name: DOWN noproc at once */
        rel_add(p, REL_MON, nd__a_undefined, term_dup(ref), item);
        dead_answer(item, s, nd__a_noproc);
    } else if (pid == TERM_NONE) {
        /* {Name, RemoteNode}: the distribution layer resolves the name */
        rel_add(p, REL_MON, term_dup(item), term_dup(ref), item);
        if (nd__tracing()) ev_signal(s, item);
        dist_out(s, item);
    } else {
        /* the record is added after the signal has gone: an answer (a DOWN from a dead target)
        ** is a signal too, handled at a later drain, so the order does not show */
        nd__send_sig(p, pid, s);
        rel_add(p, REL_MON, pid, term_dup(ref), item);
        pid = TERM_NONE;
    }
    term_free(pid);
    if (q) nd__proc_put(q);
    if (ref_out)
        *ref_out = ref;
    else
        term_free(ref);
    consume1(p);
    return 0;
}

static bool is_down_for(term_t msg, void *ud)
{
    term_t ref = *(term_t *)ud;
    return term_is_tuple(msg) && term_tuple_arity(msg) == 5 &&
           term_tuple_elem(msg, 0) == nd__a_DOWN && nd__same(term_tuple_elem(msg, 1), ref);
}

int nd_demonitor(term_t ref, unsigned flags)
{
    nd_proc *p = nd__self();
    if (!p) return ND_ENOTPROC;
    nd_rel *r = rel_find(p, REL_MON, TERM_NONE, ref);
    int rc = ND_ENOPROC;
    if (r) {
        /* the record's reference goes with the signal */
        term_t to = r->pid, mref = r->ref;
        term_free(r->item);
        rel_detach(p, r);
        nd_sig *s = term_is_pid(to) || term_is_tuple(to) ? nd__sig_new(SIG_DEMONITOR) : NULL;
        nd_proc *q = s && term_is_pid(to) ? nd__proc_get(to) : NULL;
        if (q) {
            /* a live local target reads only the reference (`from` is for distribution and
            ** the trace) */
            s->ref = mref;
            mref = TERM_NONE;
            if (nd__tracing()) {
                s->from = term_dup(p->pid);
                ev_signal(s, to);
            }
            if (!nd__push(q, s)) nd__sig_free(s);
            nd__proc_put(q);
        } else if (s) {
            s->from = term_dup(p->pid);
            s->ref = mref;
            mref = TERM_NONE;
            if (term_is_pid(to)) {
                nd__send_sig(p, to, s);
            } else {
                if (nd__tracing()) ev_signal(s, to);
                dist_out(s, to);
            }
        }
        term_free(to);
        term_free(mref);
        rc = 0;
    }
    if (flags & ND_DEMONITOR_FLUSH) {
        term_t m;
        nd_recv rv = {is_down_for, &ref, NULL, 0, 0, false};
        if (nd_receive_ex(&rv, &m) >= 0) term_free(m);
    }
    return rc;
}

/* ================================================================ introspection */

int nd_process_info(term_t pid, nd_proc_info *info)
{
    memset(info, 0, sizeof *info);
    nd_proc *q = nd__proc_get(pid);
    if (!q) return ND_ENOPROC;
    uint32_t st = atomic_load(&q->state);
    info->status = st == PS_RUNNING                       ? ND_ST_RUNNING
                   : st == PS_RUNNABLE                    ? ND_ST_RUNNABLE
                   : st == PS_WAITING || st == PS_PARKING ? ND_ST_WAITING
                                                          : ND_ST_EXITING;
    /* drained first (acquire): the pushed count is then never below it (see nd__push) */
    uint64_t drained = atomic_load_explicit(&q->drained, memory_order_acquire);
    uint32_t outer =
        ND__PUSHED(atomic_load_explicit(&q->rc, memory_order_relaxed)) - (uint32_t)drained;
    info->message_queue_len = atomic_load_explicit(&q->nmsg, memory_order_relaxed) + outer;
    info->reductions = atomic_load_explicit(&q->total_reds, memory_order_relaxed);
    info->trap_exit = atomic_load(&q->trap);
    term_t name = atomic_load(&q->name);
    info->registered_name = name;
    info->stack_size = atomic_load_explicit(&q->held_stack, memory_order_relaxed);
    info->stack_parked = atomic_load_explicit(&q->parked, memory_order_relaxed) != NULL;
    term_t links = TERM_NIL, mons = TERM_NIL, monby = TERM_NIL;
    size_t nl = 0, nm = 0, nb = 0;
    nd__spin_lock(&q->lock);
    for (nd_rel *r = q->rels; r; r = r->next) {
        if (r->type == REL_LINK && !r->unlinking) {
            links = term_cons(term_dup(r->pid), links);
            nl++;
        } else if (r->type == REL_MON) {
            mons = term_cons(term_dup(rel_item(r)), mons);
            nm++;
        } else if (r->type == REL_MONBY && !r->gone) {
            monby = term_cons(term_dup(r->pid), monby);
            nb++;
        }
    }
    nd__spin_unlock(&q->lock);
    info->links = links;
    info->monitors = mons;
    info->monitored_by = monby;
    info->nlinks = nl;
    info->nmonitors = nm;
    info->nmonitored_by = nb;
    info->message_queue_hwm = atomic_load_explicit(&q->mbox_hwm, memory_order_relaxed);
    if (info->message_queue_hwm < info->message_queue_len)
        info->message_queue_hwm = info->message_queue_len;
    info->messages_dropped = atomic_load_explicit(&q->mbox_dropped, memory_order_relaxed);
    uint32_t lim = atomic_load_explicit(&q->mbox_limit, memory_order_relaxed);
    info->mailbox_limit = lim == UINT32_MAX ? ND_MBOX_UNLIMITED : lim;
    info->mailbox_policy = atomic_load_explicit(&q->mbox_policy, memory_order_relaxed);
    info->memory = sizeof(nd_proc) + info->stack_size + info->message_queue_len * ND__MSG_NODE +
                   (nl + nm + nb) * sizeof(nd_rel);
    nd__proc_put(q);
    return 0;
}

void nd_proc_info_free(nd_proc_info *info)
{
    term_free(info->links);
    term_free(info->monitors);
    term_free(info->monitored_by);
    info->links = info->monitors = info->monitored_by = TERM_NONE;
}

/* Debugging aid (call it from a debugger): one line per live process, the timers, the queues. */
void nd__debug_dump(void);
void nd__debug_dump(void)
{
    uint64_t now = nd__now();
    fprintf(stderr, "now=%llu timers_next=%llu live=%zu gq=%zu nidle=%u\n", (unsigned long long)now,
            (unsigned long long)nd__timers_next(), atomic_load(&nd__rt.live),
            atomic_load(&nd__rt.gq_count), atomic_load(&nd__rt.nidle));
    for (unsigned i = 0; i < nd__rt.nsched; i++) {
        nd_sched *s = &nd__rt.scheds[i];
        fprintf(stderr, "sched %u parked=%d rq=%u cur=%u\n", i, atomic_load(&s->parked),
                atomic_load(&s->rq.tail) - atomic_load(&s->rq.head), atomic_load(&s->cur_id));
    }
    for (uint32_t id = 1; id < nd__rt.next_id; id++) {
        nd_proc *p = nd__proc_slot(id);
        if (!p || ND__REFS(atomic_load(&p->rc)) == 0) continue;
        fprintf(stderr,
                "proc %u.%u refs=%u state=%u why=%u tmo_idx=%d deadline_in=%lld outer=%p "
                "inner=%zu stack=%p trap=%d\n",
                id, atomic_load(&p->serial), ND__REFS(atomic_load(&p->rc)), atomic_load(&p->state),
                p->why, p->tmo.idx,
                p->tmo.deadline == ND__NO_DEADLINE ? -1LL : (long long)(p->tmo.deadline - now),
                (void *)atomic_load(&p->outer), atomic_load(&p->nmsg), (void *)p->stack,
                (int)atomic_load(&p->trap));
    }
}
