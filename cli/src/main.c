/* girder: entry point, flag parsing (flags anywhere on the line), help, command dispatch. */
#include "chaos.h"
#include "cli.h"
#include "session.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define GIRDER_VERSION "0.1.0"

const char cli_shared_flags_help[] =
    "shared flags (they may stand before the command or after its arguments):\n"
    "  --cookie C          the cookie (default: the cookie of the cluster in --dir when NODE\n"
    "                      belongs to it, else ~/.erlang.cookie)\n"
    "  --timeout MS        bound on every network wait (default 10000; cluster up: 30000)\n"
    "  --json              print one JSON document on stdout (see docs/cli.md)\n"
    "  --dir DIR           the cluster directory (default ./.girder/cluster)\n"
    "  --proto-dist inet_tcp|inet_tls, --ssl-dist-optfile F\n"
    "                      distribution over TCP (default), or over TLS with erl's optfile F\n"
    "                      (the nodes' own -ssl_dist_optfile); a node of the cluster in --dir\n"
    "                      is reached with the cluster's protocol unless --proto-dist says\n"
    "  --verbose           show the distribution layer's event lines on stderr\n"
    "  -h, --help          this help\n"
    "NODE is name@host, or a bare name meaning name@<this host's short name>.\n"
    "ERL_EPMD_PORT sets the port mapper's port (default 4369).\n"
    "Exit status: 0 success; 1 the operation failed (pang, badrpc, exception, timeout; the\n"
    "reason on stderr); 2 usage or input error (bad flag, bad term text, unknown command).\n";

static const cli_command commands[] = {
    {"ping", "check that nodes answer (pong/pang)",
     "usage: girder ping NODE... [shared flags]\n"
     "\n"
     "Connects to each NODE as a hidden node and prints 'NODE pong' or 'NODE pang'. Each pang\n"
     "comes with one line on stderr saying why: the port mapper is unreachable, no such name\n"
     "is registered there (with the names it has), the node refuses connections, or it closed\n"
     "the handshake (usually a wrong cookie). Exit status 1 if any node is pang.\n"
     "\n"
     "example:\n"
     "  girder ping g1 e1@myhost --cookie secret\n",
     CLI_F_SHARED, 1, -1, cli_cmd_ping},
    {"nodes", "list the nodes a node is connected to",
     "usage: girder nodes NODE [shared flags]\n"
     "\n"
     "Prints the nodes NODE is connected to, one per line with 'visible' or 'hidden'\n"
     "(erlang:nodes(visible) and erlang:nodes(hidden) by rpc; this CLI itself is left out).\n"
     "\n"
     "example:\n"
     "  girder nodes g1\n",
     CLI_F_SHARED, 1, 1, cli_cmd_nodes},
    {"ps", "list the processes of a node",
     "usage: girder ps NODE [--sort reductions|memory|mailbox] [--limit K] [shared flags]\n"
     "\n"
     "Lists NODE's processes (erlang:processes/0, then erlang:process_info/2 for each, by rpc):\n"
     "pid, registered name, status, message queue length, reductions, memory in bytes and\n"
     "current function. --sort orders by that column, largest first; --limit keeps the\n"
     "first K.\n"
     "\n"
     "example:\n"
     "  girder ps g1 --sort memory --limit 10\n",
     CLI_F_SHARED | CLI_F_SORT | CLI_F_LIMIT, 1, 1, cli_cmd_ps},
    {"info", "show a node, or one of its processes",
     "usage: girder info NODE [PID|NAME] [shared flags]\n"
     "\n"
     "Without PID or NAME: the node's kind (girder or erlang), OTP release, system version,\n"
     "process count, connected nodes and registered names. With a pid (<0.85.0> means a pid\n"
     "of NODE) or a registered name: erlang:process_info/1 of that process.\n"
     "\n"
     "examples:\n"
     "  girder info g1\n"
     "  girder info g1 kv\n"
     "  girder info e1 '<0.85.0>'\n",
     CLI_F_SHARED, 1, 2, cli_cmd_info},
    {"rpc", "call a function on a node",
     "usage: girder rpc NODE MOD FUN [ARGS] [shared flags]\n"
     "\n"
     "Calls MOD:FUN(ARGS...) on NODE (erpc: a spawn request of erpc:execute_call/4) and prints\n"
     "the result in Erlang syntax. ARGS is one Erlang list in term syntax (default []);\n"
     "<0.X.Y> in it means a pid of NODE. Output the function writes with io:format appears on\n"
     "stdout (stderr with --json). An exception, a badrpc or a timeout exits with status 1\n"
     "and the reason on stderr.\n"
     "\n"
     "examples:\n"
     "  girder rpc e1 erlang system_info '[otp_release]'\n"
     "  girder rpc e1 lists seq '[1, 5]'\n"
     "  girder rpc x Elixir.String upcase '[<<\"abc\">>]'\n",
     CLI_F_SHARED, 3, 4, cli_cmd_rpc},
    {"spawn", "start a process on a node",
     "usage: girder spawn NODE MOD FUN [ARGS] [shared flags]\n"
     "\n"
     "Starts MOD:FUN(ARGS...) as a new process on NODE (a spawn request, as\n"
     "erlang:spawn/4) and prints its pid. The process is neither linked nor monitored. On an\n"
     "Erlang node its group leader is then set to the node's 'user' process, so its output\n"
     "goes to that node's console.\n"
     "\n"
     "examples:\n"
     "  girder spawn g1 demo echo\n"
     "  girder spawn e1 timer sleep '[60000]'\n",
     CLI_F_SHARED, 3, 4, cli_cmd_spawn},
    {"send", "send a message to a process",
     "usage: girder send NODE NAME|PID TERM [shared flags]\n"
     "\n"
     "Sends TERM (Erlang term syntax) to the process registered as NAME on NODE, or to PID\n"
     "(<0.X.Y> means a pid of NODE). Unlike Erlang's '!', it fails (status 1) when no process\n"
     "has that name or the pid is not alive, checked by rpc just before sending.\n"
     "\n"
     "examples:\n"
     "  girder send g1 echo '{<0.90.0>, hello}'\n"
     "  girder send e1 '<0.85.0>' 'stop'\n",
     CLI_F_SHARED, 3, 3, cli_cmd_send},
    {"exit", "send an exit signal to a process",
     "usage: girder exit NODE NAME|PID [REASON] [shared flags]\n"
     "\n"
     "Sends an exit signal with REASON (a term, default kill) to the process registered as\n"
     "NAME on NODE, or to PID, as erlang:exit(Pid, Reason) from this CLI's process. Prints\n"
     "whether the process is still alive afterwards.\n"
     "\n"
     "examples:\n"
     "  girder exit g1 echo\n"
     "  girder exit e1 '<0.85.0>' shutdown\n",
     CLI_F_SHARED, 2, 3, cli_cmd_exit},
    {"stop", "stop a node gracefully",
     "usage: girder stop NODE [shared flags]\n"
     "\n"
     "Calls init:stop() on NODE (a graceful shutdown, on Erlang and Girder nodes alike) and\n"
     "waits, up to --timeout, until the node's connection closes.\n"
     "\n"
     "example:\n"
     "  girder stop e1\n",
     CLI_F_SHARED, 1, 1, cli_cmd_stop},
    {"top", "a live view of a node: schedulers, memory, processes",
     "usage: girder top NODE [--interval MS] [--once] [--json] [--sort reductions|memory|mailbox]\n"
     "                       [--limit K] [shared flags]\n"
     "\n"
     "Shows NODE like etop: each scheduler's utilisation over the last interval as a bar, run\n"
     "queues, process count, memory by kind, distribution connections and the top K processes\n"
     "(default 15) by reductions, memory or message queue (--sort; cumulative figures, with\n"
     "the change over the interval). Refreshed every --interval ms (default 1000); q or Ctrl-C\n"
     "quits. --once takes two snapshots one interval apart and prints the second (with --json:\n"
     "one JSON document). A local girderd is asked through its control socket (found as\n"
     "'cluster status' finds it, else girderd's default path); any other node, Girder or\n"
     "Erlang, through distribution (erlang:statistics(scheduler_wall_time) with\n"
     "system_flag(scheduler_wall_time, true) set while it runs, then restored; erlang:memory/0;\n"
     "processes and process_info).\n"
     "\n"
     "examples:\n"
     "  girder top g1\n"
     "  girder top e1 --once --sort memory --limit 5\n",
     CLI_F_SHARED | CLI_F_SORT | CLI_F_LIMIT | CLI_F_INTERVAL | CLI_F_ONCE, 1, 1, cli_cmd_top},
    {"trace", "record a node's scheduler timeline (Perfetto JSON, HTML page)",
     "usage: girder trace NODE --duration S --out FILE.json [--html FILE.html]\n"
     "                         [--pid PID | --name NAME] [shared flags]\n"
     "\n"
     "Records NODE's scheduler trace for S seconds (default 5; Ctrl-C ends it early) and\n"
     "writes FILE.json in Chrome's Trace Event format, which ui.perfetto.dev and\n"
     "chrome://tracing open: a track per scheduler with process run slices, flow arrows from\n"
     "each send to its receive, instants for spawn, exit, link, monitor, DOWN, exit signals,\n"
     "mailbox limits and busy distribution, and the drop counts. --html also writes a\n"
     "self-contained page (no network) drawing the timeline: a lane per scheduler, processes\n"
     "in colours, message arrows, mailbox depth per process, zoom, pan and a filter. --pid or\n"
     "--name records only the events of that process (and of those it talks to).\n"
     "A girderd of this machine is traced through its control socket (its libnode trace); an\n"
     "Erlang node through distribution, by a tracer process spawned there (erlang:trace/3 with\n"
     "send, receive, running, procs), which ends with the command.\n"
     "\n"
     "example:\n"
     "  girder trace g1 --duration 2 --out g1.json --html g1.html\n",
     CLI_F_SHARED | CLI_F_DURATION | CLI_F_OUT | CLI_F_HTML | CLI_F_PID | CLI_F_NAME, 1, 1,
     cli_cmd_trace},
    {"cluster up", "start a local cluster",
     "usage: girder cluster up [-n N] [--erlang K] [--prefix P] [--cookie C] [--dir DIR]\n"
     "                         [--module M]... [--proto-dist inet_tls --ssl-dist-optfile F]\n"
     "                         [--timeout MS] [--json] [--verbose]\n"
     "\n"
     "Starts a port mapper (girder-epmd) if none answers on ERL_EPMD_PORT (default 4369), N\n"
     "girderd nodes named P1..PN (default 3 nodes, prefix g) and, with --erlang K and erl on\n"
     "PATH, K Erlang nodes e1..eK, all with one cookie (--cookie, else a random one); connects\n"
     "them into a full mesh; records the cluster in DIR (default ./.girder/cluster: the\n"
     "cookie, mode 0400, and each node's name, OS pid, log file and control socket); prints a\n"
     "table of the nodes. --module M (repeatable) makes every girderd load the module M (a\n"
     "name from girderd's module directory, or a .so file) and checks that it did. It returns\n"
     "when every node is up, or says why not and stops what it started.\n"
     "It refuses to start over a cluster that is running in DIR. Over TLS every node, girderd\n"
     "and erl alike, gets --proto-dist inet_tls with the optfile F (by its absolute path), and\n"
     "later commands on the cluster's nodes use it too.\n"
     "\n"
     "example:\n"
     "  girder cluster up -n 3 --erlang 1\n"
     "  girder cluster up -n 3 --erlang 1 --module workload\n"
     "  girder cluster up -n 2 --erlang 1 --proto-dist inet_tls --ssl-dist-optfile tls.conf\n",
     CLI_F_COOKIE | CLI_F_TIMEOUT | CLI_F_JSON | CLI_F_DIR | CLI_F_PROTO | CLI_F_SSLOPT |
         CLI_F_VERBOSE | CLI_F_HELP | CLI_F_N | CLI_F_ERLANG | CLI_F_PREFIX | CLI_F_MODULE,
     0, 0, cli_cmd_cluster_up},
    {"cluster status", "show the nodes of the local cluster",
     "usage: girder cluster status [--dir DIR] [--timeout MS] [--json] [--verbose]\n"
     "\n"
     "Shows each node of the cluster in DIR: up (answers), down (its OS process is gone) or\n"
     "unresponsive; its OS pid, how many nodes it is connected to, and its process count;\n"
     "and the port mapper. Exit status 1 when a node is not up or there is no cluster.\n"
     "\n"
     "example:\n"
     "  girder cluster status\n",
     CLI_F_TIMEOUT | CLI_F_JSON | CLI_F_DIR | CLI_F_VERBOSE | CLI_F_HELP, 0, 0,
     cli_cmd_cluster_status},
    {"cluster down", "stop the local cluster",
     "usage: girder cluster down [--dir DIR] [--timeout MS] [--json] [--verbose]\n"
     "\n"
     "Stops every node of the cluster in DIR gracefully (init:stop() by rpc, or SIGTERM for\n"
     "a node that does not offer it), sends SIGKILL to what is still running after --timeout\n"
     "(default 10000 ms), stops the port mapper if 'cluster up' started it and no other node\n"
     "uses it, and removes the directory's files. Only the OS processes recorded in DIR are\n"
     "signalled. It also works when some nodes are already dead.\n"
     "\n"
     "example:\n"
     "  girder cluster down\n",
     CLI_F_TIMEOUT | CLI_F_JSON | CLI_F_DIR | CLI_F_VERBOSE | CLI_F_HELP, 0, 0,
     cli_cmd_cluster_down},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: girder [flags] COMMAND [ARGS...] [flags]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-15s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-15s %s\n", "term", "convert between the external term format and Erlang text");
    fprintf(f, "  %-15s %s\n", "chaos",
            "chaos testing: run faults against a cluster, check a history");
    fprintf(f, "\n%s\n`girder COMMAND --help` describes a command, with an example.\n",
            cli_shared_flags_help);
}

static void cluster_usage(FILE *f)
{
    fprintf(f,
            "usage: girder cluster up|status|down [flags]\n"
            "\n"
            "  up      start a port mapper, girderd nodes and Erlang nodes as one cluster\n"
            "  status  show the cluster's nodes\n"
            "  down    stop the cluster and clean its directory\n"
            "\n"
            "example:\n"
            "  girder cluster up -n 3 --erlang 1 && girder cluster status && girder cluster down\n"
            "\n`girder cluster SUBCOMMAND --help` describes each.\n");
}

typedef struct flag_def {
    const char *name;
    unsigned bit;
    bool takes_value;
} flag_def;

static const flag_def flags[] = {
    {"--cookie", CLI_F_COOKIE, true},    {"--timeout", CLI_F_TIMEOUT, true},
    {"--json", CLI_F_JSON, false},       {"--dir", CLI_F_DIR, true},
    {"--proto-dist", CLI_F_PROTO, true}, {"--ssl-dist-optfile", CLI_F_SSLOPT, true},
    {"--verbose", CLI_F_VERBOSE, false}, {"--sort", CLI_F_SORT, true},
    {"--limit", CLI_F_LIMIT, true},      {"-n", CLI_F_N, true},
    {"--erlang", CLI_F_ERLANG, true},    {"--prefix", CLI_F_PREFIX, true},
    {"--help", CLI_F_HELP, false},       {"-h", CLI_F_HELP, false},
    {"--module", CLI_F_MODULE, true},    {"--interval", CLI_F_INTERVAL, true},
    {"--once", CLI_F_ONCE, false},       {"--duration", CLI_F_DURATION, true},
    {"--out", CLI_F_OUT, true},          {"--html", CLI_F_HTML, true},
    {"--pid", CLI_F_PID, true},          {"--name", CLI_F_NAME, true},
};

static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < min || v > max) return false;
    *out = v;
    return true;
}

/* Sets one flag's value; CLI_OK or CLI_USAGE after a message. */
static int set_flag(cli_opts *o, const flag_def *fd, const char *v)
{
    long n;
    o->given |= fd->bit;
    switch (fd->bit) {
    case CLI_F_COOKIE:
        o->cookie = v;
        break;
    case CLI_F_TIMEOUT:
        if (!parse_long(v, 1, 24L * 3600 * 1000, &n)) {
            cli_err("--timeout: '%s' is not a number of milliseconds (1..86400000)", v);
            return CLI_USAGE;
        }
        o->timeout_ms = n;
        break;
    case CLI_F_JSON:
        o->json = true;
        break;
    case CLI_F_DIR:
        if (!*v) {
            cli_err("--dir: empty directory name");
            return CLI_USAGE;
        }
        o->dir = v;
        break;
    case CLI_F_PROTO:
        o->proto_dist = v;
        break;
    case CLI_F_SSLOPT:
        o->ssl_optfile = v;
        break;
    case CLI_F_VERBOSE:
        o->verbose = true;
        break;
    case CLI_F_SORT:
        if (strcmp(v, "reductions") && strcmp(v, "memory") && strcmp(v, "mailbox")) {
            cli_err("--sort: '%s' is not reductions, memory or mailbox", v);
            return CLI_USAGE;
        }
        o->sort = v;
        break;
    case CLI_F_LIMIT:
        if (!parse_long(v, 1, 100000000, &n)) {
            cli_err("--limit: '%s' is not a positive number", v);
            return CLI_USAGE;
        }
        o->limit = n;
        break;
    case CLI_F_N:
        if (!parse_long(v, 0, 32, &n)) {
            cli_err("-n: '%s' is not a number of nodes (0..32)", v);
            return CLI_USAGE;
        }
        o->n = n;
        break;
    case CLI_F_ERLANG:
        if (!parse_long(v, 0, 16, &n)) {
            cli_err("--erlang: '%s' is not a number of Erlang nodes (0..16)", v);
            return CLI_USAGE;
        }
        o->erlang = n;
        break;
    case CLI_F_PREFIX:
        o->prefix = v;
        break;
    case CLI_F_MODULE:
        if (o->nmodules == CLI_MAX_MODULES) {
            cli_err("--module: at most %d modules", CLI_MAX_MODULES);
            return CLI_USAGE;
        }
        o->modules[o->nmodules++] = v;
        break;
    case CLI_F_INTERVAL:
        if (!parse_long(v, 100, 3600000, &n)) {
            cli_err("--interval: '%s' is not a number of milliseconds (100..3600000)", v);
            return CLI_USAGE;
        }
        o->interval_ms = n;
        break;
    case CLI_F_ONCE:
        o->once = true;
        break;
    case CLI_F_DURATION:
        if (!parse_long(v, 1, 3600, &n)) {
            cli_err("--duration: '%s' is not a number of seconds (1..3600)", v);
            return CLI_USAGE;
        }
        o->duration_s = n;
        break;
    case CLI_F_OUT:
    case CLI_F_HTML:
        if (!*v) {
            cli_err("%s: empty file name", fd->name);
            return CLI_USAGE;
        }
        if (fd->bit == CLI_F_OUT)
            o->out = v;
        else
            o->html = v;
        break;
    case CLI_F_PID:
        o->pid = v;
        break;
    case CLI_F_NAME:
        o->name = v;
        break;
    }
    return CLI_OK;
}

/*
** Separates flags from positional arguments. A flag is one of the table's names (with its
** value as the next argument or after '='); "--" ends the flags; any other argument starting
** with "--" is an error; everything else (including "-1" or "-n" values) is positional.
*/
static int parse_args(int argc, char **argv, cli_opts *o, char **pos, int *npos)
{
    *npos = 0;
    bool flags_done = false;
    for (int i = 0; i < argc; i++) {
        char *a = argv[i];
        if (flags_done || a[0] != '-' || !a[1] ||
            (a[1] != '-' && strcmp(a, "-n") && strcmp(a, "-h"))) {
            pos[(*npos)++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            flags_done = true;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        const flag_def *fd = NULL;
        for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
            if (strlen(flags[k].name) == nl && !strncmp(flags[k].name, a, nl)) fd = &flags[k];
        if (!fd) {
            cli_err("unknown flag '%.*s' (see girder --help)", (int)nl, a);
            return CLI_USAGE;
        }
        const char *v = NULL;
        if (fd->takes_value) {
            if (eq)
                v = eq + 1;
            else if (i + 1 < argc)
                v = argv[++i];
            else {
                cli_err("%s needs a value", fd->name);
                return CLI_USAGE;
            }
        } else if (eq) {
            cli_err("%s takes no value", fd->name);
            return CLI_USAGE;
        }
        int rc = set_flag(o, fd, v);
        if (rc) return rc;
    }
    return CLI_OK;
}

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (!strcmp(commands[i].name, name)) return &commands[i];
    return NULL;
}

static const char *flag_name(unsigned bit)
{
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
        if (flags[k].bit == bit) return flags[k].name;
    return "?";
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a closed stdout (girder ps | head) is a write error */
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("girder %s\n", GIRDER_VERSION);
        return CLI_OK;
    }
    /* `term` keeps its own flags: hand it everything after the word */
    if (!strcmp(argv[1], "term")) return cli_cmd_term(argc - 1, argv + 1);
    if (!strcmp(argv[1], "chaos")) return cli_cmd_chaos(argc - 1, argv + 1);

    cli_opts o = {0};
    o.timeout_ms = -1;
    o.n = -1;
    char **pos = calloc((size_t)argc, sizeof *pos);
    if (!pos) return CLI_FAIL;
    int npos, rc = parse_args(argc - 1, argv + 1, &o, pos, &npos);
    if (rc) {
        free(pos);
        return rc;
    }
    bool help = o.given & CLI_F_HELP;
    const cli_command *cmd = NULL;
    int skip = 1;
    if (npos == 0 || !strcmp(pos[0], "help")) {
        /* girder --help, girder help, girder help ping, girder help cluster up */
        if (npos >= 2 && !strcmp(pos[1], "cluster") && npos >= 3) {
            char name[64];
            snprintf(name, sizeof name, "cluster %s", pos[2]);
            cmd = find_command(name);
        } else if (npos >= 2) {
            cmd = find_command(pos[1]);
        }
        if (npos >= 2 && !strcmp(pos[1], "cluster") && !cmd) {
            cluster_usage(stdout);
        } else if (npos >= 2 && !strcmp(pos[1], "term")) {
            free(pos);
            return cli_cmd_term(2, (char *[]){"term", "--help", NULL});
        } else if (cmd) {
            fputs(cmd->help, stdout);
            printf("\n%s", cli_shared_flags_help);
        } else if (npos >= 2) {
            cli_err("unknown command '%s' (see girder --help)", pos[1]);
            free(pos);
            return CLI_USAGE;
        } else {
            usage(help || npos ? stdout : stderr);
        }
        free(pos);
        return help || npos ? CLI_OK : CLI_USAGE;
    }
    if (!strcmp(pos[0], "cluster")) {
        if (npos < 2) {
            cluster_usage(help ? stdout : stderr);
            free(pos);
            return help ? CLI_OK : CLI_USAGE;
        }
        char name[64];
        snprintf(name, sizeof name, "cluster %.40s", pos[1]);
        cmd = find_command(name);
        skip = 2;
        if (!cmd) {
            cli_err("cluster: unknown subcommand '%s' (up, status or down)", pos[1]);
            free(pos);
            return CLI_USAGE;
        }
    } else {
        cmd = find_command(pos[0]);
        if (!cmd) {
            cli_err("unknown command '%s' (see girder --help)", pos[0]);
            free(pos);
            return CLI_USAGE;
        }
    }
    if (help) {
        fputs(cmd->help, stdout);
        printf("\n%s", cli_shared_flags_help);
        free(pos);
        return CLI_OK;
    }
    unsigned extra = o.given & ~cmd->flags;
    if (extra) {
        unsigned bit = extra & -extra;
        cli_err("%s does not take %s (see girder %s --help)", cmd->name, flag_name(bit), cmd->name);
        free(pos);
        return CLI_USAGE;
    }
    o.argc = npos - skip;
    o.argv = pos + skip;
    if (o.argc < cmd->min_args || (cmd->max_args >= 0 && o.argc > cmd->max_args)) {
        const char *u = cmd->help;
        const char *nl = strchr(u, '\n');
        cli_err("%s: wrong number of arguments; %.*s", cmd->name, (int)(nl ? nl - u : 0), u);
        free(pos);
        return CLI_USAGE;
    }
    if (o.timeout_ms < 0)
        o.timeout_ms =
            cmd->run == cli_cmd_cluster_up ? CLI_DEFAULT_UP_TIMEOUT_MS : CLI_DEFAULT_TIMEOUT_MS;
    rc = cmd->run(&o);
    free(pos);
    return cli_exit(rc);
}
