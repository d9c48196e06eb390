/* Girder, all of it an application uses: terms, processes, the port mapper client, distribution. */
#ifndef GIRDER_GIRDER_H
#define GIRDER_GIRDER_H

/*
** One include for the application API of every Girder library (link them all: pkg-config
** girder, or CMake's Girder::dist, which brings the others). Two headers are left out on
** purpose and are included on their own when needed: girder/node_dist.h, the provider API a
** distribution layer uses to plug into libnode, and girder/epmd_uv.h, the port mapper client for
** libuv programs (it includes <uv.h>).
*/
#include <girder/version.h>
#include <girder/error.h>
#include <girder/term.h>
#include <girder/node.h>
#include <girder/epmd.h>
#include <girder/dist.h>

#endif
