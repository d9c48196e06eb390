#!/bin/sh
# Hostile peers: each bad connection is closed with a log line, the node keeps serving, no fd leaks.
. "$(dirname "$0")/lib.sh"
: "${DIST_PROBE:?}"
start_epmd
compile_peer
# --atoms-disconnect: the atom flood below must cost the flooder its connection (atoms.sh
# tests the default, foreign atoms)
start_girder g1 --setuptime 3 --atoms-disconnect --max-new-atoms 50000
G1=$(node g1)
peer a serving "$G1"; passed a serving
fds() { ls "/proc/$GPID/fd" | wc -l; }
FD0=$(fds)
for m in garbage-pre wrong-cookie oversize garbage-post halfopen slow atoms; do
    timeout 60 "$DIST_PROBE" "$m" "$G1" "$COOKIE" "$ERL_EPMD_PORT" >>"$TMP/probe.log" 2>&1 ||
        { cat "$TMP/probe.log"; fail "probe $m: connection not closed"; }
    log "probe $m: closed"
    alive "$GPID" || fail "girderd died on $m"
done
grep -q "wrong cookie" "$TMP/g1.log" || fail "no wrong-cookie log line"
grep -q "reason=\"oversized frame\"\|over the limit" "$TMP/g1.log" || fail "no oversize log line"
grep -q "event=atom_budget_exhausted .*action=disconnect" "$TMP/g1.log" || fail "no atom-flood log line"
grep -q "budget of new atoms (max_new_atoms)" "$TMP/g1.log" || fail "no atom-flood close reason"
grep -q "handshake timeout" "$TMP/g1.log" || fail "no handshake timeout log line"
# an Erlang node with the wrong cookie gets pang, and the node still serves everybody else
COOKIE_SAVE=$COOKIE; COOKIE=wrong
peer w wrong_cookie "$G1"; passed w wrong_cookie
COOKIE=$COOKIE_SAVE
peer b serving "$G1"; passed b serving
sleep 0.5
FD1=$(fds)
[ "$FD1" -le "$FD0" ] || fail "file descriptors leaked: $FD0 -> $FD1"
log "dist hostile: ok ($FD0 fds before, $FD1 after)"
