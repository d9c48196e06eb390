/* Erlang term text: the printer (the ~w and ~p forms of io:format, and the explicit form). */
#include "text_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

/* ================================================================ printer */

static int put(etf_buf *b, const char *s, size_t n)
{
    return term__buf_put(b, s, n);
}
static int puts_(etf_buf *b, const char *s)
{
    return term__buf_put(b, s, strlen(s));
}

/* One character inside quotes q, escaped as io_lib:write_string_as_latin1 does, except that
** the text is UTF-8 (characters 160..255 are written as themselves, encoded). */
static int put_esc(etf_buf *b, uint32_t c, char q)
{
    char t[16];
    size_t n = 0;
    if (c == (uint32_t)q || c == '\\') {
        t[n++] = '\\', t[n++] = (char)c;
    } else if (c >= 32 && c <= 126) {
        t[n++] = (char)c;
    } else if (c >= 160 && c <= 255) {
        n = utf8_put(c, t);
    } else if (c > 255) {
        n = (size_t)snprintf(t, sizeof t, "\\x{%X}", c);
    } else {
        const char *e = NULL;
        switch (c) {
        case '\n':
            e = "\\n";
            break;
        case '\r':
            e = "\\r";
            break;
        case '\t':
            e = "\\t";
            break;
        case '\v':
            e = "\\v";
            break;
        case '\b':
            e = "\\b";
            break;
        case '\f':
            e = "\\f";
            break;
        case 27:
            e = "\\e";
            break;
        case 127:
            e = "\\d";
            break;
        }
        if (e) return puts_(b, e);
        t[n++] = '\\';
        t[n++] = (char)('0' + (c >> 6));
        t[n++] = (char)('0' + ((c >> 3) & 7));
        t[n++] = (char)('0' + (c & 7));
    }
    return put(b, t, n);
}

/* True when the atom name must be quoted (io_lib:quote_atom/2). */
static bool atom_needs_quotes(const char *name, size_t len)
{
    if (len == 0 || is_reserved(name, len)) return true;
    size_t i = 0;
    if (!is_lower(utf8_next((const uint8_t *)name, &i))) return true;
    while (i < len)
        if (!is_name_char(utf8_next((const uint8_t *)name, &i))) return true;
    return false;
}

static int print_atom(etf_buf *b, term_t a)
{
    size_t len;
    const char *name = term_atom_name(a, &len);
    if (!name) return TERM_EINVAL;
    if (!atom_needs_quotes(name, len)) return put(b, name, len);
    int r = put(b, "'", 1);
    for (size_t i = 0; r == 0 && i < len;)
        r = put_esc(b, utf8_next((const uint8_t *)name, &i), '\'');
    return r ? r : put(b, "'", 1);
}

static int print_int(etf_buf *b, term_t t)
{
    if (term_is_small(t)) return term__buf_printf(b, "%lld", (long long)term_small_value(t));
    return term__int_to_text(t, 10, b);
}

/* Adds one unit in the last mantissa digit of printf's %e text, in place; false if the
** mantissa is all nines (that case never yields a shorter candidate). */
static bool bump_last_digit(char *e)
{
    char *x = strchr(e, 'e');
    for (char *q = x - 1; q >= e; q--) {
        if (*q == '.') continue;
        if (*q == '-') return false;
        if (*q < '9') {
            (*q)++;
            return true;
        }
        *q = '0';
    }
    return false;
}

/*
** Shortest text that reads back as d, laid out as Erlang's float_to_list(D, [short]) (the
** ~w form): the shortest round-trip digits, written in fixed notation when |d| < 2^53 and
** that is no longer than the scientific form, else as D.DDDeX.
*/
static int print_float(etf_buf *b, double d)
{
    char e[40], dig[24];
    if (d == 0) return puts_(b, signbit(d) ? "-0.0" : "0.0");
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, d);
        if (strtod(e, NULL) == d) break;
        /* Powers of two have a narrower interval below: the p-digit number just above the
        ** correctly rounded one may still read back as d (Ryu finds it; so must we). */
        if (bump_last_digit(e) && strtod(e, NULL) == d) break;
    }
    /* e is [-]D[.DDD]e[+-]XX */
    const char *s = e;
    bool neg = *s == '-';
    if (neg) s++;
    size_t nd = 0;
    for (; *s != 'e'; s++)
        if (*s != '.') dig[nd++] = *s;
    int ex = atoi(s + 1);
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    dig[nd] = 0;

    char sci[48], fix[400];
    int ns =
        snprintf(sci, sizeof sci, "%s%c.%se%d", neg ? "-" : "", dig[0], nd > 1 ? dig + 1 : "0", ex);
    int nf = -1;
    if (fabs(d) < 9007199254740992.0) {
        size_t k = 0;
        if (neg) fix[k++] = '-';
        if (ex >= 0) {
            for (int i = 0; i <= ex; i++) fix[k++] = (size_t)i < nd ? dig[i] : '0';
            fix[k++] = '.';
            if ((size_t)ex + 1 < nd)
                for (size_t i = (size_t)ex + 1; i < nd; i++) fix[k++] = dig[i];
            else
                fix[k++] = '0';
        } else {
            fix[k++] = '0', fix[k++] = '.';
            for (int i = 0; i < -ex - 1; i++) fix[k++] = '0';
            for (size_t i = 0; i < nd; i++) fix[k++] = dig[i];
        }
        nf = (int)k;
    }
    if (nf >= 0 && nf <= ns) return put(b, fix, (size_t)nf);
    return put(b, sci, (size_t)ns);
}

static bool printable_latin1(term_t c)
{
    if (!term_is_small(c)) return false;
    int64_t v = term_small_value(c);
    return (v >= 32 && v <= 126) || (v >= 160 && v <= 255) || (v >= 8 && v <= 13) || v == 27;
}

/* io_lib:printable_latin1_list/1 on a non-empty list. */
static bool printable_list(term_t t)
{
    for (; term_is_cons(t); t = term_tl(t))
        if (!printable_latin1(term_hd(t))) return false;
    return term_is_nil(t);
}

static int print_bits(etf_buf *b, term_t t, unsigned flags)
{
    size_t nbits = term_bitstring_bits(t), nbytes = term_binary_size(t);
    const uint8_t *data = term_binary_data(t);
    uint8_t *copy = NULL;
    int r = 0;
    if (!data && nbytes) {
        copy = term__alloc(nbytes);
        if (!copy) return TERM_ENOMEM;
        term_bitstring_copy(t, copy);
        data = copy;
    }
    size_t full = nbits / 8, rem = nbits % 8;
    bool text = (flags & TERM_PRINT_P) && rem == 0 && full > 0;
    for (size_t i = 0; text && i < full; i++)
        text = data[i] >= 8 && printable_latin1(term__make_small(data[i]));
    if (text) {
        r = puts_(b, "<<\"");
        for (size_t i = 0; r == 0 && i < full; i++) r = put_esc(b, data[i], '"');
        if (r == 0) r = puts_(b, "\">>");
    } else {
        r = puts_(b, "<<");
        char chunk[256];
        size_t k = 0;
        for (size_t i = 0; r == 0 && i < full; i++) {
            unsigned v = data[i];
            if (i) chunk[k++] = ',';
            if (v >= 100) chunk[k++] = (char)('0' + v / 100);
            if (v >= 10) chunk[k++] = (char)('0' + v / 10 % 10);
            chunk[k++] = (char)('0' + v % 10);
            if (k > sizeof chunk - 8 || i + 1 == full) r = put(b, chunk, k), k = 0;
        }
        if (r == 0 && rem)
            r = term__buf_printf(b, "%s%u:%u", full ? "," : "", (unsigned)(data[full] >> (8 - rem)),
                                 (unsigned)rem);
        if (r == 0) r = puts_(b, ">>");
    }
    if (copy) term__dealloc(copy, nbytes);
    return r;
}

static bool is_local(const term_text_ctx *ctx, unsigned flags, term_t node, uint32_t creation)
{
    return !(flags & TERM_PRINT_EXPLICIT) && ctx && ctx->node != TERM_NONE &&
           ctx->creation == creation &&
           (ctx->node == node ||
            ((!term_atom_is_interned(node) || !term_atom_is_interned(ctx->node)) &&
             term_equal(ctx->node, node)));
}

/* "0" for the context node, else "node:creation". */
static int print_node(etf_buf *b, const term_text_ctx *ctx, unsigned flags, term_t node,
                      uint32_t creation)
{
    if (is_local(ctx, flags, node, creation)) return put(b, "0", 1);
    int r = print_atom(b, node);
    return r ? r : term__buf_printf(b, ":%u", creation);
}

/* Work items of the printer's explicit stack: three words each (kind, a, b). */
enum { W_TERM, W_STR, W_LIST_TAIL, W_TUPLE, W_MAP, W_FREE };

static int push3(term__stack *s, uintptr_t k, uintptr_t a, uintptr_t b)
{
    int r;
    if ((r = term__stack_push(s, b)) || (r = term__stack_push(s, a)) ||
        (r = term__stack_push(s, k)))
        return r;
    return 0;
}

/* Prints one term: scalars completely, containers by their opening and a continuation. */
static int print_term(etf_buf *b, term_t t, unsigned flags, const term_text_ctx *ctx,
                      term__stack *st)
{
    int r;
    switch (term_typeof(t)) {
    case TERM_T_INT:
        return print_int(b, t);
    case TERM_T_FLOAT:
        return print_float(b, term_float_value(t));
    case TERM_T_ATOM:
        return print_atom(b, t);
    case TERM_T_NIL:
        return puts_(b, "[]");
    case TERM_T_BITSTRING:
        return print_bits(b, t, flags);
    case TERM_T_LIST:
        if ((flags & TERM_PRINT_P) && printable_list(t)) {
            if ((r = put(b, "\"", 1))) return r;
            for (; term_is_cons(t); t = term_tl(t))
                if ((r = put_esc(b, (uint32_t)term_small_value(term_hd(t)), '"'))) return r;
            return put(b, "\"", 1);
        }
        if ((r = put(b, "[", 1))) return r;
        if ((r = push3(st, W_LIST_TAIL, term_tl(t), 0))) return r;
        return push3(st, W_TERM, term_hd(t), 0);
    case TERM_T_TUPLE:
        if ((r = put(b, "{", 1))) return r;
        return push3(st, W_TUPLE, t, 0);
    case TERM_T_MAP:
        if ((r = put(b, "#{", 2))) return r;
        return push3(st, W_MAP, t, 0);
    case TERM_T_PID: {
        term_pid_info pi;
        if ((r = term_pid_get(t, &pi))) return r;
        if ((r = put(b, "<", 1)) || (r = print_node(b, ctx, flags, pi.node, pi.creation))) return r;
        return term__buf_printf(b, ".%u.%u>", pi.id, pi.serial);
    }
    case TERM_T_PORT: {
        term_port_info pi;
        if ((r = term_port_get(t, &pi))) return r;
        if ((r = puts_(b, "#Port<")) || (r = print_node(b, ctx, flags, pi.node, pi.creation)))
            return r;
        return term__buf_printf(b, ".%llu>", (unsigned long long)pi.id);
    }
    case TERM_T_REF: {
        term_ref_info ri;
        if ((r = term_ref_get(t, &ri))) return r;
        if ((r = puts_(b, "#Ref<")) || (r = print_node(b, ctx, flags, ri.node, ri.creation)))
            return r;
        for (size_t i = ri.nwords; i-- > 0;)
            if ((r = term__buf_printf(b, ".%u", ri.words[i]))) return r;
        return put(b, ">", 1);
    }
    case TERM_T_FUN: {
        term_fun_info fi;
        if ((r = term_fun_get(t, &fi))) return r;
        if (fi.is_export) {
            if ((r = puts_(b, "fun ")) || (r = print_atom(b, fi.module)) || (r = put(b, ":", 1)) ||
                (r = print_atom(b, fi.function)))
                return r;
            return term__buf_printf(b, "/%u", fi.arity);
        }
        if ((r = puts_(b, fi.old_form ? "#OldFun<" : "#Fun<")) || (r = print_atom(b, fi.module)) ||
            (r = term__buf_printf(b, ".%u.", fi.index)))
            return r;
        for (int i = 0; i < 16; i++)
            if ((r = term__buf_printf(b, "%02x", fi.uniq[i]))) return r;
        if ((r = put(b, ".", 1)) || (r = print_int(b, fi.old_index)) || (r = put(b, ".", 1)) ||
            (r = print_int(b, fi.old_uniq)) || (r = term__buf_printf(b, ".%u.", fi.arity)))
            return r;
        if ((r = push3(st, W_STR, (uintptr_t) ">", 0)) || (r = push3(st, W_FREE, t, 0)) ||
            (r = push3(st, W_STR, (uintptr_t) ".[", 0)))
            return r;
        return push3(st, W_TERM, fi.pid, 0);
    }
    default:
        return TERM_EINVAL;
    }
}

/* Appends the text of t to out (see term.h). Iterative: deep terms use heap, not C stack. */
int term_print(term_t t, unsigned flags, const term_text_ctx *ctx, etf_buf *out)
{
    term__stack st;
    term__stack_init(&st);
    int r = push3(&st, W_TERM, t, 0);
    while (r == 0 && st.n > 0) {
        uintptr_t k = st.v[--st.n], a = st.v[--st.n], i = st.v[--st.n];
        switch (k) {
        case W_TERM:
            r = print_term(out, a, flags, ctx, &st);
            break;
        case W_STR:
            r = puts_(out, (const char *)a);
            break;
        case W_LIST_TAIL:
            if (term_is_cons(a)) {
                if (!(r = put(out, ",", 1)) && !(r = push3(&st, W_LIST_TAIL, term_tl(a), 0)))
                    r = push3(&st, W_TERM, term_hd(a), 0);
            } else if (term_is_nil(a)) {
                r = put(out, "]", 1);
            } else if (!(r = put(out, "|", 1)) && !(r = push3(&st, W_STR, (uintptr_t) "]", 0))) {
                r = push3(&st, W_TERM, a, 0);
            }
            break;
        case W_TUPLE:
            if (i == term_tuple_arity(a)) {
                r = put(out, "}", 1);
            } else if (!(r = i ? put(out, ",", 1) : 0) && !(r = push3(&st, W_TUPLE, a, i + 1))) {
                r = push3(&st, W_TERM, term_tuple_elem(a, i), 0);
            }
            break;
        case W_MAP:
            if (i == term_map_size(a)) {
                r = put(out, "}", 1);
            } else if (!(r = i ? put(out, ",", 1) : 0) && !(r = push3(&st, W_MAP, a, i + 1)) &&
                       !(r = push3(&st, W_TERM, term_map_value(a, i), 0)) &&
                       !(r = push3(&st, W_STR, (uintptr_t) " => ", 0))) {
                r = push3(&st, W_TERM, term_map_key(a, i), 0);
            }
            break;
        case W_FREE: {
            term_fun_info fi;
            if ((r = term_fun_get(a, &fi))) break;
            if (i == fi.nfree) {
                r = put(out, "]", 1);
            } else if (!(r = i ? put(out, ",", 1) : 0) && !(r = push3(&st, W_FREE, a, i + 1))) {
                r = push3(&st, W_TERM, fi.free[i], 0);
            }
            break;
        }
        }
    }
    term__stack_free(&st);
    if (r == 0 && (r = etf_buf_reserve(out, 1)) == 0) out->data[out->len] = 0;
    return r;
}

char *term_to_string(term_t t, unsigned flags)
{
    etf_buf b = {0};
    if (term_print(t, flags, NULL, &b) != 0) {
        etf_buf_free(&b);
        return NULL;
    }
    char *s = malloc(b.len + 1);
    if (s) memcpy(s, b.data, b.len + 1);
    etf_buf_free(&b);
    return s;
}
