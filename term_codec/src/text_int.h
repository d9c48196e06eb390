/* Private interface between the text parser (text.c) and the pattern compiler (pattern.c). */
#ifndef GIRDER_TEXT_INT_H
#define GIRDER_TEXT_INT_H

#include "term_int.h"

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

#endif
