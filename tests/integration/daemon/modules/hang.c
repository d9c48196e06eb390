/* Test module: an app whose child ignores shutdown and has an infinite shutdown time, so only a
** second signal ends a graceful stop. */
#include <girder/module.h>

static void body(void *arg)
{
    (void)arg;
    nd_trap_exit(true);
    for (;;) {
        term_t m;
        if (nd_receive(ND_INFINITY, &m) == 0) term_free(m); /* the 'EXIT' from the supervisor too */
    }
}

static int child_start(void *arg, term_t extra, term_t *pid, term_t *reason)
{
    (void)arg;
    (void)extra;
    (void)reason;
    nd_spawn_opts o = {0};
    o.link = true;
    o.name = term_atom("hang_child");
    return nd_spawn(body, NULL, &o, pid);
}

static const girder_child children[] = {
    {"stubborn", child_start, NULL, ND_PERMANENT, ND_INFINITY, ND_WORKER}};
static const girder_app app = {ND_ONE_FOR_ONE, 1, 5000, children, 1, NULL};

GIRDER_MODULE(.name = "hang", .version = "0.1.0", .app = &app);
