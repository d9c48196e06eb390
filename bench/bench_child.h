/* Child commands for benchmarks that run other programs (erl nodes, girderd, port mappers). */
#ifndef GIRDER_BENCH_CHILD_H
#define GIRDER_BENCH_CHILD_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

typedef struct bench_child {
    pid_t pid; /* also the process group of everything the command starts */
    FILE *out; /* the command's stdout */
    FILE *in;  /* the command's stdin (bench_spawn_io only; else NULL) */
} bench_child;

/* Runs `sh -c cmd` in a process group of its own that dies with the benchmark.
** pid is -1 on failure. */
bench_child bench_spawn(const char *cmd);
/* bench_spawn with a pipe to the command's stdin as well (c.in, line-buffered). */
bench_child bench_spawn_io(const char *cmd);
/* For a child that runs one round per line it reads (dist_bench:serve, libnode_bench:serve):
** asks for one round and returns the number it prints, or -1 (the child failed or ended). */
double bench_round(bench_child *c);
/* Reads lines until one starts with want (0), or with want NULL until one starts with a
** number (0, the number in *num); -1 at the end of the output. */
int bench_read_until(bench_child *c, const char *want, double *num);
/* Sends sig to the child's group, waits up to 5 s, then SIGKILLs it; closes its output. */
void bench_stop(bench_child *c, int sig);
/* Starts bindir/girder-epmd on a free random loopback port (up to 10 tries; seed varies the
** ports tried) and waits until it answers. pid is -1 on failure; *port gets the port. */
bench_child bench_start_epmd(const char *bindir, unsigned seed, uint16_t *port);
/* CLOCK_MONOTONIC in seconds. */
double bench_now(void);
/* Removes dir (a directory of the benchmark's, from mkdtemp) and its contents when the program
** leaves through exit() or main's return, by whatever path: a failed erlc or port mapper as
** well as the end. One directory per program; children leave with _exit() or exec. */
void bench_tmpdir_at_exit(const char *dir);
/* Removes that directory now (the normal end of a benchmark): 0, or -1 if rm failed. */
int bench_tmpdir_remove(void);

#endif
