/* Test module (built as order_a, one_for_one, and order_b, one_for_all): an app of two workers
 * that record their stop order. */
#include <fcntl.h>
#include <girder/module.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef TESTAPP_NAME
#error "TESTAPP_NAME must name the module"
#endif

/* Appends one line to $GIRDER_TEST_ORDER (if set): the test reads the order of events. */
static void record(const char *what, const char *who)
{
    const char *path = getenv("GIRDER_TEST_ORDER");
    if (!path) return;
    char line[256];
    int n = snprintf(line, sizeof line, "%s %s %s\n", what, TESTAPP_NAME, who);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
    close(fd);
}

static int w_init(void *arg, void **state, term_t *reason)
{
    (void)reason;
    *state = arg;
    return 0;
}

static int w_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    (void)state;
    (void)req;
    (void)from;
    (void)reason;
    *reply = term_atom("pong");
    return ND_REPLY;
}

static void w_terminate(void *state, term_t reason)
{
    (void)reason;
    record("terminate", (const char *)state);
}

static const nd_server_ops w_ops = {w_init, w_call, NULL, NULL, w_terminate};

/* A worker registered as <module>_<id>, trapping exits so its terminate runs at shutdown. */
static int w_start(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    (void)extra;
    char name[128];
    snprintf(name, sizeof name, "%s_%s", TESTAPP_NAME, (const char *)arg);
    nd_server_opts o = {0};
    o.name = term_atom(name);
    o.link = true;
    o.trap_exit = true;
    return nd_server_start(&w_ops, arg, &o, pid, reason);
}

static void app_stop(void)
{
    record("stop", "app");
}

static int ping(void *ud, term_t args, term_t *res)
{
    (void)ud;
    (void)args;
    *res = term_atom("pong");
    return DIST_RETURN;
}

/* <module>:echo_args(A, B) -> {A, B}, for checking arguments arrive. */
static int echo_args(void *ud, term_t args, term_t *res)
{
    (void)ud;
    *res = term_tuplev(2, term_dup(term_hd(args)), term_dup(term_hd(term_tl(args))));
    return DIST_RETURN;
}

static const girder_export exports[] = {
    {"ping", 0, ping, NULL},
    {"echo_args", 2, echo_args, NULL},
};

static const girder_child children[] = {
    {"w1", w_start, "w1", ND_PERMANENT, 2000, ND_WORKER},
    {"w2", w_start, "w2", ND_PERMANENT, 2000, ND_WORKER},
};

#ifndef TESTAPP_STRATEGY
#define TESTAPP_STRATEGY ND_ONE_FOR_ONE
#endif
/* 3 restarts in 5 s: a 4th crash within the period ends the app (modules.sh counts on it) */
static const girder_app app = {.strategy = TESTAPP_STRATEGY,
                               .intensity = 3,
                               .period_ms = 5000,
                               .children = children,
                               .nchildren = GIRDER_COUNT(children),
                               .stop = app_stop};

GIRDER_MODULE(.name = TESTAPP_NAME, .version = "0.1.0", .exports = exports,
              .nexports = GIRDER_COUNT(exports), .app = &app);
