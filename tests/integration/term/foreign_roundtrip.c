/* Round trip of Erlang-made terms with every new atom foreign, for term_roundtrip.erl to check. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <girder/term.h>

/*
** Usage: term-foreign-roundtrip DIR COUNT
** For I in 1..COUNT, DIR/I.etf and DIR/I.z.etf (made by real Erlang) are decoded with
** foreign_atoms and a budget of 0, so every atom not already interned is foreign, and encoded
** again into DIR/I.f.out and DIR/I.fz.out (Erlang checks those bytes). Then, with the foreign
** terms still alive, each file is decoded again the ordinary way, which interns its atoms, and
** the two must be the same term: =:=, order, hash, ~p text and ETF bytes. Exits 1 on any
** difference, or if the terms held no foreign atom at all (the test would prove nothing).
*/

static int read_file(const char *path, uint8_t **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    for (size_t k; b && (k = fread(b + n, 1, cap - n, f)) > 0;) {
        n += k;
        if (n == cap) {
            uint8_t *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    int bad = ferror(f) || !b;
    fclose(f);
    if (bad) {
        free(b);
        return -1;
    }
    *data = b;
    *len = n;
    return 0;
}

static int write_file(const char *path, const etf_buf *b)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t k = fwrite(b->data, 1, b->len, f);
    return fclose(f) != 0 || k != b->len ? -1 : 0;
}

/* Decodes DIR/I<ext> with every new atom foreign, writes its encoding to DIR/I<out>. */
static term_t foreign_pass(const char *dir, long i, const char *ext, const char *out,
                           size_t *nforeign)
{
    char path[4096];
    uint8_t *data;
    size_t len;
    snprintf(path, sizeof path, "%s/%ld%s", dir, i, ext);
    if (read_file(path, &data, &len) != 0) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return TERM_NONE;
    }
    etf_decode_stats st;
    etf_decode_opts o = {.foreign_atoms = true, .max_new_atoms = 0, .stats = &st};
    etf_error e;
    term_t t = etf_decode(data, len, &o, NULL, &e);
    free(data);
    if (t == TERM_NONE) {
        fprintf(stderr, "%s: %s at byte %zu\n", path, term_err_name(e.code), e.offset);
        return TERM_NONE;
    }
    *nforeign += st.foreign;
    etf_buf b = {0};
    snprintf(path, sizeof path, "%s/%ld%s", dir, i, out);
    if (etf_encode(t, 0, &b) != 0 || write_file(path, &b) != 0) {
        fprintf(stderr, "%s: cannot encode or write\n", path);
        term_free(t);
        t = TERM_NONE;
    }
    etf_buf_free(&b);
    return t;
}

static bool same_bytes(const etf_buf *a, const etf_buf *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* The foreign term f and the interned decode of DIR/I.etf are the same term every way. */
static bool same_as_interned(const char *dir, long i, term_t f)
{
    char path[4096];
    uint8_t *data;
    size_t len;
    snprintf(path, sizeof path, "%s/%ld.etf", dir, i);
    if (read_file(path, &data, &len) != 0) return false;
    term_t t = etf_decode(data, len, NULL, NULL, NULL);
    free(data);
    if (t == TERM_NONE) return false;
    bool ok = term_equal(f, t) && term_compare(f, t) == 0 && term_compare(t, f) == 0 &&
              term_hash(f) == term_hash(t);
    etf_buf x = {0}, y = {0};
    ok = ok && term_print(f, TERM_PRINT_P, NULL, &x) == 0 &&
         term_print(t, TERM_PRINT_P, NULL, &y) == 0 && same_bytes(&x, &y);
    etf_buf_free(&x);
    etf_buf_free(&y);
    ok = ok && etf_encode(f, ETF_ENC_UTF8_ATOMS, &x) == 0 &&
         etf_encode(t, ETF_ENC_UTF8_ATOMS, &y) == 0 && same_bytes(&x, &y);
    etf_buf_free(&x);
    etf_buf_free(&y);
    term_free(t);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s DIR COUNT\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    long n = strtol(argv[2], NULL, 10);
    if (n <= 0) return 2;
    term_t *kept = calloc((size_t)n + 1, sizeof *kept);
    if (!kept) return 1;
    size_t nforeign = 0, before = term_atom_count();
    int failed = 0;
    for (long i = 1; i <= n; i++) {
        kept[i] = foreign_pass(dir, i, ".etf", ".f.out", &nforeign);
        term_t z = foreign_pass(dir, i, ".z.etf", ".fz.out", &nforeign);
        failed += kept[i] == TERM_NONE || z == TERM_NONE;
        term_free(z);
    }
    if (term_atom_count() != before) {
        fprintf(stderr, "the foreign pass interned %zu atoms\n", term_atom_count() - before);
        failed++;
    }
    for (long i = 1; i <= n; i++) {
        if (kept[i] != TERM_NONE && !same_as_interned(dir, i, kept[i])) {
            fprintf(stderr, "term %ld: foreign and interned decodes differ\n", i);
            failed++;
        }
        term_free(kept[i]);
    }
    free(kept);
    printf("%ld terms, %zu foreign atoms made, %d failures\n", n, nforeign, failed);
    if (nforeign < (size_t)n / 2) {
        fprintf(stderr, "too few foreign atoms for the test to mean anything\n");
        return 1;
    }
    return failed ? 1 : 0;
}
