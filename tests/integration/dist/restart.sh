#!/bin/sh
# A Girder node killed and restarted under the same name: an Erlang node's link and monitor to a
# pid of the earlier incarnation get noproc at once, and touch no process of the new one.
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
start_girder g1
peer_bg a old_pid "$(node g1)" "$TMP/restarted"
wait_for 20 grep -q READY "$TMP/a.out" || { cat "$TMP/a.out"; fail "peer a not ready"; }
kill -9 "$GPID"
wait_for 10 sh -c "! \"$GIRDER_EPMD\" -port $ERL_EPMD_PORT -names | grep -q 'name g1$SUF '" ||
    fail "g1's name stayed registered"
start_girder g1
touch "$TMP/restarted"
wait_exit "$PPID_BG" 30 || fail "peer a hangs"
passed a old_pid
log "dist restart: ok"
