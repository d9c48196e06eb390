/* girder chaos: run (seeded, bounded rounds of faults against a cluster running the workload),
 * check (a saved history), proxy (the relay, for a container). */
#include "chaos.h"
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *const chaos_fault_names[NFAULTS] = {"kill",   "restart", "pause",   "partition",
                                                "oneway", "loss",    "latency", "slice"};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static const char usage_text[] =
    "usage: girder chaos run [--backend local|docker] [--seed N] [--rounds N] [--duration S]\n"
    "                        [--faults F,...] [--out DIR] [--ticktime S] [--girder N]\n"
    "                        [--erlang K] [--netns auto|on|off] [--sabotage drop-down=N]\n"
    "                        [--compose FILE] [--project NAME] [--verbose]\n"
    "       girder chaos check HISTORY [--out DIR] [--quiet]\n"
    "       girder chaos proxy --listen ADDR --epmd-port P --node NAME=HOST[:PORT]...\n"
    "                          [--control PATH]\n"
    "\n"
    "run: starts a cluster (local: girderd and erl processes on this machine, each in a network\n"
    "namespace of its own when root, behind a relay; docker: the compose cluster of docker/),\n"
    "runs the chaos workload on every node, and plays ROUNDS rounds of faults chosen by SEED —\n"
    "kill, restart, pause, partition, oneway, loss, latency, slice — each healed before its\n"
    "round ends. Then it checks the history (below) and exits 1 on any violation.\n"
    "  --backend     local (default) or docker\n"
    "  --seed        the seed (default: from the clock; printed, so the run can be replayed)\n"
    "  --rounds      rounds to play (default 10)\n"
    "  --duration    stop starting rounds after this many seconds (default: no bound)\n"
    "  --faults      the fault kinds to use (default: every one the backend can do here)\n"
    "  --out         where history, logs, report.json and timeline.md go (default ./chaos-out)\n"
    "  --ticktime    net_ticktime of every node, seconds (default 4)\n"
    "  --girder, --erlang   local: how many girderd and erl nodes (default 3 and 1)\n"
    "  --netns       local: network namespaces (default auto: when root and possible)\n"
    "  --sabotage    passed to every girderd: TESTING ONLY, makes it drop DOWN signals\n"
    "  --compose, --project   docker: the compose file (default docker/docker-compose.yml)\n"
    "                and project name\n"
    "\n"
    "check: reads a history (JSON lines), checks every invariant of docs/chaos.md, prints a\n"
    "summary and each violation with its witness lines, writes report.json and timeline.md\n"
    "into --out (default: the history's directory); exit status 1 on any violation.\n"
    "\n"
    "proxy: the relay alone, for a container (the docker backend runs it in service proxy).\n"
    "\n"
    "examples:\n"
    "  girder chaos run --rounds 5 --seed 42\n"
    "  girder chaos run --backend docker --rounds 24 --out build/chaos\n"
    "  girder chaos check build/chaos/history.jsonl\n";

/* ---------------------------------------------------------------- time, events, commands */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void chaos_event(chaos_run *r, const char *kind, const char *fmt, ...)
{
    char rest[2048] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rest, sizeof rest, fmt, ap);
        va_end(ap);
    }
    if (!r->events) return;
    fprintf(r->events, "{\"t\":%lld,\"node\":\"runner\",\"kind\":\"%s\"%s,\"n\":%lld}\n",
            (long long)now_us(), kind, rest, (long long)++r->nev);
    fflush(r->events);
}

bool chaos_sleep(int64_t ms)
{
    int64_t end = mono_ms() + ms;
    while (!interrupted) {
        int64_t left = end - mono_ms();
        if (left <= 0) return true;
        if (left > 100) left = 100;
        struct timespec ts = {0, (long)left * 1000000};
        nanosleep(&ts, NULL);
    }
    return false;
}

bool chaos_wait_pid(int pid, int64_t timeout_ms)
{
    int64_t end = mono_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid || (w < 0 && errno == ECHILD)) return true;
        if (mono_ms() >= end) return false;
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
}

static int run_cmd(char *const argv[], int64_t timeout_ms, bool quiet, char *out, size_t n)
{
    int pfd[2] = {-1, -1};
    if (out && pipe2(pfd, O_CLOEXEC) != 0) return -1;
    pid_t pid = fork();
    if (pid < 0) {
        if (out) {
            close(pfd[0]);
            close(pfd[1]);
        }
        return -1;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        if (out)
            dup2(pfd[1], 1);
        else if (quiet)
            dup2(nul, 1);
        if (quiet) dup2(nul, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    size_t got = 0;
    if (out) {
        close(pfd[1]);
        int64_t end = mono_ms() + timeout_ms;
        fcntl(pfd[0], F_SETFL, O_NONBLOCK);
        for (;;) {
            ssize_t k = n - 1 > got ? read(pfd[0], out + got, n - 1 - got) : 0;
            if (k > 0) {
                got += (size_t)k;
                continue;
            }
            if (k == 0 && got < n - 1) break;
            if (mono_ms() >= end) break;
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
            if (got >= n - 1) break;
        }
        close(pfd[0]);
        out[got] = 0;
        while (got > 0 && (out[got - 1] == '\n' || out[got - 1] == '\r')) out[--got] = 0;
    }
    int64_t end = mono_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (mono_ms() >= end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
}

int chaos_cmd(char *const argv[], int64_t timeout_ms, bool quiet)
{
    return run_cmd(argv, timeout_ms, quiet, NULL, 0);
}

int chaos_cmd_out(char *const argv[], int64_t timeout_ms, char *out, size_t n)
{
    return run_cmd(argv, timeout_ms, true, out, n);
}

/* ---------------------------------------------------------------- randomness */

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s ? *s : 0x9e3779b97f4a7c15u;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545f4914f6cdd1du;
}

static long rnd_between(uint64_t *s, long lo, long hi)
{
    return lo + (long)(rnd(s) % (uint64_t)(hi - lo + 1));
}

/* ---------------------------------------------------------------- watching the nodes' histories */

/* What the runner follows in the nodes' histories while it runs: each node's latest sample. */
typedef struct watch {
    chaos_hist h; /* for parsing and interning only: events are dropped after reading */
    off_t off[CHAOS_MAX_NODES];
    int64_t sample_t[CHAOS_MAX_NODES]; /* time of the latest sample */
    bool sees_all[CHAOS_MAX_NODES];    /* it listed every other node */
    const char *names[CHAOS_MAX_NODES];
} watch;

static void watch_poll(chaos_run *r, watch *w)
{
    for (size_t i = 0; i < r->nn; i++) {
        if (!w->names[i])
            w->names[i] = chaos_intern(&w->h, r->node[i].name, strlen(r->node[i].name));
        int fd = open(r->node[i].hist, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        char buf[65536];
        for (;;) {
            ssize_t k = pread(fd, buf, sizeof buf, w->off[i]);
            if (k <= 0) break;
            size_t used = 0;
            for (;;) {
                char *nl = memchr(buf + used, '\n', (size_t)k - used);
                if (!nl) break;
                size_t len = (size_t)(nl - (buf + used));
                if (chaos_hist_feed(&w->h, buf + used, len, 0) == 1) {
                    chaos_ev *e = &w->h.ev[--w->h.n];
                    if (e->kind == EV_SAMPLE && e->node == w->names[i]) {
                        bool all = true;
                        for (size_t j = 0; j < r->nn; j++) {
                            bool found = false;
                            for (size_t q = 0; q < e->nnodes; q++)
                                if (e->nodes[q] == w->names[j]) found = true;
                            if (j != i && !found) all = false;
                        }
                        w->sample_t[i] = e->t;
                        w->sees_all[i] = all;
                    }
                    free(e->nodes);
                }
                used += len + 1;
            }
            if (used == 0) break; /* a line longer than the buffer: wait for more */
            w->off[i] += (off_t)used;
        }
        close(fd);
    }
}

/* Waits until every node has sampled after `since` and lists every other node; the seconds it
** took, or -1 when the bound passed (or the run is interrupted). */
static double wait_whole(chaos_run *r, watch *w, int64_t since, int64_t bound_ms)
{
    int64_t start = mono_ms();
    while (!interrupted && mono_ms() - start <= bound_ms) {
        watch_poll(r, w);
        bool ok = true;
        for (size_t i = 0; i < r->nn && ok; i++) ok = w->sample_t[i] > since && w->sees_all[i];
        if (ok) return (double)(mono_ms() - start) / 1000;
        chaos_sleep(200);
    }
    return -1;
}

/* ---------------------------------------------------------------- faults */

static bool use_filter(chaos_run *r)
{
    return r->be->faults(r) & (1u << F_LOSS); /* packet filters where loss is possible */
}

static int filter_rules(chaos_run *r, chaos_node *v, bool add, int kind, int pct)
{
    char stat[96];
    snprintf(stat, sizeof stat, "! -i lo -m statistic --mode random --probability 0.%02d -j DROP",
             pct);
    char stat_o[96];
    snprintf(stat_o, sizeof stat_o,
             "! -o lo -m statistic --mode random --probability 0.%02d -j DROP", pct);
    int rc = 0;
    switch (kind) {
    case F_PARTITION:
        rc |= r->be->filter(r, v, add, "INPUT", "! -i lo -j DROP");
        rc |= r->be->filter(r, v, add, "OUTPUT", "! -o lo -j DROP");
        break;
    case F_ONEWAY:
        rc |= r->be->filter(r, v, add, "OUTPUT", "! -o lo -j DROP");
        break;
    case F_LOSS:
        rc |= r->be->filter(r, v, add, "INPUT", stat);
        rc |= r->be->filter(r, v, add, "OUTPUT", stat_o);
        break;
    }
    return rc;
}

/*
** Plays one fault on victim v: its events (fault_start with what it does, node_kill / node_stop
** / node_start, fault_heal), the fault held for its time, then healed. 0, or -1 when a step
** could not be done (said in r->err; the fault is healed as far as possible).
*/
static int play_fault(chaos_run *r, int round, int kind, chaos_node *v, uint64_t *rs)
{
    int64_t t4 = r->ticktime_s * 1000;             /* ticktime, ms */
    int64_t cut = t4 * 5 / 4 + r->slack_ms + 1000; /* long enough for everyone to notice */
    char text[256] = "";
    int64_t hold = 0;
    chaos_shape sh = {0};
    int pct = 0;
    bool sever = false;
    switch (kind) {
    case F_KILL:
        hold = 1500;
        sever = true;
        snprintf(text, sizeof text, "kill -9, start again after %.1f s", hold / 1000.0);
        break;
    case F_RESTART:
        sever = true;
        snprintf(text, sizeof text, "graceful stop, start again at once");
        break;
    case F_PAUSE:
        hold = cut;
        sever = true;
        snprintf(text, sizeof text, "stopped for %.1f s", hold / 1000.0);
        break;
    case F_PARTITION:
    case F_ONEWAY:
        hold = cut;
        sever = true;
        snprintf(text, sizeof text, "%s%s",
                 kind == F_ONEWAY ? "outgoing packets dropped" : "cut off",
                 use_filter(r) ? " (iptables)" : " (relay)");
        break;
    case F_LOSS:
        hold = t4;
        pct = (int)rnd_between(rs, 10, 30);
        snprintf(text, sizeof text, "%d%% of packets dropped both ways", pct);
        break;
    case F_LATENCY:
        hold = 3000;
        sh.latency_ms = (unsigned)rnd_between(rs, 50, 300);
        sh.jitter_ms = sh.latency_ms / 4;
        snprintf(text, sizeof text, "+%u ms +-%u ms on its connections", sh.latency_ms,
                 sh.jitter_ms);
        break;
    case F_SLICE:
        hold = 3000;
        sh.slice_bytes = (unsigned)rnd_between(rs, 1, 8);
        sh.slice_gap_us = (unsigned)rnd_between(rs, 100, 1000);
        snprintf(text, sizeof text, "its bytes %u at a time, %u us apart", sh.slice_bytes,
                 sh.slice_gap_us);
        break;
    }
    fprintf(stderr, "chaos: round %d: %s on %s: %s\n", round, chaos_fault_names[kind], v->name,
            text);
    chaos_event(r, "fault_start",
                ",\"round\":%d,\"fault\":\"%s\",\"victim\":\"%s\",\"hold_ms\":%lld,\"sever\":%s,"
                "\"text\":\"%s\"",
                round, chaos_fault_names[kind], v->name, (long long)hold, sever ? "true" : "false",
                text);
    int rc = 0;
    switch (kind) {
    case F_KILL:
        chaos_event(r, "node_kill", ",\"victim\":\"%s\"", v->name);
        rc = r->be->kill(r, v);
        chaos_sleep(hold);
        chaos_event(r, "node_start", ",\"victim\":\"%s\"", v->name);
        rc |= r->be->start(r, v);
        break;
    case F_RESTART:
        chaos_event(r, "node_stop", ",\"victim\":\"%s\"", v->name);
        rc = r->be->stop(r, v);
        chaos_event(r, "node_start", ",\"victim\":\"%s\"", v->name);
        rc |= r->be->start(r, v);
        break;
    case F_PAUSE:
        rc = r->be->pause(r, v, true);
        chaos_sleep(hold);
        rc |= r->be->pause(r, v, false);
        break;
    case F_PARTITION:
    case F_ONEWAY:
    case F_LOSS:
        if (use_filter(r)) {
            rc = filter_rules(r, v, true, kind, pct);
            chaos_sleep(hold);
            rc |= filter_rules(r, v, false, kind, pct);
        } else {
            sh.block_out = true;
            sh.block_in = kind == F_PARTITION;
            rc = r->be->shape(r, v, &sh);
            chaos_sleep(hold);
            rc |= r->be->shape(r, v, NULL);
        }
        break;
    case F_LATENCY:
    case F_SLICE:
        rc = r->be->shape(r, v, &sh);
        chaos_sleep(hold);
        rc |= r->be->shape(r, v, NULL);
        break;
    }
    chaos_event(r, "fault_heal", ",\"round\":%d,\"fault\":\"%s\",\"victim\":\"%s\"%s", round,
                chaos_fault_names[kind], v->name, rc ? ",\"text\":\"a step failed\"" : "");
    return rc ? -1 : 0;
}

/* ---------------------------------------------------------------- the run */

static int parse_faults(const char *s, unsigned *out)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    *out = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int k = -1;
        for (int i = 0; i < NFAULTS; i++)
            if (!strcmp(t, chaos_fault_names[i])) k = i;
        if (k < 0) {
            cli_err("chaos: --faults: unknown fault '%s' (kill, restart, pause, partition, "
                    "oneway, loss, latency, slice)",
                    t);
            return -1;
        }
        *out |= 1u << k;
    }
    return *out ? 0 : -1;
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -errno;
            *p = '/';
        }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -errno;
    return 0;
}

/* Removes the *.jsonl files of dir (a new run starts a new history). */
static void clear_histories(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4096 + 256];
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 6 && !strcmp(e->d_name + n - 6, ".jsonl")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

/* Reads every *.jsonl of dir into h. */
static int read_histories(chaos_hist *h, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -errno;
    struct dirent *e;
    char p[4096 + 256];
    int rc = 0;
    while ((e = readdir(d)) && !rc) {
        size_t n = strlen(e->d_name);
        if (n > 6 && !strcmp(e->d_name + n - 6, ".jsonl")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            rc = chaos_hist_read(h, p);
        }
    }
    closedir(d);
    return rc;
}

/* Sorts, writes OUT/history.jsonl, checks, reports. The exit status of the run. */
static int finish(chaos_run *r, bool run_ok)
{
    chaos_hist h = {0};
    int rc = read_histories(&h, r->histdir);
    if (rc) {
        cli_err("chaos: reading the histories in %s: %s", r->histdir, strerror(-rc));
        chaos_hist_free(&h);
        return CLI_FAIL;
    }
    chaos_hist_sort(&h);
    char path[4096 + 32];
    snprintf(path, sizeof path, "%s/history.jsonl", r->outdir);
    FILE *f = fopen(path, "we");
    if (f) {
        for (size_t i = 0; i < h.n; i++) fprintf(f, "%s\n", h.ev[i].raw);
        fclose(f);
    }
    chaos_result res;
    if (chaos_check(&h, &res) != 0) {
        cli_err("chaos: out of memory while checking");
        chaos_hist_free(&h);
        return CLI_FAIL;
    }
    rc = chaos_report(&h, &res, r->outdir, stdout);
    if (rc) cli_err("chaos: writing the report into %s: %s", r->outdir, strerror(-rc));
    printf("history %s, report %s/report.json, timeline %s/timeline.md\n", path, r->outdir,
           r->outdir);
    printf("replay: girder chaos run --backend %s --seed %llu --rounds %ld%s%s\n", r->be->name,
           (unsigned long long)r->seed, r->rounds, r->duration_s ? " --duration ..." : "",
           r->faults ? " --faults ..." : "");
    int status = res.nv || !run_ok ? CLI_FAIL : CLI_OK;
    if (!run_ok) printf("the run itself failed: %s\n", r->err[0] ? r->err : "interrupted");
    chaos_result_free(&res);
    chaos_hist_free(&h);
    return status;
}

/* Picks the rounds: each cycle through the fault kinds in an order drawn from the seed; the
** j-th use of a kind hits an Erlang node when (j + a bit drawn for the kind) is even, else a
** Girder node, so that every kind used twice or more meets both. */
static void schedule(chaos_run *r, unsigned kinds, uint64_t *rs, int *kind, int *victim)
{
    int list[NFAULTS], nk = 0, used[NFAULTS] = {0}, bit[NFAULTS];
    for (int i = 0; i < NFAULTS; i++) {
        bit[i] = (int)(rnd(rs) & 1);
        if (kinds & (1u << i)) list[nk++] = i;
    }
    size_t gi[CHAOS_MAX_NODES], ei[CHAOS_MAX_NODES], ng = 0, ne = 0;
    for (size_t i = 0; i < r->nn; i++) {
        if (r->node[i].erlang)
            ei[ne++] = i;
        else
            gi[ng++] = i;
    }
    for (long i = 0; i < r->rounds; i++) {
        if (i % nk == 0)
            for (int k = nk - 1; k > 0; k--) {
                int j = (int)(rnd(rs) % (uint64_t)(k + 1)), t = list[k];
                list[k] = list[j];
                list[j] = t;
            }
        int k = list[i % nk];
        bool erl = ne && (!ng || (used[k] + bit[k]) % 2 == 0);
        used[k]++;
        kind[i] = k;
        victim[i] = (int)(erl ? ei[rnd(rs) % ne] : gi[rnd(rs) % ng]);
    }
}

static int cmd_run(chaos_run *r)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (mkdir_p(r->outdir) ||
        snprintf(r->histdir, sizeof r->histdir, "%s/history", r->outdir) >=
            (int)sizeof r->histdir ||
        mkdir_p(r->histdir)) {
        cli_err("chaos: cannot make %s/history", r->outdir);
        return CLI_FAIL;
    }
    char logs[4096 + 8];
    snprintf(logs, sizeof logs, "%s/logs", r->outdir);
    mkdir_p(logs);
    clear_histories(r->histdir);
    char path[4096 + 32];
    snprintf(path, sizeof path, "%s/runner.jsonl", r->histdir);
    if (!(r->events = fopen(path, "we"))) {
        cli_err("chaos: %s: %s", path, strerror(errno));
        return CLI_FAIL;
    }
    uint64_t rs = r->seed ^ 0x5c4a05;
    snprintf(r->cookie, sizeof r->cookie, "chaos%llu", (unsigned long long)(rnd(&rs) % 1000000007));
    printf("chaos: seed %llu, %ld rounds, backend %s, out %s\n", (unsigned long long)r->seed,
           r->rounds, r->be->name, r->outdir);
    fflush(stdout);
    bool ok = true;
    int *kind = calloc((size_t)r->rounds + 1, sizeof *kind);
    int *victim = calloc((size_t)r->rounds + 1, sizeof *victim);
    watch *w = calloc(1, sizeof *w);
    if (!kind || !victim || !w) {
        snprintf(r->err, sizeof r->err, "out of memory");
        ok = false;
        goto done;
    }
    if (r->be->setup(r) != 0) {
        ok = false;
        goto done;
    }
    unsigned can = r->be->faults(r);
    unsigned kinds = r->faults ? r->faults & can : can;
    if (r->faults & ~can)
        for (int i = 0; i < NFAULTS; i++)
            if (r->faults & ~can & (1u << i))
                fprintf(stderr,
                        "chaos: fault %s is not possible with this backend here "
                        "(left out)\n",
                        chaos_fault_names[i]);
    if (!kinds) {
        snprintf(r->err, sizeof r->err, "no fault kind left to play");
        ok = false;
        goto teardown;
    }
    char names[CHAOS_MAX_NODES * 170] = "", kinds_s[256] = "";
    for (size_t i = 0; i < r->nn; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s\"%s\"", i ? "," : "",
                 r->node[i].name);
    for (int i = 0; i < NFAULTS; i++)
        if (kinds & (1u << i))
            snprintf(kinds_s + strlen(kinds_s), sizeof kinds_s - strlen(kinds_s), "%s%s",
                     kinds_s[0] ? "," : "", chaos_fault_names[i]);
    chaos_event(r, "run_start",
                ",\"seed\":%llu,\"rounds\":%ld,\"backend\":\"%s\",\"ticktime_ms\":%ld,"
                "\"slack_ms\":%lld,\"settle_ms\":%lld,\"nodes\":[%s],\"text\":\"faults %s%s%s\"",
                (unsigned long long)r->seed, r->rounds, r->be->name, r->ticktime_s * 1000,
                (long long)r->slack_ms, (long long)r->settle_ms, names, kinds_s,
                r->sabotage ? "; sabotage " : "", r->sabotage ? r->sabotage : "");
    for (size_t i = 0; i < r->nn && ok; i++) {
        chaos_event(r, "node_start", ",\"victim\":\"%s\"", r->node[i].name);
        if (r->be->start(r, &r->node[i]) != 0) ok = false;
    }
    if (!ok) goto teardown;
    double took = wait_whole(r, w, 0, 2 * r->settle_ms);
    if (took < 0) {
        snprintf(r->err, sizeof r->err,
                 "the cluster did not come up whole within %lld s (logs in %.200s/logs)",
                 (long long)(2 * r->settle_ms / 1000), r->outdir);
        chaos_event(r, "settle_failed", ",\"round\":0");
        ok = false;
        goto teardown;
    }
    chaos_event(r, "settled", ",\"round\":0,\"text\":\"whole after %.1f s\"", took);
    fprintf(stderr, "chaos: cluster whole after %.1f s\n", took);
    chaos_sleep(3000);
    schedule(r, kinds, &rs, kind, victim);
    int64_t t_start = mono_ms();
    for (long i = 0; i < r->rounds && !interrupted; i++) {
        if (r->duration_s && mono_ms() - t_start > r->duration_s * 1000) {
            fprintf(stderr, "chaos: --duration reached after %ld rounds\n", i);
            break;
        }
        int round = (int)i + 1;
        chaos_event(r, "round_start", ",\"round\":%d", round);
        int64_t heal_t;
        if (play_fault(r, round, kind[i], &r->node[victim[i]], &rs) != 0) {
            snprintf(r->err, sizeof r->err, "round %d: fault %.200s on %.200s could not be played",
                     round, chaos_fault_names[kind[i]], r->node[victim[i]].name);
            ok = false;
            break;
        }
        heal_t = now_us();
        took = wait_whole(r, w, heal_t, r->settle_ms);
        if (took < 0) {
            chaos_event(r, "settle_failed", ",\"round\":%d", round);
            fprintf(stderr, "chaos: round %d: the mesh is not whole after %lld s\n", round,
                    (long long)(r->settle_ms / 1000));
        } else {
            chaos_event(r, "settled", ",\"round\":%d,\"text\":\"whole after %.1f s\"", round, took);
        }
        chaos_sleep(2500); /* the workload rebuilds its pairs; samples show the round's end */
        chaos_event(r, "round_end", ",\"round\":%d", round);
    }
    if (interrupted) snprintf(r->err, sizeof r->err, "interrupted");
    chaos_sleep(1000);
    chaos_event(r, "run_end", NULL);
teardown:
    if (interrupted) ok = false;
    r->be->teardown(r);
done:
    if (w) chaos_hist_free(&w->h);
    free(w);
    free(kind);
    free(victim);
    if (r->events) fclose(r->events);
    r->events = NULL;
    return finish(r, ok);
}

/* ---------------------------------------------------------------- check and proxy */

static int cmd_check(const char *hist, const char *out, bool quiet)
{
    chaos_hist h = {0};
    int rc = chaos_hist_read(&h, hist);
    if (rc) {
        cli_err("chaos: %s: %s", hist, strerror(-rc));
        chaos_hist_free(&h);
        return CLI_FAIL;
    }
    chaos_hist_sort(&h);
    chaos_result res;
    if (chaos_check(&h, &res) != 0) {
        cli_err("chaos: out of memory while checking");
        chaos_hist_free(&h);
        return CLI_FAIL;
    }
    char dir[4096];
    if (!out) {
        snprintf(dir, sizeof dir, "%s", hist);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = 0;
        else
            snprintf(dir, sizeof dir, ".");
        out = dir;
    }
    rc = mkdir_p(out);
    if (!rc) rc = chaos_report(&h, &res, out, quiet ? NULL : stdout);
    if (rc) cli_err("chaos: writing the report into %s: %s", out, strerror(-rc));
    /* a verdict without its report.json is no pass: CI reads the file */
    int status = res.nv || rc ? CLI_FAIL : CLI_OK;
    if (quiet)
        for (size_t i = 0; i < res.nv; i++)
            printf("VIOLATION %s: %s\n", chaos_inv_names[res.v[i].inv], res.v[i].msg);
    chaos_result_free(&res);
    chaos_hist_free(&h);
    return status;
}

static int cmd_proxy(const char *listen_addr, long epmd_port, chaos_upstream *ups, size_t n,
                     const char *control)
{
    char err[256] = "";
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    chaos_proxy *p = chaos_proxy_start(listen_addr, (uint16_t)epmd_port, ups, n, err, sizeof err);
    if (!p) {
        cli_err("chaos proxy: %s", err[0] ? err : "cannot start");
        return CLI_FAIL;
    }
    int rc = control ? chaos_proxy_control(p, control) : 0;
    if (rc) {
        cli_err("chaos proxy: control socket %s: %s", control, strerror(-rc));
        chaos_proxy_stop(p);
        return CLI_FAIL;
    }
    fprintf(stderr, "chaos proxy: port mapper front on %s:%ld for %zu nodes%s%s\n", listen_addr,
            epmd_port, n, control ? ", control " : "", control ? control : "");
    while (!interrupted) pause();
    chaos_proxy_stop(p);
    return CLI_OK;
}

/* ---------------------------------------------------------------- arguments */

static bool num(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* The executables and workload files next to this girder (bin/ and lib/girder/...). */
static void default_paths(chaos_run *r)
{
    char dir[2048];
    if (cli_exe_dir(dir, sizeof dir) != 0) snprintf(dir, sizeof dir, ".");
    snprintf(r->girderd, sizeof r->girderd, "%s/girderd", dir);
    snprintf(r->epmd, sizeof r->epmd, "%s/girder-epmd", dir);
    snprintf(r->module, sizeof r->module, "%s/../lib/girder/modules/chaos_workload.so", dir);
    snprintf(r->beamdir, sizeof r->beamdir, "%s/../lib/girder/chaos", dir);
    snprintf(r->erl, sizeof r->erl, "erl");
}

int cli_cmd_chaos(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "run") && strcmp(sub, "check") && strcmp(sub, "proxy")) {
        cli_err("chaos: unknown subcommand '%s' (run, check or proxy)", sub);
        return CLI_USAGE;
    }
    static chaos_run r;
    memset(&r, 0, sizeof r);
    r.be = &chaos_backend_local;
    r.rounds = 10;
    r.ticktime_s = 4;
    r.n_girder = 3;
    r.n_erlang = 1;
    r.out = "chaos-out";
    r.seed = (uint64_t)now_us() % 1000000000u;
    default_paths(&r);
    const char *hist = NULL, *control = NULL, *listen_addr = "0.0.0.0";
    long epmd_port = 4369;
    chaos_upstream ups[CHAOS_MAX_NODES];
    size_t nups = 0;
    bool quiet = false, out_given = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
#define TAKES()                                            \
    do {                                                   \
        if (!v) {                                          \
            cli_err("chaos %s: %s needs a value", sub, a); \
            return CLI_USAGE;                              \
        }                                                  \
        i++;                                               \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage_text, stdout);
            return CLI_OK;
        } else if (!strcmp(a, "--backend")) {
            TAKES();
            if (!strcmp(v, "local"))
                r.be = &chaos_backend_local;
            else if (!strcmp(v, "docker"))
                r.be = &chaos_backend_docker;
            else {
                cli_err("chaos run: --backend: '%s' is not local or docker", v);
                return CLI_USAGE;
            }
        } else if (!strcmp(a, "--seed")) {
            TAKES();
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 10);
            if (!*v || *end || errno) {
                cli_err("chaos run: --seed: '%s' is not a number", v);
                return CLI_USAGE;
            }
            r.seed = s;
        } else if (!strcmp(a, "--rounds") || !strcmp(a, "--duration") || !strcmp(a, "--ticktime") ||
                   !strcmp(a, "--girder") || !strcmp(a, "--erlang") || !strcmp(a, "--epmd-port")) {
            TAKES();
            long lo = !strcmp(a, "--girder") || !strcmp(a, "--erlang") ? 0 : 1;
            long hi = !strcmp(a, "--girder") || !strcmp(a, "--erlang") ? 8
                      : !strcmp(a, "--epmd-port")                      ? 65535
                                                                       : 1000000;
            if (!num(v, lo, hi, &n)) {
                cli_err("chaos %s: %s: '%s' is not a number in %ld..%ld", sub, a, v, lo, hi);
                return CLI_USAGE;
            }
            if (!strcmp(a, "--rounds")) r.rounds = n;
            if (!strcmp(a, "--duration")) r.duration_s = n;
            if (!strcmp(a, "--ticktime")) r.ticktime_s = n;
            if (!strcmp(a, "--girder")) r.n_girder = n;
            if (!strcmp(a, "--erlang")) r.n_erlang = n;
            if (!strcmp(a, "--epmd-port")) epmd_port = n;
        } else if (!strcmp(a, "--faults")) {
            TAKES();
            if (parse_faults(v, &r.faults)) return CLI_USAGE;
        } else if (!strcmp(a, "--out")) {
            TAKES();
            r.out = v;
            out_given = true;
        } else if (!strcmp(a, "--netns")) {
            TAKES();
            if (strcmp(v, "auto") && strcmp(v, "on") && strcmp(v, "off")) {
                cli_err("chaos run: --netns: '%s' is not auto, on or off", v);
                return CLI_USAGE;
            }
            r.netns = v;
        } else if (!strcmp(a, "--sabotage")) {
            TAKES();
            r.sabotage = v;
        } else if (!strcmp(a, "--compose")) {
            TAKES();
            r.compose = v;
        } else if (!strcmp(a, "--project")) {
            TAKES();
            r.project = v;
        } else if (!strcmp(a, "--girderd") || !strcmp(a, "--module") || !strcmp(a, "--beam-dir") ||
                   !strcmp(a, "--erl")) {
            TAKES();
            char *dst = !strcmp(a, "--girderd")  ? r.girderd
                        : !strcmp(a, "--module") ? r.module
                        : !strcmp(a, "--erl")    ? r.erl
                                                 : r.beamdir;
            snprintf(dst, 4096, "%s", v);
        } else if (!strcmp(a, "--verbose")) {
            r.verbose = true;
        } else if (!strcmp(a, "--quiet")) {
            quiet = true;
        } else if (!strcmp(a, "--listen")) {
            TAKES();
            listen_addr = v;
        } else if (!strcmp(a, "--control")) {
            TAKES();
            control = v;
        } else if (!strcmp(a, "--node")) {
            TAKES();
            /* NAME=HOST[:PORT] */
            static char store[CHAOS_MAX_NODES][256];
            if (nups == CHAOS_MAX_NODES) {
                cli_err("chaos proxy: at most %d nodes", CHAOS_MAX_NODES);
                return CLI_USAGE;
            }
            snprintf(store[nups], sizeof store[nups], "%s", v);
            char *eq = strchr(store[nups], '='), *colon;
            if (!eq || eq == store[nups] || !eq[1]) {
                cli_err("chaos proxy: --node: expected NAME=HOST[:PORT], got '%s'", v);
                return CLI_USAGE;
            }
            *eq = 0;
            ups[nups].name = store[nups];
            ups[nups].host = eq + 1;
            ups[nups].epmd_port = 4369;
            if ((colon = strchr(eq + 1, ':'))) {
                *colon = 0;
                if (!num(colon + 1, 1, 65535, &n)) {
                    cli_err("chaos proxy: --node: bad port in '%s'", v);
                    return CLI_USAGE;
                }
                ups[nups].epmd_port = (uint16_t)n;
            }
            nups++;
        } else if (a[0] != '-' && !strcmp(sub, "check") && !hist) {
            hist = a;
        } else {
            cli_err("chaos %s: unexpected argument '%s' (see girder chaos --help)", sub, a);
            return CLI_USAGE;
        }
#undef TAKES
    }
    if (!strcmp(sub, "check")) {
        if (!hist) {
            cli_err("chaos check: which history? (girder chaos check FILE)");
            return CLI_USAGE;
        }
        return cmd_check(hist, out_given ? r.out : NULL, quiet);
    }
    if (!strcmp(sub, "proxy")) {
        if (!nups) {
            cli_err("chaos proxy: give the nodes with --node NAME=HOST[:PORT]");
            return CLI_USAGE;
        }
        return cmd_proxy(listen_addr, epmd_port, ups, nups, control);
    }
    if (r.n_girder + r.n_erlang < 2 || r.n_girder + r.n_erlang > CHAOS_MAX_NODES) {
        cli_err("chaos run: between 2 and %d nodes (--girder + --erlang)", CHAOS_MAX_NODES);
        return CLI_USAGE;
    }
    if (r.out[0] == '/')
        snprintf(r.outdir, sizeof r.outdir, "%s", r.out);
    else {
        char cwd[2048];
        if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, ".");
        snprintf(r.outdir, sizeof r.outdir, "%s/%s", cwd, r.out);
    }
    r.setuptime_s = r.ticktime_s > 3 ? 3 : r.ticktime_s;
    r.slack_ms = r.be == &chaos_backend_docker ? 3000 : 2000;
    r.settle_ms = r.be == &chaos_backend_docker ? 60000 : 30000;
    return cmd_run(&r);
}
