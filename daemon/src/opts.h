/* girderd's options: one table drives the command line, the config file, the environment and
 * --help. */
#ifndef GIRDERD_OPTS_H
#define GIRDERD_OPTS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct gd_strlist {
    char **v;
    size_t n;
} gd_strlist;

/* Where a value came from (the order is the precedence: a later source overrides). */
typedef enum { GD_SRC_DEFAULT = 0, GD_SRC_ENV, GD_SRC_FILE, GD_SRC_FLAG } gd_src;

/* The resolved configuration. Strings are owned (NULL: not set). */
typedef struct gd_config {
    char *sname, *name, *cookie, *connect, *listen_addr;
    char *proto_dist, *ssl_dist_optfile; /* TLS distribution (erl's -proto_dist ...) */
    gd_strlist ssl_dist_opt;             /* erl's -ssl_dist_opt words: key value key value ... */
    bool hidden, start_epmd, demo, atoms_disconnect;
    long long listen_port, epmd_port, ticktime, setuptime, schedulers;
    long long max_new_atoms, atom_reserve, mailbox_limit;
    long long max_handshakes_per_addr, max_handshakes;
    char *mailbox_policy;
    char *control_socket; /* NULL: the default path; "": no control socket */
    long long control_max_clients, control_max_request, control_idle_timeout;
    char *log_file, *pid_file, *module_dir;
    long long log_level;
    gd_strlist modules, apps;
    char *sabotage;                /* testing only: "drop-down=N" */
    unsigned sabotage_down_one_in; /* N of sabotage (0: off), set by validation */
    /* per option (index in the table): where its value came from, and the file line */
    gd_src src[64];
    int line[64];
    /* meta */
    char *config_file;
    bool check_only;
} gd_config;

/* What parsing asked for besides running the node. */
enum { GD_RUN = 0, GD_EXIT_OK = 1, GD_EXIT_USAGE = 2 };

/*
** Fills cfg from defaults, the environment, the config file (--config / --check-config) and
** argv, in that order of increasing precedence, and validates the result. On any error prints
** one line naming the source (flag, variable, or file, line and key) to err and returns
** GD_EXIT_USAGE; --help / --version print to out and return GD_EXIT_OK; else GD_RUN.
** cfg is released with gd_config_free() in every case.
*/
int gd_config_load(gd_config *cfg, int argc, char **argv, FILE *out, FILE *err);
void gd_config_free(gd_config *cfg);

/* Prints the resolved configuration as a proplist, one key a line with its source. */
void gd_config_print(const gd_config *cfg, FILE *out);
/* The option table as a markdown table (docs/girderd.md embeds it; a test compares). */
void gd_options_markdown(FILE *out);

/* The default control socket path of a node: $XDG_RUNTIME_DIR/girder/<node>.sock, with /run
** for $XDG_RUNTIME_DIR for root (always) and for users without it; with a port mapper port other
** than 4369, .../girder/epmd-<port>/<node>.sock. Writes into buf; returns 0, or -1 if it does
** not fit. */
int gd_default_control_socket(const char *node, unsigned epmd_port, char *buf, size_t n);
#endif
