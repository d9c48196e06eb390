/* libFuzzer target: epmd request streams through framing, parser, handler, decoders. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "epmd_int.h"

/* Checks the registry's bookkeeping against its lists. */
static void check_registry(const epmd__registry *r)
{
    size_t n = 0;
    for (const epmd__node *x = r->reg; x; x = x->next) n++;
    if (n != r->reg_count) abort();
    n = 0;
    for (const epmd__node *x = r->unreg; x; x = x->next) n++;
    if (n != r->unreg_count || r->unreg_count > r->unreg_max + 1) abort();
}

/* Every answer the handler makes must be one the client decoders accept. */
static void check_answer(const epmd__request *rq, const epmd__reply *rep)
{
    if (rep->out_len == 0) return;
    if (rq->type == EPMD_PORT2_REQ) {
        epmd_node_info info;
        int r = epmd__decode_port2_resp(rep->out, rep->out_len, &info);
        if (r != 0 && r != EPMD_ENOENT) abort();
    } else if (rq->type == EPMD_ALIVE2_REQ) {
        uint32_t cr;
        int ext;
        int r = epmd__decode_alive_resp(rep->out, rep->out_len, &cr, &ext);
        if (r != 0 && r != EPMD_EEXIST) abort();
    } else if (rq->type == EPMD_NAMES_REQ) {
        char *text = malloc(rep->out_len - 4 + 1);
        memcpy(text, rep->out + 4, rep->out_len - 4);
        text[rep->out_len - 4] = 0;
        epmd_name_entry *e = NULL;
        size_t count = 0;
        /* A name may hold a newline (Erlang's epmd allows it), so the count is not checked. */
        epmd__parse_names(text, rep->out_len - 4, &e, &count);
        free(e);
        free(text);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t flags = data[0];
    data++;
    size--;

    /* The client decoders get the raw bytes as answers. */
    epmd_node_info info;
    uint32_t cr;
    int ext;
    epmd__decode_port2_resp(data, size, &info);
    epmd__decode_alive_resp(data, size, &cr, &ext);

    epmd__registry reg;
    epmd__registry_init(&reg, flags & 4 ? 5 : 1000);
    epmd__ctx ctx = {.reg = &reg, .port = 4369, .relaxed = flags & 1};
    uint64_t conn = 0;
    size_t off = 0;
    /* The stream is a sequence of packets, each on a new connection, as the server frames them. */
    while (off < size) {
        int n = epmd__frame_size(data + off, size - off);
        if (n <= 0 || (size_t)n > size - off) break;
        const uint8_t *body = data + off + 2;
        size_t blen = (size_t)n - 2;
        off += (size_t)n;
        conn++;
        epmd__conn_info ci = {.id = conn,
                              .fd = (int)conn,
                              .local_peer = !(flags & 2),
                              .now = (uint32_t)conn * 2654435761u};
        epmd__reply rep;
        epmd__handle_request(&ctx, &ci, body, blen, &rep);
        epmd__request rq;
        if (epmd__parse_request(body, blen, &rq) == 0) check_answer(&rq, &rep);
        if (rep.action == EPMD__KEEP && !epmd__registry_find(&reg, rq.name, rq.name_len)) abort();
        if (rep.stop_conn && epmd__registry_remove_conn(&reg, rep.stop_conn)) abort();
        free(rep.out);
        /* Some registering connections end: their names must go. */
        if ((conn + flags) % 3 == 0 && conn > 1) epmd__registry_remove_conn(&reg, conn - 1);
        check_registry(&reg);
    }
    epmd__registry_free(&reg);
    return 0;
}
