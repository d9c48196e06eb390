/* The default platform: monotonic clock and per-thread parkers (mutex + condition variable). */
#include "nd_int.h"
#include "girder_deadline.h"

struct nd_parker {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool token;
};

static uint64_t dflt_now(void *ud)
{
    return girder__now_ns(CLOCK_MONOTONIC);
}

static nd_parker *dflt_parker_new(void *ud)
{
    nd_parker *pk = calloc(1, sizeof *pk);
    if (!pk) return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&pk->mu, NULL);
    pthread_cond_init(&pk->cv, &ca);
    pthread_condattr_destroy(&ca);
    return pk;
}

static void dflt_parker_free(void *ud, nd_parker *pk)
{
    if (!pk) return;
    pthread_mutex_destroy(&pk->mu);
    pthread_cond_destroy(&pk->cv);
    free(pk);
}

static void dflt_park(void *ud, nd_parker *pk, uint64_t deadline)
{
    pthread_mutex_lock(&pk->mu);
    while (!pk->token) {
        if (deadline == UINT64_MAX) {
            pthread_cond_wait(&pk->cv, &pk->mu);
        } else {
            if (dflt_now(ud) >= deadline) break;
            struct timespec ts = girder__ts_of_ns(deadline);
            pthread_cond_timedwait(&pk->cv, &pk->mu, &ts);
        }
    }
    pk->token = false;
    pthread_mutex_unlock(&pk->mu);
}

static void dflt_unpark(void *ud, nd_parker *pk)
{
    pthread_mutex_lock(&pk->mu);
    pk->token = true;
    pthread_cond_signal(&pk->cv);
    pthread_mutex_unlock(&pk->mu);
}

static const nd_platform g_default = {dflt_now,  dflt_parker_new, dflt_parker_free,
                                      dflt_park, dflt_unpark,     NULL};

const nd_platform *nd_platform_default(void)
{
    return &g_default;
}
