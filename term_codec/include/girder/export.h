/* GIRDER_API: marks the declarations the shared Girder libraries export (the rest is hidden). */
#ifndef GIRDER_EXPORT_H
#define GIRDER_EXPORT_H

/*
** The libraries are compiled with -fvisibility=hidden, so only what a public header declares
** with GIRDER_API is visible outside a shared library; internal functions (the double
** underscore names) stay private even when they are not static.
*/
#if defined(__GNUC__) || defined(__clang__)
#define GIRDER_API __attribute__((visibility("default")))
#else
#define GIRDER_API
#endif

#endif
