/* Internal interface between the girder CLI's dispatcher and its commands. */
#ifndef GIRDER_CLI_H
#define GIRDER_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A top-level command: `girder NAME ARGS...`. run() gets argv with argv[0] == NAME and
** returns the process exit status (0 ok, 1 failure, 2 usage error). */
typedef struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} cli_command;

int cli_cmd_term(int argc, char **argv);

/* Reads all of f into a malloc'ed buffer (NUL-terminated for text use). 0 or -errno. */
int cli_read_all(FILE *f, uint8_t **data, size_t *len);
/* Writes all bytes to f; 0 or -errno. */
int cli_write_all(FILE *f, const void *data, size_t len);
/* Prints "girder: <fmt>\n" on stderr. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
