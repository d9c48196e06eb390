# Shared shell helpers for the epmd integration tests: free ports, processes cleaned up by pid, bounded waits.
set -eu
: "${GIRDER_EPMD:?}" "${EPMD_PROBE:?}" "${ERLANG_EPMD:=epmd}" "${ERL:=erl}"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/girder-epmd-test.XXXXXX")
PIDS=""
# Every epmd here lives on loopback and a random high port, never on 4369.
export ERL_EPMD_ADDRESS=127.0.0.1
unset ERL_EPMD_RELAXED_COMMAND_CHECK || true

cleanup() {
    status=$?
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    if [ "$status" -ne 0 ]; then
        for f in "$TMP"/*.log; do [ -f "$f" ] && { echo "---- $f"; tail -n 40 "$f"; }; done
    fi
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() { echo "FAIL: $*" >&2; exit 1; }
log() { echo "[$(date +%T)] $*"; }

# wait_for SECONDS CMD...: retries CMD every 0.1 s until it succeeds or time runs out.
wait_for() {
    _end=$(( $(date +%s) + $1 )); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$_end" ] || return 1
        sleep 0.1
    done
}

alive() { kill -0 "$1" 2>/dev/null; }

. "$(dirname "$0")/../../../scripts/free-port.sh"
random_port() { girder_free_port; }

# start_epmd BINARY NAME [ARGS...]: starts an epmd (ours or Erlang's) in the foreground
# on a free random port; sets EPMD_PORT and EPMD_PID. Retries on port collisions.
start_epmd() {
    _bin=$1; _name=$2; shift 2
    for _try in 1 2 3 4 5 6 7 8; do
        EPMD_PORT=$(random_port)
        "$_bin" -port "$EPMD_PORT" "$@" >>"$TMP/$_name.log" 2>&1 &
        EPMD_PID=$!
        PIDS="$PIDS $EPMD_PID"
        # Ours exits at once if the port is taken; Erlang's too. Up = answers and still ours.
        if wait_for 5 "$ERLANG_EPMD" -port "$EPMD_PORT" -names && alive "$EPMD_PID"; then
            log "$_name up on port $EPMD_PORT (pid $EPMD_PID)"
            return 0
        fi
        kill -9 "$EPMD_PID" 2>/dev/null || true
    done
    fail "could not start $_name"
}

# start_erl NAME [ARGS...]: a long-name Erlang node on loopback using $EPMD_PORT; sets ERL_PID.
start_erl() {
    _n=$1; shift
    ERL_EPMD_PORT=$EPMD_PORT "$ERL" -name "$_n@127.0.0.1" -setcookie "girder$$" -noshell \
        -start_epmd false -kernel inet_dist_use_interface '{127,0,0,1}' "$@" \
        >>"$TMP/erl-$_n.log" 2>&1 &
    ERL_PID=$!
    PIDS="$PIDS $ERL_PID"
}

# names_has NAME: Erlang's own epmd tool lists NAME from the epmd on $EPMD_PORT.
names_has() { "$ERLANG_EPMD" -port "$EPMD_PORT" -names | grep -q "^name $1 at port "; }
names_lacks() { ! names_has "$1"; }
