#!/bin/sh
# `make demo`: a local cluster, a supervisor on g1 whose workers run on g2 and g3, a real Erlang
# process watching them; kill -9 of g2, then the exit signals, DOWNs and restarts, shown and
# checked. Exit status 0 only when the whole recovery was seen and nothing is left running.
#
# usage: scripts/demo.sh [BINDIR]     BINDIR: girder, girderd, girder-epmd (default build/bin)
# ERL_EPMD_PORT: the port mapper port (default: a free port, so no other node is met);
# DEMO_KEEP=1 keeps the work directory (logs) afterwards.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:-$HERE/../build/bin}
WORKERS=4
START_MS=$(date +%s%3N)

if [ -t 1 ]; then B=$(printf '\033[1m') N=$(printf '\033[0m'); else B="" N=""; fi
die() { printf '\ndemo: FAILED: %s\n' "$*" >&2; exit 1; }
step() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
say() { printf '   %s\n' "$*"; }
# quote WORD: WORD as a person would type it in a shell
quote() {
    case "$1" in
    *[!A-Za-z0-9_@%+=:,./-]*)
        case "$1" in *\'*) printf '"%s"' "$1" ;; *) printf "'%s'" "$1" ;; esac ;;
    *) printf '%s' "$1" ;;
    esac
}
# run CMD...: shows the command, then runs it
run() {
    printf '\n$'
    for _a in "$@"; do printf ' %s' "$(quote "$_a")"; done
    printf '\n'
    "$@"
}
now_ms() { date +%s%3N; }

[ -d "$BIN" ] || die "no $BIN: build first (make build), or give the directory of the binaries"
BIN=$(cd "$BIN" && pwd)
for x in girder girderd girder-epmd; do [ -x "$BIN/$x" ] || die "$BIN/$x is missing (make build)"; done
for x in erl erlc; do command -v "$x" >/dev/null || die "$x is not installed (Debian: apt-get install erlang-base)"; done
export PATH="$BIN:$PATH"

# a port no socket uses, below the ephemeral range, unless ERL_EPMD_PORT is set
. "$HERE/free-port.sh"
[ -n "${ERL_EPMD_PORT:-}" ] || ERL_EPMD_PORT=$(girder_free_port)
export ERL_EPMD_PORT

WORK=$(mktemp -d "${TMPDIR:-/tmp}/girder-demo.XXXXXX")
STATE="$WORK/.girder/cluster/cluster"
HOST=$(hostname -s)
OURS="" # every OS process of the cluster, and their children, for the final check

# the recorded OS processes of the cluster (nodes and the port mapper it started)
recorded() {
    [ -f "$STATE" ] || return 0
    awk -F'\t' '$1 == "node" { print $4 } $1 == "epmd" && $3 != 0 { print $3 }' "$STATE"
}
# pid and its descendants (erl runs erl_child_setup, for one)
family() {
    echo "$1"
    for _c in $(ps -o pid= --ppid "$1" 2>/dev/null); do family "$_c"; done
}
alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

cleanup() {
    status=$?
    trap - EXIT INT TERM
    cd "$WORK" 2>/dev/null || cd /
    if [ -f "$STATE" ]; then
        say "stopping the cluster after a failure"
        girder cluster down --timeout 5000 >/dev/null 2>&1 || true
    fi
    for p in $OURS; do alive "$p" && kill -9 "$p" 2>/dev/null || true; done
    if [ -n "${DEMO_KEEP:-}" ] || [ "$status" -ne 0 ]; then
        [ "$status" -ne 0 ] && for f in "$WORK"/.girder/cluster/*.log; do
            [ -f "$f" ] && { echo "---- end of $f"; tail -n 5 "$f"; }
        done
        echo "demo: the work directory (logs) is kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$WORK"

printf '%sGirder demo%s: a supervisor on one Girder node whose workers run on two others,\n' "$B" "$N"
printf 'watched by a real Erlang node; one node is killed with kill -9 and the cluster recovers.\n'
say "binaries: $BIN"
say "work directory: $WORK, port mapper port: $ERL_EPMD_PORT (private to this demo)"

# ---------------------------------------------------------------- 1. the cluster
step "1. A local cluster: three girderd nodes (g1 g2 g3) and one Erlang node (e1)"
say "girder starts a port mapper and the nodes, connects them into a full mesh and records"
say "them in ./.girder/cluster; every girderd loads the demo's C module 'workload'."
run girder cluster up -n 3 --erlang 1 --module workload
for p in $(recorded); do OURS="$OURS $(family "$p")"; done
G1="g1@$HOST" G2="g2@$HOST" G3="g3@$HOST" E1="e1@$HOST"

# ---------------------------------------------------------------- 2. the Erlang watcher
step "2. A real Erlang process on e1 that will monitor the workers"
say "demo_watcher.erl is compiled here and loaded into e1; its process monitors every worker"
say "the workload tells it about, wherever that worker runs."
mkdir -p "$WORK/ebin"
run erlc -o "$WORK/ebin" "$HERE/demo/demo_watcher.erl"
run girder rpc e1 code add_patha "[\"$WORK/ebin\"]"
run girder rpc e1 demo_watcher start

# ---------------------------------------------------------------- 3. the workload
step "3. The workload: a supervisor on g1, its $WORKERS workers on g2 and g3"
say "workload:start/3 (C, in girderd) starts workload_sup, libnode's one_for_one supervisor,"
say "on g1; each worker is a remote spawn on g2 or g3 linked to it. The event log on g1 links"
say "to and monitors every worker too, and the Erlang watcher on e1 monitors them."
run girder rpc g1 workload start "[['$G2', '$G3'], $WORKERS, {demo_watcher, '$E1'}]"
run girder rpc g1 workload workers
run girder rpc g1 workload check
say "(every worker answered a ping: pong)"

step "4. What the nodes look like"
run girder nodes g1
run girder ps g2
say "workload_w* are the workers g1 started on g2 (their pids are g2's own)."

# ---------------------------------------------------------------- 5. the kill
VICTIM_PID=$(awk -F'\t' -v n="$G2" '$1 == "node" && $2 == n { print $4 }' "$STATE")
[ -n "$VICTIM_PID" ] || die "g2 is not in the cluster's state"
step "5. kill -9 of g2 (OS pid $VICTIM_PID): no goodbye, its connections just break"
say "Every process linked to a process of g2 gets an exit signal 'noconnection', every monitor"
say "a DOWN 'noconnection'; the supervisor restarts the lost workers on a node still up."
T0=$(now_ms)
run kill -9 "$VICTIM_PID"

# ---------------------------------------------------------------- 6. the recovery
ARGS="['$G1', '$G2', $T0]"
DEADLINE=$((T0 + 15000))
while :; do
    R=$(girder rpc e1 demo_watcher recovered "$ARGS" 2>/dev/null || true)
    [ "$R" = true ] && break
    [ "$(now_ms)" -lt "$DEADLINE" ] || break
    sleep 0.2
done
SEEN=$(( $(now_ms) - T0 ))
step "6. What arrived where, and when"
say "the timeline merges g1's event log (read by rpc from e1) and the Erlang watcher's own."
if ! run girder rpc e1 demo_watcher report "$ARGS"; then
    die "the recovery was not observed within 15 s (the line above says what is missing)"
fi
run girder rpc g1 workload workers
run girder rpc g1 workload check

# ---------------------------------------------------------------- 7. stop
step "7. Stopping the cluster"
run girder cluster down
# cluster down waits for the nodes and the port mapper; their children (erl's erl_child_setup)
# notice their parent's end on their own, a moment later on a loaded machine: up to 5 s
for _try in $(seq 50); do
    LEFT=""
    for p in $OURS; do alive "$p" && LEFT="$LEFT $p"; done
    [ -n "$LEFT" ] || break
    sleep 0.1
done
[ -z "$LEFT" ] || die "processes of the cluster still run 5 s after cluster down:$LEFT"
say "no process of the cluster is left (checked by pid: $(echo $OURS | wc -w) processes)."

printf '\n%sdemo: OK%s: the exit signals and DOWNs reached g1 and e1, and workload_sup restarted\n' "$B" "$N"
printf 'the lost workers on a live node; all of it within %s ms of the kill (the demo took %s s).\n' \
    "$SEEN" "$(( ($(now_ms) - START_MS + 500) / 1000 ))"
