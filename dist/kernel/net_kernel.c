/* net_kernel: the answers Erlang nodes expect from it (is_auth), and net_adm:ping from here. */
#include "kernel.h"

#include <stdlib.h>

/* ================================================================ net_kernel */

static int nk_call(void **state, term_t req, term_t from, term_t *reply, term_t *reason)
{
    (void)state;
    (void)from;
    (void)reason;
    if (term_is_tuple(req) && term_tuple_arity(req) == 2 && term_tuple_elem(req, 0) == KA(is_auth))
        *reply = KA(yes);
    else
        *reply = KA(ignored);
    return ND_REPLY;
}

const nd_server_ops dist__nk_ops = {NULL, nk_call, NULL, NULL, NULL};

int dist_ping(term_t node, int64_t timeout_ms)
{
    int rc = dist_connect(node, timeout_ms); /* DIST_ESTATE when not started; 0 for this node */
    if (rc) return rc;
    if (node == nd_node()) return 0;
    term_t reply = TERM_NONE;
    term_t to = term_tuplev(2, KA(net_kernel), node);
    rc = nd_call(to, term_tuplev(2, KA(is_auth), nd_node()), timeout_ms, &reply);
    term_free(to);
    bool yes = rc == 0 && reply == KA(yes);
    term_free(reply);
    return yes ? 0 : DIST_ENOCONN;
}
