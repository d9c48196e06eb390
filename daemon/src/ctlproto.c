/* The control socket's wire: msgpack-rpc framing, request decoding, terms in params and results. */
#include "ctlproto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *gd_ctl_err_name(int code)
{
    switch (code) {
    case GD_CTL_EREQUEST:
        return "invalid_request";
    case GD_CTL_EMETHOD:
        return "no_such_method";
    case GD_CTL_EPARAMS:
        return "invalid_params";
    case GD_CTL_ENOTFOUND:
        return "not_found";
    case GD_CTL_EFAILED:
        return "failed";
    case GD_CTL_EBUSY:
        return "busy";
    case GD_CTL_ESTOPPING:
        return "stopping";
    }
    return "unknown";
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = v << 8 | p[i];
    return v;
}

enum { H_OK = 0, H_MORE = 1, H_GARBAGE = 2 };

/*
** One object header at p[0..n), n >= 1: *hdr bytes of header, *skip payload bytes that follow
** it, *kids child objects (arrays: n, maps: 2n). H_OK, H_MORE (the header itself is cut) or
** H_GARBAGE.
*/
static int header(const uint8_t *p, size_t n, size_t *hdr, uint64_t *skip, uint64_t *kids)
{
    uint8_t b = p[0];
    *skip = 0;
    *kids = 0;
    *hdr = 1;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return H_OK;
    if (b >= 0x80 && b <= 0x8f) return *kids = 2u * (b & 0x0f), H_OK;
    if (b >= 0x90 && b <= 0x9f) return *kids = b & 0x0f, H_OK;
    if (b >= 0xa0 && b <= 0xbf) return *skip = b & 0x1f, H_OK;
    int lenbytes = 0, extra = 0;
    uint64_t fixed = 0;
    switch (b) {
    case 0xc1:
        return H_GARBAGE;
    case 0xc4: /* bin 8/16/32 */
    case 0xd9: /* str 8/16/32 */
        lenbytes = 1;
        break;
    case 0xc5:
    case 0xda:
        lenbytes = 2;
        break;
    case 0xc6:
    case 0xdb:
        lenbytes = 4;
        break;
    case 0xc7: /* ext 8/16/32: length, then a type byte */
        lenbytes = 1, extra = 1;
        break;
    case 0xc8:
        lenbytes = 2, extra = 1;
        break;
    case 0xc9:
        lenbytes = 4, extra = 1;
        break;
    case 0xca:
        fixed = 4;
        break;
    case 0xcb:
        fixed = 8;
        break;
    case 0xcc:
    case 0xd0:
        fixed = 1;
        break;
    case 0xcd:
    case 0xd1:
        fixed = 2;
        break;
    case 0xce:
    case 0xd2:
        fixed = 4;
        break;
    case 0xcf:
    case 0xd3:
        fixed = 8;
        break;
    case 0xd4: /* fixext 1/2/4/8/16: a type byte and the data */
        fixed = 2;
        break;
    case 0xd5:
        fixed = 3;
        break;
    case 0xd6:
        fixed = 5;
        break;
    case 0xd7:
        fixed = 9;
        break;
    case 0xd8:
        fixed = 17;
        break;
    case 0xdc: /* array 16/32 */
    case 0xde: /* map 16/32 */
        if (n < 3) return H_MORE;
        *hdr = 3;
        *kids = be(p + 1, 2) * (b == 0xde ? 2 : 1);
        return H_OK;
    case 0xdd:
    case 0xdf:
        if (n < 5) return H_MORE;
        *hdr = 5;
        *kids = be(p + 1, 4) * (b == 0xdf ? 2 : 1);
        return H_OK;
    default:
        return H_GARBAGE;
    }
    if (fixed) return *skip = fixed, H_OK;
    if (n < (size_t)(1 + lenbytes)) return H_MORE;
    *skip = be(p + 1, lenbytes) + (uint64_t)extra;
    *hdr = 1 + (size_t)lenbytes;
    return H_OK;
}

int gd_ctl_scan(const uint8_t *p, size_t n, size_t *len)
{
    /* left[d]: objects still to read at depth d (the frame itself is depth 0's one object) */
    uint64_t left[GD_CTL_MAX_DEPTH + 2];
    int depth = 0;
    left[0] = 1;
    size_t i = 0;
    for (;;) {
        while (depth > 0 && left[depth] == 0) depth--;
        if (depth == 0 && left[0] == 0) {
            *len = i;
            return GD_SCAN_FRAME;
        }
        if (i >= n) return GD_SCAN_NEED_MORE;
        size_t hdr;
        uint64_t skip, kids;
        int rc = header(p + i, n - i, &hdr, &skip, &kids);
        if (rc == H_MORE) return GD_SCAN_NEED_MORE;
        if (rc == H_GARBAGE) return GD_SCAN_GARBAGE;
        left[depth]--;
        if (skip > n - i - hdr) return GD_SCAN_NEED_MORE; /* also catches huge lengths */
        i += hdr + (size_t)skip;
        if (kids) {
            if (depth + 1 > GD_CTL_MAX_DEPTH) return GD_SCAN_TOO_DEEP;
            left[++depth] = kids;
        }
    }
}

void gd_ctl_req_free(gd_ctl_req *req)
{
    msgpack_unpacked_destroy(&req->unp);
}

static bool str_is(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && !memcmp(o->via.str.ptr, s, n);
}

int gd_ctl_decode(const uint8_t *p, size_t n, gd_ctl_req *req, bool *has_id, const char **msg)
{
    memset(req, 0, sizeof *req);
    *has_id = false;
    msgpack_unpacked_init(&req->unp);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&req->unp, (const char *)p, n, &off);
    int code = GD_CTL_EREQUEST;
    if (r != MSGPACK_UNPACK_SUCCESS || off != n) {
        *msg = r == MSGPACK_UNPACK_NOMEM_ERROR ? "out of memory" : "not one msgpack object";
        goto fail;
    }
    const msgpack_object *o = &req->unp.data;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1) {
        *msg = "not an array [Type, ...]";
        goto fail;
    }
    const msgpack_object *a = o->via.array.ptr;
    size_t na = o->via.array.size;
    if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || (a[0].via.u64 != 0 && a[0].via.u64 != 2)) {
        *msg = "type must be 0 (request) or 2 (notification)";
        goto fail;
    }
    req->type = (int)a[0].via.u64;
    const msgpack_object *m, *ps;
    if (req->type == 0) {
        if (na != 4) {
            *msg = "a request is [0, MsgId, Method, Params]";
            if (na >= 2 && a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
                a[1].via.u64 <= UINT32_MAX) {
                req->msgid = (uint32_t)a[1].via.u64;
                *has_id = true;
            }
            goto fail;
        }
        if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[1].via.u64 > UINT32_MAX) {
            *msg = "MsgId must be an unsigned 32-bit integer";
            goto fail;
        }
        req->msgid = (uint32_t)a[1].via.u64;
        *has_id = true;
        m = &a[2];
        ps = &a[3];
    } else {
        if (na != 3) {
            *msg = "a notification is [2, Method, Params]";
            goto fail;
        }
        m = &a[1];
        ps = &a[2];
    }
    if (m->type != MSGPACK_OBJECT_STR || m->via.str.size == 0 ||
        m->via.str.size >= sizeof req->method || memchr(m->via.str.ptr, 0, m->via.str.size)) {
        *msg = "Method must be a non-empty string";
        goto fail;
    }
    memcpy(req->method, m->via.str.ptr, m->via.str.size);
    req->method[m->via.str.size] = 0;
    if (ps->type != MSGPACK_OBJECT_ARRAY) {
        *msg = "Params must be an array";
        goto fail;
    }
    req->params = *ps;
    req->nparams = ps->via.array.size;
    /* a trailing map holds options; no positional param is a map */
    if (req->nparams && ps->via.array.ptr[req->nparams - 1].type == MSGPACK_OBJECT_MAP) {
        req->opts = &ps->via.array.ptr[--req->nparams];
        const msgpack_object *t = gd_ctl_map_get(req->opts, "terms");
        if (t) {
            if (str_is(t, "etf"))
                req->terms = GD_TERMS_ETF;
            else if (!str_is(t, "text")) {
                code = GD_CTL_EPARAMS;
                *msg = "option terms must be \"text\" or \"etf\"";
                goto fail;
            }
        }
    }
    return 0;
fail:
    msgpack_unpacked_destroy(&req->unp);
    msgpack_unpacked_init(&req->unp);
    return code;
}

const msgpack_object *gd_ctl_map_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (str_is(&map->via.map.ptr[i].key, key)) return &map->via.map.ptr[i].val;
    return NULL;
}

int gd_ctl_str(const msgpack_object *o, char *buf, size_t n)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= n ||
        memchr(o->via.str.ptr, 0, o->via.str.size))
        return -1;
    memcpy(buf, o->via.str.ptr, o->via.str.size);
    buf[o->via.str.size] = 0;
    return 0;
}

int gd_ctl_int(const msgpack_object *o, int64_t min, int64_t max, int64_t *out)
{
    int64_t v;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > INT64_MAX) return -1;
        v = (int64_t)o->via.u64;
    } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        v = o->via.i64;
    } else {
        return -1;
    }
    if (v < min || v > max) return -1;
    *out = v;
    return 0;
}

int gd_ctl_term(const msgpack_object *o, const term_text_ctx *ctx, term_t *out, char *err, size_t n)
{
    *out = TERM_NONE;
    if (o->type == MSGPACK_OBJECT_STR) {
        term_parse_error pe = {0};
        term_t t = term_parse(o->via.str.ptr, o->via.str.size, ctx, &pe);
        if (t == TERM_NONE) {
            snprintf(err, n, "term text at byte %zu: %s", pe.offset,
                     pe.what[0] ? pe.what : term_strerror(pe.code));
            return GD_CTL_EPARAMS;
        }
        *out = t;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        etf_decode_opts eo = {0};
        eo.max_new_atoms = GD_CTL_MAX_NEW_ATOMS;
        eo.max_uncompressed = 16u << 20;
        etf_error ee = {0};
        term_t t = etf_decode((const uint8_t *)o->via.bin.ptr, o->via.bin.size, &eo, NULL, &ee);
        if (t == TERM_NONE) {
            snprintf(err, n, "ETF at byte %zu: %s", ee.offset, term_strerror(ee.code));
            return GD_CTL_EPARAMS;
        }
        *out = t;
        return 0;
    }
    snprintf(err, n, "a term is a string (Erlang text) or a bin (ETF)");
    return GD_CTL_EPARAMS;
}

void gd_ctl_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

int gd_ctl_pack_term(msgpack_packer *pk, term_t t, int terms, const term_text_ctx *ctx)
{
    etf_buf b = {0};
    int rc;
    if (terms == GD_TERMS_ETF) {
        rc = etf_encode(t, 0, &b);
        if (rc == 0) {
            msgpack_pack_bin(pk, b.len);
            msgpack_pack_bin_body(pk, b.data, b.len);
        }
    } else {
        rc = term_print(t, TERM_PRINT_P, ctx, &b);
        if (rc == 0) {
            msgpack_pack_str(pk, b.len);
            msgpack_pack_str_body(pk, b.data, b.len);
        }
    }
    if (rc) msgpack_pack_nil(pk);
    etf_buf_free(&b);
    return rc ? -1 : 0;
}

void gd_ctl_response_ok(msgpack_sbuffer *out, uint32_t msgid, const char *result, size_t len)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint32(&pk, msgid);
    msgpack_pack_nil(&pk);
    msgpack_sbuffer_write(out, result, len);
}

void gd_ctl_response_err(msgpack_sbuffer *out, uint32_t msgid, int code, const char *message)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 1);
    msgpack_pack_uint32(&pk, msgid);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int(&pk, code);
    gd_ctl_pack_str(&pk, message);
    msgpack_pack_nil(&pk);
}

void gd_ctl_notification(msgpack_sbuffer *out, const char *method, const char *params, size_t len,
                         size_t nparams)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_uint8(&pk, 2);
    gd_ctl_pack_str(&pk, method);
    msgpack_pack_array(&pk, nparams);
    msgpack_sbuffer_write(out, params, len);
}
