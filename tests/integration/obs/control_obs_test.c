/* The control API's observability methods (metrics.get, trace.*) against a real girderd. */
#include "ctlclient.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

/*
** Environment: GIRDERD, GIRDER_EPMD. Starts a private port mapper and one girderd (2
** schedulers, the demo module's echo and kv) with its control socket in a temporary directory
** and prints "ok - NAME" / "not ok - NAME: why" per check.
*/

static char tmp[256], sock[300], logp[300];
static pid_t epmd_pid, g_pid;
static int failures;
static uint32_t next_id = 1;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool check(bool cond, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool check(bool cond, const char *name, const char *fmt, ...)
{
    if (cond) {
        printf("ok - %s\n", name);
        fflush(stdout);
        return true;
    }
    va_list ap;
    va_start(ap, fmt);
    printf("not ok - %s: ", name);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    failures++;
    return false;
}

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t p = fork();
    if (p == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return p;
}

static void stop(pid_t p, int sig)
{
    if (p <= 0) return;
    kill(p, sig);
    for (int64_t end = now_ms() + 10000; now_ms() < end;) {
        if (waitpid(p, NULL, WNOHANG) == p) return;
        usleep(20000);
    }
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
}

static void cleanup(void)
{
    stop(g_pid, SIGTERM);
    stop(epmd_pid, SIGKILL);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "grep -l 'Sanitizer\\|runtime error:' %s", logp);
    if (system(cmd) == 0) {
        printf("not ok - a sanitizer report in the node's log\n");
        failures++;
    }
    if (failures) {
        snprintf(cmd, sizeof cmd, "tail -n 30 %s", logp);
        if (system(cmd)) {
        }
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (!getenv("KEEP_TMP") && system(cmd)) {
    }
    if (failures) _exit(1);
}

typedef struct res {
    msgpack_unpacked u;
    const msgpack_object *err, *val;
    int rc;
} res;

/* args: see ctl_pack_request (s:TEXT, i:N, opt:K=V...). */
static res call_on(ctl_conn *c, const char *method, int n, char *const *args)
{
    res r = {0};
    r.rc = ctl_call(c, next_id++, method, n, args, &r.u, 30000);
    if (r.rc == 1) {
        const msgpack_object *e = &r.u.data.via.array.ptr[2];
        r.err = e->type == MSGPACK_OBJECT_NIL ? NULL : e;
        r.val = &r.u.data.via.array.ptr[3];
    }
    return r;
}

static res call1(const char *method, int n, char *const *args)
{
    ctl_conn c;
    res r = {.rc = -1};
    if (ctl_connect(&c, sock)) return r;
    r = call_on(&c, method, n, args);
    ctl_close(&c);
    return r;
}

static void res_free(res *r)
{
    if (r->rc == 1) msgpack_unpacked_destroy(&r->u);
}

static int64_t err_code(const res *r)
{
    if (r->rc != 1 || !r->err || r->err->type != MSGPACK_OBJECT_ARRAY) return -1;
    return (int64_t)r->err->via.array.ptr[0].via.u64;
}

static int64_t get_int(const msgpack_object *m, const char *k)
{
    const msgpack_object *v = m ? ctl_get(m, k) : NULL;
    return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (int64_t)v->via.u64 : -1;
}

static bool ok_res(const res *r)
{
    return r->rc == 1 && !r->err;
}

/* ---------------------------------------------------------------- metrics.get */

static void t_metrics(void)
{
    res r = call1("metrics.get", 0, NULL);
    const msgpack_object *v = r.val;
    check(ok_res(&r), "metrics.get answers", "rc=%d", r.rc);
    if (!ok_res(&r)) return res_free(&r);
    const msgpack_object *sch = ctl_get(v, "schedulers");
    check(sch && sch->type == MSGPACK_OBJECT_ARRAY && sch->via.array.size == 2,
          "metrics.get: one entry per scheduler (2)", "schedulers=%d",
          sch ? (int)sch->via.array.size : -1);
    bool times = sch && sch->via.array.size == 2;
    for (uint32_t i = 0; times && i < sch->via.array.size; i++) {
        const msgpack_object *s = &sch->via.array.ptr[i];
        int64_t sum = get_int(s, "running_ns") + get_int(s, "spinning_ns") + get_int(s, "idle_ns");
        times = get_int(s, "id") == (int64_t)i + 1 && sum > 0 && get_int(s, "run_queue") >= 0 &&
                get_int(s, "reductions") >= 0 && get_int(s, "context_switches") >= 0;
        /* every nanosecond since start is in one state: the sum is about the uptime */
        times = times && sum <= get_int(v, "uptime_ns") + 100000000;
    }
    check(times, "metrics.get: scheduler times add up to at most the uptime", "-");
    const msgpack_object *msgs = ctl_get(v, "messages"), *mem = ctl_get(v, "memory"),
                         *d = ctl_get(v, "dist");
    check(get_int(v, "processes") > 3 && get_int(v, "process_limit") > 0 && msgs &&
              get_int(msgs, "sent") >= 0 && get_int(msgs, "dropped") == 0 && mem &&
              get_int(mem, "rss") > 0 && get_int(mem, "stacks") > 0 && d &&
              ctl_get(d, "connections") &&
              ctl_get(d, "connections")->type == MSGPACK_OBJECT_ARRAY && !ctl_get(v, "top"),
          "metrics.get: node, memory and dist figures; no top unless asked", "-");
    res_free(&r);

    /* top: sorted, limited, the demo's registered processes among them */
    const char *sorts[] = {"reductions", "memory", "mailbox"};
    const char *keys[] = {"reductions", "memory", "message_queue_len"};
    for (int k = 0; k < 3; k++) {
        char o1[64], o2[64];
        snprintf(o1, sizeof o1, "opt:top=1000");
        snprintf(o2, sizeof o2, "opt:sort=%s", sorts[k]);
        r = call1("metrics.get", 2, (char *[]){o1, o2, NULL});
        const msgpack_object *top = ok_res(&r) ? ctl_get(r.val, "top") : NULL;
        bool sorted = top && top->type == MSGPACK_OBJECT_ARRAY && top->via.array.size > 3;
        bool echo = false, kv = false;
        for (uint32_t i = 0; sorted && i < top->via.array.size; i++) {
            const msgpack_object *p = &top->via.array.ptr[i];
            if (i && get_int(p, keys[k]) > get_int(&top->via.array.ptr[i - 1], keys[k]))
                sorted = false;
            echo |= ctl_str_eq(ctl_get(p, "name"), "echo");
            kv |= ctl_str_eq(ctl_get(p, "name"), "kv");
            const msgpack_object *pid = ctl_get(p, "pid");
            if (!pid || pid->type != MSGPACK_OBJECT_STR || pid->via.str.ptr[0] != '<')
                sorted = false;
        }
        char name[80];
        snprintf(name, sizeof name, "metrics.get top sorted by %s, with echo and kv", sorts[k]);
        check(sorted && echo && kv && ctl_str_eq(ctl_get(r.val, "sort"), sorts[k]), name,
              "sorted=%d echo=%d kv=%d", sorted, echo, kv);
        res_free(&r);
    }
    r = call1("metrics.get", 1, (char *[]){"opt:top=2", NULL});
    const msgpack_object *top = ok_res(&r) ? ctl_get(r.val, "top") : NULL;
    check(top && top->type == MSGPACK_OBJECT_ARRAY && top->via.array.size == 2,
          "metrics.get top=2 gives 2", "-");
    res_free(&r);

    /* hostile params: an error each, the node keeps serving */
    char *bad[][2] = {{"opt:top=-1", NULL}, {"opt:top=1001", NULL}, {"opt:sort=size", NULL},
                      {"opt:top=x", NULL},  {"s:extra", NULL},      {"opt:sort=1", NULL}};
    bool all3 = true;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = call1("metrics.get", 1, bad[i]);
        if (err_code(&r) != 3) {
            printf("# %s: code %lld\n", bad[i][0], (long long)err_code(&r));
            all3 = false;
        }
        res_free(&r);
    }
    r = call1("metrics.get", 0, NULL);
    check(all3 && ok_res(&r), "metrics.get: bad params are invalid_params, the node serves on",
          "-");
    res_free(&r);
}

/* ---------------------------------------------------------------- trace */

/* One drained event: [Ts, Kind, Sched, Info, Pid, Peer, Arg, Id, Reason, Node]. */
static bool ev_is(const msgpack_object *e, const char *kind)
{
    return e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size == 10 &&
           ctl_str_eq(&e->via.array.ptr[1], kind);
}

static bool str_is(const msgpack_object *o, const char *s)
{
    return o->type == MSGPACK_OBJECT_STR && ctl_str_eq(o, s);
}

typedef struct seen {
    char pid[64]; /* the spawned echo */
    bool spawn, recv_from_send, exit_boom, sched_ok, order_ok, ts_ok;
    uint64_t send_id, send_ts;
    unsigned sched_max;
    uint64_t n, last_ts;
} seen;

static void scan(const msgpack_object *events, seen *s)
{
    for (uint32_t i = 0; i < events->via.array.size; i++) {
        const msgpack_object *e = &events->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 10) {
            s->ts_ok = false;
            continue;
        }
        const msgpack_object *f = e->via.array.ptr;
        s->n++;
        if (f[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER && f[2].via.u64 > s->sched_max)
            s->sched_max = (unsigned)f[2].via.u64;
        if (ev_is(e, "sched_in") && f[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            s->sched_ok = false;
        if (ev_is(e, "spawn") && str_is(&f[5], s->pid)) s->spawn = true;
        if (ev_is(e, "send") && str_is(&f[5], s->pid)) {
            s->send_id = f[7].via.u64;
            s->send_ts = f[0].via.u64;
        }
        if (ev_is(e, "receive") && str_is(&f[4], s->pid) && s->send_id &&
            f[7].via.u64 == s->send_id) {
            s->recv_from_send = true;
            s->order_ok = f[0].via.u64 >= s->send_ts;
        }
        if (ev_is(e, "exit") && str_is(&f[4], s->pid) && str_is(&f[8], "boom")) s->exit_boom = true;
    }
}

static bool drain_all(ctl_conn *c, seen *s, int64_t ms)
{
    for (int64_t end = now_ms() + ms; now_ms() < end;) {
        res r = call_on(c, "trace.drain", 1, (char *[]){"opt:max=4096", NULL});
        if (!ok_res(&r)) {
            res_free(&r);
            return false;
        }
        const msgpack_object *ev = ctl_get(r.val, "events");
        if (!ev || ev->type != MSGPACK_OBJECT_ARRAY) {
            res_free(&r);
            return false;
        }
        scan(ev, s);
        bool empty = ev->via.array.size == 0;
        res_free(&r);
        if (s->spawn && s->recv_from_send && s->exit_boom && empty) return true;
        usleep(50000);
    }
    return true;
}

static bool trace_off_within(int ms)
{
    for (int64_t end = now_ms() + ms; now_ms() < end; usleep(50000)) {
        res r = call1("trace.stats", 0, NULL);
        bool off = ok_res(&r) && ctl_get(r.val, "on")->type == MSGPACK_OBJECT_BOOLEAN &&
                   !ctl_get(r.val, "on")->via.boolean &&
                   ctl_get(r.val, "owner")->type == MSGPACK_OBJECT_NIL;
        res_free(&r);
        if (off) return true;
    }
    return false;
}

static void t_trace(void)
{
    ctl_conn a, b;
    if (ctl_connect(&a, sock) || ctl_connect(&b, sock)) {
        check(false, "trace: connect", "-");
        return;
    }
    res r = call_on(&a, "trace.start", 0, NULL);
    check(ok_res(&r) && get_int(r.val, "schedulers") == 2 && get_int(r.val, "rings") == 3,
          "trace.start answers the schedulers and rings", "-");
    res_free(&r);
    r = call_on(&b, "trace.start", 0, NULL);
    check(err_code(&r) == 6, "a second tracer is refused (busy)", "code %lld",
          (long long)err_code(&r));
    res_free(&r);
    r = call_on(&b, "trace.drain", 0, NULL);
    check(err_code(&r) == 6, "another client cannot drain the trace", "code %lld",
          (long long)err_code(&r));
    res_free(&r);
    r = call_on(&b, "trace.stop", 0, NULL);
    check(err_code(&r) == 6, "another client cannot stop the trace", "-");
    res_free(&r);
    r = call_on(&a, "trace.start", 0, NULL);
    check(err_code(&r) == 5, "the tracer starting again is refused (trace.stop first)", "-");
    res_free(&r);

    /* the workload: spawn an echo, send it a message from the request's process, crash it */
    seen s = {.sched_ok = true, .ts_ok = true};
    r = call_on(&a, "proc.spawn", 3, (char *[]){"s:demo", "s:echo", "s:[]", NULL});
    if (ok_res(&r) && r.val->type == MSGPACK_OBJECT_STR)
        snprintf(s.pid, sizeof s.pid, "%.*s", (int)r.val->via.str.size, r.val->via.str.ptr);
    res_free(&r);
    char to[80];
    snprintf(to, sizeof to, "s:%s", s.pid);
    r = call_on(&a, "proc.send", 2, (char *[]){to, "s:{crash, boom}", NULL});
    res_free(&r);
    bool drained = drain_all(&a, &s, 5000);
    check(drained && s.spawn, "trace: the spawn of the new process", "pid %s", s.pid);
    check(s.recv_from_send && s.order_ok,
          "trace: its receive carries the send's trace id, after the send", "-");
    check(s.exit_boom, "trace: its exit with reason boom", "-");
    check(s.sched_ok && s.sched_max <= 1 && s.n > 10, "trace: events on schedulers 0..1",
          "max %u n %llu", s.sched_max, (unsigned long long)s.n);

    r = call_on(&b, "trace.stats", 0, NULL);
    check(ok_res(&r) && ctl_str_eq(ctl_get(r.val, "owner"), "another_client") &&
              get_int(ctl_get(r.val, "capture"), "recorded") > 0,
          "trace.stats: on, owned by another client, events recorded", "-");
    res_free(&r);

    /* the tracer goes away: tracing stops, another client may trace */
    ctl_close(&a);
    check(trace_off_within(3000), "tracing stops when its client disconnects", "-");
    r = call_on(&b, "trace.start", 1, (char *[]){"opt:pid=kv", NULL});
    check(ok_res(&r), "another client traces once the first has gone (pid filter by name)", "-");
    res_free(&r);
    r = call_on(&b, "trace.stop", 0, NULL);
    check(ok_res(&r) && ctl_get(r.val, "on")->type == MSGPACK_OBJECT_BOOLEAN &&
              !ctl_get(r.val, "on")->via.boolean,
          "trace.stop answers the stats, tracing off", "-");
    res_free(&r);
    r = call_on(&b, "trace.drain", 0, NULL);
    check(ok_res(&r), "the owner drains after trace.stop", "-");
    res_free(&r);

    /* filters: only exit events of one process */
    r = call_on(&b, "proc.spawn", 3, (char *[]){"s:demo", "s:echo", "s:[]", NULL});
    char pid[64] = "", popt[100], topt[100];
    if (ok_res(&r) && r.val->type == MSGPACK_OBJECT_STR)
        snprintf(pid, sizeof pid, "%.*s", (int)r.val->via.str.size, r.val->via.str.ptr);
    res_free(&r);
    snprintf(popt, sizeof popt, "opt:pid=%s", pid);
    snprintf(topt, sizeof topt, "s:%s", pid);
    r = call_on(&b, "trace.start", 2, (char *[]){popt, "opt:kinds=exit", NULL});
    bool started = ok_res(&r);
    res_free(&r);
    r = call_on(&b, "proc.exit", 2, (char *[]){topt, "s:bye", NULL});
    res_free(&r);
    usleep(200000);
    r = call_on(&b, "trace.drain", 0, NULL);
    const msgpack_object *ev = ok_res(&r) ? ctl_get(r.val, "events") : NULL;
    bool only = ev && ev->type == MSGPACK_OBJECT_ARRAY && ev->via.array.size == 1 &&
                ev_is(&ev->via.array.ptr[0], "exit") &&
                str_is(&ev->via.array.ptr[0].via.array.ptr[4], pid) &&
                str_is(&ev->via.array.ptr[0].via.array.ptr[8], "bye");
    check(started && only, "trace.start kinds=[exit] and a pid: exactly that process's exit",
          "n=%d", ev && ev->type == MSGPACK_OBJECT_ARRAY ? (int)ev->via.array.size : -1);
    res_free(&r);
    r = call_on(&b, "trace.stop", 0, NULL);
    res_free(&r);
    ctl_close(&b);
}

/* kinds must be a list: the test client packs opt values as scalars, so this one is built by
** hand. */
static int64_t start_with_kinds_map(void)
{
    ctl_conn c;
    if (ctl_connect(&c, sock)) return -1;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint32(&pk, 0);
    msgpack_pack_uint32(&pk, 77);
    msgpack_pack_str_with_body(&pk, "trace.start", 11);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "kinds", 5);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "send", 4);
    msgpack_pack_map(&pk, 0);
    ctl_send(&c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked u;
    int64_t code = -1;
    if (ctl_read(&c, &u, 10000) == 1) {
        const msgpack_object *e = &u.data.via.array.ptr[2];
        if (e->type == MSGPACK_OBJECT_ARRAY) code = (int64_t)e->via.array.ptr[0].via.u64;
        if (e->type == MSGPACK_OBJECT_NIL) code = 0;
        msgpack_unpacked_destroy(&u);
    }
    ctl_close(&c);
    return code;
}

static void t_trace_bad(void)
{
    struct {
        const char *opt;
        int64_t code;
    } bad[] = {{"opt:kinds=nope", 3},      {"opt:ring=100", 3},        {"opt:ring=32", 3},
               {"opt:ring=1073741824", 3}, {"opt:max_rate=0", 3},      {"opt:pid=42", 3},
               {"opt:pid=nosuch", 4},      {"opt:pid=<0.99999.1>", 4}, {"opt:pid={a,", 3},
               {"s:positional", 3}};
    bool all = true;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        res r = call1("trace.start", 1, (char *[]){(char *)bad[i].opt, NULL});
        if (err_code(&r) != bad[i].code) {
            printf("# trace.start %s: code %lld, want %lld\n", bad[i].opt, (long long)err_code(&r),
                   (long long)bad[i].code);
            all = false;
        }
        res_free(&r);
    }
    all &= start_with_kinds_map() == 3;
    res r = call1("trace.drain", 1, (char *[]){"opt:max=0", NULL});
    all &= err_code(&r) == 3;
    res_free(&r);
    r = call1("trace.drain", 1, (char *[]){"opt:max=65537", NULL});
    all &= err_code(&r) == 3;
    res_free(&r);
    check(all && trace_off_within(2000),
          "trace.start/drain: bad options refused with the right codes, tracing left off", "-");
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

int main(void)
{
    const char *girderd = getenv("GIRDERD"), *epmd = getenv("GIRDER_EPMD");
    if (!girderd || !epmd) {
        fprintf(stderr, "GIRDERD and GIRDER_EPMD must be set\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmp, sizeof tmp, "/tmp/girder-obs-test.XXXXXX");
    if (!mkdtemp(tmp)) return 2;
    atexit(cleanup);
    char port[16], elog[300], name[64];
    snprintf(port, sizeof port, "%d", free_port());
    snprintf(elog, sizeof elog, "%s/epmd.log", tmp);
    snprintf(sock, sizeof sock, "%s/g.sock", tmp);
    snprintf(logp, sizeof logp, "%s/g.log", tmp);
    snprintf(name, sizeof name, "obs_%d", (int)getpid());
    epmd_pid = spawn((char *[]){(char *)epmd, "-port", port, "-address", "127.0.0.1", NULL}, elog);
    usleep(300000);
    g_pid = spawn((char *[]){(char *)girderd, "--sname", name, "--cookie", "obstest", "--epmd-port",
                             port, "--control-socket", sock, "--schedulers", "2", NULL},
                  logp);
    bool up = false;
    for (int64_t end = now_ms() + 20000; !up && now_ms() < end; usleep(100000)) {
        res r = call1("api.info", 0, NULL);
        up = ok_res(&r);
        res_free(&r);
    }
    if (!check(up, "girderd started", "no answer on %s", sock)) return 1;
    res r = call1("api.info", 0, NULL);
    const msgpack_object *m = ok_res(&r) ? ctl_get(r.val, "methods") : NULL;
    check(m && get_int(m, "metrics.get") == 1 && get_int(m, "trace.start") == 1 &&
              get_int(m, "trace.drain") == 1 && get_int(m, "trace.stop") == 1 &&
              get_int(m, "trace.stats") == 1,
          "api.info lists metrics.get and trace.*", "-");
    res_free(&r);
    t_metrics();
    t_trace();
    t_trace_bad();
    printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
