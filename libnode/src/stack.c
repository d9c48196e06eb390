/* Coroutine stacks: mmap'ed with a guard page, pooled per scheduler; stack overflow kills one
 * process. */
#include <errno.h>
#include <stdatomic.h>
#include "nd_int.h"
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef ND__ASAN
#include <sanitizer/asan_interface.h>
#endif

#define ND__CACHE_MAX  32
#define ND__GLOBAL_MAX 256
#define ND__ALTSTACK   (64 * 1024)

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static nd_stack *g_free;
static unsigned g_nfree;
static size_t g_page;

static size_t page_size(void)
{
    if (!g_page) g_page = (size_t)sysconf(_SC_PAGESIZE);
    return g_page;
}

static size_t default_size(void)
{
    return nd__rt.cfg.stack_size;
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

/* -1 untried, 1 the kernel's guard regions work, 0 they do not (mprotect is used). */
static _Atomic int g_guard_madvise = -1;

/* True if the kernel refuses to read the page at g: a system call that reads it fails with
** EFAULT. An emulator that accepts MADV_GUARD_INSTALL without doing it (qemu-user) is caught
** here, before any process relies on the guard. */
static bool guard_holds(void *g)
{
    int fd[2];
    if (pipe(fd) != 0) return false;
    ssize_t n = write(fd[1], g, 1);
    int err = errno;
    close(fd[0]);
    close(fd[1]);
    return n < 0 && err == EFAULT;
}

/*
** Makes the first page of m a guard page. A guard region (Linux >= 6.13) does not split the
** mapping, so stacks mapped next to each other merge into one mapping and a million of them fit
** under vm.max_map_count; an mprotect'ed guard page makes two mappings per stack (about 32,000
** stacks under the default limit of 65,530). Both fault with SIGSEGV at the guard's address.
*/
static int guard_page(void *m, size_t pg)
{
    int mode = atomic_load_explicit(&g_guard_madvise, memory_order_relaxed);
    if (mode != 0) {
        if (madvise(m, pg, MADV_GUARD_INSTALL) == 0 && (mode == 1 || guard_holds(m))) {
            atomic_store_explicit(&g_guard_madvise, 1, memory_order_relaxed);
            return 0;
        }
        atomic_store_explicit(&g_guard_madvise, 0, memory_order_relaxed);
    }
    return mprotect(m, pg, PROT_NONE);
}

/* The descriptor of the stack mapped at m (total bytes, guard page first): it lives at the top of
** the stack itself, no separate allocation. Writes it (touching the stack's top page). */
static nd_stack *stack_desc(void *m, size_t total)
{
    size_t pg = page_size();
    nd_stack *st = (nd_stack *)((char *)m + total - sizeof(nd_stack));
    st->next = NULL;
    st->map = m;
    st->mapsize = total;
    st->lo = (char *)m + pg;
    st->size = total - pg - ((sizeof(nd_stack) + 63) & ~(size_t)63);
    return st;
}

/* Maps a new stack of `size` usable bytes above one guard page. */
static nd_stack *stack_map(size_t size)
{
    size_t pg = page_size();
    size = (size + pg - 1) & ~(pg - 1);
    size_t total = size + pg;
    void *m = mmap(NULL, total, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (m == MAP_FAILED) return NULL;
    if (guard_page(m, pg) != 0) {
        munmap(m, total);
        return NULL;
    }
    atomic_fetch_add_explicit(&nd__rt.obs.stack_bytes, total, memory_order_relaxed);
    return stack_desc(m, total);
}

static void stack_unmap(nd_stack *st)
{
    atomic_fetch_sub_explicit(&nd__rt.obs.stack_bytes, st->mapsize, memory_order_relaxed);
    munmap(st->map, st->mapsize);
}

/*
** Cold default-size stacks (g_mu): mapped and guarded, but holding no memory (never touched, or
** given back with MADV_DONTNEED), kept as (base) addresses outside the stacks themselves so that
** none of their pages is touched while they wait. New stacks are mapped SLAB at a time, the
** rest going here. Spawning processes that keep their stacks cost an mmap per process and an
** munmap at each exit beyond the hot pools (perf record of bench-scale-spawn: 75 % of its time
** in mmap, munmap and their page-table and mapping-tree work); now an mmap per SLAB stacks and
** a madvise per run of adjacent exits beyond the hot pools (release_batch). Cold stacks are
** virtual address space only (MAP_NORESERVE): after a burst of a million processes about
** 130 GB of it stays reserved.
*/
#define SLAB 64
static void **g_cold;
static size_t g_ncold, g_capcold;

/* Adds the stack at m to the cold list (g_mu held); false when the list cannot grow. */
static bool cold_push(void *m)
{
    if (g_ncold == g_capcold) {
        size_t cap = g_capcold ? g_capcold * 2 : 1024;
        void **v = realloc(g_cold, cap * sizeof *v);
        if (!v) return false;
        g_cold = v;
        g_capcold = cap;
    }
    g_cold[g_ncold++] = m;
    return true;
}

/* The bytes of a default-size stack's mapping. */
static size_t default_total(void)
{
    size_t pg = page_size();
    size_t usable = default_size() + ((sizeof(nd_stack) + 63) & ~(size_t)63);
    return ((usable + pg - 1) & ~(pg - 1)) + pg;
}

/* A default-size stack from the cold list, or from a new slab whose other stacks go there. */
static nd_stack *stack_cold_get(void)
{
    size_t total = default_total(), pg = page_size();
    void *m = NULL;
    pthread_mutex_lock(&g_mu);
    if (g_ncold) m = g_cold[--g_ncold];
    pthread_mutex_unlock(&g_mu);
    if (m) return stack_desc(m, total);
    char *slab = mmap(NULL, total * SLAB, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (slab == MAP_FAILED) return NULL;
    size_t n = 0;
    for (; n < SLAB; n++)
        if (guard_page(slab + n * total, pg) != 0) break;
    if (n < SLAB) munmap(slab + n * total, (SLAB - n) * total); /* unguarded: never used */
    if (n == 0) return NULL;
    atomic_fetch_add_explicit(&nd__rt.obs.stack_bytes, total * n, memory_order_relaxed);
    pthread_mutex_lock(&g_mu);
    size_t kept = 1;
    for (; kept < n; kept++)
        if (!cold_push(slab + kept * total)) break;
    pthread_mutex_unlock(&g_mu);
    for (size_t i = kept; i < n; i++) stack_unmap(stack_desc(slab + i * total, total));
    return stack_desc(slab, total);
}

/*
** Default-size stacks freed beyond the hot pools, waiting to be given back (g_mu). Giving each
** back at its exit cost a MADV_DONTNEED per exit, and every such call that unmaps a page sends
** a TLB shoot-down to the other CPUs (perf record of bench-scale-spawn --round 100000: 38 %
** of the round in madvise's IPIs, native_write_msr and smp_call_function_many_cond). They are
** now queued and given back RELEASE_BATCH at a time, in address order, one madvise per run of
** adjacent stacks (a slab hands them out next to each other, so a burst of exits makes long
** runs): the same call covers the guards between them, which survive MADV_DONTNEED (as in
** park_release). A queued stack is on no list that hands stacks out, so none is reused while
** its pages are given back; it goes cold only after. The queue is emptied when it is full and
** by the watchdog at each of its ticks (nd__stack_release_pending), so at most RELEASE_BATCH
** stacks' pages wait, for at most one tick (<= 10 ms). The queue is a heap array handed over
** whole to whoever gives it back: nd__stack_put runs in nd__finish_prev, which may run on any
** process's stack (a small one too), so it keeps no batch on the stack.
*/
#define RELEASE_BATCH 256
static void **g_rel; /* RELEASE_BATCH slots, allocated when first needed */
static size_t g_nrel;

/* Takes the queue (g_mu held): its array (NULL if none) and, in *n, how many it holds. */
static void **rel_take(size_t *n)
{
    void **v = g_rel;
    *n = g_nrel;
    g_rel = NULL;
    g_nrel = 0;
    return v;
}

static int by_addr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) * (void *const *)a, y = (uintptr_t) * (void *const *)b;
    return x < y ? -1 : x > y;
}

/* Gives back the pages of the n default-size stacks at v (owned by the caller, in no list):
** one madvise per run of adjacent stacks, from the first one's usable bytes to the last one's
** end; then they go cold. A run the kernel refuses is unmapped instead. */
static void release_batch(void **v, size_t n)
{
    size_t total = default_total(), pg = page_size();
    qsort(v, n, sizeof *v, by_addr);
    size_t keep = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && (char *)v[j] == (char *)v[j - 1] + total) j++;
        char *lo = (char *)v[i] + pg, *hi = (char *)v[j - 1] + total;
        if (madvise(lo, (size_t)(hi - lo), MADV_DONTNEED) == 0) {
            memmove(&v[keep], &v[i], (j - i) * sizeof *v);
            keep += j - i;
        } else {
            for (size_t k = i; k < j; k++) stack_unmap(stack_desc(v[k], total));
        }
        i = j;
    }
    pthread_mutex_lock(&g_mu);
    size_t pushed = 0;
    while (pushed < keep && cold_push(v[pushed])) pushed++;
    pthread_mutex_unlock(&g_mu);
    for (size_t k = pushed; k < keep; k++) stack_unmap(stack_desc(v[k], total));
}

/*
** Returns a stack with at least `size` usable bytes (0 = default). Default-size stacks come from
** the scheduler's cache, then the global pool, then the cold list or a new slab. NULL on ENOMEM.
*/
nd_stack *nd__stack_get(nd_sched *s, size_t size)
{
    if (size == 0 || size == default_size()) {
        nd_stack *st;
        if (s && (st = s->stack_cache)) {
            s->stack_cache = st->next;
            s->nstack_cache--;
            return st;
        }
        pthread_mutex_lock(&g_mu);
        if ((st = g_free)) {
            g_free = st->next;
            g_nfree--;
        }
        pthread_mutex_unlock(&g_mu);
        if (st) return st;
        return stack_cold_get();
    }
    return stack_map(size + ((sizeof(nd_stack) + 63) & ~(size_t)63));
}

void nd__stack_put(nd_sched *s, nd_stack *st)
{
    if (st->mapsize != default_total()) {
        stack_unmap(st);
        return;
    }
#ifdef ND__ASAN
    __asan_unpoison_memory_region(st->lo, st->size);
#endif
    if (s && s->nstack_cache < ND__CACHE_MAX) {
        st->next = s->stack_cache;
        s->stack_cache = st;
        s->nstack_cache++;
        return;
    }
    /* beyond the hot pools: queued to be given back (release_batch), then cold */
    void **full = NULL, *m = st->map;
    size_t n = 0;
    bool now = false;
    pthread_mutex_lock(&g_mu);
    if (g_nfree < ND__GLOBAL_MAX) {
        st->next = g_free;
        g_free = st;
        g_nfree++;
    } else if (!g_rel && !(g_rel = malloc(RELEASE_BATCH * sizeof *g_rel))) {
        now = true; /* no memory for the queue: given back alone, as it comes */
    } else {
        g_rel[g_nrel++] = m;
        if (g_nrel == RELEASE_BATCH) full = rel_take(&n);
    }
    pthread_mutex_unlock(&g_mu);
    if (now) release_batch(&m, 1);
    if (full) {
        release_batch(full, n);
        free(full);
    }
}

void nd__stack_release_pending(void)
{
    size_t n = 0;
    void **v = NULL;
    pthread_mutex_lock(&g_mu);
    if (g_nrel) v = rel_take(&n);
    pthread_mutex_unlock(&g_mu);
    if (!v) return;
    release_batch(v, n);
    free(v);
}

void nd__stack_cache_drain(nd_sched *s)
{
    while (s->stack_cache) {
        nd_stack *st = s->stack_cache;
        s->stack_cache = st->next;
        stack_unmap(st);
    }
    s->nstack_cache = 0;
}

void nd__stack_global_drain(void)
{
    pthread_mutex_lock(&g_mu);
    while (g_free) {
        nd_stack *st = g_free;
        g_free = st->next;
        stack_unmap(st);
    }
    g_nfree = 0;
    size_t total = default_total();
    for (size_t i = 0; i < g_nrel; i++) {
        atomic_fetch_sub_explicit(&nd__rt.obs.stack_bytes, total, memory_order_relaxed);
        munmap(g_rel[i], total);
    }
    free(g_rel);
    g_rel = NULL;
    g_nrel = 0;
    for (size_t i = 0; i < g_ncold; i++) {
        atomic_fetch_sub_explicit(&nd__rt.obs.stack_bytes, total, memory_order_relaxed);
        munmap(g_cold[i], total);
    }
    free(g_cold);
    g_cold = NULL;
    g_ncold = g_capcold = 0;
    pthread_mutex_unlock(&g_mu);
}

/* ---------------------------------------------------------------- stack overflow */

static struct sigaction g_old_segv, g_old_bus;
static _Atomic int g_segv_installed;

/* Runs on the top of the overflowed stack (its frames are abandoned) and ends the process. */
static void overflow_landing(void)
{
    nd_proc *p = nd__self();
#ifdef ND__ASAN
    __asan_unpoison_memory_region(p->stack->lo, p->stack->size);
#endif
    nd__proc_exit(p, nd__a_stack_overflow);
}

/*
** A fault inside the guard page of the running process's stack: rewrite the signal context so
** that returning from the handler resumes in overflow_landing() at the top of that stack.
** Any other fault: put back the previous handler and return, so the fault repeats and is
** handled (or kills the program) as it would without us.
*/
static void segv_handler(int sig, siginfo_t *si, void *ucv)
{
    nd_sched *s = nd__cur_sched;
    nd_proc *p = s ? s->current : NULL;
    if (p && p->stack) {
        char *a = (char *)si->si_addr;
        char *g = (char *)p->stack->map;
        if (a >= g && a < g + page_size()) {
            ucontext_t *uc = ucv;
            uintptr_t top = ((uintptr_t)p->stack->lo + p->stack->size) & ~(uintptr_t)15;
#if defined(__x86_64__)
            uc->uc_mcontext.gregs[REG_RSP] = (greg_t)(top - 264);
            uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)overflow_landing;
#elif defined(__aarch64__)
            uc->uc_mcontext.sp = top - 256;
            uc->uc_mcontext.pc = (uintptr_t)overflow_landing;
#endif
            return;
        }
    }
    sigaction(sig, sig == SIGBUS ? &g_old_bus : &g_old_segv, NULL);
}

int nd__segv_install(void)
{
    struct sigaction cur;
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == segv_handler)
        return 0;
    atomic_store(&g_segv_installed, 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &g_old_segv) != 0) return ND_EINVAL;
    sigaction(SIGBUS, &sa, &g_old_bus);
    return 0;
}

int nd__altstack_setup(nd_sched *s)
{
    stack_t ss;
    s->altstack = malloc(ND__ALTSTACK);
    if (!s->altstack) return ND_ENOMEM;
    ss.ss_sp = s->altstack;
    ss.ss_size = ND__ALTSTACK;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) != 0) return ND_EINVAL;
    return 0;
}

void nd__altstack_free(nd_sched *s)
{
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    free(s->altstack);
    s->altstack = NULL;
}

int nd_overflow_handler_install(void)
{
    return nd__segv_install();
}

/* ---------------------------------------------------------------- parking idle stacks */

/*
** A plain process blocked in receive holds one touched 4 KiB page of its stack (a few hundred
** bytes of it in use) while it waits: 4.5 KB per process against 2.7 KB in Erlang. A process
** that has waited through a whole sweep period is parked: the sweep (the watchdog thread)
** copies the bytes in use, from the saved stack pointer to the top of the mapping (the stack's
** own descriptor included), to a heap buffer sized to them, and gives every page of the stack
** back with MADV_DONTNEED. The mapping and its guard stay: a stack holds absolute pointers into
** itself, so the bytes must come back at the same addresses, which prepare() does when the
** process next runs (a page fault and a copy). Nothing outside a process reads or writes its
** stack while it waits (senders, timers, monitors and links touch only its record and queues;
** exit hooks and exits run on the process's own stack, after it has been put back), so nothing
** else has to know. Doing this at every wait would cost a system call and a page fault per
** receive; the sweeps make it lazy: a process is parked only once it has been seen waiting by
** two sweeps in a row without waiting anew in between, so only after at least one period.
**
** The lists: a process that begins waiting and is on no list goes on its scheduler's
** park_list (pushed with a CAS; only the first wait after each park or drop, not every wait);
** the sweep moves them to its own list (park_watch) and keeps each until it parks it or finds
** its slot dead. park_mark says whether a slot is listed (the only pushes are by whoever moves
** it from PM_UNLISTED, so a slot is on one list at most) and whether it has waited since the
** last sweep looked at it.
*/

#define PARK_BATCH 256

typedef struct park_hdr {
    char *top;  /* the end of the stack's mapping */
    size_t len; /* bytes saved: [top - len, top) */
} park_hdr;

#ifdef ND__ASAN
/* A stack's bytes include ASan's poisoned red zones between frames: copied without checks,
** word by word (a memcpy would be intercepted and checked). */
__attribute__((no_sanitize_address)) static void stack_copy(void *dst, const void *src, size_t n)
{
    volatile uint64_t *d = dst;
    const volatile uint64_t *s = src;
    for (size_t i = 0; i < n / 8; i++) d[i] = s[i];
}
#else
#define stack_copy memcpy
#endif

void nd__park_note(nd_sched *s, nd_proc *p)
{
    uint8_t m = PM_SEEN;
    if (atomic_compare_exchange_strong(&p->park_mark, &m, PM_WAITED) || m != PM_UNLISTED) return;
    if (!atomic_compare_exchange_strong(&p->park_mark, &m, PM_WAITED)) return;
    if (!nd__rt.park_ns) return; /* parking is off: marked as listed, so never asks again */
    nd_proc *h = atomic_load_explicit(&s->park_list, memory_order_relaxed);
    do {
        p->park_next = h;
    } while (!atomic_compare_exchange_weak_explicit(&s->park_list, &h, p, memory_order_release,
                                                    memory_order_relaxed));
}

void nd__stack_unpark(nd_proc *p)
{
    park_hdr *h = atomic_load_explicit(&p->parked, memory_order_relaxed);
    stack_copy(h->top - h->len, h + 1, h->len);
    p->stack = (nd_stack *)(h->top - sizeof(nd_stack));
    atomic_store_explicit(&p->parked, NULL, memory_order_relaxed);
    atomic_store_explicit(&p->held_stack, p->stack->size, memory_order_relaxed);
    atomic_fetch_sub_explicit(&nd__rt.parked_bytes, h->len, memory_order_relaxed);
    atomic_fetch_add_explicit(&nd__rt.unparks, 1, memory_order_relaxed);
    free(h);
}

/* Saves the bytes in use of p's stack (p is PS_PARKING, owned by the sweep); false if they
** could not be (no memory), and then p keeps its stack. */
static bool stack_save(nd_proc *p)
{
    nd_stack *st = p->stack;
    char *top = (char *)st->map + st->mapsize, *sp = p->ctx.sp;
    if (sp < (char *)st->lo || sp >= top) return false; /* never: a waiting process's sp */
    size_t len = (size_t)(top - sp);
    park_hdr *h = malloc(sizeof *h + len);
    if (!h) return false;
    h->top = top;
    h->len = len;
    stack_copy(h + 1, sp, len);
    atomic_store_explicit(&p->parked, h, memory_order_relaxed);
    p->stack = NULL;
    atomic_store_explicit(&p->held_stack, len, memory_order_relaxed);
    atomic_fetch_add_explicit(&nd__rt.parked_bytes, len, memory_order_relaxed);
    atomic_fetch_add_explicit(&nd__rt.parks, 1, memory_order_relaxed);
    return true;
}

/* Gives back the pages of [lo, hi): the usable parts of adjacent saved stacks and the guards
** between them, in one system call (guard regions survive MADV_DONTNEED, as mprotect'ed pages
** do). A failure leaves the pages as they were: the copy back rewrites the same bytes. */
static void park_release(char *lo, char *hi)
{
    if (lo == hi) return;
    madvise(lo, (size_t)(hi - lo), MADV_DONTNEED);
    atomic_fetch_add_explicit(&nd__rt.park_madvises, 1, memory_order_relaxed);
}

static int by_stack(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)(*(nd_proc *const *)a)->stack;
    uintptr_t y = (uintptr_t)(*(nd_proc *const *)b)->stack;
    return x < y ? -1 : x > y;
}

/*
** Parks the processes of v[0..n) that still wait; those that do not go back on *keep. Each is
** held PS_PARKING from its copy until every page of the batch has been given back (a process
** resumed sooner would have its stack wiped under it), then published PS_WAITING again with
** the same look at its queue and deadline as nd__finish_prev: a sender or a timer that found it
** PS_PARKING did not wake it. In address order, so adjacent stacks go back in one madvise.
*/
static void park_batch(nd_proc **v, size_t n, nd_proc **keep)
{
    size_t k = 0, pg = page_size();
    for (size_t i = 0; i < n; i++) {
        uint32_t st = PS_WAITING;
        if (atomic_compare_exchange_strong(&v[i]->state, &st, PS_PARKING)) {
            v[k++] = v[i];
        } else { /* woken since: stays listed */
            v[i]->park_next = *keep;
            *keep = v[i];
        }
    }
    qsort(v, k, sizeof *v, by_stack);
    char *lo = NULL, *hi = NULL;
    for (size_t i = 0; i < k; i++) {
        nd_stack *st = v[i]->stack;
        if (!st) continue; /* hibernating (no stack) or already parked */
        char *map = st->map, *top = map + st->mapsize;
        if (!stack_save(v[i])) continue;
        if (map != hi) {
            park_release(lo, hi);
            lo = map + pg;
        }
        hi = top;
    }
    park_release(lo, hi);
    for (size_t i = 0; i < k; i++) {
        nd_proc *p = v[i];
        atomic_store(&p->park_mark, PM_UNLISTED); /* a new wait lists it again */
        atomic_store(&p->state, PS_WAITING);
        /* a timeout that fired while p was PS_PARKING could not wake it (see finish_prev) */
        if (atomic_load(&p->outer) != NULL ||
            (atomic_load(&p->tmo.arm) == TMO_ARMED && nd__timer_fired(&p->tmo))) {
            uint32_t st = PS_WAITING;
            if (atomic_compare_exchange_strong(&p->state, &st, PS_RUNNABLE)) nd__enqueue(p);
        }
    }
}

/*
** One sweep. Takes what the schedulers listed, then walks every listed process: one waiting
** and marked PM_WAITED is marked PM_SEEN (a wait sets PM_WAITED again); one waiting and still
** PM_SEEN has waited at least a period and is parked; a dead slot is dropped; the rest stay.
*/
void nd__park_sweep(void)
{
    nd_proc *watch = nd__rt.park_watch, *back = NULL;
    for (unsigned i = 0; i < nd__rt.nsched; i++) {
        nd_proc *l =
            atomic_exchange_explicit(&nd__rt.scheds[i].park_list, NULL, memory_order_acquire);
        while (l) {
            nd_proc *n = l->park_next;
            l->park_next = watch;
            watch = l;
            l = n;
        }
    }
    nd_proc *batch[PARK_BATCH];
    size_t nb = 0;
    nd_proc **pp = &watch, *p;
    while ((p = *pp)) {
        uint32_t st = atomic_load(&p->state);
        if (st == PS_WAITING) {
            uint8_t m = PM_WAITED;
            if (atomic_compare_exchange_strong(&p->park_mark, &m, PM_SEEN)) {
                pp = &p->park_next;
                continue;
            }
            *pp = p->park_next;
            batch[nb++] = p;
            if (nb == PARK_BATCH) {
                park_batch(batch, nb, &back);
                nb = 0;
            }
            continue;
        }
        if (st == PS_FREE || st == PS_EXITING) {
            *pp = p->park_next;
            atomic_store(&p->park_mark, PM_UNLISTED);
            /* Dekker with nd__park_note: a new life of the slot that began waiting before
            ** the store may have seen it listed and not listed itself: it shows here */
            st = atomic_load(&p->state);
            uint8_t m = PM_UNLISTED;
            if (st != PS_FREE && st != PS_EXITING &&
                atomic_compare_exchange_strong(&p->park_mark, &m, PM_WAITED)) {
                p->park_next = back;
                back = p;
            }
            continue;
        }
        pp = &p->park_next;
    }
    if (nb) park_batch(batch, nb, &back);
    *pp = back;
    nd__rt.park_watch = watch;
}
