/* Erlang term text: the iterative parser, for terms and (through text_int.h) for patterns. */
#include "text_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

_Static_assert(sizeof(uintptr_t) == sizeof(term_t), "parser values hold terms");

/* Constructors are never handed NULL arrays, even for zero elements (memcpy contract). */
static const term_t no_terms[1] = {TERM_NONE};

/* ================================================================ UTF-8 validation */

/* Offset of the first invalid UTF-8 sequence in s, or len when all of s is valid
** (no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_check(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) {
            n = 1, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return i;
        }
        if (len - i <= n) return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += n + 1;
    }
    return len;
}

static bool valid_cp(uint32_t cp)
{
    return cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
}

/* ================================================================ parser */

/*
** The parser keeps two explicit stacks: values parsed so far (terms, or pattern nodes when
** parsing a pattern) and open containers (frames). A container's values sit on the value
** stack from its frame's base upward until its closing bracket builds it.
*/
enum { F_LIST, F_TUPLE, F_MAP, F_FUN };

typedef struct frame {
    uint8_t kind;
    uint8_t bar; /* list: '|' seen; map: expecting a value; fun: fields seen */
    size_t base; /* first value of this container on the value stack */
    size_t off;  /* offset of the opening bracket */
} frame;

typedef struct parser {
    const uint8_t *s;
    size_t len, pos;
    const term_text_ctx *ctx;
    term_pattern *pat;
    term_parse_error *err;
    uintptr_t *vals;
    size_t nvals, capvals;
    frame *frames;
    size_t nframes, capframes;
    size_t max_depth;
    size_t val_off; /* where the value completed last began */
    etf_buf tmp;    /* scratch for digits, characters, names */
} parser;

static int fail(parser *P, int code, size_t off, const char *what)
{
    if (P->err && P->err->code == 0) {
        P->err->code = code;
        P->err->offset = off;
        snprintf(P->err->what, sizeof P->err->what, "%s", what);
    }
    return code;
}

static int peek(const parser *P)
{
    return P->pos < P->len ? P->s[P->pos] : -1;
}
static int peek_at(const parser *P, size_t k)
{
    return P->pos + k < P->len ? P->s[P->pos + k] : -1;
}
static bool lookat(const parser *P, const char *lit)
{
    size_t n = strlen(lit);
    return P->len - P->pos >= n && memcmp(P->s + P->pos, lit, n) == 0;
}
static uint32_t peek_cp(const parser *P)
{
    size_t i = P->pos;
    return P->pos < P->len ? utf8_next(P->s, &i) : 0;
}

/* Whitespace (anything up to and including space) and % comments. */
static void skip_ws(parser *P)
{
    while (P->pos < P->len) {
        uint8_t c = P->s[P->pos];
        if (c <= ' ') {
            P->pos++;
        } else if (c == '%') {
            while (P->pos < P->len && P->s[P->pos] != '\n') P->pos++;
        } else {
            break;
        }
    }
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *q = term__realloc(*p, *cap * elem, nc * elem);
    if (!q) return TERM_ENOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

static int push_val(parser *P, uintptr_t v)
{
    if (grow((void **)&P->vals, &P->capvals, P->nvals + 1, sizeof *P->vals)) {
        if (!P->pat) term_free(v);
        return fail(P, TERM_ENOMEM, P->pos, "out of memory");
    }
    P->vals[P->nvals++] = v;
    return 0;
}

/* Pushes a parsed literal term (consumed) as a value. */
static int push_lit(parser *P, term_t t, size_t off)
{
    if (t == TERM_NONE) return fail(P, TERM_ENOMEM, off, "out of memory");
    if (!P->pat) return push_val(P, t);
    uintptr_t v;
    const char *what = "invalid pattern";
    int r = term__pat_lit(P->pat, t, &v, &what);
    return r ? fail(P, r, off, what) : push_val(P, v);
}

/* The literal term a value stands for (borrowed), TERM_NONE for a non-literal pattern. */
static term_t lit_of(const parser *P, uintptr_t v)
{
    return P->pat ? term__pat_literal(P->pat, v) : (term_t)v;
}

static int push_frame(parser *P, int kind, size_t off)
{
    if (P->nframes >= P->max_depth) return fail(P, TERM_EDEPTH, off, "nesting too deep");
    if (grow((void **)&P->frames, &P->capframes, P->nframes + 1, sizeof *P->frames))
        return fail(P, TERM_ENOMEM, off, "out of memory");
    P->frames[P->nframes++] = (frame){.kind = (uint8_t)kind, .base = P->nvals, .off = off};
    return 0;
}

static int tmp_put(parser *P, const void *p, size_t n)
{
    return term__buf_put(&P->tmp, p, n) ? fail(P, TERM_ENOMEM, P->pos, "out of memory") : 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'z') return c - 'a' + 10;
    if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
    return 99;
}

/* One character of a string, quoted atom or $-literal, with Erlang's escapes. */
static int lex_char(parser *P, uint32_t *out)
{
    if (P->pos >= P->len) return fail(P, TERM_ESYNTAX, P->pos, "unterminated string or atom");
    if (P->s[P->pos] != '\\') {
        *out = utf8_next(P->s, &P->pos);
        return 0;
    }
    size_t at = P->pos++;
    if (P->pos >= P->len) return fail(P, TERM_ESYNTAX, at, "unterminated escape");
    int c = P->s[P->pos];
    if (c >= '0' && c <= '7') {
        uint32_t v = 0;
        for (int k = 0; k < 3 && peek(P) >= '0' && peek(P) <= '7'; k++)
            v = v * 8 + (uint32_t)(P->s[P->pos++] - '0');
        *out = v;
        return 0;
    }
    if (c == 'x') {
        P->pos++;
        uint32_t v = 0;
        if (peek(P) == '{') {
            P->pos++;
            int n = 0;
            while (hexval(peek(P)) < 16) {
                v = v * 16 + (uint32_t)hexval(P->s[P->pos++]);
                if (++n > 8 || v > 0x10FFFF)
                    return fail(P, TERM_ESYNTAX, at, "character code out of range");
            }
            if (n == 0 || peek(P) != '}')
                return fail(P, TERM_ESYNTAX, P->pos, "bad \\x{...} escape");
            P->pos++;
        } else {
            if (hexval(peek(P)) >= 16 || hexval(peek_at(P, 1)) >= 16)
                return fail(P, TERM_ESYNTAX, at, "bad \\x escape (two hex digits expected)");
            v = (uint32_t)(hexval(P->s[P->pos]) * 16 + hexval(P->s[P->pos + 1]));
            P->pos += 2;
        }
        *out = v;
        return 0;
    }
    if (c == '^') {
        P->pos++;
        if (P->pos >= P->len) return fail(P, TERM_ESYNTAX, at, "unterminated escape");
        *out = utf8_next(P->s, &P->pos) & 31;
        return 0;
    }
    static const char from[] = "bdefnrstv", to[] = "\b\177\033\f\n\r \t\v";
    const char *f = strchr(from, c);
    if (f && c) {
        P->pos++;
        *out = (uint8_t)to[f - from];
        return 0;
    }
    *out = utf8_next(P->s, &P->pos); /* any other escaped character stands for itself */
    return 0;
}

/* A "string" and any directly following ones, as code points in P->tmp (uint32 each). */
static int lex_string(parser *P)
{
    P->tmp.len = 0;
    int r;
    for (;;) {
        size_t start = P->pos++;
        for (;;) {
            if (P->pos >= P->len) return fail(P, TERM_ESYNTAX, start, "unterminated string");
            if (P->s[P->pos] == '"') break;
            uint32_t c;
            if ((r = lex_char(P, &c)) || (r = tmp_put(P, &c, sizeof c))) return r;
        }
        P->pos++;
        size_t save = P->pos;
        skip_ws(P);
        if (peek(P) != '"') {
            P->pos = save;
            return 0;
        }
    }
}

/* A quoted atom (P->pos at the quote) or an unquoted one (name bytes [start, P->pos)). */
static int make_atom(parser *P, const char *name, size_t n, size_t off, term_t *out)
{
    size_t chars;
    if (n == 0) name = ""; /* '' : the scratch buffer may not exist yet */
    if (!term__utf8_count((const uint8_t *)name, n, &chars) || chars > 255)
        return fail(P, TERM_EATOM, off, "atom longer than 255 characters");
    int e = 0;
    *out = term_atom_n(name, n, &e);
    if (*out == TERM_NONE) return fail(P, e ? e : TERM_EATOM, off, "cannot create atom");
    return 0;
}

static int lex_quoted_atom(parser *P, term_t *out)
{
    size_t start = P->pos++;
    size_t chars = 0;
    P->tmp.len = 0;
    int r;
    for (;;) {
        if (P->pos >= P->len) return fail(P, TERM_ESYNTAX, start, "unterminated quoted atom");
        if (P->s[P->pos] == '\'') break;
        uint32_t c;
        char u[4];
        if ((r = lex_char(P, &c))) return r;
        if (!valid_cp(c)) return fail(P, TERM_EATOM, start, "invalid character in atom");
        if (++chars > 255) return fail(P, TERM_EATOM, start, "atom longer than 255 characters");
        if ((r = tmp_put(P, u, utf8_put(c, u)))) return r;
    }
    P->pos++;
    return make_atom(P, (const char *)P->tmp.data, P->tmp.len, start, out);
}

/* An atom in either form (for node names and fun modules). */
static int lex_atom(parser *P, term_t *out)
{
    if (peek(P) == '\'') return lex_quoted_atom(P, out);
    size_t start = P->pos;
    if (P->pos >= P->len || !is_lower(peek_cp(P)))
        return fail(P, TERM_ESYNTAX, P->pos, "expected an atom");
    while (P->pos < P->len && is_name_char(peek_cp(P))) utf8_next(P->s, &P->pos);
    return make_atom(P, (const char *)P->s + start, P->pos - start, start, out);
}

/* Unsigned decimal without sign or separators, at most max. */
static int lex_uint(parser *P, uint64_t max, uint64_t *out)
{
    size_t start = P->pos;
    uint64_t v = 0;
    if (!is_digit((uint32_t)peek(P))) return fail(P, TERM_ESYNTAX, P->pos, "expected digits");
    while (is_digit((uint32_t)peek(P))) {
        unsigned d = (unsigned)(P->s[P->pos++] - '0');
        if (v > (max - d) / 10) return fail(P, TERM_ERANGE, start, "number out of range");
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int expect(parser *P, const char *lit, const char *what)
{
    if (!lookat(P, lit)) return fail(P, TERM_ESYNTAX, P->pos, what);
    P->pos += strlen(lit);
    return 0;
}

/* Integer from digit characters (no separators) in base; small values without bignums. */
static term_t int_from_digits(bool neg, const char *d, size_t n, unsigned base)
{
    uint64_t v = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned x = (unsigned)hexval((unsigned char)d[i]);
        if (v > (UINT64_C(1) << 58) / base) break;
        v = v * base + x;
    }
    if (i == n) return neg ? term_int(-(int64_t)v) : term_int((int64_t)v);
    return term__int_from_text(neg, d, n, base);
}

/* Why an integer could not be built: the core refuses literals over 200000 digits. */
static int int_fail(parser *P, size_t off)
{
    if (P->tmp.len > 200000) return fail(P, TERM_EBIG, off, "integer literal too long");
    return fail(P, TERM_ENOMEM, off, "out of memory");
}

/* Appends digits valid in base (with '_' separators between them) to P->tmp. */
static int lex_digits(parser *P, unsigned base, const char *what)
{
    size_t start = P->pos, n = 0;
    while (P->pos < P->len) {
        int c = P->s[P->pos];
        if (c == '_' && P->pos > start && P->pos + 1 < P->len &&
            (unsigned)hexval(P->s[P->pos + 1]) < base) {
            P->pos++;
            continue;
        }
        if ((unsigned)hexval(c) >= base) break;
        if (tmp_put(P, P->s + P->pos, 1)) return TERM_ENOMEM;
        P->pos++;
        n++;
    }
    return n ? 0 : fail(P, TERM_ESYNTAX, P->pos, what);
}

/* A number at P->pos (a digit): integer, Base#digits or float; neg applies the sign.
** Floats need digits on both sides of the dot, as in Erlang. */
static int lex_number(parser *P, bool neg, size_t off, term_t *out)
{
    int r;
    P->tmp.len = 0;
    if ((r = lex_digits(P, 10, "expected digits"))) return r;
    if (peek(P) == '#') {
        unsigned base = 0;
        for (size_t i = 0; i < P->tmp.len && base <= 36; i++)
            base = base * 10 + (unsigned)(P->tmp.data[i] - '0');
        if (base < 2 || base > 36) return fail(P, TERM_ESYNTAX, off, "base must be 2..36");
        P->pos++;
        P->tmp.len = 0;
        if ((r = lex_digits(P, base, "expected digits of the base"))) return r;
        *out = int_from_digits(neg, (const char *)P->tmp.data, P->tmp.len, base);
        return *out == TERM_NONE ? int_fail(P, off) : 0;
    }
    if (peek(P) == '.' && is_digit((uint32_t)peek_at(P, 1))) {
        if ((r = tmp_put(P, ".", 1))) return r;
        P->pos++;
        if ((r = lex_digits(P, 10, "expected digits"))) return r;
        if (peek(P) == 'e' || peek(P) == 'E') {
            size_t at = P->pos++;
            if ((r = tmp_put(P, "e", 1))) return r;
            if (peek(P) == '+' || peek(P) == '-') {
                if ((r = tmp_put(P, P->s + P->pos, 1))) return r;
                P->pos++;
            }
            if (!is_digit((uint32_t)peek(P)))
                return fail(P, TERM_ESYNTAX, at, "expected exponent digits");
            if ((r = lex_digits(P, 10, "expected exponent digits"))) return r;
        }
        if ((r = tmp_put(P, "", 1))) return r;
        double d = strtod((const char *)P->tmp.data, NULL);
        if (!isfinite(d)) return fail(P, TERM_EFLOAT, off, "float out of range");
        *out = term_float(neg ? -d : d);
        return *out == TERM_NONE ? fail(P, TERM_ENOMEM, off, "out of memory") : 0;
    }
    *out = int_from_digits(neg, (const char *)P->tmp.data, P->tmp.len, 10);
    return *out == TERM_NONE ? int_fail(P, off) : 0;
}

/* Signed decimal integer, any size, no float or base (fields of the #Fun<...> form). */
static int lex_plain_int(parser *P, term_t *out)
{
    size_t off = P->pos;
    bool neg = peek(P) == '-';
    if (neg) P->pos++;
    P->tmp.len = 0;
    while (is_digit((uint32_t)peek(P))) {
        if (tmp_put(P, P->s + P->pos, 1)) return TERM_ENOMEM;
        P->pos++;
    }
    if (P->tmp.len == 0) return fail(P, TERM_ESYNTAX, P->pos, "expected an integer");
    *out = int_from_digits(neg, (const char *)P->tmp.data, P->tmp.len, 10);
    return *out == TERM_NONE ? int_fail(P, off) : 0;
}

/* ---------------------------------------------------------------- binaries */

typedef struct bitw {
    etf_buf b;
    uint64_t nbits;
} bitw;

static int bits_put(bitw *w, uint64_t v, unsigned n)
{
    while (n > 0) {
        if (w->nbits % 8 == 0) {
            uint8_t z = 0;
            if (term__buf_put(&w->b, &z, 1)) return TERM_ENOMEM;
        }
        unsigned room = 8 - (unsigned)(w->nbits % 8), take = n < room ? n : room;
        uint64_t chunk = (v >> (n - take)) & ((1u << take) - 1);
        w->b.data[w->b.len - 1] |= (uint8_t)(chunk << (room - take));
        w->nbits += take;
        n -= take;
    }
    return 0;
}

/* <<Seg, ...>> with segments Int[:Size][/Type], "string"[/utf8], $c; Size <= 64 bits. */
static int lex_binary(parser *P, term_t *out)
{
    size_t start = P->pos;
    P->pos += 2;
    bitw w = {{0}, 0};
    int r = 0;
    skip_ws(P);
    if (lookat(P, ">>")) {
        P->pos += 2;
        goto done;
    }
    for (;;) {
        skip_ws(P);
        size_t off = P->pos;
        int c = peek(P);
        bool is_str = false;
        term_t iv = TERM_NONE;
        if (c == '"') {
            if ((r = lex_string(P))) goto out;
            is_str = true;
        } else if (c == '$') {
            P->pos++;
            uint32_t ch;
            if ((r = lex_char(P, &ch))) goto out;
            iv = term_int(ch);
        } else if (c == '-' || c == '+' || is_digit((uint32_t)c)) {
            bool neg = c == '-';
            if (!is_digit((uint32_t)c)) P->pos++;
            if (!is_digit((uint32_t)peek(P))) {
                r = fail(P, TERM_ESYNTAX, P->pos, "expected digits");
                goto out;
            }
            if ((r = lex_number(P, neg, off, &iv))) goto out;
            if (term_is_float(iv)) {
                term_free(iv);
                r = fail(P, TERM_ENOTSUP, off, "float segments are not supported");
                goto out;
            }
        } else {
            r = fail(P, TERM_ESYNTAX, off, "expected a binary segment");
            goto out;
        }
        int64_t val = 0;
        if (!is_str) {
            uint64_t u;
            if (term_get_int64(iv, &val) != 0) {
                if (term_get_uint64(iv, &u) == 0) {
                    val = (int64_t)u;
                } else {
                    term_free(iv);
                    r = fail(P, TERM_ENOTSUP, off, "segment value wider than 64 bits");
                    goto out;
                }
            }
            term_free(iv);
        }
        skip_ws(P);
        uint64_t size = 8;
        bool sized = false, utf8 = false;
        if (peek(P) == ':') {
            P->pos++;
            skip_ws(P);
            if ((r = lex_uint(P, 64, &size))) {
                if (r == TERM_ERANGE) P->err->code = TERM_ENOTSUP;
                goto out;
            }
            sized = true;
            skip_ws(P);
        }
        if (peek(P) == '/') {
            P->pos++;
            for (;;) {
                skip_ws(P);
                size_t toff = P->pos;
                while (P->pos < P->len && (is_lower(P->s[P->pos]) || is_digit(P->s[P->pos])))
                    P->pos++;
                size_t tl = P->pos - toff;
                const char *tn = (const char *)P->s + toff;
                if (tl == 4 && memcmp(tn, "utf8", 4) == 0) {
                    utf8 = true;
                } else if (!((tl == 7 && memcmp(tn, "integer", 7) == 0) ||
                             (tl == 8 && memcmp(tn, "unsigned", 8) == 0) ||
                             (tl == 6 && memcmp(tn, "signed", 6) == 0) ||
                             (tl == 3 && memcmp(tn, "big", 3) == 0))) {
                    r = fail(P, TERM_ENOTSUP, toff, "unsupported segment type");
                    goto out;
                }
                skip_ws(P);
                if (peek(P) != '-') break;
                P->pos++;
            }
            if (utf8 && sized) {
                r = fail(P, TERM_ESYNTAX, off, "utf8 segments take no size");
                goto out;
            }
        }
        size_t n = is_str ? P->tmp.len / 4 : 1;
        for (size_t i = 0; i < n; i++) {
            uint64_t v = (uint64_t)val;
            if (is_str) memcpy(&v, P->tmp.data + 4 * i, 4), v &= 0xFFFFFFFF;
            if (utf8) {
                char u[4];
                if (!valid_cp((uint32_t)v)) {
                    r = fail(P, TERM_ESYNTAX, off, "invalid code point for utf8");
                    goto out;
                }
                size_t k = utf8_put((uint32_t)v, u);
                for (size_t j = 0; j < k && r == 0; j++) r = bits_put(&w, (uint8_t)u[j], 8);
            } else if (size > 0) {
                r = bits_put(&w, size < 64 ? v & ((UINT64_C(1) << size) - 1) : v, (unsigned)size);
            }
            if (r) {
                r = fail(P, TERM_ENOMEM, off, "out of memory");
                goto out;
            }
        }
        skip_ws(P);
        if (peek(P) == ',') {
            P->pos++;
            continue;
        }
        if (lookat(P, ">>")) {
            P->pos += 2;
            break;
        }
        r = fail(P, TERM_ESYNTAX, P->pos, "expected ',' or '>>'");
        goto out;
    }
done:
    *out = w.nbits % 8 ? term_bitstring(w.b.data, w.nbits) : term_binary(w.b.data, w.nbits / 8);
    if (*out == TERM_NONE) r = fail(P, TERM_ENOMEM, start, "out of memory");
out:
    etf_buf_free(&w.b);
    return r;
}

/* ---------------------------------------------------------------- pids, ports, refs, funs */

/* "0" (the context node) or "node:creation" inside <...>, #Port<...>, #Ref<...>. */
static int lex_node(parser *P, term_t *node, uint32_t *creation)
{
    size_t off = P->pos;
    int r;
    if (is_digit((uint32_t)peek(P))) {
        uint64_t z;
        if ((r = lex_uint(P, UINT32_MAX, &z))) return r;
        if (z != 0)
            return fail(P, TERM_ESYNTAX, off,
                        "only node 0 (this node) has a number; write node:creation");
        if (!P->ctx || P->ctx->node == TERM_NONE)
            return fail(P, TERM_EINVAL, off, "no local node in the context; write node:creation");
        *node = P->ctx->node;
        *creation = P->ctx->creation;
        return 0;
    }
    uint64_t c;
    if ((r = lex_atom(P, node)) || (r = expect(P, ":", "expected ':' after the node name")) ||
        (r = lex_uint(P, UINT32_MAX, &c)))
        return r;
    *creation = (uint32_t)c;
    return 0;
}

static int lex_pid(parser *P, term_t *out)
{
    size_t off = P->pos++;
    term_t node;
    uint32_t cr;
    uint64_t id, serial;
    int r;
    if ((r = lex_node(P, &node, &cr)) || (r = expect(P, ".", "expected '.'")) ||
        (r = lex_uint(P, UINT32_MAX, &id)) || (r = expect(P, ".", "expected '.'")) ||
        (r = lex_uint(P, UINT32_MAX, &serial)) || (r = expect(P, ">", "expected '>'")))
        return r;
    *out = term_pid(node, (uint32_t)id, (uint32_t)serial, cr);
    return *out == TERM_NONE ? fail(P, TERM_ENOMEM, off, "out of memory") : 0;
}

static int lex_port(parser *P, term_t *out)
{
    size_t off = P->pos;
    P->pos += 6;
    term_t node;
    uint32_t cr;
    uint64_t id;
    int r;
    if ((r = lex_node(P, &node, &cr)) || (r = expect(P, ".", "expected '.'")) ||
        (r = lex_uint(P, UINT64_MAX, &id)) || (r = expect(P, ">", "expected '>'")))
        return r;
    *out = term_port(node, id, cr);
    return *out == TERM_NONE ? fail(P, TERM_ENOMEM, off, "out of memory") : 0;
}

static int lex_ref(parser *P, term_t *out)
{
    size_t off = P->pos;
    P->pos += 5;
    term_t node;
    uint32_t cr, w[5];
    size_t n = 0;
    int r;
    if ((r = lex_node(P, &node, &cr))) return r;
    while (peek(P) == '.') {
        P->pos++;
        uint64_t x;
        if (n == 5) return fail(P, TERM_ESYNTAX, P->pos, "a reference has at most 5 words");
        if ((r = lex_uint(P, UINT32_MAX, &x))) return r;
        w[n++] = (uint32_t)x;
    }
    if (n == 0) return fail(P, TERM_ESYNTAX, P->pos, "expected '.' and a reference word");
    if ((r = expect(P, ">", "expected '.' or '>'"))) return r;
    uint32_t rev[5];
    for (size_t i = 0; i < n; i++) rev[i] = w[n - 1 - i];
    *out = term_ref(node, cr, n, rev);
    return *out == TERM_NONE ? fail(P, TERM_ENOMEM, off, "out of memory") : 0;
}

/* fun Module:Function/Arity (after the word fun). */
static int lex_export_fun(parser *P, size_t off, term_t *out)
{
    term_t m, f;
    uint64_t a;
    int r;
    skip_ws(P);
    if ((r = lex_atom(P, &m))) return r;
    skip_ws(P);
    if ((r = expect(P, ":", "expected ':' in fun M:F/A"))) return r;
    skip_ws(P);
    if ((r = lex_atom(P, &f))) return r;
    skip_ws(P);
    if ((r = expect(P, "/", "expected '/' in fun M:F/A"))) return r;
    skip_ws(P);
    if ((r = lex_uint(P, 255, &a))) return r;
    *out = term_export_fun(m, f, (uint32_t)a);
    return *out == TERM_NONE ? fail(P, TERM_ENOMEM, off, "out of memory") : 0;
}

/* #Fun<M.Index.Uniq.OldIndex.OldUniq.Arity. : pushes six literal fields and a fun frame;
** the pid and the list of free variables follow as ordinary values. */
static int lex_fun_head(parser *P, bool old)
{
    size_t off = P->pos;
    P->pos += old ? 8 : 5;
    term_t m, oi, ou;
    uint64_t idx, ar;
    uint8_t uniq[16];
    int r;
    if ((r = lex_atom(P, &m)) || (r = expect(P, ".", "expected '.'")) ||
        (r = lex_uint(P, UINT32_MAX, &idx)) || (r = expect(P, ".", "expected '.'")))
        return r;
    size_t uoff = P->pos;
    for (int i = 0; i < 16; i++) {
        int h = hexval(peek(P)), l = hexval(peek_at(P, 1));
        if (h >= 16 || l >= 16) return fail(P, TERM_ESYNTAX, uoff, "expected 32 hex digits (uniq)");
        uniq[i] = (uint8_t)(h * 16 + l);
        P->pos += 2;
    }
    if ((r = expect(P, ".", "expected '.'")) || (r = lex_plain_int(P, &oi))) return r;
    if ((r = expect(P, ".", "expected '.'")) || (r = lex_plain_int(P, &ou))) {
        term_free(oi);
        return r;
    }
    if ((r = expect(P, ".", "expected '.'")) || (r = lex_uint(P, 255, &ar)) ||
        (r = expect(P, ".", "expected '.'"))) {
        term_free(oi);
        term_free(ou);
        return r;
    }
    if ((r = push_frame(P, F_FUN, off))) {
        term_free(oi);
        term_free(ou);
        return r;
    }
    P->frames[P->nframes - 1].bar = old;
    if ((r = push_lit(P, m, off)) || (r = push_lit(P, term_int((int64_t)idx), off)) ||
        (r = push_lit(P, term_binary(uniq, 16), off)))
        goto drop;
    r = push_lit(P, oi, off);
    oi = TERM_NONE;
    if (r) goto drop;
    r = push_lit(P, ou, off);
    ou = TERM_NONE;
    if (r) goto drop;
    return push_lit(P, term_int((int64_t)ar), off);
drop:
    term_free(oi);
    term_free(ou);
    return r;
}

/* Builds the fun of a closed #Fun<...> frame from its eight values. */
static term_t build_fun(parser *P, const uintptr_t *v, bool old, size_t off, int *r)
{
    term_t pid = lit_of(P, v[6]), fl = lit_of(P, v[7]);
    if (!term_is_pid(pid)) {
        *r = fail(P, TERM_ESYNTAX, off, "#Fun<...> needs a literal pid");
        return TERM_NONE;
    }
    long n = term_list_length(fl);
    if (n < 0) {
        *r = fail(P, TERM_ESYNTAX, off, "#Fun<...> needs a literal list of free variables");
        return TERM_NONE;
    }
    term_t *fv = n ? term__alloc((size_t)n * sizeof *fv) : NULL;
    if (n && !fv) {
        *r = fail(P, TERM_ENOMEM, off, "out of memory");
        return TERM_NONE;
    }
    for (long i = 0; i < n; i++, fl = term_tl(fl)) fv[i] = term_hd(fl);
    term_fun_info fi = {0};
    fi.module = lit_of(P, v[0]);
    fi.index = (uint32_t)term_small_value(lit_of(P, v[1]));
    memcpy(fi.uniq, term_binary_data(lit_of(P, v[2])), 16);
    fi.old_index = lit_of(P, v[3]);
    fi.old_uniq = lit_of(P, v[4]);
    fi.arity = (uint32_t)term_small_value(lit_of(P, v[5]));
    fi.old_form = old;
    fi.pid = pid;
    fi.nfree = (size_t)n;
    fi.free = fv ? fv : no_terms;
    term_t f = term_local_fun(&fi);
    if (fv) term__dealloc(fv, (size_t)n * sizeof *fv);
    if (f == TERM_NONE) *r = fail(P, TERM_ENOMEM, off, "out of memory");
    return f;
}

/* ---------------------------------------------------------------- containers */

static void drop_vals(parser *P, size_t base)
{
    if (!P->pat)
        for (size_t i = base; i < P->nvals; i++) term_free(P->vals[i]);
    P->nvals = base;
}

/* Closes the top frame: builds its value from the values above its base. */
static int close_frame(parser *P)
{
    frame f = P->frames[--P->nframes];
    P->val_off = f.off;
    uintptr_t *v = P->vals + f.base;
    size_t n = P->nvals - f.base;
    const char *what = "invalid pattern";
    uintptr_t res = 0;
    int r = 0;
    if (P->pat) {
        switch (f.kind) {
        case F_LIST:
            r = term__pat_list(P->pat, f.bar ? n - 1 : n, v, f.bar ? v[n - 1] : UINTPTR_MAX, &res,
                               &what);
            break;
        case F_TUPLE:
            r = term__pat_tuple(P->pat, n, v, &res, &what);
            break;
        case F_MAP:
            r = term__pat_map(P->pat, n / 2, v, &res, &what);
            break;
        case F_FUN: {
            term_t t = build_fun(P, v, f.bar, f.off, &r);
            if (r) return r;
            r = term__pat_lit(P->pat, t, &res, &what);
            break;
        }
        }
        P->nvals = f.base;
        if (r) return fail(P, r, f.off, what);
        return push_val(P, res);
    }
    term_t t = TERM_NONE;
    switch (f.kind) {
    case F_LIST:
        /* term_list_tail consumes every element and the tail */
        t = f.bar ? term_list_tail(n - 1, (const term_t *)v, v[n - 1])
                  : term_list(n, (const term_t *)v);
        P->nvals = f.base;
        break;
    case F_TUPLE:
        t = term_tuple(n, (const term_t *)v);
        P->nvals = f.base;
        break;
    case F_MAP: {
        size_t m = n / 2;
        term_t *kv = term__alloc(n * sizeof *kv);
        if (!kv) return fail(P, TERM_ENOMEM, f.off, "out of memory");
        for (size_t i = 0; i < m; i++) kv[i] = v[2 * i], kv[m + i] = v[2 * i + 1];
        t = term_map(m, kv, kv + m);
        term__dealloc(kv, n * sizeof *kv);
        P->nvals = f.base;
        break;
    }
    case F_FUN:
        t = build_fun(P, v, f.bar, f.off, &r);
        drop_vals(P, f.base);
        if (r) return r;
        break;
    }
    if (t == TERM_NONE) return fail(P, TERM_ENOMEM, f.off, "out of memory");
    return push_val(P, t);
}

/* A bare word: an atom, `fun M:F/A`, or (in patterns) a variable. */
static int lex_word(parser *P)
{
    size_t off = P->pos;
    uint32_t c0 = peek_cp(P);
    while (P->pos < P->len && is_name_char(peek_cp(P))) utf8_next(P->s, &P->pos);
    const char *name = (const char *)P->s + off;
    size_t n = P->pos - off;
    if (is_upper(c0) || c0 == '_') {
        if (!P->pat) return fail(P, TERM_ESYNTAX, off, "variables are only allowed in patterns");
        uintptr_t v;
        const char *what = "invalid variable";
        int r = term__pat_var(P->pat, name, n, &v, &what);
        return r ? fail(P, r, off, what) : push_val(P, v);
    }
    term_t t;
    int r;
    if (n == 3 && memcmp(name, "fun", 3) == 0) {
        if ((r = lex_export_fun(P, off, &t))) return r;
        return push_lit(P, t, off);
    }
    if (is_reserved(name, n))
        return fail(P, TERM_ESYNTAX, off, "reserved word; quote it to make an atom");
    if ((r = make_atom(P, name, n, off, &t))) return r;
    return push_lit(P, t, off);
}

/* Parses one value or opens a container (then *opened is set). */
static int parse_value(parser *P, bool *opened)
{
    *opened = false;
    skip_ws(P);
    size_t off = P->pos;
    int c = peek(P), r;
    term_t t = TERM_NONE;
    P->val_off = off;
    if (c < 0) return fail(P, TERM_ESYNTAX, off, "unexpected end of input, expected a term");
    switch (c) {
    case '[':
    case '{':
        P->pos++;
        skip_ws(P);
        if (peek(P) == (c == '[' ? ']' : '}')) {
            P->pos++;
            return push_lit(P, c == '[' ? TERM_NIL : term_tuple(0, no_terms), off);
        }
        *opened = true;
        return push_frame(P, c == '[' ? F_LIST : F_TUPLE, off);
    case '#':
        if (lookat(P, "#{")) {
            P->pos += 2;
            skip_ws(P);
            if (peek(P) == '}') {
                P->pos++;
                if (!P->pat) return push_lit(P, term_map(0, no_terms, no_terms), off);
                /* in a pattern, #{} matches any map */
                uintptr_t v;
                const char *what = "out of memory";
                r = term__pat_map(P->pat, 0, NULL, &v, &what);
                return r ? fail(P, r, off, what) : push_val(P, v);
            }
            *opened = true;
            return push_frame(P, F_MAP, off);
        }
        if (lookat(P, "#Fun<") || lookat(P, "#OldFun<")) {
            *opened = true;
            return lex_fun_head(P, P->s[off + 1] == 'O');
        }
        if (lookat(P, "#Port<"))
            r = lex_port(P, &t);
        else if (lookat(P, "#Ref<"))
            r = lex_ref(P, &t);
        else
            return fail(P, TERM_ESYNTAX, off, "expected #{, #Ref<, #Port< or #Fun<");
        break;
    case '<':
        r = peek_at(P, 1) == '<' ? lex_binary(P, &t) : lex_pid(P, &t);
        break;
    case '"': {
        if ((r = lex_string(P))) return r;
        size_t n = P->tmp.len / 4;
        term_t *e = n ? term__alloc(n * sizeof *e) : NULL;
        if (n && !e) return fail(P, TERM_ENOMEM, off, "out of memory");
        for (size_t i = 0; i < n; i++) {
            uint32_t ch;
            memcpy(&ch, P->tmp.data + 4 * i, 4);
            e[i] = term__make_small(ch);
        }
        t = term_list(n, e ? e : no_terms);
        if (e) term__dealloc(e, n * sizeof *e);
        return push_lit(P, t, off);
    }
    case '$': {
        P->pos++;
        uint32_t ch;
        if ((r = lex_char(P, &ch))) return r;
        return push_lit(P, term__make_small(ch), off);
    }
    case '\'':
        r = lex_quoted_atom(P, &t);
        break;
    case '-':
    case '+':
        P->pos++;
        skip_ws(P);
        if (peek(P) == '$') {
            P->pos++;
            uint32_t ch;
            if ((r = lex_char(P, &ch))) return r;
            return push_lit(P, term__make_small(c == '-' ? -(int64_t)ch : ch), off);
        }
        if (!is_digit((uint32_t)peek(P))) return fail(P, TERM_ESYNTAX, P->pos, "expected a number");
        r = lex_number(P, c == '-', off, &t);
        break;
    default:
        if (is_digit((uint32_t)c)) {
            r = lex_number(P, false, off, &t);
            break;
        }
        uint32_t cp = peek_cp(P);
        if (is_lower(cp) || is_upper(cp) || cp == '_') return lex_word(P);
        return fail(P, TERM_ESYNTAX, off, "expected a term");
    }
    if (r) return r;
    return push_lit(P, t, off);
}

/* After a value inside the top frame: the separator or the closing bracket. */
static int after_value(parser *P, bool *more)
{
    frame *f = &P->frames[P->nframes - 1];
    *more = false;
    skip_ws(P);
    int c = peek(P);
    size_t off = P->pos;
    switch (f->kind) {
    case F_LIST:
        if (c == ',' && !f->bar) break;
        if (c == '|' && !f->bar) {
            f->bar = 1;
            break;
        }
        if (c == ']') {
            P->pos++;
            return close_frame(P);
        }
        return fail(P, TERM_ESYNTAX, off, f->bar ? "expected ']'" : "expected ',', '|' or ']'");
    case F_TUPLE:
        if (c == ',') break;
        if (c == '}') {
            P->pos++;
            return close_frame(P);
        }
        return fail(P, TERM_ESYNTAX, off, "expected ',' or '}'");
    case F_MAP:
        if (!f->bar) { /* after a key */
            if (P->pat && term__pat_literal(P->pat, P->vals[P->nvals - 1]) == TERM_NONE)
                return fail(P, TERM_ESYNTAX, P->val_off, "map keys in patterns must be literals");
            if (lookat(P, "=>")) {
                if (P->pat)
                    return fail(P, TERM_ESYNTAX, off, "'=>' is not allowed in patterns; use ':='");
            } else if (lookat(P, ":=")) {
                if (!P->pat) return fail(P, TERM_ESYNTAX, off, "':=' is only allowed in patterns");
            } else {
                return fail(P, TERM_ESYNTAX, off, P->pat ? "expected ':='" : "expected '=>'");
            }
            P->pos += 2;
            f->bar = 1;
            *more = true;
            return 0;
        }
        if (c == ',') {
            f->bar = 0;
            break;
        }
        if (c == '}') {
            P->pos++;
            return close_frame(P);
        }
        return fail(P, TERM_ESYNTAX, off, "expected ',' or '}'");
    case F_FUN:
        if (P->nvals - f->base == 7) {
            if (c == '.') break;
            return fail(P, TERM_ESYNTAX, off, "expected '.' after the fun's pid");
        }
        if (c == '>') {
            P->pos++;
            return close_frame(P);
        }
        return fail(P, TERM_ESYNTAX, off, "expected '>'");
    }
    P->pos++;
    *more = true;
    return 0;
}

int term__text_parse(const char *text, size_t len, const term_text_ctx *ctx, term_pattern *pat,
                     uintptr_t *out, term_parse_error *err)
{
    term_parse_error dummy;
    if (!err) err = &dummy;
    memset(err, 0, sizeof *err);
    parser P = {.s = (const uint8_t *)text, .len = len, .ctx = ctx, .pat = pat, .err = err};
    P.max_depth = pat ? TERM__PATTERN_MAX_DEPTH : TERM__TEXT_MAX_DEPTH;
    if (!text && len) return fail(&P, TERM_EINVAL, 0, "no text");
    int r = 0;
    size_t bad = utf8_check(P.s, len);
    if (bad < len) {
        r = fail(&P, TERM_EUTF8, bad, "invalid UTF-8");
        goto out;
    }
    for (;;) {
        bool opened, more;
        if ((r = parse_value(&P, &opened))) goto out;
        if (opened) continue;
        do {
            if (P.nframes == 0) goto top;
            if ((r = after_value(&P, &more))) goto out;
        } while (!more);
    }
top:
    skip_ws(&P);
    if (peek(&P) == '.') {
        P.pos++;
        skip_ws(&P);
    }
    if (P.pos < P.len) {
        r = fail(&P, TERM_ETRAILING, P.pos, "unexpected text after the term");
        goto out;
    }
    *out = P.vals[0];
    P.nvals = 0;
out:
    drop_vals(&P, 0);
    term__dealloc(P.vals, P.capvals * sizeof *P.vals);
    term__dealloc(P.frames, P.capframes * sizeof *P.frames);
    etf_buf_free(&P.tmp);
    return r;
}

term_t term_parse(const char *text, size_t len, const term_text_ctx *ctx, term_parse_error *err)
{
    uintptr_t v;
    if (term__text_parse(text, len, ctx, NULL, &v, err)) return TERM_NONE;
    return (term_t)v;
}
