#!/bin/sh
# Real Erlang/OTP nodes use girder-epmd: they register, find and ping each other, Erlang's epmd tool
# lists them, and a node killed with SIGKILL loses its name.
. "$(dirname "$0")/lib.sh"

start_epmd "$GIRDER_EPMD" girder-epmd
A=ga$$; B=gb$$
# Each node pings the other until pong (bounded) and writes the result to a file.
ping_loop() {
    echo "F = fun(_, 0) -> pang; (G, K) -> case net_adm:ping('$1@127.0.0.1') of pong -> pong; pang -> timer:sleep(200), G(G, K - 1) end end, R = F(F, 100), file:write_file(\"$TMP/$2\", io_lib:format(\"~p\", [R]))."
}
start_erl "$A" -eval "$(ping_loop "$B" ping-a)"; PID_A=$ERL_PID
start_erl "$B" -eval "$(ping_loop "$A" ping-b)"; PID_B=$ERL_PID

wait_for 30 names_has "$A" || fail "$A never registered"
wait_for 30 names_has "$B" || fail "$B never registered"
log "Erlang's epmd -names lists both nodes:"
"$ERLANG_EPMD" -port "$EPMD_PORT" -names

wait_for 30 test -s "$TMP/ping-a" || fail "no ping result from $A"
wait_for 30 test -s "$TMP/ping-b" || fail "no ping result from $B"
[ "$(cat "$TMP/ping-a")" = pong ] || fail "$A pinging $B: $(cat "$TMP/ping-a")"
[ "$(cat "$TMP/ping-b")" = pong ] || fail "$B pinging $A: $(cat "$TMP/ping-b")"
log "both nodes pinged each other: pong"

# Our client resolves them too, with the port the node registered.
port_a=$("$ERLANG_EPMD" -port "$EPMD_PORT" -names | sed -n "s/^name $A at port //p")
"$EPMD_PROBE" "$EPMD_PORT" lookup "$A" | tee "$TMP/lookup-a"
grep -q "^port=$port_a type=77 proto=0 high=6 " "$TMP/lookup-a" || fail "lookup of $A"

log "kill -9 $A (pid $PID_A)"
kill -9 "$PID_A"
wait_for 10 names_lacks "$A" || fail "$A still registered after kill -9"
names_has "$B" || fail "$B lost"
"$EPMD_PROBE" "$EPMD_PORT" lookup "$A" && fail "$A still resolvable"
grep -q " notice epmd event=unregistered name=$A " "$TMP/girder-epmd.log" ||
    fail "no unregistration logged"
log "name of killed node removed; $B still listed"

kill "$PID_B"
wait_for 10 names_lacks "$B" || fail "$B still registered after it stopped"
# No live nodes: Erlang's tool may kill our daemon.
"$ERLANG_EPMD" -port "$EPMD_PORT" -kill | grep -q Killed || fail "epmd -kill refused"
wait_for 5 sh -c "! kill -0 $EPMD_PID" || fail "girder-epmd still running after KILL"
log PASS
