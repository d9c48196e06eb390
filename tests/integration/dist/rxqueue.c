/* rxqueue: a Girder node that counts what a real erl node sends it — large messages, which go
 * through the decoder threads' queue — and how often reading from that node stopped. */
#include <girder/dist.h>
#include <girder/node.h>
#include <girder/term.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
** usage: rxqueue NAME COOKIE EPMD_PORT MAX_MESSAGE COUNT SIZE
** A process registered as `rxsink` prints READY, then takes COUNT messages {big, I, Binary} (I from
** 1 up; the binary SIZE bytes: I as 32 bits, "q"s, I as 32 bits) within 60 s. It keeps the
** first message's binary past the message (a binary decoded as a reference into the received
** frame must keep the frame alive) and checks its bytes again at the end. Prints one line
**   RESULT received=R in_order=0|1 read_pauses=P
** (P: the connection's read_pauses, dist_connections()) and exits 0 when R = COUNT and every
** message came in order and whole, else 1. MAX_MESSAGE 0 leaves the default.
*/
typedef struct job {
    long count;
    size_t size;
    long received;
    bool in_order;
} job;

/* The bytes erl's big_send makes for message i. */
static bool whole(term_t bin, int64_t i)
{
    const uint8_t *d = term_binary_data(bin);
    size_t n = term_binary_size(bin);
    if (!d || n < 8) return false;
    uint8_t tag[4] = {(uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
    if (memcmp(d, tag, 4) != 0 || memcmp(d + n - 4, tag, 4) != 0) return false;
    for (size_t k = 4; k < n - 4; k++)
        if (d[k] != 'q') return false;
    return true;
}

static void sink(void *arg)
{
    job *j = arg;
    j->in_order = true;
    term_t kept = TERM_NONE;
    if (nd_register(term_atom("rxsink"), nd_self()) != 0) return;
    printf("READY\n");
    fflush(stdout);
    while (j->received < j->count) {
        term_t m;
        if (nd_receive(60000, &m) != 0) return;
        int64_t i = 0;
        bool ok = term_is_tuple(m) && term_tuple_arity(m) == 3 &&
                  term_tuple_elem(m, 0) == term_atom("big") &&
                  term_get_int64(term_tuple_elem(m, 1), &i) == 0 &&
                  term_is_binary(term_tuple_elem(m, 2)) &&
                  term_binary_size(term_tuple_elem(m, 2)) == j->size &&
                  whole(term_tuple_elem(m, 2), i);
        if (!ok || i != j->received + 1) j->in_order = false;
        if (ok && i == 1) kept = term_dup(term_tuple_elem(m, 2));
        j->received++;
        term_free(m);
    }
    if (kept == TERM_NONE || !whole(kept, 1)) j->in_order = false;
    term_free(kept);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: rxqueue NAME COOKIE EPMD_PORT MAX_MESSAGE COUNT SIZE\n");
        return 2;
    }
    nd_config nc = {0};
    if (nd_init(&nc) != 0) return 1;
    dist_config dc = {0};
    dc.name = argv[1];
    dc.cookie = argv[2];
    dc.epmd_port = (uint16_t)atoi(argv[3]);
    dc.max_message = (size_t)atoll(argv[4]);
    if (dist_start(&dc) != 0) {
        fprintf(stderr, "rxqueue: dist_start failed\n");
        return 1;
    }
    job j = {atol(argv[5]), (size_t)atoll(argv[6]), 0, false};
    /* the sink ends after COUNT messages or 60 s without one */
    int rc = nd_run(sink, &j, 120000, NULL);
    dist_conn_info ci[8];
    size_t n = dist_connections(ci, 8);
    uint64_t pauses = 0;
    for (size_t i = 0; i < n && i < 8; i++) pauses += ci[i].read_pauses;
    printf("RESULT received=%ld in_order=%d read_pauses=%llu\n", j.received, j.in_order ? 1 : 0,
           (unsigned long long)pauses);
    fflush(stdout);
    dist_stop(2000);
    nd_shutdown(2000);
    return rc == 0 && j.received == j.count && j.in_order ? 0 : 1;
}
