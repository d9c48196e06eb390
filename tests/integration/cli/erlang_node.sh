#!/bin/sh
# Every node command against a real Erlang/OTP node, in text and --json; stop ends the node.
. "$(dirname "$0")/lib.sh"
start_epmd
start_erl e1
E1PID=$EPID
start_erl e2
E1=$(node e1)
E2=$(node e2)
C="--cookie $COOKIE"

expect 0 ping e1$SUF "$E2" $C
out_has "^$E1 pong$"
out_has "^$E2 pong$"
expect 0 ping "$E1" $C --json
json "d['ok'] and d['nodes'][0]['result'] == 'pong'"

expect 0 rpc "$E1" net_adm ping "['$E2']" $C
out_has '^pong$'
expect 0 nodes "$E1" $C
out_has "^$E2 visible$"
grep -q girder_cli "$TMP/out" && fail "the CLI lists itself"
expect 0 nodes "$E1" $C --json
json "d['visible'] == ['$E2'] and d['hidden'] == []"

expect 0 info "$E1" $C
out_has '^kind +erlang$'
out_has '^otp_release +25$'
out_has '^system_version +Erlang/OTP 25'
expect 0 info "$E1" $C --json
json "d['kind'] == 'erlang' and d['process_count'] > 20 and 'code_server' in d['registered'] and d['visible_nodes'] == ['$E2']"
expect 0 info "$E1" code_server $C
out_has '^registered_name +code_server$'
out_has '^current_function +\{code_server,loop,1\}$'
expect 0 info "$E1" init $C --json
json "d['pid'] == '<0.0.0>' and d['info']['current_function'] == '{init,loop,1}'"
expect 0 info "$E1" '<0.0.0>' $C
out_has '^registered_name +init$'

expect 0 ps "$E1" $C
out_has '^<0\.0\.0> +init +waiting +[0-9]+ +[0-9]+ +[0-9]+ +init:loop/1$'
expect 0 ps "$E1" $C --json --sort reductions --limit 5
json "len(d['processes']) == 5 and [p['reductions'] for p in d['processes']] == sorted([p['reductions'] for p in d['processes']], reverse=True)"
expect 0 ps "$E1" $C --json --sort mailbox
json "any(p['name'] == 'code_server' and p['current_function'] == 'code_server:loop/1' for p in d['processes'])"

# rpc: values, io output, exceptions, timeouts
expect 0 rpc "$E1" lists seq '[1, 5]' $C
out_has '^\[1,2,3,4,5\]$'
expect 0 rpc "$E1" erlang list_to_binary '["text"]' $C --json
json "d['result'] == '<<\"text\">>' and d['call'] == 'erlang:list_to_binary/1'"
expect 0 rpc "$E1" io format '["hello ~s from ~p~n", ["world", e1]]' $C
out_has '^hello world from e1$'
out_has '^ok$'
expect 0 rpc "$E1" io format '["to stderr~n"]' $C --json
err_has '^to stderr$'
json "d['result'] == 'ok'"
expect 0 rpc "$E1" erlang whereis '[init]' $C
out_has '^<0\.0\.0>$'
expect 1 rpc "$E1" no_such_module f $C
err_has "^girder: rpc $E1 no_such_module:f/0: exception error: undef in no_such_module:f/0$"
err_one_line
expect 1 rpc "$E1" erlang throw '[{my, ball}]' $C --json
json "d['class'] == 'throw' and d['reason'] == '{my,ball}' and not d['ok']"
expect 1 rpc "$E1" erlang exit '[bye]' $C
err_has 'exception exit: bye$'
expect 1 rpc "$E1" erlang binary_to_list '[notabinary]' $C
err_has 'exception error: badarg'
T0=$(date +%s)
expect 1 rpc "$E1" timer sleep '[20000]' $C --timeout 700
err_has "no answer from $E1 within 700 ms"
err_one_line
[ $(( $(date +%s) - T0 )) -le 4 ] || fail "--timeout 700 took more than 4 s"
ok

# spawn, info, send, exit
expect 0 spawn "$E1" timer sleep '[60000]' $C
P=$(cat "$TMP/out")
echo "$P" | grep -Eq '^<0\.[0-9]+\.[0-9]+>$' || fail "spawn printed $P"
expect 0 info "$E1" "$P" $C --json
json "d['info']['current_function'] == '{timer,sleep,1}' and d['info']['group_leader'] != ''"
# the group leader was moved to the node's user process
expect 0 rpc "$E1" erlang whereis '[user]' $C
U=$(cat "$TMP/out")
expect 0 rpc "$E1" erlang process_info "[$P, group_leader]" $C
out_has "^\{group_leader,$U\}$"
expect 0 exit "$E1" "$P" $C
out_has "^$P exited$"
expect 1 info "$E1" "$P" $C
err_has "$P is not alive on $E1"

# send: by registered name and by pid; the messages land in the mailbox
expect 0 spawn "$E1" timer sleep '[60000]' $C
P=$(cat "$TMP/out")
expect 0 rpc "$E1" erlang register "[sleeper, $P]" $C
out_has '^true$'
expect 0 send "$E1" sleeper '{hello, [1,2,3], <<"bin">>}' $C
out_has '^ok$'
expect 0 rpc "$E1" erlang process_info "[$P, messages]" $C
out_has '^\{messages,\[\{hello,\[1,2,3\],<<"bin">>\}\]\}$'
expect 0 send "$E1" "$P" "{from, $P}" $C --json
json "d['ok'] and d['to'] == '$P' and d['message'] == '{from,$P}'"
expect 0 rpc "$E1" erlang process_info "[$P, message_queue_len]" $C
out_has '^\{message_queue_len,2\}$'
expect 1 send "$E1" nobody_here hi $C
err_has "no process is registered as nobody_here on $E1"
expect 0 exit "$E1" sleeper normal $C --json
json "d['alive'] is True and d['reason'] == 'normal'"
expect 0 exit "$E1" sleeper '{shutdown, test}' $C
out_has "^$P exited$"

# stop: init:stop() and the node goes away
expect 0 stop "$E1" $C
out_has "^$E1 stopped$"
wait_for 10 sh -c "! kill -0 $E1PID" || fail "e1 still runs after girder stop"
ok
expect 1 ping "$E1" $C
err_has "no node named 'e1$SUF' is registered"
expect 0 stop "$E2" $C --json
json "d['ok'] and d['stopped'] is True"
