/* Bignum helpers: text conversion in any base and exact integer/float comparison. */
#include "term_int.h"

#include <math.h>

/* Magnitude view of any integer term: small values use the caller's one-limb buffer. */
static void int_view(term_t t, bool *neg, const uint64_t **limbs, size_t *n, uint64_t *one)
{
    if (term_is_small(t)) {
        int64_t v = term_small_value(t);
        *neg = v < 0;
        *one = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
        *limbs = one;
        *n = v == 0 ? 0 : 1;
        return;
    }
    box_big *b = (box_big *)term__box(t);
    *neg = (b->h.flags & BOXF_NEG) != 0;
    *limbs = b->limbs;
    *n = b->h.n;
}

static int cmp_mag(const uint64_t *a, size_t na, const uint64_t *b, size_t nb)
{
    if (na != nb) return na < nb ? -1 : 1;
    while (na > 0) {
        na--;
        if (a[na] != b[na]) return a[na] < b[na] ? -1 : 1;
    }
    return 0;
}

int term__cmp_int_int(term_t a, term_t b)
{
    if (term_is_small(a) && term_is_small(b)) {
        int64_t x = term_small_value(a), y = term_small_value(b);
        return (x > y) - (x < y);
    }
    bool na, nb;
    const uint64_t *la, *lb;
    size_t ca, cb;
    uint64_t oa, ob;
    int_view(a, &na, &la, &ca, &oa);
    int_view(b, &nb, &lb, &cb, &ob);
    if (na != nb) return na ? -1 : 1;
    int c = cmp_mag(la, ca, lb, cb);
    return na ? -c : c;
}

/*
** Exact comparison of an integer with a finite double: the double's integer part is
** compared as a bignum, and a non-zero fraction breaks ties. Matches Erlang, whose
** comparisons of integers and floats are exact.
*/
int term__cmp_int_float(term_t a, double d)
{
    if (term_is_small(a)) {
        int64_t v = term_small_value(a);
        /* |v| < 2^61: a double at or past 2^62 is beyond it, and any double inside that
        ** range has a floor that converts to int64 exactly (no UB in the cast). */
        if (d >= 0x1p62) return -1;
        if (d <= -0x1p62) return 1;
        double fl = floor(d);
        int64_t iv = (int64_t)fl;
        if (v < iv) return -1;
        if (v > iv) return 1;
        return fl == d ? 0 : -1;
    }
    bool neg;
    const uint64_t *limbs;
    size_t n;
    uint64_t one;
    int_view(a, &neg, &limbs, &n, &one);
    if ((d < 0) != neg) return neg ? -1 : 1; /* bignums are never 0 */
    double m = fabs(d);
    int exp;
    frexp(m, &exp); /* m = f * 2^exp, 0.5 <= f < 1 */
    size_t bits = (n - 1) * 64 + (64 - (size_t)__builtin_clzll(limbs[n - 1]));
    int c;
    if (exp <= 0 || (size_t)exp < bits) {
        c = 1; /* |a| has more bits than |d|'s integer part */
    } else if ((size_t)exp > bits) {
        c = -1;
    } else {
        /* Same bit length: build |d|'s integer part as limbs and compare. */
        double ip = floor(m);
        size_t nl = (size_t)(exp + 63) / 64;
        uint64_t tmp[20];
        if (nl > 20) return 1; /* doubles have at most 1024 bits */
        memset(tmp, 0, sizeof tmp);
        /* ip = mant * 2^shift with a 53-bit mantissa */
        int e2;
        double f = frexp(ip, &e2);
        uint64_t mant = (uint64_t)ldexp(f, 53);
        int shift = e2 - 53;
        if (shift >= 0) {
            size_t w = (size_t)shift / 64, s = (size_t)shift % 64;
            tmp[w] |= mant << s;
            if (s && w + 1 < 20) tmp[w + 1] |= mant >> (64 - s);
        } else {
            tmp[0] = mant >> (-shift);
        }
        size_t tn = nl;
        while (tn > 0 && tmp[tn - 1] == 0) tn--;
        c = cmp_mag(limbs, n, tmp, tn);
        if (c == 0 && ip != m) c = -1;
    }
    return neg ? -c : c;
}

/* Divides the magnitude in place by d, returning the remainder. */
static uint64_t divmod_small(uint64_t *limbs, size_t *n, uint64_t d)
{
    unsigned __int128 rem = 0;
    for (size_t i = *n; i-- > 0;) {
        unsigned __int128 cur = (rem << 64) | limbs[i];
        limbs[i] = (uint64_t)(cur / d);
        rem = cur % d;
    }
    while (*n > 0 && limbs[*n - 1] == 0) (*n)--;
    return (uint64_t)rem;
}

static const char digit_chars[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

int term__int_to_text(term_t t, unsigned base, etf_buf *out)
{
    if (base < 2 || base > 36 || !term_is_int(t)) return TERM_EINVAL;
    bool neg;
    const uint64_t *limbs;
    size_t n;
    uint64_t one;
    int_view(t, &neg, &limbs, &n, &one);
    if (n == 0) return term__buf_put(out, "0", 1);
    /* Digits come out least significant first in chunks of as many as fit a limb. */
    uint64_t chunk = base;
    unsigned per = 1;
    while (chunk <= UINT64_MAX / base / base) {
        chunk *= base;
        per++;
    }
    uint64_t *work = term__alloc(n * sizeof(uint64_t));
    size_t maxd = n * 64 + 2;
    char *digits = term__alloc(maxd);
    if (!work || !digits) {
        term__dealloc(work, n * sizeof(uint64_t));
        term__dealloc(digits, maxd);
        return TERM_ENOMEM;
    }
    memcpy(work, limbs, n * sizeof(uint64_t));
    size_t wn = n, nd = 0;
    while (wn > 0) {
        uint64_t r = divmod_small(work, &wn, chunk);
        for (unsigned i = 0; i < per && (wn > 0 || r > 0); i++) {
            digits[nd++] = digit_chars[r % base];
            r /= base;
        }
    }
    int rc = etf_buf_reserve(out, nd + 1);
    if (rc == 0) {
        if (neg) out->data[out->len++] = '-';
        while (nd > 0) out->data[out->len++] = (uint8_t)digits[--nd];
    }
    term__dealloc(work, n * sizeof(uint64_t));
    term__dealloc(digits, maxd);
    return rc;
}

static int digit_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'z') return c - 'a' + 10;
    if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
    return 99;
}

/* Longest digit string accepted: conversion is quadratic, so a hostile literal is refused. */
#define MAX_TEXT_DIGITS 200000

term_t term__int_from_text(bool neg, const char *digits, size_t len, unsigned base)
{
    if (base < 2 || base > 36 || len == 0 || len > MAX_TEXT_DIGITS) return TERM_NONE;
    size_t cap = len * 6 / 64 + 2; /* log2(36) < 6 bits per digit */
    uint64_t *limbs = term__alloc(cap * sizeof(uint64_t));
    if (!limbs) return TERM_NONE;
    size_t n = 0, i = 0;
    while (i < len) {
        /* Gather as many digits as fit one limb, then limbs = limbs * base^k + acc. */
        uint64_t acc = 0, mul = 1;
        while (i < len && mul <= UINT64_MAX / base / base) {
            int dv = digit_value(digits[i]);
            if (dv >= (int)base) {
                term__dealloc(limbs, cap * sizeof(uint64_t));
                return TERM_NONE;
            }
            acc = acc * base + (unsigned)dv;
            mul *= base;
            i++;
        }
        unsigned __int128 carry = acc;
        for (size_t j = 0; j < n; j++) {
            unsigned __int128 cur = (unsigned __int128)limbs[j] * mul + carry;
            limbs[j] = (uint64_t)cur;
            carry = cur >> 64;
        }
        if (carry) limbs[n++] = (uint64_t)carry;
    }
    term_t t = term__int_from_limbs(neg, limbs, n);
    term__dealloc(limbs, cap * sizeof(uint64_t));
    return t;
}
