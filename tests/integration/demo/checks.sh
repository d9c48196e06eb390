#!/bin/sh
# The demo's parts on their own: the workload module (placement, restarts on a live node, its
# event log, bad arguments) and the Erlang watcher's checks, which must refuse a recovery that
# was not seen (here: no watcher was told of the workers, and a node that was not killed).
. "$(dirname "$0")/../cli/lib.sh"
WATCHER_SRC="$(cd "$(dirname "$0")/../../../scripts/demo" && pwd)/demo_watcher.erl"
ERLC=${ERLC:-erlc}
start_epmd
C="--cookie $COOKIE"

# start_workload_node NAME: girderd with the workload module; sets GPID
start_workload_node() {
    "$GIRDERD" --sname "$1$SUF" --cookie "$COOKIE" --module workload >>"$TMP/$1.log" 2>&1 &
    GPID=$!
    PIDS="$PIDS $GPID"
    GPIDS="$GPIDS $GPID"
    wait_for 10 registered "$1$SUF" || fail "girderd $1 did not register"
}
start_workload_node g1
start_workload_node g2
G2PID=$GPID
start_workload_node g3
start_erl e1
G1=$(node g1) G2=$(node g2) G3=$(node g3) E1=$(node e1)
grep -q 'event=module_loaded module=workload' "$TMP/g1.log" || fail "g1 did not load workload"
ok

mkdir -p "$TMP/ebin"
"$ERLC" -o "$TMP/ebin" "$WATCHER_SRC" || fail "erlc demo_watcher.erl"
expect 0 rpc "$E1" code add_patha "[\"$TMP/ebin\"]" $C
expect 0 rpc "$E1" demo_watcher start $C
out_has '^\{ok,<0\.[0-9]+\.[0-9]+>\}$'

# bad arguments are refused; a start spreads the workers round robin over the nodes given
expect 1 rpc "$G1" workload start "[[], 4, undefined]" $C
err_has 'exception error: badarg'
expect 1 rpc "$G1" workload start "[['$G2'], 0, undefined]" $C
err_has 'exception error: badarg'
expect 1 rpc "$G1" workload workers $C
err_has 'not_started'
# no watcher: the Erlang watcher on e1 is told of nothing
expect 0 rpc "$G1" workload start "[['$G2', '$G3'], 4, undefined]" $C
out_has '^\{ok,<0\.[0-9]+\.[0-9]+>\}$'
expect 0 rpc "$G1" workload start "[['$G2'], 1, undefined]" $C
out_has '^\{error,already_started\}$'
expect 0 rpc "$G1" workload workers $C --json
json "d['result'].count(',$G2}') == 2 and d['result'].count(',$G3}') == 2 and d['result'].startswith('[{w1,')"
expect 0 rpc "$G1" workload check $C
out_has "^\[\{w1,$G2,pong\},\{w2,$G3,pong\},\{w3,$G2,pong\},\{w4,$G3,pong\}\]$"
# the workers are processes of their nodes, registered as workload_<Id>
expect 0 ps "$G2" $C
out_has '^<0\.[0-9]+\.[0-9]+> +workload_w1 '
out_has '^<0\.[0-9]+\.[0-9]+> +workload_w3 '

# kill -9 of g2: its two workers come back on g3, the event log saw both signals
T0=$(date +%s%3N)
kill -9 "$G2PID"
restarted() {
    "$GIRDER" rpc "$G1" workload check $C 2>/dev/null |
        grep -q "^\[{w1,$G3,pong},{w2,$G3,pong},{w3,$G3,pong},{w4,$G3,pong}\]$"
}
wait_for 10 restarted || fail "the workers of g2 were not restarted on g3"
ok
expect 0 rpc "$G1" workload events $C
for w in w1 w3; do
    out_has "\{[0-9]+,$G1,exit,$w,<$G2:[0-9.]+>,$G2,noconnection\}"
    out_has "\{[0-9]+,$G1,down,$w,<$G2:[0-9.]+>,$G2,noconnection\}"
    out_has "\{[0-9]+,$G1,restarted,$w,<$G3:[0-9.]+>,$G3,\{was,<$G2:[0-9.]+>,$G2\}\}"
done
# w2 and w4 were on g3 all along: started once, never restarted
if grep -Eq "restarted,w[24]," "$TMP/out"; then fail "a worker of g3 was restarted"; fi
ok

# the watcher's checks refuse what was not seen: nobody told e1 of the workers
expect 0 rpc "$E1" demo_watcher recovered "['$G1', '$G2', $T0]" $C
out_has '^false$'
expect 1 rpc "$E1" demo_watcher report "['$G1', '$G2', $T0]" $C
err_has 'recovery_not_observed'
err_has '\{no_down_at_the_erlang_watcher,w1\}'
err_has '\{no_down_at_the_erlang_watcher,w3\}'
if grep -q 'no_exit_signal_at_the_supervisor_node\|not_restarted' "$TMP/err"; then
    fail "the checks missed what g1 did see"
fi
ok
out_has "w1 <0\.[0-9]+\.[0-9]+>: exit signal at g1$SUF \+[0-9]+ ms \(noconnection\), DOWN at g1$SUF \+[0-9]+ ms \(noconnection\), DOWN at e1$SUF \(not seen\); restarted \+[0-9]+ ms as <0\.[0-9]+\.[0-9]+> on g3$SUF, answers a ping"
# ... and a node that was not killed: its workers saw nothing and were not restarted
expect 1 rpc "$E1" demo_watcher report "['$G1', '$G3', $T0]" $C
err_has '\{not_restarted,w2\}'
err_has '\{no_exit_signal_at_the_supervisor_node,w4\}'
err_has '\{restarted_though_not_on_victim,w1\}'

# stop: the supervisor and the event log go, and with them the workers
expect 0 rpc "$G1" workload stop $C
out_has '^ok$'
expect 1 rpc "$G1" workload workers $C
err_has 'not_started'
expect 0 rpc "$G3" erlang whereis '[workload_w2]' $C
out_has '^undefined$'

# with a watcher: e1 is told of every worker it starts and monitors it. The workload is left
# running: the cleanup stops g1 with SIGTERM and reads its log, so a sanitizer build checks
# what the sends to {demo_watcher, e1} left behind.
expect 0 rpc "$G1" workload start "[['$G3'], 3, {demo_watcher, '$E1'}]" $C
out_has '^\{ok,<0\.[0-9]+\.[0-9]+>\}$'
watching() {
    "$GIRDER" rpc "$E1" demo_watcher events $C 2>/dev/null >"$TMP/wev" &&
        [ "$(grep -o ",watching,w[123],<$G3:[0-9.]*>,$G3,none}" "$TMP/wev" | sort -u | wc -l)" -eq 3 ]
}
wait_for 5 watching || { cat "$TMP/wev"; fail "the watcher on e1 was not told of w1..w3 on g3"; }
ok
