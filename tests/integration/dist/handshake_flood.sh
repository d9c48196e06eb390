#!/bin/sh
# Connections that never finish the handshake cannot use up girderd's descriptors: with a limit
# of 200 open files, 600 silent connections from one address leave the node serving a real erl
# node, holding at most --max-handshakes-per-addr (20 here) of them, with one log line.
. "$(dirname "$0")/lib.sh"
: "${DIST_PROBE:?}"
start_epmd
compile_peer
REAL=$GIRDERD
GIRDERD=$TMP/girderd-200
printf '#!/bin/sh\nulimit -n 200 || exit 3\nexec "%s" "$@"\n' "$REAL" >"$GIRDERD"
chmod +x "$GIRDERD"
# a setup time longer than the test: only the bound closes the silent connections
start_girder g1 --setuptime 60 --max-handshakes-per-addr 20
G1=$(node g1)
fds() { ls "/proc/$GPID/fd" | wc -l; }
FD0=$(fds)
PROBE_CONNS=600 PROBE_HOLD=15 "$DIST_PROBE" hold "$G1" "$COOKIE" "$ERL_EPMD_PORT" \
    >"$TMP/hold.log" 2>&1 &
HPID=$!
PIDS="$PIDS $HPID"
wait_for 20 grep -q "connections open" "$TMP/hold.log" || { cat "$TMP/hold.log"; fail "probe"; }
FD1=$(fds)
log "descriptors: $FD0 before, $FD1 with 600 silent connections"
[ "$FD1" -le $((FD0 + 22)) ] || fail "silent connections hold $((FD1 - FD0)) descriptors"
peer a serving "$G1"; passed a serving
[ "$(grep -c "event=handshakes_evicted peer=127.0.0.1 .*max_handshakes_per_addr=20" "$TMP/g1.log")" = 1 ] ||
    fail "want one event=handshakes_evicted line: $(grep -c handshakes_evicted "$TMP/g1.log")"
wait "$HPID"
cat "$TMP/hold.log"
CLOSED=$(sed -n 's/^hold: \([0-9]*\) of 600 closed.*/\1/p' "$TMP/hold.log")
[ "${CLOSED:-0}" -ge 578 ] || fail "the node closed $CLOSED of the 600 silent connections, want 580"
alive "$GPID" || fail "girderd died"
log "dist handshake flood: ok"
