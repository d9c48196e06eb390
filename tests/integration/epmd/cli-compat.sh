#!/bin/sh
# Erlang's epmd tool drives girder-epmd: -names, -dump, -stop (relaxed only) and -kill give the same
# answers as against Erlang's epmd.
. "$(dirname "$0")/lib.sh"

for impl in girder erlang; do
    if [ $impl = girder ]; then bin=$GIRDER_EPMD; else bin=$ERLANG_EPMD; fi
    # Strict daemon: KILL refused while a node lives; STOP refused.
    start_epmd "$bin" "$impl-strict"
    "$EPMD_PROBE" "$EPMD_PORT" register n1 1001 30 >/dev/null & P=$!; PIDS="$PIDS $P"
    wait_for 10 names_has n1 || fail "$impl: n1 not registered"
    "$ERLANG_EPMD" -port "$EPMD_PORT" -kill >"$TMP/$impl-kill1" || true
    "$ERLANG_EPMD" -port "$EPMD_PORT" -stop n1 >"$TMP/$impl-stop1" || true
    "$ERLANG_EPMD" -port "$EPMD_PORT" -dump | tr '\0' '@' >"$TMP/$impl-dump"
    names_has n1 || fail "$impl: n1 gone"
    kill "$P"; wait_for 10 names_lacks n1 || fail "$impl: n1 stays"
    "$ERLANG_EPMD" -port "$EPMD_PORT" -kill >"$TMP/$impl-kill2" || true
    wait_for 5 sh -c "! kill -0 $EPMD_PID" || fail "$impl: not killed"

    # Relaxed daemon: STOP unregisters, KILL works with live nodes.
    start_epmd "$bin" "$impl-relaxed" -relaxed_command_check
    "$EPMD_PROBE" "$EPMD_PORT" register n2 1002 30 >"$TMP/$impl-probe" & P=$!; PIDS="$PIDS $P"
    wait_for 10 names_has n2 || fail "$impl: n2 not registered"
    "$ERLANG_EPMD" -port "$EPMD_PORT" -stop n2 >"$TMP/$impl-stop2" || true
    "$ERLANG_EPMD" -port "$EPMD_PORT" -stop n2 >"$TMP/$impl-stop3" || true
    wait_for 5 grep -q "registration lost" "$TMP/$impl-probe" || fail "$impl: STOP did not close n2's connection"
    "$EPMD_PROBE" "$EPMD_PORT" register n3 1003 30 >/dev/null & P=$!; PIDS="$PIDS $P"
    wait_for 10 names_has n3 || fail "$impl: n3 not registered"
    "$ERLANG_EPMD" -port "$EPMD_PORT" -kill >"$TMP/$impl-kill3" || true
    wait_for 5 sh -c "! kill -0 $EPMD_PID" || fail "$impl: relaxed not killed"
done

for f in kill1 stop1 kill2 stop2 stop3 kill3; do
    echo "$f: girder=[$(cat "$TMP/girder-$f")] erlang=[$(cat "$TMP/erlang-$f")]"
    cmp -s "$TMP/girder-$f" "$TMP/erlang-$f" || fail "epmd -$f answers differ"
done
# Dumps differ only in descriptor numbers.
sed 's/fd = [0-9]*/fd = N/g' "$TMP/girder-dump" >"$TMP/g"; sed 's/fd = [0-9]*/fd = N/g' "$TMP/erlang-dump" >"$TMP/e"
sed "s/port [0-9]* with/port P with/" -i "$TMP/g" "$TMP/e"
cat "$TMP/g"
cmp -s "$TMP/g" "$TMP/e" || { cat "$TMP/e"; fail "dumps differ"; }
log PASS
