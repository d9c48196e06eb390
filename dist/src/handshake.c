/* The distribution handshake (versions 5 and 6) as a pure state machine: bytes in, bytes out. */
#include "dist_int.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

enum {
    I_STATUS = 1, /* initiator: waiting for 's' */
    I_CHALLENGE,  /* waiting for 'N' / 'n' */
    I_ACK,        /* waiting for 'a' */
    A_NAME,       /* acceptor: waiting for 'N' / 'n' */
    A_ALIVE,      /* sent "alive", waiting for "true" / "false" */
    A_COMPLEMENT, /* waiting for 'c' (the peer sent the old name message) */
    A_REPLY,      /* waiting for 'r' */
    S_DONE,
    S_FAILED
};

void dist__digest(const char *cookie, uint32_t challenge, uint8_t out[16])
{
    char buf[HS_MAX_COOKIE + 16];
    int n = snprintf(buf, sizeof buf, "%s%u", cookie, challenge);
    unsigned olen = 16;
    EVP_Digest(buf, (size_t)n, out, &olen, EVP_md5(), NULL);
}

/* Randomness comes from the caller (the transport's source): the machine never reads it. */
static uint32_t challenge(dist_hs *hs)
{
    return hs->rand32(hs->ud);
}

static int fail(dist_hs *hs, const char *why)
{
    if (hs->state != S_FAILED) snprintf(hs->why, sizeof hs->why, "%s", why);
    hs->state = S_FAILED;
    return HS_FAIL;
}

/* Appends one packet (length prefix + body) to the output; bodies are always small. */
static void emit(dist_hs *hs, const uint8_t *body, size_t n)
{
    size_t pl = (size_t)hs->plen;
    if (hs->out_len + pl + n > sizeof hs->out) return; /* cannot happen: bodies < HS_MAX_PACKET */
    if (pl == 4)
        girder__put32(hs->out + hs->out_len, (uint32_t)n);
    else
        girder__put16(hs->out + hs->out_len, (uint32_t)n);
    memcpy(hs->out + hs->out_len + pl, body, n);
    hs->out_len += pl + n;
}

static void emit_status(dist_hs *hs, const char *st)
{
    uint8_t b[32];
    size_t n = strlen(st);
    b[0] = 's';
    memcpy(b + 1, st, n);
    emit(hs, b, n + 1);
}

void dist__hs_init(dist_hs *hs, hs_role role, const char *my_name, uint64_t my_flags,
                   uint32_t my_creation, const char *cookie)
{
    memset(hs, 0, sizeof *hs);
    hs->role = role;
    snprintf(hs->my_name, sizeof hs->my_name, "%s", my_name);
    hs->my_flags = my_flags;
    hs->my_creation = my_creation;
    snprintf(hs->cookie, sizeof hs->cookie, "%s", cookie);
    hs->state = role == HS_ACCEPTOR ? A_NAME : I_STATUS;
    hs->plen = 2;
}

bool dist__hs_awaiting_ack(const dist_hs *hs)
{
    return hs->role == HS_INITIATOR && hs->state == I_ACK;
}

void dist__hs_start(dist_hs *hs, const char *expect_name, int version)
{
    uint8_t b[HS_MAX_PACKET];
    size_t nl = strlen(hs->my_name);
    snprintf(hs->expect_name, sizeof hs->expect_name, "%s", expect_name ? expect_name : "");
    hs->send_version = version == 5 ? 5 : 6;
    if (hs->my_flags & DFLAG_NAME_ME) hs->send_version = 6; /* a name request needs 'N' */
    if (hs->send_version == 6) {
        b[0] = 'N';
        girder__put64(b + 1, hs->my_flags);
        girder__put32(b + 9, (hs->my_flags & DFLAG_NAME_ME) ? 0 : hs->my_creation);
        girder__put16(b + 13, (uint32_t)nl);
        memcpy(b + 15, hs->my_name, nl);
        emit(hs, b, 15 + nl);
    } else {
        b[0] = 'n';
        girder__put16(b + 1, 5);
        girder__put32(b + 3, (uint32_t)hs->my_flags);
        memcpy(b + 7, hs->my_name, nl);
        emit(hs, b, 7 + nl);
    }
    hs->state = I_STATUS;
}

/* A static node name is Name@Host, both non-empty, one '@', valid UTF-8, at most 255 chars. */
static bool name_ok(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    if (!at || at == s || at == s + n - 1 || memchr(at + 1, '@', n - (size_t)(at - s) - 1))
        return false;
    size_t chars = 0;
    for (size_t i = 0; i < n; chars++) {
        uint8_t c = (uint8_t)s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || c == 0 || i + k > n) return false;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return false;
        i += k;
    }
    return chars <= 255;
}

static uint64_t expand(uint64_t f)
{
    return (f & DFLAG_MANDATORY_25_DIGEST) ? f | DFLAG_MANDATORY_25 : f;
}

/* With the old name message only the low 32 flags are known until the complement arrives. */
static bool flags_ok(dist_hs *hs)
{
    uint64_t need = DIST_REQUIRED_FLAGS;
    if (hs->state == A_NAME && hs->peer_old_name && (hs->peer_flags & DFLAG_HANDSHAKE_23))
        need &= 0xffffffffULL;
    uint64_t missing = need & ~hs->peer_flags;
    if (!missing) return true;
    snprintf(hs->why, sizeof hs->why, "peer lacks mandatory distribution flags 0x%llx",
             (unsigned long long)missing);
    return false;
}

static void send_challenge(dist_hs *hs)
{
    uint8_t b[HS_MAX_PACKET];
    size_t nl = strlen(hs->my_name);
    hs->my_challenge = challenge(hs);
    /* to a peer we named: NAME_ME in place of PUBLISHED (as dist_util's publish_flag), which
    ** also tells the peer the name is dynamic when it compares flags */
    if (hs->named) hs->my_flags = (hs->my_flags & ~DFLAG_PUBLISHED) | DFLAG_NAME_ME;
    if (!hs->peer_old_name || (hs->peer_flags & DFLAG_HANDSHAKE_23)) {
        b[0] = 'N';
        girder__put64(b + 1, hs->my_flags);
        girder__put32(b + 9, hs->my_challenge);
        girder__put32(b + 13, hs->my_creation);
        girder__put16(b + 17, (uint32_t)nl);
        memcpy(b + 19, hs->my_name, nl);
        emit(hs, b, 19 + nl);
    } else {
        b[0] = 'n';
        girder__put16(b + 1, 5);
        girder__put32(b + 3, (uint32_t)hs->my_flags);
        girder__put32(b + 7, hs->my_challenge);
        memcpy(b + 11, hs->my_name, nl);
        emit(hs, b, 11 + nl);
    }
    hs->flags = hs->my_flags & hs->peer_flags;
    hs->state = hs->peer_old_name && (hs->peer_flags & DFLAG_HANDSHAKE_23) ? A_COMPLEMENT : A_REPLY;
}

/* A host name for a dynamic name request: non-empty, no '@', no NUL, at most 255 bytes. */
static bool host_ok(const char *s, size_t n)
{
    return n > 0 && n <= 255 && !memchr(s, '@', n) && !memchr(s, 0, n);
}

/*
** Makes up a name for a peer that asked for one (DFLAG_NAME_ME): as net_kernel does, a random
** 64-bit number in base 36 at the host the peer gave, and a random non-zero creation.
*/
static void name_peer(dist_hs *hs)
{
    char host[HS_MAX_NAME + 1], digits[16];
    snprintf(host, sizeof host, "%s", hs->peer_name);
    uint64_t r = ((uint64_t)challenge(hs) << 32) | challenge(hs);
    size_t k = 0;
    do {
        digits[k++] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[r % 36];
        r /= 36;
    } while (r && k < sizeof digits);
    char name[16];
    for (size_t i = 0; i < k; i++) name[i] = digits[k - 1 - i];
    name[k] = 0;
    snprintf(hs->peer_name, sizeof hs->peer_name, "%s@%.*s", name, 255, host);
    do hs->peer_creation = challenge(hs);
    while (hs->peer_creation == 0);
    hs->named = true;
}

/* "snamed:" Nlen(2) Name Creation(4): the status that gives a dynamic peer its name. */
static void emit_named(dist_hs *hs)
{
    uint8_t b[HS_MAX_PACKET];
    size_t nl = strlen(hs->peer_name);
    b[0] = 's';
    memcpy(b + 1, "named:", 6);
    girder__put16(b + 7, (uint32_t)nl);
    memcpy(b + 9, hs->peer_name, nl);
    girder__put32(b + 9 + nl, hs->peer_creation);
    emit(hs, b, 13 + nl);
}

static int acceptor_name(dist_hs *hs, const uint8_t *p, size_t n)
{
    const uint8_t *name;
    size_t nl;
    if (n >= 15 && p[0] == 'N') {
        hs->peer_flags = girder__get64(p + 1);
        hs->peer_creation = girder__get32(p + 9);
        nl = girder__get16(p + 13);
        if (15 + nl > n) return fail(hs, "bad name message (length)");
        name = p + 15;
    } else if (n >= 7 && p[0] == 'n') {
        if (girder__get16(p + 1) != 5) return fail(hs, "bad name message (version)");
        hs->peer_flags = girder__get32(p + 3);
        hs->peer_old_name = true;
        name = p + 7;
        nl = n - 7;
    } else {
        return fail(hs, "expected a name message");
    }
    if (nl > HS_MAX_NAME) return fail(hs, "node name too long");
    memcpy(hs->peer_name, name, nl);
    hs->peer_name[nl] = 0;
    if (hs->peer_flags & DFLAG_NAME_ME) {
        if (hs->peer_old_name) return fail(hs, "dynamic node name with the old name message");
        if (!host_ok(hs->peer_name, nl)) return fail(hs, "invalid host in a dynamic name request");
        name_peer(hs);
    } else if (!name_ok(hs->peer_name, nl)) {
        return fail(hs, "invalid node name");
    }
    hs->peer_flags = expand(hs->peer_flags);
    if (!flags_ok(hs)) {
        emit_status(hs, "not_allowed");
        hs->state = S_FAILED;
        return HS_FAIL;
    }
    hs_status st = hs->decide ? hs->decide(hs->ud, hs) : HS_ST_OK;
    switch (st) {
    case HS_ST_OK:
        if (hs->named)
            emit_named(hs);
        else
            emit_status(hs, "ok");
        break;
    case HS_ST_OK_SIMULTANEOUS:
        emit_status(hs, "ok_simultaneous");
        break;
    case HS_ST_NOK:
        emit_status(hs, "nok");
        return fail(hs, "simultaneous connect: our own attempt wins (nok)");
    case HS_ST_ALIVE:
        emit_status(hs, "alive");
        hs->state = A_ALIVE;
        return HS_CONT;
    default:
        emit_status(hs, "not_allowed");
        return fail(hs, "connection not allowed");
    }
    send_challenge(hs);
    return HS_CONT;
}

static int initiator_challenge(dist_hs *hs, const uint8_t *p, size_t n)
{
    const uint8_t *name;
    size_t nl;
    bool new_format;
    if (n >= 19 && p[0] == 'N') {
        hs->peer_flags = girder__get64(p + 1);
        hs->peer_challenge = girder__get32(p + 9);
        hs->peer_creation = girder__get32(p + 13);
        nl = girder__get16(p + 17);
        if (19 + nl > n) return fail(hs, "bad challenge message (length)");
        name = p + 19;
        new_format = true;
    } else if (n >= 11 && p[0] == 'n') {
        if (girder__get16(p + 1) != 5) return fail(hs, "bad challenge message (version)");
        hs->peer_flags = girder__get32(p + 3);
        hs->peer_challenge = girder__get32(p + 7);
        name = p + 11;
        nl = n - 11;
        new_format = false;
    } else {
        return fail(hs, "expected a challenge message");
    }
    if (nl > HS_MAX_NAME) return fail(hs, "node name too long");
    memcpy(hs->peer_name, name, nl);
    hs->peer_name[nl] = 0;
    if (hs->expect_name[0] && strcmp(hs->expect_name, hs->peer_name) != 0)
        return fail(hs, "the peer answers with another node name");
    hs->peer_flags = expand(hs->peer_flags);
    if (!flags_ok(hs)) {
        hs->state = S_FAILED;
        return HS_FAIL;
    }
    hs->flags = hs->my_flags & hs->peer_flags;
    uint8_t b[32];
    if (hs->send_version == 5 && new_format) {
        b[0] = 'c';
        girder__put32(b + 1, (uint32_t)(hs->my_flags >> 32));
        girder__put32(b + 5, hs->my_creation);
        emit(hs, b, 9);
    }
    hs->my_challenge = challenge(hs);
    b[0] = 'r';
    girder__put32(b + 1, hs->my_challenge);
    dist__digest(hs->cookie, hs->peer_challenge, b + 5);
    emit(hs, b, 21);
    hs->state = I_ACK;
    return HS_CONT;
}

/* One complete packet body. */
static int packet(dist_hs *hs, const uint8_t *p, size_t n)
{
    uint8_t want[16];
    if (n == 0) return fail(hs, "empty handshake packet");
    switch (hs->state) {
    case I_STATUS:
        if (p[0] != 's') return fail(hs, "expected a status message");
        if (n >= 7 && !memcmp(p + 1, "named:", 6)) {
            if (!(hs->my_flags & DFLAG_NAME_ME)) return fail(hs, "named by a peer we did not ask");
            if (n < 9 || 13 + (size_t)girder__get16(p + 7) > n) return fail(hs, "bad named status");
            size_t nl = girder__get16(p + 7);
            const char *nm = (const char *)p + 9;
            const char *at = memchr(nm, '@', nl);
            /* the name must be Name@OurHost, as dist_util checks */
            if (!name_ok(nm, nl) || !at || (size_t)(nm + nl - at - 1) != strlen(hs->my_name) ||
                memcmp(at + 1, hs->my_name, strlen(hs->my_name)) != 0)
                return fail(hs, "the peer named us with an invalid name");
            memcpy(hs->my_name, nm, nl);
            hs->my_name[nl] = 0;
            hs->my_creation = girder__get32(p + 9 + nl);
            hs->named = true;
            hs->state = I_CHALLENGE;
            return HS_CONT;
        }
        if (hs->my_flags & DFLAG_NAME_ME) return fail(hs, "asked for a name, got another status");
        if ((n == 3 && !memcmp(p + 1, "ok", 2)) ||
            (n == 16 && !memcmp(p + 1, "ok_simultaneous", 15))) {
            hs->state = I_CHALLENGE;
            return HS_CONT;
        }
        if (n == 6 && !memcmp(p + 1, "alive", 5)) {
            /* the peer still has a connection from us that we do not know about: ours is
            ** the one to keep (we are trying to connect) */
            emit_status(hs, "true");
            hs->state = I_CHALLENGE;
            return HS_CONT;
        }
        if (n == 4 && !memcmp(p + 1, "nok", 3)) {
            hs->nok = true;
            return fail(hs, "simultaneous connect: the peer's attempt wins (nok)");
        }
        if (n == 12 && !memcmp(p + 1, "not_allowed", 11)) return fail(hs, "peer says not_allowed");
        return fail(hs, "unexpected status");
    case I_CHALLENGE:
        return initiator_challenge(hs, p, n);
    case I_ACK:
        if (n != 17 || p[0] != 'a') return fail(hs, "expected a challenge ack");
        dist__digest(hs->cookie, hs->my_challenge, want);
        if (memcmp(want, p + 1, 16) != 0) {
            hs->bad_cookie = true;
            return fail(hs, "invalid challenge ack (wrong cookie)");
        }
        hs->state = S_DONE;
        return HS_DONE;
    case A_NAME:
        return acceptor_name(hs, p, n);
    case A_ALIVE:
        if (n == 5 && !memcmp(p, "strue", 5)) {
            send_challenge(hs);
            return HS_CONT;
        }
        return fail(hs, "peer gave up its connection attempt (alive/false)");
    case A_COMPLEMENT:
        if (n < 9 || p[0] != 'c') return fail(hs, "expected a complement message");
        hs->peer_flags = expand(hs->peer_flags | ((uint64_t)girder__get32(p + 1) << 32));
        hs->peer_creation = girder__get32(p + 5);
        if (!flags_ok(hs)) {
            hs->state = S_FAILED;
            return HS_FAIL;
        }
        hs->flags = hs->my_flags & hs->peer_flags;
        hs->state = A_REPLY;
        return HS_CONT;
    case A_REPLY: {
        if (n != 21 || p[0] != 'r') return fail(hs, "expected a challenge reply");
        dist__digest(hs->cookie, hs->my_challenge, want);
        if (memcmp(want, p + 5, 16) != 0) {
            hs->bad_cookie = true;
            return fail(hs, "invalid challenge reply (wrong cookie)");
        }
        uint8_t b[17];
        b[0] = 'a';
        dist__digest(hs->cookie, girder__get32(p + 1), b + 1);
        emit(hs, b, 17);
        hs->state = S_DONE;
        return HS_DONE;
    }
    default:
        return fail(hs, "handshake already over");
    }
}

static size_t plen_of(const dist_hs *hs)
{
    return hs->plen == 4 ? girder__get32(hs->in) : girder__get16(hs->in);
}

int dist__hs_feed(dist_hs *hs, const uint8_t *data, size_t len, size_t *used)
{
    size_t pos = 0, pl = (size_t)hs->plen;
    int rc = hs->state == S_DONE ? HS_DONE : hs->state == S_FAILED ? HS_FAIL : HS_CONT;
    while (rc == HS_CONT && pos < len) {
        size_t need = pl;
        if (hs->in_len >= pl) {
            size_t n = plen_of(hs);
            if (n > HS_MAX_PACKET) {
                rc = fail(hs, "handshake packet too large");
                break;
            }
            need = pl + n;
        }
        size_t take = need - hs->in_len;
        if (take > len - pos) take = len - pos;
        memcpy(hs->in + hs->in_len, data + pos, take);
        hs->in_len += take;
        pos += take;
        if (hs->in_len == pl && plen_of(hs) > HS_MAX_PACKET) {
            rc = fail(hs, "handshake packet too large");
            break;
        }
        if (hs->in_len >= pl && hs->in_len == pl + plen_of(hs)) {
            size_t n = hs->in_len - pl;
            hs->in_len = 0;
            rc = packet(hs, hs->in + pl, n);
        }
    }
    if (used) *used = pos;
    return rc;
}
