#!/bin/sh
# global and pg: an Erlang node with a visible Girder node syncs (global:sync), registers, joins, without warnings.
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
start_girder g1
start_erl b -kernel logger_level info
# a connects to another Erlang node b first, then to g1: global on a and b both sync with g1
ERL_ARGS="-kernel logger_level info" peer a global_pg "$(node g1)" "$(node b)"
passed a global_pg
if grep -E "WARNING REPORT|ERROR REPORT|CRASH REPORT|\[warning\]|\[error\]|unexpected message" "$TMP/a.out" "$TMP/b.log"; then
    fail "the Erlang node logged warnings or errors"
fi
grep -q "event=protocol_error" "$TMP/g1.log" && fail "protocol error on g1"
log "dist global: ok"
