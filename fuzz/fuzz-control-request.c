/* libFuzzer target for girderd's control requests: framing, msgpack-rpc decoding, term params. */
#include "ctlproto.h"

#include <girder/term.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static term_text_ctx ctx;

/* Every term param decoded (text or ETF) and packed back both ways; option lookups. */
static void exercise(gd_ctl_req *req)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (size_t i = 0; i < req->nparams; i++) {
        const msgpack_object *o = &req->params.via.array.ptr[i];
        term_t t;
        char err[256], s[128];
        int64_t v;
        if (gd_ctl_term(o, &ctx, &t, err, sizeof err) == 0) {
            if (t == TERM_NONE) abort();
            if (gd_ctl_pack_term(&pk, t, GD_TERMS_TEXT, &ctx) ||
                gd_ctl_pack_term(&pk, t, GD_TERMS_ETF, &ctx))
                abort(); /* a term that parsed must print and encode */
            term_free(t);
        } else if (!err[0]) {
            abort(); /* a refusal always says why */
        }
        if (gd_ctl_str(o, s, sizeof s) == 0 && strlen(s) >= sizeof s) abort();
        gd_ctl_int(o, -5, 5, &v);
    }
    gd_ctl_map_get(req->opts, "limit");
    gd_ctl_map_get(req->opts, "app");
    gd_ctl_response_ok(&sb, req->msgid, "\xc0", 1);
    gd_ctl_response_err(&sb, req->msgid, GD_CTL_EPARAMS, req->method);
    msgpack_sbuffer_destroy(&sb);
}

/*
** The input is a client's byte stream: frames are cut as the I/O thread cuts them and each is
** decoded. The scanner must agree with msgpack-c: a frame it delimits unpacks to exactly that
** length.
*/
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ctx.node == TERM_NONE) {
        term_init();
        ctx.node = term_atom("fuzz@host");
        ctx.creation = 7;
    }
    size_t off = 0;
    while (off < size) {
        size_t len = 0;
        int rc = gd_ctl_scan(data + off, size - off, &len);
        if (rc != GD_SCAN_FRAME) break;
        if (len == 0 || len > size - off) abort();
        /* only a delimited frame goes to msgpack-c (as in girderd): its element counts are then
        ** bounded by its length, so msgpack-c's up-front allocation is too */
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t uoff = 0;
        msgpack_unpack_return ur = msgpack_unpack_next(&u, (const char *)data + off, len, &uoff);
        msgpack_unpacked_destroy(&u);
        if (ur != MSGPACK_UNPACK_SUCCESS || uoff != len) {
            fprintf(stderr, "scanner frame %zu, msgpack-c %d/%zu\n", len, (int)ur, uoff);
            abort();
        }
        gd_ctl_req req;
        bool has_id;
        const char *why = NULL;
        if (gd_ctl_decode(data + off, len, &req, &has_id, &why) == 0) {
            if (req.method[0] == 0 || req.params.type != MSGPACK_OBJECT_ARRAY) abort();
            exercise(&req);
            gd_ctl_req_free(&req);
        } else if (!why) {
            abort();
        }
        off += len;
    }
    return 0;
}
