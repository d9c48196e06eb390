#!/bin/sh
# A frozen node (SIGSTOP) is found by ticks with net_ticktime 4, in both directions.
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
ERL_ARGS="-kernel net_ticktime 4"
start_girder g1 --ticktime 4
G1PID=$GPID
peer_bg a ticks_girder "$(node g1)"
wait_for 20 grep -q READY "$TMP/a.out" || { cat "$TMP/a.out"; fail "peer a not ready"; }
kill -STOP "$G1PID"
wait_exit "$PPID_BG" 30 || fail "peer a hangs"
kill -CONT "$G1PID"
passed a ticks_girder
grep "nodedown after" "$TMP/a.out"

start_girder g2 --ticktime 4
start_erl v -run dist_peer main victim
wait_for 20 grep -q READY "$TMP/v.log" || fail "victim not ready"
VPID=$EPID
peer_bg b nodedown_erlang "$(node g2)" "$(node v)"
wait_for 20 grep -q READY "$TMP/b.out" || { cat "$TMP/b.out"; fail "peer b not ready"; }
kill -STOP "$VPID"
wait_exit "$PPID_BG" 30 || fail "peer b hangs"
kill -CONT "$VPID"
passed b nodedown_erlang
grep -q "event=net_tick_timeout node=v$SUF@$HOST" "$TMP/g2.log" || fail "g2 did not detect by ticks"
log "dist ticks: ok"
