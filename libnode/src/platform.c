/* The default platform: monotonic clock and per-thread parkers (one futex word each). */
#include "nd_int.h"
#include "girder_deadline.h"

#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
** A parker is one futex word: EMPTY, PARKED (its thread sleeps, or is about to) or NOTIFIED (a
** token waits). unpark makes a system call only when the thread is parked, and the woken
** thread takes no lock: the mutex + condition variable this replaces cost three to four futex
** calls per wake-up, and the woken thread often blocked again on the mutex its waker still
** held (strace of bench-dist-tcp's round trips: 3.4 futex calls per round trip on a node).
*/
enum { PK_EMPTY = 0, PK_NOTIFIED = 1, PK_PARKED = -1 };

struct nd_parker {
    _Atomic int state;
};

static uint64_t dflt_now(void *ud)
{
    return girder__now_ns(CLOCK_MONOTONIC);
}

static nd_parker *dflt_parker_new(void *ud)
{
    nd_parker *pk = calloc(1, sizeof *pk);
    if (!pk) return NULL;
    atomic_init(&pk->state, PK_EMPTY);
    return pk;
}

static void dflt_parker_free(void *ud, nd_parker *pk)
{
    free(pk);
}

/* Sleeps while pk->state is PARKED, until a wake or the absolute CLOCK_MONOTONIC deadline
** (NULL: none); spurious returns are fine, the caller looks again. */
static void futex_wait(nd_parker *pk, const struct timespec *deadline)
{
    syscall(SYS_futex, &pk->state, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, PK_PARKED, deadline,
            NULL, FUTEX_BITSET_MATCH_ANY);
}

/* Returns at an unpark (made before or during the call) or at the deadline; either way no
** token is left behind, as the contract in node.h says. */
static void dflt_park(void *ud, nd_parker *pk, uint64_t deadline)
{
    /* NOTIFIED -> EMPTY: the token was there; EMPTY -> PARKED: sleep */
    if (atomic_fetch_sub_explicit(&pk->state, 1, memory_order_acquire) == PK_NOTIFIED) return;
    for (;;) {
        if (deadline != UINT64_MAX && dflt_now(ud) >= deadline) break;
        if (deadline == UINT64_MAX) {
            futex_wait(pk, NULL);
        } else {
            struct timespec ts = girder__ts_of_ns(deadline);
            futex_wait(pk, &ts);
        }
        int notified = PK_NOTIFIED;
        if (atomic_compare_exchange_strong_explicit(&pk->state, &notified, PK_EMPTY,
                                                    memory_order_acquire, memory_order_relaxed))
            return;
    }
    atomic_exchange_explicit(&pk->state, PK_EMPTY, memory_order_acquire); /* timed out */
}

static void dflt_unpark(void *ud, nd_parker *pk)
{
    if (atomic_exchange_explicit(&pk->state, PK_NOTIFIED, memory_order_release) == PK_PARKED)
        syscall(SYS_futex, &pk->state, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0);
}

static const nd_platform g_default = {dflt_now,  dflt_parker_new, dflt_parker_free,
                                      dflt_park, dflt_unpark,     NULL};

const nd_platform *nd_platform_default(void)
{
    return &g_default;
}
