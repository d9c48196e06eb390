#!/bin/sh
# A mixed mesh: three Girder nodes and two Erlang nodes all connect, see each other and pass messages.
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
start_girder g1
start_girder g2
start_girder g3
start_erl e2
peer m mesh "$(node g1)" "$(node g2)" "$(node g3)" "$(node e2)"
passed m mesh
for n in g1 g2 g3; do
    grep -q "event=nodeup node=e2$SUF@$HOST" "$TMP/$n.log" || fail "$n never saw e2"
done
# Erlang must not complain about the Girder nodes (global, pg, net_kernel)
if grep -Ei "error|warning|crash" "$TMP/m.out" "$TMP/e2.log"; then fail "Erlang logged problems"; fi
log "dist mesh: ok"
