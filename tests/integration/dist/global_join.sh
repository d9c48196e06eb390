#!/bin/sh
# A mesh of Erlang nodes and a Girder node; a new Erlang node joins through one Erlang node only,
# then another through the Girder node only: global:sync() completes on every node within seconds
# and the mesh knows every node (Girder confirms with in_sync and relays new nodes).
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
G=${GLOBAL_JOIN_ERLANG_ONLY:+erl}
if [ -n "$G" ]; then
    start_erl g1
else
    start_girder g1
fi
start_erl e2 -kernel logger_level info
start_erl e1 -kernel logger_level info -run dist_peer main global_hub "$(node g1)" "$(node e2)"
wait_for 20 grep -q READY "$TMP/e1.log" || fail "hub e1 not ready"
ERL_ARGS="-kernel logger_level info" peer e3 global_join "$(node e1)" "$(node e2)" "$(node g1)"
passed e3 global_join
grep "took" "$TMP/e3.out"
# and through the Girder node only: it passes its known nodes on, and tells them about e4
ERL_ARGS="-kernel logger_level info" peer e4 global_join "$(node g1)" "$(node e1)" "$(node e2)"
passed e4 global_join
grep "took" "$TMP/e4.out"
# the newcomers halt at the end of their case: the others then warn that they cut them off to
# prevent overlapping partitions (erl-only meshes do the same); any other report is a failure
reports=$(grep -A1 -h -E "WARNING REPORT|ERROR REPORT|CRASH REPORT" "$TMP/e1.log" "$TMP/e2.log" \
    "$TMP/e3.out" "$TMP/e4.out" | grep -v -E "REPORT====|^--$" |
    grep -v -E "requested disconnect from node e[34]$SUF@$HOST in order to prevent overlapping" || true)
[ -z "$reports" ] || { echo "$reports"; fail "an Erlang node logged warnings or errors"; }
grep -q "event=protocol_error" "$TMP/g1.log" 2>/dev/null && fail "protocol error on g1"
log "dist global_join: ok"
