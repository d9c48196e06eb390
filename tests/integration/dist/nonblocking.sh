#!/bin/sh
# With one scheduler, a process stuck connecting to a node that never answers the handshake does
# not stop the node's other processes: calls from a real erl node keep answering within ms.
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
start_girder g1 --schedulers 1 --setuptime 3
# s accepts TCP (its kernel does) and, frozen, never answers the handshake
start_erl s
SPID=$EPID
kill -STOP "$SPID"
# the bound on one call's latency while a process of g1 waits 3 s for s: a blocked scheduler
# would hold calls for up to those 3 s; 300 ms leaves room for a loaded CI machine's hiccups
MAX_MS=300
[ "${DIST_SANITIZED:-0}" = 1 ] && MAX_MS=800
peer a stall_responsive "$(node g1)" "$(node s)" "$MAX_MS"
passed a stall_responsive
kill -CONT "$SPID"
grep -q "event=connect_failed node=s$SUF@$HOST" "$TMP/g1.log" || fail "g1 did not give up on s"
log "dist nonblocking: ok"
