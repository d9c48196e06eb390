/* BENCH idle_process_memory: bytes per idle process over 1,000,000 server-behaviour processes
** (and per plain coroutine process, fewer: each holds a guarded stack mapping), vs Erlang. */
#include "nd_bench.h"
#include <stdatomic.h>
#include <unistd.h>

#define N_SERVER 1000000
#define N_PLAIN  25000 /* two mappings each; vm.max_map_count is 65530 */

static size_t rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
        fclose(f);
    }
    return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
}

static const nd_server_ops idle_ops = {NULL, NULL, NULL, NULL, NULL};
static double per_server, per_plain;
static term_t *pids;

static _Atomic int plain_up;

static void idle_plain(void *arg)
{
    atomic_fetch_add(&plain_up, 1);
    term_t m;
    nd_receive(ND_INFINITY, &m);
    term_free(m);
}

static void bench(void *arg)
{
    pids = malloc(sizeof(term_t) * N_SERVER);
    size_t r0 = rss();
    for (int i = 0; i < N_SERVER; i++)
        if (nd_server_start(&idle_ops, NULL, NULL, &pids[i], NULL) != 0) {
            fprintf(stderr, "server start %d failed\n", i);
            exit(1);
        }
    nd_sleep(200);
    per_server = (double)(rss() - r0) / N_SERVER;
    for (int i = 0; i < N_SERVER; i++) {
        nd_exit_signal(pids[i], term_atom("kill"));
        term_free(pids[i]);
    }
    while (nd_process_count() > 1) nd_sleep(10);
    r0 = rss();
    for (int i = 0; i < N_PLAIN; i++) nd_spawn(idle_plain, NULL, NULL, &pids[i]);
    for (int i = 0; i < 3000 && atomic_load(&plain_up) < N_PLAIN; i++) nd_sleep(5);
    nd_sleep(50);
    per_plain = (double)(rss() - r0) / N_PLAIN;
    for (int i = 0; i < N_PLAIN; i++) {
        nd_send(pids[i], term_atom("stop"));
        term_free(pids[i]);
    }
    free(pids);
}

int main(void)
{
    nd_config c = {0};
    if (nd_init(&c) != 0) return 1;
    nd_run(bench, NULL, ND_INFINITY, NULL);
    nd_shutdown(60000);
    double erl = nb_erlang("libnode_bench:idle_memory(1000000)", "+P 2000000");
    nb_print("idle_process_memory", per_server, erl, "bytes", false);
    nb_print("idle_process_memory_plain", per_plain, erl, "bytes", false);
    return 0;
}
