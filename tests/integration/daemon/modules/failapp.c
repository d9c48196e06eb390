/* Test module: an app whose only child refuses to start; loading it must not harm the node. */
#include <girder/module.h>

static int child_start(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    (void)arg;
    (void)extra;
    (void)pid;
    *reason = term_tuplev(2, term_atom("failapp"), term_atom("refused"));
    return ND_ESTART;
}

static int hello(void *ud, term_t args, term_t *res)
{
    (void)ud;
    (void)args;
    *res = term_atom("still_callable");
    return DIST_RETURN;
}

static const girder_export exports[] = {{"hello", 0, hello, NULL}};
static const girder_child children[] = {
    {"refuser", child_start, NULL, ND_PERMANENT, 1000, ND_WORKER}};
static const girder_app app = {ND_ONE_FOR_ONE, 1, 5000, children, 1, NULL};

GIRDER_MODULE(.name = "failapp", .version = "0.1.0", .exports = exports, .nexports = 1,
              .app = &app);
