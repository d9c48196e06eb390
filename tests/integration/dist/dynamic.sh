#!/bin/sh
# Dynamic node names (DFLAG_NAME_ME), both roles: erl -sname undefined named by Girder, girderd --sname undefined named by erl.
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
start_girder g1
timeout 60 "$ERL" -sname undefined -setcookie "$COOKIE" -noshell -pa "$TMP" \
    -run dist_peer main dynamic_named "$(node g1)" >"$TMP/a.out" 2>&1 || true
cat "$TMP/a.out"
passed a dynamic_named
grep -q "event=nodeup node=[0-9A-Z]*@$HOST type=hidden" "$TMP/g1.log" || fail "g1 did not log the named node"

peer_bg b dynamic_namer
wait_for 20 grep -q READY "$TMP/b.out" || { cat "$TMP/b.out"; fail "peer b not ready"; }
"$GIRDERD" --sname undefined --connect "$(node b)" --cookie "$COOKIE" >>"$TMP/gd.log" 2>&1 &
GDPID=$!
PIDS="$PIDS $GDPID"
GPIDS="$GPIDS $GDPID"
wait_exit "$PPID_BG" 40 || fail "peer b hangs"
cat "$TMP/b.out"
passed b dynamic_namer
grep -q "event=named node=[0-9A-Z]*@$HOST creation=[0-9]* by=b$SUF@$HOST" "$TMP/gd.log" || fail "gd not named"
log "dist dynamic: ok"
