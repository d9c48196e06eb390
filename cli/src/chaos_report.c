/* girder chaos: the report — a summary on stdout, report.json, and a Markdown timeline. */
#include "chaos.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FAULT_KINDS 16

typedef struct fcount {
    const char *kind;
    int64_t n, on_girder, on_erlang;
} fcount;

/* The implementation ("girder" / "erlang") of node, from its start events. */
static const char *impl_of(const chaos_hist *h, const char *node)
{
    for (size_t i = 0; i < h->n; i++)
        if (h->ev[i].kind == EV_START && h->ev[i].node == node && h->ev[i].impl)
            return h->ev[i].impl;
    return "?";
}

static size_t count_faults(const chaos_hist *h, fcount *fc)
{
    size_t n = 0;
    for (size_t i = 0; i < h->n; i++) {
        const chaos_ev *e = &h->ev[i];
        if (e->kind != EV_FAULT_START || !e->fault) continue;
        size_t k = 0;
        while (k < n && strcmp(fc[k].kind, e->fault)) k++;
        if (k == n) {
            if (n == MAX_FAULT_KINDS) continue;
            fc[n++] = (fcount){e->fault, 0, 0, 0};
        }
        fc[k].n++;
        const char *impl = e->victim ? impl_of(h, e->victim) : "?";
        if (!strcmp(impl, "girder")) fc[k].on_girder++;
        if (!strcmp(impl, "erlang")) fc[k].on_erlang++;
    }
    return n;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static double rel(const chaos_result *r, int64_t t)
{
    return (double)(t - r->t0) / 1e6;
}

static int write_json(const chaos_hist *h, const chaos_result *r, const char *path)
{
    FILE *f = fopen(path, "we");
    if (!f) return -errno;
    fcount fc[MAX_FAULT_KINDS];
    size_t nf = count_faults(h, fc);
    fprintf(f, "{\n  \"seed\": %lld,\n  \"rounds\": %lld,\n  \"rounds_planned\": %lld,\n",
            (long long)r->seed, (long long)r->rounds_done, (long long)r->rounds_planned);
    fprintf(f, "  \"backend\": ");
    json_str(f, r->backend ? r->backend : "");
    fprintf(f, ",\n  \"duration_s\": %.1f,\n", (double)(r->t1 - r->t0) / 1e6);
    fprintf(f, "  \"ticktime_ms\": %lld,\n  \"slack_ms\": %lld,\n", (long long)r->prm.ticktime_ms,
            (long long)r->prm.slack_ms);
    fprintf(f, "  \"events\": %zu,\n  \"faults\": {", h->n);
    for (size_t i = 0; i < nf; i++) {
        fprintf(f, "%s\n    ", i ? "," : "");
        json_str(f, fc[i].kind);
        fprintf(f, ": {\"count\": %lld, \"on_girder\": %lld, \"on_erlang\": %lld}",
                (long long)fc[i].n, (long long)fc[i].on_girder, (long long)fc[i].on_erlang);
    }
    fprintf(f, "\n  },\n  \"invariants\": {");
    for (int i = 0; i < NINV; i++) {
        fprintf(f, "%s\n    ", i ? "," : "");
        json_str(f, chaos_inv_names[i]);
        fprintf(f, ": {\"checked\": %lld, \"violations\": %lld, \"meaning\": ",
                (long long)r->checked[i], (long long)r->failed[i]);
        json_str(f, chaos_inv_meaning[i]);
        fprintf(f, "}");
    }
    fprintf(f, "\n  },\n  \"unexplained_nodedowns\": %zu,\n  \"violations\": [",
            r->unexplained_downs);
    for (size_t i = 0; i < r->nv; i++) {
        const chaos_violation *v = &r->v[i];
        fprintf(f, "%s\n    {\"invariant\": ", i ? "," : "");
        json_str(f, chaos_inv_names[v->inv]);
        fprintf(f, ", \"message\": ");
        json_str(f, v->msg);
        fprintf(f, ",\n     \"witness\": [");
        /* each witness line was read as one JSON object: it goes in as it is */
        for (size_t k = 0; k < v->nw; k++) fprintf(f, "%s\n       %s", k ? "," : "", v->w[k]->raw);
        fprintf(f, "]}");
    }
    fprintf(f, "%s]\n}\n", r->nv ? "\n  " : "");
    int rc = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0 && !rc) rc = -errno;
    return rc;
}

/* The timeline: the runner's events, node-downs and -ups, supervisor and crash events, and the
** violations at the time of their last witness line. */
static int write_timeline(const chaos_hist *h, const chaos_result *r, const char *path)
{
    FILE *f = fopen(path, "we");
    if (!f) return -errno;
    fprintf(f, "# Chaos run: seed %lld, %lld rounds, backend %s\n\n", (long long)r->seed,
            (long long)r->rounds_done, r->backend ? r->backend : "?");
    fprintf(f,
            "Times are seconds from the first event. %zu violation%s. The history is "
            "`history.jsonl` next to this file; `girder chaos check history.jsonl` checks "
            "it again.\n\n",
            r->nv, r->nv == 1 ? "" : "s");
    fprintf(f, "| time | node | event |\n|---:|---|---|\n");
    int64_t *vt = calloc(r->nv ? r->nv : 1, sizeof *vt);
    if (!vt) {
        fclose(f);
        return -ENOMEM;
    }
    for (size_t i = 0; i < r->nv; i++) {
        vt[i] = r->t0;
        for (size_t k = 0; k < r->v[i].nw; k++)
            if (r->v[i].w[k]->t > vt[i]) vt[i] = r->v[i].w[k]->t;
    }
    for (size_t i = 0; i <= h->n; i++) {
        const chaos_ev *e = i < h->n ? &h->ev[i] : NULL;
        for (size_t k = 0; k < r->nv; k++)
            if (vt[k] != INT64_MIN && (!e || vt[k] < e->t)) {
                fprintf(f, "| %.3f | | **VIOLATION %s**: %s |\n", rel(r, vt[k]),
                        chaos_inv_names[r->v[k].inv], r->v[k].msg);
                vt[k] = INT64_MIN;
            }
        if (!e) break;
        char what[512] = "";
        switch (e->kind) {
        case EV_RUN_START:
            snprintf(what, sizeof what, "run starts: seed %lld, %lld rounds, ticktime %lld ms",
                     (long long)e->seed, (long long)e->rounds, (long long)e->ticktime);
            break;
        case EV_ROUND_START:
            snprintf(what, sizeof what, "**round %lld**", (long long)e->round);
            break;
        case EV_FAULT_START:
            snprintf(what, sizeof what, "fault **%s** on %s (%s)%s%s", e->fault ? e->fault : "?",
                     e->victim ? e->victim : "?", e->victim ? impl_of(h, e->victim) : "?",
                     e->text ? ": " : "", e->text ? e->text : "");
            break;
        case EV_FAULT_HEAL:
            snprintf(what, sizeof what, "healed %s on %s", e->fault ? e->fault : "?",
                     e->victim ? e->victim : "?");
            break;
        case EV_NODE_START:
        case EV_NODE_KILL:
        case EV_NODE_STOP:
            snprintf(what, sizeof what, "%s %s", e->kind_name, e->victim ? e->victim : "?");
            break;
        case EV_SETTLED:
        case EV_SETTLE_FAILED:
        case EV_ROUND_END:
        case EV_RUN_END:
            snprintf(what, sizeof what, "%s%s%s", e->kind_name, e->text ? ": " : "",
                     e->text ? e->text : "");
            break;
        case EV_START:
            snprintf(what, sizeof what, "workload starts (%s, creation %lld)",
                     e->impl ? e->impl : "?", (long long)e->cr);
            break;
        case EV_NODEDOWN:
        case EV_NODEUP:
            snprintf(what, sizeof what, "%s %s", e->kind_name, e->peer ? e->peer : "?");
            break;
        case EV_SUP_EXIT:
        case EV_CRASH:
            snprintf(what, sizeof what, "%s %s: %s", e->kind_name, e->sup ? e->sup : e->what,
                     e->reason ? e->reason : "?");
            break;
        default:
            continue;
        }
        fprintf(f, "| %.3f | %s | %s |\n", rel(r, e->t), strcmp(e->node, "runner") ? e->node : "",
                what);
    }
    free(vt);
    int rc = ferror(f) ? -EIO : 0;
    if (fclose(f) != 0 && !rc) rc = -errno;
    return rc;
}

static void print_summary(const chaos_hist *h, const chaos_result *r, FILE *f)
{
    fprintf(f, "chaos: seed %lld, %lld of %lld rounds, backend %s, %.0f s, %zu events\n",
            (long long)r->seed, (long long)r->rounds_done, (long long)r->rounds_planned,
            r->backend ? r->backend : "?", (double)(r->t1 - r->t0) / 1e6, h->n);
    fprintf(f, "\n%-6s %-10s %-28s %-7s %s\n", "ROUND", "FAULT", "VICTIM", "KIND", "HELD");
    for (size_t i = 0; i < h->n; i++) {
        const chaos_ev *e = &h->ev[i];
        if (e->kind != EV_FAULT_START) continue;
        fprintf(f, "%-6lld %-10s %-28s %-7s %.1f s%s%s\n", (long long)e->round,
                e->fault ? e->fault : "?", e->victim ? e->victim : "?",
                e->victim ? impl_of(h, e->victim) : "?", (double)e->hold_ms / 1000,
                e->text ? "  " : "", e->text ? e->text : "");
    }
    fcount fc[MAX_FAULT_KINDS];
    size_t nf = count_faults(h, fc);
    fprintf(f, "\n%-10s %6s %8s %8s\n", "FAULT", "COUNT", "GIRDER", "ERLANG");
    for (size_t i = 0; i < nf; i++)
        fprintf(f, "%-10s %6lld %8lld %8lld\n", fc[i].kind, (long long)fc[i].n,
                (long long)fc[i].on_girder, (long long)fc[i].on_erlang);
    fprintf(f, "\n%-14s %8s %11s\n", "INVARIANT", "CHECKED", "VIOLATIONS");
    for (int i = 0; i < NINV; i++)
        fprintf(f, "%-14s %8lld %11lld\n", chaos_inv_names[i], (long long)r->checked[i],
                (long long)r->failed[i]);
    if (r->unexplained_downs)
        fprintf(f,
                "\nnote: %zu node-downs happened away from any fault (ticks missed on a "
                "loaded machine?)\n",
                r->unexplained_downs);
    size_t shown = r->nv < 20 ? r->nv : 20;
    for (size_t i = 0; i < shown; i++) {
        const chaos_violation *v = &r->v[i];
        fprintf(f, "\nVIOLATION %s: %s\n", chaos_inv_names[v->inv], v->msg);
        for (size_t k = 0; k < v->nw; k++) fprintf(f, "  %s\n", v->w[k]->raw);
    }
    if (r->nv > shown) fprintf(f, "\n... and %zu more in report.json\n", r->nv - shown);
    fprintf(f, "\n%zu violation%s\n", r->nv, r->nv == 1 ? "" : "s");
}

int chaos_report(const chaos_hist *h, const chaos_result *r, const char *outdir, FILE *f)
{
    if (f) print_summary(h, r, f);
    if (!outdir) return 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/report.json", outdir);
    int rc = write_json(h, r, path);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/timeline.md", outdir);
    return write_timeline(h, r, path);
}
