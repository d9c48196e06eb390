/* schedpoll: a Girder node that echoes what a real erl node sends it and reports which threads
 * read the messages off the socket: the transport's loop thread, or idle schedulers running
 * its loop (dist_stats.reads_loop_thread / reads_schedulers; docs/distribution.md, Threads). */
#include <girder/dist.h>
#include <girder/node.h>
#include <girder/term.h>

#include <stdio.h>
#include <stdlib.h>

/*
** usage: schedpoll NAME COOKIE EPMD_PORT
** A process registered as `echo` prints READY, then answers every {From, X} with X sent to
** From, until X is `done` (answered too) or 60 s pass without a message. Then one line:
**   RESULT echoed=E reads_loop_thread=T reads_schedulers=S
** and exit status 0 when `done` came.
*/
typedef struct job {
    long echoed;
    bool done;
} job;

static void echo(void *arg)
{
    job *j = arg;
    if (nd_register(term_atom("echo"), nd_self()) != 0) return;
    printf("READY\n");
    fflush(stdout);
    while (!j->done) {
        term_t m;
        if (nd_receive(60000, &m) != 0) return;
        if (term_is_tuple(m) && term_tuple_arity(m) == 2) {
            term_t x = term_tuple_elem(m, 1);
            nd_send(term_tuple_elem(m, 0), term_dup(x));
            if (x == term_atom("done"))
                j->done = true;
            else
                j->echoed++;
        }
        term_free(m);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: schedpoll NAME COOKIE EPMD_PORT\n");
        return 2;
    }
    nd_config nc = {0};
    if (nd_init(&nc) != 0) return 1;
    dist_config dc = {0};
    dc.name = argv[1];
    dc.cookie = argv[2];
    dc.epmd_port = (uint16_t)atoi(argv[3]);
    if (dist_start(&dc) != 0) {
        fprintf(stderr, "schedpoll: dist_start failed\n");
        return 1;
    }
    job j = {0, false};
    int rc = nd_run(echo, &j, 120000, NULL);
    dist_stats ds;
    dist_get_stats(&ds);
    printf("RESULT echoed=%ld reads_loop_thread=%llu reads_schedulers=%llu\n", j.echoed,
           (unsigned long long)ds.reads_loop_thread, (unsigned long long)ds.reads_schedulers);
    fflush(stdout);
    dist_stop(2000);
    nd_shutdown(2000);
    return rc == 0 && j.done ? 0 : 1;
}
