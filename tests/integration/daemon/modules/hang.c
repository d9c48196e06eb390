/* Test module: an app whose child ignores shutdown. As hang, its shutdown time is infinite, so only
** a second signal ends a graceful stop; as slowstop, its supervisor kills it after that time. */
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

#ifndef HANG_NAME /* built as hang, and as slowstop with a shutdown time of HANG_SHUTDOWN ms */
#define HANG_NAME     "hang"
#define HANG_SHUTDOWN ND_INFINITY
#endif

static const girder_child children[] = {
    {"stubborn", child_start, NULL, ND_PERMANENT, HANG_SHUTDOWN, ND_WORKER}};
static const girder_app app = {ND_ONE_FOR_ONE, 1, 5000, children, 1, NULL};

GIRDER_MODULE(.name = HANG_NAME, .version = "0.1.0", .app = &app);
