/* Scheduler threads: run queues with work stealing, parking, reductions, runtime start/stop. */
#include "nd_int.h"
#include <sched.h>
#include <time.h>
#include <unistd.h>

nd_runtime nd__rt;
ND__TLS nd_sched *nd__cur_sched;

__attribute__((noinline)) nd_sched *nd__sched_get(void)
{
    nd_sched *s = nd__cur_sched;
    __asm__ volatile("" ::: "memory");
    return s;
}

uint64_t nd__now(void)
{
    return nd__rt.plat->now_ns(nd__rt.plat->ud);
}

uint64_t nd__deadline(int64_t timeout_ms)
{
    if (timeout_ms < 0) return ND__NO_DEADLINE;
    return nd__now() + (uint64_t)timeout_ms * 1000000u;
}

/* ================================================================ run queues */

/*
** A fixed ring owned by one scheduler (Go's runq): only the owner pushes (tail); the owner and
** thieves take from the head with a CAS. Slots are atomics so thieves may read them racily.
*/
/* Returns the queue's length with p in it (as the owner sees it), or 0 if it is full. */
static inline uint32_t rq_push(nd_runq *q, nd_proc *p)
{
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    if (t - h >= ND__RQ_SIZE) return 0;
    atomic_store_explicit(&q->buf[t % ND__RQ_SIZE], p, memory_order_relaxed);
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    return t + 1 - h;
}

static inline nd_proc *rq_pop(nd_runq *q)
{
    for (;;) {
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        if (t == h) return NULL;
        nd_proc *p = atomic_load_explicit(&q->buf[h % ND__RQ_SIZE], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + 1, memory_order_release,
                                                  memory_order_relaxed))
            return p;
    }
}

static uint32_t rq_len(nd_runq *q)
{
    uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
    return t - h;
}

/* Takes up to half of q's entries into out[]; returns how many. */
static uint32_t rq_grab(nd_runq *q, nd_proc **out)
{
    for (;;) {
        uint32_t h = atomic_load_explicit(&q->head, memory_order_acquire);
        uint32_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
        uint32_t n = t - h;
        n = n - n / 2;
        if (n == 0 || n > ND__RQ_SIZE / 2) {
            if (n == 0) return 0;
            continue; /* inconsistent snapshot */
        }
        for (uint32_t i = 0; i < n; i++)
            out[i] = atomic_load_explicit(&q->buf[(h + i) % ND__RQ_SIZE], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&q->head, &h, h + n, memory_order_acq_rel,
                                                  memory_order_relaxed))
            return n;
    }
}

/* ================================================================ global queue */

/*
** The global queue is a ring under a mutex, shared by every scheduler: it is entered once per
** batch, not once per process. A local queue that overflows spills half of itself in one push,
** and a scheduler that takes from it takes a share of what is there into its own queue (as Go's
** globrunqget does), so a burst of spawns beyond a local queue's 256 slots costs a lock pair per
** batch instead of two per process.
*/
static void gq_push_n(nd_proc *const *ps, size_t n)
{
    pthread_mutex_lock(&nd__rt.gq_mu);
    if (nd__rt.gq_len + n > nd__rt.gq_cap) {
        size_t ncap = nd__rt.gq_cap ? nd__rt.gq_cap * 2 : 256;
        while (ncap < nd__rt.gq_len + n) ncap *= 2;
        nd_proc **q = malloc(ncap * sizeof *q);
        if (!q) abort(); /* cannot lose a runnable process */
        for (size_t i = 0; i < nd__rt.gq_len; i++)
            q[i] = nd__rt.gq[(nd__rt.gq_head + i) % nd__rt.gq_cap];
        free(nd__rt.gq);
        nd__rt.gq = q;
        nd__rt.gq_head = 0;
        nd__rt.gq_cap = ncap;
    }
    for (size_t i = 0; i < n; i++)
        nd__rt.gq[(nd__rt.gq_head + nd__rt.gq_len + i) % nd__rt.gq_cap] = ps[i];
    nd__rt.gq_len += n;
    atomic_store(&nd__rt.gq_count, nd__rt.gq_len);
    pthread_mutex_unlock(&nd__rt.gq_mu);
}

static void gq_push(nd_proc *p)
{
    gq_push_n(&p, 1);
}

/* Takes one process from the global queue for s to run, and moves a share of the rest (its
** length divided among the schedulers, at most what fits) into s's local queue. */
static nd_proc *gq_pop(nd_sched *s)
{
    if (atomic_load_explicit(&nd__rt.gq_count, memory_order_relaxed) == 0) return NULL;
    nd_proc *p = NULL;
    pthread_mutex_lock(&nd__rt.gq_mu);
    if (nd__rt.gq_len) {
        size_t n = nd__rt.gq_len / nd__rt.nsched + 1, room = ND__RQ_SIZE / 2 - rq_len(&s->rq);
        if (room > ND__RQ_SIZE / 2) room = 0; /* (a thief's view of the length may be stale) */
        if (n > nd__rt.gq_len) n = nd__rt.gq_len;
        if (n > room + 1) n = room + 1;
        p = nd__rt.gq[nd__rt.gq_head];
        for (size_t i = 1; i < n; i++) /* fits: s's queue was at most half full */
            rq_push(&s->rq, nd__rt.gq[(nd__rt.gq_head + i) % nd__rt.gq_cap]);
        nd__rt.gq_head = (nd__rt.gq_head + n) % nd__rt.gq_cap;
        nd__rt.gq_len -= n;
        atomic_store(&nd__rt.gq_count, nd__rt.gq_len);
    }
    pthread_mutex_unlock(&nd__rt.gq_mu);
    return p;
}

/* ================================================================ waking */

static void idle_call(int what);
#define ND__LONG_TURN_NS 50000u
enum { IDLE_WAKE, IDLE_GIVE_BACK };

/* Wakes o where it sleeps: on its parker, or in the idle poller (in_poll is published before
** o's parked flag, so whoever took that flag from o sees it). */
static void sched_unpark(nd_sched *o)
{
    if (atomic_load(&o->in_poll))
        idle_call(IDLE_WAKE);
    else
        nd__rt.plat->unpark(nd__rt.plat->ud, o->parker);
}

/*
** Unparks one parked scheduler, if any. Parking publishes `parked` and bumps `nidle` before its
** last look for work; a waker publishes work before it looks at `nidle`: one of the two sees
** the other.
*/
static void wake_idle(void)
{
    /* spinning schedulers will see the work (they look again when they stop spinning): wake
    ** a parked one only for more global work than there are spinners */
    unsigned spinning = atomic_load(&nd__rt.nspin);
    if (spinning > 0 && atomic_load(&nd__rt.gq_count) <= spinning) return;
    if (atomic_load(&nd__rt.nidle) == 0) return;
    for (unsigned i = 0; i < nd__rt.nsched; i++) {
        nd_sched *o = &nd__rt.scheds[i];
        int one = 1;
        if (atomic_load_explicit(&o->parked, memory_order_relaxed) == 1 &&
            atomic_compare_exchange_strong(&o->parked, &one, 0)) {
            atomic_fetch_sub(&nd__rt.nidle, 1);
            sched_unpark(o);
            return;
        }
    }
}

/* A timer armed from outside the schedulers may be earlier than every parked deadline. */
void nd__wake_timer_owner(void)
{
    wake_idle();
}

/*
** Makes a runnable process (state already PS_RUNNABLE) visible to a scheduler: the caller's own
** queue when called on a scheduler thread (locality: the ring stays on one core), else the
** global queue. Idle schedulers are woken only when there is surplus work.
*/
void nd__enqueue_on(nd_sched *s, nd_proc *p)
{
    if (s) {
        uint32_t len = rq_push(&s->rq, p);
        if (ND__UNLIKELY(!len)) {
            nd_proc *half[ND__RQ_SIZE / 2];
            uint32_t n = rq_grab(&s->rq, half);
            gq_push_n(half, n);
            if (!rq_push(&s->rq, p)) gq_push(p);
            wake_idle();
            return;
        }
        /* a second runnable process, or one made runnable deep in a long handling of I/O
        ** (idle poller): an idle scheduler may take it rather than wait behind */
        if (len >= 2 ||
            (ND__UNLIKELY(s->turn_since) && nd__now() - s->turn_since > ND__LONG_TURN_NS))
            wake_idle();
        return;
    }
    gq_push(p);
    wake_idle();
}

void nd__enqueue(nd_proc *p)
{
    nd__enqueue_on(nd__sched_get(), p);
}

void nd__make_runnable_on(nd_sched *s, nd_proc *p)
{
    uint32_t st = atomic_load(&p->state);
    if (st == PS_WAITING && atomic_compare_exchange_strong(&p->state, &st, PS_RUNNABLE))
        nd__enqueue_on(s, p);
}

void nd__make_runnable(nd_proc *p)
{
    nd__make_runnable_on(nd__sched_get(), p);
}

/* ================================================================ switching */

/*
** A wait with a deadline does not put its timeout in the timer heap (a lock, a sift, and the same
** again to take it out): most such waits (a server call's reply) end before their scheduler
** next passes through its loop. The process is listed on its scheduler as PENDING; the loop
** arms what is still waiting before it looks at timers, runs the next process from the loop, or
** parks, and the watchdog arms the list of a scheduler stuck in one slice, so a timeout is late
** by at most one pass of its scheduler's loop. A full list arms at once.
*/
static __attribute__((noinline)) uint64_t wait_timed(nd_proc *p, uint64_t deadline, uint64_t rel_ns)
{
    p->tmo.rel = rel_ns;
    if (rel_ns) deadline = 0; /* set when armed */
    p->tmo.deadline = deadline;
    /* release: the deadline is written before anyone can see PENDING */
    atomic_store_explicit(&p->tmo.arm, TMO_PENDING, memory_order_release);
    nd_sched *s = nd__sched_get();
    unsigned n = atomic_load_explicit(&s->nlazy, memory_order_relaxed);
    if (n < ND__LAZY_MAX) {
        atomic_store_explicit(&s->lazy[n], p, memory_order_relaxed);
        atomic_store_explicit(&s->nlazy, n + 1, memory_order_release);
    } else {
        nd__timers_arm(&p, 1);
    }
    nd__switch_out(p, WHY_WAIT);
    if (atomic_exchange_explicit(&p->tmo.arm, TMO_IDLE, memory_order_acq_rel) == TMO_ARMED) {
        nd__timer_remove(&p->tmo); /* its lock orders the armer's write of the deadline */
        deadline = p->tmo.deadline;
    } else if (rel_ns) {
        deadline = ND__NO_DEADLINE; /* ended before its timeout started */
    }
    p->tmo.deadline = ND__NO_DEADLINE;
    p->tmo.rel = 0;
    p->reds = (int32_t)nd__rt.cfg.reductions;
    return deadline;
}

uint64_t nd__wait(nd_proc *p, uint64_t deadline, uint64_t rel_ns)
{
    if (deadline != ND__NO_DEADLINE || rel_ns) return wait_timed(p, deadline, rel_ns);
    nd__switch_out(p, WHY_WAIT); /* no timeout: tmo stays idle */
    p->reds = (int32_t)nd__rt.cfg.reductions;
    return ND__NO_DEADLINE;
}

/* Arms the timeouts listed on s whose processes still wait (a process that was woken will call
** nd__wait again if it has to wait on). from_owner: s's own thread, which then empties the list;
** the watchdog only arms (stale entries are harmless: see nd__timers_arm). */
static void arm_lazy(nd_sched *s, bool from_owner)
{
    unsigned n = atomic_load_explicit(&s->nlazy, memory_order_acquire), k = 0;
    if (n > ND__LAZY_MAX) n = ND__LAZY_MAX;
    nd_proc *w[ND__LAZY_MAX];
    for (unsigned i = 0; i < n; i++) {
        nd_proc *p = atomic_load_explicit(&s->lazy[i], memory_order_relaxed);
        uint32_t st = p ? atomic_load_explicit(&p->state, memory_order_relaxed) : 0;
        /* PS_PARKING waits too (stack.c): its timeout must be armed now, since the owner
        ** empties the list; one that fires while it parks is seen when it is published */
        if (p && (st == PS_WAITING || st == PS_PARKING) &&
            atomic_load_explicit(&p->tmo.arm, memory_order_relaxed) == TMO_PENDING)
            w[k++] = p;
    }
    if (from_owner) atomic_store_explicit(&s->nlazy, 0, memory_order_relaxed);
    if (k) nd__timers_arm(w, k);
}

void nd_yield(void)
{
    nd_proc *p = nd__self();
    if (!p) {
        sched_yield();
        return;
    }
    nd__switch_out(p, WHY_YIELD);
    p->reds = (int32_t)nd__rt.cfg.reductions;
    nd__drain(p);
}

void nd_consume(unsigned n)
{
    nd_proc *p = nd__self();
    if (!p) return;
    p->reds -= (int32_t)n;
    if (p->reds <= 0) nd_yield();
}

/* Reports a process that has held a scheduler for too long (called by the watchdog). */
static void report_long(unsigned sched, uint32_t id, uint32_t serial, uint64_t dur)
{
    atomic_fetch_add(&nd__rt.st_long, 1);
    if (nd__tracing()) nd__ev_sched(ND_EV_LONG_SCHEDULE, sched, id, serial, dur);
    if (nd__rt.cfg.long_schedule) {
        term_t pid = term_pid(nd_node(), id, serial, nd_creation());
        nd__rt.cfg.long_schedule(pid, dur, nd__rt.cfg.long_schedule_ud);
        term_free(pid);
        return;
    }
    nd__log(ND_LOG_WARNING, "event=long_schedule pid=<0.%u.%u> duration_ms=%llu", id, serial,
            (unsigned long long)(dur / 1000000u));
}

/*
** The watchdog samples every scheduler every few milliseconds; a slice that is still the same
** after long_schedule_ms is reported once, with the pid and how long it has run so far. Keeping
** the clock out of the scheduling path makes each slice cheaper.
*/
static void *watchdog_main(void *arg)
{
    unsigned n = nd__rt.nsched;
    uint64_t *seen_seq = calloc(n, sizeof *seen_seq), *since = calloc(n, sizeof *since);
    bool *reported = calloc(n, sizeof *reported);
    uint64_t limit = nd__rt.cfg.long_schedule_ms * 1000000u;
    uint64_t period = limit / 4 ? limit / 4 : 1000000u;
    if (period > 10000000u) period = 10000000u;
    if (nd__rt.park_ns && period > nd__rt.park_ns) period = nd__rt.park_ns;
    uint64_t next_park = nd__now() + nd__rt.park_ns;
    while (seen_seq && since && reported && !atomic_load(&nd__rt.stopping_threads)) {
        uint64_t now = nd__now();
        for (unsigned i = 0; i < n; i++) {
            nd_sched *s = &nd__rt.scheds[i];
            uint64_t seq = atomic_load_explicit(&s->slice_seq, memory_order_relaxed);
            uint32_t id = atomic_load_explicit(&s->cur_id, memory_order_relaxed);
            if (seq != seen_seq[i] || id == 0) {
                seen_seq[i] = seq;
                since[i] = now;
                reported[i] = false;
            } else {
                arm_lazy(s, false); /* stuck in one slice since the last look */
                if (!reported[i] && now - since[i] >= limit) {
                    reported[i] = true;
                    report_long(i, id, atomic_load_explicit(&s->cur_serial, memory_order_relaxed),
                                now - since[i]);
                }
            }
        }
        uint64_t nt = nd__timers_next();
        if (nt != ND__NO_DEADLINE && nd__now() >= nt) wake_idle(); /* a due timer nobody fires */
        nd__obs_tick();
        nd__stack_release_pending();
        if (nd__rt.park_ns && nd__now() >= next_park) {
            nd__park_sweep();
            next_park = nd__now() + nd__rt.park_ns;
        }
        nd__rt.plat->park(nd__rt.plat->ud, nd__rt.watchdog_parker, nd__now() + period);
    }
    free(seen_seq);
    free(since);
    free(reported);
    return NULL;
}

/* prepare() for a process without a stack: a parked one gets its own back, a new or
** hibernated one a fresh one. */
static __attribute__((noinline)) bool prepare_stack(nd_sched *s, nd_proc *p)
{
    if (atomic_load_explicit(&p->parked, memory_order_relaxed)) {
        nd__stack_unpark(p);
        return true;
    }
    nd_stack *st = nd__stack_get(s, p->stack_size);
    if (!st) {
        atomic_store(&p->state, PS_RUNNABLE);
        gq_push(p);
        return false;
    }
    p->stack = st;
    atomic_store_explicit(&p->held_stack, st->size, memory_order_relaxed);
    nd__ctx_make(&p->ctx, st->lo, st->size, nd__proc_start, p);
    return true;
}

/*
** Makes p the running process of s: state, budget, watchdog info, and a stack if it has none
** (fresh context at nd__proc_start). false when no stack could be had (p goes to the global
** queue to be tried later). Inline: it runs once per process switch (see nd__switch_out).
*/
static inline bool prepare(nd_sched *s, nd_proc *p)
{
    atomic_store_explicit(&p->state, PS_RUNNING, memory_order_relaxed);
    p->reds = (int32_t)nd__rt.cfg.reductions;
    if (ND__UNLIKELY(!p->stack) && !prepare_stack(s, p)) return false;
    s->current = p;
    p->sched_idx = s->idx;
    atomic_store_explicit(&s->cur_serial, atomic_load_explicit(&p->serial, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&s->cur_id, p->id, memory_order_relaxed);
    atomic_store_explicit(&s->slice_seq,
                          atomic_load_explicit(&s->slice_seq, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&s->switches,
                          atomic_load_explicit(&s->switches, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    if (nd__tracing()) nd__evp(ND_EV_SCHED_IN, 0, p, 0, 0);
    return true;
}

/*
** Carries out what the process that just switched away (s->prev) asked for. Runs first thing
** wherever the switch landed (scheduler loop, another process, a new process), because only
** once p's context is saved may p be published as waiting or runnable, or its stack freed.
*/
static inline __attribute__((always_inline)) void finish_prev(nd_sched *s)
{
    nd_proc *p = s->prev;
    if (!p) return;
    s->prev = NULL;
    switch (p->why) {
    case WHY_YIELD:
        atomic_store(&p->state, PS_RUNNABLE);
        if (!rq_push(&s->rq, p)) gq_push(p);
        break;
    case WHY_HIBERNATE:
    case WHY_WAIT: {
        /* read before publishing WAITING: from then on p may run elsewhere */
        bool timed = p->why == WHY_WAIT;
        /* a hibernating process wakes for any message, also one its last drain brought in */
        bool pending = false;
        if (p->why == WHY_HIBERNATE) {
            nd__ctx_release(&p->ctx);
            nd__stack_put(s, p->stack);
            p->stack = NULL;
            atomic_store_explicit(&p->held_stack, 0, memory_order_relaxed);
            pending = p->in_head != NULL;
        }
        atomic_store(&p->state, PS_WAITING);
        /* Dekker with senders: they push then look at the state; we publish WAITING then look
        ** at the queue (both seq_cst), so one of us sees the other. The same with a timeout
        ** armed early (a full lazy list, the watchdog): one that fired while p was still
        ** running could not wake it. A timeout armed later wakes p itself (no clock read). */
        if (pending || atomic_load(&p->outer) != NULL ||
            (timed && atomic_load(&p->tmo.arm) == TMO_ARMED && nd__timer_fired(&p->tmo))) {
            uint32_t st = PS_WAITING;
            if (atomic_compare_exchange_strong(&p->state, &st, PS_RUNNABLE))
                if (!rq_push(&s->rq, p)) gq_push(p);
        }
        /* the sweeps that park idle stacks (stack.c) hear of a wait only when they must */
        if (timed && ND__UNLIKELY(atomic_load(&p->park_mark) != PM_WAITED)) nd__park_note(s, p);
        break;
    }
    case WHY_EXIT:
        nd__ctx_release(&p->ctx);
        nd__stack_put(s, p->stack);
        p->stack = NULL;
        atomic_store_explicit(&p->held_stack, 0, memory_order_relaxed);
        nd__proc_put(p);
        break;
    }
}

void nd__finish_prev(nd_sched *s)
{
    finish_prev(s);
}

/* How many process-to-process switches a scheduler makes before passing through its loop
** (timers, the global queue, stealing). */
#define ND__DIRECT_MAX 64

/*
** Switches the running process p out with a request. When the local queue has a runnable
** process, switches straight to it (one switch instead of two through the scheduler); the
** landing side finishes p's request.
*/
void nd__switch_out(nd_proc *p, int why)
{
    nd_sched *s = nd__sched_get();
    p->why = (uint8_t)why;
    int32_t used = (int32_t)nd__rt.cfg.reductions - p->reds;
    /* only the scheduler running p writes this: no locked add needed */
    if (used > 0) {
        atomic_store_explicit(&p->total_reds,
                              atomic_load_explicit(&p->total_reds, memory_order_relaxed) +
                                  (uint64_t)used,
                              memory_order_relaxed);
        atomic_store_explicit(&s->reds,
                              atomic_load_explicit(&s->reds, memory_order_relaxed) + (uint64_t)used,
                              memory_order_relaxed);
    }
    bool dying = why == WHY_EXIT || why == WHY_HIBERNATE;
    if (nd__tracing()) {
        static const uint8_t out[] = {0, ND_OUT_YIELD, ND_OUT_WAIT, ND_OUT_HIBERNATE, ND_OUT_EXIT};
        int o = why == WHY_YIELD && p->reds <= 0 ? ND_OUT_BUDGET : out[why];
        nd__evp(ND_EV_SCHED_OUT, o, p, used > 0 ? (uint64_t)used : 0, 0);
    }
    s->prev = p;
    nd_proc *next = NULL;
    while (s->direct < ND__DIRECT_MAX && (next = rq_pop(&s->rq)) != NULL && !prepare(s, next))
        next = NULL;
    if (next) {
        s->direct++;
        nd__ctx_switch(&p->ctx, &next->ctx, dying);
    } else {
        s->current = NULL;
        atomic_store_explicit(&s->cur_id, 0, memory_order_relaxed);
        nd__ctx_switch(&p->ctx, &s->ctx, dying);
    }
    finish_prev(nd__sched_get());
}

/* Runs p (and whatever it switches to directly) until control comes back to the loop. */
static void run(nd_sched *s, nd_proc *p)
{
    if (!prepare(s, p)) return;
    s->direct = 0;
    nd__ctx_switch(&s->ctx, &p->ctx, false);
    finish_prev(s);
}

static nd_proc *steal(nd_sched *s)
{
    unsigned n = nd__rt.nsched;
    if (n < 2) return NULL;
    s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    unsigned start = (unsigned)(s->rng >> 33) % n;
    for (unsigned k = 0; k < n; k++) {
        nd_sched *v = &nd__rt.scheds[(start + k) % n];
        if (v == s || rq_len(&v->rq) == 0) continue;
        nd_proc *got[ND__RQ_SIZE / 2];
        uint32_t g = rq_grab(&v->rq, got);
        if (!g) continue;
        atomic_store_explicit(&s->steals,
                              atomic_load_explicit(&s->steals, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        if (nd__tracing())
            nd__ev(ND_EV_STEAL, 0, TERM_NONE, TERM_NONE, g, (uint64_t)(v - nd__rt.scheds),
                   TERM_NONE);
        uint32_t i = 1;
        while (i < g && rq_push(&s->rq, got[i])) i++;
        if (i < g) gq_push_n(got + i, g - i);
        return got[0];
    }
    return NULL;
}

static bool work_visible(nd_sched *s)
{
    if (atomic_load(&nd__rt.gq_count)) return true;
    for (unsigned i = 0; i < nd__rt.nsched; i++)
        if (rq_len(&nd__rt.scheds[i].rq)) return true;
    uint64_t nt = nd__timers_next();
    return nt != ND__NO_DEADLINE && nd__now() >= nt;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/*
** Charges the time since the scheduler's last change of state to that state and enters `st`
** (msacc-like accounting, nd_metrics_get). Called only where the clock is read anyway or the
** scheduler is about to park or has just woken, never per time slice.
*/
static void acct_enter(nd_sched *s, uint32_t st, uint64_t now)
{
    /* a seqlock: odd while it changes; release stores keep each one after the odd count and
    ** before the even one (the reader is sched_acct in obs.c) */
    uint32_t seq = atomic_load_explicit(&s->acct_seq, memory_order_relaxed);
    atomic_store_explicit(&s->acct_seq, seq + 1, memory_order_relaxed);
    uint32_t old = atomic_load_explicit(&s->acct_state, memory_order_relaxed);
    uint64_t since = atomic_load_explicit(&s->acct_since, memory_order_relaxed);
    if (since && now > since)
        atomic_store_explicit(&s->acct_ns[old],
                              atomic_load_explicit(&s->acct_ns[old], memory_order_relaxed) +
                                  (now - since),
                              memory_order_release);
    atomic_store_explicit(&s->acct_state, st, memory_order_release);
    atomic_store_explicit(&s->acct_since, now, memory_order_release);
    atomic_store_explicit(&s->acct_seq, seq + 2, memory_order_release);
}

/*
** The idle poller's calls (nd_set_idle_poller). poll_inside is raised before `poller` is read
** and lowered after the call, both sequentially consistent, so nd_set_idle_poller(NULL), which
** clears `poller` and then waits for poll_inside to fall to 0 (waking a sleeper meanwhile),
** returns only once no call of the old poller is under way or can start. A scheduler that
** holds the poller for a sleep stays inside from hold() to the end of its sleep().
*/
static const nd_idle_poller *poller_enter(void)
{
    if (!atomic_load_explicit(&nd__rt.poller, memory_order_relaxed)) return NULL;
    atomic_fetch_add(&nd__rt.poll_inside, 1);
    const nd_idle_poller *p = atomic_load(&nd__rt.poller);
    if (!p) atomic_fetch_sub(&nd__rt.poll_inside, 1);
    return p;
}

static void poller_leave(void)
{
    atomic_fetch_sub(&nd__rt.poll_inside, 1);
}

/* One turn of the poller in s's spin: true if it did something. */
static bool idle_poll(nd_sched *s)
{
    const nd_idle_poller *p = poller_enter();
    if (!p) return false;
    s->turn_since = nd__now();
    bool did = p->poll(p->ud);
    s->turn_since = 0;
    poller_leave();
    return did;
}

static void idle_call(int what)
{
    const nd_idle_poller *p = poller_enter();
    if (!p) return;
    if (what == IDLE_WAKE)
        p->wake(p->ud);
    else
        p->idle(p->ud);
    poller_leave();
}

/* The poller a scheduler about to sleep may sleep in (it stays entered until idle_sleep), or
** NULL: it sleeps on its parker. */
static const nd_idle_poller *idle_hold(void)
{
    const nd_idle_poller *p = poller_enter();
    if (p && !p->hold(p->ud)) {
        poller_leave();
        p = NULL;
    }
    return p;
}

/* After idle_hold: if wait, sleeps in the poller until I/O, a wake-up or the deadline, and
** handles what came; then lets go of it. */
static void idle_sleep(nd_sched *s, const nd_idle_poller *p, uint64_t deadline, bool wait)
{
    if (wait) {
        uint64_t t = UINT64_MAX;
        if (deadline != ND__NO_DEADLINE) {
            uint64_t now = nd__now();
            t = deadline > now ? deadline - now : 0;
        }
        p->wait(p->ud, t);
        s->turn_since = nd__now();
    }
    p->release(p->ud, wait);
    s->turn_since = 0;
    poller_leave();
}

void nd_set_idle_poller(const nd_idle_poller *p)
{
    const nd_idle_poller *old = atomic_exchange(&nd__rt.poller, NULL);
    while (atomic_load(&nd__rt.poll_inside)) {
        if (old) old->wake(old->ud); /* a scheduler asleep in it */
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    if (!p) return;
    nd__rt.poller_set = *p;
    atomic_store(&nd__rt.poller, &nd__rt.poller_set);
}

/*
** Before parking, an idle scheduler watches for work for spin_ns (as the BEAM's schedulers
** busy-wait): a reply to a message just sent often comes back within tens of microseconds,
** and a scheduler that is awake takes it without a wake-up through the parker. While any
** scheduler spins, wakers skip the unpark (nspin); the spinner looks for work again through
** the parking protocol when it stops, so nothing published meanwhile is missed. True if work
** turned up.
*/
static bool spin(nd_sched *s)
{
    if (!nd__rt.spin_ns) return false;
    atomic_fetch_add(&nd__rt.nspin, 1);
    uint64_t now = nd__now(), until = now + nd__rt.spin_ns;
    acct_enter(s, ACCT_SPIN, now);
    bool found = false;
    while (!found && !atomic_load(&nd__rt.stopping_threads)) {
        for (int i = 0; i < 32; i++) cpu_relax();
        found = work_visible(s);
        if (!found && atomic_load_explicit(&nd__rt.poller, memory_order_relaxed)) {
            /* A node with I/O to poll: a thread that its I/O woke may be waiting for this
            ** core (a wake-up after a socket write lands on the writer's core), and the
            ** reply it would send is what this spin waits for. */
            sched_yield();
            if (idle_poll(s)) {
                found = work_visible(s);
                until = nd__now() + nd__rt.spin_ns; /* I/O came in: the spin starts over */
            }
        }
        if ((now = nd__now()) >= until) break;
    }
    atomic_fetch_sub(&nd__rt.nspin, 1);
    if (found) acct_enter(s, ACCT_RUN, now);
    return found;
}

static void *sched_main(void *arg)
{
    nd_sched *s = arg;
    nd__cur_sched = s;
    nd__ctx_init_thread(&s->ctx);
    nd__altstack_setup(s);
    acct_enter(s, ACCT_RUN, nd__now());
    while (!atomic_load(&nd__rt.stopping_threads)) {
        if (atomic_load_explicit(&s->nlazy, memory_order_relaxed)) arm_lazy(s, true);
        uint64_t nt = nd__timers_next();
        if (nt != ND__NO_DEADLINE) {
            uint64_t now = nd__now();
            if (now >= nt) nd__timers_fire(now);
        }
        /* The global queue goes first at every fourth pass: a process that keeps its own queue
        ** busy (a yield loop) would otherwise starve everything there, for ever on a node with
        ** one scheduler. */
        nd_proc *p = (++s->tick & 3) == 0 ? gq_pop(s) : NULL;
        if (!p) p = rq_pop(&s->rq);
        if (!p) p = gq_pop(s);
        if (!p) p = steal(s);
        if (p) {
            run(s, p);
            continue;
        }
        if (spin(s)) continue;
        /* Sleeps in the idle poller if it lets this scheduler (in_poll is published before
        ** parked, so a waker sees where to wake it), else on its parker; the last spinner
        ** that does the latter tells the poller, which gives its I/O back. */
        const nd_idle_poller *ip = idle_hold();
        if (ip)
            atomic_store(&s->in_poll, 1);
        else if (atomic_load(&nd__rt.nspin) == 0)
            idle_call(IDLE_GIVE_BACK);
        atomic_store(&s->parked, 1);
        atomic_fetch_add(&nd__rt.nidle, 1);
        if (work_visible(s) || atomic_load(&nd__rt.stopping_threads)) {
            int one = 1;
            if (atomic_compare_exchange_strong(&s->parked, &one, 0))
                atomic_fetch_sub(&nd__rt.nidle, 1);
            else if (!ip)
                nd__rt.plat->park(nd__rt.plat->ud, s->parker, 0); /* eat the token */
            if (ip) {
                idle_sleep(s, ip, 0, false);
                atomic_store(&s->in_poll, 0);
            }
            acct_enter(s, ACCT_RUN, nd__now());
            continue;
        }
        acct_enter(s, ACCT_IDLE, nd__now());
        if (ip) {
            idle_sleep(s, ip, nd__timers_next(), true);
            atomic_store(&s->in_poll, 0);
        } else {
            nd__rt.plat->park(nd__rt.plat->ud, s->parker, nd__timers_next());
        }
        acct_enter(s, ACCT_RUN, nd__now());
        int one = 1;
        if (atomic_compare_exchange_strong(&s->parked, &one, 0)) atomic_fetch_sub(&nd__rt.nidle, 1);
    }
    nd__stack_cache_drain(s);
    nd__slot_cache_drain(s);
    nd__sig_cache_drain();
    nd__altstack_free(s);
    nd__cur_sched = NULL;
    return NULL;
}

/* ================================================================ start / stop */

term_t nd__a_normal, nd__a_kill, nd__a_killed, nd__a_noproc, nd__a_EXIT, nd__a_DOWN, nd__a_process,
    nd__a_stack_overflow, nd__a_badmatch, nd__a_shutdown, nd__a_undefined, nd__a_gen_call,
    nd__a_gen_cast, nd__a_noconnection, nd__a_timeout, nd__a_ok, nd__a_error, nd__a_worker,
    nd__a_supervisor, nd__a_specs, nd__a_active, nd__a_supervisors, nd__a_workers, nd__a_restarting,
    nd__a_ignore, nd__a_infinity, nd__a_calling_self, nd__a_mailbox_overflow;

static void intern_atoms(void)
{
    term_init();
    nd__a_normal = term_atom("normal");
    nd__a_kill = term_atom("kill");
    nd__a_killed = term_atom("killed");
    nd__a_noproc = term_atom("noproc");
    nd__a_EXIT = term_atom("EXIT");
    nd__a_DOWN = term_atom("DOWN");
    nd__a_process = term_atom("process");
    nd__a_stack_overflow = term_atom("stack_overflow");
    nd__a_badmatch = term_atom("badmatch");
    nd__a_shutdown = term_atom("shutdown");
    nd__a_undefined = term_atom("undefined");
    nd__a_gen_call = term_atom("$gen_call");
    nd__a_gen_cast = term_atom("$gen_cast");
    nd__a_noconnection = term_atom("noconnection");
    nd__a_timeout = term_atom("timeout");
    nd__a_ok = term_atom("ok");
    nd__a_error = term_atom("error");
    nd__a_worker = term_atom("worker");
    nd__a_supervisor = term_atom("supervisor");
    nd__a_specs = term_atom("specs");
    nd__a_active = term_atom("active");
    nd__a_supervisors = term_atom("supervisors");
    nd__a_workers = term_atom("workers");
    nd__a_restarting = term_atom("restarting");
    nd__a_ignore = term_atom("ignore");
    nd__a_infinity = term_atom("infinity");
    nd__a_calling_self = term_atom("calling_self");
    nd__a_mailbox_overflow = term_atom("mailbox_overflow");
    nd__srv_atoms();
    nd__sup_atoms();
}

int nd_init(const nd_config *cfg)
{
    int zero = 0;
    if (!atomic_compare_exchange_strong(&nd__rt.running, &zero, 2)) return ND_ESTATE;
    nd_config c;
    if (cfg)
        c = *cfg;
    else
        memset(&c, 0, sizeof c);
    if (!c.schedulers && getenv("ND_SCHEDULERS"))
        c.schedulers = (unsigned)atoi(getenv("ND_SCHEDULERS"));
    if (!c.schedulers) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        c.schedulers = n > 0 ? (unsigned)n : 1;
    }
    if (!c.stack_size) c.stack_size = 128 * 1024;
    if (c.stack_size < 16 * 1024) c.stack_size = 16 * 1024;
    if (!c.max_processes) c.max_processes = (size_t)1 << 22;
    if (!c.reductions) c.reductions = 4000;
    if (!c.long_schedule_ms) c.long_schedule_ms = 100;
    if (!c.mailbox_limit) c.mailbox_limit = 100000;
    if (c.mailbox_policy == ND_MBOX_DEFAULT || (unsigned)c.mailbox_policy > ND_MBOX_DROP_NEWEST)
        c.mailbox_policy = ND_MBOX_REPORT;
    nd__rt.cfg = c;
    nd__rt.spin_ns = 50000; /* 50 us; ND_SPIN_US overrides (0: park at once) */
    if (getenv("ND_SPIN_US")) nd__rt.spin_ns = (uint64_t)atoll(getenv("ND_SPIN_US")) * 1000;
    if (c.platform && c.platform != nd_platform_default()) nd__rt.spin_ns = 0; /* virtual time */
    if (!c.park_after_ms) c.park_after_ms = nd__rt.cfg.park_after_ms = 250;
    nd__rt.park_ns = c.park_after_ms >= UINT64_MAX / 1000000u ? 0 : c.park_after_ms * 1000000u;
#ifdef ND__UCONTEXT
    nd__rt.park_ns = 0; /* a ucontext keeps the stack pointer where parking cannot see it */
#endif
    nd__rt.plat = c.platform ? c.platform : nd_platform_default();
    intern_atoms();
    atomic_store(&nd__rt.node, TERM_ATOM_NONODE);
    atomic_store(&nd__rt.creation, 0);
    pthread_mutex_init(&nd__rt.gq_mu, NULL);
    pthread_mutex_init(&nd__rt.tab_mu, NULL);
    nd__rt.nchunks = (c.max_processes + ND__CHUNK - 1) / ND__CHUNK;
    nd__rt.chunks = calloc(nd__rt.nchunks, sizeof *nd__rt.chunks);
    nd__rt.next_id = 1;
    nd__rt.nsched = c.schedulers;
    nd__rt.scheds = calloc(c.schedulers, sizeof(nd_sched));
    if (!nd__rt.chunks || !nd__rt.scheds) goto nomem;
    nd__obs_init();
    nd__timers_init();
    nd__registry_init();
    nd__segv_install();
    for (unsigned i = 0; i < c.schedulers; i++) {
        nd_sched *s = &nd__rt.scheds[i];
        s->idx = i;
        s->rng = 0x9e3779b97f4a7c15ULL * (i + 1);
        s->parker = nd__rt.plat->parker_new(nd__rt.plat->ud);
        if (!s->parker) goto nomem;
    }
    atomic_store(&nd__rt.stopping, 0);
    atomic_store(&nd__rt.stopping_threads, 0);
    for (unsigned i = 0; i < c.schedulers; i++)
        if (pthread_create(&nd__rt.scheds[i].thread, NULL, sched_main, &nd__rt.scheds[i]) != 0)
            abort();
    nd__rt.watchdog_parker = nd__rt.plat->parker_new(nd__rt.plat->ud);
    if (!nd__rt.watchdog_parker || pthread_create(&nd__rt.watchdog, NULL, watchdog_main, NULL) != 0)
        abort();
    atomic_store(&nd__rt.running, 1);
    return 0;
nomem:
    free(nd__rt.chunks);
    if (nd__rt.scheds)
        for (unsigned i = 0; i < c.schedulers; i++)
            if (nd__rt.scheds[i].parker)
                nd__rt.plat->parker_free(nd__rt.plat->ud, nd__rt.scheds[i].parker);
    free(nd__rt.scheds);
    memset(&nd__rt, 0, sizeof nd__rt);
    return ND_ENOMEM;
}

void nd__kill_all(void);
void nd__table_free(void);

int nd_shutdown(int64_t timeout_ms)
{
    if (atomic_load(&nd__rt.running) != 1) return ND_ESTATE;
    if (nd__self()) return ND_EINVAL;
    atomic_store(&nd__rt.stopping, 1);
    uint64_t deadline = nd__deadline(timeout_ms);
    uint64_t next_kill = 0;
    while (atomic_load(&nd__rt.live) > 0) {
        uint64_t now = nd__now();
        if (now >= deadline) {
            atomic_store(&nd__rt.stopping, 0);
            return ND_ETIMEOUT;
        }
        if (now >= next_kill) { /* again and again: processes may still be spawning */
            nd__kill_all();
            next_kill = now + 50000000u;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&nd__rt.stopping_threads, 1);
    for (unsigned i = 0; i < nd__rt.nsched; i++) {
        nd__rt.plat->unpark(nd__rt.plat->ud, nd__rt.scheds[i].parker);
        if (atomic_load(&nd__rt.scheds[i].in_poll)) idle_call(IDLE_WAKE);
    }
    for (unsigned i = 0; i < nd__rt.nsched; i++) pthread_join(nd__rt.scheds[i].thread, NULL);
    nd__rt.plat->unpark(nd__rt.plat->ud, nd__rt.watchdog_parker);
    pthread_join(nd__rt.watchdog, NULL);
    nd__rt.plat->parker_free(nd__rt.plat->ud, nd__rt.watchdog_parker);
    for (unsigned i = 0; i < nd__rt.nsched; i++)
        nd__rt.plat->parker_free(nd__rt.plat->ud, nd__rt.scheds[i].parker);
    free(nd__rt.scheds);
    nd__timers_destroy();
    nd__registry_destroy();
    nd__obs_destroy();
    nd__table_free();
    nd__stack_global_drain();
    free(nd__rt.gq);
    pthread_mutex_destroy(&nd__rt.gq_mu);
    pthread_mutex_destroy(&nd__rt.tab_mu);
    memset(&nd__rt, 0, sizeof nd__rt);
    return 0;
}

void nd_get_stats(nd_stats *out)
{
    out->context_switches = out->steals = out->reductions = 0;
    out->schedulers = nd__rt.nsched;
    for (unsigned i = 0; i < nd__rt.nsched; i++) {
        out->context_switches += atomic_load(&nd__rt.scheds[i].switches);
        out->steals += atomic_load(&nd__rt.scheds[i].steals);
        out->reductions += atomic_load(&nd__rt.scheds[i].reds);
    }
    out->long_schedules = atomic_load(&nd__rt.st_long);
    out->spawns = atomic_load(&nd__rt.st_spawns);
    out->exits = atomic_load(&nd__rt.st_exits);
}
