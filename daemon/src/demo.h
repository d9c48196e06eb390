/* The built-in demo module of girderd (echo, kv, watch) under a root supervisor. */
#ifndef GIRDERD_DEMO_H
#define GIRDERD_DEMO_H
#include <girder/node.h>

/* Exports demo:echo/0 and demo:watch/2 and starts the root supervisor `girder_sup` with the
** registered children `echo` and `kv`. *sup gets its pid. */
int demo_start(term_t *sup);
#endif
