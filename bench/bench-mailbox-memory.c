/* BENCH mailbox_message_memory: bytes per queued small message ({msg, I}), Girder vs Erlang. */
#include "bench_args.h"
#include "nd_bench.h"
#include <malloc.h>
#include <unistd.h>

/*
** A process that never receives is sent N messages {msg, I}. Girder: what malloc holds for
** them (mallinfo2's bytes in use, chunk headers and rounding included: the queue node and the
** term). Erlang: what process_info(P, memory) grows by. ratio = erlang / girder. Then the
** process is killed and stderr shows how much of the resident memory came back.
*/
#define N 1000000

static bool never(term_t m, void *ud)
{
    (void)m;
    (void)ud;
    return false;
}

static void sink(void *arg)
{
    (void)arg;
    term_t m;
    nd_receive_if(never, NULL, ND_INFINITY, &m);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static double per_msg;

static void bench(void *arg)
{
    (void)arg;
    nd_spawn_opts o = {0};
    o.mailbox_limit = ND_MBOX_UNLIMITED;
    term_t p, ref;
    nd_spawn(sink, NULL, &o, &p);
    nd_sleep(10);
    long r0 = rss_kb();
    size_t m0 = mallinfo2().uordblks;
    term_t tag = term_atom("msg");
    for (int i = 0; i < N; i++) nd_send(p, term_tuplev(2, tag, term_int(i)));
    for (int i = 0; i < 10000; i++) {
        nd_proc_info pi;
        nd_process_info(p, &pi);
        size_t len = pi.message_queue_len;
        nd_proc_info_free(&pi);
        if (len == N) break;
        nd_sleep(1);
    }
    per_msg = (double)(mallinfo2().uordblks - m0) / N;
    long r1 = rss_kb();
    nd_monitor(p, &ref);
    nd_exit_signal(p, term_atom("kill"));
    term_t down;
    nd_receive(ND_INFINITY, &down);
    term_free(down);
    nd_sleep(300);
    long r2 = rss_kb();
    fprintf(stderr, "%d messages queued: RSS +%ld KB; 300 ms after the kill: +%ld KB\n", N, r1 - r0,
            r2 - r0);
    term_free(ref);
    term_free(p);
}

static const char usage[] =
    "usage: bench-mailbox-memory [-h | --help]\n"
    "Bytes per queued message: 1,000,000 {msg, I} sent to a process that never receives;\n"
    "Girder: malloc's bytes in use, Erlang: process_info(P, memory). One run per side.\n"
    "One BENCH line (mailbox_message_memory) on stdout, details on stderr.\n"
    "\n"
    "Environment:\n" BA_ENV_NO_ERLANG BA_ENV_LIBNODE BA_ERL_PATH;

int main(int argc, char **argv)
{
    ba_check(argc, argv, usage, NULL);
    bs_machine("bench-mailbox-memory");
    if (nd_init(NULL) != 0) return 1;
    nd_run(bench, NULL, ND_INFINITY, NULL);
    nd_shutdown(10000);
    double erl = nb_erlang("libnode_bench:mailbox_memory(1000000)", "");
    nb_print("mailbox_message_memory", per_msg, erl, "bytes", false);
    return 0;
}
