/* libFuzzer target for the term text parser and pattern compiler: round trip through the printer.
 */
#include <girder/term.h>
#include "../term_codec/src/term_int.h" /* term__etf_decode_all_foreign */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static term_text_ctx ctx;

static const unsigned modes[] = {TERM_PRINT_W, TERM_PRINT_P, TERM_PRINT_EXPLICIT,
                                 TERM_PRINT_P | TERM_PRINT_EXPLICIT};

/* The foreign twin of t (every atom foreign, through ETF): the same term, the same text in
** every mode, the same bytes. A reference. */
static term_t foreign_twin(term_t t)
{
    etf_buf b = {0};
    if (etf_encode(t, 0, &b) != 0) abort(); /* every parsed term has one */
    etf_decode_stats st;
    etf_decode_opts o = {.stats = &st};
    term_t f = term__etf_decode_all_foreign(b.data, b.len, &o, NULL);
    if (f == TERM_NONE || !term_equal(t, f) || term_compare(f, t) != 0 ||
        term_hash(t) != term_hash(f))
        abort();
    etf_buf c = {0};
    if (etf_encode(f, 0, &c) != 0 || c.len != b.len || memcmp(c.data, b.data, b.len) != 0) abort();
    etf_buf_free(&c);
    etf_buf_free(&b);
    for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
        etf_buf x = {0}, y = {0};
        if (term_print(t, modes[m], &ctx, &x) || term_print(f, modes[m], &ctx, &y)) abort();
        if (x.len != y.len || memcmp(x.data, y.data, x.len) != 0) {
            fprintf(stderr, "twin prints differently: %.*s\n", (int)(y.len > 2000 ? 2000 : y.len),
                    (const char *)y.data);
            abort();
        }
        etf_buf_free(&x);
        etf_buf_free(&y);
    }
    return f;
}

/* Any accepted text must print in every mode and read back as an equal term; patterns must
** compile or fail cleanly and, when the text is also a term, match it. With the low bit of the
** first byte set, the term's foreign twin (every atom foreign) is checked as well: same term,
** text and bytes, and matched by the pattern. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ctx.node == TERM_NONE) {
        term_init();
        ctx.node = term_atom("fuzz@host");
        ctx.creation = 7;
    }
    bool foreign = size > 0 && (data[0] & 1);
    term_parse_error err;
    term_t t = term_parse((const char *)data, size, &ctx, &err);
    term_t twin = TERM_NONE;
    if (t == TERM_NONE) {
        if (err.code >= 0 || err.offset > size) abort();
    } else {
        if (foreign) twin = foreign_twin(t);
        for (size_t m = 0; m < sizeof modes / sizeof *modes; m++) {
            etf_buf b = {0};
            if (term_print(t, modes[m], &ctx, &b) != 0) abort();
            term_parse_error e2;
            term_t u = term_parse((const char *)b.data, b.len, &ctx, &e2);
            if (u == TERM_NONE) {
                fprintf(stderr, "printed text does not parse: %s at %zu: %s\n%.*s\n",
                        term_err_name(e2.code), e2.offset, e2.what,
                        (int)(b.len > 2000 ? 2000 : b.len), (const char *)b.data);
                abort();
            }
            if (!term_equal(t, u)) {
                fprintf(stderr, "round trip differs: %.*s\n", (int)(b.len > 2000 ? 2000 : b.len),
                        (const char *)b.data);
                abort();
            }
            term_free(u);
            etf_buf_free(&b);
        }
    }
    term_pattern *p = term_pattern_compile((const char *)data, size, &ctx, &err);
    if (p) {
        size_t n = term_pattern_nvars(p);
        term_t vars[256];
        for (size_t i = 0; i < n; i++) vars[i] = TERM_NONE;
        if (t != TERM_NONE && !term_match(p, t, vars)) abort(); /* a literal matches itself */
        for (size_t i = 0; i < n; i++) vars[i] = TERM_NONE;
        if (twin != TERM_NONE && !term_match(p, twin, vars)) abort(); /* and its twin */
        for (size_t i = 0; i < n; i++)
            if (term_pattern_var_name(p, i) == NULL) abort();
        term_pattern_free(p);
    } else if (err.code >= 0) {
        abort();
    }
    term_free(twin);
    term_free(t);
    return 0;
}
