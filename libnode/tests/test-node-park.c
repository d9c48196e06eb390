/* Tests: parked stacks — a waiting process whose stack pages were given back resumes intact. */
#include "nd_test.h"
#include <girder/node_obs.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#define PARK_MS 10 /* sweep period of these tests: parked after 10-20 ms of waiting */

static int setup_park(void **state)
{
    nd_config c = {0};
    c.schedulers = 2;
    c.park_after_ms = PARK_MS;
    (void)state;
    return nd_init(&c);
}

static int setup_never(void **state)
{
    nd_config c = {0};
    c.schedulers = 2;
    c.park_after_ms = ND_PARK_NEVER;
    (void)state;
    return nd_init(&c);
}

/* ---------------------------------------------------------------- stack contents */

/* A frame of locals that points at itself and at the frame of its caller. */
typedef struct lframe {
    struct lframe *up, *self;
    volatile uint64_t *mid; /* into its own words */
    volatile uint64_t w[24];
} lframe;

static uint64_t mix(uint64_t seed, int i)
{
    return (seed + 1) * 0x9e3779b97f4a7c15ULL ^ (uint64_t)i * 0xbf58476d1ce4e5b9ULL;
}

static bool frame_ok(const lframe *f, uint64_t seed)
{
    if (f->self != f || f->mid != &f->w[12]) return false;
    for (int i = 0; i < 24; i++)
        if (f->w[i] != mix(seed, i)) return false;
    return true;
}

typedef bool (*waitfn)(void *ud);

/* Recurses depth frames, each holding an lframe, calls fn (which waits) at the bottom, then
** checks every frame and the links between them on the way back up. */
static __attribute__((noinline)) bool nest(int depth, uint64_t seed, lframe *up, waitfn fn,
                                           void *ud)
{
    lframe f;
    f.up = up;
    f.self = &f;
    f.mid = &f.w[12];
    for (int i = 0; i < 24; i++) f.w[i] = mix(seed, i);
    bool ok = depth == 0 ? fn(ud) : nest(depth - 1, seed + 1, &f, fn, ud);
    ok = ok && frame_ok(&f, seed) && f.up == up && (!up || frame_ok(up, seed - 1));
    __asm__ volatile("" ::: "memory"); /* no tail call: f stays live across the wait */
    return ok;
}

/* Polls until pid's stack is parked (true) or ms pass (false). */
static bool wait_parked(term_t pid, int ms)
{
    for (int i = 0; i < ms; i++) {
        nd_proc_info in;
        if (nd_process_info(pid, &in) != 0) return false;
        bool parked = in.stack_parked;
        nd_proc_info_free(&in);
        if (parked) return true;
        nd_sleep(1);
    }
    return false;
}

static bool is_parked(term_t pid)
{
    nd_proc_info in;
    if (nd_process_info(pid, &in) != 0) return false;
    bool parked = in.stack_parked;
    nd_proc_info_free(&in);
    return parked;
}

/* Tells the test body (arg: its pid, a term) {done, Self, ok | bad}. */
static void report(term_t to, bool ok)
{
    nd_send(to, T3(A("done"), term_dup(nd_self()), A(ok ? "ok" : "bad")));
}

static void expect_done(term_t pid)
{
    term_t m = nd_test_recv(10000);
    assert_true(term_is_tuple(m) && term_tuple_arity(m) == 3);
    assert_true(term_tuple_elem(m, 0) == A("done"));
    assert_true(term_equal(term_tuple_elem(m, 1), pid));
    if (term_tuple_elem(m, 2) != A("ok")) fprintf(stderr, "a parked process found its stack bad\n");
    assert_true(term_tuple_elem(m, 2) == A("ok"));
    term_free(m);
}

/* ---------------------------------------------------------------- receive, then resume */

static bool wait_go(void *ud)
{
    term_t m = nd_test_recv(ND_INFINITY);
    bool ok = m == A("go");
    term_free(m);
    return ok;
}

static void plain(void *arg)
{
    term_t to = (term_t)(uintptr_t)arg;
    report(to, nest(6, 100, NULL, wait_go, NULL));
}

static void body_resume(void *arg)
{
    term_t pid;
    nd_metrics m0, m1;
    assert_int_equal(nd_metrics_get(&m0), 0);
    assert_int_equal(nd_spawn(plain, (void *)(uintptr_t)nd_self(), NULL, &pid), 0);
    assert_true(wait_parked(pid, 5000));
    nd_proc_info in;
    assert_int_equal(nd_process_info(pid, &in), 0);
    assert_int_equal(in.status, ND_ST_WAITING);
    assert_true(in.stack_size > 6 * sizeof(lframe) && in.stack_size < 16384); /* bytes kept */
    nd_proc_info_free(&in);
    assert_int_equal(nd_metrics_get(&m1), 0);
    assert_true(m1.stack_parks > m0.stack_parks);
    assert_true(m1.processes_parked >= 1 && m1.memory.parked_stacks > 0);
    nd_metrics_free(&m0);
    nd_metrics_free(&m1);
    nd_send(pid, A("go"));
    expect_done(pid);
    term_free(pid);
}

static void test_resume(void **state)
{
    nd_test_run(body_resume, NULL, "normal");
}

/* ---------------------------------------------------------------- receive with a timeout */

static bool wait_timeout(void *ud)
{
    term_t m;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = nd_receive(150, &m);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    return rc == ND_ETIMEOUT && ms >= 149;
}

static void timed(void *arg)
{
    report((term_t)(uintptr_t)arg, nest(4, 200, NULL, wait_timeout, NULL));
}

static void body_timeout(void *arg)
{
    term_t pid;
    assert_int_equal(nd_spawn(timed, (void *)(uintptr_t)nd_self(), NULL, &pid), 0);
    assert_true(wait_parked(pid, 140)); /* parked before its timer fires */
    expect_done(pid);                   /* the timer woke it, parked */
    term_free(pid);
}

static void test_timeout(void **state)
{
    nd_test_run(body_timeout, NULL, "normal");
}

/* ---------------------------------------------------------------- exit signals and hooks */

/* An exit hook whose argument is a frame on the process's own stack: it runs on that stack
** (put back first) when the process is killed while parked. */
static _Atomic int hook_ok;
static _Atomic term_t hook_reason;

static void frame_hook(void *arg, term_t reason)
{
    const lframe *f = arg;
    atomic_store(&hook_reason, reason); /* an atom here: nothing to own */
    atomic_store(&hook_ok, frame_ok(f, 300) ? 1 : -1);
}

static bool wait_forever(void *ud)
{
    term_t m = nd_test_recv(ND_INFINITY);
    term_free(m);
    return false; /* never reached: killed */
}

static void hooked(void *arg)
{
    lframe f;
    f.up = NULL;
    f.self = &f;
    f.mid = &f.w[12];
    for (int i = 0; i < 24; i++) f.w[i] = mix(300, i);
    nd_set_exit_hook(frame_hook, &f);
    nest(3, 301, &f, wait_forever, NULL);
}

/* A trapping process gets the exit signal as a message and checks its stack. */
static bool wait_exit_msg(void *ud)
{
    term_t m = nd_test_recv(ND_INFINITY);
    bool ok = term_is_tuple(m) && term_tuple_arity(m) == 3 && term_tuple_elem(m, 0) == A("EXIT") &&
              term_tuple_elem(m, 2) == *(term_t *)ud;
    term_free(m);
    return ok;
}

static void trapper(void *arg)
{
    term_t expect = A("bye");
    nd_trap_exit(true);
    report((term_t)(uintptr_t)arg, nest(5, 400, NULL, wait_exit_msg, &expect));
}

static void body_exit_signals(void *arg)
{
    term_t pid, ref;
    assert_int_equal(nd_spawn_monitor(hooked, NULL, &pid, &ref), 0);
    assert_true(wait_parked(pid, 5000));
    assert_int_equal(nd_exit_signal(pid, A("kill")), 0);
    term_t m = nd_test_recv(10000);
    assert_true(term_tuple_elem(m, 0) == A("DOWN") && term_tuple_elem(m, 4) == A("killed"));
    term_free(m);
    assert_int_equal(atomic_load(&hook_ok), 1);
    assert_true(atomic_load(&hook_reason) == A("killed"));
    term_free(pid);
    term_free(ref);

    assert_int_equal(nd_spawn(trapper, (void *)(uintptr_t)nd_self(), NULL, &pid), 0);
    assert_true(wait_parked(pid, 5000));
    assert_int_equal(nd_exit_signal(pid, A("bye")), 0);
    expect_done(pid);
    term_free(pid);
}

static void test_exit_signals(void **state)
{
    atomic_store(&hook_ok, 0);
    nd_test_run(body_exit_signals, NULL, "normal");
}

/* ---------------------------------------------------------------- links */

static void dier(void *arg)
{
    term_t m = nd_test_recv(ND_INFINITY); /* 'die' */
    term_free(m);
    nd_exit(A("boom"));
}

/* Linked to the pid in its mailbox's first message, traps, waits parked for its EXIT. */
static void link_trapper(void *arg)
{
    term_t to = (term_t)(uintptr_t)arg, expect = A("boom");
    nd_trap_exit(true);
    term_t peer = nd_test_recv(5000);
    nd_link(peer);
    nd_send(to, T2(A("linked"), term_dup(nd_self())));
    report(to, nest(5, 500, NULL, wait_exit_msg, &expect));
    term_free(peer);
}

/* Linked, not trapping: dies with its peer's reason, running its hook on its own stack. */
static void link_victim(void *arg)
{
    lframe f;
    f.up = NULL;
    f.self = &f;
    f.mid = &f.w[12];
    for (int i = 0; i < 24; i++) f.w[i] = mix(300, i);
    nd_set_exit_hook(frame_hook, &f);
    term_t peer = nd_test_recv(5000);
    nd_link(peer);
    term_free(peer);
    nest(3, 301, &f, wait_forever, NULL);
}

static void body_links(void *arg)
{
    term_t a, b, ref;
    assert_int_equal(nd_spawn(dier, NULL, NULL, &b), 0);
    assert_int_equal(nd_spawn(link_trapper, (void *)(uintptr_t)nd_self(), NULL, &a), 0);
    nd_send(a, term_dup(b));
    term_t m = nd_test_recv(5000);
    assert_true(term_tuple_elem(m, 0) == A("linked"));
    term_free(m);
    assert_true(wait_parked(a, 5000));
    nd_send(b, A("die"));
    expect_done(a);
    term_free(a);
    term_free(b);

    /* the non-trapping side dies of the link, running its hook on its put-back stack */
    atomic_store(&hook_ok, 0);
    assert_int_equal(nd_spawn(dier, NULL, NULL, &b), 0);
    assert_int_equal(nd_spawn_monitor(link_victim, NULL, &a, &ref), 0);
    nd_send(a, term_dup(b));
    nd_sleep(5);
    assert_true(wait_parked(a, 5000));
    nd_send(b, A("die"));
    m = nd_test_recv(10000);
    assert_true(term_tuple_elem(m, 0) == A("DOWN") && term_tuple_elem(m, 4) == A("boom"));
    term_free(m);
    assert_int_equal(atomic_load(&hook_ok), 1);
    assert_true(atomic_load(&hook_reason) == A("boom"));
    term_free(a);
    term_free(b);
    term_free(ref);
}

static void test_links(void **state)
{
    nd_test_run(body_links, NULL, "normal");
}

/* ---------------------------------------------------------------- monitors, selective receive */

static bool is_down_for(term_t m, void *ud)
{
    const term_t *ref = ud; /* a pointer into the receiver's own stack */
    return term_is_tuple(m) && term_tuple_arity(m) == 5 && term_tuple_elem(m, 0) == A("DOWN") &&
           term_equal(term_tuple_elem(m, 1), *ref);
}

static bool wait_down(void *ud)
{
    term_t ref = *(term_t *)ud, m;
    term_t *refp = &ref;
    int rc = nd_receive_if(is_down_for, refp, ND_INFINITY, &m);
    bool ok = rc == 0 && term_tuple_elem(m, 4) == A("boom") && refp == &ref;
    term_free(m);
    /* the messages it skipped are still there, in order */
    for (int i = 0; i < 3 && ok; i++) {
        ok = nd_receive(0, &m) == 0 && term_is_tuple(m) && term_tuple_elem(m, 1) == I(i);
        term_free(m);
    }
    return ok;
}

static void watcher(void *arg)
{
    term_t to = (term_t)(uintptr_t)arg;
    term_t peer = nd_test_recv(5000), ref;
    nd_monitor(peer, &ref);
    nd_send(to, A("monitoring"));
    report(to, nest(5, 600, NULL, wait_down, &ref));
    term_free(peer);
    term_free(ref);
}

static term_pattern *pick_pat;

static bool wait_pick(void *ud)
{
    term_t vars[1] = {TERM_NONE}, m;
    nd_clause cl[1] = {{pick_pat, vars}};
    nd_recv_mark();
    nd_send(*(term_t *)ud, A("marked"));
    nd_recv r = {NULL, NULL, cl, 1, ND_INFINITY, true};
    int rc = nd_receive_ex(&r, &m);
    bool ok = rc == 0 && vars[0] == I(42) && cl[0].vars == vars;
    term_free(m);
    /* {skip, I} sent before and after the mark stay, in order */
    for (int i = 0; i < 4 && ok; i++) {
        ok = nd_receive(0, &m) == 0 && term_tuple_elem(m, 1) == I(i);
        term_free(m);
    }
    return ok;
}

static void picker(void *arg)
{
    term_t to = (term_t)(uintptr_t)arg;
    term_t first = nd_test_recv(5000); /* {skip, 0}, before the mark */
    /* put it back at the end of nothing: resend to self keeps the order check simple */
    nd_send(nd_self(), first);
    report(to, nest(4, 700, NULL, wait_pick, &to));
}

static void body_selective(void *arg)
{
    term_t a, b;
    /* a DOWN found by a predicate reading its receiver's stack, after skipped messages, each
    ** of which woke the parked receiver, which parked again before the next */
    assert_int_equal(nd_spawn(dier, NULL, NULL, &b), 0);
    assert_int_equal(nd_spawn(watcher, (void *)(uintptr_t)nd_self(), NULL, &a), 0);
    nd_send(a, term_dup(b));
    term_t m = nd_test_recv(5000);
    assert_true(m == A("monitoring"));
    for (int i = 0; i < 3; i++) {
        assert_true(wait_parked(a, 5000));
        nd_send(a, T2(A("skip"), I(i)));
        nd_sleep(2);
    }
    assert_true(wait_parked(a, 5000));
    nd_send(b, A("die"));
    expect_done(a);
    term_free(a);
    term_free(b);

    /* clauses with variables on the receiver's stack, from a receive mark */
    term_parse_error err;
    pick_pat = term_pattern_compile("{pick, X}", 9, NULL, &err);
    assert_non_null(pick_pat);
    assert_int_equal(nd_spawn(picker, (void *)(uintptr_t)nd_self(), NULL, &a), 0);
    nd_send(a, T2(A("skip"), I(0)));
    m = nd_test_recv(5000);
    assert_true(m == A("marked"));
    for (int i = 1; i < 4; i++) {
        assert_true(wait_parked(a, 5000));
        nd_send(a, T2(A("skip"), I(i)));
    }
    assert_true(wait_parked(a, 5000));
    nd_send(a, T2(A("pick"), I(42)));
    expect_done(a);
    term_free(a);
    term_pattern_free(pick_pat);
}

static void test_selective(void **state)
{
    nd_test_run(body_selective, NULL, "normal");
}

/* ---------------------------------------------------------------- tracing on */

static void body_traced(void *arg)
{
    term_t pid;
    nd_trace_opts o = {0};
    assert_int_equal(nd_trace_start(&o), 0);
    assert_int_equal(nd_spawn(plain, (void *)(uintptr_t)nd_self(), NULL, &pid), 0);
    assert_true(wait_parked(pid, 5000));
    nd_send(pid, A("go"));
    expect_done(pid);
    assert_int_equal(nd_trace_stop(), 0);
    /* its events are there: spawn, the wait, the resumption on a put-back stack, the exit */
    static nd_event ev[65536];
    size_t n = nd_trace_drain(ev, 65536);
    term_pid_info pi;
    assert_int_equal(term_pid_get(pid, &pi), 0);
    int ins = 0, exits = 0;
    for (size_t i = 0; i < n; i++) {
        if (ev[i].pid.id != pi.id || ev[i].pid.serial != pi.serial) continue;
        ins += ev[i].kind == ND_EV_SCHED_IN;
        exits += ev[i].kind == ND_EV_EXIT;
    }
    assert_true(ins >= 2);
    assert_int_equal(exits, 1);
    term_free(pid);
}

static void test_traced(void **state)
{
    nd_test_run(body_traced, NULL, "normal");
}

/* ---------------------------------------------------------------- memory, overflow */

static size_t rss_now(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

static _Atomic int up;

static bool wait_go_counted(void *ud)
{
    atomic_fetch_add(&up, 1);
    return wait_go(ud);
}

static void shallow(void *arg)
{
    report((term_t)(uintptr_t)arg, nest(2, 800, NULL, wait_go_counted, NULL));
}

#define NMEM 400

static uint64_t parked_now(void)
{
    nd_metrics m;
    assert_int_equal(nd_metrics_get(&m), 0);
    uint64_t n = m.processes_parked;
    nd_metrics_free(&m);
    return n;
}

/* RSS drops by most of a page per parked process (runtime with a 300 ms period, so that they
** all start, and RSS is read, before the first is parked). */
static void body_rss(void *arg)
{
    term_t pids[NMEM];
    for (int i = 0; i < NMEM; i++)
        assert_int_equal(nd_spawn(shallow, (void *)(uintptr_t)nd_self(), NULL, &pids[i]), 0);
    for (int i = 0; i < 10000 && atomic_load(&up) < NMEM; i++) nd_sleep(1);
    assert_int_equal(atomic_load(&up), NMEM);
    size_t before = rss_now();
    uint64_t early = parked_now(); /* parked already (a slow machine): not counted below */
    uint64_t parked = 0;
    for (int i = 0; i < 5000 && parked < NMEM; i++) {
        nd_sleep(2);
        parked = parked_now();
    }
    assert_int_equal(parked, NMEM);
    size_t after = rss_now();
    /* each held one touched stack page and keeps the few hundred bytes in use on the heap */
    fprintf(stderr, "rss before %zu after %zu: %.0f bytes less per process parked here\n", before,
            after, ((double)before - (double)after) / (double)(NMEM - early));
#if !defined(GIRDER_ASAN) && !defined(GIRDER_TSAN)
    /* (the sanitizers' allocators keep freed memory in quarantine and their shadow of the
    ** stacks stays resident: RSS says nothing there) */
    assert_true(early <= NMEM / 2); /* else the machine is too slow for the figure to mean much */
    assert_true(before > after && before - after >= (NMEM - early) * 2048);
#endif
    for (int i = 0; i < NMEM; i++) assert_true(is_parked(pids[i]));
    for (int i = 0; i < NMEM; i++) nd_send(pids[i], A("go"));
    for (int i = 0; i < NMEM; i++) {
        term_t r = nd_test_recv(10000);
        assert_true(term_tuple_elem(r, 2) == A("ok"));
        term_free(r);
        term_free(pids[i]);
    }
}

static int setup_park300(void **state)
{
    nd_config c = {0};
    c.schedulers = 2;
    c.park_after_ms = 300;
    (void)state;
    return nd_init(&c);
}

static void test_rss(void **state)
{
    atomic_store(&up, 0);
    nd_test_run(body_rss, NULL, "normal");
}

static int down_deep(int n)
{
    volatile char buf[512];
    buf[0] = (char)n;
    if (n == 0) return buf[0];
    return down_deep(n - 1) + buf[0];
}

static void overflower(void *arg)
{
    term_t m = nd_test_recv(ND_INFINITY);
    term_free(m);
    down_deep(1 << 20); /* 512 MB of frames: far past the stack */
}

/* Guards survive the madvise that gives back neighbouring stacks together: a stack overflow
** after a park still ends only that process, with stack_overflow. */
static void body_overflow(void *arg)
{
    term_t pids[64], refs[64];
    for (int i = 0; i < 64; i++)
        assert_int_equal(nd_spawn_monitor(overflower, NULL, &pids[i], &refs[i]), 0);
    for (int i = 0; i < 64; i++) assert_true(wait_parked(pids[i], 5000));
    for (int i = 0; i < 64; i++) nd_send(pids[i], A("go"));
    for (int i = 0; i < 64; i++) {
        term_t m = nd_test_recv(10000);
        assert_true(term_tuple_elem(m, 0) == A("DOWN") &&
                    term_tuple_elem(m, 4) == A("stack_overflow"));
        term_free(m);
        term_free(pids[i]);
        term_free(refs[i]);
    }
}

static void test_overflow(void **state)
{
    nd_overflow_handler_install(); /* cmocka installs its own SIGSEGV handler per test */
    nd_test_run(body_overflow, NULL, "normal");
}

/* ---------------------------------------------------------------- stacks given back at exit */

#define NEXIT 3000

static _Atomic int exit_up;

static void deep_waiter(void *arg)
{
    volatile char b[8192]; /* two or three stack pages in use */
    b[0] = 1;
    b[sizeof b - 1] = b[0];
    atomic_fetch_add(&exit_up, 1);
    term_t m = nd_test_recv(ND_INFINITY);
    term_free(m);
    (void)arg;
}

/* Stacks of processes that exit beyond the hot pools are given back in few calls (a slab of 64 at
** a time, the rest within a watchdog tick): RSS goes back down, and the stacks, reused,
** keep their guards (every overflow still ends only its process, with stack_overflow). Without
** parking, so that every waiter still holds its touched pages when it exits. */
static void body_exit_release(void *arg)
{
    static term_t pids[NEXIT], refs[NEXIT];
    size_t base = nd_process_count(), r0 = rss_now();
    for (int i = 0; i < NEXIT; i++)
        assert_int_equal(nd_spawn(deep_waiter, NULL, NULL, &pids[i]), 0);
    for (int i = 0; i < 20000 && atomic_load(&exit_up) < NEXIT; i++) nd_sleep(1);
    assert_int_equal(atomic_load(&exit_up), NEXIT);
    size_t r1 = rss_now();
    nd_metrics m0, m1;
    assert_int_equal(nd_metrics_get(&m0), 0);
    for (int i = 0; i < NEXIT; i++) {
        nd_send(pids[i], A("stop"));
        term_free(pids[i]);
    }
    for (int i = 0; i < 20000 && nd_process_count() > base; i++) nd_sleep(1);
    assert_int_equal(nd_process_count(), base);
    nd_sleep(50); /* the watchdog gives back what is queued within a tick (10 ms) */
    size_t r2 = rss_now();
    assert_int_equal(nd_metrics_get(&m1), 0);
    uint64_t calls = m1.stack_releases - m0.stack_releases;
    nd_metrics_free(&m0);
    nd_metrics_free(&m1);
    fprintf(stderr,
            "exit release: rss %zu KiB, %d up %zu KiB, after they exited %zu KiB; %llu madvise\n",
            r0 >> 10, NEXIT, r1 >> 10, r2 >> 10, (unsigned long long)calls);
    /* stacks handed out in order from slabs of 64 go back a slab a call, whatever order two
    ** schedulers end the processes in (a window of the last exits made 266-1,557 calls here).
    ** Not under TSan: its processes end so slowly that slabs wait ticks half full, and the
    ** watchdog gives those back a run at a time (662-779 calls there). */
    assert_true(calls > 0);
#if !defined(GIRDER_TSAN)
    assert_true(calls <= NEXIT / 16);
#endif
#if !defined(GIRDER_ASAN) && !defined(GIRDER_TSAN)
    assert_true(r1 > r0 + (size_t)NEXIT * 4096); /* they did touch their pages */
    assert_true(r2 < r0 + (r1 - r0) / 4);
#endif
    for (int i = 0; i < NEXIT; i++)
        assert_int_equal(nd_spawn_monitor(overflower, NULL, &pids[i], &refs[i]), 0);
    for (int i = 0; i < NEXIT; i++) nd_send(pids[i], A("go"));
    for (int i = 0; i < NEXIT; i++) {
        term_t m = nd_test_recv(20000);
        assert_true(term_tuple_elem(m, 0) == A("DOWN") &&
                    term_tuple_elem(m, 4) == A("stack_overflow"));
        term_free(m);
        term_free(pids[i]);
        term_free(refs[i]);
    }
}

static void test_exit_release(void **state)
{
    nd_overflow_handler_install();
    atomic_store(&exit_up, 0);
    nd_test_run(body_exit_release, NULL, "normal");
}

/* ---------------------------------------------------------------- hibernation, never */

static void after_hibernate(void *arg)
{
    term_t m = nd_test_recv(ND_INFINITY);
    bool ok = m == A("again");
    term_free(m);
    report((term_t)(uintptr_t)arg, ok);
}

static void hibernator(void *arg)
{
    term_t to = (term_t)(uintptr_t)arg;
    bool ok = nest(3, 900, NULL, wait_go, NULL);
    if (!ok) report(to, false);
    nd_send(to, A("hibernating"));
    nd_hibernate(after_hibernate, arg);
}

static void body_hibernate(void *arg)
{
    term_t pid;
    assert_int_equal(nd_spawn(hibernator, (void *)(uintptr_t)nd_self(), NULL, &pid), 0);
    assert_true(wait_parked(pid, 5000));
    nd_send(pid, A("go"));
    term_t m = nd_test_recv(5000);
    assert_true(m == A("hibernating"));
    nd_sleep(4 * PARK_MS); /* swept while it holds no stack at all */
    assert_false(is_parked(pid));
    nd_send(pid, A("again"));
    expect_done(pid);
    term_free(pid);
}

static void test_hibernate(void **state)
{
    nd_test_run(body_hibernate, NULL, "normal");
}

static void body_never(void *arg)
{
    term_t pid;
    assert_int_equal(nd_spawn(plain, (void *)(uintptr_t)nd_self(), NULL, &pid), 0);
    assert_false(wait_parked(pid, 600));
    nd_metrics m;
    assert_int_equal(nd_metrics_get(&m), 0);
    assert_int_equal(m.stack_parks, 0);
    nd_metrics_free(&m);
    nd_send(pid, A("go"));
    expect_done(pid);
    term_free(pid);
}

static void test_never(void **state)
{
    nd_test_run(body_never, NULL, "normal");
}

/* ---------------------------------------------------------------- many wake-ups around parks */

#define NSTRESS 64
#define ROUNDS  25

static _Atomic int stress_bad;

static bool stress_wait(void *ud)
{
    uint64_t *rng = ud;
    for (int r = 0; r < ROUNDS; r++) {
        *rng = *rng * 6364136223846793005ULL + 1442695040888963407ULL;
        term_t m;
        /* a timeout near the park period or a message from the pinger, whichever first */
        int rc = nd_receive((int64_t)(5 + (*rng >> 33) % (3 * PARK_MS)), &m);
        if (rc == 0) term_free(m);
    }
    return true;
}

static void stressed(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    term_t to = nd_test_recv(5000);
    bool ok = nest(3, 1000 + rng, NULL, stress_wait, &rng);
    if (!ok) atomic_fetch_add(&stress_bad, 1);
    report(to, ok);
    term_free(to);
}

static void body_stress(void *arg)
{
    term_t pids[NSTRESS];
    for (int i = 0; i < NSTRESS; i++) {
        assert_int_equal(nd_spawn(stressed, (void *)(uintptr_t)(i + 1), NULL, &pids[i]), 0);
        nd_send(pids[i], term_dup(nd_self()));
    }
    uint64_t rng = 7;
    for (int k = 0; k < 200; k++) { /* pings at random moments, to random processes */
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        nd_send(pids[(rng >> 33) % NSTRESS], A("ping"));
        if (k % 8 == 0) nd_sleep((int64_t)((rng >> 40) % PARK_MS));
    }
    nd_metrics m;
    for (int i = 0; i < NSTRESS; i++) {
        term_t r = nd_test_recv(20000);
        assert_true(term_tuple_elem(r, 2) == A("ok"));
        term_free(r);
        term_free(pids[i]);
    }
    assert_int_equal(nd_metrics_get(&m), 0);
    fprintf(stderr, "stress: %llu parks\n", (unsigned long long)m.stack_parks);
    assert_true(m.stack_parks > 0);
    nd_metrics_free(&m);
}

static void test_stress(void **state)
{
    atomic_store(&stress_bad, 0);
    nd_test_run(body_stress, NULL, "normal");
    assert_int_equal(atomic_load(&stress_bad), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_resume, setup_park, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup_park, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_exit_signals, setup_park, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_links, setup_park, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_selective, setup_park, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_traced, setup_park, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_rss, setup_park300, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_overflow, setup_park, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_hibernate, setup_park, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_stress, setup_park, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_never, setup_never, nd_test_teardown),
        cmocka_unit_test_setup_teardown(test_exit_release, setup_never, nd_test_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
