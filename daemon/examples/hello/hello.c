/* hello: the smallest girderd module — hello:greet(Arg) answers {hello, Arg}. */
#include <girder/module.h>

/* hello:greet/1. args is the argument list (borrowed); the result is ours to hand over. */
static int greet(void *ud, term_t args, term_t *result)
{
    (void)ud;
    *result = term_tuplev(2, term_atom("hello"), term_dup(term_hd(args)));
    return DIST_RETURN;
}

static const girder_export exports[] = {
    {"greet", 1, greet, NULL},
};

GIRDER_MODULE(.name = "hello", .version = "1.0.0", .exports = exports,
              .nexports = GIRDER_COUNT(exports));
