/* The sending side of the distribution header's atom cache: rewrites an encoded frame's atoms as
 * cache references. */
#include "dist_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Frames larger than this keep their atoms inline: the rewrite copies the frame twice. */
#define ACACHE_MAX_FRAME ((size_t)64 << 10)
#define MAX_REFS         255

void dist__acache_free(dist_acache *a)
{
    for (size_t i = 0; i < DIST_ACACHE_SIZE; i++) free(a->text[i]);
    memset(a, 0, sizeof *a);
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* The slot of an atom's text: any function of the text will do (the peer's cache is indexed by
** the slots we send), so it takes 8 bytes a step (a node name is 15-30 bytes) rather than one.
** `room`: at least 8 bytes are readable from s (a short name is then read as one word). */
static uint32_t slot_of(const uint8_t *s, size_t n, bool room)
{
    uint64_t h = (uint64_t)n * 0x9E3779B97F4A7C15ull, v = 0;
    if (n >= 8) {
        const uint8_t *end = s + n - 8; /* the last word overlaps the one before it */
        for (; s < end; s += 8) h = (h ^ load64(s)) * 0xFF51AFD7ED558CCDull;
        v = load64(end);
    } else if (room) {
        v = n ? load64(s) & (~0ull >> (64 - 8 * n)) : 0;
    } else {
        for (size_t i = 0; i < n; i++) v |= (uint64_t)s[i] << (8 * i);
    }
    h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
    return (uint32_t)(h >> 53) % DIST_ACACHE_SIZE; /* the top bits mix best */
}

/* One message's references: ref i is cache slot slot[i] with text txt[i] (into the frame). */
typedef struct mrefs {
    size_t n;
    uint16_t slot[MAX_REFS];
    const uint8_t *txt[MAX_REFS];
    uint16_t len[MAX_REFS];
    int16_t by_slot[DIST_ACACHE_SIZE]; /* slot -> ref index, -1 */
} mrefs;

/* The rewrite reads the frame at d[pos..len) and writes the body at o[wr..): room for the
** whole input body is reserved before, and the output never outgrows the input (a reference
** takes 2 bytes, the atom it replaces at least 2), so no write checks for room. Bytes kept
** verbatim are not copied one term at a time: d[run..pos) is the run not yet written, moved in
** one piece when an atom is replaced or the frame ends. */
typedef struct rw {
    const uint8_t *d;
    size_t len, pos, run;
    uint8_t *o;
    size_t wr;
    mrefs *m;
} rw;

/* Writes the pending run (d[run..upto)). */
static inline void flush(rw *w, size_t upto)
{
    memcpy(w->o + w->wr, w->d + w->run, upto - w->run);
    w->wr += upto - w->run;
    w->run = upto;
}

/* Keeps n bytes of input verbatim. */
static inline bool copy(rw *w, size_t n)
{
    if (w->len - w->pos < n) return false;
    w->pos += n;
    return true;
}

/*
** An atom at the current position: a UTF-8 atom (118, 119) becomes ATOM_CACHE_REF when the
** message still has a reference free and no other atom of this message took its slot; other
** atom forms are copied. False when the bytes are not an atom or are truncated.
*/
static bool atom(rw *w)
{
    if (w->pos >= w->len) return false;
    uint8_t tag = w->d[w->pos];
    int lb = tag == 118 || tag == 100 ? 2 : tag == 119 || tag == 115 ? 1 : 0;
    if (!lb || w->len - w->pos < 1u + lb) return false;
    size_t n = lb == 2 ? girder__get16(w->d + w->pos + 1) : w->d[w->pos + 1];
    if (w->len - w->pos - 1 - lb < n) return false;
    if (tag == 100 || tag == 115) return copy(w, 1 + lb + n); /* Latin-1: left inline */
    const uint8_t *txt = w->d + w->pos + 1 + lb;
    uint32_t s = slot_of(txt, n, w->len - (size_t)(txt - w->d) >= 8);
    mrefs *m = w->m;
    int r = m->by_slot[s];
    if (r >= 0 && (m->len[r] != n || memcmp(m->txt[r], txt, n) != 0))
        r = -1; /* collision */
    else if (r < 0 && m->n < MAX_REFS) {
        r = (int)m->n++;
        m->slot[r] = (uint16_t)s;
        m->txt[r] = txt;
        m->len[r] = (uint16_t)n;
        m->by_slot[s] = (int16_t)r;
    }
    if (r < 0) return copy(w, 1 + lb + n);
    flush(w, w->pos);
    w->o[w->wr] = 82;
    w->o[w->wr + 1] = (uint8_t)r;
    w->wr += 2;
    w->pos += 1 + lb + n;
    w->run = w->pos;
    return true;
}

/*
** Rewrites one term (iteratively: `need` counts the terms still to come). Only the forms
** Girder's encoder produces are walked; anything else (compressed terms, old funs, cache
** references) makes the caller keep the frame as it was.
*/
static bool term(rw *w)
{
    size_t need = 1;
    while (need) {
        need--;
        if (w->pos >= w->len) return false;
        uint8_t tag = w->d[w->pos];
        const uint8_t *p = w->d + w->pos + 1;
        size_t left = w->len - w->pos - 1;
        switch (tag) {
        case 118:
        case 119:
        case 100:
        case 115:
            if (!atom(w)) return false;
            break;
        case 97:
            if (!copy(w, 2)) return false;
            break;
        case 98:
            if (!copy(w, 5)) return false;
            break;
        case 70:
            if (!copy(w, 9)) return false;
            break;
        case 99:
            if (!copy(w, 32)) return false;
            break;
        case 106:
            if (!copy(w, 1)) return false;
            break;
        case 104:
            if (left < 1 || !copy(w, 2)) return false;
            need += p[0];
            break;
        case 105:
        case 108:
        case 116: {
            if (left < 4) return false;
            size_t n = girder__get32(p);
            if (n > w->len) return false; /* each element takes at least one byte */
            if (!copy(w, 5)) return false;
            need += tag == 105 ? n : tag == 108 ? n + 1 : 2 * n;
            break;
        }
        case 107:
            if (left < 2 || !copy(w, 3 + girder__get16(p))) return false;
            break;
        case 109:
            if (left < 4 || !copy(w, 5 + (size_t)girder__get32(p))) return false;
            break;
        case 77:
            if (left < 5 || !copy(w, 6 + (size_t)girder__get32(p))) return false;
            break;
        case 110:
            if (left < 1 || !copy(w, 3 + (size_t)p[0])) return false;
            break;
        case 111:
            if (left < 4 || !copy(w, 6 + (size_t)girder__get32(p))) return false;
            break;
        case 112: /* NEW_FUN_EXT: Size counts itself; atoms inside stay inline */
            if (left < 4 || girder__get32(p) < 4 || !copy(w, 1 + (size_t)girder__get32(p)))
                return false;
            break;
        case 113: /* EXPORT_EXT: Module, Function, Arity */
            if (!copy(w, 1)) return false;
            need += 3;
            break;
        case 88:
        case 103:
        case 89:
        case 120:
        case 102:
        case 101: { /* pid, port, old reference: Node then fixed bytes */
            size_t tail = tag == 88 ? 12 : tag == 103 ? 9 : tag == 89 ? 8 : tag == 120 ? 12 : 5;
            if (!copy(w, 1) || !atom(w) || !copy(w, tail)) return false;
            break;
        }
        case 90:
        case 114: { /* NEWER/NEW_REFERENCE: Len, Node, Creation, Len words */
            if (left < 2) return false;
            size_t words = girder__get16(p);
            if (!copy(w, 3) || !atom(w) || !copy(w, (tag == 90 ? 4 : 1) + 4 * words)) return false;
            break;
        }
        default:
            return false;
        }
    }
    return true;
}

/* Per-thread scratch (the references of one message and the rewritten body), freed with the
** thread through a key destructor. */
typedef struct scratch {
    mrefs m;
    etf_buf body;
} scratch;

static pthread_key_t sc_key;
static pthread_once_t sc_once = PTHREAD_ONCE_INIT;

static _Thread_local scratch *sc_mine; /* the thread's scratch, once made */

static void sc_destroy(void *p)
{
    scratch *sc = p;
    sc_mine = NULL;
    etf_buf_free(&sc->body);
    free(sc);
}

static void sc_key_init(void)
{
    pthread_key_create(&sc_key, sc_destroy);
}

static scratch *tls_scratch(void)
{
    if (sc_mine) return sc_mine;
    pthread_once(&sc_once, sc_key_init);
    scratch *sc = pthread_getspecific(sc_key);
    if (!sc && (sc = calloc(1, sizeof *sc))) {
        memset(sc->m.by_slot, 0xff, sizeof sc->m.by_slot);
        pthread_setspecific(sc_key, sc);
    }
    return sc_mine = sc;
}

/*
** Rewrites the single unfragmented frame in *b (4-byte length, 131, 68, 0, control, payload),
** whose control message and payload start at byte 7, so that its UTF-8 atoms become
** references into the connection's cache `a`, adding the new entries' texts to the header.
** Must run in wire order under the connection's lock: the cache mirrors what the peer will
** have seen. Any other frame, an oversized one, or bytes it does not
** understand leave *b untouched (a frame without references is always valid). 0 or ENOMEM.
** The body is rewritten into the thread's scratch and the frame then written back into b's own
** storage: no allocation per frame once the buffers have grown.
*/
int dist__acache_apply(dist_acache *a, etf_buf *b)
{
    if (b->len < 8 || b->len > ACACHE_MAX_FRAME || b->data[4] != 131 || b->data[5] != 68 ||
        b->data[6] != 0 || girder__get32(b->data) != b->len - 4)
        return 0;
    scratch *sc = tls_scratch();
    if (!sc) return 0;
    mrefs *m = &sc->m;
    etf_buf *tmp = &sc->body;
    m->n = 0;
    tmp->len = 0;
    if (etf_buf_reserve(tmp, b->len - 7)) return 0; /* the frame goes out as it was */
    rw w = {b->data, b->len, 7, 7, tmp->data, 0, m};
    bool ok = true;
    while (ok && w.pos < w.len) ok = term(&w);
    for (size_t i = 0; i < m->n; i++) m->by_slot[m->slot[i]] = -1;
    if (!ok || m->n == 0) return 0;
    flush(&w, w.len);
    tmp->len = w.wr;
    /* the header: count, flags (a nibble per reference and one for LongAtoms), references */
    bool long_atoms = false;
    size_t hl = 1 + m->n / 2 + 1;
    uint8_t isnew[MAX_REFS];
    for (size_t i = 0; i < m->n; i++) {
        size_t s = m->slot[i];
        isnew[i] = !(a->text[s] && a->len[s] == m->len[i] &&
                     memcmp(a->text[s], m->txt[i], m->len[i]) == 0);
        if (isnew[i] && m->len[i] > 255) long_atoms = true;
    }
    for (size_t i = 0; i < m->n; i++) hl += 1 + (isnew[i] ? (long_atoms ? 2 : 1) + m->len[i] : 0);
    /* the new entries' texts, copied out of the frame before b is overwritten; the cache learns
    ** them only once the frame is sure to go out (all or none) */
    uint8_t *texts[MAX_REFS];
    for (size_t i = 0; i < m->n; i++) {
        texts[i] = NULL;
        if (isnew[i] && !(texts[i] = malloc(m->len[i] ? m->len[i] : 1))) {
            while (i-- > 0) free(texts[i]);
            return 0; /* the frame goes out as it was */
        }
        if (isnew[i]) memcpy(texts[i], m->txt[i], m->len[i]);
    }
    size_t total = 2 + hl + tmp->len;
    b->len = 0;
    if (etf_buf_reserve(b, 4 + total)) {
        for (size_t i = 0; i < m->n; i++) free(texts[i]);
        b->len = 4 + girder__get32(b->data); /* untouched: realloc failed */
        return DIST_ENOMEM;
    }
    uint8_t *o = b->data;
    girder__put32(o, (uint32_t)total);
    o[4] = 131;
    o[5] = 68;
    o[6] = (uint8_t)m->n;
    uint8_t *flags = o + 7;
    size_t fb = m->n / 2 + 1;
    memset(flags, 0, fb);
    size_t q = 7 + fb;
    for (size_t i = 0; i < m->n; i++) {
        size_t s = m->slot[i];
        unsigned nib = (unsigned)(s >> 8) | (isnew[i] ? 8u : 0u);
        flags[i / 2] |= (uint8_t)(nib << ((i & 1) ? 4 : 0));
        o[q++] = (uint8_t)(s & 0xff);
        if (!isnew[i]) continue;
        if (long_atoms) o[q++] = (uint8_t)(m->len[i] >> 8);
        o[q++] = (uint8_t)m->len[i];
        memcpy(o + q, texts[i], m->len[i]);
        q += m->len[i];
    }
    if (long_atoms) flags[m->n / 2] |= (uint8_t)(1u << ((m->n & 1) ? 4 : 0));
    for (size_t i = 0; i < m->n; i++) {
        if (!isnew[i]) continue;
        size_t s = m->slot[i];
        free(a->text[s]);
        a->text[s] = texts[i];
        a->len[s] = m->len[i];
    }
    memcpy(o + q, tmp->data, tmp->len);
    b->len = q + tmp->len;
    if (tmp->cap > ((size_t)1 << 20)) etf_buf_free(tmp);
    return 0;
}

/* ================================================================ control messages built here */

#define CTL_REFS 8 /* a control message has at most 5 elements, pids' nodes among them */

/* The atoms of one control message sent as references: ref i is slot[i], text txt[i]. */
typedef struct ctlrefs {
    size_t n;
    uint16_t slot[CTL_REFS];
    const uint8_t *txt[CTL_REFS];
    uint16_t len[CTL_REFS];
} ctlrefs;

/* Appends atom a: ATOM_CACHE_REF to its reference (made if needed), or inline when it cannot
** have one (a long name, the references used up, a slot another atom of the message took). */
static int put_atom(ctlrefs *r, term_t a, etf_buf *o)
{
    size_t n;
    const uint8_t *t = (const uint8_t *)term_atom_name(a, &n);
    if (t && n <= 255) {
        uint32_t s = slot_of(t, n, false);
        size_t i = 0;
        while (i < r->n && r->slot[i] != s) i++;
        if (i == r->n && r->n < CTL_REFS) {
            r->slot[i] = (uint16_t)s;
            r->txt[i] = t;
            r->len[i] = (uint16_t)n;
            r->n++;
        }
        if (i < r->n && r->len[i] == n && (r->txt[i] == t || memcmp(r->txt[i], t, n) == 0)) {
            int rc = etf_buf_reserve(o, 2);
            if (rc) return rc;
            o->data[o->len++] = 82;
            o->data[o->len++] = (uint8_t)i;
            return 0;
        }
    }
    return etf_encode(a, ETF_ENC_UTF8_ATOMS | ETF_ENC_NO_VERSION, o);
}

/* Appends one element of a control message: small integers, atoms and pids written here (the
** same bytes as etf_encode's, atoms as references), anything else by etf_encode. */
static int put_elem(ctlrefs *r, term_t t, etf_buf *o)
{
    int rc;
    if (term_is_atom(t)) return put_atom(r, t, o);
    if ((rc = etf_buf_reserve(o, 5))) return rc;
    uint8_t *p = o->data + o->len;
    if (term_is_small(t)) {
        int64_t v = term_small_value(t);
        if (v >= 0 && v <= 255) {
            p[0] = 97; /* SMALL_INTEGER_EXT */
            p[1] = (uint8_t)v;
            o->len += 2;
            return 0;
        }
        if (v >= INT32_MIN && v <= INT32_MAX) {
            p[0] = 98; /* INTEGER_EXT */
            girder__put32(p + 1, (uint32_t)(int32_t)v);
            o->len += 5;
            return 0;
        }
    }
    term_pid_info pi;
    if (term_is_pid(t) && term_pid_get(t, &pi) == 0) {
        o->data[o->len++] = 88; /* NEW_PID_EXT */
        if ((rc = put_atom(r, pi.node, o)) || (rc = etf_buf_reserve(o, 12))) return rc;
        girder__put32(o->data + o->len, pi.id);
        girder__put32(o->data + o->len + 4, pi.serial);
        girder__put32(o->data + o->len + 8, pi.creation);
        o->len += 12;
        return 0;
    }
    return etf_encode(t, ETF_ENC_UTF8_ATOMS | ETF_ENC_NO_VERSION, o);
}

long dist__acache_frame(dist_acache *a, const term_t *el, size_t n, etf_buf *b, size_t gap)
{
    scratch *sc = tls_scratch();
    if (!sc || n == 0 || n > 255 || gap > b->len) return -1;
    etf_buf *cb = &sc->body;
    cb->len = 0;
    ctlrefs r = {0};
    if (etf_buf_reserve(cb, 2)) return -1;
    cb->data[cb->len++] = 104; /* SMALL_TUPLE_EXT */
    cb->data[cb->len++] = (uint8_t)n;
    for (size_t i = 0; i < n; i++)
        if (put_elem(&r, el[i], cb)) return -1;
    /* the header: count, flags (a nibble per reference, then one saying no long atoms), refs */
    bool isnew[CTL_REFS];
    size_t fb = r.n / 2 + 1, hl = r.n ? 1 + fb : 1; /* no flags without references */
    for (size_t i = 0; i < r.n; i++) {
        size_t s = r.slot[i];
        isnew[i] =
            !(a->text[s] && a->len[s] == r.len[i] && memcmp(a->text[s], r.txt[i], r.len[i]) == 0);
        hl += 1 + (isnew[i] ? 1 + r.len[i] : 0);
    }
    size_t prefix = 4 + 2 + hl + cb->len, total = prefix - 4 + (b->len - gap);
    if (prefix > gap || total > UINT32_MAX) return -1;
    /* the cache learns the new entries only now that the frame is sure to be made */
    uint8_t *texts[CTL_REFS];
    for (size_t i = 0; i < r.n; i++) {
        texts[i] = NULL;
        if (isnew[i] && !(texts[i] = malloc(r.len[i] ? r.len[i] : 1))) {
            while (i-- > 0) free(texts[i]);
            return -1;
        }
        if (isnew[i]) memcpy(texts[i], r.txt[i], r.len[i]);
    }
    size_t start = gap - prefix;
    uint8_t *o = b->data + start;
    girder__put32(o, (uint32_t)total);
    o[4] = 131;
    o[5] = 68;
    o[6] = (uint8_t)r.n;
    size_t q = 7;
    if (r.n) {
        uint8_t *flags = o + 7;
        memset(flags, 0, fb);
        q += fb;
        for (size_t i = 0; i < r.n; i++) {
            size_t s = r.slot[i];
            unsigned nib = (unsigned)(s >> 8) | (isnew[i] ? 8u : 0u);
            flags[i / 2] |= (uint8_t)(nib << ((i & 1) ? 4 : 0));
            o[q++] = (uint8_t)(s & 0xff);
            if (!isnew[i]) continue;
            o[q++] = (uint8_t)r.len[i];
            memcpy(o + q, r.txt[i], r.len[i]);
            q += r.len[i];
            free(a->text[s]);
            a->text[s] = texts[i];
            a->len[s] = r.len[i];
        }
    }
    memcpy(o + q, cb->data, cb->len);
    if (cb->cap > ((size_t)1 << 20)) etf_buf_free(cb);
    return (long)start;
}
