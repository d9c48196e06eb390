/* girderd's shared state: what the node runs with, and the one way to ask it to stop. */
#ifndef GIRDERD_DAEMON_H
#define GIRDERD_DAEMON_H
#include <stdbool.h>
#include <stdint.h>

/* The version: the library package's where the tree has it, else what CMake says. */
#if __has_include(<girder/version.h>)
#include <girder/version.h>
#define GD_VERSION GIRDER_VERSION_STRING
#else
#define GD_VERSION GIRDERD_VERSION
#endif

typedef struct gd_daemon {
    const char *node;    /* the node's name, once distribution has started */
    unsigned schedulers; /* resolved (never 0) */
    uint64_t start_ms;   /* CLOCK_MONOTONIC at start */
    bool hidden;
    bool tls; /* distribution over TLS (proto_dist inet_tls) */
} gd_daemon;

extern gd_daemon gd_self;

/* Asks for the graceful shutdown (as SIGTERM does); why is logged. Any thread, any number of
** times: only the first counts. */
void gd_request_stop(const char *why);
/* True once a stop has been asked for. */
bool gd_stopping(void);
uint64_t gd_now_ms(void);
#endif
