/* Internal interface of `girder chaos`: the proxy, the history reader, the checker, the runner. */
#ifndef GIRDER_CLI_CHAOS_H
#define GIRDER_CLI_CHAOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* `girder chaos ...` parses its own arguments (argv[0] == "chaos"). */
int cli_cmd_chaos(int argc, char **argv);

/* ---------------------------------------------------------------- the proxy (chaos_proxy.c) */

/*
** A port mapper front and a TCP relay per node, in the path of every distribution connection:
** nodes are named NAME@<proxy host>, so a node that connects to another looks it up here; the
** proxy asks that node's real port mapper (upstream), answers with the port of its own relay
** for the node, and relays the connection byte for byte. The relay reads the initiator's name
** from the first handshake message, so that faults can target the connections of one node:
** added latency (order kept), slicing (bytes written a few at a time with gaps), and blocking
** one direction or both (bytes are left unread, as a partitioned TCP peer leaves them).
*/
typedef struct chaos_proxy chaos_proxy;

typedef struct chaos_upstream {
    const char *name; /* alive part ("g1") */
    const char *host; /* where its port mapper is (and the node listens) */
    uint16_t epmd_port;
} chaos_upstream;

typedef struct chaos_shape {
    unsigned latency_ms, jitter_ms; /* each chunk is held latency +- jitter (order kept) */
    unsigned slice_bytes;           /* 0: no slicing; else writes of at most this many bytes */
    unsigned slice_gap_us;          /* pause between slices */
    bool block_in, block_out;       /* bytes to / from the node are not relayed */
} chaos_shape;

/* Starts the proxy on addr: the port mapper front on epmd_port, one relay per upstream on a port
** the kernel picks. Its thread runs until chaos_proxy_stop. NULL with a reason in err. */
chaos_proxy *chaos_proxy_start(const char *addr, uint16_t epmd_port, const chaos_upstream *ups,
                               size_t n, char *err, size_t errlen);
/* Sets (replaces) the shape of node's connections; "all" or NULL clears every node when shape is
** NULL. 0, or -1 for an unknown node. Any thread. */
int chaos_proxy_shape(chaos_proxy *p, const char *node, const chaos_shape *shape);
/* Connections relayed now, and since the start. */
void chaos_proxy_counts(chaos_proxy *p, size_t *open, uint64_t *total);
/* Serves the line protocol of docs/chaos.md on a Unix socket at path (for a proxy that runs in
** a container and a runner outside it). 0 or -errno. */
int chaos_proxy_control(chaos_proxy *p, const char *path);
/* Closes every connection and listener and frees the proxy. */
void chaos_proxy_stop(chaos_proxy *p);
/* Parses one control line ("shape g1 200 50 0 0", "block g1 in", "clear all", "stats") and
** applies it; writes the answer line (without newline) into out. */
void chaos_proxy_command(chaos_proxy *p, const char *line, char *out, size_t n);

/* ---------------------------------------------------------------- histories (chaos_hist.c) */

/*
** A history is JSON lines, one event each (docs/chaos.md lists every kind and field): the
** workloads' operations and observations and the runner's faults. Strings are interned, so
** equal strings are equal pointers. Times are microseconds of the wall clock.
*/
typedef enum {
    EV_OTHER = 0,
    /* workload */
    EV_START,
    EV_SAMPLE,
    EV_NODEUP,
    EV_NODEDOWN,
    EV_LINK,
    EV_UNLINK,
    EV_EXIT,
    EV_MONITOR,
    EV_DEMONITOR,
    EV_DOWN,
    EV_RETIRE,
    EV_TEXIT,
    EV_STALE,
    EV_SEND,
    EV_RECV,
    EV_SUP_START,
    EV_SUP_EXIT,
    EV_CHILD_START,
    EV_CHILD_FAIL,
    EV_CRASH,
    /* runner */
    EV_RUN_START,
    EV_ROUND_START,
    EV_FAULT_START,
    EV_FAULT_HEAL,
    EV_NODE_START,
    EV_NODE_KILL,
    EV_NODE_STOP,
    EV_SETTLED,
    EV_SETTLE_FAILED,
    EV_ROUND_END,
    EV_RUN_END,
    EV_NOTE,
    EV_NKINDS
} chaos_evkind;

typedef struct chaos_ev {
    int64_t t, n;
    chaos_evkind kind;
    const char *kind_name, *node; /* node: "runner" for the runner's events */
    int64_t cr;
    const char *id, *a, *b, *pid, *s, *reason, *peer, *to, *sup, *child, *on, *impl, *what;
    const char *fault, *victim, *backend, *link_r, *mon_r, *text;
    int64_t seq, fds, rss, procs, round, rounds, seed, ticktime, slack_ms, hold_ms, intensity,
        period_ms, os_pid, settle_ms;
    bool active, sever;
    const char **nodes; /* sample: connected nodes; run_start: the cluster */
    size_t nnodes;
    const char *raw; /* the line as it was */
    size_t line;     /* 1-based, in the file it came from */
} chaos_ev;

typedef struct chaos_hist {
    chaos_ev *ev;
    size_t n, cap;
    size_t malformed;       /* lines that are not an event */
    size_t first_malformed; /* the line number of the first */
    struct chaos_strtab *in;
} chaos_hist;

/* Parses one line into a new event at the end of h: 1 added, 0 malformed (counted), -ENOMEM. */
int chaos_hist_feed(chaos_hist *h, const char *line, size_t len, size_t lineno);
/* Reads JSON lines from path (a file) into h, appending; 0 or -errno. */
int chaos_hist_read(chaos_hist *h, const char *path);
/* Sorts by time, then node, then the node's line number (stable for equal keys). */
void chaos_hist_sort(chaos_hist *h);
void chaos_hist_free(chaos_hist *h);
/* An interned copy of s (NULL on ENOMEM). */
const char *chaos_intern(chaos_hist *h, const char *s, size_t n);

/* A pid written as NODE#ID.SERIAL#CREATION: its node (interned) and creation; false if not. */
bool chaos_pid_split(chaos_hist *h, const char *pid, const char **node, int64_t *cr);

/* A map from pointers (interned strings) to indices, open addressing. */
typedef struct chaos_map {
    const void **k;
    size_t *v;
    size_t n, cap;
} chaos_map;
bool chaos_map_get(const chaos_map *m, const void *k, size_t *v);
int chaos_map_put(chaos_map *m, const void *k, size_t v);
void chaos_map_free(chaos_map *m);

/* ---------------------------------------------------------------- the checker (chaos_check.c) */

enum {
    INV_ONCE,     /* every link and monitor fires exactly once when its peer is lost */
    INV_TIMELY,   /* a noconnection signal comes with its node-down, not later */
    INV_REASON,   /* noconnection, or the process's own exit reason */
    INV_SILENCE,  /* nothing after unlink / demonitor */
    INV_STALE,    /* a pid of an earlier incarnation answers noproc */
    INV_DETECT,   /* node-down within the tick bound after a fault that cuts a node off */
    INV_ORDER,    /* per sender, messages arrive in order and once */
    INV_LOSS,     /* a message is lost only across a disconnect */
    INV_SUP,      /* supervisors restore their children within their intensity */
    INV_MESH,     /* after healing the mesh reconnects */
    INV_RESOURCE, /* descriptors, memory, processes back within bounds */
    INV_WORKLOAD, /* no crash of the workload, no signal it cannot place */
    NINV
};
extern const char *const chaos_inv_names[NINV];
extern const char *const chaos_inv_meaning[NINV];

typedef struct chaos_violation {
    int inv;
    char *msg;
    const chaos_ev **w; /* the witness: the fewest lines that show it */
    size_t nw;
} chaos_violation;

typedef struct chaos_params {
    int64_t ticktime_ms; /* from run_start, else 60 s */
    int64_t slack_ms;    /* scheduling slack added to every bound */
    int64_t deliver_ms;  /* a node-down's signals must come within this of its node-down */
    int64_t settle_ms;   /* after healing, the mesh must be whole within this */
} chaos_params;

typedef struct chaos_result {
    chaos_params prm;
    int64_t checked[NINV], failed[NINV];
    chaos_violation *v;
    size_t nv, capv;
    size_t unexplained_downs; /* node-downs with no fault near (noted, not violations) */
    /* from the runner's events */
    int64_t seed, rounds_planned, rounds_done;
    const char *backend;
    int64_t t0, t1; /* first and last event */
} chaos_result;

/* Checks every invariant on a sorted history. 0, or -ENOMEM. */
int chaos_check(chaos_hist *h, chaos_result *r);
void chaos_result_free(chaos_result *r);

/* ---------------------------------------------------------------- the runner (cmd_chaos.c) */

/* Fault kinds; a backend says which it can do. */
enum {
    F_KILL,      /* kill -9, then start again with the same name */
    F_RESTART,   /* graceful stop (SIGTERM), then start again with the same name */
    F_PAUSE,     /* SIGSTOP / docker pause, longer than the tick bound */
    F_PARTITION, /* the node cut off, both directions (iptables, or the proxy) */
    F_ONEWAY,    /* the node's outgoing packets dropped (iptables, or the proxy) */
    F_LOSS,      /* random packet loss both ways (iptables statistic) */
    F_LATENCY,   /* added latency on its connections (the proxy) */
    F_SLICE,     /* its bytes written a few at a time (the proxy) */
    NFAULTS
};
extern const char *const chaos_fault_names[NFAULTS];

#define CHAOS_MAX_NODES 16

typedef struct chaos_node {
    char name[160]; /* NAME@HOST */
    char alive[32];
    bool erlang;
    char hist[4096 + 64]; /* its history file */
    /* local backend */
    int pid;      /* the node's OS process, 0 when not running */
    int epmd_pid; /* its port mapper (network-namespace mode) */
    char ns[64];  /* its network namespace, "" on loopback */
    char ip[32];
    /* docker backend */
    char service[32], cid[96];
} chaos_node;

typedef struct chaos_run chaos_run;

typedef struct chaos_backend {
    const char *name;
    int (*setup)(chaos_run *r);                /* network, port mappers, proxy, nodes' homes */
    int (*start)(chaos_run *r, chaos_node *n); /* start (again) with the same name */
    int (*kill)(chaos_run *r, chaos_node *n);  /* SIGKILL, waits until gone */
    int (*stop)(chaos_run *r, chaos_node *n);  /* graceful, waits until gone */
    int (*pause)(chaos_run *r, chaos_node *n, bool on);
    /* packet filter rules in the node's network (iptables arguments after -I/-D CHAIN) */
    int (*filter)(chaos_run *r, chaos_node *n, bool add, const char *chain, const char *rule);
    int (*shape)(chaos_run *r, chaos_node *n, const chaos_shape *s); /* proxy */
    void (*teardown)(chaos_run *r);   /* stops everything it started, removes what it made */
    unsigned (*faults)(chaos_run *r); /* bit per F_*: what this setup can do */
} chaos_backend;

struct chaos_run {
    const chaos_backend *be;
    /* options */
    uint64_t seed;
    long rounds, duration_s, ticktime_s, setuptime_s, n_girder, n_erlang;
    unsigned faults; /* bits of F_* asked for (0: every one the backend can do) */
    const char *out, *sabotage, *netns, *compose, *project;
    char girderd[4096], epmd[4096], module[4096], beamdir[4096], erl[4096];
    char outdir[4096], histdir[4096];
    char cookie[64];
    int64_t slack_ms, settle_ms;
    bool verbose;
    /* state */
    chaos_node node[CHAOS_MAX_NODES];
    size_t nn;
    char host[64]; /* the host part of every node name (the proxy) */
    FILE *events;  /* the runner's own history */
    int64_t nev;
    chaos_proxy *proxy;
    void *be_state;
    char err[512];
};

extern const chaos_backend chaos_backend_local, chaos_backend_docker;

/* The runner's own event line (node "runner"): kind and ", key: value" text already in JSON. */
void chaos_event(chaos_run *r, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sleeps ms unless the run is being interrupted; false when it is. */
bool chaos_sleep(int64_t ms);
/* Runs argv (a NULL-terminated command) and waits up to timeout_ms; its exit status, or -1
** (could not run, timed out: then killed). quiet: its output goes to /dev/null. */
int chaos_cmd(char *const argv[], int64_t timeout_ms, bool quiet);
/* Same, with stdout captured into out (NUL-terminated, trailing newline removed). */
int chaos_cmd_out(char *const argv[], int64_t timeout_ms, char *out, size_t n);
/* Waits up to timeout_ms for pid (a child) to end; true when it has. */
bool chaos_wait_pid(int pid, int64_t timeout_ms);

/* ---------------------------------------------------------------- reports (chaos_report.c) */

/* Writes OUT/report.json and OUT/timeline.md and prints the summary on f; 0 or -errno. */
int chaos_report(const chaos_hist *h, const chaos_result *r, const char *outdir, FILE *f);

#endif
