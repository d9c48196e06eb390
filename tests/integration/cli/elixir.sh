#!/bin/sh
# ping and rpc against an Elixir node (Elixir modules by their atom name, Elixir.String).
. "$(dirname "$0")/lib.sh"
command -v elixir >/dev/null || fail "elixir is not installed"
start_epmd
elixir --sname "x1$SUF" --cookie "$COOKIE" -e 'Process.sleep(:infinity)' >>"$TMP/x1.log" 2>&1 &
XPID=$!
PIDS="$PIDS $XPID"
wait_for 30 registered "x1$SUF" || fail "elixir did not register"
X1=$(node x1)
C="--cookie $COOKIE"

# the node registers before it runs the script: retry the first ping
wait_for 20 "$GIRDER" ping "$X1" $C || fail "the Elixir node does not answer"
expect 0 ping "$X1" $C
out_has "^$X1 pong$"
expect 0 ping "$X1" $C --json
json "d['nodes'] == [{'node': '$X1', 'result': 'pong'}]"
expect 0 rpc "$X1" Elixir.String upcase '[<<"abc">>]' $C
out_has '^<<"ABC">>$'
expect 0 rpc "$X1" Elixir.Enum sum '[[1, 2, 3]]' $C --json
json "d['ok'] and d['result'] == '6' and d['call'] == chr(39) + 'Elixir.Enum' + chr(39) + ':sum/1'"
expect 0 rpc "$X1" Elixir.IO puts '[<<"from elixir">>]' $C
out_has '^from elixir$'
expect 1 rpc "$X1" Elixir.String nope '[1]' $C
err_has "exception error: undef in 'Elixir.String':nope/1"
err_one_line
expect 1 ping "$X1" --cookie wrong
err_has 'closed the connection during the handshake: the cookie is most likely wrong'
