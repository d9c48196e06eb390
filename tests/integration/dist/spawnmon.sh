#!/bin/sh
# Girder's spawn_request with the monitor option against erl, erlang:processes/0 on Girder, and
# monitored_by after demonitors from erl.
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
start_girder g1
peer a spawn_monitor_procs "$(node g1)"
passed a spawn_monitor_procs
peer b monitored_by_demonitor "$(node g1)"
passed b monitored_by_demonitor
grep -q "event=protocol_error" "$TMP/g1.log" && fail "protocol error on g1"
log "dist spawnmon: ok"
