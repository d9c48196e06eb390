/* Timers: one binary heap (receive timeouts and send_after) under a mutex; fired by schedulers. */
#include "nd_int.h"

static pthread_mutex_t t_mu = PTHREAD_MUTEX_INITIALIZER;
static nd_tmr **t_heap;
static size_t t_len, t_cap;
static _Atomic uint64_t t_next = ND__NO_DEADLINE;
/* send_after timers by id: open addressing, linear probing, tombstones. */
static nd_tmr **t_map;
static size_t t_map_cap, t_map_used;
static uint64_t t_next_id = 1;
#define TOMB ((nd_tmr *)(uintptr_t)1)

static void heap_set(size_t i, nd_tmr *t)
{
    t_heap[i] = t;
    t->idx = (int32_t)i;
}

static void sift_up(size_t i)
{
    nd_tmr *t = t_heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (t_heap[parent]->deadline <= t->deadline) break;
        heap_set(i, t_heap[parent]);
        i = parent;
    }
    heap_set(i, t);
}

static void sift_down(size_t i)
{
    nd_tmr *t = t_heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= t_len) break;
        if (c + 1 < t_len && t_heap[c + 1]->deadline < t_heap[c]->deadline) c++;
        if (t->deadline <= t_heap[c]->deadline) break;
        heap_set(i, t_heap[c]);
        i = c;
    }
    heap_set(i, t);
}

static void update_next(void)
{
    atomic_store(&t_next, t_len ? t_heap[0]->deadline : ND__NO_DEADLINE);
}

static int heap_insert_locked(nd_tmr *t)
{
    if (t_len == t_cap) {
        size_t ncap = t_cap ? t_cap * 2 : 64;
        nd_tmr **n = realloc(t_heap, ncap * sizeof *n);
        if (!n) return ND_ENOMEM;
        t_heap = n;
        t_cap = ncap;
    }
    t_heap[t_len] = t;
    t->idx = (int32_t)t_len;
    t_len++;
    sift_up(t_len - 1);
    return 0;
}

static void heap_remove_locked(nd_tmr *t)
{
    size_t i = (size_t)t->idx;
    t->idx = -1;
    t_len--;
    if (i == t_len) return;
    nd_tmr *m = t_heap[t_len];
    heap_set(i, m);
    sift_down(i);
    if ((size_t)m->idx == i) sift_up(i);
}

void nd__timers_init(void)
{
    t_len = 0;
    atomic_store(&t_next, ND__NO_DEADLINE);
}

uint64_t nd__timers_next(void)
{
    return atomic_load_explicit(&t_next, memory_order_acquire);
}

/*
** Arms the pending receive timeouts among ps[0..n) under one lock. PENDING -> ARMED and the
** insertion happen together under t_mu, so an owner that ends its wait (exchanging the state
** to IDLE) either sees PENDING (nothing in the heap, nothing to do) or ARMED (and finds the
** timer in the heap once it has the lock). A process that is PENDING waits with tmo.deadline
** set and does not touch it until it has taken the state back: arming it from anywhere, even
** through a stale pointer, arms exactly its current wait.
*/
void nd__timers_arm(nd_proc *const *ps, unsigned n)
{
    bool earliest = false;
    uint64_t now = 0;
    pthread_mutex_lock(&t_mu);
    for (unsigned i = 0; i < n; i++) {
        nd_tmr *t = &ps[i]->tmo;
        uint8_t st = TMO_PENDING;
        if (!atomic_compare_exchange_strong(&t->arm, &st, TMO_ARMED)) continue;
        if (t->rel) { /* a relative timeout starts now */
            if (!now) now = nd__now();
            t->deadline = now + t->rel;
        }
        earliest |= t_len == 0 || t->deadline < t_heap[0]->deadline;
        if (heap_insert_locked(t) != 0) {
            pthread_mutex_unlock(&t_mu);
            abort(); /* the waiter would sleep forever */
        }
    }
    update_next();
    pthread_mutex_unlock(&t_mu);
    /* On a scheduler thread, that scheduler looks at the timers before it next parks (and the
    ** watchdog nudges parked schedulers when a deadline passes); waking an idle one here would
    ** make it steal work. From the watchdog, a parked scheduler may have to wake earlier. */
    if (earliest && !nd__sched_get()) nd__wake_timer_owner();
}

/* An armed receive timeout that is out of the heap while its owner has not resumed yet was
** taken out by nd__timers_fire: it fired. */
bool nd__timer_fired(nd_tmr *t)
{
    if (atomic_load(&t->arm) != TMO_ARMED) return false;
    pthread_mutex_lock(&t_mu);
    bool fired = t->idx < 0;
    pthread_mutex_unlock(&t_mu);
    return fired;
}

void nd__timer_remove(nd_tmr *t)
{
    pthread_mutex_lock(&t_mu);
    if (t->idx >= 0) {
        heap_remove_locked(t);
        update_next();
    }
    pthread_mutex_unlock(&t_mu);
}

/* ---------------------------------------------------------------- id map */

static size_t map_slot(uint64_t id)
{
    return (size_t)(id * 0x9e3779b97f4a7c15ULL) & (t_map_cap - 1);
}

static int map_put(nd_tmr *t)
{
    if ((t_map_used + 1) * 2 > t_map_cap) {
        size_t ncap = t_map_cap ? t_map_cap * 2 : 64;
        nd_tmr **n = calloc(ncap, sizeof *n);
        if (!n) return ND_ENOMEM;
        nd_tmr **old = t_map;
        size_t ocap = t_map_cap;
        t_map = n;
        t_map_cap = ncap;
        t_map_used = 0;
        for (size_t i = 0; i < ocap; i++)
            if (old[i] && old[i] != TOMB) {
                size_t j = map_slot(old[i]->id);
                while (t_map[j]) j = (j + 1) & (t_map_cap - 1);
                t_map[j] = old[i];
                t_map_used++;
            }
        free(old);
    }
    size_t j = map_slot(t->id);
    while (t_map[j] && t_map[j] != TOMB) j = (j + 1) & (t_map_cap - 1);
    if (!t_map[j]) t_map_used++;
    t_map[j] = t;
    return 0;
}

static nd_tmr *map_take(uint64_t id)
{
    if (!t_map_cap) return NULL;
    size_t j = map_slot(id);
    while (t_map[j]) {
        if (t_map[j] != TOMB && t_map[j]->id == id) {
            nd_tmr *t = t_map[j];
            t_map[j] = TOMB;
            return t;
        }
        j = (j + 1) & (t_map_cap - 1);
    }
    return NULL;
}

/* ---------------------------------------------------------------- send_after */

int nd_send_after(int64_t ms, term_t dest, term_t msg, nd_timer_t *timer)
{
    if (ms < 0 || !(term_is_pid(dest) || term_is_atom(dest))) {
        term_free(msg);
        return ND_EINVAL;
    }
    nd_tmr *t = calloc(1, sizeof *t);
    if (!t) {
        term_free(msg);
        return ND_ENOMEM;
    }
    t->kind = TMR_SEND;
    t->deadline = nd__deadline(ms);
    t->dest = term_dup(dest);
    t->msg = msg;
    pthread_mutex_lock(&t_mu);
    t->id = t_next_id++;
    bool earliest = t_len == 0 || t->deadline < t_heap[0]->deadline;
    int rc = map_put(t);
    if (rc == 0 && (rc = heap_insert_locked(t)) != 0) map_take(t->id);
    if (rc == 0) update_next();
    pthread_mutex_unlock(&t_mu);
    if (rc != 0) {
        term_free(t->dest);
        term_free(t->msg);
        free(t);
        return rc;
    }
    if (timer) *timer = t->id;
    if (earliest && !nd__sched_get()) nd__wake_timer_owner();
    return 0;
}

int64_t nd_cancel_timer(nd_timer_t timer)
{
    pthread_mutex_lock(&t_mu);
    nd_tmr *t = map_take(timer);
    if (t && t->idx >= 0) {
        heap_remove_locked(t);
        update_next();
    }
    pthread_mutex_unlock(&t_mu);
    if (!t) return ND_ENOTIMER;
    uint64_t now = nd__now();
    int64_t left = t->deadline > now ? (int64_t)((t->deadline - now) / 1000000u) : 0;
    term_free(t->dest);
    term_free(t->msg);
    free(t);
    return left;
}

/*
** Pops every timer due at `now`. Receive timeouts wake their process (if it still waits);
** send_after timers are taken out of the id map (ownership) and delivered outside the lock.
*/
int nd__timers_fire(uint64_t now)
{
    nd_tmr *sends = NULL;
    int n = 0;
    pthread_mutex_lock(&t_mu);
    while (t_len && t_heap[0]->deadline <= now) {
        nd_tmr *t = t_heap[0];
        heap_remove_locked(t);
        n++;
        if (t->kind == TMR_RECV) {
            uint32_t st = PS_WAITING;
            if (nd__tracing())
                nd__ev(ND_EV_TIMER, ND_TIMER_RECEIVE, t->proc->pid, TERM_NONE, 0, 0, TERM_NONE);
            if (atomic_compare_exchange_strong(&t->proc->state, &st, PS_RUNNABLE))
                nd__enqueue(t->proc);
        } else if (map_take(t->id)) {
            if (nd__tracing())
                nd__ev(ND_EV_TIMER, ND_TIMER_SEND, TERM_NONE, t->dest, 0, t->id, TERM_NONE);
            t->proc = (nd_proc *)sends; /* reuse as a list link */
            sends = t;
        }
    }
    update_next();
    pthread_mutex_unlock(&t_mu);
    while (sends) {
        nd_tmr *t = sends;
        sends = (nd_tmr *)t->proc;
        nd_send(t->dest, t->msg);
        term_free(t->dest);
        free(t);
    }
    return n;
}

void nd__timers_destroy(void)
{
    pthread_mutex_lock(&t_mu);
    for (size_t i = 0; i < t_len; i++) {
        nd_tmr *t = t_heap[i];
        if (t->kind == TMR_SEND) {
            term_free(t->dest);
            term_free(t->msg);
            free(t);
        }
    }
    free(t_heap);
    free(t_map);
    t_heap = NULL;
    t_map = NULL;
    t_len = t_cap = t_map_cap = t_map_used = 0;
    update_next();
    pthread_mutex_unlock(&t_mu);
}
