#!/bin/sh
# Outgoing atom cache: real erl decodes Girder's frames that use DIST_HEADER atom cache references.
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
start_girder g1
peer a atom_cache "$(node g1)"
passed a atom_cache
grep -q "event=protocol_error" "$TMP/g1.log" && fail "protocol error on g1"
log "dist atom_cache: ok"
