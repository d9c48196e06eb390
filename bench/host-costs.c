/* host-costs: what the kernel and the hypervisor charge on this machine for the operations the
** benchmarks are made of (a system call, a page fault, a wake-up across processes and across
** threads), so that figures from two machines of one kind can be told apart. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_args.h"
#include "bench_stats.h"

/*
** Each figure is the median of BATCHES timed batches (the host's phases move single batches):
**   syscall_ns      getppid() through syscall(2), the cheapest call there is;
**   page_fault_ns   the first write to a page of a fresh private anonymous mapping (the fault,
**                   the zeroed page, and on a virtual machine whatever the host adds);
**   wake_procs_us   one round trip of a byte between two processes over two pipes: two
**                   wake-ups of a sleeping thread and, on one core, two switches between
**                   address spaces (the floor under a round trip between two nodes);
**   wake_threads_us the same between two threads of one process (no address-space switch).
*/

#define BATCHES 5

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double syscall_ns(void)
{
    enum { N = 20000 };
    double v[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        double t0 = now_s();
        for (int i = 0; i < N; i++) syscall(SYS_getppid);
        v[b] = (now_s() - t0) / N * 1e9;
    }
    return bs_median(v, BATCHES);
}

static double page_fault_ns(void)
{
    enum { PAGES = 256 };
    long pg = sysconf(_SC_PAGESIZE);
    double v[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        char *m = mmap(NULL, (size_t)PAGES * (size_t)pg, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return -1;
        double t0 = now_s();
        for (long i = 0; i < PAGES; i++) ((volatile char *)m)[i * pg] = 1;
        v[b] = (now_s() - t0) / PAGES * 1e9;
        munmap(m, (size_t)PAGES * (size_t)pg);
    }
    return bs_median(v, BATCHES);
}

/* The echoing side of a pipe round trip: reads a byte from in, writes it to out, until EOF. */
static void echo_loop(int in, int out)
{
    char c;
    while (read(in, &c, 1) == 1)
        if (write(out, &c, 1) != 1) break;
}

static void *echo_thread(void *arg)
{
    int *fd = arg;
    echo_loop(fd[0], fd[1]);
    return NULL;
}

/* Round trips through the echo at the other ends of to/from, median of BATCHES batches. */
static double ping(int to, int from)
{
    enum { WARM = 200, N = 2000 };
    double v[BATCHES];
    char c = 'x';
    for (int i = 0; i < WARM; i++)
        if (write(to, &c, 1) != 1 || read(from, &c, 1) != 1) return -1;
    for (int b = 0; b < BATCHES; b++) {
        double t0 = now_s();
        for (int i = 0; i < N; i++)
            if (write(to, &c, 1) != 1 || read(from, &c, 1) != 1) return -1;
        v[b] = (now_s() - t0) / N * 1e6;
    }
    return bs_median(v, BATCHES);
}

/* wake_procs_us (threads false) or wake_threads_us (true); -1 if the echo could not start. */
static double wake_us(bool threads)
{
    int a[2], b[2];
    if (pipe(a) != 0) return -1;
    if (pipe(b) != 0) {
        close(a[0]);
        close(a[1]);
        return -1;
    }
    double r = -1;
    if (threads) {
        pthread_t t;
        int fd[2] = {a[0], b[1]};
        if (pthread_create(&t, NULL, echo_thread, fd) == 0) {
            r = ping(a[1], b[0]);
            close(a[1]); /* the echo reads EOF */
            pthread_join(t, NULL);
        } else {
            close(a[1]);
        }
    } else {
        pid_t pid = fork();
        if (pid == 0) {
            close(a[1]);
            close(b[0]);
            echo_loop(a[0], b[1]);
            _exit(0);
        }
        if (pid > 0) r = ping(a[1], b[0]);
        close(a[1]);
        if (pid > 0) waitpid(pid, NULL, 0);
    }
    close(a[0]);
    close(b[0]);
    close(b[1]);
    return r;
}

static const char usage[] =
    "usage: host-costs [-h | --help]\n"
    "Measures what this machine's kernel and hypervisor charge for a system call, a page fault\n"
    "and a wake-up between two processes and between two threads (median of 5 batches each;\n"
    "well under a second), and prints one line on stdout:\n"
    "  HOST syscall_ns=N page_fault_ns=N wake_procs_us=X wake_threads_us=X\n"
    "and the machine on stderr. make bench prints it before and after the benchmarks: figures\n"
    "from two machines of one kind are comparable only when these are alike.\n"
    "See docs/performance.md.\n";

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int opt, at;
    opterr = 0;
    while ((at = optind, opt = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        if (opt == 'h') ba_help(usage);
        if (!strncmp(argv[at], "--", 2) || !optopt)
            ba_usage_error(argv, "unknown option '%s'", argv[at]);
        ba_usage_error(argv, "unknown option '-%c'", optopt);
    }
    if (optind < argc) ba_usage_error(argv, "unexpected argument '%s'", argv[optind]);
    bs_machine("host-costs");
    double sc = syscall_ns(), pf = page_fault_ns(), wp = wake_us(false), wt = wake_us(true);
    if (sc < 0 || pf < 0 || wp < 0 || wt < 0) {
        fprintf(stderr, "host-costs: a measurement failed: %s\n", strerror(errno));
        return 1;
    }
    printf("HOST syscall_ns=%.0f page_fault_ns=%.0f wake_procs_us=%.1f wake_threads_us=%.1f\n", sc,
           pf, wp, wt);
    return 0;
}
