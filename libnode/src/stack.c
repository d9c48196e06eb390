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
** a madvise per exit beyond the hot pools. Cold stacks are virtual address space only
** (MAP_NORESERVE): after a burst of a million processes about 130 GB of it stays reserved.
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
    pthread_mutex_lock(&g_mu);
    if (g_nfree < ND__GLOBAL_MAX) {
        st->next = g_free;
        g_free = st;
        g_nfree++;
        st = NULL;
    }
    pthread_mutex_unlock(&g_mu);
    if (!st) return;
    /* beyond the hot pools: give the memory back, keep the mapping (and its guard) */
    void *m = st->map;
    size_t pg = page_size(), total = st->mapsize;
    if (madvise((char *)m + pg, total - pg, MADV_DONTNEED) != 0) {
        stack_unmap(st);
        return;
    }
    pthread_mutex_lock(&g_mu);
    bool kept = cold_push(m);
    pthread_mutex_unlock(&g_mu);
    if (!kept) stack_unmap(stack_desc(m, total));
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
