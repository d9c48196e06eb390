/* Distribution frames: the header atom cache, fragments, control messages — decode and encode. */
#include "dist_int.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FRAG_SEQS 64 /* fragmented messages in flight per connection */

/* ================================================================ receive */

void dist__rx_init(dist_rx *rx, size_t max_message, size_t max_heap, size_t max_new_atoms,
                   bool hdr_cache)
{
    memset(rx, 0, sizeof *rx);
    rx->max_message = max_message ? max_message : DIST__DEFAULT_MAX_MESSAGE;
    rx->max_heap = max_heap ? max_heap : rx->max_message;
    rx->max_new_atoms = max_new_atoms ? max_new_atoms : 100000;
    rx->budget = &rx->own_budget;
    rx->hdr_cache = hdr_cache;
}

/* A reference of the holder's own to a (free for an interned atom). */
static inline term_t ref_take(term_t a)
{
    return term_atom_is_interned(a) ? a : term_dup(a);
}

static inline void ref_drop(term_t a)
{
    if (!term_atom_is_interned(a)) term_free(a);
}

etf_atom_cache *dist__refs_copy(const etf_atom_cache *src, size_t n)
{
    size_t keep = n > 256 ? n : 256;
    etf_atom_cache *r = malloc(sizeof *r);
    if (!r) return NULL;
    for (size_t i = 0; i < n; i++) r->atoms[i] = ref_take(src->atoms[i]);
    for (size_t i = n; i < keep; i++) r->atoms[i] = TERM_NONE;
    return r;
}

void dist__refs_free(etf_atom_cache *r, size_t n)
{
    if (!r) return;
    for (size_t i = 0; i < n; i++) ref_drop(r->atoms[i]);
    free(r);
}

static void frag_free(dist_frag *f)
{
    term_free_raw(f->buf, f->cap);
    dist__refs_free(f->refs, f->nrefs);
    free(f);
}

void dist__rx_free(dist_rx *rx)
{
    while (rx->frags) {
        dist_frag *f = rx->frags;
        rx->frags = f->next;
        frag_free(f);
    }
    rx->nfrags = 0;
    rx->frag_bytes = 0;
    for (size_t i = 0; i < rx->nrefs; i++) ref_drop(rx->refs.atoms[i]);
    rx->nrefs = 0;
    for (size_t i = 0; i < DIST_ACACHE_SIZE; i++) {
        ref_drop(rx->cache.atoms[i]);
        rx->cache.atoms[i] = TERM_NONE;
    }
}

/* What is left of the peer's budget of new atoms. */
static size_t atoms_left(const dist_rx *rx)
{
    size_t spent = atomic_load_explicit(&rx->budget->interned, memory_order_relaxed);
    return spent < rx->max_new_atoms ? rx->max_new_atoms - spent : 0;
}

/*
** Accounts for what one decode (or cache update) did with new names: interned ones against the
** budget; foreign ones noted by reason (left: the budget before it). With atoms_disconnect a
** foreign atom is a protocol error with *why.
*/
static int atoms_spent(dist_rx *rx, size_t left, size_t interned, size_t foreign, const char **why)
{
    dist_atom_budget *b = rx->budget;
    if (interned) atomic_fetch_add_explicit(&b->interned, interned, memory_order_relaxed);
    if (!foreign) return 0;
    bool budget = left <= interned; /* else the quota or the table said no */
    atomic_store_explicit(budget ? &b->over_budget : &b->over_quota, true, memory_order_relaxed);
    if (!rx->atoms_disconnect) return 0;
    *why = budget ? "the peer exceeded its budget of new atoms (max_new_atoms)"
                  : "no room for the peer's new atoms (the atom quota of peers is used up)";
    return DIST_EPROTO;
}

/*
** Parses NumberOfAtomCacheRefs, Flags and AtomCacheRefs at f[*pos]; fills rx->refs (entries past
** the count are cleared so a stray ATOM_CACHE_REF fails) and updates the connection cache.
*/
static int parse_cache_refs(dist_rx *rx, const uint8_t *f, size_t len, size_t *pos,
                            const char **why)
{
    size_t p = *pos;
    if (p >= len) return (*why = "truncated distribution header", DIST_EPROTO);
    size_t n = f[p++];
    /* the previous message's references go; the ones past n are cleared, so a stray
    ** ATOM_CACHE_REF fails */
    for (size_t i = 0; i < rx->nrefs; i++) {
        ref_drop(rx->refs.atoms[i]);
        rx->refs.atoms[i] = TERM_NONE;
    }
    rx->nrefs = 0;
    if (n == 0) {
        *pos = p;
        return 0;
    }
    size_t fb = n / 2 + 1;
    if (len - p < fb) return (*why = "truncated atom cache flags", DIST_EPROTO);
    const uint8_t *flags = f + p;
    p += fb;
#define NIBBLE(i) ((flags[(i) / 2] >> (((i)&1) ? 4 : 0)) & 0xF)
    bool long_atoms = NIBBLE(n) & 1;
    for (size_t i = 0; i < n; i++) {
        unsigned nib = NIBBLE(i);
        if (p >= len) return (*why = "truncated atom cache reference", DIST_EPROTO);
        size_t idx = (size_t)(nib & 7) * 256 + f[p++];
        term_t *e = &rx->cache.atoms[idx];
        if (nib & 8) {
            size_t al;
            if (long_atoms) {
                if (len - p < 2) return (*why = "truncated atom length", DIST_EPROTO);
                al = ((size_t)f[p] << 8) | f[p + 1];
                p += 2;
            } else {
                if (len - p < 1) return (*why = "truncated atom length", DIST_EPROTO);
                al = f[p++];
            }
            if (len - p < al) return (*why = "truncated atom text", DIST_EPROTO);
            size_t left = atoms_left(rx), l = left;
            bool made = false;
            int err = 0;
            term_t a = term_atom_from_outside((const char *)f + p, al, &l, &made, &err);
            if (a == TERM_NONE)
                return err == TERM_ENOMEM ? (*why = "out of memory", DIST_ENOMEM)
                                          : (*why = "invalid atom in cache update", DIST_EPROTO);
            int rc = atoms_spent(rx, left, made, !term_atom_is_interned(a), why);
            if (rc) {
                term_free(a);
                return rc;
            }
            p += al;
            ref_drop(*e);
            *e = a;
        } else if (!term_is_atom(*e)) {
            return (*why = "reference to an empty atom cache entry", DIST_EPROTO);
        } else if (!term_atom_is_interned(*e)) {
            /* a foreign entry whose name has been interned since: use the interned atom, so
            ** that == against it holds for what this entry decodes to from now on */
            term_t c = term_atom_canonical(*e);
            if (term_atom_is_interned(c)) {
                term_free(*e);
                *e = c;
            } else {
                term_free(c);
            }
        }
        rx->refs.atoms[i] = ref_take(*e);
        rx->nrefs = i + 1;
    }
#undef NIBBLE
    *pos = p;
    return 0;
}

int dist__rx_decode(dist_rx *rx, const dist_rxmsg *m, bool allow_compressed, dist_ctl *ctl,
                    const char **why)
{
    memset(ctl, 0, sizeof *ctl);
    etf_decode_stats st1 = {0}, st2 = {0};
    size_t left = atoms_left(rx);
    etf_decode_opts o = {0};
    o.cache = m->refs;
    o.max_new_atoms = left;
    o.foreign_atoms = true; /* past the budget or the quota: foreign atoms (or the error below) */
    o.stats = &st1;
    o.no_version = !m->versioned;
    o.max_uncompressed = rx->max_message;
    o.max_heap = rx->max_heap;
    o.no_compressed = !allow_compressed;
    o.share = m->own;
    etf_error e = {0};
    size_t used = 0;
    term_t c = etf_decode(m->data, m->len, &o, &used, &e);
    term_t pl = TERM_NONE;
    if (c != TERM_NONE && used < m->len) {
        o.max_new_atoms = left > st1.interned ? left - st1.interned : 0;
        o.stats = &st2;
        pl = etf_decode(m->data + used, m->len - used, &o, NULL, &e);
    }
    int arc = atoms_spent(rx, left, st1.interned + st2.interned, st1.foreign + st2.foreign, why);
    if (c == TERM_NONE || (used < m->len && pl == TERM_NONE)) {
        term_free(c);
        if (e.code == GIRDER_ECOMPRESSED) return GIRDER_ECOMPRESSED;
        *why = e.code == TERM_ENOMEM    ? "out of memory decoding a message"
               : e.code == GIRDER_EHEAP ? "a message that would exceed its memory limit"
                                        : "undecodable term in a message";
        return e.code == TERM_ENOMEM ? DIST_ENOMEM : DIST_EPROTO;
    }
    if (arc) {
        term_free(c);
        term_free(pl);
        return arc;
    }
    return dist__ctl_parse(c, pl, ctl, why);
}

void dist__rxmsg_release(dist_rxmsg *m)
{
    term_free(m->own);
    dist__refs_free(m->own_refs, m->nrefs);
    m->own = TERM_NONE;
    m->own_refs = NULL;
}

static dist_frag *frag_find(dist_rx *rx, uint64_t seq, dist_frag ***link)
{
    for (dist_frag **l = &rx->frags; *l; l = &(*l)->next)
        if ((*l)->seq == seq) {
            if (link) *link = l;
            return *l;
        }
    return NULL;
}

/*
** Appends to a sequence in reassembly; all sequences of a connection together hold at most
** max_message bytes of buffer. The first fragment's buffer has an eighth more room, so the
** short last fragment of a message just over the fragment size lands without a copy of the
** rest; past that it doubles. The finished buffer is trimmed to its length in place (a
** shrink), and stays alive as long as a binary decoded from it points into it.
*/
static int frag_append(dist_rx *rx, dist_frag *fr, const uint8_t *d, size_t n, const char **why)
{
    if (n == 0) return 0; /* an empty fragment: nothing to add (and buf may still be NULL) */
    if (n > rx->max_message - fr->len) return (*why = "message too large", DIST_EPROTO);
    if (fr->len + n > fr->cap) {
        size_t nc = fr->cap ? fr->cap : ((n + n / 8) | 4095) + 1;
        while (nc < fr->len + n) nc *= 2;
        if (nc > rx->max_message) nc = rx->max_message;
        if (rx->frag_bytes - fr->cap + nc > rx->max_message)
            return (*why = "fragmented messages in reassembly over the message size limit",
                    DIST_EPROTO);
        uint8_t *nb = fr->buf ? term_realloc_raw(fr->buf, fr->cap, nc) : term_alloc_raw(nc);
        if (!nb) return (*why = "out of memory", DIST_ENOMEM);
        rx->frag_bytes += nc - fr->cap;
        fr->buf = nb;
        fr->cap = nc;
    }
    memcpy(fr->buf + fr->len, d, n);
    fr->len += n;
    return 0;
}

/* fr's buffer, trimmed to its length in place, as a binary that the message's large binaries
** will point into; fr holds it no more. TERM_NONE when out of memory (the buffer is freed). */
static term_t frag_take_buffer(dist_frag *fr)
{
    uint8_t *b = fr->buf;
    size_t cap = fr->cap;
    fr->buf = NULL;
    fr->cap = 0;
    if (fr->len == 0) { /* nothing was appended: b may be NULL */
        term_free_raw(b, cap);
        return term_binary(NULL, 0);
    }
    if (fr->len < cap) {
        uint8_t *t = term_realloc_raw(b, cap, fr->len);
        if (!t) {
            term_free_raw(b, cap);
            return TERM_NONE;
        }
        b = t;
    }
    return term_binary_adopt(b, fr->len); /* frees b if it fails */
}

static void frag_drop(dist_rx *rx, dist_frag *fr)
{
    rx->frag_bytes -= fr->cap;
    frag_free(fr);
}

int dist__rx_message(dist_rx *rx, const uint8_t *f, size_t len, dist_rxmsg *m, const char **why)
{
    size_t pos;
    int rc;
    memset(m, 0, sizeof *m);
    if (len > rx->max_message) return (*why = "message too large", DIST_EPROTO);
    if (len >= 1 && f[0] == 112) {
        m->data = f + 1;
        m->len = len - 1;
        m->versioned = true;
        return 1;
    }
    if (len < 2 || f[0] != 131) return (*why = "frame without distribution header", DIST_EPROTO);
    if (!rx->hdr_cache) return (*why = "distribution header not negotiated", DIST_EPROTO);
    switch (f[1]) {
    case 68:
        pos = 2;
        if ((rc = parse_cache_refs(rx, f, len, &pos, why))) return rc;
        m->data = f + pos;
        m->len = len - pos;
        m->refs = &rx->refs;
        m->nrefs = rx->nrefs;
        return 1;
    case 69: {
        if (len < 18) return (*why = "truncated fragment header", DIST_EPROTO);
        uint64_t seq = girder__get64(f + 2), id = girder__get64(f + 10);
        if (id == 0) return (*why = "fragment id 0", DIST_EPROTO);
        pos = 18;
        if ((rc = parse_cache_refs(rx, f, len, &pos, why))) return rc;
        if (id == 1) {
            m->data = f + pos;
            m->len = len - pos;
            m->refs = &rx->refs;
            m->nrefs = rx->nrefs;
            return 1;
        }
        if (frag_find(rx, seq, NULL)) return (*why = "fragment sequence id reused", DIST_EPROTO);
        if (rx->nfrags >= MAX_FRAG_SEQS)
            return (*why = "too many fragmented messages", DIST_EPROTO);
        dist_frag *fr = calloc(1, sizeof *fr);
        if (fr) fr->refs = dist__refs_copy(&rx->refs, rx->nrefs);
        if (!fr || !fr->refs) {
            free(fr);
            return (*why = "out of memory", DIST_ENOMEM);
        }
        fr->nrefs = rx->nrefs;
        fr->seq = seq;
        fr->next_id = id - 1;
        if ((rc = frag_append(rx, fr, f + pos, len - pos, why))) {
            frag_drop(rx, fr);
            return rc;
        }
        fr->next = rx->frags;
        rx->frags = fr;
        rx->nfrags++;
        return 0;
    }
    case 70: {
        if (len < 18) return (*why = "truncated fragment header", DIST_EPROTO);
        uint64_t seq = girder__get64(f + 2), id = girder__get64(f + 10);
        dist_frag **link = NULL;
        dist_frag *fr = frag_find(rx, seq, &link);
        if (!fr) return (*why = "fragment of an unknown sequence", DIST_EPROTO);
        if (id != fr->next_id) return (*why = "fragment out of order", DIST_EPROTO);
        if ((rc = frag_append(rx, fr, f + 18, len - 18, why))) return rc;
        fr->next_id--;
        if (id > 1) return 0;
        *link = fr->next;
        rx->nfrags--;
        rx->frag_bytes -= fr->cap;
        if ((m->own = frag_take_buffer(fr)) == TERM_NONE) {
            frag_free(fr);
            return (*why = "out of memory", DIST_ENOMEM);
        }
        m->data = term_binary_data(m->own);
        m->len = fr->len;
        m->refs = m->own_refs = fr->refs;
        m->nrefs = fr->nrefs;
        free(fr);
        return 1;
    }
    default:
        return (*why = "unknown distribution header", DIST_EPROTO);
    }
}

int dist__rx_frame(dist_rx *rx, const uint8_t *f, size_t len, dist_ctl *ctl, const char **why)
{
    dist_rxmsg m;
    memset(ctl, 0, sizeof *ctl);
    int rc = dist__rx_message(rx, f, len, &m, why);
    if (rc <= 0) return rc;
    rc = dist__rx_decode(rx, &m, true, ctl, why);
    dist__rxmsg_release(&m);
    return rc ? rc : 1;
}

/* ================================================================ control messages */

void dist__ctl_free(dist_ctl *c)
{
    term_free(c->ctl_term);
    term_free(c->payload_term);
    memset(c, 0, sizeof *c);
}

static bool is_proc(term_t t)
{
    return term_is_pid(t) || term_is_atom(t);
}

/* Layout of one operation: arity without token, whether the tuple carries the reason last,
** whether a payload term must follow. */
int dist__ctl_parse(term_t t, term_t payload, dist_ctl *c, const char **why)
{
    memset(c, 0, sizeof *c);
    c->ctl_term = t;
    c->payload_term = payload;
    c->payload = payload;
    if (!term_is_tuple(t) || term_tuple_arity(t) < 1 || !term_is_small(term_tuple_elem(t, 0)))
        goto bad;
    size_t n = term_tuple_arity(t);
    int64_t op = term_small_value(term_tuple_elem(t, 0));
#define E(i) term_tuple_elem(t, (i))
    bool need_payload = false, tt = false;
    switch (op) {
    case DOP_LINK:
    case DOP_UNLINK:
    case DOP_GROUP_LEADER:
        if (n != 3 || !term_is_pid(E(1)) || !term_is_pid(E(2))) goto bad;
        c->op = (int)op;
        c->from = E(1);
        c->to = E(2);
        break;
    case DOP_NODE_LINK:
        if (n != 1) goto bad;
        c->op = DOP_NODE_LINK;
        break;
    case DOP_SEND_TT:
        tt = true;
        /* fallthrough */
    case DOP_SEND:
        if (n != 3u + tt || !term_is_pid(E(2))) goto bad;
        c->op = DOP_SEND;
        c->to = E(2);
        need_payload = true;
        break;
    case DOP_SEND_SENDER_TT:
        tt = true;
        /* fallthrough */
    case DOP_SEND_SENDER:
        if (n != 3u + tt || !term_is_pid(E(1)) || !term_is_pid(E(2))) goto bad;
        c->op = DOP_SEND;
        c->from = E(1);
        c->to = E(2);
        need_payload = true;
        break;
    case DOP_REG_SEND_TT:
        tt = true;
        /* fallthrough */
    case DOP_REG_SEND:
        if (n != 4u + tt || !term_is_pid(E(1)) || !term_is_atom(E(3))) goto bad;
        c->op = DOP_REG_SEND;
        c->from = E(1);
        c->to = E(3);
        need_payload = true;
        break;
    case DOP_EXIT_TT:
    case DOP_EXIT2_TT:
        tt = true;
        /* fallthrough */
    case DOP_EXIT:
    case DOP_EXIT2:
        if (n != 4u + tt || !term_is_pid(E(1)) || !term_is_pid(E(2))) goto bad;
        c->op = op == DOP_EXIT || op == DOP_EXIT_TT ? DOP_EXIT : DOP_EXIT2;
        c->from = E(1);
        c->to = E(2);
        c->payload = E(n - 1);
        if (payload != TERM_NONE) goto bad;
        if (tt) c->token = E(3);
        return 0;
    case DOP_PAYLOAD_EXIT_TT:
    case DOP_PAYLOAD_EXIT2_TT:
        tt = true;
        /* fallthrough */
    case DOP_PAYLOAD_EXIT:
    case DOP_PAYLOAD_EXIT2:
        if (n != 3u + tt || !term_is_pid(E(1)) || !term_is_pid(E(2))) goto bad;
        c->op = op == DOP_PAYLOAD_EXIT || op == DOP_PAYLOAD_EXIT_TT ? DOP_EXIT : DOP_EXIT2;
        c->from = E(1);
        c->to = E(2);
        need_payload = true;
        break;
    case DOP_MONITOR_P:
    case DOP_DEMONITOR_P:
        if (n != 4 || !term_is_pid(E(1)) || !is_proc(E(2)) || !term_is_ref(E(3))) goto bad;
        c->op = (int)op;
        c->from = E(1);
        c->to = E(2);
        c->ref = E(3);
        break;
    case DOP_MONITOR_P_EXIT:
        if (n != 5 || !is_proc(E(1)) || !term_is_pid(E(2)) || !term_is_ref(E(3))) goto bad;
        if (payload != TERM_NONE) goto bad;
        c->op = DOP_MONITOR_P_EXIT;
        c->from = E(1);
        c->to = E(2);
        c->ref = E(3);
        c->payload = E(4);
        return 0;
    case DOP_PAYLOAD_MONITOR_P_EXIT:
        if (n != 4 || !is_proc(E(1)) || !term_is_pid(E(2)) || !term_is_ref(E(3))) goto bad;
        c->op = DOP_MONITOR_P_EXIT;
        c->from = E(1);
        c->to = E(2);
        c->ref = E(3);
        need_payload = true;
        break;
    case DOP_SPAWN_REQUEST_TT:
        tt = true;
        /* fallthrough */
    case DOP_SPAWN_REQUEST: {
        if (n != 6u + tt || !term_is_ref(E(1)) || !term_is_pid(E(2))) goto bad;
        term_t mfa = E(4);
        if (!term_is_tuple(mfa) || term_tuple_arity(mfa) != 3 ||
            !term_is_atom(term_tuple_elem(mfa, 0)) || !term_is_atom(term_tuple_elem(mfa, 1)) ||
            !term_is_small(term_tuple_elem(mfa, 2)) || term_list_length(E(5)) < 0)
            goto bad;
        c->op = DOP_SPAWN_REQUEST;
        c->ref = E(1);
        c->from = E(2);
        c->group_leader = E(3);
        c->mfa = mfa;
        c->opts = E(5);
        need_payload = true;
        if (payload != TERM_NONE && term_list_length(payload) < 0) goto bad;
        break;
    }
    case DOP_SPAWN_REPLY_TT:
        tt = true;
        /* fallthrough */
    case DOP_SPAWN_REPLY: {
        uint64_t fl;
        if (n != 5u + tt || !term_is_ref(E(1)) || !term_is_pid(E(2)) ||
            term_get_uint64(E(3), &fl) != 0 || !is_proc(E(4)))
            goto bad;
        c->op = DOP_SPAWN_REPLY;
        c->ref = E(1);
        c->to = E(2);
        c->id = fl;
        c->payload = E(4);
        if (payload != TERM_NONE) goto bad;
        if (tt) c->token = E(5);
        return 0;
    }
    case DOP_ALIAS_SEND_TT:
        tt = true;
        /* fallthrough */
    case DOP_ALIAS_SEND:
        if (n != 3u + tt || !term_is_pid(E(1)) || !term_is_ref(E(2))) goto bad;
        c->op = DOP_ALIAS_SEND;
        c->from = E(1);
        c->to = E(2);
        need_payload = true;
        break;
    case DOP_UNLINK_ID:
    case DOP_UNLINK_ID_ACK:
        if (n != 4 || term_get_uint64(E(1), &c->id) != 0 || c->id == 0 || !term_is_pid(E(2)) ||
            !term_is_pid(E(3)))
            goto bad;
        c->op = (int)op;
        c->from = E(2);
        c->to = E(3);
        break;
    case DOP_ALTACT_SIG_SEND: {
        /* {37, Flags, SenderPid, To} or with a Token; followed by the message or exit reason.
        ** To is a pid, a name (NAME) or an alias (ALIAS); unknown flag bits are refused. */
        int64_t fl;
        if ((n != 4 && n != 5) || !term_is_small(E(1)) || !term_is_pid(E(2))) goto bad;
        fl = term_small_value(E(1));
        if (fl < 0 || fl >= (1 << 5)) goto bad;
        tt = (fl & ALTACT_TOKEN) != 0;
        if (n != 4u + tt) goto bad;
        if ((fl & ALTACT_ALIAS) && (fl & ALTACT_NAME)) goto bad;
        if ((fl & ALTACT_ALIAS)  ? !term_is_ref(E(3))
            : (fl & ALTACT_NAME) ? !term_is_atom(E(3)) || (fl & ALTACT_EXIT)
                                 : !term_is_pid(E(3)))
            goto bad;
        c->op = DOP_ALTACT_SIG_SEND;
        c->id = (uint64_t)fl;
        c->from = E(2);
        c->to = E(3);
        need_payload = true;
        break;
    }
    default:
        *why = "unknown control message";
        goto fail;
    }
#undef E
    if (tt) c->token = term_tuple_elem(t, n - 1);
    if (need_payload != (payload != TERM_NONE)) goto bad;
    return 0;
bad:
    *why = "malformed control message";
fail:
    dist__ctl_free(c);
    return DIST_EPROTO;
}

/* ================================================================ send */

static int enc(term_t t, bool versioned, etf_buf *out)
{
    return etf_encode(t, ETF_ENC_UTF8_ATOMS | (versioned ? 0 : ETF_ENC_NO_VERSION), out);
}

/* The control message: a tuple term (n = 0), or the n elements of one at elems. */
static int enc_ctl(term_t ctl, const term_t *elems, size_t n, bool versioned, etf_buf *out)
{
    if (!n) return enc(ctl, versioned, out);
    int rc = etf_buf_reserve(out, 3);
    if (rc) return rc;
    if (versioned) out->data[out->len++] = 131;
    out->data[out->len++] = 104; /* SMALL_TUPLE_EXT */
    out->data[out->len++] = (uint8_t)n;
    for (size_t i = 0; i < n; i++)
        if ((rc = enc(elems[i], false, out))) return rc;
    return 0;
}

static int frame_encode(term_t ctl, const term_t *elems, size_t n, term_t payload, uint64_t flags,
                        size_t frag_size, uint64_t seq, etf_buf *out);

int dist__frame_encode(term_t ctl, term_t payload, uint64_t flags, size_t frag_size, uint64_t seq,
                       etf_buf *out)
{
    return frame_encode(ctl, NULL, 0, payload, flags, frag_size, seq, out);
}

int dist__frame_encode_v(const term_t *elems, size_t n, term_t payload, uint64_t flags,
                         size_t frag_size, uint64_t seq, etf_buf *out)
{
    if (n == 0 || n > 8) return DIST_EINVAL;
    return frame_encode(TERM_NONE, elems, n, payload, flags, frag_size, seq, out);
}

/* The length and header of fragment k of nfrag (seq), written just before its chunk bytes at
** c (23 bytes before for the first fragment, 22 for the others). */
static void put_frag_header(uint8_t *c, uint64_t k, uint64_t nfrag, uint64_t seq, size_t chunk)
{
    size_t hl = k == 0 ? 19 : 18;
    uint8_t *p = c - 4 - hl;
    girder__put32(p, (uint32_t)(hl + chunk));
    p[4] = 131;
    p[5] = k == 0 ? 69 : 70;
    girder__put64(p + 6, seq);
    girder__put64(p + 14, nfrag - k);
    if (k == 0) p[22] = 0; /* no atom cache references */
}

int dist__frame_fragment(const term_t *elems, size_t n, size_t frag_size, uint64_t seq,
                         etf_buf *out, size_t gap, size_t *at)
{
    if (n == 0 || n > 8 || !frag_size || gap > out->len || out->len - gap <= frag_size ||
        frag_size > UINT32_MAX - 64)
        return DIST_EINVAL;
    size_t plen = out->len - gap;
    uint64_t nfrag = (plen + frag_size - 1) / frag_size;
    /* the control message, encoded past the payload for now */
    int rc = enc_ctl(TERM_NONE, elems, n, false, out);
    size_t cl = out->len - gap - plen;
    out->len = gap + plen;
    if (rc) return rc;
    if (cl + 23 > gap || cl + frag_size > UINT32_MAX - 19) return DIST_EINVAL;
    size_t total = plen + (size_t)(nfrag - 1) * 22; /* from the first fragment's payload on */
    size_t start = gap - cl - 23;
    memcpy(out->data + start + 23, out->data + gap + plen, cl); /* into the gap */
    if ((rc = etf_buf_reserve(out, total - plen))) return rc;
    for (uint64_t k = nfrag; k-- > 1;) {
        size_t off = (size_t)k * frag_size, chunk = plen - off < frag_size ? plen - off : frag_size;
        memmove(out->data + gap + off + 22 * k, out->data + gap + off, chunk);
        put_frag_header(out->data + gap + off + 22 * k, k, nfrag, seq, chunk);
    }
    put_frag_header(out->data + start + 23, 0, nfrag, seq, cl + frag_size);
    out->len = gap + total;
    *at = start;
    return 0;
}

static int frame_encode(term_t ctl, const term_t *elems, size_t n, term_t payload, uint64_t flags,
                        size_t frag_size, uint64_t seq, etf_buf *out)
{
    size_t start = out->len;
    int rc;
    bool hdr = (flags & DFLAG_DIST_HDR_ATOM_CACHE) != 0;
    if ((rc = etf_buf_reserve(out, 64))) return rc;
    out->len += 4;
    if (hdr) {
        out->data[out->len++] = 131;
        out->data[out->len++] = 68;
        out->data[out->len++] = 0;
    } else {
        out->data[out->len++] = 112;
    }
    size_t body = out->len;
    if ((rc = enc_ctl(ctl, elems, n, !hdr, out))) goto fail;
    size_t ctl_end = out->len;
    if (payload != TERM_NONE && (rc = enc(payload, !hdr, out))) goto fail;
    size_t plen = out->len - ctl_end;
    if (!hdr || !(flags & DFLAG_FRAGMENTS) || !frag_size || plen <= frag_size) {
        if (out->len - start - 4 > UINT32_MAX) {
            rc = DIST_EINVAL;
            goto fail;
        }
        girder__put32(out->data + start, (uint32_t)(out->len - start - 4));
        return 0;
    }
    /* Fragments: the first carries the control message and frag_size payload bytes, the rest
    ** frag_size each. They are laid out in place: chunk k moves right by the headers before it
    ** (23 bytes for the first fragment's length and header, 22 for each later one, less the 7
    ** of the unfragmented frame), last chunk first so that none lands on bytes not yet moved.
    ** A side copy of the whole encoding cost a malloc and a copy per large message. */
    size_t dlen = out->len - body;
    size_t first = (ctl_end - body) + frag_size;
    uint64_t nfrag = 1 + (dlen - first + frag_size - 1) / frag_size;
    size_t total = dlen + 23 + (size_t)(nfrag - 1) * 22;
    if ((rc = etf_buf_reserve(out, start + total - out->len))) goto fail;
    for (uint64_t k = nfrag; k-- > 0;) {
        size_t off = k == 0 ? 0 : first + (size_t)(k - 1) * frag_size;
        size_t chunk = k == 0 ? first : frag_size;
        if (chunk > dlen - off) chunk = dlen - off;
        memmove(out->data + start + 23 + off + 22 * k, out->data + body + off, chunk);
    }
    for (uint64_t k = 0; k < nfrag; k++) {
        size_t off = k == 0 ? 0 : first + (size_t)(k - 1) * frag_size;
        size_t chunk = k == 0 ? first : frag_size;
        if (chunk > dlen - off) chunk = dlen - off;
        put_frag_header(out->data + start + 23 + off + 22 * k, k, nfrag, seq, chunk);
    }
    out->len = start + total;
    return 0;
fail:
    out->len = start;
    return rc;
}
