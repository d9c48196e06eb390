/* The control socket's wire: msgpack-rpc framing, request decoding, terms in params and results. */
#ifndef GIRDERD_CTLPROTO_H
#define GIRDERD_CTLPROTO_H
#include <girder/term.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting of arrays and maps a request may have (msgpack-c's own limit is 32). */
#define GD_CTL_MAX_DEPTH 24

/* Error codes of responses ([code, message]); docs/control-api.md lists them. */
enum {
    GD_CTL_EREQUEST = 1, /* not a well-formed request */
    GD_CTL_EMETHOD = 2,  /* no such method */
    GD_CTL_EPARAMS = 3,  /* wrong number or type of params, unparsable term */
    GD_CTL_ENOTFOUND = 4,
    GD_CTL_EFAILED = 5, /* the operation failed; the message says why */
    GD_CTL_EBUSY = 6,   /* a limit of the node or the connection */
    GD_CTL_ESTOPPING = 7
};
const char *gd_ctl_err_name(int code);

enum { GD_SCAN_NEED_MORE = 0, GD_SCAN_FRAME = 1, GD_SCAN_GARBAGE = -1, GD_SCAN_TOO_DEEP = -2 };

/*
** Finds where the msgpack object starting at p ends, without allocating and without trusting
** any count: GD_SCAN_FRAME with *len its size, GD_SCAN_NEED_MORE if p[0..n) is a prefix of one,
** GD_SCAN_GARBAGE for a byte no msgpack object starts with (0xc1), GD_SCAN_TOO_DEEP beyond
** GD_CTL_MAX_DEPTH. Counts of elements are not bounded here: the caller bounds n.
*/
int gd_ctl_scan(const uint8_t *p, size_t n, size_t *len);

/* How a response encodes terms. */
enum { GD_TERMS_TEXT = 0, GD_TERMS_ETF = 1 };

typedef struct gd_ctl_req {
    int type;                   /* 0 request, 2 notification */
    uint32_t msgid;             /* requests */
    char method[64];            /* NUL-terminated */
    msgpack_object params;      /* an array (borrowed from the unpacked frame) */
    size_t nparams;             /* positional params, without the options map */
    const msgpack_object *opts; /* the trailing options map, or NULL */
    int terms;                  /* GD_TERMS_TEXT / GD_TERMS_ETF (option "terms") */
    msgpack_unpacked unp;       /* owns what params point into */
} gd_ctl_req;

/*
** Decodes one frame (exactly the bytes gd_ctl_scan delimited) as [0, MsgId, Method, Params] or
** [2, Method, Params]. 0 on success (release with gd_ctl_req_free); otherwise the GD_CTL_E code,
** *msg a static reason, and req->msgid valid when has_id is set (the caller can then answer
** with an error instead of closing). req is released on failure.
*/
int gd_ctl_decode(const uint8_t *p, size_t n, gd_ctl_req *req, bool *has_id, const char **msg);
void gd_ctl_req_free(gd_ctl_req *req);

/* Bounds for terms in params. */
#define GD_CTL_MAX_NEW_ATOMS 1000

/*
** A term param: a msgpack str holds Erlang text (parsed with ctx: <0.N.S> is a pid of this
** node), a bin holds ETF (at most GD_CTL_MAX_NEW_ATOMS new atoms). 0 with *out (owned), or
** GD_CTL_EPARAMS with a reason in err.
*/
int gd_ctl_term(const msgpack_object *o, const term_text_ctx *ctx, term_t *out, char *err,
                size_t n);
/* A string param into buf (NUL-terminated, no NUL inside); -1 if not a str or too long. */
int gd_ctl_str(const msgpack_object *o, char *buf, size_t n);
/* An integer param; -1 if not an integer or outside [min, max]. */
int gd_ctl_int(const msgpack_object *o, int64_t min, int64_t max, int64_t *out);
/* The value of key in a map param, or NULL. */
const msgpack_object *gd_ctl_map_get(const msgpack_object *map, const char *key);

/* Packs t as the caller asked: text (str) or ETF (bin). 0, or -1 on ENOMEM. */
int gd_ctl_pack_term(msgpack_packer *pk, term_t t, int terms, const term_text_ctx *ctx);
void gd_ctl_pack_str(msgpack_packer *pk, const char *s);

/* A whole response [1, MsgId, nil, <result bytes>] or [1, MsgId, [Code, Message], nil] into
** out (appended). result holds one packed msgpack object. */
void gd_ctl_response_ok(msgpack_sbuffer *out, uint32_t msgid, const char *result, size_t len);
void gd_ctl_response_err(msgpack_sbuffer *out, uint32_t msgid, int code, const char *message);
/* A notification [2, Method, [Params...]]: params holds nparams packed objects in a row. */
void gd_ctl_notification(msgpack_sbuffer *out, const char *method, const char *params, size_t len,
                         size_t nparams);
#endif
