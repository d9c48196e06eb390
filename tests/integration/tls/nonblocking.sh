#!/bin/sh
# A TLS handshake never holds a scheduler: with one scheduler, a process of a TLS Girder node
# that dials a frozen TLS erl node (the kernel accepts, the ServerHello never comes) waits until
# the set-up time while calls from a real erl node keep answering within ms.
. "$(dirname "$0")/lib.sh"
start_epmd
make_certs
compile_peer
optfile "$TMP/tls.conf" node
ERL_ARGS=$(tls_args "$TMP/tls.conf")
start_girder g1 --proto-dist inet_tls --ssl-dist-optfile "$TMP/tls.conf" --schedulers 1 \
    --setuptime 3
start_erl s
SPID=$EPID
kill -STOP "$SPID"
# the bound on one call's latency while a process of g1 waits 3 s for s's TLS handshake: far
# below the 3 s a held scheduler would give, with room for a loaded machine
MAX_MS=1000
[ "${DIST_SANITIZED:-0}" = 1 ] && MAX_MS=2000
peer a stall_responsive "$(node g1)" "$(node s)" "$MAX_MS"
passed a stall_responsive
kill -CONT "$SPID"
wait_for 10 tls_failed "$TMP/g1.log" "node=s$SUF@$HOST .*TLS handshake not finished (0 bytes from the peer): handshake timeout" ||
    fail "g1 did not log the stalled TLS handshake with s"
grep -q "event=connect_failed node=s$SUF@$HOST" "$TMP/g1.log" || fail "g1 did not give up on s"
log "tls nonblocking: ok"
