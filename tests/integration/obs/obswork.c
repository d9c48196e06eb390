/* A test module with a scripted workload for girder trace: a token passed round a ring. */
#include <girder/module.h>

#include <stdlib.h>

#define A(s) term_atom(s)

/*
** obswork:ring(N, Laps) spawns N processes (each monitored by the caller, P), tells each its
** successor ({next, Pid}), sends {token, N*Laps} to the first; each process that gets
** {token, K} passes {token, K-1} to its successor while K > 1, and the one that gets K = 1
** sends done to P; a process ends (normal) after its Laps-th token. P waits for done and the N
** DOWNs, and returns ok. So a trace holds exactly, for this workload:
**   spawns by P: N;  exits (normal): N;  DOWNs to P: N;
**   sends: N ({next, ...}) + 1 (the first token) + N*Laps - 1 (passes) + 1 (done) by P and the
*ring;
**   receives: N*Laps + N by the ring, 1 + N by P (done, the DOWNs).
*/

/* A ring member: {next, Successor, P, Laps} first, then Laps tokens. */
static void member(void *arg)
{
    (void)arg;
    term_t next = TERM_NONE, parent = TERM_NONE;
    int64_t laps = 0;
    for (int64_t got = 0; laps == 0 || got < laps;) {
        term_t m;
        if (nd_receive(ND_INFINITY, &m) < 0) continue;
        if (term_is_tuple(m) && term_tuple_arity(m) == 4 && term_tuple_elem(m, 0) == A("next")) {
            next = term_dup(term_tuple_elem(m, 1));
            parent = term_dup(term_tuple_elem(m, 2));
            term_get_int64(term_tuple_elem(m, 3), &laps);
        } else if (term_is_tuple(m) && term_tuple_arity(m) == 2 &&
                   term_tuple_elem(m, 0) == A("token")) {
            int64_t k = 0;
            term_get_int64(term_tuple_elem(m, 1), &k);
            got++;
            if (k > 1)
                nd_send(next, term_tuplev(2, A("token"), term_int(k - 1)));
            else
                nd_send(parent, A("done"));
        }
        term_free(m);
    }
    term_free(next);
    term_free(parent);
}

static int ring_export(void *ud, term_t args, term_t *res)
{
    (void)ud;
    int64_t n = 0, laps = 0;
    if (term_get_int64(term_hd(args), &n) || term_get_int64(term_hd(term_tl(args)), &laps) ||
        n < 1 || n > 10000 || laps < 1 || laps > 10000) {
        *res = A("badarg");
        return DIST_ERROR;
    }
    term_t *pids = calloc((size_t)n, sizeof *pids);
    if (!pids) {
        *res = A("enomem");
        return DIST_ERROR;
    }
    for (int64_t i = 0; i < n; i++) {
        term_t ref;
        nd_spawn_opts o = {0};
        o.monitor = true;
        o.monitor_ref = &ref;
        nd_spawn(member, NULL, &o, &pids[i]);
        term_free(ref);
    }
    for (int64_t i = 0; i < n; i++)
        nd_send(pids[i], term_tuplev(4, A("next"), term_dup(pids[(i + 1) % n]), term_dup(nd_self()),
                                     term_int(laps)));
    nd_send(pids[0], term_tuplev(2, A("token"), term_int(n * laps)));
    int64_t downs = 0;
    bool done = false;
    while (downs < n || !done) {
        term_t m;
        if (nd_receive(30000, &m) < 0) break;
        if (m == A("done")) done = true;
        if (term_is_tuple(m) && term_tuple_elem(m, 0) == A("DOWN")) downs++;
        term_free(m);
    }
    for (int64_t i = 0; i < n; i++) term_free(pids[i]);
    free(pids);
    *res = done && downs == n ? A("ok") : A("incomplete");
    return DIST_RETURN;
}

static const girder_export exports[] = {{"ring", 2, ring_export, NULL}};

static int obswork_load(const girder_host *host, char *err, size_t errlen)
{
    (void)host;
    (void)err;
    (void)errlen;
    const char *names[] = {"next", "token", "done", "DOWN", "ok", "incomplete"};
    for (size_t i = 0; i < GIRDER_COUNT(names); i++) term_atom(names[i]);
    return 0;
}

GIRDER_MODULE(.name = "obswork", .version = "1.0.0", .exports = exports,
              .nexports = GIRDER_COUNT(exports), .load = obswork_load);
