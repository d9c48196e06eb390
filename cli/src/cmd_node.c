/* The node commands: ping, nodes, ps, info, rpc, spawn, send, exit, stop — over distribution. */
#include "session.h"

#include <stdlib.h>
#include <string.h>

#define A(s) term_atom(s)

/* ================================================================ shared scaffolding */

/* A term argument: parsed before any network traffic; a short pid (<0.X.Y>) needs the
** target node's creation and is parsed again once it is known. */
typedef struct term_arg {
    const char *text;
    const char *what; /* "ARGS", "TERM", "REASON", "PID" */
    term_t t;
    bool need_ctx;
} term_arg;

typedef struct job {
    const cli_opts *o;
    char (*names)[256];
    size_t nnames;
    term_t node; /* names[0] as an atom */
    cli_json j;
    int (*body)(struct job *);
    /* command arguments */
    term_t mod, fun;        /* rpc, spawn */
    term_t target_name;     /* send, exit, info: a registered name, or TERM_NONE */
    term_arg target_pid;    /* ... or a pid */
    term_arg args, payload; /* rpc/spawn ARGS; send TERM / exit REASON */
    bool has_target;
} job;

static int parse_text(term_arg *a, const term_text_ctx *ctx)
{
    term_parse_error e;
    term_t t = term_parse(a->text, strlen(a->text), ctx, &e);
    if (t != TERM_NONE) {
        a->t = t;
        a->need_ctx = false;
        return CLI_OK;
    }
    if (!ctx && e.code == TERM_EINVAL) {
        /* <0.X.Y> needs the node's creation: check the rest of the text now with a stand-in
        ** node, and parse it for real once the creation is known */
        term_text_ctx probe = {A("girder_cli_probe@nohost"), 1};
        t = term_parse(a->text, strlen(a->text), &probe, &e);
        if (t != TERM_NONE) {
            term_free(t);
            a->need_ctx = true;
            return CLI_OK;
        }
    }
    cli_err("%s: %s at byte %zu of '%s'", a->what, e.what[0] ? e.what : term_strerror(e.code),
            e.offset, a->text);
    return CLI_USAGE;
}

/* Parses a again with node's creation if it needs it. CLI_OK, CLI_FAIL (why), CLI_USAGE. */
static int finish_arg(job *jb, term_arg *a, char *why, size_t n)
{
    if (!a->text || !a->need_ctx) return CLI_OK;
    int rc = cli_learn_creation(jb->node, why, n);
    if (rc) return rc;
    term_text_ctx ctx = cli_ctx(jb->node);
    return parse_text(a, &ctx);
}

/* An atom argument: plain text is the atom's name ('Elixir.String' needs no quotes); text in
** single quotes is parsed as an Erlang quoted atom. */
static int atom_arg(const char *text, const char *what, term_t *out)
{
    if (text[0] == '\'') {
        term_parse_error e;
        term_t t = term_parse(text, strlen(text), NULL, &e);
        if (t != TERM_NONE && term_is_atom(t)) {
            *out = t;
            return CLI_OK;
        }
        term_free(t);
        cli_err("%s: '%s' is not an atom", what, text);
        return CLI_USAGE;
    }
    int err = 0;
    term_t t = text[0] ? term_atom_n(text, strlen(text), &err) : TERM_NONE;
    if (t == TERM_NONE) {
        cli_err("%s: '%s' is not a valid atom name", what, text);
        return CLI_USAGE;
    }
    *out = t;
    return CLI_OK;
}

/* NAME|PID: text starting with '<' is a pid, anything else a registered name. */
static int target_arg(job *jb, const char *text)
{
    jb->has_target = true;
    if (text[0] == '<') {
        jb->target_pid.text = text;
        jb->target_pid.what = "PID";
        return parse_text(&jb->target_pid, NULL);
    }
    return atom_arg(text, "NAME", &jb->target_name);
}

static void json_node(job *jb)
{
    cli_json_key(&jb->j, "node");
    cli_json_str(&jb->j, term_atom_name(jb->node, NULL));
}

/* Ends a command: the reason line on stderr when it failed, and the JSON document (with "ok"
** and "error") when --json. Returns status. */
static int finish(job *jb, int status, const char *why)
{
    if (status != CLI_OK && why && why[0]) cli_err("%s", why);
    if (jb->o->json && status != CLI_USAGE) { /* usage errors print nothing on stdout */
        cli_json_key(&jb->j, "ok");
        cli_json_bool(&jb->j, status == CLI_OK);
        if (status != CLI_OK && why && why[0]) {
            cli_json_key(&jb->j, "error");
            cli_json_str(&jb->j, why);
        }
        cli_json_end(&jb->j);
        if (cli_json_write(&jb->j, stdout) != 0) {
            cli_err("cannot write the JSON output");
            return CLI_FAIL;
        }
    }
    return status;
}

static int body_tramp(void *arg)
{
    job *jb = arg;
    if (jb->o->json) cli_json_obj(&jb->j);
    return jb->body(jb);
}

/* Names -> cookie -> the CLI's node -> body in a process -> shutdown. */
static int run_job(job *jb)
{
    const cli_opts *o = jb->o;
    int rc = cli_check_proto(o);
    if (rc) return rc;
    bool longnames = false;
    for (size_t i = 0; i < jb->nnames; i++) {
        bool ln = strchr(strchr(jb->names[i], '@') + 1, '.') != NULL;
        if (i > 0 && ln != longnames) {
            cli_err("%s and %s: long and short node names cannot be mixed in one command",
                    jb->names[0], jb->names[i]);
            return CLI_USAGE;
        }
        longnames = ln;
    }
    cli_cookie ck;
    uint16_t eport;
    rc = cli_cookie_resolve(o, jb->names, jb->nnames, &ck, &eport);
    if (rc) return rc;
    rc = cli_dist_up(o, longnames, &ck, eport);
    if (rc) return rc;
    jb->node = A(jb->names[0]);
    rc = cli_run(body_tramp, jb);
    cli_dist_down();
    cli_json_free(&jb->j);
    return rc;
}

/* Prepares a job for one NODE (argv[0]). */
static int one_node(job *jb, const cli_opts *o, char (*names)[256])
{
    memset(jb, 0, sizeof *jb);
    jb->o = o;
    jb->names = names;
    jb->nnames = 1;
    return cli_node_name(o->argv[0], names[0], 256) ? CLI_USAGE : CLI_OK;
}

/* Connects to jb->node; on failure finishes the command. */
static int connect_or_fail(job *jb)
{
    char why[1024];
    if (cli_connect(jb->node, why, sizeof why) == CLI_OK) return CLI_OK;
    return finish(jb, CLI_FAIL, why);
}

/* Turns a registered name or pid argument into a pid (owned) on jb->node. */
static int resolve_target(job *jb, term_t *pid, char *why, size_t n)
{
    if (jb->target_name == TERM_NONE) {
        int rc = finish_arg(jb, &jb->target_pid, why, n);
        if (rc) return rc;
        if (!term_is_pid(jb->target_pid.t)) {
            char *t = cli_term_text(jb->target_pid.t, NULL);
            cli_err("PID: %s is not a pid", t);
            free(t);
            return CLI_USAGE;
        }
        *pid = term_dup(jb->target_pid.t);
        return CLI_OK;
    }
    term_t p = cli_call(jb->node, "erlang", "whereis", term_list(1, &jb->target_name), why, n);
    if (p == TERM_NONE) return CLI_FAIL;
    if (!term_is_pid(p)) {
        char *t = cli_term_text(jb->target_name, NULL);
        snprintf(why, n, "no process is registered as %s on %s", t, term_atom_name(jb->node, NULL));
        free(t);
        term_free(p);
        return CLI_FAIL;
    }
    *pid = p;
    return CLI_OK;
}

/* is_process_alive(Pid) on the node: also a round trip, so that whatever this CLI sent
** before it on the connection has been delivered. 1 alive, 0 not, -1 with why. */
static int alive_on_node(job *jb, term_t pid, char *why, size_t n)
{
    term_t v = cli_call(jb->node, "erlang", "is_process_alive",
                        term_list(1, (term_t[]){term_dup(pid)}), why, n);
    if (v == TERM_NONE) return -1;
    int r = v == TERM_ATOM_TRUE ? 1 : 0;
    term_free(v);
    return r;
}

static char *text_for(job *jb, term_t t)
{
    term_text_ctx ctx = cli_ctx(jb->node);
    return cli_term_text(t, &ctx);
}

/* ================================================================ ping */

static int ping_body(job *jb)
{
    int status = CLI_OK;
    if (jb->o->json) {
        cli_json_key(&jb->j, "nodes");
        cli_json_arr(&jb->j);
    }
    for (size_t i = 0; i < jb->nnames; i++) {
        term_t node = A(jb->names[i]);
        char why[1024] = "";
        int64_t left = cli_remaining_ms();
        int rc = left > 0 ? dist_ping(node, left) : DIST_ETIMEOUT;
        if (rc) {
            cli_diagnose(node, rc, why, sizeof why);
            status = CLI_FAIL;
        }
        if (jb->o->json) {
            cli_json_obj(&jb->j);
            cli_json_key(&jb->j, "node");
            cli_json_str(&jb->j, jb->names[i]);
            cli_json_key(&jb->j, "result");
            cli_json_str(&jb->j, rc ? "pang" : "pong");
            if (rc) {
                cli_json_key(&jb->j, "error");
                cli_json_str(&jb->j, why);
            }
            cli_json_end(&jb->j);
        } else {
            printf("%s %s\n", jb->names[i], rc ? "pang" : "pong");
            fflush(stdout); /* the reason follows its pang line, even into one file */
        }
        if (rc) cli_err("%s", why);
    }
    if (jb->o->json) cli_json_end(&jb->j);
    return finish(jb, status, NULL);
}

int cli_cmd_ping(const cli_opts *o)
{
    char(*names)[256] = calloc((size_t)o->argc, 256);
    if (!names) return CLI_FAIL;
    job jb = {0};
    jb.o = o;
    jb.names = names;
    jb.nnames = (size_t)o->argc;
    jb.body = ping_body;
    int rc = CLI_OK;
    for (int i = 0; i < o->argc && !rc; i++)
        if (cli_node_name(o->argv[i], names[i], 256)) rc = CLI_USAGE;
    if (!rc) rc = run_job(&jb);
    free(names);
    return rc;
}

/* ================================================================ nodes */

static void node_list(job *jb, term_t list, const char *kind, const char *json_key)
{
    if (jb->o->json) {
        cli_json_key(&jb->j, json_key);
        cli_json_arr(&jb->j);
    }
    for (term_t l = list; term_is_cons(l); l = term_tl(l)) {
        term_t n = term_hd(l);
        if (!term_is_atom(n) || n == cli_self_node()) continue;
        if (jb->o->json)
            cli_json_str(&jb->j, term_atom_name(n, NULL));
        else
            printf("%s %s\n", term_atom_name(n, NULL), kind);
    }
    if (jb->o->json) cli_json_end(&jb->j);
}

static int nodes_body(job *jb)
{
    if (connect_or_fail(jb)) return CLI_FAIL;
    cli_rpc r[2];
    cli_rpc_init(&r[0], jb->node, "erlang", "nodes", term_list(1, (term_t[]){A("visible")}));
    cli_rpc_init(&r[1], jb->node, "erlang", "nodes", term_list(1, (term_t[]){A("hidden")}));
    char why[1024] = "";
    int status = CLI_OK;
    if (cli_rpc_run(r, 2, 2) != 2) {
        cli_rpc_describe(r[0].out != CLI_RPC_RETURN ? &r[0] : &r[1], why, sizeof why);
        status = CLI_FAIL;
    } else {
        json_node(jb);
        node_list(jb, r[0].value, "visible", "visible");
        node_list(jb, r[1].value, "hidden", "hidden");
    }
    cli_rpc_clear(&r[0]);
    cli_rpc_clear(&r[1]);
    return finish(jb, status, why);
}

int cli_cmd_nodes(const cli_opts *o)
{
    char names[1][256];
    job jb;
    if (one_node(&jb, o, names)) return CLI_USAGE;
    jb.body = nodes_body;
    return run_job(&jb);
}

/* ================================================================ ps */

typedef struct ps_row {
    term_t pid;
    term_t name; /* atom or TERM_NONE */
    term_t status, current;
    int64_t mq, reductions, memory;
} ps_row;

static term_t kv_get(term_t list, const char *key)
{
    term_t k = A(key);
    for (term_t l = list; term_is_cons(l); l = term_tl(l)) {
        term_t e = term_hd(l);
        if (term_is_tuple(e) && term_tuple_arity(e) == 2 && term_tuple_elem(e, 0) == k)
            return term_tuple_elem(e, 1);
    }
    return TERM_NONE;
}

static int64_t int_or(term_t t, int64_t dflt)
{
    int64_t v;
    return t != TERM_NONE && term_get_int64(t, &v) == 0 ? v : dflt;
}

static const char *ps_sort;

static int ps_cmp(const void *a, const void *b)
{
    const ps_row *x = a, *y = b;
    int64_t vx = 0, vy = 0;
    if (!strcmp(ps_sort, "reductions")) vx = x->reductions, vy = y->reductions;
    if (!strcmp(ps_sort, "memory")) vx = x->memory, vy = y->memory;
    if (!strcmp(ps_sort, "mailbox")) vx = x->mq, vy = y->mq;
    if (vx != vy) return vx > vy ? -1 : 1;
    return term_compare(x->pid, y->pid); /* stable order for equal keys */
}

/* "m:f/a" for {M, F, A}, NULL for anything else (Girder nodes answer undefined). */
static char *mfa_text(term_t t)
{
    if (!term_is_tuple(t) || term_tuple_arity(t) != 3) return NULL;
    term_t m = term_tuple_elem(t, 0), f = term_tuple_elem(t, 1), a = term_tuple_elem(t, 2);
    if (!term_is_atom(m) || !term_is_atom(f) || !term_is_small(a)) return NULL;
    char *ms = cli_term_text(m, NULL), *fs = cli_term_text(f, NULL);
    size_t n = strlen(ms) + strlen(fs) + 32;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s:%s/%lld", ms, fs, (long long)term_small_value(a));
    free(ms);
    free(fs);
    return s;
}

static char *string_of(term_t t);

static int ps_body(job *jb)
{
    if (connect_or_fail(jb)) return CLI_FAIL;
    char why[1024] = "";
    term_t procs = cli_call(jb->node, "erlang", "processes", TERM_NIL, why, sizeof why);
    if (procs == TERM_NONE) return finish(jb, CLI_FAIL, why);
    long n = term_list_length(procs);
    if (n < 0) {
        term_free(procs);
        return finish(jb, CLI_FAIL, "erlang:processes() did not answer a list");
    }
    static const char *items[] = {"registered_name", "status", "message_queue_len",
                                  "reductions",      "memory", "current_function"};
    /* a Girder node has no current_function (C code has none to report) and answers badarg
    ** for it, as for any item it cannot answer: ask it for the other five */
    size_t nitems = 6;
    term_t ver = cli_call(jb->node, "erlang", "system_info",
                          term_list(1, (term_t[]){A("system_version")}), why, sizeof why);
    char *vs = ver != TERM_NONE ? string_of(ver) : NULL;
    if (vs && !strncmp(vs, "Girder", 6)) nitems = 5;
    free(vs);
    term_free(ver);
    why[0] = 0;
    cli_rpc *rs = calloc((size_t)n + 1, sizeof *rs);
    ps_row *rows = calloc((size_t)n + 1, sizeof *rows);
    if (!rs || !rows) {
        free(rs);
        free(rows);
        term_free(procs);
        return finish(jb, CLI_FAIL, "out of memory");
    }
    size_t i = 0;
    for (term_t l = procs; term_is_cons(l); l = term_tl(l), i++) {
        term_t it[6];
        for (size_t k = 0; k < nitems; k++) it[k] = A(items[k]);
        cli_rpc_init(&rs[i], jb->node, "erlang", "process_info",
                     term_list(2, (term_t[]){term_dup(term_hd(l)), term_list(nitems, it)}));
    }
    int status = CLI_OK;
    if (cli_rpc_run(rs, (size_t)n, 32) != (size_t)n) {
        for (i = 0; i < (size_t)n; i++)
            if (rs[i].out != CLI_RPC_RETURN) {
                cli_rpc_describe(&rs[i], why, sizeof why);
                break;
            }
        status = CLI_FAIL;
    }
    size_t nrows = 0;
    i = 0;
    for (term_t l = procs; status == CLI_OK && term_is_cons(l); l = term_tl(l), i++) {
        term_t info = rs[i].value;
        if (!term_is_list(info)) continue; /* undefined: it exited meanwhile */
        ps_row *r = &rows[nrows++];
        r->pid = term_hd(l);
        term_t nm = kv_get(info, "registered_name");
        r->name = nm != TERM_NONE && term_is_atom(nm) ? nm : TERM_NONE;
        r->status = kv_get(info, "status");
        r->current = kv_get(info, "current_function");
        r->mq = int_or(kv_get(info, "message_queue_len"), -1);
        r->reductions = int_or(kv_get(info, "reductions"), -1);
        r->memory = int_or(kv_get(info, "memory"), -1);
    }
    if (status == CLI_OK && jb->o->sort) {
        ps_sort = jb->o->sort;
        qsort(rows, nrows, sizeof *rows, ps_cmp);
    }
    if (status == CLI_OK && jb->o->limit > 0 && (size_t)jb->o->limit < nrows)
        nrows = (size_t)jb->o->limit;
    if (status == CLI_OK && jb->o->json) {
        json_node(jb);
        cli_json_key(&jb->j, "processes");
        cli_json_arr(&jb->j);
        for (i = 0; i < nrows; i++) {
            ps_row *r = &rows[i];
            cli_json_obj(&jb->j);
            cli_json_key(&jb->j, "pid");
            char *p = text_for(jb, r->pid);
            cli_json_str(&jb->j, p);
            free(p);
            cli_json_key(&jb->j, "name");
            cli_json_str(&jb->j, r->name != TERM_NONE ? term_atom_name(r->name, NULL) : NULL);
            cli_json_key(&jb->j, "status");
            cli_json_str(&jb->j, term_is_atom(r->status) ? term_atom_name(r->status, NULL) : NULL);
            cli_json_key(&jb->j, "message_queue_len");
            cli_json_int(&jb->j, r->mq);
            cli_json_key(&jb->j, "reductions");
            cli_json_int(&jb->j, r->reductions);
            cli_json_key(&jb->j, "memory");
            cli_json_int(&jb->j, r->memory);
            cli_json_key(&jb->j, "current_function");
            char *c = mfa_text(r->current);
            cli_json_str(&jb->j, c);
            free(c);
            cli_json_end(&jb->j);
        }
        cli_json_end(&jb->j);
    } else if (status == CLI_OK) {
        /* column widths first, then the rows */
        size_t wp = 3, wn = 4;
        char **pids = calloc(nrows + 1, sizeof *pids);
        for (i = 0; pids && i < nrows; i++) {
            pids[i] = text_for(jb, rows[i].pid);
            if (strlen(pids[i]) > wp) wp = strlen(pids[i]);
            if (rows[i].name != TERM_NONE && strlen(term_atom_name(rows[i].name, NULL)) > wn)
                wn = strlen(term_atom_name(rows[i].name, NULL));
        }
        printf("%-*s  %-*s  %-9s %6s %12s %10s  %s\n", (int)wp, "PID", (int)wn, "NAME", "STATUS",
               "MSGQ", "REDUCTIONS", "MEMORY", "CURRENT");
        for (i = 0; pids && i < nrows; i++) {
            ps_row *r = &rows[i];
            char *c = mfa_text(r->current);
            printf("%-*s  %-*s  %-9s %6lld %12lld %10lld  %s\n", (int)wp, pids[i], (int)wn,
                   r->name != TERM_NONE ? term_atom_name(r->name, NULL) : "-",
                   term_is_atom(r->status) ? term_atom_name(r->status, NULL) : "-",
                   (long long)r->mq, (long long)r->reductions, (long long)r->memory, c ? c : "-");
            free(c);
            free(pids[i]);
        }
        free(pids);
    }
    for (i = 0; i < (size_t)n; i++) cli_rpc_clear(&rs[i]);
    free(rs);
    free(rows);
    term_free(procs);
    return finish(jb, status, why);
}

int cli_cmd_ps(const cli_opts *o)
{
    char names[1][256];
    job jb;
    if (one_node(&jb, o, names)) return CLI_USAGE;
    jb.body = ps_body;
    return run_job(&jb);
}

/* ================================================================ info */

static void print_atoms(job *jb, const char *label, term_t list)
{
    if (jb->o->json) {
        cli_json_key(&jb->j, label);
        cli_json_arr(&jb->j);
    } else {
        printf("%-15s", label);
    }
    size_t k = 0;
    for (term_t l = list; term_is_cons(l); l = term_tl(l)) {
        term_t a = term_hd(l);
        if (!term_is_atom(a) || a == cli_self_node()) continue;
        if (jb->o->json) {
            cli_json_str(&jb->j, term_atom_name(a, NULL));
        } else {
            char *t = cli_term_text(a, NULL);
            printf(" %s", t);
            free(t);
        }
        k++;
    }
    if (jb->o->json)
        cli_json_end(&jb->j);
    else
        printf("%s\n", k ? "" : " -");
}

/* A string (chardata) term as C text, trailing newline dropped; NULL if not text. */
static char *string_of(term_t t)
{
    etf_buf b = {0};
    if (cli_chardata(t, false, &b) != 0 || etf_buf_reserve(&b, 1) != 0) {
        etf_buf_free(&b);
        return NULL;
    }
    while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == ' ')) b.len--;
    b.data[b.len] = 0;
    return (char *)b.data;
}

static int info_node(job *jb)
{
    cli_rpc r[6];
    cli_rpc_init(&r[0], jb->node, "erlang", "system_info",
                 term_list(1, (term_t[]){A("otp_release")}));
    cli_rpc_init(&r[1], jb->node, "erlang", "system_info",
                 term_list(1, (term_t[]){A("system_version")}));
    cli_rpc_init(&r[2], jb->node, "erlang", "system_info",
                 term_list(1, (term_t[]){A("process_count")}));
    cli_rpc_init(&r[3], jb->node, "erlang", "nodes", term_list(1, (term_t[]){A("visible")}));
    cli_rpc_init(&r[4], jb->node, "erlang", "nodes", term_list(1, (term_t[]){A("hidden")}));
    cli_rpc_init(&r[5], jb->node, "erlang", "registered", TERM_NIL);
    char why[1024] = "";
    int status = CLI_OK;
    /* otp_release may be badarg: a Girder node is not an OTP release, and says so */
    size_t ok = cli_rpc_run(r, 6, 6);
    bool rel_known = r[0].out == CLI_RPC_RETURN;
    if (ok != 6 - (rel_known ? 0 : 1)) {
        for (size_t i = 1; i < 6; i++)
            if (r[i].out != CLI_RPC_RETURN) {
                char d[900];
                cli_rpc_describe(&r[i], d, sizeof d);
                snprintf(why, sizeof why, "%s:%s on %s: %s", term_atom_name(r[i].mod, NULL),
                         term_atom_name(r[i].fun, NULL), term_atom_name(jb->node, NULL), d);
                break;
            }
        status = CLI_FAIL;
    } else {
        char *rel = rel_known ? string_of(r[0].value) : NULL, *ver = string_of(r[1].value);
        const char *kind = ver && !strncmp(ver, "Girder", 6) ? "girder" : "erlang";
        int64_t pc = int_or(r[2].value, -1);
        term_t reg = r[5].value;
        if (jb->o->json) {
            json_node(jb);
            cli_json_key(&jb->j, "kind");
            cli_json_str(&jb->j, kind);
            cli_json_key(&jb->j, "otp_release");
            cli_json_str(&jb->j, rel);
            cli_json_key(&jb->j, "system_version");
            cli_json_str(&jb->j, ver);
            cli_json_key(&jb->j, "process_count");
            cli_json_int(&jb->j, pc);
        } else {
            printf("%-15s %s\n%-15s %s\n%-15s %s\n%-15s %s\n%-15s %lld\n", "node",
                   term_atom_name(jb->node, NULL), "kind", kind, "otp_release", rel ? rel : "-",
                   "system_version", ver ? ver : "-", "process_count", (long long)pc);
        }
        print_atoms(jb, "visible_nodes", r[3].value);
        print_atoms(jb, "hidden_nodes", r[4].value);
        print_atoms(jb, "registered", reg);
        free(rel);
        free(ver);
    }
    for (size_t i = 0; i < 6; i++) cli_rpc_clear(&r[i]);
    return finish(jb, status, why);
}

static int info_process(job *jb)
{
    char why[1024] = "";
    term_t pid;
    int rc = resolve_target(jb, &pid, why, sizeof why);
    if (rc == CLI_USAGE) return finish(jb, rc, NULL);
    if (rc) return finish(jb, rc, why);
    term_t info = cli_call(jb->node, "erlang", "process_info",
                           term_list(1, (term_t[]){term_dup(pid)}), why, sizeof why);
    int status = CLI_OK;
    char *ptxt = text_for(jb, pid);
    if (info == TERM_NONE) {
        status = CLI_FAIL;
    } else if (!term_is_list(info)) {
        snprintf(why, sizeof why, "%s is not alive on %s", ptxt, term_atom_name(jb->node, NULL));
        status = CLI_FAIL;
    } else {
        if (jb->o->json) {
            json_node(jb);
            cli_json_key(&jb->j, "pid");
            cli_json_str(&jb->j, ptxt);
            cli_json_key(&jb->j, "info");
            cli_json_obj(&jb->j);
        } else {
            printf("%-18s %s\n", "pid", ptxt);
        }
        term_text_ctx ctx = cli_ctx(jb->node);
        for (term_t l = info; term_is_cons(l); l = term_tl(l)) {
            term_t e = term_hd(l);
            if (!term_is_tuple(e) || term_tuple_arity(e) != 2 ||
                !term_is_atom(term_tuple_elem(e, 0)))
                continue;
            const char *k = term_atom_name(term_tuple_elem(e, 0), NULL);
            char *v = cli_term_text(term_tuple_elem(e, 1), &ctx);
            if (jb->o->json) {
                cli_json_key(&jb->j, k);
                cli_json_str(&jb->j, v);
            } else {
                printf("%-18s %s\n", k, v);
            }
            free(v);
        }
        if (jb->o->json) cli_json_end(&jb->j);
    }
    free(ptxt);
    term_free(info);
    term_free(pid);
    return finish(jb, status, why);
}

static int info_body(job *jb)
{
    if (connect_or_fail(jb)) return CLI_FAIL;
    return jb->has_target ? info_process(jb) : info_node(jb);
}

int cli_cmd_info(const cli_opts *o)
{
    char names[1][256];
    job jb;
    if (one_node(&jb, o, names)) return CLI_USAGE;
    if (o->argc > 1 && target_arg(&jb, o->argv[1])) return CLI_USAGE;
    jb.body = info_body;
    int rc = run_job(&jb);
    term_free(jb.target_pid.t);
    return rc;
}

/* ================================================================ rpc and spawn */

/* MOD FUN [ARGS] from argv[1..]. */
static int mfa_args(job *jb, const cli_opts *o)
{
    if (atom_arg(o->argv[1], "MOD", &jb->mod) || atom_arg(o->argv[2], "FUN", &jb->fun))
        return CLI_USAGE;
    jb->args.what = "ARGS";
    jb->args.text = o->argc > 3 ? o->argv[3] : "[]";
    if (parse_text(&jb->args, NULL)) return CLI_USAGE;
    if (!jb->args.need_ctx && term_list_length(jb->args.t) < 0) {
        cli_err("ARGS: '%s' is not a proper list (write the arguments as [A1, A2, ...])",
                jb->args.text);
        return CLI_USAGE;
    }
    return CLI_OK;
}

/* The call's text for messages: mod:fun/arity. */
static void mfa_label(job *jb, char *out, size_t n)
{
    char *m = cli_term_text(jb->mod, NULL), *f = cli_term_text(jb->fun, NULL);
    snprintf(out, n, "%s:%s/%ld", m, f, term_list_length(jb->args.t));
    free(m);
    free(f);
}

static int rpc_body(job *jb)
{
    if (connect_or_fail(jb)) return CLI_FAIL;
    char why[2048] = "", label[512];
    int rc = finish_arg(jb, &jb->args, why, sizeof why);
    if (rc == CLI_OK && term_list_length(jb->args.t) < 0) {
        cli_err("ARGS: '%s' is not a proper list", jb->args.text);
        rc = CLI_USAGE;
    }
    if (rc) return finish(jb, rc, rc == CLI_USAGE ? NULL : why);
    mfa_label(jb, label, sizeof label);
    cli_rpc r;
    cli_rpc_init(&r, jb->node, term_atom_name(jb->mod, NULL), term_atom_name(jb->fun, NULL),
                 term_dup(jb->args.t));
    cli_rpc_run(&r, 1, 1);
    int status = CLI_OK;
    term_text_ctx ctx = cli_ctx(jb->node);
    if (jb->o->json) {
        json_node(jb);
        cli_json_key(&jb->j, "call");
        cli_json_str(&jb->j, label);
    }
    if (r.out == CLI_RPC_RETURN) {
        if (jb->o->json) {
            cli_json_key(&jb->j, "result");
            cli_json_term(&jb->j, r.value, &ctx);
        } else {
            char *t = cli_term_text(r.value, &ctx);
            printf("%s\n", t);
            free(t);
        }
    } else {
        char d[1024];
        cli_rpc_describe(&r, d, sizeof d);
        snprintf(why, sizeof why, "rpc %s %s: %s", term_atom_name(jb->node, NULL), label, d);
        status = CLI_FAIL;
        if (jb->o->json &&
            (r.out == CLI_RPC_THROW || r.out == CLI_RPC_EXIT || r.out == CLI_RPC_ERROR)) {
            cli_json_key(&jb->j, "class");
            cli_json_str(&jb->j, r.out == CLI_RPC_THROW  ? "throw"
                                 : r.out == CLI_RPC_EXIT ? "exit"
                                                         : "error");
            cli_json_key(&jb->j, "reason");
            cli_json_term(&jb->j, r.value, &ctx);
            if (r.stack != TERM_NONE) {
                cli_json_key(&jb->j, "stack");
                cli_json_term(&jb->j, r.stack, &ctx);
            }
        }
    }
    cli_rpc_clear(&r);
    return finish(jb, status, why);
}

int cli_cmd_rpc(const cli_opts *o)
{
    char names[1][256];
    job jb;
    if (one_node(&jb, o, names) || mfa_args(&jb, o)) return CLI_USAGE;
    jb.body = rpc_body;
    int rc = run_job(&jb);
    term_free(jb.args.t);
    return rc;
}

static int spawn_body(job *jb)
{
    if (connect_or_fail(jb)) return CLI_FAIL;
    char why[2048] = "", label[512];
    int rc = finish_arg(jb, &jb->args, why, sizeof why);
    if (rc == CLI_OK && term_list_length(jb->args.t) < 0) {
        cli_err("ARGS: '%s' is not a proper list", jb->args.text);
        rc = CLI_USAGE;
    }
    if (rc) return finish(jb, rc, rc == CLI_USAGE ? NULL : why);
    mfa_label(jb, label, sizeof label);
    /* an Erlang node has 'user', the group leader its own spawns would get */
    term_t user = cli_call(jb->node, "erlang", "whereis", term_list(1, (term_t[]){A("user")}), why,
                           sizeof why);
    if (user == TERM_NONE) return finish(jb, CLI_FAIL, why);
    cli_rpc r;
    cli_rpc_init(&r, jb->node, term_atom_name(jb->mod, NULL), term_atom_name(jb->fun, NULL),
                 term_dup(jb->args.t));
    r.spawn_only = true;
    cli_rpc_run(&r, 1, 1);
    int status = CLI_OK;
    if (r.out == CLI_RPC_RETURN) {
        if (term_is_pid(user)) {
            term_t v = cli_call(jb->node, "erlang", "group_leader",
                                term_list(2, (term_t[]){term_dup(user), term_dup(r.value)}), why,
                                sizeof why);
            /* the process may already have ended: then there is nothing to redirect */
            term_free(v);
            why[0] = 0;
        }
        char *p = text_for(jb, r.value);
        if (jb->o->json) {
            json_node(jb);
            cli_json_key(&jb->j, "pid");
            cli_json_str(&jb->j, p);
        } else {
            printf("%s\n", p);
        }
        free(p);
    } else {
        char d[1024];
        cli_rpc_describe(&r, d, sizeof d);
        snprintf(why, sizeof why, "spawn %s %s: %s", term_atom_name(jb->node, NULL), label, d);
        status = CLI_FAIL;
    }
    term_free(user);
    cli_rpc_clear(&r);
    return finish(jb, status, why);
}

int cli_cmd_spawn(const cli_opts *o)
{
    char names[1][256];
    job jb;
    if (one_node(&jb, o, names) || mfa_args(&jb, o)) return CLI_USAGE;
    jb.body = spawn_body;
    int rc = run_job(&jb);
    term_free(jb.args.t);
    return rc;
}

/* ================================================================ send and exit */

static int send_body(job *jb)
{
    if (connect_or_fail(jb)) return CLI_FAIL;
    char why[1024] = "";
    int rc = finish_arg(jb, &jb->payload, why, sizeof why);
    if (rc) return finish(jb, rc, rc == CLI_USAGE ? NULL : why);
    term_t pid;
    rc = resolve_target(jb, &pid, why, sizeof why);
    if (rc) return finish(jb, rc, rc == CLI_USAGE ? NULL : why);
    char *ptxt = text_for(jb, pid);
    int alive = alive_on_node(jb, pid, why, sizeof why);
    int status = CLI_OK;
    if (alive < 0) {
        status = CLI_FAIL;
    } else if (!alive) {
        snprintf(why, sizeof why, "%s is not alive on %s", ptxt, term_atom_name(jb->node, NULL));
        status = CLI_FAIL;
    } else {
        term_t to = jb->target_name != TERM_NONE ? term_tuplev(2, jb->target_name, jb->node)
                                                 : term_dup(pid);
        rc = nd_send(to, term_dup(jb->payload.t));
        term_free(to);
        /* one more round trip: the message has reached the node before we disconnect */
        if (rc || alive_on_node(jb, pid, why, sizeof why) < 0) {
            if (rc) snprintf(why, sizeof why, "sending failed: %s", nd_strerror(rc));
            status = CLI_FAIL;
        }
    }
    if (status == CLI_OK) {
        if (jb->o->json) {
            json_node(jb);
            cli_json_key(&jb->j, "to");
            if (jb->target_name != TERM_NONE)
                cli_json_str(&jb->j, term_atom_name(jb->target_name, NULL));
            else
                cli_json_str(&jb->j, ptxt);
            cli_json_key(&jb->j, "pid");
            cli_json_str(&jb->j, ptxt);
            cli_json_key(&jb->j, "message");
            term_text_ctx ctx = cli_ctx(jb->node);
            cli_json_term(&jb->j, jb->payload.t, &ctx);
        } else {
            printf("ok\n");
        }
    }
    free(ptxt);
    term_free(pid);
    return finish(jb, status, why);
}

int cli_cmd_send(const cli_opts *o)
{
    char names[1][256];
    job jb;
    if (one_node(&jb, o, names) || target_arg(&jb, o->argv[1])) return CLI_USAGE;
    jb.payload.what = "TERM";
    jb.payload.text = o->argv[2];
    if (parse_text(&jb.payload, NULL)) return CLI_USAGE;
    jb.body = send_body;
    int rc = run_job(&jb);
    term_free(jb.payload.t);
    term_free(jb.target_pid.t);
    return rc;
}

static int exit_body(job *jb)
{
    if (connect_or_fail(jb)) return CLI_FAIL;
    char why[1024] = "";
    int rc = finish_arg(jb, &jb->payload, why, sizeof why);
    if (rc) return finish(jb, rc, rc == CLI_USAGE ? NULL : why);
    term_t pid;
    rc = resolve_target(jb, &pid, why, sizeof why);
    if (rc) return finish(jb, rc, rc == CLI_USAGE ? NULL : why);
    char *ptxt = text_for(jb, pid);
    int status = CLI_OK;
    int alive = alive_on_node(jb, pid, why, sizeof why);
    if (alive == 0) {
        snprintf(why, sizeof why, "%s is not alive on %s", ptxt, term_atom_name(jb->node, NULL));
        status = CLI_FAIL;
    } else if (alive < 0) {
        status = CLI_FAIL;
    } else {
        rc = nd_exit_signal(pid, term_dup(jb->payload.t));
        alive = rc ? -1 : alive_on_node(jb, pid, why, sizeof why);
        /* the target handles the signal in its own time, after rex may have answered: one
        ** that can end it (any reason but normal) gets up to 1 s (within --timeout) to do so */
        int64_t waited = 0;
        while (alive == 1 && jb->payload.t != term_atom("normal") && waited < 1000 &&
               cli_remaining_ms() > 100) {
            nd_sleep(20);
            waited += 20;
            alive = alive_on_node(jb, pid, why, sizeof why);
        }
        if (rc) snprintf(why, sizeof why, "sending the exit signal failed: %s", nd_strerror(rc));
        if (alive < 0) status = CLI_FAIL;
    }
    if (status == CLI_OK) {
        term_text_ctx ctx = cli_ctx(jb->node);
        if (jb->o->json) {
            json_node(jb);
            cli_json_key(&jb->j, "pid");
            cli_json_str(&jb->j, ptxt);
            cli_json_key(&jb->j, "reason");
            cli_json_term(&jb->j, jb->payload.t, &ctx);
            cli_json_key(&jb->j, "alive");
            cli_json_bool(&jb->j, alive == 1);
        } else {
            printf("%s %s\n", ptxt, alive ? "is still alive" : "exited");
        }
    }
    free(ptxt);
    term_free(pid);
    return finish(jb, status, why);
}

int cli_cmd_exit(const cli_opts *o)
{
    char names[1][256];
    job jb;
    if (one_node(&jb, o, names) || target_arg(&jb, o->argv[1])) return CLI_USAGE;
    jb.payload.what = "REASON";
    jb.payload.text = o->argc > 2 ? o->argv[2] : "kill";
    if (parse_text(&jb.payload, NULL)) return CLI_USAGE;
    jb.body = exit_body;
    int rc = run_job(&jb);
    term_free(jb.payload.t);
    term_free(jb.target_pid.t);
    return rc;
}

/* ================================================================ stop */

static bool connected(term_t node)
{
    term_t l = dist_nodes(DIST_CONNECTED);
    bool found = false;
    for (term_t x = l; term_is_cons(x) && !found; x = term_tl(x)) found = term_hd(x) == node;
    term_free(l);
    return found;
}

static int stop_body(job *jb)
{
    if (connect_or_fail(jb)) return CLI_FAIL;
    char why[1024] = "";
    cli_rpc r;
    cli_rpc_init(&r, jb->node, "init", "stop", TERM_NIL);
    cli_rpc_run(&r, 1, 1);
    const char *name = term_atom_name(jb->node, NULL);
    int status = CLI_OK;
    if (r.out == CLI_RPC_ERROR && r.value == A("undef")) {
        snprintf(why, sizeof why, "%s does not offer init:stop/0 (undef)", name);
        status = CLI_FAIL;
    } else if (r.out != CLI_RPC_RETURN && r.out != CLI_RPC_NOCONN) {
        char d[900];
        cli_rpc_describe(&r, d, sizeof d);
        snprintf(why, sizeof why, "init:stop() on %s: %s", name, d);
        status = CLI_FAIL;
    } else {
        /* graceful shutdown takes a moment: wait for the connection to close */
        while (connected(jb->node) && cli_remaining_ms() > 0) nd_sleep(20);
        if (connected(jb->node)) {
            snprintf(why, sizeof why,
                     "%s accepted init:stop() but was still connected after %lld ms (--timeout)",
                     name, (long long)jb->o->timeout_ms);
            status = CLI_FAIL;
        }
    }
    if (status == CLI_OK) {
        if (jb->o->json) {
            json_node(jb);
            cli_json_key(&jb->j, "stopped");
            cli_json_bool(&jb->j, true);
        } else {
            printf("%s stopped\n", name);
        }
    }
    cli_rpc_clear(&r);
    return finish(jb, status, why);
}

int cli_cmd_stop(const cli_opts *o)
{
    char names[1][256];
    job jb;
    if (one_node(&jb, o, names)) return CLI_USAGE;
    jb.body = stop_body;
    return run_job(&jb);
}
