/* libFuzzer target for distribution frames and control messages: header atom cache, fragments,
** control-tuple validation; every accepted message must survive encode -> decode unchanged,
** with the outgoing atom cache applied as well. */
#include "dist_int.h"

#include <stdlib.h>
#include <string.h>

static void reencode(const dist_ctl *c)
{
    etf_buf b = {0};
    term_t payload = c->payload_term;
    if (dist__frame_encode(c->ctl_term, payload, DIST_OUR_FLAGS, 64, 1, &b) != 0) {
        etf_buf_free(&b);
        return;
    }
    static dist_acache ac; /* kept across inputs: cache hits as well as new entries */
    if (dist__acache_apply(&ac, &b) != 0) {
        etf_buf_free(&b);
        return;
    }
    static dist_rx rx_out; /* the peer's view of that cache */
    static bool rx_init;
    if (!rx_init) {
        dist__rx_init(&rx_out, 0, 0, 0, true);
        rx_init = true;
    }
    size_t pos = 0;
    int rc = 0;
    dist_ctl d;
    const char *why;
    while (pos + 4 <= b.len) {
        size_t len = ((size_t)b.data[pos] << 24) | ((size_t)b.data[pos + 1] << 16) |
                     ((size_t)b.data[pos + 2] << 8) | b.data[pos + 3];
        rc = dist__rx_frame(&rx_out, b.data + pos + 4, len, &d, &why);
        if (rc < 0) abort(); /* what we accepted we must be able to send and read back */
        pos += 4 + len;
    }
    if (rc != 1 || d.op != c->op || !term_equal(d.ctl_term, c->ctl_term)) abort();
    if (payload != TERM_NONE && !term_equal(d.payload_term, payload)) abort();
    dist__ctl_free(&d);
    etf_buf_free(&b);
}

/* The input is a sequence of frames, each with its 4-byte length, as they come after the
** handshake; a short atom budget makes the flood path reachable. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dist_rx rx;
    dist__rx_init(&rx, 1 << 20, 8 << 20, 64, true);
    rx.cache.atoms[0] = term_atom("a@host");
    rx.cache.atoms[1] = term_atom("b@host");
    size_t pos = 0;
    while (pos + 4 <= size) {
        size_t len = ((size_t)data[pos] << 24) | ((size_t)data[pos + 1] << 16) |
                     ((size_t)data[pos + 2] << 8) | data[pos + 3];
        pos += 4;
        if (len > size - pos) len = size - pos;
        if (len == 0) continue; /* a tick */
        dist_ctl c;
        const char *why = NULL;
        int rc = dist__rx_frame(&rx, data + pos, len, &c, &why);
        pos += len;
        if (rc < 0) {
            if (!why) abort();
            break; /* the connection would close */
        }
        if (rc == 1) {
            reencode(&c);
            dist__ctl_free(&c);
        }
    }
    dist__rx_free(&rx);
    return 0;
}
