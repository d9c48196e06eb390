/* Observability: trace event rings, metrics snapshots, mailbox limits, the log hook, memory return.
 */
#include "nd_int.h"
#include <girder/node_obs.h>
#include <stdarg.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* ================================================================ trace rings */

/*
** One ring per scheduler, written by that scheduler only, plus one shared by every other
** thread (its writers take `lock`). The writer publishes an event by advancing head (release)
** after filling the slot; the reader copies slots up to head (acquire) and frees them by
** advancing tail (release); a writer that finds the ring full drops the event. `busy` lets
** nd_trace_stop wait until no writer is inside a ring, so that after it nothing is written.
*/
typedef struct nd_ring {
    _Alignas(64) _Atomic uint64_t head;
    _Atomic int busy;
    atomic_flag lock;
    uint64_t win_start, win_n; /* rate window: writer only */
    unsigned skip;             /* over the rate: events dropped before the clock is read again */
    _Atomic uint64_t recorded, dropped_full, dropped_rate;
    _Alignas(64) _Atomic uint64_t tail;
    nd_event *ev;
} nd_ring;

/* The rate limit counts events per window of 10 ms; past it, a ring drops the next
** ND__RATE_SKIP events without reading the clock (half of an event's cost), then looks again. */
#define ND__RATE_WINDOW 10000000u
#define ND__RATE_SKIP   63

static const char *const kind_names[ND_EV__COUNT] = {
    "?",           "sched_in", "sched_out", "spawn",         "exit",      "send",
    "receive",     "link",     "unlink",    "monitor",       "demonitor", "down",
    "exit_signal", "timer",    "steal",     "long_schedule", "mailbox",   "busy_dist"};

const char *nd_event_kind_name(unsigned kind)
{
    return kind > 0 && kind < ND_EV__COUNT ? kind_names[kind] : "?";
}

static unsigned shared_ring(void)
{
    return nd__rt.nsched;
}

/* Stamps e and writes it into ring `idx` unless the ring is full or over its rate. */
/* A counter of a ring, written by its one writer at a time (no locked instruction). */
static void ring_count(_Atomic uint64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static void ring_put(nd_event *e, unsigned idx)
{
    nd_obs *o = &nd__rt.obs;
    nd_ring *r = &o->rings[idx];
    bool shared = idx == shared_ring();
    if (shared) nd__spin_lock(&r->lock);
    if (r->skip) { /* over the rate: nothing is written, so no need to enter */
        r->skip--;
        ring_count(&r->dropped_rate);
        if (shared) nd__spin_unlock(&r->lock);
        return;
    }
    /* Dekker with nd_trace_stop, all seq_cst: it clears trace_on then waits for busy == 0 */
    atomic_store(&r->busy, 1);
    if (!atomic_load(&o->trace_on)) goto out;
    uint64_t now = nd__now();
    if (now - r->win_start >= ND__RATE_WINDOW) {
        r->win_start = now;
        r->win_n = 0;
    }
    if (r->win_n >= atomic_load_explicit(&o->per_window, memory_order_relaxed)) {
        ring_count(&r->dropped_rate);
        r->skip = ND__RATE_SKIP;
        goto out;
    }
    r->win_n++;
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (h - atomic_load_explicit(&r->tail, memory_order_acquire) >= o->ring_cap) {
        ring_count(&r->dropped_full);
        goto out;
    }
    e->ts = now;
    r->ev[h & (o->ring_cap - 1)] = *e;
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    ring_count(&r->recorded);
out:
    atomic_store_explicit(&r->busy, 0, memory_order_release);
    if (shared) nd__spin_unlock(&r->lock);
}

/* Fills *slot with pid's numbers; a remote pid also sets the event's node, creation and flag. */
static void fill_pid(nd_event *e, term_t pid, nd_ev_pid *slot, uint8_t remote_flag)
{
    term_pid_info pi;
    if (!term_is_pid(pid) || term_pid_get(pid, &pi) != 0) return;
    slot->id = pi.id;
    slot->serial = pi.serial;
    term_t me = nd_node();
    bool local = pi.node == me ? pi.creation == nd_creation() || pi.creation == 0
                               : pi.node == TERM_ATOM_NONODE;
    if (!local) {
        e->info |= remote_flag;
        e->node = pi.node;
        e->creation = pi.creation;
    }
}

/* A local process's numbers, from its slot (no pid box to read: no cache miss). */
static void fill_proc(const nd_proc *p, nd_ev_pid *slot)
{
    slot->id = p->id;
    slot->serial = atomic_load_explicit(&p->serial, memory_order_relaxed);
}

static bool filter_pass(nd_obs *o, const nd_event *e)
{
    uint32_t id = atomic_load_explicit(&o->filter_id, memory_order_relaxed);
    uint32_t serial = atomic_load_explicit(&o->filter_serial, memory_order_relaxed);
    if (!id) return true;
    bool pid_ok = !(e->info & ND_EV_F_PID_REMOTE) && e->pid.id == id && e->pid.serial == serial;
    bool peer_ok = !(e->info & ND_EV_F_PEER_REMOTE) && e->peer.id == id && e->peer.serial == serial;
    return pid_ok || peer_ok;
}

static bool kind_on(nd_obs *o, int kind)
{
    uint32_t k = atomic_load_explicit(&o->kinds, memory_order_relaxed);
    return !k || (k & (1u << kind));
}

/* Fills the rest of e (kind, info, pid and peer set) and records it unless it is filtered out. */
static void submit(nd_obs *o, nd_event *e, uint64_t arg, uint64_t id, term_t reason)
{
    if (!filter_pass(o, e)) return;
    e->arg = arg;
    e->id = id;
    e->reason = TERM_NONE;
    if (term_is_atom(reason) || term_is_small(reason)) {
        e->reason = reason;
    } else if (term_is_tuple(reason) && term_tuple_arity(reason) > 0 &&
               term_is_atom(term_tuple_elem(reason, 0))) {
        e->reason = term_tuple_elem(reason, 0);
        e->info |= ND_EV_F_TAG;
    }
    nd_sched *s = nd__cur_sched; /* this file's functions never switch: the thread-local holds */
    e->sched = s ? (uint16_t)s->idx : ND_EV_NO_SCHED;
    ring_put(e, s ? s->idx : shared_ring());
}

static void ev_init(nd_event *e, int kind, int info)
{
    memset(e, 0, sizeof *e);
    e->kind = (uint8_t)kind;
    e->info = (uint8_t)info;
    e->node = TERM_NONE;
}

void nd__ev(int kind, int info, term_t pid, term_t peer, uint64_t arg, uint64_t id, term_t reason)
{
    nd_obs *o = &nd__rt.obs;
    if (!kind_on(o, kind)) return;
    nd_event e;
    ev_init(&e, kind, info);
    fill_pid(&e, pid, &e.pid, ND_EV_F_PID_REMOTE);
    fill_pid(&e, peer, &e.peer, ND_EV_F_PEER_REMOTE);
    submit(o, &e, arg, id, reason);
}

void nd__evp(int kind, int info, const nd_proc *p, uint64_t arg, uint64_t id)
{
    nd_obs *o = &nd__rt.obs;
    if (!kind_on(o, kind)) return;
    nd_event e;
    ev_init(&e, kind, info);
    fill_proc(p, &e.pid);
    submit(o, &e, arg, id, TERM_NONE);
}

void nd__ev_sched(int kind, unsigned sched, uint32_t id, uint32_t serial, uint64_t arg)
{
    nd_obs *o = &nd__rt.obs;
    if (!kind_on(o, kind)) return;
    nd_event e;
    memset(&e, 0, sizeof e);
    e.kind = (uint8_t)kind;
    e.sched = (uint16_t)sched;
    e.pid.id = id;
    e.pid.serial = serial;
    e.node = e.reason = TERM_NONE;
    e.arg = arg;
    if (!filter_pass(o, &e)) return;
    ring_put(&e, shared_ring());
}

void nd_trace_busy_dist(term_t node, uint64_t queued_bytes)
{
    nd_obs *o = &nd__rt.obs;
    if (!nd__tracing() || !kind_on(o, ND_EV_BUSY_DIST)) return;
    nd_event e;
    ev_init(&e, ND_EV_BUSY_DIST, 0);
    nd_sched *s = nd__cur_sched;
    if (s && s->current) fill_proc(s->current, &e.pid);
    if (term_is_atom(node)) e.node = node;
    submit(o, &e, queued_bytes, 0, TERM_NONE);
}

uint32_t nd__ev_tid(void)
{
    nd_sched *s = nd__cur_sched;
    uint32_t n = nd__rt.nsched + 1, t;
    if (s)
        t = s->tid_next++ * n + s->idx + 1;
    else
        t = atomic_fetch_add_explicit(&nd__rt.obs.ftid, 1, memory_order_relaxed) * n + n;
    return t ? t : 1;
}

uint32_t nd__ev_send(const nd_proc *q, term_t to, term_t msg, term_t name)
{
    nd_obs *o = &nd__rt.obs;
    uint32_t tid = nd__ev_tid();
    if (!kind_on(o, ND_EV_SEND)) return tid;
    nd_event e;
    ev_init(&e, ND_EV_SEND, name != TERM_NONE ? ND_EV_F_NAMED : 0);
    nd_sched *s = nd__cur_sched;
    if (s && s->current) fill_proc(s->current, &e.pid);
    if (q)
        fill_proc(q, &e.peer);
    else
        fill_pid(&e, to, &e.peer, ND_EV_F_PEER_REMOTE);
    submit(o, &e, term_is_boxed(msg) ? term_memory(msg) : 0, tid, name);
    return tid;
}

static size_t round_pow2(size_t n)
{
    size_t c = 64;
    while (c < n && c < ((size_t)1 << 24)) c <<= 1;
    return c;
}

static void rings_free(nd_obs *o)
{
    if (!o->rings) return;
    for (unsigned i = 0; i <= nd__rt.nsched; i++) free(o->rings[i].ev);
    free(o->rings);
    o->rings = NULL;
    o->ring_cap = 0;
}

int nd_trace_start(const nd_trace_opts *opts)
{
    static const nd_trace_opts none;
    if (!opts) opts = &none;
    if (atomic_load(&nd__rt.running) != 1) return ND_ESTATE;
    nd_obs *o = &nd__rt.obs;
    uint32_t fid = 0, fserial = 0;
    if (opts->pid != TERM_NONE) {
        nd_proc *q = nd__proc_get(opts->pid);
        if (!q) return ND_EINVAL;
        fid = q->id;
        fserial = atomic_load(&q->serial);
        nd__proc_put(q);
    }
    pthread_mutex_lock(&o->mu);
    if (atomic_load(&o->trace_on)) {
        pthread_mutex_unlock(&o->mu);
        return ND_ESTATE;
    }
    size_t cap = round_pow2(opts->ring_events ? opts->ring_events : 65536);
    if (!o->rings) {
        unsigned n = nd__rt.nsched + 1;
        nd_ring *r = aligned_alloc(64, ((n * sizeof(nd_ring)) + 63) & ~(size_t)63);
        bool ok = r != NULL;
        if (r) memset(r, 0, n * sizeof(nd_ring));
        for (unsigned i = 0; ok && i < n; i++) {
            atomic_flag_clear(&r[i].lock);
            ok = (r[i].ev = malloc(cap * sizeof(nd_event))) != NULL;
        }
        if (!ok) {
            if (r)
                for (unsigned i = 0; i < n; i++) free(r[i].ev);
            free(r);
            pthread_mutex_unlock(&o->mu);
            return ND_ENOMEM;
        }
        o->rings = r;
        o->ring_cap = cap;
    }
    uint64_t rate = opts->max_rate ? opts->max_rate : 1000000;
    uint64_t w =
        rate >= UINT64_MAX / ND__RATE_WINDOW ? UINT64_MAX : rate * ND__RATE_WINDOW / 1000000000u;
    atomic_store_explicit(&o->per_window, w ? w : 1, memory_order_relaxed);
    atomic_store_explicit(&o->kinds, opts->kinds, memory_order_relaxed);
    atomic_store_explicit(&o->filter_id, fid, memory_order_relaxed);
    atomic_store_explicit(&o->filter_serial, fserial, memory_order_relaxed);
    atomic_store(&o->trace_on, 1);
    pthread_mutex_unlock(&o->mu);
    return 0;
}

int nd_trace_stop(void)
{
    nd_obs *o = &nd__rt.obs;
    pthread_mutex_lock(&o->mu);
    if (!atomic_load(&o->trace_on)) {
        pthread_mutex_unlock(&o->mu);
        return ND_ESTATE;
    }
    atomic_store(&o->trace_on, 0);
    /* a writer that saw tracing on is inside its ring with busy set (see ring_put) */
    for (unsigned i = 0; i <= nd__rt.nsched; i++)
        while (atomic_load(&o->rings[i].busy)) sched_yield();
    pthread_mutex_unlock(&o->mu);
    return 0;
}

size_t nd_trace_drain(nd_event *out, size_t max)
{
    nd_obs *o = &nd__rt.obs;
    size_t n = 0;
    pthread_mutex_lock(&o->mu);
    if (!o->rings) {
        pthread_mutex_unlock(&o->mu);
        return 0;
    }
    unsigned nr = nd__rt.nsched + 1;
    uint64_t *h = malloc(2 * nr * sizeof *h);
    if (!h) {
        pthread_mutex_unlock(&o->mu);
        return 0;
    }
    uint64_t *t = h + nr, mask = o->ring_cap - 1;
    for (unsigned i = 0; i < nr; i++) {
        t[i] = atomic_load_explicit(&o->rings[i].tail, memory_order_relaxed);
        h[i] = atomic_load_explicit(&o->rings[i].head, memory_order_acquire);
    }
    /* merge the rings (each in time order) by timestamp */
    while (n < max) {
        int best = -1;
        for (unsigned i = 0; i < nr; i++)
            if (t[i] < h[i] &&
                (best < 0 || o->rings[i].ev[t[i] & mask].ts < o->rings[best].ev[t[best] & mask].ts))
                best = (int)i;
        if (best < 0) break;
        out[n++] = o->rings[best].ev[t[best] & mask];
        t[best]++;
    }
    for (unsigned i = 0; i < nr; i++)
        atomic_store_explicit(&o->rings[i].tail, t[i], memory_order_release);
    free(h);
    pthread_mutex_unlock(&o->mu);
    return n;
}

void nd_trace_stats_get(nd_trace_stats *st)
{
    nd_obs *o = &nd__rt.obs;
    memset(st, 0, sizeof *st);
    pthread_mutex_lock(&o->mu);
    st->on = atomic_load(&o->trace_on) != 0;
    if (o->rings) {
        st->rings = nd__rt.nsched + 1;
        st->ring_events = o->ring_cap;
        for (unsigned i = 0; i < st->rings; i++) {
            st->recorded += atomic_load(&o->rings[i].recorded);
            st->dropped_full += atomic_load(&o->rings[i].dropped_full);
            st->dropped_rate += atomic_load(&o->rings[i].dropped_rate);
        }
    }
    pthread_mutex_unlock(&o->mu);
}

term_t nd_event_pid(const nd_event *e, bool peer)
{
    const nd_ev_pid *p = peer ? &e->peer : &e->pid;
    if (p->id == 0 && p->serial == 0) return TERM_NONE;
    if (e->info & (peer ? ND_EV_F_PEER_REMOTE : ND_EV_F_PID_REMOTE))
        return term_pid(e->node, p->id, p->serial, e->creation);
    return term_pid(nd_node(), p->id, p->serial, nd_creation());
}

/* ================================================================ counters */

void nd__count(int which, uint64_t n)
{
    nd_sched *s = nd__sched_get();
    if (s)
        atomic_store_explicit(&s->cnt[which],
                              atomic_load_explicit(&s->cnt[which], memory_order_relaxed) + n,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&nd__rt.obs.fcnt[which], n, memory_order_relaxed);
}

/* ================================================================ log */

void nd__log(int level, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (nd__rt.cfg.log) {
        nd__rt.cfg.log(nd__rt.cfg.log_ud, level, line);
        return;
    }
    fprintf(stderr, "libnode: %s\n", line);
}

/* ================================================================ mailbox limits */

static const char *policy_name(int pol)
{
    return pol == ND_MBOX_KILL ? "kill" : pol == ND_MBOX_DROP_NEWEST ? "drop_newest" : "report";
}

uint32_t nd__mbox_limit_of(size_t limit)
{
    if (limit == 0) limit = nd__rt.cfg.mailbox_limit;
    return limit >= UINT32_MAX ? UINT32_MAX : (uint32_t)limit;
}

/*
** Called by a sender whose message would make p's queue `len` long, when len passes the
** longest queue seen or the limit (both rare). The first passing of the limit is logged and
** traced once; then the policy decides. The counts are those senders see: a queue being drained
** at that moment may be a drain's batch shorter.
*/
int nd__mbox_over(nd_proc *p, uint64_t len)
{
    uint32_t lim = atomic_load_explicit(&p->mbox_limit, memory_order_relaxed);
    int act = MBX_QUEUE;
    if (len > lim && atomic_load_explicit(&p->outer, memory_order_relaxed) != ND__CLOSED) {
        int pol = atomic_load_explicit(&p->mbox_policy, memory_order_relaxed);
        if (!(atomic_fetch_or(&p->mbox_state, MB_REPORTED) & MB_REPORTED)) {
            term_pid_info pi;
            term_pid_get(p->pid, &pi);
            atomic_fetch_add_explicit(&nd__rt.obs.mbox_reports, 1, memory_order_relaxed);
            nd__log(ND_LOG_WARNING,
                    "event=mailbox_limit pid=<0.%u.%u> messages=%llu limit=%u policy=%s", pi.id,
                    pi.serial, (unsigned long long)len, lim, policy_name(pol));
            if (nd__tracing()) nd__ev(ND_EV_MAILBOX, pol, p->pid, TERM_NONE, len, 0, TERM_NONE);
        }
        if (pol == ND_MBOX_DROP_NEWEST) {
            atomic_fetch_add_explicit(&p->mbox_dropped, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&nd__rt.obs.dropped, 1, memory_order_relaxed);
            act = MBX_DROP;
            len--;
        } else if (pol == ND_MBOX_KILL &&
                   !(atomic_fetch_or(&p->mbox_state, MB_KILLING) & MB_KILLING)) {
            atomic_fetch_add_explicit(&nd__rt.obs.mbox_kills, 1, memory_order_relaxed);
            act = MBX_KILL;
        }
    }
    uint32_t l32 = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
    uint32_t h = atomic_load_explicit(&p->mbox_hwm, memory_order_relaxed);
    while (l32 > h && !atomic_compare_exchange_weak_explicit(
                          &p->mbox_hwm, &h, l32, memory_order_relaxed, memory_order_relaxed)) {
    }
    return act;
}

int nd_set_mailbox_limit(size_t limit, nd_mbox_policy policy)
{
    nd_proc *p = nd__self();
    if (!p) return ND_ENOTPROC;
    if ((unsigned)policy > ND_MBOX_DROP_NEWEST) return ND_EINVAL;
    if (policy == ND_MBOX_DEFAULT) policy = nd__rt.cfg.mailbox_policy;
    atomic_store_explicit(&p->mbox_policy, (uint8_t)policy, memory_order_relaxed);
    atomic_store_explicit(&p->mbox_limit, nd__mbox_limit_of(limit), memory_order_relaxed);
    atomic_fetch_and(&p->mbox_state, (uint8_t)~MB_REPORTED);
    return 0;
}

/* ================================================================ memory return */

/*
** A large mailbox is freed in small chunks that glibc keeps in its fastbins and free lists:
** nothing goes back to the system until the heap's top is free (rare with other allocations
** above it) or malloc_trim() consolidates the free chunks and madvises their pages away. The
** exit of a process that held many messages asks for one trim; the watchdog thread does it,
** at most every 100 ms, so schedulers never wait for it, and gives back the large blocks
** term_codec keeps first. Those it also gives back after a second in which none was used.
*/
void nd__obs_tick(void)
{
    static ND__TLS uint64_t last, last_idle;
    uint64_t now = nd__now();
    if (now - last_idle >= 1000000000u) {
        last_idle = now;
        term_cache_release_idle();
    }
    if (!atomic_load_explicit(&nd__rt.obs.trim_wanted, memory_order_relaxed)) return;
    if (last && now - last < 100000000u) return;
    atomic_store(&nd__rt.obs.trim_wanted, 0);
    last = now;
    term_cache_release();
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* ================================================================ metrics */

static void sched_acct(nd_sched *s, uint64_t now, nd_sched_metrics *m)
{
    uint64_t ns[ACCT__N], since;
    uint32_t st, seq;
    do {
        /* a seqlock without fences (ThreadSanitizer knows none): acquire loads of what the
        ** scheduler stores with release (acct_enter in sched.c) */
        seq = atomic_load_explicit(&s->acct_seq, memory_order_acquire);
        st = atomic_load_explicit(&s->acct_state, memory_order_acquire);
        since = atomic_load_explicit(&s->acct_since, memory_order_acquire);
        for (int i = 0; i < ACCT__N; i++)
            ns[i] = atomic_load_explicit(&s->acct_ns[i], memory_order_acquire);
    } while ((seq & 1) || seq != atomic_load_explicit(&s->acct_seq, memory_order_relaxed));
    if (st < ACCT__N && since && now > since) ns[st] += now - since; /* 0: not started */
    m->running_ns = ns[ACCT_RUN];
    m->spinning_ns = ns[ACCT_SPIN];
    m->idle_ns = ns[ACCT_IDLE];
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    unsigned long long size, res;
    int ok = fscanf(f, "%llu %llu", &size, &res) == 2;
    fclose(f);
    return ok ? res * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

int nd_metrics_get(nd_metrics *m)
{
    memset(m, 0, sizeof *m);
    if (atomic_load(&nd__rt.running) != 1) return ND_ESTATE;
    unsigned n = nd__rt.nsched;
    m->sched = calloc(n, sizeof *m->sched);
    if (!m->sched) return ND_ENOMEM;
    m->schedulers = n;
    uint64_t now = nd__now();
    m->uptime_ns = now - nd__rt.obs.t0;
    uint64_t cnt[CNT__N];
    for (int k = 0; k < CNT__N; k++) cnt[k] = atomic_load(&nd__rt.obs.fcnt[k]);
    for (unsigned i = 0; i < n; i++) {
        nd_sched *s = &nd__rt.scheds[i];
        nd_sched_metrics *sm = &m->sched[i];
        sched_acct(s, now, sm);
        uint32_t h = atomic_load(&s->rq.head), t = atomic_load(&s->rq.tail);
        sm->run_queue = t - h <= ND__RQ_SIZE ? t - h : 0;
        sm->steals = atomic_load(&s->steals);
        sm->context_switches = atomic_load(&s->switches);
        sm->reductions = atomic_load(&s->reds);
        for (int k = 0; k < CNT__N; k++) cnt[k] += atomic_load(&s->cnt[k]);
    }
    m->global_run_queue = atomic_load(&nd__rt.gq_count);
    m->processes = atomic_load(&nd__rt.live);
    m->process_limit = nd__rt.cfg.max_processes;
    m->spawns = atomic_load(&nd__rt.st_spawns);
    m->exits = atomic_load(&nd__rt.st_exits);
    m->long_schedules = atomic_load(&nd__rt.st_long);
    m->messages_sent = cnt[CNT_MSG_IN] + cnt[CNT_MSG_REMOTE];
    m->messages_received = cnt[CNT_MSG_RECV];
    uint64_t in = cnt[CNT_MSG_IN] + cnt[CNT_MSG_CONV],
             out = cnt[CNT_MSG_RECV] + cnt[CNT_MSG_DISCARD];
    m->messages_queued = in > out ? in - out : 0;
    m->messages_dropped = atomic_load(&nd__rt.obs.dropped);
    m->mailbox_reports = atomic_load(&nd__rt.obs.mbox_reports);
    m->mailbox_kills = atomic_load(&nd__rt.obs.mbox_kills);
    m->stack_parks = atomic_load(&nd__rt.parks);
    m->stack_releases = atomic_load(&nd__rt.stack_releases);
    uint64_t unparks = atomic_load(&nd__rt.unparks);
    m->processes_parked = m->stack_parks > unparks ? m->stack_parks - unparks : 0;
    pthread_mutex_lock(&nd__rt.tab_mu);
    uint64_t chunks = (nd__rt.next_id + ND__CHUNK - 1) / ND__CHUNK;
    pthread_mutex_unlock(&nd__rt.tab_mu);
    m->memory.process_table =
        chunks * ND__CHUNK * sizeof(nd_proc) + nd__rt.nchunks * sizeof(nd_proc *);
    m->memory.stacks = atomic_load(&nd__rt.obs.stack_bytes);
    m->memory.parked_stacks = atomic_load(&nd__rt.parked_bytes);
    m->memory.mailboxes = m->messages_queued * ND__MSG_NODE;
    pthread_mutex_lock(&nd__rt.obs.mu);
    if (nd__rt.obs.rings)
        m->memory.trace = (n + 1) * (sizeof(nd_ring) + nd__rt.obs.ring_cap * sizeof(nd_event));
    pthread_mutex_unlock(&nd__rt.obs.mu);
    m->memory.rss = rss_bytes();
    return 0;
}

void nd_metrics_free(nd_metrics *m)
{
    free(m->sched);
    m->sched = NULL;
}

/* ================================================================ start / stop */

void nd__obs_init(void)
{
    nd_obs *o = &nd__rt.obs;
    pthread_mutex_init(&o->mu, NULL);
    o->t0 = nd__now();
}

void nd__obs_destroy(void)
{
    nd_obs *o = &nd__rt.obs;
    atomic_store(&o->trace_on, 0);
    rings_free(o);
    pthread_mutex_destroy(&o->mu);
}
