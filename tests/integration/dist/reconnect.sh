#!/bin/sh
# Disconnect and ping again at once, many times: a reconnect that races with the old
# connection's close is never lost (RECONNECT_CYCLES, default 2000; `make soak` runs 10000).
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
start_girder g1
N=${RECONNECT_CYCLES:-2000}
[ "${DIST_SANITIZED:-0}" = 1 ] && [ -z "${RECONNECT_CYCLES:-}" ] && N=500
peer a reconnect_cycles "$(node g1)" "$N"
passed a reconnect_cycles
grep "cycles" "$TMP/a.out"
grep -c "superseded" "$TMP/g1.log" && fail "a reconnect was dropped as superseded"
log "dist reconnect: ok"
