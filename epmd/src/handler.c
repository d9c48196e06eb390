/* Girder epmd request handler: one request in, one answer and action out, over the registry. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epmd_int.h"

void epmd__log(epmd__ctx *ctx, int level, const char *fmt, ...)
{
    if (!ctx->log) return;
    va_list ap;
    va_start(ap, fmt);
    ctx->log(ctx->log_arg, level, fmt, ap);
    va_end(ap);
}

/* A growable answer buffer; `failed` sticks after an allocation failure. */
typedef struct obuf {
    uint8_t *p;
    size_t len, cap;
    int failed;
} obuf;

static void ob_put(obuf *b, const void *data, size_t n)
{
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void ob_printf(obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ob_printf(obuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        b->failed = 1;
        return;
    }
    ob_put(b, tmp, (size_t)n);
}

static void ob_u32(obuf *b, uint32_t v)
{
    uint8_t x[4];
    girder__put32(x, v);
    ob_put(b, x, 4);
}

static int finish(obuf *b, epmd__reply *rep, int action)
{
    if (b->failed) {
        free(b->p);
        rep->out = NULL;
        rep->out_len = 0;
        rep->action = EPMD__CLOSE;
        return EPMD_ENOMEM;
    }
    rep->out = b->p;
    rep->out_len = b->len;
    rep->action = action;
    return 0;
}

static const char *req_name(int type)
{
    switch (type) {
    case EPMD_ALIVE2_REQ:
        return "ALIVE2_REQ";
    case EPMD_PORT2_REQ:
        return "PORT2_REQ";
    case EPMD_NAMES_REQ:
        return "NAMES_REQ";
    case EPMD_DUMP_REQ:
        return "DUMP_REQ";
    case EPMD_KILL_REQ:
        return "KILL_REQ";
    case EPMD_STOP_REQ:
        return "STOP_REQ";
    default:
        return "unknown";
    }
}

static int handle_alive2(epmd__ctx *ctx, const epmd__conn_info *ci, const epmd__request *rq,
                         epmd__reply *rep)
{
    char pname[EPMD__LOG_NAME_CAP];
    girder__log_value(pname, sizeof pname, (const char *)rq->name, rq->name_len);
    int err;
    epmd__node *n = epmd__registry_add(ctx->reg, rq, ci->id, ci->fd, ci->now, &err);
    uint32_t creation = n ? epmd__node_creation(n) : 99; /* 99: Erlang's epmd's error filler */
    obuf b = {0};
    uint8_t x[6];
    x[1] = n ? 0 : 1;
    /* Version-6 nodes expect the 32-bit answer; older ones the 16-bit one. */
    if (rq->highest_version >= 6) {
        x[0] = EPMD_ALIVE2_X_RESP;
        girder__put32(x + 2, creation);
        ob_put(&b, x, 6);
    } else {
        x[0] = EPMD_ALIVE2_RESP;
        girder__put16(x + 2, (uint16_t)creation);
        ob_put(&b, x, 4);
    }
    if (!n) {
        epmd__log(ctx, GIRDER_LOG_WARNING, "event=register_refused name=%s conn=%llu reason=%s",
                  pname, (unsigned long long)ci->id,
                  err == EPMD_EEXIST ? "name_taken_or_invalid" : girder_err_name(err));
        /* The refused client has no use for the connection; Erlang's epmd keeps it, we don't. */
        return finish(&b, rep, EPMD__CLOSE);
    }
    epmd__log(ctx, GIRDER_LOG_NOTICE,
              "event=registered name=%s port=%u creation=%u type=%u proto=%u versions=%u-%u "
              "extra=%zu conn=%llu",
              pname, n->info.port, creation, n->info.node_type, n->info.protocol,
              n->info.lowest_version, n->info.highest_version, n->info.extra_len,
              (unsigned long long)ci->id);
    int r = finish(&b, rep, EPMD__KEEP);
    if (r != 0) epmd__registry_remove_conn(ctx->reg, ci->id);
    return r;
}

static int handle_port2(epmd__ctx *ctx, const epmd__request *rq, epmd__reply *rep)
{
    char pname[EPMD__LOG_NAME_CAP];
    girder__log_value(pname, sizeof pname, (const char *)rq->name, rq->name_len);
    if (!epmd__name_valid(rq->name, rq->name_len)) {
        epmd__log(ctx, GIRDER_LOG_WARNING, "event=lookup_refused name=%s reason=invalid_name",
                  pname);
        return finish(&(obuf){0}, rep, EPMD__CLOSE);
    }
    obuf b = {0};
    const epmd__node *n = epmd__registry_find(ctx->reg, rq->name, rq->name_len);
    uint8_t h[12];
    h[0] = EPMD_PORT2_RESP;
    if (!n) {
        h[1] = 1;
        ob_put(&b, h, 2);
        epmd__log(ctx, GIRDER_LOG_INFO, "event=lookup name=%s found=false", pname);
        return finish(&b, rep, EPMD__CLOSE);
    }
    h[1] = 0;
    girder__put16(h + 2, n->info.port);
    h[4] = n->info.node_type;
    h[5] = n->info.protocol;
    girder__put16(h + 6, n->info.highest_version);
    girder__put16(h + 8, n->info.lowest_version);
    girder__put16(h + 10, (uint16_t)n->info.name_len);
    ob_put(&b, h, 12);
    ob_put(&b, n->info.name, n->info.name_len);
    uint8_t e[2];
    girder__put16(e, (uint16_t)n->info.extra_len);
    ob_put(&b, e, 2);
    ob_put(&b, n->info.extra, n->info.extra_len);
    epmd__log(ctx, GIRDER_LOG_INFO, "event=lookup name=%s found=true port=%u", pname, n->info.port);
    return finish(&b, rep, EPMD__CLOSE);
}

static int handle_names(epmd__ctx *ctx, epmd__reply *rep, int dump)
{
    obuf b = {0};
    ob_u32(&b, ctx->port);
    /* The text formats are parsed by erl_epmd.erl and by `epmd -names`: keep them exact. */
    for (const epmd__node *n = ctx->reg->reg; n; n = n->next) {
        ob_put(&b, dump ? "active name     <" : "name ", dump ? 17 : 5);
        ob_put(&b, n->info.name, n->info.name_len);
        if (dump) {
            ob_printf(&b, "> at port %u, fd = %d\n", n->info.port, n->fd);
            ob_put(&b, "", 1); /* Erlang's epmd sends each dump line's NUL too */
        } else {
            ob_printf(&b, " at port %u\n", n->info.port);
        }
    }
    if (dump) {
        for (const epmd__node *n = ctx->reg->unreg; n; n = n->next) {
            ob_put(&b, "old/unused name <", 17);
            ob_put(&b, n->info.name, n->info.name_len);
            ob_printf(&b, ">, port = %u, fd = %d \n", n->info.port, n->fd);
            ob_put(&b, "", 1);
        }
    }
    epmd__log(ctx, GIRDER_LOG_INFO, "event=%s count=%zu", dump ? "dump" : "names",
              ctx->reg->reg_count);
    return finish(&b, rep, EPMD__CLOSE);
}

static int handle_kill(epmd__ctx *ctx, const epmd__conn_info *ci, epmd__reply *rep)
{
    obuf b = {0};
    if (!ctx->relaxed && ctx->reg->reg_count > 0) {
        epmd__log(ctx, GIRDER_LOG_WARNING,
                  "event=kill_refused conn=%llu reason=live_nodes_and_no_relaxed_command_check",
                  (unsigned long long)ci->id);
        ob_put(&b, "NO", 2);
        return finish(&b, rep, EPMD__CLOSE);
    }
    epmd__log(ctx, GIRDER_LOG_NOTICE, "event=kill conn=%llu", (unsigned long long)ci->id);
    ob_put(&b, "OK", 2);
    return finish(&b, rep, EPMD__EXIT);
}

static int handle_stop(epmd__ctx *ctx, const epmd__conn_info *ci, const epmd__request *rq,
                       epmd__reply *rep)
{
    char pname[EPMD__LOG_NAME_CAP];
    girder__log_value(pname, sizeof pname, (const char *)rq->name, rq->name_len);
    if (!ctx->relaxed) {
        /* Erlang's epmd closes without a word here. */
        epmd__log(ctx, GIRDER_LOG_WARNING,
                  "event=stop_refused name=%s conn=%llu reason=no_relaxed_command_check", pname,
                  (unsigned long long)ci->id);
        return finish(&(obuf){0}, rep, EPMD__CLOSE);
    }
    obuf b = {0};
    const epmd__node *live = epmd__registry_find(ctx->reg, rq->name, rq->name_len);
    uint64_t owner = live ? live->conn_id : 0; /* retiring forgets it; the server closes it */
    epmd__node *n = epmd__registry_remove_name(ctx->reg, rq->name, rq->name_len);
    if (!n) {
        epmd__log(ctx, GIRDER_LOG_INFO, "event=stop name=%s found=false", pname);
        ob_put(&b, "NOEXIST", 7);
        return finish(&b, rep, EPMD__CLOSE);
    }
    epmd__log(ctx, GIRDER_LOG_NOTICE,
              "event=unregistered name=%s port=%u creation=%u reason=stop_req conn=%llu", pname,
              n->info.port, epmd__node_creation(n), (unsigned long long)ci->id);
    ob_put(&b, "STOPPED", 7);
    rep->stop_conn = owner;
    return finish(&b, rep, EPMD__CLOSE);
}

int epmd__handle_request(epmd__ctx *ctx, const epmd__conn_info *ci, const uint8_t *body, size_t len,
                         epmd__reply *rep)
{
    memset(rep, 0, sizeof *rep);
    rep->action = EPMD__CLOSE;
    epmd__request rq;
    if (epmd__parse_request(body, len, &rq) != 0) {
        epmd__log(ctx, GIRDER_LOG_WARNING,
                  "event=request_refused request=%s tag=%d bytes=%zu conn=%llu reason=malformed",
                  req_name(len ? body[0] : -1), len ? body[0] : -1, len,
                  (unsigned long long)ci->id);
        return 0;
    }
    /* Registration and administration only from this host, as in Erlang's epmd. */
    if (!ci->local_peer && rq.type != EPMD_PORT2_REQ && rq.type != EPMD_NAMES_REQ) {
        epmd__log(ctx, GIRDER_LOG_WARNING,
                  "event=request_refused request=%s conn=%llu reason=not_from_a_local_address",
                  req_name(rq.type), (unsigned long long)ci->id);
        return 0;
    }
    switch (rq.type) {
    case EPMD_ALIVE2_REQ:
        return handle_alive2(ctx, ci, &rq, rep);
    case EPMD_PORT2_REQ:
        return handle_port2(ctx, &rq, rep);
    case EPMD_NAMES_REQ:
        return handle_names(ctx, rep, 0);
    case EPMD_DUMP_REQ:
        return handle_names(ctx, rep, 1);
    case EPMD_KILL_REQ:
        return handle_kill(ctx, ci, rep);
    case EPMD_STOP_REQ:
        return handle_stop(ctx, ci, &rq, rep);
    }
    return 0;
}
