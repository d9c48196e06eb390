/* Private interface of the term text: printer (text_print.c), parser (text_parse.c), patterns. */
#ifndef GIRDER_TEXT_INT_H
#define GIRDER_TEXT_INT_H

#include "term_int.h"

#include <string.h>

/* Nesting limits: terms are parsed with explicit stacks, so the term limit only bounds
** memory; patterns are matched recursively over their nesting, so theirs is small. */
#define TERM__TEXT_MAX_DEPTH    (1u << 20)
#define TERM__PATTERN_MAX_DEPTH 100
#define TERM__PATTERN_MAX_VARS  256

/*
** The parser builds values through these calls when it parses a pattern. A value is a node
** index of the pattern under construction. Each returns 0 or a TERM_E code and then sets
** *what to a short message. term__pat_literal() gives the literal term a node stands for
** (borrowed) or TERM_NONE when the node contains variables.
*/
typedef struct term_pattern term_pattern;
int term__pat_lit(term_pattern *b, term_t t, uintptr_t *v, const char **what); /* consumes t */
int term__pat_var(term_pattern *b, const char *name, size_t len, uintptr_t *v, const char **what);
int term__pat_tuple(term_pattern *b, size_t n, const uintptr_t *vals, uintptr_t *v,
                    const char **what);
int term__pat_list(term_pattern *b, size_t n, const uintptr_t *vals, uintptr_t tail, uintptr_t *v,
                   const char **what);
/* tail UINTPTR_MAX means []. kv holds n key/value pairs interleaved; keys are literal nodes. */
int term__pat_map(term_pattern *b, size_t n, const uintptr_t *kv, uintptr_t *v, const char **what);
term_t term__pat_literal(const term_pattern *b, uintptr_t v);

/* Parses text as a term (pat NULL: *out is a term reference) or as a pattern (*out is the
** root node of pat). Returns 0 or a TERM_E code with *err filled in. */
int term__text_parse(const char *text, size_t len, const term_text_ctx *ctx, term_pattern *pat,
                     uintptr_t *out, term_parse_error *err);

/* ================================================================ UTF-8 and character classes
** Shared by the printer and the parser. */

/* Decodes the code point at s[*i] of valid UTF-8 and advances *i. */
static inline uint32_t utf8_next(const uint8_t *s, size_t *i)
{
    uint8_t c = s[*i];
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    size_t n = (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : 3;
    uint32_t cp = c & (0x3F >> n);
    for (size_t k = 1; k <= n; k++) cp = (cp << 6) | (s[*i + k] & 0x3F);
    *i += n + 1;
    return cp;
}

/* Encodes a valid code point; returns the number of bytes (1..4). */
static inline size_t utf8_put(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Erlang's character classes for unquoted atoms and variables (latin-1 letters included). */
static inline bool is_lower(uint32_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 0xDF && c <= 0xFF && c != 0xF7);
}
static inline bool is_upper(uint32_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7);
}
static inline bool is_digit(uint32_t c)
{
    return c >= '0' && c <= '9';
}
static inline bool is_name_char(uint32_t c)
{
    return is_lower(c) || is_upper(c) || is_digit(c) || c == '_' || c == '@';
}

/* Erlang's reserved words, which an unquoted atom cannot be. */
static inline bool is_reserved(const char *s, size_t len)
{
    static const char *const reserved[] = {
        "after", "and",  "andalso", "band",   "begin",   "bnot", "bor", "bsl",  "bsr",
        "bxor",  "case", "catch",   "cond",   "div",     "end",  "fun", "if",   "let",
        "not",   "of",   "or",      "orelse", "receive", "rem",  "try", "when", "xor"};
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
        if (strlen(reserved[i]) == len && memcmp(reserved[i], s, len) == 0) return true;
    return false;
}

#endif
