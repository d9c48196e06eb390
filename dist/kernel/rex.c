/* rex: rpc:call and erpc into this node, each call run in a process of its own. */
#include "kernel.h"

#include <stdlib.h>

/* ================================================================ rex */

typedef struct rex_job {
    term_t m, f, args, from; /* owned; from: {Pid, Tag} or {rex, Pid} for the info form */
} rex_job;

static void rex_job_hook(void *arg, term_t reason)
{
    rex_job *j = arg;
    (void)reason;
    term_free(j->args);
    term_free(j->from);
    free(j);
}

static void rex_worker(void *arg)
{
    rex_job *j = arg;
    term_t res;
    int rc = dist__apply(j->m, j->f, j->args, &res);
    term_t reply;
    switch (rc) {
    case DIST_RETURN:
    case DIST_THROW:
        reply = res;
        break;
    case DIST_EXIT:
        reply = term_tuplev(2, KA(badrpc), term_tuplev(2, KA(EXIT), res));
        break;
    default:
        reply = term_tuplev(
            2, KA(badrpc),
            term_tuplev(2, KA(EXIT),
                        term_tuplev(2, res, dist__stack1(j->m, j->f, term_dup(j->args)))));
        break;
    }
    if (term_tuple_elem(j->from, 0) == KA(rex))
        nd_send(term_tuple_elem(j->from, 1), term_tuplev(2, KA(rex), reply));
    else
        nd_reply(j->from, reply);
}

static bool rex_spawn(term_t req, term_t from)
{
    /* {call, M, F, A, GL} */
    if (!term_is_tuple(req) || term_tuple_arity(req) != 5 || term_tuple_elem(req, 0) != KA(call))
        return false;
    rex_job *j = calloc(1, sizeof *j);
    if (!j) return false;
    j->m = term_tuple_elem(req, 1);
    j->f = term_tuple_elem(req, 2);
    j->args = term_dup(term_tuple_elem(req, 3));
    j->from = term_dup(from);
    nd_spawn_opts so = {.exit_hook = rex_job_hook, .exit_hook_arg = j};
    if (nd_spawn(rex_worker, j, &so, NULL) != 0) {
        term_free(j->args);
        term_free(j->from);
        free(j);
        return false;
    }
    return true;
}

static int rex_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    (void)state;
    (void)reason;
    if (rex_spawn(req, from)) return ND_NOREPLY;
    *reply = term_tuplev(2, KA(badrpc), KA(unsupported));
    return ND_REPLY;
}

static int rex_info(void **state, term_t msg, term_t *reason)
{
    (void)state;
    (void)reason;
    if (!term_is_tuple(msg) || term_tuple_arity(msg) != 2 || !term_is_pid(term_tuple_elem(msg, 0)))
        return ND_NOREPLY;
    term_t from = term_tuple_elem(msg, 0), req = term_tuple_elem(msg, 1);
    if (req == KA(features_request)) {
        nd_send(from,
                term_tuplev(3, KA(features_reply), nd_node(), term_list(1, (term_t[]){KA(erpc)})));
    } else {
        term_t to = term_tuplev(2, KA(rex), term_dup(from));
        rex_spawn(req, to);
        term_free(to);
    }
    return ND_NOREPLY;
}

const nd_server_ops dist__rex_ops = {NULL, rex_call, NULL, rex_info, NULL};
