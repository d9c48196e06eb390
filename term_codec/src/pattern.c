/* Patterns over terms: compiled once from Erlang syntax into a node tree, matched without
 * allocating. */
#include "text_int.h"

#include <string.h>

/*
** A pattern is an array of nodes; containers refer to their children through kids[].
** Sub-patterns without variables are folded into one P_LIT node holding the literal term,
** so they are compared with a single term_equal().
*/
enum { P_LIT, P_ANY, P_VAR, P_TUPLE, P_CONS, P_MAP };

typedef struct pnode {
    uint8_t op;
    uint32_t n;    /* tuple arity, map size, variable slot */
    uint32_t kids; /* tuple: n children; cons: head, tail; map: n value children */
    uint32_t keys; /* map: index of its first key in keys[] */
    term_t lit;    /* P_LIT: the literal (owned) */
} pnode;

struct term_pattern {
    pnode *nodes;
    size_t nnodes, capnodes;
    uint32_t *kids;
    size_t nkids, capkids;
    term_t *keys; /* owned */
    size_t nkeys, capkeys;
    char *names; /* NUL-terminated variable names, back to back */
    size_t nameslen, namescap;
    uint32_t *nameoff;
    size_t nvars, capvars;
    uint32_t root;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    while (nc < need) nc *= 2;
    void *q = term__realloc(*p, *cap * elem, nc * elem);
    if (!q) return TERM_ENOMEM;
    *p = q;
    *cap = nc;
    return 0;
}

static int new_node(term_pattern *b, pnode nd, uintptr_t *v)
{
    if (grow((void **)&b->nodes, &b->capnodes, b->nnodes + 1, sizeof *b->nodes)) {
        if (nd.op == P_LIT) term_free(nd.lit);
        return TERM_ENOMEM;
    }
    b->nodes[b->nnodes] = nd;
    *v = b->nnodes++;
    return 0;
}

int term__pat_lit(term_pattern *b, term_t t, uintptr_t *v, const char **what)
{
    *what = "out of memory";
    return new_node(b, (pnode){.op = P_LIT, .lit = t}, v);
}

term_t term__pat_literal(const term_pattern *b, uintptr_t v)
{
    return b->nodes[v].op == P_LIT ? b->nodes[v].lit : TERM_NONE;
}

int term__pat_var(term_pattern *b, const char *name, size_t len, uintptr_t *v, const char **what)
{
    *what = "out of memory";
    if (len == 1 && name[0] == '_') return new_node(b, (pnode){.op = P_ANY}, v);
    size_t slot;
    for (slot = 0; slot < b->nvars; slot++) {
        const char *s = b->names + b->nameoff[slot];
        if (strlen(s) == len && memcmp(s, name, len) == 0) break;
    }
    if (slot == b->nvars) {
        if (slot == TERM__PATTERN_MAX_VARS) {
            *what = "too many variables in the pattern (at most 256)";
            return TERM_ERANGE;
        }
        if (grow((void **)&b->names, &b->namescap, b->nameslen + len + 1, 1) ||
            grow((void **)&b->nameoff, &b->capvars, b->nvars + 1, sizeof *b->nameoff))
            return TERM_ENOMEM;
        memcpy(b->names + b->nameslen, name, len);
        b->names[b->nameslen + len] = 0;
        b->nameoff[b->nvars++] = (uint32_t)b->nameslen;
        b->nameslen += len + 1;
    }
    return new_node(b, (pnode){.op = P_VAR, .n = (uint32_t)slot}, v);
}

static int add_kids(term_pattern *b, size_t n, const uintptr_t *vals, size_t stride, uint32_t *at)
{
    if (grow((void **)&b->kids, &b->capkids, b->nkids + n, sizeof *b->kids)) return TERM_ENOMEM;
    *at = (uint32_t)b->nkids;
    for (size_t i = 0; i < n; i++) b->kids[b->nkids++] = (uint32_t)vals[i * stride];
    return 0;
}

static bool all_lit(const term_pattern *b, size_t n, const uintptr_t *vals, size_t stride)
{
    for (size_t i = 0; i < n; i++)
        if (b->nodes[vals[i * stride]].op != P_LIT) return false;
    return true;
}

/* Literal children are shared (dup'ed) into the folded literal; their nodes stay unused. */
static term_t lit_dup(const term_pattern *b, uintptr_t v)
{
    return term_dup(b->nodes[v].lit);
}

int term__pat_tuple(term_pattern *b, size_t n, const uintptr_t *vals, uintptr_t *v,
                    const char **what)
{
    *what = "out of memory";
    if (all_lit(b, n, vals, 1)) {
        term_t *e = n ? term__alloc(n * sizeof *e) : NULL;
        if (n && !e) return TERM_ENOMEM;
        for (size_t i = 0; i < n; i++) e[i] = lit_dup(b, vals[i]);
        static const term_t none[1] = {TERM_NONE};
        term_t t = term_tuple(n, e ? e : none);
        if (e) term__dealloc(e, n * sizeof *e);
        return t == TERM_NONE ? TERM_ENOMEM : term__pat_lit(b, t, v, what);
    }
    uint32_t at;
    if (add_kids(b, n, vals, 1, &at)) return TERM_ENOMEM;
    return new_node(b, (pnode){.op = P_TUPLE, .n = (uint32_t)n, .kids = at}, v);
}

int term__pat_list(term_pattern *b, size_t n, const uintptr_t *vals, uintptr_t tail, uintptr_t *v,
                   const char **what)
{
    *what = "out of memory";
    uintptr_t cur = tail;
    if (cur == UINTPTR_MAX) {
        int r = term__pat_lit(b, TERM_NIL, &cur, what);
        if (r) return r;
    }
    /* Build from the end: each element conses onto what follows it. */
    for (size_t i = n; i-- > 0;) {
        uintptr_t pair[2] = {vals[i], cur};
        int r;
        if (all_lit(b, 2, pair, 1)) {
            term_t t = term_cons(lit_dup(b, pair[0]), lit_dup(b, pair[1]));
            if (t == TERM_NONE) return TERM_ENOMEM;
            r = term__pat_lit(b, t, &cur, what);
        } else {
            uint32_t at;
            r = add_kids(b, 2, pair, 1, &at);
            if (r == 0) r = new_node(b, (pnode){.op = P_CONS, .kids = at}, &cur);
        }
        if (r) return r;
    }
    *v = cur;
    return 0;
}

int term__pat_map(term_pattern *b, size_t n, const uintptr_t *kv, uintptr_t *v, const char **what)
{
    *what = "out of memory";
    if (grow((void **)&b->keys, &b->capkeys, b->nkeys + n, sizeof *b->keys)) return TERM_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++)
            if (term_equal(b->nodes[kv[2 * j]].lit, b->nodes[kv[2 * i]].lit)) {
                *what = "duplicate key in a map pattern";
                return TERM_EDUPKEY;
            }
    }
    uint32_t at, k0 = (uint32_t)b->nkeys;
    if (add_kids(b, n, n ? kv + 1 : kv, 2, &at)) return TERM_ENOMEM;
    for (size_t i = 0; i < n; i++) b->keys[b->nkeys++] = lit_dup(b, kv[2 * i]);
    return new_node(b, (pnode){.op = P_MAP, .n = (uint32_t)n, .kids = at, .keys = k0}, v);
}

void term_pattern_free(term_pattern *p)
{
    if (!p) return;
    for (size_t i = 0; i < p->nnodes; i++)
        if (p->nodes[i].op == P_LIT) term_free(p->nodes[i].lit);
    for (size_t i = 0; i < p->nkeys; i++) term_free(p->keys[i]);
    term__dealloc(p->nodes, p->capnodes * sizeof *p->nodes);
    term__dealloc(p->kids, p->capkids * sizeof *p->kids);
    term__dealloc(p->keys, p->capkeys * sizeof *p->keys);
    term__dealloc(p->names, p->namescap);
    term__dealloc(p->nameoff, p->capvars * sizeof *p->nameoff);
    term__dealloc(p, sizeof *p);
}

/* Parses text as a pattern (see term.h). NULL with *err filled on failure. */
term_pattern *term_pattern_compile(const char *text, size_t len, const term_text_ctx *ctx,
                                   term_parse_error *err)
{
    term_pattern *p = term__alloc(sizeof *p);
    if (!p) {
        if (err) *err = (term_parse_error){.code = TERM_ENOMEM, .what = "out of memory"};
        return NULL;
    }
    memset(p, 0, sizeof *p);
    uintptr_t root;
    if (term__text_parse(text, len, ctx, p, &root, err)) {
        term_pattern_free(p);
        return NULL;
    }
    p->root = (uint32_t)root;
    return p;
}

size_t term_pattern_nvars(const term_pattern *p)
{
    return p->nvars;
}

int term_pattern_var(const term_pattern *p, const char *name)
{
    for (size_t i = 0; i < p->nvars; i++)
        if (strcmp(p->names + p->nameoff[i], name) == 0) return (int)i;
    return -1;
}

const char *term_pattern_var_name(const term_pattern *p, size_t slot)
{
    return slot < p->nvars ? p->names + p->nameoff[slot] : NULL;
}

/*
** Matches node ni against t. Recurses only into non-last tuple elements, list heads and map
** values, so the C stack depth is bounded by the pattern's nesting (at most 100).
** Slots bound here are recorded in bound[] so that term_match() can undo them.
*/
static bool match(const term_pattern *p, uint32_t ni, term_t t, term_t *vars, uint64_t *bound)
{
    for (;;) {
        const pnode *nd = &p->nodes[ni];
        switch (nd->op) {
        case P_ANY:
            return true;
        case P_LIT:
            return term_equal(nd->lit, t);
        case P_VAR:
            if (vars[nd->n] == TERM_NONE) {
                vars[nd->n] = t;
                bound[nd->n / 64] |= UINT64_C(1) << (nd->n % 64);
                return true;
            }
            return term_equal(vars[nd->n], t);
        case P_TUPLE:
            if (!term_is_tuple(t) || term_tuple_arity(t) != nd->n) return false;
            if (nd->n == 0) return true;
            for (uint32_t i = 0; i + 1 < nd->n; i++)
                if (!match(p, p->kids[nd->kids + i], term_tuple_elem(t, i), vars, bound))
                    return false;
            t = term_tuple_elem(t, nd->n - 1);
            ni = p->kids[nd->kids + nd->n - 1];
            continue;
        case P_CONS:
            if (!term_is_cons(t) || !match(p, p->kids[nd->kids], term_hd(t), vars, bound))
                return false;
            t = term_tl(t);
            ni = p->kids[nd->kids + 1];
            continue;
        case P_MAP:
            if (!term_is_map(t)) return false;
            for (uint32_t i = 0; i < nd->n; i++) {
                term_t v = term_map_get(t, p->keys[nd->keys + i]);
                if (v == TERM_NONE || !match(p, p->kids[nd->kids + i], v, vars, bound))
                    return false;
            }
            return true;
        default:
            return false;
        }
    }
}

bool term_match(const term_pattern *p, term_t t, term_t *vars)
{
    uint64_t bound[TERM__PATTERN_MAX_VARS / 64] = {0};
    if (match(p, p->root, t, vars, bound)) return true;
    for (size_t w = 0; w < TERM__PATTERN_MAX_VARS / 64; w++)
        for (uint64_t m = bound[w]; m; m &= m - 1)
            vars[w * 64 + (size_t)__builtin_ctzll(m)] = TERM_NONE;
    return false;
}
