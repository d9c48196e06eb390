/* Coroutine stacks: mmap'ed with a guard page, pooled per scheduler; stack overflow kills one
 * process. */
#include <errno.h>
#include <stdatomic.h>
#include "nd_int.h"
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
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
static nd_stack *stack_desc(void *m, size_t total, struct nd_slab *slab)
{
    size_t pg = page_size();
    nd_stack *st = (nd_stack *)((char *)m + total - sizeof(nd_stack));
    st->next = NULL;
    st->map = m;
    st->slab = slab;
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
    return stack_desc(m, total, NULL);
}

static void stack_unmap(nd_stack *st)
{
    atomic_fetch_sub_explicit(&nd__rt.obs.stack_bytes, st->mapsize, memory_order_relaxed);
    munmap(st->map, st->mapsize);
}

/*
** Default-size stacks come from slabs: one mmap of SLAB stacks, each with its guard installed
** (spawning processes that keep their stacks cost an mmap per process and an munmap at each
** exit beyond the hot pools before: perf record of bench-scale-spawn, 75 % of its time in mmap,
** munmap and their page-table and mapping-tree work). A slab's record (g_mu) says, per stack,
** whether it is cold (mapped and guarded, holding no memory: never touched, or given back) or
** pending (freed beyond the hot pools, its pages not given back yet); every other stack of the
** slab is out (a process's, or in a hot pool). Cold stacks are virtual address space only
** (MAP_NORESERVE): after a burst of a million processes about 130 GB of it stays reserved.
**
** Giving back. Every MADV_DONTNEED that unmaps a page sends a TLB shoot-down to the other CPUs
** (perf record of bench-scale-spawn --round 100000: 84 % of its stop phase in madvise, two
** thirds of it in smp_call_function_many_cond and the IPI's native_write_msr), so the cost is
** per call, not per page. A queue of the last 256 exits, sorted, made runs of 2.3 stacks a
** call: two schedulers wake and end the processes of one burst in two interleaved orders, so a
** window of exits is full of holes. Now the stacks wait in their slab: when the last stack of
** a slab that is out comes back, the whole slab (its cold stacks too: nothing else can take
** them meanwhile) goes back in one call. Each scheduler hands out stacks from a slab of its
** own, so that a slab's processes are one scheduler's and end in its order. The watchdog gives
** back what has waited a whole tick without its slab filling up (<= 20 ms), one call per run of
** waiting or cold stacks of a slab, and so does an exit that finds more than PEND_MAX stacks
** waiting, which bounds the memory held back (these pages were resident while their processes
** lived: holding them a little longer raises no peak).
** A slab being given back is busy: off the cold list, so none of its stacks is handed out
** while its pages go, and no one else gives it back at the same time; its stacks that come
** back meanwhile wait for the next round.
*/
#define SLAB     64
#define PEND_MAX 1024

typedef struct nd_slab {
    char *base;                    /* the first stack's mapping */
    uint64_t all;                  /* the stacks it has (those whose guards went in) */
    uint64_t cold, pend;           /* see above; a stack in neither is out */
    uint64_t giving;               /* while busy: the pending stacks being given back */
    struct nd_slab *cprev, *cnext; /* on g_cold_slabs: has cold stacks and is not busy */
    struct nd_slab *pnext;         /* on g_pend_slabs (on_pend): may have pending stacks */
    struct nd_slab *gnext;         /* on a giver's list (release_all) */
    bool on_pend, busy;
    bool aged;              /* no stack came back since the watchdog's last tick (release_all) */
    struct nd_sched *owner; /* the scheduler whose own slab it is (stack_cold_get), or NULL */
} nd_slab;

static nd_slab **g_slabs; /* every slab, for the drain */
static size_t g_nslabs, g_capslabs;
static nd_slab *g_cold_slabs, *g_pend_slabs;
static size_t g_npend; /* pending stacks */

/* The bytes of a default-size stack's mapping. */
static size_t default_total(void)
{
    size_t pg = page_size();
    size_t usable = default_size() + ((sizeof(nd_stack) + 63) & ~(size_t)63);
    return ((usable + pg - 1) & ~(pg - 1)) + pg;
}

static void cold_link(nd_slab *sl) /* g_mu held; sl has cold stacks, is not busy or listed */
{
    sl->cprev = NULL;
    sl->cnext = g_cold_slabs;
    if (g_cold_slabs) g_cold_slabs->cprev = sl;
    g_cold_slabs = sl;
}

static void cold_unlink(nd_slab *sl) /* g_mu held; sl is on the cold list */
{
    if (sl->cprev)
        sl->cprev->cnext = sl->cnext;
    else
        g_cold_slabs = sl->cnext;
    if (sl->cnext) sl->cnext->cprev = sl->cprev;
}

/*
** Gives back sl->giving, pending stacks of the busy slab sl (g_mu not held): one madvise per run
** of its stacks that are pending or cold, from the first one's usable bytes to the last one's
** end (the guards between them survive MADV_DONTNEED, as in park_release); then they are cold
** and sl is no longer busy. The pending stacks of a run the kernel refuses are unmapped.
*/
static void slab_release(nd_slab *sl)
{
    size_t total = default_total(), pg = page_size();
    uint64_t mask = sl->giving, span = mask | sl->cold, gone = 0; /* cold is stable while busy */
    uint64_t calls = 0;
    for (unsigned i = 0; i < SLAB;) {
        if (!(mask >> i & 1)) {
            i++;
            continue;
        }
        unsigned lo = i, hi = i;
        while (lo > 0 && (span >> (lo - 1) & 1)) lo--;
        while (hi + 1 < SLAB && (span >> (hi + 1) & 1)) hi++;
        char *a = sl->base + (size_t)lo * total + pg, *b = sl->base + (size_t)(hi + 1) * total;
        calls++;
        if (madvise(a, (size_t)(b - a), MADV_DONTNEED) != 0) {
            for (unsigned k = lo; k <= hi; k++) {
                if (!(mask >> k & 1)) continue;
                munmap(sl->base + (size_t)k * total, total);
                atomic_fetch_sub_explicit(&nd__rt.obs.stack_bytes, total, memory_order_relaxed);
                gone |= (uint64_t)1 << k;
            }
        }
        i = hi + 1;
    }
    atomic_fetch_add_explicit(&nd__rt.stack_releases, calls, memory_order_relaxed);
    pthread_mutex_lock(&g_mu);
    sl->pend &= ~mask;
    sl->all &= ~gone;
    sl->cold = (sl->cold | mask) & ~gone;
    sl->giving = 0;
    g_npend -= (size_t)__builtin_popcountll(mask);
    sl->busy = false;
    if (sl->cold) cold_link(sl);
    if (sl->pend && !sl->on_pend) { /* came back while it was busy */
        sl->on_pend = true;
        sl->aged = false;
        sl->pnext = g_pend_slabs;
        g_pend_slabs = sl;
    }
    pthread_mutex_unlock(&g_mu);
}

/* Takes sl to give back its pending stacks (g_mu held; sl is not busy). */
static void slab_take(nd_slab *sl)
{
    if (sl->cold) cold_unlink(sl);
    sl->busy = true;
    sl->aged = false;
    sl->giving = sl->pend;
}

/*
** Gives back the pending stacks of the slabs that are not busy (those that are: their giver
** lists them again if stacks came back meanwhile). By the watchdog (all false), only those of
** slabs that were already waiting at its last tick: the others are marked and left one tick to
** fill up, because while two schedulers end a burst of processes a slab fills in two
** interleaved orders, and giving it back half full costs a call per hole.
*/
static void release_all(bool all)
{
    nd_slab *todo = NULL, *keep = NULL;
    pthread_mutex_lock(&g_mu);
    nd_slab *l = g_pend_slabs;
    while (l) {
        nd_slab *n = l->pnext;
        if (l->pend && !l->busy && !all && !l->aged) {
            l->aged = true;
            l->pnext = keep;
            keep = l;
        } else {
            l->on_pend = false;
            if (l->pend && !l->busy) {
                slab_take(l);
                l->gnext = todo;
                todo = l;
            }
        }
        l = n;
    }
    g_pend_slabs = keep;
    pthread_mutex_unlock(&g_mu);
    while (todo) {
        nd_slab *n = todo->gnext;
        slab_release(todo);
        todo = n;
    }
}

#ifndef PIDFD_SELF_THREAD
#define PIDFD_SELF_THREAD (-10000) /* Linux >= 6.15: the calling thread (its process's memory) */
#endif

/* -1 untried, 1 process_madvise installs guard regions for this process, 0 it does not. */
static _Atomic int g_guard_batch = -1;

/*
** Installs the guards of the n stacks of a new slab (stack i's guard is the first page at
** base + i * total): stack 0's alone (guard_page, which also finds out which kind of guard this
** kernel has), then the others in one system call where the kernel can (process_madvise with a
*vector of
** guard regions): one madvise per stack cost ~1.9 us a stack on the paravirtual guest of
** docs/performance.md, the vector ~0.7 us. Returns how many stacks from the start are guarded;
** those past a failure are not.
*/
static size_t guards_install(char *base, size_t total, size_t n, size_t pg)
{
    if (guard_page(base, pg) != 0) return 0;
    size_t done = 1;
#if defined(SYS_process_madvise)
    if (atomic_load_explicit(&g_guard_madvise, memory_order_relaxed) == 1 &&
        atomic_load_explicit(&g_guard_batch, memory_order_relaxed) != 0 && n > 1) {
        struct iovec v[SLAB];
        for (size_t i = 1; i < n; i++) v[i - 1] = (struct iovec){base + i * total, pg};
        long r = syscall(SYS_process_madvise, PIDFD_SELF_THREAD, v, n - 1, MADV_GUARD_INSTALL, 0);
        if (r > 0 && atomic_load_explicit(&g_guard_batch, memory_order_relaxed) == -1)
            r = guard_holds(base + (n - 1) * total) ? r : -1; /* once: does it really guard? */
        atomic_store_explicit(&g_guard_batch, r > 0, memory_order_relaxed);
        if (r > 0) done += (size_t)r / pg; /* a short count: the guards of the first r bytes */
    }
#endif
    for (; done < n; done++)
        if (guard_page(base + done * total, pg) != 0) break;
    return done;
}

/* A default-size stack for scheduler s (or NULL) from a slab with cold stacks, or from a new
** slab. Each scheduler takes from a slab of its own while it has cold stacks: stacks handed
** out to both schedulers' processes from one slab alternate, and when the two schedulers end
** such processes at different times the slab waits half full (see above). */
static nd_stack *stack_cold_get(nd_sched *s)
{
    size_t total = default_total(), pg = page_size();
    pthread_mutex_lock(&g_mu);
    nd_slab *sl = s ? s->slab : NULL;
    if (!sl || !sl->cold || sl->busy) {
        if (sl) sl->owner = NULL;
        for (sl = g_cold_slabs; sl && sl->owner && sl->owner != s;) sl = sl->cnext;
        if (!sl) sl = g_cold_slabs; /* only other schedulers' own: share one */
        if (s) s->slab = sl;
        if (sl && s) sl->owner = s;
    }
    if (sl) {
        unsigned i = (unsigned)__builtin_ctzll(sl->cold);
        sl->cold &= sl->cold - 1;
        if (!sl->cold) cold_unlink(sl);
        pthread_mutex_unlock(&g_mu);
        return stack_desc(sl->base + (size_t)i * total, total, sl);
    }
    pthread_mutex_unlock(&g_mu);
    char *base = mmap(NULL, total * SLAB, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) return NULL;
    size_t n = guards_install(base, total, SLAB, pg);
    if (n < SLAB) munmap(base + n * total, (SLAB - n) * total); /* unguarded: never used */
    sl = n ? malloc(sizeof *sl) : NULL;
    pthread_mutex_lock(&g_mu);
    if (sl && g_nslabs == g_capslabs) {
        size_t cap = g_capslabs ? 2 * g_capslabs : 64;
        nd_slab **v = realloc(g_slabs, cap * sizeof *v);
        if (v) {
            g_slabs = v;
            g_capslabs = cap;
        }
    }
    if (!sl || g_nslabs == g_capslabs) {
        pthread_mutex_unlock(&g_mu);
        free(sl);
        if (n) munmap(base, n * total);
        return NULL;
    }
    memset(sl, 0, sizeof *sl);
    sl->base = base;
    sl->all = n == 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1;
    sl->cold = sl->all & ~(uint64_t)1; /* the first is handed out now */
    g_slabs[g_nslabs++] = sl;
    if (s) {
        if (s->slab) s->slab->owner = NULL;
        s->slab = sl;
        sl->owner = s;
    }
    if (sl->cold) cold_link(sl);
    pthread_mutex_unlock(&g_mu);
    atomic_fetch_add_explicit(&nd__rt.obs.stack_bytes, total * n, memory_order_relaxed);
    return stack_desc(base, total, sl);
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
        return stack_cold_get(s);
    }
    return stack_map(size + ((sizeof(nd_stack) + 63) & ~(size_t)63));
}

void nd__stack_put(nd_sched *s, nd_stack *st)
{
    nd_slab *sl = st->slab;
    if (!sl) { /* not of the default size */
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
    /* beyond the hot pools: waits in its slab to be given back, then is cold */
    uint64_t bit = (uint64_t)1 << (((char *)st->map - sl->base) / default_total());
    bool whole = false, over = false;
    pthread_mutex_lock(&g_mu);
    if (g_nfree < ND__GLOBAL_MAX) {
        st->next = g_free;
        g_free = st;
        g_nfree++;
    } else {
        sl->pend |= bit;
        sl->aged = false;
        g_npend++;
        if (!sl->on_pend) {
            sl->on_pend = true;
            sl->pnext = g_pend_slabs;
            g_pend_slabs = sl;
        }
        if (!sl->busy && (sl->cold | sl->pend) == sl->all) {
            slab_take(sl); /* none of it is out: all of it goes back in one call */
            whole = true;
        } else {
            over = g_npend > PEND_MAX;
        }
    }
    pthread_mutex_unlock(&g_mu);
    if (whole)
        slab_release(sl);
    else if (over)
        release_all(true);
}

void nd__stack_release_pending(void)
{
    pthread_mutex_lock(&g_mu);
    bool any = g_npend != 0;
    pthread_mutex_unlock(&g_mu);
    if (any) release_all(false);
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
    for (size_t i = 0; i < g_nslabs; i++) {
        nd_slab *sl = g_slabs[i];
        for (uint64_t m = sl->cold | sl->pend; m; m &= m - 1) {
            atomic_fetch_sub_explicit(&nd__rt.obs.stack_bytes, total, memory_order_relaxed);
            munmap(sl->base + (size_t)__builtin_ctzll(m) * total, total);
        }
        free(sl);
    }
    free(g_slabs);
    g_slabs = NULL;
    g_nslabs = g_capslabs = 0;
    g_cold_slabs = g_pend_slabs = NULL;
    g_npend = 0;
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
