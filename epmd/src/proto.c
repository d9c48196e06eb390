/* Girder epmd wire codec: framing, request parsing, request encoding and answer decoding. */
#include <stdlib.h>
#include <string.h>

#include "epmd_int.h"

int epmd__frame_size(const uint8_t *buf, size_t got)
{
    if (got < 2) return 0;
    size_t body = girder__get16(buf);
    if (body == 0 || body + 2 > EPMD_MAX_PACKET) return EPMD_EMSGSIZE;
    return (int)(body + 2);
}

/*
** Counts UTF-8 characters in name[0..len), rejecting overlong forms,
** surrogates, code points above U+10FFFF and NUL. Returns -1 if invalid.
*/
static long utf8_chars(const uint8_t *s, size_t len)
{
    long n = 0;
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c == 0) return -1;
        if (c < 0x80) {
            i++;
            n++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return -1;
        }
        if (len - i <= k) return -1;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return -1;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000))
            return -1; /* overlong */
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return -1;
        i += k + 1;
        n++;
    }
    return n;
}

int epmd__name_valid(const uint8_t *name, size_t len)
{
    if (len == 0 || len > EPMD_MAX_NAME_BYTES) return 0;
    long n = utf8_chars(name, len);
    return n >= 1 && n <= EPMD_MAX_NAME_CHARS;
}

int epmd__parse_request(const uint8_t *body, size_t len, epmd__request *req)
{
    memset(req, 0, sizeof *req);
    if (len < 1) return EPMD_EPROTO;
    req->type = body[0];
    switch (body[0]) {
    case EPMD_ALIVE2_REQ: {
        /* tag port(2) type proto high(2) low(2) nlen(2) name elen(2) extra */
        if (len < 13) return EPMD_EPROTO;
        req->port = girder__get16(body + 1);
        req->node_type = body[3];
        req->protocol = body[4];
        req->highest_version = girder__get16(body + 5);
        req->lowest_version = girder__get16(body + 7);
        size_t nlen = girder__get16(body + 9);
        if (nlen + 13 > len) return EPMD_EPROTO;
        size_t elen = girder__get16(body + 11 + nlen);
        /* Exact size: trailing bytes mean a confused or hostile sender. */
        if (nlen + elen + 13 != len) return EPMD_EPROTO;
        if (nlen == 0 || memchr(body + 11, 0, nlen)) return EPMD_EPROTO;
        req->name = body + 11;
        req->name_len = nlen;
        req->extra = body + 13 + nlen;
        req->extra_len = elen;
        return 0;
    }
    case EPMD_PORT2_REQ:
    case EPMD_STOP_REQ: {
        size_t nlen = len - 1;
        /* Old clients terminate the name with one NUL; accept and drop it. */
        if (nlen > 0 && body[len - 1] == 0) nlen--;
        if (nlen == 0 || memchr(body + 1, 0, nlen)) return EPMD_EPROTO;
        req->name = body + 1;
        req->name_len = nlen;
        return 0;
    }
    case EPMD_NAMES_REQ:
    case EPMD_DUMP_REQ:
    case EPMD_KILL_REQ:
        /* Erlang's epmd ignores bytes after these tags; so do we. */
        return 0;
    default:
        return EPMD_EPROTO;
    }
}

int epmd__encode_alive2(const epmd_node_info *node, uint8_t *out, size_t cap)
{
    if (!node || node->name_len == 0 || node->name_len > EPMD_MAX_NAME_BYTES ||
        node->extra_len > EPMD_MAX_EXTRA)
        return EPMD_EINVAL;
    size_t body = 13 + node->name_len + node->extra_len;
    if (body + 2 > cap || body + 2 > EPMD_MAX_PACKET) return EPMD_EMSGSIZE;
    uint8_t *p = out;
    girder__put16(p, (uint16_t)body);
    p[2] = EPMD_ALIVE2_REQ;
    girder__put16(p + 3, node->port);
    p[5] = node->node_type;
    p[6] = node->protocol;
    girder__put16(p + 7, node->highest_version);
    girder__put16(p + 9, node->lowest_version);
    girder__put16(p + 11, (uint16_t)node->name_len);
    memcpy(p + 13, node->name, node->name_len);
    girder__put16(p + 13 + node->name_len, (uint16_t)node->extra_len);
    memcpy(p + 15 + node->name_len, node->extra, node->extra_len);
    return (int)(body + 2);
}

int epmd__encode_name_req(int type, const char *name, uint8_t *out, size_t cap)
{
    size_t nlen = name ? strlen(name) : 0;
    if (type == EPMD_PORT2_REQ || type == EPMD_STOP_REQ) {
        if (nlen == 0) return EPMD_EINVAL;
        if (nlen > EPMD_MAX_NAME_BYTES) return EPMD_ENAMETOOLONG;
    } else {
        nlen = 0;
    }
    if (3 + nlen > cap) return EPMD_EMSGSIZE;
    girder__put16(out, (uint16_t)(1 + nlen));
    out[2] = (uint8_t)type;
    if (nlen) memcpy(out + 3, name, nlen);
    return (int)(3 + nlen);
}

int epmd__decode_alive_resp(const uint8_t *buf, size_t len, uint32_t *creation, int *extended)
{
    if (len < 1) return 1;
    size_t need;
    if (buf[0] == EPMD_ALIVE2_X_RESP)
        need = 6;
    else if (buf[0] == EPMD_ALIVE2_RESP)
        need = 4;
    else
        return EPMD_EPROTO;
    if (len < need) return (int)need;
    if (buf[1] != 0) return EPMD_EEXIST;
    *extended = buf[0] == EPMD_ALIVE2_X_RESP;
    *creation = *extended ? girder__get32(buf + 2) : girder__get16(buf + 2);
    return 0;
}

int epmd__decode_port2_resp(const uint8_t *buf, size_t len, epmd_node_info *out)
{
    /* tag result port(2) type proto high(2) low(2) nlen(2) name elen(2) extra */
    if (len < 2) return 2;
    if (buf[0] != EPMD_PORT2_RESP) return EPMD_EPROTO;
    if (buf[1] != 0) return EPMD_ENOENT;
    if (len < 12) return 12;
    size_t nlen = girder__get16(buf + 10);
    if (nlen == 0 || nlen > EPMD_MAX_NAME_BYTES) return EPMD_EPROTO;
    if (len < 14 + nlen) return (int)(14 + nlen);
    size_t elen = girder__get16(buf + 12 + nlen);
    if (elen > EPMD_MAX_EXTRA) return EPMD_EPROTO;
    if (len < 14 + nlen + elen) return (int)(14 + nlen + elen);
    if (memchr(buf + 12, 0, nlen)) return EPMD_EPROTO;
    memset(out, 0, offsetof(epmd_node_info, name));
    out->port = girder__get16(buf + 2);
    out->node_type = buf[4];
    out->protocol = buf[5];
    out->highest_version = girder__get16(buf + 6);
    out->lowest_version = girder__get16(buf + 8);
    out->name_len = nlen;
    memcpy(out->name, buf + 12, nlen);
    out->name[nlen] = 0;
    out->extra_len = elen;
    memcpy(out->extra, buf + 14 + nlen, elen);
    return 0;
}

/* Parses "name <N> at port <P>" (without the newline). Returns 0 or -1. */
static int parse_line(char *line, size_t len, epmd_name_entry *e)
{
    static const char pre[] = "name ", mid[] = " at port ";
    if (len < sizeof pre - 1 || memcmp(line, pre, sizeof pre - 1) != 0) return -1;
    /* The name may contain anything but the last " at port " ends it. */
    char *at = NULL;
    for (char *p = line + len - (sizeof mid - 1); p >= line + sizeof pre - 1; p--) {
        if (memcmp(p, mid, sizeof mid - 1) == 0) {
            at = p;
            break;
        }
    }
    if (!at || at == line + sizeof pre - 1) return -1;
    const char *digits = at + sizeof mid - 1;
    const char *end = line + len;
    if (digits == end || end - digits > 5) return -1;
    unsigned long port = 0;
    for (const char *d = digits; d < end; d++) {
        if (*d < '0' || *d > '9') return -1;
        port = port * 10 + (unsigned long)(*d - '0');
    }
    if (port > 65535) return -1;
    *at = 0;
    e->name = line + sizeof pre - 1;
    e->port = (uint16_t)port;
    return 0;
}

int epmd__parse_names(char *text, size_t len, epmd_name_entry **entries, size_t *count)
{
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    epmd_name_entry *v = calloc(lines ? lines : 1, sizeof *v);
    if (!v) return EPMD_ENOMEM;
    size_t n = 0, start = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\n') continue;
        text[i] = 0;
        if (parse_line(text + start, i - start, &v[n]) != 0) {
            free(v);
            return EPMD_EPROTO;
        }
        n++;
        start = i + 1;
    }
    if (start != len) { /* an unterminated last line */
        free(v);
        return EPMD_EPROTO;
    }
    *entries = v;
    *count = n;
    return 0;
}
