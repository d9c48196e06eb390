/* libFuzzer target for the term text parser and pattern compiler: round trip through the printer.
 */
#include <girder/term.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static term_text_ctx ctx;

/* Any accepted text must print in every mode and read back as an equal term; patterns must
** compile or fail cleanly and, when the text is also a term, match it. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ctx.node == TERM_NONE) {
        term_init();
        ctx.node = term_atom("fuzz@host");
        ctx.creation = 7;
    }
    term_parse_error err;
    term_t t = term_parse((const char *)data, size, &ctx, &err);
    if (t == TERM_NONE) {
        if (err.code >= 0 || err.offset > size) abort();
    } else {
        static const unsigned modes[] = {TERM_PRINT_W, TERM_PRINT_P, TERM_PRINT_EXPLICIT,
                                         TERM_PRINT_P | TERM_PRINT_EXPLICIT};
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
        for (size_t i = 0; i < n; i++)
            if (term_pattern_var_name(p, i) == NULL) abort();
        term_pattern_free(p);
    } else if (err.code >= 0) {
        abort();
    }
    term_free(t);
    return 0;
}
