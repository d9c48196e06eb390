/* Timeouts as deadlines: millisecond timeouts (negative = forever) to absolute clock times. */
#ifndef GIRDER_DEADLINE_H
#define GIRDER_DEADLINE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

_Static_assert(sizeof(time_t) >= 8, "deadlines need a 64-bit time_t");

/*
** Internal, header-only. Every blocking call of Girder takes a timeout in milliseconds where a
** negative value (ND_INFINITY) means "wait forever" and 0 means "do not wait"; these turn such
** a timeout into the absolute times the system's waiting calls want, in one place.
*/

#define GIRDER__NS_PER_S  1000000000LL
#define GIRDER__NS_PER_MS 1000000LL

/* The time on clock in nanoseconds. */
static inline uint64_t girder__now_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * (uint64_t)GIRDER__NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* The time on clock in milliseconds. */
static inline int64_t girder__now_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / GIRDER__NS_PER_MS;
}

/* Nanoseconds as a timespec (absolute times of a clock, or durations). */
static inline struct timespec girder__ts_of_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / (uint64_t)GIRDER__NS_PER_S),
                          (long)(ns % (uint64_t)GIRDER__NS_PER_S)};
    return ts;
}

/* A duration of ms milliseconds as a timespec, for nanosleep(); negative counts as 0. */
static inline struct timespec girder__ts_of_ms(int64_t ms)
{
    if (ms < 0) ms = 0;
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * GIRDER__NS_PER_MS};
    return ts;
}

/*
** The absolute time timeout_ms from now on clock, in *ts, for pthread_cond_timedwait() (with a
** condition variable on that clock) and the like. Returns true with *ts set, or false with *ts
** untouched when timeout_ms is negative: no deadline, the caller waits forever. (With a 64-bit
** time_t no int64_t timeout overflows it.)
*/
static inline bool girder__deadline_ts(clockid_t clock, int64_t timeout_ms, struct timespec *ts)
{
    if (timeout_ms < 0) return false;
    struct timespec now;
    clock_gettime(clock, &now);
    int64_t s = timeout_ms / 1000;
    long ns = now.tv_nsec + (long)(timeout_ms % 1000) * GIRDER__NS_PER_MS;
    if (ns >= GIRDER__NS_PER_S) {
        ns -= GIRDER__NS_PER_S;
        s++;
    }
    ts->tv_sec = (time_t)((int64_t)now.tv_sec + s);
    ts->tv_nsec = ns;
    return true;
}

/* The CLOCK_MONOTONIC deadline, in milliseconds, timeout_ms from now; -1 (none) when
** timeout_ms is negative. Saturates at INT64_MAX. */
static inline int64_t girder__deadline_ms(int64_t timeout_ms)
{
    if (timeout_ms < 0) return -1;
    int64_t now = girder__now_ms(CLOCK_MONOTONIC);
    return timeout_ms > INT64_MAX - now ? INT64_MAX : now + timeout_ms;
}

/* Milliseconds left before a girder__deadline_ms() deadline, as poll() takes them: -1 for none,
** 0 once it has passed, at most INT_MAX. */
static inline int girder__ms_left(int64_t deadline_ms)
{
    if (deadline_ms < 0) return -1;
    int64_t left = deadline_ms - girder__now_ms(CLOCK_MONOTONIC);
    if (left <= 0) return 0;
    return left > INT_MAX ? INT_MAX : (int)left;
}

#endif
