/* Child commands for benchmarks: spawn in a process group, read their output, stop by pid. */
#include "bench_child.h"

#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

bench_child bench_spawn(const char *cmd)
{
    bench_child c = {-1, NULL};
    int p[2];
    if (pipe(p) != 0) return c;
    c.pid = fork();
    if (c.pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the benchmark */
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    if (c.pid < 0) {
        close(p[0]);
        return c;
    }
    c.out = fdopen(p[0], "r");
    return c;
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
    if (c->out) fclose(c->out);
    c->out = NULL;
}

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
