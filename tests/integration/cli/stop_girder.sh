#!/bin/sh
# girder stop on a girderd node: init:stop() by rpc, the node ends gracefully. Skipped (77)
# while girderd does not export init:stop/0.
. "$(dirname "$0")/lib.sh"
start_epmd
start_girder g1
G1=$(node g1)
C="--cookie $COOKIE"
g rpc "$G1" erlang node $C
[ "$RC" -eq 0 ] || fail "girderd does not answer"
g rpc "$G1" init stop $C --timeout 3000
if grep -q 'exception error: undef' "$TMP/err"; then
    echo "SKIP: this girderd does not export init:stop/0"
    trap - EXIT
    kill -TERM "$GPID"; wait "$GPID" 2>/dev/null || true
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
    exit 77
fi
# that call stopped it already: start another and use the command
wait_for 10 sh -c "! kill -0 $GPID" || fail "g1 still runs after init:stop()"
start_girder g2
G2=$(node g2)
expect 0 stop "$G2" $C
out_has "^$G2 stopped$"
wait_for 10 sh -c "! kill -0 $GPID" || fail "g2 still runs after girder stop"
ok
grep -q 'event=stopped' "$TMP/g2.log" || fail "g2 did not stop gracefully"
ok
