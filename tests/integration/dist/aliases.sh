#!/bin/sh
# Process aliases across nodes: Erlang sends to a Girder alias and Girder to Erlang aliases (ALIAS_SEND).
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
start_girder g1
peer a aliases "$(node g1)"
passed a aliases
grep -q "event=protocol_error" "$TMP/g1.log" && fail "protocol error on g1"
log "dist aliases: ok"
