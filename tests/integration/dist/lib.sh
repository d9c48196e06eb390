# Shared helpers for the dist integration tests: a private port mapper, girderd and erl nodes, cleanup by pid.
set -eu
: "${GIRDERD:?}" "${GIRDER_EPMD:?}" "${ERL:=erl}" "${ERLC:=erlc}"
HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/girder-dist-test.XXXXXX")
PIDS=""
COOKIE="girder$$"
HOST=$(hostname -s)
SUF="_$$"
export ERL_EPMD_ADDRESS=127.0.0.1

GPIDS=""
cleanup() {
    status=$?
    # girderd nodes stop cleanly (SIGTERM) so sanitizer builds get to report leaks
    for p in $GPIDS; do kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
    for p in $GPIDS; do
        _n=50; while kill -0 "$p" 2>/dev/null && [ $_n -gt 0 ]; do sleep 0.1; _n=$((_n - 1)); done
    done
    if grep -l "Sanitizer\|runtime error:" "$TMP"/*.log 2>/dev/null; then
        echo "FAIL: sanitizer report in a girderd log" >&2
        status=1
    fi
    for p in $PIDS; do kill -CONT "$p" 2>/dev/null || true; kill -9 "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    if [ "$status" -ne 0 ]; then
        for f in "$TMP"/*.log; do [ -f "$f" ] && { echo "---- $f"; tail -n 30 "$f"; }; done
    fi
    if [ -n "${KEEP_TMP:-}" ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
log() { echo "[$(date +%T)] $*"; }
alive() { kill -0 "$1" 2>/dev/null; }
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

# start_girder NAME [ARGS...]: girderd --sname NAME$SUF; sets GPID; waits for its registration.
start_girder() {
    _n=$1; shift
    _ready0=$(cat "$TMP/$_n.log" 2>/dev/null | grep -c "event=ready" || true)
    # the control socket in the test's own directory: a default one under /run/girder would
    # outlive a node killed with -9
    "$GIRDERD" --sname "$_n$SUF" --cookie "$COOKIE" --control-socket "$TMP/$_n.ctl" "$@" \
        >>"$TMP/$_n.log" 2>&1 &
    GPID=$!
    PIDS="$PIDS $GPID"
    GPIDS="$GPIDS $GPID"
    _gname=$_n
    wait_for 10 registered "$_gname$SUF" || fail "girderd $_gname did not register"
    # registered is not ready: modules and apps (echo, kv) start after distribution
    wait_for 10 sh -c "[ \$(grep -c event=ready '$TMP/$_gname.log') -gt $_ready0 ]" ||
        fail "girderd $_gname did not get ready"
}

# start_erl NAME [ARGS...]: a background erl node (sname NAME$SUF); sets EPID; waits for it.
start_erl() {
    _n=$1; shift
    # shellcheck disable=SC2086
    "$ERL" -sname "$_n$SUF" -setcookie "$COOKIE" -noshell -pa "$TMP" ${ERL_ARGS:-} "$@" \
        >>"$TMP/$_n.log" 2>&1 &
    EPID=$!
    PIDS="$PIDS $EPID"
    wait_for 20 registered "$_n$SUF" || fail "erl $_n did not register"
}

node() { echo "$1$SUF@$HOST"; }

compile_peer() { "$ERLC" -o "$TMP" "$HERE/dist_peer.erl" || fail "erlc"; }

# peer NAME CASE ARGS...: runs dist_peer:CASE on a fresh erl node NAME (foreground, bounded).
peer() {
    _n=$1; _case=$2; shift 2
    # shellcheck disable=SC2086
    timeout "${PEER_TIMEOUT:-90}" "$ERL" -sname "$_n$SUF" -setcookie "$COOKIE" -noshell -pa "$TMP" ${ERL_ARGS:-} \
        -run dist_peer main "$_case" "$@" >"$TMP/$_n.out" 2>&1 || true
    cat "$TMP/$_n.out"
}

# peer_bg NAME CASE ARGS...: same in the background; output in $TMP/NAME.out; sets PPID_BG.
peer_bg() {
    _n=$1; _case=$2; shift 2
    # shellcheck disable=SC2086
    timeout "${PEER_TIMEOUT:-90}" "$ERL" -sname "$_n$SUF" -setcookie "$COOKIE" -noshell -pa "$TMP" ${ERL_ARGS:-} \
        -run dist_peer main "$_case" "$@" >"$TMP/$_n.out" 2>&1 &
    PPID_BG=$!
    PIDS="$PIDS $PPID_BG"
}

# wait_exit PID SECONDS: waits for a background process to end (bounded).
wait_exit() { wait_for "$2" sh -c "! kill -0 $1" || return 1; wait "$1" 2>/dev/null || true; }
# passed NAME CASE: the peer NAME printed PASS CASE.
passed() { grep -q "^PASS $2" "$TMP/$1.out" || { cat "$TMP/$1.out"; fail "$2"; }; }
