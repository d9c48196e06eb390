/* `girder cluster up|status|down`: a local cluster of girderd and erl nodes, kept in a directory.
 */
#include "clusterdir.h"
#include "ctl.h"
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <girder/epmd.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define A(s)     term_atom(s)
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ================================================================ helpers */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* mkdir -p with mode 0700 for what it creates. 0 or -errno. */
static int mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST) return -errno;
    return 0;
}

/* The cluster directory as an absolute path (created when create is set). 0 or -errno. */
static int cluster_dir(const cli_opts *o, bool create, char *out, size_t n)
{
    const char *d = o->dir ? o->dir : CLI_DEFAULT_DIR;
    if (create) {
        int rc = mkdirs(d);
        if (rc) return rc;
    }
    char real[PATH_MAX];
    if (!realpath(d, real)) return -errno;
    if (strlen(real) + 32 >= CL_PATH || strlen(real) >= n) return -ENAMETOOLONG;
    snprintf(out, n, "%s", real);
    return 0;
}

/* Takes DIR/lock so that two cluster commands never work on one directory at once. The fd
** (to keep open) or -1 after a message. */
static int lock_dir(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, CL_LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        cli_err("cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        cli_err("another girder cluster command is working on %s", dir);
        close(fd);
        return -1;
    }
    return fd;
}

/* Every address host resolves to is a loopback address. */
static bool host_is_loopback(const char *host)
{
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai) return false;
    bool lo = true;
    for (struct addrinfo *a = ai; a && lo; a = a->ai_next) {
        if (a->ai_family == AF_INET)
            lo = (ntohl(((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr) >> 24) == 127;
        else if (a->ai_family == AF_INET6)
            lo = IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr);
        else
            lo = false;
    }
    freeaddrinfo(ai);
    return lo;
}

/* Full path of prog on PATH, or false. */
static bool find_on_path(const char *prog, char *out, size_t n)
{
    const char *path = getenv("PATH");
    if (!path) return false;
    while (*path) {
        size_t len = strcspn(path, ":");
        if (len && snprintf(out, n, "%.*s/%s", (int)len, path, prog) < (int)n &&
            access(out, X_OK) == 0)
            return true;
        path += len;
        if (*path == ':') path++;
    }
    return false;
}

/*
** Starts argv in its own session (so it outlives us and a terminal's signals), stdin from
** /dev/null, stdout and stderr appended to log, with ERL_EPMD_PORT set. The pid, or -1.
*/
static pid_t spawn_proc(char *const argv[], const char *log, uint16_t epmd_port)
{
    char port[16];
    snprintf(port, sizeof port, "%u", epmd_port);
    pid_t pid = fork();
    if (pid != 0) return pid;
    setsid();
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    int in = open("/dev/null", O_RDONLY);
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || out < 0) _exit(127);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    if (in > 2) close(in);
    if (out > 2) close(out);
    setenv("ERL_EPMD_PORT", port, 1);
    execv(argv[0], argv);
    dprintf(2, "girder: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Prints the last lines of a log on stderr, indented. */
static void log_tail(const char *path, int lines)
{
    FILE *f = fopen(path, "re");
    if (!f) return;
    char ring[8][256];
    int n = 0;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        snprintf(ring[n % 8], sizeof ring[0], "%s", line);
        n++;
    }
    fclose(f);
    if (lines > 8) lines = 8;
    for (int i = n > lines ? n - lines : 0; i < n; i++) fprintf(stderr, "    %s\n", ring[i % 8]);
}

/* Prints, indented on stderr, the last lines of a log that contain needle (at most 3); false
** when there is none. */
static bool log_lines_with(const char *path, const char *needle)
{
    FILE *f = fopen(path, "re");
    if (!f) return false;
    char ring[3][512], line[512];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (strstr(line, needle)) snprintf(ring[n++ % 3], sizeof ring[0], "%s", line);
    }
    fclose(f);
    for (int i = n > 3 ? n - 3 : 0; i < n; i++) fprintf(stderr, "    %s\n", ring[i % 3]);
    return n > 0;
}

/* Sends sig to a recorded process if it is still the one recorded. */
static void signal_proc(const cl_proc *p, int sig)
{
    if (cl_proc_alive(p)) kill(p->pid, sig);
}

/* Reaps children of ours that ended (cluster up is the parent until it returns). */
static void reap(void)
{
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

/* Waits until none of the processes is alive or the deadline (monotonic ms) passes. */
static bool wait_gone(cl_state *st, bool with_epmd, uint64_t deadline)
{
    for (;;) {
        reap();
        bool any = with_epmd && cl_proc_alive(&st->epmd);
        for (size_t i = 0; i < st->n && !any; i++) any = cl_proc_alive(&st->nodes[i].proc);
        if (!any) return true;
        if (mono_ms() >= deadline) return false;
        sleep_ms(20);
    }
}

/* Removes the files of the cluster in dir that the state names, then the directory if
** empty. Only files inside dir are removed. */
static void remove_files(const char *dir, const cl_state *st, bool keep_logs, bool keep_lock)
{
    char path[PATH_MAX];
    size_t dl = strlen(dir);
    if (!keep_logs) {
        for (size_t i = 0; st && i < st->n; i++)
            if (!strncmp(st->nodes[i].log, dir, dl) && st->nodes[i].log[dl] == '/' &&
                !strchr(st->nodes[i].log + dl + 1, '/'))
                unlink(st->nodes[i].log);
        snprintf(path, sizeof path, "%s/%s", dir, CL_EPMD_LOG);
        unlink(path);
    }
    /* the control sockets in dir (a node killed by hand leaves its socket file behind) */
    for (size_t i = 0; st && i < st->n; i++)
        if (!strncmp(st->nodes[i].ctl, dir, dl) && st->nodes[i].ctl[dl] == '/' &&
            !strchr(st->nodes[i].ctl + dl + 1, '/'))
            unlink(st->nodes[i].ctl);
    snprintf(path, sizeof path, "%s/%s", dir, CL_STATE_FILE);
    unlink(path);
    snprintf(path, sizeof path, "%s/%s", dir, CL_COOKIE_FILE);
    unlink(path);
    if (!keep_lock) {
        snprintf(path, sizeof path, "%s/%s", dir, CL_LOCK_FILE);
        unlink(path);
    }
    rmdir(dir); /* fails, as it should, when something else is left in it */
}

/* The cluster's cookie and protocol (TLS with its optfile, or TCP) for the CLI's node. */
static int cluster_cookie(const char *dir, const cl_state *st, cli_cookie *ck)
{
    memset(ck, 0, sizeof *ck);
    if (cl_read_cookie(dir, ck->value, sizeof ck->value) != 0) {
        cli_err("cannot read the cluster's cookie %s/%s", dir, CL_COOKIE_FILE);
        return CLI_FAIL;
    }
    snprintf(ck->source, sizeof ck->source, "%s/%s", dir, CL_COOKIE_FILE);
    ck->tls = st->tls_optfile[0] != 0;
    snprintf(ck->optfile, sizeof ck->optfile, "%s", st->tls_optfile);
    return CLI_OK;
}

static void random_cookie(char *out, size_t n)
{
    uint8_t r[20];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r)
        for (size_t i = 0; i < sizeof r; i++) r[i] = (uint8_t)(mono_ms() * 31 + i * 7);
    size_t len = n - 1 < sizeof r ? n - 1 : sizeof r;
    for (size_t i = 0; i < len; i++) out[i] = (char)('A' + r[i] % 26);
    out[len] = 0;
}

/* The --json document of a cluster command that failed before it had anything to show. */
static void json_fail(const char *why)
{
    cli_json j = {0};
    cli_json_obj(&j);
    cli_json_key(&j, "ok");
    cli_json_bool(&j, false);
    cli_json_key(&j, "error");
    cli_json_str(&j, why);
    cli_json_end(&j);
    cli_json_write(&j, stdout);
}

static void json_proc_pid(cli_json *j, const cl_proc *p)
{
    if (p->pid > 0)
        cli_json_int(j, p->pid);
    else
        cli_json_null(j);
}

/*
** The control socket a girderd of the cluster gets: DIR/<sname>.sock, or, when that path is too
** long for a Unix socket address, girderd's own default (docs/girderd.md), or none ("") when
** that is too long as well.
*/
static void control_socket_path(const char *dir, const char *node, const char *sname,
                                uint16_t epmd_port, char out[CL_PATH])
{
    const size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
    char p[CL_PATH];
    int k = snprintf(p, sizeof p, "%s/%s.sock", dir, sname);
    if (k <= 0 || (size_t)k >= max) {
        const char *run = getenv("XDG_RUNTIME_DIR");
        if (geteuid() == 0 || !run || !*run) run = "/run";
        char sub[32] = "";
        if (epmd_port != 4369) snprintf(sub, sizeof sub, "epmd-%u/", epmd_port);
        k = snprintf(p, sizeof p, "%s/girder/%s%s.sock", run, sub, node);
        if (k <= 0 || (size_t)k >= max || strpbrk(p, "\t\n")) p[0] = 0;
    }
    memcpy(out, p, strlen(p) + 1);
}

/* The control timeout for one node: what is left of the command's, at most 3 s. */
static int64_t ctl_timeout(uint64_t deadline)
{
    uint64_t now = mono_ms();
    int64_t left = deadline > now ? (int64_t)(deadline - now) : 1;
    return left < 3000 ? left : 3000;
}

/* ================================================================ up */

typedef struct up_ctx {
    cl_state *st;
    char why[1024];
} up_ctx;

/* Inside the CLI's process: every node answers, then every pair is connected by
** net_adm:ping from one side. */
static int mesh_body(void *arg)
{
    up_ctx *u = arg;
    cl_state *st = u->st;
    for (size_t i = 0; i < st->n; i++) {
        /* a node registers before it is ready for calls: retry until it answers */
        term_t node = A(st->nodes[i].name);
        for (;;) {
            if (cli_connect(node, u->why, sizeof u->why) == CLI_OK) {
                term_t v = cli_call(node, "erlang", "node", TERM_NIL, u->why, sizeof u->why);
                if (v != TERM_NONE) break;
            }
            if (cli_remaining_ms() <= 0) return CLI_FAIL;
            nd_sleep(100);
        }
    }
    size_t npairs = st->n * (st->n - 1) / 2, k = 0;
    cli_rpc *rs = calloc(npairs + 1, sizeof *rs);
    if (!rs) return CLI_FAIL;
    for (size_t i = 0; i < st->n; i++)
        for (size_t j = i + 1; j < st->n; j++)
            cli_rpc_init(&rs[k++], A(st->nodes[i].name), "net_adm", "ping",
                         term_list(1, (term_t[]){A(st->nodes[j].name)}));
    cli_rpc_run(rs, npairs, 16);
    int status = CLI_OK;
    k = 0;
    for (size_t i = 0; i < st->n && status == CLI_OK; i++)
        for (size_t j = i + 1; j < st->n && status == CLI_OK; j++, k++) {
            if (rs[k].out != CLI_RPC_RETURN) {
                char d[600];
                cli_rpc_describe(&rs[k], d, sizeof d);
                cli_fmt(u->why, sizeof u->why, "net_adm:ping(%s) on %s: %s", st->nodes[j].name,
                        st->nodes[i].name, d);
                status = CLI_FAIL;
            } else if (rs[k].value != A("pong")) {
                cli_fmt(u->why, sizeof u->why, "%s could not connect to %s (pang)",
                        st->nodes[i].name, st->nodes[j].name);
                status = CLI_FAIL;
            }
        }
    for (k = 0; k < npairs; k++) cli_rpc_clear(&rs[k]);
    free(rs);
    return status;
}

/* Stops what a failed `up` started (we are its parent) and removes the state and cookie;
** the logs stay for the post-mortem. */
static void up_abort(const char *dir, cl_state *st)
{
    for (size_t i = 0; i < st->n; i++) signal_proc(&st->nodes[i].proc, SIGTERM);
    if (!wait_gone(st, false, mono_ms() + 3000))
        for (size_t i = 0; i < st->n; i++) signal_proc(&st->nodes[i].proc, SIGKILL);
    wait_gone(st, false, mono_ms() + 2000);
    signal_proc(&st->epmd, SIGTERM);
    if (!wait_gone(st, true, mono_ms() + 2000)) signal_proc(&st->epmd, SIGKILL);
    wait_gone(st, true, mono_ms() + 1000);
    remove_files(dir, st, true, false);
    if (access(dir, F_OK) == 0)
        cli_err("stopped what this command started; the logs are in %s", dir);
    else
        cli_err("stopped what this command started");
}

/* Checks a state left in dir: CLI_OK when there is none or it is stale (then removed),
** CLI_FAIL when its cluster runs. */
static int check_previous(const char *dir)
{
    cl_state *old = malloc(sizeof *old);
    if (!old) return CLI_FAIL;
    int rc = cl_load(dir, old);
    if (rc == -ENOENT) {
        free(old);
        return CLI_OK;
    }
    if (rc) {
        cli_err("%s holds a state file girder cannot read; remove it by hand", dir);
        free(old);
        return CLI_FAIL;
    }
    for (size_t i = 0; i < old->n; i++)
        if (cl_proc_alive(&old->nodes[i].proc)) {
            cli_err("a cluster is running in %s (%s, OS pid %d); stop it first with: girder "
                    "cluster down --dir %s",
                    dir, old->nodes[i].name, (int)old->nodes[i].proc.pid, dir);
            free(old);
            return CLI_FAIL;
        }
    /* stale: nothing of it runs any more (a port mapper it started may; leave it) */
    remove_files(dir, old, false, true);
    free(old);
    return CLI_OK;
}

int cli_cmd_cluster_up(const cli_opts *o)
{
    int rc = cli_check_proto(o);
    if (rc) return rc;
    /* over TLS every node gets the optfile; erl wants it by an absolute path */
    char optfile[PATH_MAX] = "";
    if (o->proto_dist && !strcmp(o->proto_dist, "inet_tls")) {
        if (!o->ssl_optfile) {
            cli_err("cluster up over TLS needs --ssl-dist-optfile F (the nodes' certificates)");
            return CLI_USAGE;
        }
        /* realpath may leave part of a path in optfile when it fails */
        bool found = realpath(o->ssl_optfile, optfile) != NULL;
        if (!found || strpbrk(optfile, "\t\n")) {
            cli_err("--ssl-dist-optfile %s: %s", o->ssl_optfile,
                    found ? "a tab or newline in the path" : strerror(errno));
            return CLI_USAGE;
        }
    }
    long n = o->n >= 0 ? o->n : 3, k = o->erlang;
    const char *prefix = o->prefix ? o->prefix : "g";
    bool ok = prefix[0] >= 'a' && prefix[0] <= 'z' && strlen(prefix) <= 32;
    for (const char *p = prefix; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             *p == '_';
    if (!ok) {
        cli_err("--prefix: '%s' must start with a lowercase letter and contain only letters, "
                "digits and _ (at most 32)",
                prefix);
        return CLI_USAGE;
    }
    if (k > 0 && !strcmp(prefix, "e")) {
        cli_err("--prefix e would collide with the Erlang nodes e1..e%ld", k);
        return CLI_USAGE;
    }
    if (n + k < 1) {
        cli_err("a cluster needs at least one node (-n N, --erlang K)");
        return CLI_USAGE;
    }
    if (o->cookie && (!o->cookie[0] || strlen(o->cookie) > 255 || strpbrk(o->cookie, "\n\r"))) {
        cli_err("--cookie: 1 to 255 characters on one line");
        return CLI_USAGE;
    }
    char bindir[PATH_MAX - 32], girderd[PATH_MAX], gepmd[PATH_MAX], erl[PATH_MAX];
    if (cli_exe_dir(bindir, sizeof bindir) != 0) {
        cli_err("cannot find the directory of the girder executable");
        return CLI_FAIL;
    }
    snprintf(girderd, sizeof girderd, "%s/girderd", bindir);
    snprintf(gepmd, sizeof gepmd, "%s/girder-epmd", bindir);
    if (n > 0 && access(girderd, X_OK) != 0) {
        cli_err("girderd not found next to girder (%s)", girderd);
        return CLI_FAIL;
    }
    if (k > 0 && !find_on_path("erl", erl, sizeof erl)) {
        cli_err("--erlang %ld needs erl on PATH (Debian: apt-get install erlang-base)", k);
        return CLI_FAIL;
    }
    /* modules for every girderd: a bare NAME (girderd's module directory) or a file, which
    ** girderd gets by its absolute path */
    static char modpath[CLI_MAX_MODULES][PATH_MAX];
    char *mods[CLI_MAX_MODULES];
    int nmods = o->nmodules;
    for (int m = 0; m < nmods; m++) {
        const char *spec = o->modules[m];
        mods[m] = modpath[m];
        if (strchr(spec, '/')) {
            if (!realpath(spec, modpath[m])) {
                cli_err("--module %s: %s", spec, strerror(errno));
                return CLI_USAGE;
            }
            if (strpbrk(modpath[m], "\t\n")) {
                cli_err("--module %s: a tab or newline in the path", spec);
                return CLI_USAGE;
            }
            continue;
        }
        bool word = spec[0] && strlen(spec) < 200;
        for (const char *p = spec; word && *p; p++)
            word = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.';
        if (!word || spec[0] == '.') {
            cli_err("--module '%s': give a module name (letters, digits, _ - .) or a path to a "
                    ".so file",
                    spec);
            return CLI_USAGE;
        }
        snprintf(modpath[m], PATH_MAX, "%s", spec);
    }
    if (nmods && n == 0) {
        cli_err("--module is for girderd nodes, and -n 0 starts none");
        return CLI_USAGE;
    }
    char dir[PATH_MAX];
    if ((rc = cluster_dir(o, true, dir, sizeof dir)) != 0) {
        cli_err("cluster directory %s: %s", o->dir ? o->dir : CLI_DEFAULT_DIR, strerror(-rc));
        return CLI_FAIL;
    }
    int lock = lock_dir(dir);
    if (lock < 0) return CLI_FAIL;
    if (check_previous(dir) != CLI_OK) {
        close(lock);
        return CLI_FAIL;
    }
    char cookie[256];
    if (o->cookie)
        snprintf(cookie, sizeof cookie, "%s", o->cookie);
    else
        random_cookie(cookie, 21);
    if ((rc = cl_write_cookie(dir, cookie)) != 0) {
        cli_err("cannot write %s/%s: %s", dir, CL_COOKIE_FILE, strerror(-rc));
        close(lock);
        return CLI_FAIL;
    }

    cl_state *st = calloc(1, sizeof *st);
    if (!st) {
        close(lock);
        return CLI_FAIL;
    }
    st->epmd_port = epmd_default_port();
    snprintf(st->tls_optfile, sizeof st->tls_optfile, "%s", optfile);
    uint64_t deadline = mono_ms() + (uint64_t)o->timeout_ms;
    const char *host = cli_short_host();
    int status = CLI_OK;
    char why[1024] = "";
    bool said = false; /* why is on stderr already (with a log's end) */

    /* the port mapper: use one that answers, else start girder-epmd */
    epmd_name_list nl;
    int er = epmd_names("127.0.0.1", st->epmd_port, 1000, &nl);
    if (er == 0) {
        for (size_t i = 0; i < nl.count && status == CLI_OK; i++) {
            for (long x = 1; x <= n + k; x++) {
                char nm[64];
                snprintf(nm, sizeof nm, "%s%ld", x <= n ? prefix : "e", x <= n ? x : x - n);
                if (!strcmp(nl.entries[i].name, nm)) {
                    cli_fmt(why, sizeof why,
                            "a node named %s is already registered with the port mapper at "
                            "127.0.0.1:%u",
                            nm, st->epmd_port);
                    status = CLI_FAIL;
                }
            }
        }
        epmd_names_free(&nl);
    } else if (er == EPMD_ECONNREFUSED) {
        char port[16], log[PATH_MAX];
        snprintf(port, sizeof port, "%u", st->epmd_port);
        cli_fmt(log, sizeof log, "%s/%s", dir, CL_EPMD_LOG);
        /* loopback only when this host's name means loopback (it does on most dev boxes):
        ** nodes look the port mapper up at the address of the host in their names.
        ** ERL_EPMD_ADDRESS, when set, is passed on and wins. */
        bool lo = !getenv("ERL_EPMD_ADDRESS") && host_is_loopback(cli_short_host());
        char *argv_lo[] = {gepmd, "-port", port, "-address", "127.0.0.1", NULL};
        char *argv_all[] = {gepmd, "-port", port, NULL};
        pid_t pid = spawn_proc(lo ? argv_lo : argv_all, log, st->epmd_port);
        st->epmd.pid = pid > 0 ? pid : 0;
        st->epmd.start = pid > 0 ? cl_proc_start(pid) : 0;
        while (pid > 0 && epmd_names("127.0.0.1", st->epmd_port, 200, &nl) != 0) {
            reap();
            if (!cl_proc_alive(&st->epmd) || mono_ms() >= deadline) {
                pid = -1;
                break;
            }
            sleep_ms(20);
        }
        if (pid > 0)
            epmd_names_free(&nl);
        else {
            cli_fmt(why, sizeof why, "the port mapper girder-epmd did not start on port %u",
                    st->epmd_port);
            cli_err("cluster up: %s; %s ends with:", why, log);
            log_tail(log, 3);
            said = true;
            status = CLI_FAIL;
        }
    } else {
        cli_fmt(why, sizeof why, "the port mapper at 127.0.0.1:%u does not answer properly: %s",
                st->epmd_port, epmd_strerror(er));
        status = CLI_FAIL;
    }
    if (status == CLI_OK && (rc = cl_save(dir, st)) != 0) {
        cli_fmt(why, sizeof why, "cannot write %s/%s: %s", dir, CL_STATE_FILE, strerror(-rc));
        status = CLI_FAIL;
    }

    /* the nodes; the state is saved after each, so `down` finds whatever got started */
    for (long x = 1; status == CLI_OK && x <= n + k; x++) {
        bool is_erl = x > n;
        cl_node *nd = &st->nodes[st->n];
        char sname[64];
        snprintf(sname, sizeof sname, "%s%ld", is_erl ? "e" : prefix, is_erl ? x - n : x);
        snprintf(nd->name, sizeof nd->name, "%s@%s", sname, host);
        snprintf(nd->kind, sizeof nd->kind, "%s", is_erl ? "erlang" : "girder");
        cli_fmt(nd->log, sizeof nd->log, "%s/%s.log", dir, sname);
        unlink(nd->log);
        if (!is_erl) control_socket_path(dir, nd->name, sname, st->epmd_port, nd->ctl);
        char *gargv[16 + CLI_MAX_MODULES * 2], *eargv[16];
        int ga = 0, ea = 0;
        char *g_fixed[] = {girderd, "--sname",          sname,  "--cookie",
                           cookie,  "--control-socket", nd->ctl};
        for (size_t f = 0; f < COUNT(g_fixed); f++) gargv[ga++] = g_fixed[f];
        char *e_fixed[] = {erl,        "-sname",   sname,         "-setcookie", cookie,
                           "-noshell", "-noinput", "-start_epmd", "false"};
        for (size_t f = 0; f < COUNT(e_fixed); f++) eargv[ea++] = e_fixed[f];
        if (optfile[0]) {
            gargv[ga++] = "--proto-dist";
            gargv[ga++] = "inet_tls";
            gargv[ga++] = "--ssl-dist-optfile";
            gargv[ga++] = optfile;
            eargv[ea++] = "-proto_dist";
            eargv[ea++] = "inet_tls";
            eargv[ea++] = "-ssl_dist_optfile";
            eargv[ea++] = optfile;
        }
        for (int m = 0; m < nmods; m++) {
            gargv[ga++] = "--module";
            gargv[ga++] = mods[m];
        }
        gargv[ga] = eargv[ea] = NULL;
        pid_t pid = spawn_proc(is_erl ? eargv : gargv, nd->log, st->epmd_port);
        if (pid < 0) {
            cli_fmt(why, sizeof why, "cannot start %s: %s", sname, strerror(errno));
            status = CLI_FAIL;
            break;
        }
        nd->proc.pid = pid;
        nd->proc.start = cl_proc_start(pid);
        st->n++;
        if ((rc = cl_save(dir, st)) != 0) {
            cli_fmt(why, sizeof why, "cannot write %s/%s: %s", dir, CL_STATE_FILE, strerror(-rc));
            status = CLI_FAIL;
        }
    }

    /* wait for every node to register with the port mapper */
    bool *reg = calloc(st->n + 1, sizeof *reg);
    size_t nreg = 0;
    while (status == CLI_OK && nreg < st->n) {
        for (size_t i = 0; i < st->n && status == CLI_OK; i++) {
            if (reg[i]) continue;
            cl_node *nd = &st->nodes[i];
            int ws;
            if (waitpid(nd->proc.pid, &ws, WNOHANG) == nd->proc.pid) {
                nd->proc.pid = 0;
                cli_fmt(why, sizeof why, "%s exited while starting (%s %d); see %s", nd->name,
                        WIFEXITED(ws) ? "exit status" : "signal",
                        WIFEXITED(ws) ? WEXITSTATUS(ws) : WTERMSIG(ws), nd->log);
                status = CLI_FAIL;
                cli_err("cluster up: %s; it ends with:", why);
                log_tail(nd->log, 5);
                said = true;
                break;
            }
            char alive[64];
            snprintf(alive, sizeof alive, "%.*s", (int)(strchr(nd->name, '@') - nd->name),
                     nd->name);
            epmd_node_info info;
            if (epmd_port_please("127.0.0.1", st->epmd_port, alive, 500, &info) == 0) {
                reg[i] = true;
                nreg++;
            }
        }
        if (status == CLI_OK && nreg < st->n) {
            if (mono_ms() >= deadline) {
                for (size_t i = 0; i < st->n; i++)
                    if (!reg[i]) {
                        cli_fmt(why, sizeof why,
                                "%s did not register with the port mapper within %lld ms "
                                "(see %s)",
                                st->nodes[i].name, (long long)o->timeout_ms, st->nodes[i].log);
                        break;
                    }
                status = CLI_FAIL;
            }
            sleep_ms(50);
        }
    }
    free(reg);

    /* the mesh, through the CLI's own node */
    if (status == CLI_OK) {
        cli_cookie ck;
        cli_opts dopt = *o;
        uint64_t now = mono_ms();
        dopt.timeout_ms = deadline > now ? (int64_t)(deadline - now) : 1;
        status = cluster_cookie(dir, st, &ck);
        if (status == CLI_OK) status = cli_dist_up(&dopt, false, &ck, st->epmd_port);
        if (status == CLI_OK) {
            up_ctx u = {st, ""};
            status = cli_run(mesh_body, &u);
            cli_dist_down();
            if (status) cli_fmt(why, sizeof why, "the nodes did not connect: %s", u.why);
        }
    }

    /* every girderd loaded the modules it was given (a refused module leaves the node running
    ** without it: girderd.md), asked through its control socket */
    for (size_t i = 0; status == CLI_OK && nmods && i < st->n; i++) {
        cl_node *nd = &st->nodes[i];
        if (strcmp(nd->kind, "girder") || !nd->ctl[0]) continue;
        for (int m = 0; status == CLI_OK && m < nmods; m++) {
            char cwhy[600];
            int has =
                cli_ctl_has_module(nd->ctl, ctl_timeout(deadline), mods[m], cwhy, sizeof cwhy);
            if (has == 1) continue;
            if (has == 0)
                cli_fmt(why, sizeof why, "%s did not load the module %s; its log says:", nd->name,
                        mods[m]);
            else
                cli_fmt(why, sizeof why,
                        "cannot ask %s for its modules: %s; its log says:", nd->name, cwhy);
            cli_err("cluster up: %s", why);
            /* girderd logs why it refused a module (girderd.md, Modules and apps) */
            if (!log_lines_with(nd->log, "event=module_refused")) log_tail(nd->log, 3);
            said = true;
            status = CLI_FAIL;
        }
    }

    if (status != CLI_OK) {
        if (why[0] && !said) cli_err("cluster up: %s", why);
        up_abort(dir, st);
        if (o->json) json_fail(why[0] ? why : "cluster up failed; see stderr");
        free(st);
        close(lock);
        return CLI_FAIL;
    }
    if (o->json) {
        cli_json j = {0};
        cli_json_obj(&j);
        cli_json_key(&j, "dir");
        cli_json_str(&j, dir);
        cli_json_key(&j, "cookie_file");
        char cf[PATH_MAX + 16];
        snprintf(cf, sizeof cf, "%s/%s", dir, CL_COOKIE_FILE);
        cli_json_str(&j, cf);
        cli_json_key(&j, "epmd");
        cli_json_obj(&j);
        cli_json_key(&j, "port");
        cli_json_int(&j, st->epmd_port);
        cli_json_key(&j, "pid");
        json_proc_pid(&j, &st->epmd);
        cli_json_end(&j);
        cli_json_key(&j, "nodes");
        cli_json_arr(&j);
        for (size_t i = 0; i < st->n; i++) {
            cli_json_obj(&j);
            cli_json_key(&j, "node");
            cli_json_str(&j, st->nodes[i].name);
            cli_json_key(&j, "kind");
            cli_json_str(&j, st->nodes[i].kind);
            cli_json_key(&j, "pid");
            cli_json_int(&j, st->nodes[i].proc.pid);
            cli_json_key(&j, "log");
            cli_json_str(&j, st->nodes[i].log);
            cli_json_key(&j, "control_socket");
            cli_json_str(&j, st->nodes[i].ctl[0] ? st->nodes[i].ctl : NULL);
            cli_json_end(&j);
        }
        cli_json_end(&j);
        cli_json_key(&j, "ok");
        cli_json_bool(&j, true);
        cli_json_end(&j);
        cli_json_write(&j, stdout);
    } else {
        printf("%-24s %-7s %8s  %s\n", "NODE", "KIND", "OS_PID", "LOG");
        for (size_t i = 0; i < st->n; i++)
            printf("%-24s %-7s %8d  %s\n", st->nodes[i].name, st->nodes[i].kind,
                   (int)st->nodes[i].proc.pid, st->nodes[i].log);
        if (st->epmd.pid)
            printf("port mapper 127.0.0.1:%u started (OS pid %d)\n", st->epmd_port,
                   (int)st->epmd.pid);
        else
            printf("port mapper 127.0.0.1:%u (already running)\n", st->epmd_port);
        printf("cookie in %s/%s; stop with: girder cluster down%s%s\n", dir, CL_COOKIE_FILE,
               o->dir ? " --dir " : "", o->dir ? o->dir : "");
    }
    free(st);
    close(lock);
    return CLI_OK;
}

/* ================================================================ status */

typedef struct status_ctx {
    cl_state *st;
    bool alive[CL_MAX_NODES];
    int state[CL_MAX_NODES]; /* 0 down, 1 up, 2 unresponsive */
    int64_t conns[CL_MAX_NODES], procs[CL_MAX_NODES];
    const char *via[CL_MAX_NODES]; /* how an up node answered: "control_socket", "distribution" */
} status_ctx;

static int status_body(void *arg)
{
    status_ctx *s = arg;
    cli_rpc rs[2 * CL_MAX_NODES];
    size_t map[2 * CL_MAX_NODES], nr = 0;
    for (size_t i = 0; i < s->st->n; i++) {
        if (!s->alive[i] || s->state[i] == 1) continue; /* answered on its control socket */
        term_t node = A(s->st->nodes[i].name);
        int64_t left = cli_remaining_ms();
        if (dist_connect(node, left < 3000 ? left : 3000) != 0) {
            s->state[i] = 2;
            continue;
        }
        cli_rpc_init(&rs[nr], node, "erlang", "nodes", term_list(1, (term_t[]){A("connected")}));
        map[nr++] = i;
        cli_rpc_init(&rs[nr], node, "erlang", "system_info",
                     term_list(1, (term_t[]){A("process_count")}));
        map[nr++] = i;
    }
    cli_rpc_run(rs, nr, nr);
    for (size_t r = 0; r < nr; r += 2) {
        size_t i = map[r];
        if (rs[r].out != CLI_RPC_RETURN || rs[r + 1].out != CLI_RPC_RETURN) {
            s->state[i] = 2;
            continue;
        }
        s->state[i] = 1;
        s->via[i] = "distribution";
        int64_t c = 0;
        for (term_t l = rs[r].value; term_is_cons(l); l = term_tl(l))
            if (term_hd(l) != cli_self_node()) c++;
        s->conns[i] = c;
        int64_t v;
        s->procs[i] = term_get_int64(rs[r + 1].value, &v) == 0 ? v : -1;
    }
    for (size_t r = 0; r < nr; r++) cli_rpc_clear(&rs[r]);
    return CLI_OK;
}

static const char *state_name(int s)
{
    return s == 1 ? "up" : s == 2 ? "unresponsive" : "down";
}

int cli_cmd_cluster_status(const cli_opts *o)
{
    char dir[PATH_MAX];
    int rc = cluster_dir(o, false, dir, sizeof dir);
    cl_state *st = calloc(1, sizeof *st);
    status_ctx *s = calloc(1, sizeof *s);
    if (!st || !s) {
        free(st);
        free(s);
        return CLI_FAIL;
    }
    if (rc == 0) rc = cl_load(dir, st);
    if (rc) {
        if (rc != -EINVAL)
            cli_err("no cluster in %s (girder cluster up starts one)",
                    o->dir ? o->dir : CLI_DEFAULT_DIR);
        if (o->json) json_fail("no cluster");
        free(st);
        free(s);
        return CLI_FAIL;
    }
    s->st = st;
    uint64_t deadline = mono_ms() + (uint64_t)o->timeout_ms;
    bool any = false;
    for (size_t i = 0; i < st->n; i++) {
        cl_node *nd = &st->nodes[i];
        s->alive[i] = cl_proc_alive(&nd->proc);
        s->conns[i] = s->procs[i] = -1;
        /* a girderd answers on its control socket, without a distribution connection; one
        ** that does not (no socket, or another node on it) is asked by distribution */
        cli_ctl_info info;
        char why[600];
        if (s->alive[i] && nd->ctl[0] &&
            cli_ctl_node_info(nd->ctl, ctl_timeout(deadline), &info, why, sizeof why) == 0 &&
            !strcmp(info.name, nd->name) && info.os_pid == nd->proc.pid) {
            s->state[i] = 1;
            s->via[i] = "control_socket";
            s->conns[i] = info.connections;
            s->procs[i] = info.processes;
        } else if (s->alive[i] && nd->ctl[0] && o->verbose) {
            cli_err("%s: %s; asking by distribution", nd->name, why);
        }
        any |= s->alive[i] && s->state[i] != 1;
    }
    if (any) {
        cli_cookie ck;
        rc = cluster_cookie(dir, st, &ck);
        if (!rc) rc = cli_dist_up(o, false, &ck, st->epmd_port);
        if (!rc) {
            cli_run(status_body, s);
            cli_dist_down();
        } else {
            for (size_t i = 0; i < st->n; i++)
                if (s->alive[i]) s->state[i] = 2;
        }
    }
    bool all_up = st->n > 0;
    for (size_t i = 0; i < st->n; i++) all_up &= s->state[i] == 1;
    epmd_name_list nl;
    bool epmd_up = epmd_names("127.0.0.1", st->epmd_port, 1000, &nl) == 0;
    if (epmd_up) epmd_names_free(&nl);
    if (o->json) {
        cli_json j = {0};
        cli_json_obj(&j);
        cli_json_key(&j, "dir");
        cli_json_str(&j, dir);
        cli_json_key(&j, "epmd");
        cli_json_obj(&j);
        cli_json_key(&j, "port");
        cli_json_int(&j, st->epmd_port);
        cli_json_key(&j, "pid");
        json_proc_pid(&j, &st->epmd);
        cli_json_key(&j, "up");
        cli_json_bool(&j, epmd_up);
        cli_json_end(&j);
        cli_json_key(&j, "nodes");
        cli_json_arr(&j);
        for (size_t i = 0; i < st->n; i++) {
            cli_json_obj(&j);
            cli_json_key(&j, "node");
            cli_json_str(&j, st->nodes[i].name);
            cli_json_key(&j, "kind");
            cli_json_str(&j, st->nodes[i].kind);
            cli_json_key(&j, "state");
            cli_json_str(&j, state_name(s->state[i]));
            cli_json_key(&j, "pid");
            json_proc_pid(&j, &st->nodes[i].proc);
            cli_json_key(&j, "connections");
            if (s->conns[i] >= 0)
                cli_json_int(&j, s->conns[i]);
            else
                cli_json_null(&j);
            cli_json_key(&j, "processes");
            if (s->procs[i] >= 0)
                cli_json_int(&j, s->procs[i]);
            else
                cli_json_null(&j);
            cli_json_key(&j, "via");
            cli_json_str(&j, s->via[i]);
            cli_json_end(&j);
        }
        cli_json_end(&j);
        cli_json_key(&j, "ok");
        cli_json_bool(&j, all_up);
        cli_json_end(&j);
        cli_json_write(&j, stdout);
    } else {
        printf("%-24s %-7s %-12s %8s %11s %9s\n", "NODE", "KIND", "STATE", "OS_PID", "CONNECTIONS",
               "PROCESSES");
        for (size_t i = 0; i < st->n; i++) {
            char c[24] = "-", p[24] = "-";
            if (s->conns[i] >= 0) snprintf(c, sizeof c, "%lld", (long long)s->conns[i]);
            if (s->procs[i] >= 0) snprintf(p, sizeof p, "%lld", (long long)s->procs[i]);
            printf("%-24s %-7s %-12s %8d %11s %9s\n", st->nodes[i].name, st->nodes[i].kind,
                   state_name(s->state[i]), (int)st->nodes[i].proc.pid, c, p);
        }
        printf("port mapper 127.0.0.1:%u %s%s\n", st->epmd_port, epmd_up ? "up" : "down",
               st->epmd.pid ? " (started by cluster up)" : "");
    }
    fflush(stdout);
    if (!all_up) cli_err("not every node of the cluster in %s is up", dir);
    free(st);
    free(s);
    return all_up ? CLI_OK : CLI_FAIL;
}

/* ================================================================ down */

typedef struct down_ctx {
    cl_state *st;
    bool alive[CL_MAX_NODES];
    const char *how[CL_MAX_NODES];
} down_ctx;

/* Asks every live node for init:stop(); a node that cannot be asked, or that does not offer
** it, gets SIGTERM (girderd shuts down cleanly on it). */
static int down_body(void *arg)
{
    down_ctx *d = arg;
    cli_rpc rs[CL_MAX_NODES];
    size_t map[CL_MAX_NODES], nr = 0;
    for (size_t i = 0; i < d->st->n; i++) {
        if (!d->alive[i] || d->how[i]) continue; /* stopped through its control socket */
        term_t node = A(d->st->nodes[i].name);
        int64_t left = cli_remaining_ms();
        if (dist_connect(node, left < 2000 ? left : 2000) != 0) {
            signal_proc(&d->st->nodes[i].proc, SIGTERM);
            d->how[i] = "SIGTERM";
            continue;
        }
        cli_rpc_init(&rs[nr], node, "init", "stop", TERM_NIL);
        map[nr++] = i;
    }
    cli_rpc_run(rs, nr, nr);
    for (size_t r = 0; r < nr; r++) {
        size_t i = map[r];
        if (rs[r].out == CLI_RPC_RETURN || rs[r].out == CLI_RPC_NOCONN) {
            d->how[i] = "init:stop";
        } else {
            signal_proc(&d->st->nodes[i].proc, SIGTERM);
            d->how[i] = "SIGTERM";
        }
        cli_rpc_clear(&rs[r]);
    }
    return CLI_OK;
}

int cli_cmd_cluster_down(const cli_opts *o)
{
    char dir[PATH_MAX];
    int rc = cluster_dir(o, false, dir, sizeof dir);
    if (rc) {
        cli_err("no cluster in %s", o->dir ? o->dir : CLI_DEFAULT_DIR);
        if (o->json) json_fail("no cluster");
        return CLI_FAIL;
    }
    int lock = lock_dir(dir);
    if (lock < 0) return CLI_FAIL;
    cl_state *st = calloc(1, sizeof *st);
    down_ctx *d = calloc(1, sizeof *d);
    if (!st || !d || (rc = cl_load(dir, st)) != 0) {
        if (st && d && rc != -EINVAL) {
            cli_err("no cluster in %s", dir);
            remove_files(dir, NULL, true, false); /* a lock or cookie left behind */
        }
        if (o->json) json_fail("no cluster");
        free(st);
        free(d);
        close(lock);
        return CLI_FAIL;
    }
    uint64_t deadline = mono_ms() + (uint64_t)o->timeout_ms;
    d->st = st;
    bool any = false;
    for (size_t i = 0; i < st->n; i++) {
        cl_node *nd = &st->nodes[i];
        d->alive[i] = cl_proc_alive(&nd->proc);
        d->how[i] = d->alive[i] ? NULL : "already down";
        /* a girderd stops on node.stop, through its control socket; only a node that is really
        ** the one recorded (same name and OS pid) is asked */
        cli_ctl_info info;
        char why[600];
        if (d->alive[i] && nd->ctl[0] &&
            cli_ctl_node_info(nd->ctl, ctl_timeout(deadline), &info, why, sizeof why) == 0 &&
            !strcmp(info.name, nd->name) && info.os_pid == nd->proc.pid &&
            cli_ctl_node_stop(nd->ctl, ctl_timeout(deadline), why, sizeof why) == 0)
            d->how[i] = "node.stop";
        else if (d->alive[i] && nd->ctl[0] && o->verbose)
            cli_err("%s: %s; stopping it by distribution", nd->name, why);
        any |= d->alive[i] && !d->how[i];
    }
    if (any) {
        cli_cookie ck;
        cli_opts dopt = *o;
        dopt.timeout_ms = o->timeout_ms < 5000 ? o->timeout_ms : 5000; /* for the asking */
        if (cluster_cookie(dir, st, &ck) == CLI_OK &&
            cli_dist_up(&dopt, false, &ck, st->epmd_port) == CLI_OK) {
            cli_run(down_body, d);
            cli_dist_down();
        }
        for (size_t i = 0; i < st->n; i++)
            if (d->alive[i] && !d->how[i]) {
                signal_proc(&st->nodes[i].proc, SIGTERM);
                d->how[i] = "SIGTERM";
            }
    }
    /* graceful stops get until the deadline; then SIGKILL */
    if (!wait_gone(st, false, deadline)) {
        for (size_t i = 0; i < st->n; i++)
            if (cl_proc_alive(&st->nodes[i].proc)) {
                kill(st->nodes[i].proc.pid, SIGKILL);
                d->how[i] = "SIGKILL";
            }
        wait_gone(st, false, mono_ms() + 3000);
    }
    bool ok = true;
    for (size_t i = 0; i < st->n; i++)
        if (cl_proc_alive(&st->nodes[i].proc)) {
            cli_err("%s (OS pid %d) survived SIGKILL", st->nodes[i].name,
                    (int)st->nodes[i].proc.pid);
            ok = false;
        }
    /* the port mapper: only the one `up` started, and only when nobody else uses it */
    const char *epmd = "not started by cluster up";
    if (st->epmd.pid) {
        epmd_name_list nl;
        size_t others = 0;
        if (cl_proc_alive(&st->epmd) && epmd_names("127.0.0.1", st->epmd_port, 1000, &nl) == 0) {
            others = nl.count;
            epmd_names_free(&nl);
        }
        if (!cl_proc_alive(&st->epmd)) {
            epmd = "already down";
        } else if (others > 0) {
            epmd = "left running: other nodes are registered with it";
        } else {
            kill(st->epmd.pid, SIGTERM);
            if (!wait_gone(st, true, mono_ms() + 2000)) kill(st->epmd.pid, SIGKILL);
            wait_gone(st, true, mono_ms() + 1000);
            epmd = cl_proc_alive(&st->epmd) ? "survived SIGKILL" : "stopped";
            if (cl_proc_alive(&st->epmd)) ok = false;
        }
    }
    if (ok) {
        remove_files(dir, st, false, false);
        /* `up` made ./.girder for the default directory: remove it too when empty */
        if (!o->dir) rmdir(".girder");
    }
    if (o->json) {
        cli_json j = {0};
        cli_json_obj(&j);
        cli_json_key(&j, "dir");
        cli_json_str(&j, dir);
        cli_json_key(&j, "nodes");
        cli_json_arr(&j);
        for (size_t i = 0; i < st->n; i++) {
            cli_json_obj(&j);
            cli_json_key(&j, "node");
            cli_json_str(&j, st->nodes[i].name);
            cli_json_key(&j, "kind");
            cli_json_str(&j, st->nodes[i].kind);
            cli_json_key(&j, "pid");
            json_proc_pid(&j, &st->nodes[i].proc);
            cli_json_key(&j, "stopped_by");
            cli_json_str(&j, d->how[i]);
            cli_json_end(&j);
        }
        cli_json_end(&j);
        cli_json_key(&j, "epmd");
        cli_json_str(&j, epmd);
        cli_json_key(&j, "ok");
        cli_json_bool(&j, ok);
        cli_json_end(&j);
        cli_json_write(&j, stdout);
    } else {
        printf("%-24s %-7s %8s  %s\n", "NODE", "KIND", "OS_PID", "STOPPED BY");
        for (size_t i = 0; i < st->n; i++)
            printf("%-24s %-7s %8d  %s\n", st->nodes[i].name, st->nodes[i].kind,
                   (int)st->nodes[i].proc.pid, d->how[i]);
        printf("port mapper 127.0.0.1:%u: %s\n", st->epmd_port, epmd);
    }
    free(st);
    free(d);
    close(lock);
    return ok ? CLI_OK : CLI_FAIL;
}
