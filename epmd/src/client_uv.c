/* Girder epmd asynchronous registration for libuv programs: one ALIVE2_REQ on a kept connection. */
#include <string.h>

#include <girder/epmd_uv.h>

#include "epmd_int.h"

enum { S_CONNECTING, S_WAITING, S_REGISTERED, S_DONE, S_CLOSING };

/* Reports the outcome once; after it the handles stay open until epmd_uv_unregister. */
static void finish(epmd_uv_registration *reg, int status)
{
    if (reg->state >= S_DONE) return;
    reg->state = S_DONE;
    uv_timer_stop(&reg->timer);
    uv_read_stop((uv_stream_t *)&reg->tcp);
    if (reg->cb) reg->cb(reg, status);
}

static void on_timeout(uv_timer_t *t)
{
    finish(t->data, EPMD_ETIMEDOUT);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    epmd_uv_registration *reg = h->data;
    /* Never read past the answer (at most 6 bytes) while waiting for it. */
    size_t room = reg->state == S_WAITING ? 6 - reg->got : 1;
    *buf = uv_buf_init((char *)reg->buf + (reg->state == S_WAITING ? reg->got : 0), (unsigned)room);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    epmd_uv_registration *reg = s->data;
    if (nread == 0) return;
    if (reg->state == S_REGISTERED) {
        /* epmd closed (or misbehaved): the registration is gone. */
        reg->state = S_DONE;
        uv_read_stop(s);
        if (reg->cb) reg->cb(reg, EPMD_ECONNRESET);
        return;
    }
    if (reg->state != S_WAITING) return;
    if (nread < 0) {
        finish(reg, nread == UV_EOF ? EPMD_ECONNRESET : (int)nread);
        return;
    }
    reg->got += (size_t)nread;
    uint32_t creation = 0;
    int extended = 0;
    int r = epmd__decode_alive_resp(reg->buf, reg->got, &creation, &extended);
    if (r > 0 && (size_t)r > reg->got) return; /* more to come */
    if (r != 0) {
        finish(reg, r);
        return;
    }
    reg->creation = creation;
    reg->extended = extended;
    reg->state = S_REGISTERED;
    uv_timer_stop(&reg->timer);
    reg->got = 0;
    if (reg->cb) reg->cb(reg, 0);
}

static void on_write(uv_write_t *w, int status)
{
    epmd_uv_registration *reg = w->data;
    if (reg->state != S_CONNECTING) return;
    if (status < 0) {
        finish(reg, status);
        return;
    }
    reg->state = S_WAITING;
    reg->got = 0;
    int r = uv_read_start((uv_stream_t *)&reg->tcp, on_alloc, on_read);
    if (r < 0) finish(reg, r);
}

static void on_connect(uv_connect_t *c, int status)
{
    epmd_uv_registration *reg = c->data;
    if (reg->state != S_CONNECTING) return;
    if (status < 0) {
        finish(reg, status);
        return;
    }
    size_t len = girder__get16(reg->buf) + 2u; /* the request encoded by epmd_uv_register */
    uv_buf_t b = uv_buf_init((char *)reg->buf, (unsigned)len);
    reg->write.data = reg;
    int r = uv_write(&reg->write, (uv_stream_t *)&reg->tcp, &b, 1, on_write);
    if (r < 0) finish(reg, r);
}

int epmd_uv_register(uv_loop_t *loop, epmd_uv_registration *reg, const struct sockaddr *addr,
                     const epmd_node_info *node, int timeout_ms, epmd_uv_cb cb)
{
    void *data = reg->data;
    memset(reg, 0, sizeof *reg);
    reg->data = data;
    reg->cb = cb;
    /* Both handles exist from here on, whatever happens: epmd_uv_unregister closes them. */
    uv_tcp_init(loop, &reg->tcp);
    reg->tcp.data = reg;
    uv_timer_init(loop, &reg->timer);
    reg->timer.data = reg;
    reg->connect.data = reg;
    reg->state = S_DONE;
    int r = epmd__encode_alive2(node, reg->buf, sizeof reg->buf);
    if (r < 0) return r;
    r = uv_tcp_connect(&reg->connect, &reg->tcp, addr, on_connect);
    if (r < 0) return r;
    reg->state = S_CONNECTING;
    if (timeout_ms >= 0) uv_timer_start(&reg->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    epmd_uv_registration *reg = h->data;
    if (--reg->pending_closes == 0 && reg->close_cb) reg->close_cb(reg);
}

void epmd_uv_unregister(epmd_uv_registration *reg, epmd_uv_close_cb close_cb)
{
    if (reg->state == S_CLOSING) return;
    reg->state = S_CLOSING;
    reg->cb = NULL;
    reg->close_cb = close_cb;
    reg->pending_closes = 2;
    uv_close((uv_handle_t *)&reg->tcp, on_closed);
    uv_close((uv_handle_t *)&reg->timer, on_closed);
}
