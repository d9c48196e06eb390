/* Child commands for benchmarks: spawn in a process group, read their output, stop by pid. */
#include "bench_child.h"

#include <girder/epmd.h>

#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <limits.h>
#include <unistd.h>

static bench_child spawn(const char *cmd, bool with_stdin)
{
    bench_child c = {-1, NULL, NULL};
    int p[2], q[2] = {-1, -1};
    if (pipe(p) != 0) return c;
    if (with_stdin && pipe(q) != 0) {
        close(p[0]);
        close(p[1]);
        return c;
    }
    c.pid = fork();
    if (c.pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        if (with_stdin) {
            dup2(q[0], 0);
            close(q[0]);
            close(q[1]);
        }
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the benchmark */
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    if (with_stdin) close(q[0]);
    if (c.pid < 0) {
        close(p[0]);
        if (with_stdin) close(q[1]);
        return c;
    }
    c.out = fdopen(p[0], "r");
    if (with_stdin) {
        c.in = fdopen(q[1], "w");
        if (c.in) setvbuf(c.in, NULL, _IOLBF, 0);
    }
    return c;
}

bench_child bench_spawn(const char *cmd)
{
    return spawn(cmd, false);
}

bench_child bench_spawn_io(const char *cmd)
{
    return spawn(cmd, true);
}

double bench_round(bench_child *c)
{
    double v = -1;
    if (!c->in || !c->out || c->pid <= 0) return -1;
    if (fputs("go\n", c->in) < 0 || fflush(c->in) != 0) return -1;
    if (bench_read_until(c, NULL, &v) != 0) return -1;
    return v;
}

int bench_read_until(bench_child *c, const char *want, double *num)
{
    char line[512];
    while (c->out && fgets(line, sizeof line, c->out)) {
        if (want && !strncmp(line, want, strlen(want))) return 0;
        if (!want && num && sscanf(line, "%lf", num) == 1) return 0;
    }
    return -1;
}

void bench_stop(bench_child *c, int sig)
{
    if (c->pid > 0) {
        kill(-c->pid, sig);
        for (int i = 0; i < 50; i++) {
            if (waitpid(c->pid, NULL, WNOHANG) == c->pid) {
                c->pid = -1;
                break;
            }
            usleep(100000);
        }
        if (c->pid > 0) {
            kill(-c->pid, SIGKILL);
            waitpid(c->pid, NULL, 0);
            c->pid = -1;
        }
    }
    if (c->in) fclose(c->in);
    c->in = NULL;
    if (c->out) fclose(c->out);
    c->out = NULL;
}

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bench_child bench_start_epmd(const char *bindir, unsigned seed, uint16_t *port)
{
    bench_child epmd = {-1, NULL, NULL};
    char cmd[PATH_MAX + 128];
    for (unsigned tries = 0; tries < 10 && epmd.pid < 0; tries++) {
        *port = (uint16_t)(20000 + (seed + tries * 7919u) % 40000);
        snprintf(cmd, sizeof cmd, "exec %s/girder-epmd -port %u -address 127.0.0.1 2>/dev/null",
                 bindir, *port);
        epmd = bench_spawn(cmd);
        usleep(300000);
        epmd_name_list nl;
        if (epmd_names(NULL, *port, 1000, &nl) == 0) {
            epmd_names_free(&nl);
        } else {
            bench_stop(&epmd, SIGTERM);
            epmd.pid = -1;
        }
    }
    return epmd;
}

static char tmpdir_to_remove[4096];

int bench_tmpdir_remove(void)
{
    if (!tmpdir_to_remove[0]) return 0;
    char cmd[sizeof tmpdir_to_remove + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir_to_remove);
    int rc = system(cmd) == 0 ? 0 : -1;
    if (rc) fprintf(stderr, "cannot remove %s\n", tmpdir_to_remove);
    tmpdir_to_remove[0] = 0;
    return rc;
}

static void remove_tmpdir(void)
{
    bench_tmpdir_remove();
}

void bench_tmpdir_at_exit(const char *dir)
{
    if (strlen(dir) >= sizeof tmpdir_to_remove || strchr(dir, '\'')) return;
    static bool registered;
    strcpy(tmpdir_to_remove, dir);
    if (!registered) registered = atexit(remove_tmpdir) == 0;
}
