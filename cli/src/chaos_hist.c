/* girder chaos: reading a history (JSON lines) into events, interned strings, pointer maps. */
#include "chaos.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- interning */

typedef struct chaos_strtab {
    char **s;
    size_t n, cap;
} chaos_strtab;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    return h;
}

static int intern_grow(chaos_strtab *in)
{
    size_t cap = in->cap ? in->cap * 2 : 1024;
    char **s = calloc(cap, sizeof *s);
    if (!s) return -ENOMEM;
    for (size_t i = 0; i < in->cap; i++)
        if (in->s[i]) {
            size_t j = hash_bytes(in->s[i], strlen(in->s[i])) & (cap - 1);
            while (s[j]) j = (j + 1) & (cap - 1);
            s[j] = in->s[i];
        }
    free(in->s);
    in->s = s;
    in->cap = cap;
    return 0;
}

const char *chaos_intern(chaos_hist *h, const char *str, size_t n)
{
    if (!h->in && !(h->in = calloc(1, sizeof *h->in))) return NULL;
    chaos_strtab *in = h->in;
    if ((in->n + 1) * 2 > in->cap && intern_grow(in)) return NULL;
    size_t j = hash_bytes(str, n) & (in->cap - 1);
    while (in->s[j]) {
        if (strlen(in->s[j]) == n && !memcmp(in->s[j], str, n)) return in->s[j];
        j = (j + 1) & (in->cap - 1);
    }
    char *c = malloc(n + 1);
    if (!c) return NULL;
    memcpy(c, str, n);
    c[n] = 0;
    in->s[j] = c;
    in->n++;
    return c;
}

/* ---------------------------------------------------------------- pointer maps */

static size_t ptr_hash(const void *k, size_t cap)
{
    uint64_t x = (uint64_t)(uintptr_t)k;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdu;
    x ^= x >> 33;
    return (size_t)x & (cap - 1);
}

bool chaos_map_get(const chaos_map *m, const void *k, size_t *v)
{
    if (!m->cap) return false;
    for (size_t j = ptr_hash(k, m->cap); m->k[j]; j = (j + 1) & (m->cap - 1))
        if (m->k[j] == k) {
            if (v) *v = m->v[j];
            return true;
        }
    return false;
}

int chaos_map_put(chaos_map *m, const void *k, size_t v)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        const void **nk = calloc(cap, sizeof *nk);
        size_t *nv = calloc(cap, sizeof *nv);
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return -ENOMEM;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->k[i]) {
                size_t j = ptr_hash(m->k[i], cap);
                while (nk[j]) j = (j + 1) & (cap - 1);
                nk[j] = m->k[i];
                nv[j] = m->v[i];
            }
        free(m->k);
        free(m->v);
        m->k = nk;
        m->v = nv;
        m->cap = cap;
    }
    size_t j = ptr_hash(k, m->cap);
    while (m->k[j] && m->k[j] != k) j = (j + 1) & (m->cap - 1);
    if (!m->k[j]) m->n++;
    m->k[j] = k;
    m->v[j] = v;
    return 0;
}

void chaos_map_free(chaos_map *m)
{
    free(m->k);
    free(m->v);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- one line of JSON */

/*
** The subset of JSON a history uses: one object per line whose values are strings, integers,
** true, false, null, or arrays of strings. Anything else makes the line malformed (counted,
** reported, skipped): a history is input, and hostile until read.
*/
typedef struct jp {
    const char *p, *end;
    chaos_hist *h;
    char *buf; /* scratch for unescaped strings */
    size_t cap;
} jp;

static void ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\r')) j->p++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A string at j->p (after the quote is checked): interned, or NULL on error. */
static const char *jstr(jp *j)
{
    if (j->p >= j->end || *j->p != '"') return NULL;
    j->p++;
    size_t k = 0;
    while (j->p < j->end && *j->p != '"') {
        if (k + 8 > j->cap) {
            size_t cap = j->cap ? j->cap * 2 : 256;
            char *b = realloc(j->buf, cap);
            if (!b) return NULL;
            j->buf = b;
            j->cap = cap;
        }
        char c = *j->p++;
        if ((unsigned char)c < 0x20) return NULL;
        if (c != '\\') {
            j->buf[k++] = c;
            continue;
        }
        if (j->p >= j->end) return NULL;
        c = *j->p++;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            j->buf[k++] = c;
            break;
        case 'n':
            j->buf[k++] = '\n';
            break;
        case 't':
            j->buf[k++] = '\t';
            break;
        case 'r':
            j->buf[k++] = '\r';
            break;
        case 'b':
            j->buf[k++] = '\b';
            break;
        case 'f':
            j->buf[k++] = '\f';
            break;
        case 'u': {
            if (j->end - j->p < 4) return NULL;
            unsigned u = 0;
            for (int i = 0; i < 4; i++) {
                int v = hexval(j->p[i]);
                if (v < 0) return NULL;
                u = u << 4 | (unsigned)v;
            }
            j->p += 4;
            if (u == 0) return NULL; /* strings are C strings once interned */
            if (u < 0x80) {
                j->buf[k++] = (char)u;
            } else if (u < 0x800) {
                j->buf[k++] = (char)(0xc0 | u >> 6);
                j->buf[k++] = (char)(0x80 | (u & 0x3f));
            } else {
                j->buf[k++] = (char)(0xe0 | u >> 12);
                j->buf[k++] = (char)(0x80 | (u >> 6 & 0x3f));
                j->buf[k++] = (char)(0x80 | (u & 0x3f));
            }
            break;
        }
        default:
            return NULL;
        }
    }
    if (j->p >= j->end) return NULL;
    j->p++;
    return chaos_intern(j->h, j->buf ? j->buf : "", k);
}

static bool jint(jp *j, int64_t *v)
{
    const char *s = j->p;
    bool neg = false;
    if (s < j->end && *s == '-') {
        neg = true;
        s++;
    }
    if (s >= j->end || *s < '0' || *s > '9') return false;
    uint64_t x = 0;
    while (s < j->end && *s >= '0' && *s <= '9') {
        if (x > (UINT64_MAX - 9) / 10) return false;
        x = x * 10 + (uint64_t)(*s++ - '0');
    }
    if (s < j->end && (*s == '.' || *s == 'e' || *s == 'E')) return false;
    if (x > (uint64_t)INT64_MAX) return false;
    *v = neg ? -(int64_t)x : (int64_t)x;
    j->p = s;
    return true;
}

static bool lit(jp *j, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n)) return false;
    j->p += n;
    return true;
}

static const struct {
    const char *name;
    chaos_evkind kind;
} kinds[] = {
    {"start", EV_START},
    {"sample", EV_SAMPLE},
    {"nodeup", EV_NODEUP},
    {"nodedown", EV_NODEDOWN},
    {"link", EV_LINK},
    {"unlink", EV_UNLINK},
    {"exit", EV_EXIT},
    {"monitor", EV_MONITOR},
    {"demonitor", EV_DEMONITOR},
    {"down", EV_DOWN},
    {"retire", EV_RETIRE},
    {"texit", EV_TEXIT},
    {"stale", EV_STALE},
    {"send", EV_SEND},
    {"recv", EV_RECV},
    {"sup_start", EV_SUP_START},
    {"sup_exit", EV_SUP_EXIT},
    {"child_start", EV_CHILD_START},
    {"child_fail", EV_CHILD_FAIL},
    {"crash", EV_CRASH},
    {"run_start", EV_RUN_START},
    {"round_start", EV_ROUND_START},
    {"fault_start", EV_FAULT_START},
    {"fault_heal", EV_FAULT_HEAL},
    {"node_start", EV_NODE_START},
    {"node_kill", EV_NODE_KILL},
    {"node_stop", EV_NODE_STOP},
    {"settled", EV_SETTLED},
    {"settle_failed", EV_SETTLE_FAILED},
    {"round_end", EV_ROUND_END},
    {"run_end", EV_RUN_END},
    {"note", EV_NOTE},
};

/* Where each string key goes. */
static const char **str_field(chaos_ev *e, const char *k)
{
#define S(name, f) \
    if (!strcmp(k, name)) return &e->f
    S("node", node);
    S("id", id);
    S("a", a);
    S("b", b);
    S("pid", pid);
    S("s", s);
    S("reason", reason);
    S("peer", peer);
    S("to", to);
    S("sup", sup);
    S("child", child);
    S("on", on);
    S("impl", impl);
    S("what", what);
    S("fault", fault);
    S("victim", victim);
    S("backend", backend);
    S("link", link_r);
    S("monitor", mon_r);
    S("text", text);
    S("kind", kind_name);
#undef S
    return NULL;
}

static int64_t *int_field(chaos_ev *e, const char *k)
{
#define I(name, f) \
    if (!strcmp(k, name)) return &e->f
    I("t", t);
    I("n", n);
    I("cr", cr);
    I("seq", seq);
    I("fds", fds);
    I("rss", rss);
    I("procs", procs);
    I("round", round);
    I("rounds", rounds);
    I("seed", seed);
    I("ticktime_ms", ticktime);
    I("slack_ms", slack_ms);
    I("hold_ms", hold_ms);
    I("intensity", intensity);
    I("period_ms", period_ms);
    I("os_pid", os_pid);
    I("settle_ms", settle_ms);
#undef I
    return NULL;
}

static bool parse_line(jp *j, chaos_ev *e)
{
    ws(j);
    if (!lit(j, "{")) return false;
    e->t = -1;
    e->seq = e->fds = e->rss = e->procs = e->round = -1;
    for (bool first = true;; first = false) {
        ws(j);
        if (lit(j, "}")) break;
        if (!first && !lit(j, ",")) return false;
        ws(j);
        const char *k = jstr(j);
        if (!k) return false;
        ws(j);
        if (!lit(j, ":")) return false;
        ws(j);
        if (j->p < j->end && *j->p == '"') {
            const char *v = jstr(j);
            const char **f = str_field(e, k);
            if (!v) return false;
            if (f) *f = v;
        } else if (lit(j, "true") || lit(j, "false")) {
            bool v = j->p[-1] == 'e' && j->p[-2] == 'u';
            if (!strcmp(k, "active")) e->active = v;
            if (!strcmp(k, "sever")) e->sever = v;
        } else if (lit(j, "null")) {
            /* absent */
        } else if (lit(j, "[")) {
            const char **l = NULL;
            size_t n = 0;
            ws(j);
            if (!lit(j, "]")) {
                for (;;) {
                    ws(j);
                    const char *v = jstr(j);
                    const char **nl = v ? realloc(l, (n + 1) * sizeof *l) : NULL;
                    if (!nl) {
                        free(l);
                        return false;
                    }
                    l = nl;
                    l[n++] = v;
                    ws(j);
                    if (lit(j, "]")) break;
                    if (!lit(j, ",")) {
                        free(l);
                        return false;
                    }
                }
            }
            if (!strcmp(k, "nodes") && !e->nodes) {
                e->nodes = l;
                e->nnodes = n;
            } else {
                free(l);
            }
        } else {
            int64_t v;
            if (!jint(j, &v)) return false;
            int64_t *f = int_field(e, k);
            if (f) *f = v;
        }
    }
    ws(j);
    if (j->p != j->end) return false;
    if (e->t < 0 || !e->node || !e->kind_name) return false;
    /* the checker indexes messages by sequence number: 10^8 is 115 days at the workload's
    ** rate, so a larger one is no line of a workload */
    if (e->seq > 100000000) return false;
    e->kind = EV_OTHER;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kinds[i].name, e->kind_name)) e->kind = kinds[i].kind;
    return true;
}

int chaos_hist_feed(chaos_hist *h, const char *line, size_t len, size_t lineno)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
    if (len == 0) return 0;
    if (h->n == h->cap) {
        size_t c = h->cap ? h->cap * 2 : 4096;
        chaos_ev *ev = realloc(h->ev, c * sizeof *ev);
        if (!ev) return -ENOMEM;
        h->ev = ev;
        h->cap = c;
    }
    chaos_ev *e = &h->ev[h->n];
    memset(e, 0, sizeof *e);
    jp j = {0};
    j.h = h;
    j.p = line;
    j.end = line + len;
    bool ok = len <= 65536 && parse_line(&j, e);
    free(j.buf);
    if (!ok) {
        free(e->nodes);
        if (!h->malformed++) h->first_malformed = lineno;
        return 0;
    }
    e->raw = chaos_intern(h, line, len);
    e->line = lineno;
    if (!e->raw) {
        free(e->nodes);
        return -ENOMEM;
    }
    h->n++;
    return 1;
}

int chaos_hist_read(chaos_hist *h, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f) return -errno;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if ((rc = chaos_hist_feed(h, line, (size_t)len, lineno)) < 0) break;
        rc = 0;
    }
    free(line);
    fclose(f);
    return rc;
}

static int ev_cmp(const void *x, const void *y)
{
    const chaos_ev *a = x, *b = y;
    if (a->t != b->t) return a->t < b->t ? -1 : 1;
    if (a->node != b->node) return strcmp(a->node, b->node);
    if (a->n != b->n) return a->n < b->n ? -1 : 1;
    return a->line < b->line ? -1 : a->line > b->line;
}

void chaos_hist_sort(chaos_hist *h)
{
    qsort(h->ev, h->n, sizeof *h->ev, ev_cmp);
}

void chaos_hist_free(chaos_hist *h)
{
    for (size_t i = 0; i < h->n; i++) free(h->ev[i].nodes);
    free(h->ev);
    if (h->in) {
        for (size_t i = 0; i < h->in->cap; i++) free(h->in->s[i]);
        free(h->in->s);
        free(h->in);
    }
    memset(h, 0, sizeof *h);
}

bool chaos_pid_split(chaos_hist *h, const char *pid, const char **node, int64_t *cr)
{
    if (!pid) return false;
    const char *h1 = strchr(pid, '#');
    const char *h2 = h1 ? strrchr(pid, '#') : NULL;
    if (!h1 || h2 == h1) return false;
    char *end;
    long long c = strtoll(h2 + 1, &end, 10);
    if (*end || end == h2 + 1) return false;
    *node = chaos_intern(h, pid, (size_t)(h1 - pid));
    *cr = c;
    return *node != NULL;
}
