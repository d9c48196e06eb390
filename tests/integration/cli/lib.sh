# Shared helpers for the girder CLI tests: a private port mapper, girderd/erl/elixir nodes,
# assertions on exit status, stderr lines and JSON; cleanup by pid.
set -eu
: "${GIRDER:?}" "${GIRDERD:?}" "${GIRDER_EPMD:?}" "${ERL:=erl}"
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "FAIL: $PY is needed to check --json output (apt-get install python3)" >&2; exit 1; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/girder-cli-test.XXXXXX")
PIDS=""
GPIDS=""
COOKIE="cli$$"
HOST=$(hostname -s)
SUF="_$$"
PASSES=0
export ERL_EPMD_ADDRESS=127.0.0.1
# no ~/.erlang.cookie of the machine may leak into a test
export HOME="$TMP/home"
mkdir -p "$HOME"

cleanup() {
    status=$?
    for p in $GPIDS; do kill -CONT "$p" 2>/dev/null || true; kill -TERM "$p" 2>/dev/null || true; done
    for p in $GPIDS; do
        _n=50; while kill -0 "$p" 2>/dev/null && [ $_n -gt 0 ]; do sleep 0.1; _n=$((_n - 1)); done
    done
    # file by file: one glob that matches nothing would make grep fail (status 2) on all
    for f in "$TMP"/*.log "$TMP"/*.err; do
        if [ -f "$f" ] && grep -q "Sanitizer\|runtime error:" "$f"; then
            echo "FAIL: sanitizer report in $f" >&2
            status=1
        fi
    done
    for p in $PIDS; do kill -CONT "$p" 2>/dev/null || true; kill -9 "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    if [ "$status" -ne 0 ]; then
        for f in "$TMP"/*.log "$TMP"/out "$TMP"/err; do [ -f "$f" ] && { echo "---- $f"; tail -n 20 "$f"; }; done
    fi
    if [ -n "${KEEP_TMP:-}" ]; then echo "kept $TMP" >&2; else rm -rf "$TMP"; fi
    [ "$status" -eq 0 ] && echo "$PASSES checks passed"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { PASSES=$((PASSES + 1)); }
. "$(dirname "$0")/../../../scripts/free-port.sh"
random_port() { girder_free_port; }

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
        if kill -0 "$EPMD_PID" 2>/dev/null && wait_for 3 "$GIRDER_EPMD" -port "$ERL_EPMD_PORT" -names; then
            export ERL_EPMD_PORT
            return 0
        fi
        kill -9 "$EPMD_PID" 2>/dev/null || true
    done
    fail "no port mapper"
}

registered() { "$GIRDER_EPMD" -port "$ERL_EPMD_PORT" -names 2>/dev/null | grep -q "^name $1 at port "; }
node() { echo "$1$SUF@$HOST"; }

# start_girder NAME: girderd --sname NAME$SUF; sets GPID.
start_girder() {
    _cready0=$(cat "$TMP/$1.log" 2>/dev/null | grep -c "event=ready" || true)
    "$GIRDERD" --sname "$1$SUF" --cookie "$COOKIE" >>"$TMP/$1.log" 2>&1 &
    GPID=$!
    PIDS="$PIDS $GPID"
    GPIDS="$GPIDS $GPID"
    wait_for 10 registered "$1$SUF" || fail "girderd $1 did not register"
    # registered is not ready: modules and apps (echo, kv) start after distribution
    wait_for 10 sh -c "[ \$(grep -c event=ready '$TMP/$1.log') -gt $_cready0 ]" ||
        fail "girderd $1 did not get ready"
}

# start_erl NAME: a background erl node; sets EPID.
start_erl() {
    "$ERL" -sname "$1$SUF" -setcookie "$COOKIE" -noshell -noinput >>"$TMP/$1.log" 2>&1 &
    EPID=$!
    PIDS="$PIDS $EPID"
    wait_for 20 registered "$1$SUF" || fail "erl $1 did not register"
}

# g ARGS...: runs girder (bounded) with stdout in $TMP/out, stderr in $TMP/err; sets RC.
g() {
    set +e
    timeout 60 "$GIRDER" "$@" >"$TMP/out" 2>"$TMP/err"
    RC=$?
    set -e
    [ "$RC" -ne 124 ] || fail "girder $* hung (killed after 60 s)"
    if grep -q "Sanitizer\|runtime error:" "$TMP/err"; then cat "$TMP/err"; fail "sanitizer report from girder $*"; fi
}

# expect STATUS ARGS...: girder ARGS... must exit with STATUS.
expect() {
    _want=$1; shift
    g "$@"
    [ "$RC" -eq "$_want" ] || { cat "$TMP/out" "$TMP/err"; fail "girder $* exited $RC, wanted $_want"; }
    ok
}
# out_has REGEX / err_has REGEX: a line of stdout / stderr matches (grep -E).
out_has() { grep -Eq -- "$1" "$TMP/out" || { cat "$TMP/out"; fail "stdout lacks /$1/"; }; ok; }
err_has() { grep -Eq -- "$1" "$TMP/err" || { cat "$TMP/err"; fail "stderr lacks /$1/"; }; ok; }
# err_one_line: a failure says why in exactly one line
err_one_line() { [ "$(wc -l < "$TMP/err")" -eq 1 ] || { cat "$TMP/err"; fail "stderr is not one line"; }; ok; }
out_empty() { [ ! -s "$TMP/out" ] || { cat "$TMP/out"; fail "stdout not empty"; }; ok; }

# json EXPR: stdout is one JSON document and the Python expression on it (as d) is true.
json() {
    "$PY" -c 'import json,sys
d = json.load(open(sys.argv[1]))
ok = eval(sys.argv[2])
sys.exit(0 if ok else 1)' "$TMP/out" "$1" || { cat "$TMP/out"; fail "JSON check failed: $1"; }
    ok
}
