#!/bin/sh
# girder stop on a girderd node: init:stop() by rpc (girderd exports it), the node ends
# gracefully.
. "$(dirname "$0")/lib.sh"
start_epmd
start_girder g1
G1=$(node g1)
C="--cookie $COOKIE"
expect 0 rpc "$G1" init stop $C --timeout 3000
out_has '^ok$'
wait_for 10 sh -c "! kill -0 $GPID" || fail "g1 still runs after init:stop()"
ok
start_girder g2
G2=$(node g2)
expect 0 stop "$G2" $C
out_has "^$G2 stopped$"
wait_for 10 sh -c "! kill -0 $GPID" || fail "g2 still runs after girder stop"
ok
grep -q 'event=stopped' "$TMP/g2.log" || fail "g2 did not stop gracefully"
ok
