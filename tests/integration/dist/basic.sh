#!/bin/sh
# Girder <-> Erlang: ping, sends, kv, rpc/erpc, remote spawn, links, monitors, both directions; hidden nodes; 10 MB.
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
start_girder g1 --schedulers 2
G1=$(node g1)
peer a basic "$G1"; passed a basic
peer s builtins "$G1"; passed s builtins
peer b big "$G1"; passed b big
start_girder gh --hidden
peer c hidden "$(node gh)"; passed c hidden
grep -q "event=nodeup node=a$SUF@$HOST type=normal" "$TMP/g1.log" || fail "no nodeup line"
kill -TERM "$GPID"
wait_exit "$GPID" 10 || fail "girderd did not stop on SIGTERM"
grep -q "event=stopped" "$TMP/gh.log" || fail "no clean stop"
log "dist basic: ok"
