# Shared helpers for the daemon's shell tests: a temporary directory, a private port mapper, cleanup by pid.
set -eu
: "${GIRDERD:?}" "${GIRDER_EPMD:?}" "${DAEMON_CTL:?}" "${ERL:=erl}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/girder-daemon-test.XXXXXX")
PIDS=""
HOST=$(hostname -s)
SUF="_$$"
COOKIE="daemon$$"
export ERL_EPMD_ADDRESS=127.0.0.1
PASSED=0

cleanup() {
    status=$?
    for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
    for p in $PIDS; do
        _n=50; while alive "$p" && [ $_n -gt 0 ]; do sleep 0.1; _n=$((_n - 1)); done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    if grep -l "Sanitizer\|runtime error:" "$TMP"/*.log 2>/dev/null; then
        echo "FAIL: sanitizer report in a log" >&2
        status=1
    fi
    if [ "$status" -ne 0 ]; then
        for f in "$TMP"/*.log "$TMP"/*.out; do [ -f "$f" ] && { echo "---- $f"; tail -n 30 "$f"; }; done
    fi
    if [ -n "${KEEP_TMP:-}" ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok - $*"; PASSED=$((PASSED + 1)); }
# alive PID: the process runs (a zombie, exited but not yet waited for, does not count).
alive() {
    _st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$_st" ] && [ "$_st" != Z ]
}
# gone PID: the process has exited (waited for or not).
gone() { ! alive "$1"; }
# random_port: a free port below the kernel's ephemeral range (scripts/free-port.sh)
. "$(dirname "$0")/../../../scripts/free-port.sh"
random_port() { girder_free_port; }

# wait_for SECONDS CMD...: retries CMD every 0.1 s until it succeeds or time runs out.
wait_for() {
    _n=$(( $1 * 10 )); shift
    until "$@" >/dev/null 2>&1; do
        _n=$((_n - 1)); [ "$_n" -gt 0 ] || return 1
        sleep 0.1
    done
}

# start_epmd: girder-epmd on loopback and a random free port; exports ERL_EPMD_PORT.
start_epmd() {
    for _try in 1 2 3 4 5 6 7 8; do
        ERL_EPMD_PORT=$(random_port)
        "$GIRDER_EPMD" -port "$ERL_EPMD_PORT" -address 127.0.0.1 >>"$TMP/epmd.log" 2>&1 &
        EPMD_PID=$!
        PIDS="$PIDS $EPMD_PID"
        sleep 0.2
        if alive "$EPMD_PID" && wait_for 3 "$GIRDER_EPMD" -port "$ERL_EPMD_PORT" -names; then
            export ERL_EPMD_PORT
            return 0
        fi
        kill -9 "$EPMD_PID" 2>/dev/null || true
    done
    fail "no port mapper"
}

registered() { "$GIRDER_EPMD" -port "$ERL_EPMD_PORT" -names 2>/dev/null | grep -q "^name $1 at port "; }

# ctl SOCKET METHOD ARGS...: one control call; prints "ok RESULT" or "error CODE MSG".
ctl() { "$DAEMON_CTL" call "$@"; }

# start_girder NAME [ARGS...]: girderd --sname NAME$SUF with its control socket at
# $TMP/NAME.sock and its log at $TMP/NAME.log; sets GPID; waits until the socket answers.
# That is late enough to use the node's apps: girderd opens its control socket only after its
# modules are loaded and their apps started (a synchronous call; modules.sh checks the apps
# run at once); only the pid file, event=ready and READY=1 come after it.
start_girder() {
    _sg=$1; shift
    "$GIRDERD" --sname "$_sg$SUF" --cookie "$COOKIE" --control-socket "$TMP/$_sg.sock" "$@" \
        >>"$TMP/$_sg.log" 2>&1 &
    GPID=$!
    PIDS="$PIDS $GPID"
    wait_for 30 "$DAEMON_CTL" call "$TMP/$_sg.sock" api.info || fail "girderd $_sg did not start"
}

node() { echo "$1$SUF@$HOST"; }

# erl_eval NAME EXPR: runs EXPR on a fresh erl node (bounded); prints what it prints.
erl_eval() {
    _en=$1; shift
    timeout 60 "$ERL" -sname "$_en$SUF" -setcookie "$COOKIE" -noshell -eval "$1" -s init stop \
        2>>"$TMP/$_en.log"
}

# erl writes crash dumps into its working directory: keep them in ours
cd "$TMP"
