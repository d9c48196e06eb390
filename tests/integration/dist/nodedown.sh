#!/bin/sh
# kill -9 of a Girder node: Erlang links, monitors and monitor_node see noconnection; and the reverse.
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
start_girder g1
peer_bg a nodedown_girder "$(node g1)"
wait_for 20 grep -q READY "$TMP/a.out" || { cat "$TMP/a.out"; fail "peer a not ready"; }
kill -9 "$GPID"
wait_exit "$PPID_BG" 30 || fail "peer a hangs"
passed a nodedown_girder
grep "noconnection after" "$TMP/a.out" || true

start_girder g2
start_erl v -run dist_peer main victim
wait_for 20 grep -q READY "$TMP/v.log" || fail "victim not ready"
VPID=$EPID
peer_bg b nodedown_erlang "$(node g2)" "$(node v)"
wait_for 20 grep -q READY "$TMP/b.out" || { cat "$TMP/b.out"; fail "peer b not ready"; }
kill -9 "$VPID"
wait_exit "$PPID_BG" 30 || fail "peer b hangs"
passed b nodedown_erlang
grep -q "event=nodedown node=v$SUF@$HOST reason=\"connection closed by peer\" links=1 monitors=1" "$TMP/g2.log" ||
    fail "g2 did not log the node-down with its link and monitor"
log "dist nodedown: ok"
