#!/bin/sh
# Girder's epmd client against Erlang's own epmd: it resolves and lists Erlang nodes, and registers
# names that Erlang's tools see; girder-epmd's -names works against Erlang's daemon too.
. "$(dirname "$0")/lib.sh"

start_epmd "$ERLANG_EPMD" erlang-epmd
E=ge$$
start_erl "$E"; PID_E=$ERL_PID
wait_for 30 names_has "$E" || fail "$E never registered with Erlang's epmd"
port_e=$("$ERLANG_EPMD" -port "$EPMD_PORT" -names | sed -n "s/^name $E at port //p")

"$EPMD_PROBE" "$EPMD_PORT" lookup "$E" | tee "$TMP/lookup"
grep -q "^port=$port_e type=77 proto=0 high=6 low=[56] name=$E extra_len=0\$" "$TMP/lookup" ||
    fail "lookup of $E through Erlang's epmd"
"$EPMD_PROBE" "$EPMD_PORT" lookup nobody$$ && fail "unknown name resolved"

"$EPMD_PROBE" "$EPMD_PORT" names | tee "$TMP/names"
grep -q "^epmd_port=$EPMD_PORT count=1\$" "$TMP/names" || fail "names header"
grep -q "^$E $port_e\$" "$TMP/names" || fail "names entry"

# Our client registers with Erlang's epmd and keeps the registration while it runs.
"$EPMD_PROBE" "$EPMD_PORT" register gp$$ 12345 30 >"$TMP/reg.out" 2>&1 &
PROBE=$!; PIDS="$PIDS $PROBE"
wait_for 10 names_has gp$$ || fail "our registration not listed by Erlang's epmd"
# epmd lists the name as it answers; the probe prints the answer a moment later.
wait_for 10 grep -q "^creation=[0-9]* extended=1\$" "$TMP/reg.out" ||
    fail "registration answer: $(cat "$TMP/reg.out")"
"$EPMD_PROBE" "$EPMD_PORT" lookup gp$$ | grep -q "^port=12345 " || fail "lookup of our own name"
# Erlang resolves it too.
ERL_EPMD_PORT=$EPMD_PORT timeout 30 "$ERL" -noshell -start_epmd false -eval \
  "io:format(\"~p~n\", [erl_epmd:port_please(\"gp$$\", {127,0,0,1})]), halt()." >"$TMP/pp" 2>&1
grep -q "{port,12345,6}" "$TMP/pp" || fail "erl_epmd:port_please: $(cat "$TMP/pp")"
# A duplicate is refused by Erlang's epmd, as by ours.
"$EPMD_PROBE" "$EPMD_PORT" register gp$$ 12346 1 && fail "duplicate registration accepted"
kill "$PROBE"
wait_for 10 names_lacks gp$$ || fail "our registration outlived our connection"

"$GIRDER_EPMD" -port "$EPMD_PORT" -names | tee "$TMP/gnames"
head -1 "$TMP/gnames" | grep -q "^epmd: up and running on port $EPMD_PORT with data:\$" || fail "girder-epmd -names header"
grep -q "^name $E at port $port_e\$" "$TMP/gnames" || fail "girder-epmd -names entry"

kill -9 "$PID_E"
wait_for 10 sh -c "! '$EPMD_PROBE' $EPMD_PORT lookup $E" || fail "$E still resolvable after kill -9"
log PASS
