#!/bin/sh
# Modules and apps with real Erlang peers: loaded from the config file and at run time, called by
# rpc:call and spawned remotely from erl, one runtime with the node (the module's processes are
# the node's), refused modules leave the node serving, `apps` picks and orders the apps.
. "$(dirname "$0")/lib.sh"
: "${TEST_MODULE_DIR:?}"
M=$TEST_MODULE_DIR
start_epmd

# app_state SOCKET MODULE: the app state module.list reports for MODULE.
app_state() {
    ctl "$1" module.list | sed 's/},{"abi"/}\n{"abi"/g' | grep "\"name\":\"$2\"" \
        | sed 's/.*"app":"\([a-z_]*\)".*/\1/'
}

# ---------------------------------------------------------------- the demo module by default
start_girder d1
G=$(node d1)
[ "$(app_state "$TMP/d1.sock" demo)" = running ] || fail "demo not loaded: $(ctl "$TMP/d1.sock" module.list)"
out=$(erl_eval e1 "io:format(\"~p~n\", [gen_server:call({kv, '$G'}, {put, k, 1})])")
[ "$out" = ok ] || fail "kv of the demo module: $out"
pass "the demo module is loaded by default and its app runs (kv answers erl)"
start_girder d2 --no-demo
G2=$(node d2)
ctl "$TMP/d2.sock" module.list >"$TMP/list.out"
[ "$(cat "$TMP/list.out")" = "ok []" ] || fail "--no-demo: $(cat "$TMP/list.out")"
out=$(erl_eval e2 "io:format(\"~p ~p~n\", [rpc:call('$G2', erlang, whereis, [kv]),
    element(1, element(2, rpc:call('$G2', demo, echo, [])))])")
[ "$out" = "undefined 'EXIT'" ] || fail "--no-demo: $out"
pass "--no-demo: no demo module, no kv, demo:echo is undef"

# ---------------------------------------------------------------- from the config file
cat >"$TMP/m.config" <<CFG
[{sname, "m1$SUF"}, {cookie, "$COOKIE"}, {control_socket, "$TMP/m1.sock"},
 {module_dir, "$M"},
 {modules, ["order_a", "$M/order_b.so", "$M/badabi.so", "$M/missing.so", "$M/failapp.so"]}].
CFG
"$GIRDERD" --config "$TMP/m.config" >>"$TMP/m1.log" 2>&1 &
GPID=$!; PIDS="$PIDS $GPID"
wait_for 20 "$DAEMON_CTL" call "$TMP/m1.sock" api.info || fail "m1 did not start"
G=$(node m1)
grep -q 'event=module_refused .*badabi.so reason=".*built for module ABI 999; this girderd has ABI [0-9]*"' "$TMP/m1.log" \
    || fail "badabi not refused"
grep -q 'event=module_refused .*missing.so reason=".*undefined symbol: girder_test_no_such_function"' "$TMP/m1.log" \
    || fail "missing not refused"
grep -q 'event=app_start_failed app=failapp reason=.*refused' "$TMP/m1.log" || fail "failapp's app did not fail"
pass "modules from the config file: wrong ABI and missing symbol refused, a failing app logged"
cat >"$TMP/mods_peer.erl" <<ERL
-module(mods_peer).
-export([main/1]).
main([G0]) ->
    G = list_to_atom(G0),
    pong = net_adm:ping(G),
    pong = rpc:call(G, order_a, ping, []),
    {x, "y"} = rpc:call(G, order_b, echo_args, [x, "y"]),
    {x, "y"} = erpc:call(G, order_b, echo_args, [x, "y"]),
    still_callable = rpc:call(G, failapp, hello, []),
    {badrpc, {'EXIT', {undef, _}}} = rpc:call(G, badabi, anything, []),
    %% a module function spawned remotely runs on G and ends normally
    {P, R} = spawn_monitor(G, order_a, echo_args, [a, b]),
    G = node(P),
    receive {'DOWN', R, process, P, normal} -> ok after 5000 -> exit(no_down) end,
    %% the app's processes belong to the node's runtime: erlang:processes() of G lists them
    W1 = rpc:call(G, erlang, whereis, [order_a_w1]),
    true = is_pid(W1) andalso node(W1) =:= G,
    true = lists:member(W1, rpc:call(G, erlang, processes, [])),
    pong = gen_server:call({order_b_w2, G}, hi),
    io:format("PASS~n"),
    halt().
ERL
(cd "$TMP" && erlc mods_peer.erl) || fail "erlc"
timeout 60 "$ERL" -sname "p1$SUF" -setcookie "$COOKIE" -noshell -pa "$TMP" -run mods_peer main "$G" \
    >"$TMP/p1.out" 2>&1 || true
grep -q '^PASS' "$TMP/p1.out" || { cat "$TMP/p1.out"; fail "erl peer against modules from the config file"; }
pass "erl: rpc:call/erpc:call into modules, a remote spawn of a module function, one runtime"
for want in order_a:running order_b:running failapp:failed; do
    [ "$(app_state "$TMP/m1.sock" "${want%%:*}")" = "${want#*:}" ] \
        || fail "module.list: $want: $(ctl "$TMP/m1.sock" module.list)"
done
pass "module.list: the apps' states"

# from another Girder node: d1's demo:spawn_monitor does a spawn_request of order_a:echo_args on m1
out=$(erl_eval e6 "_ = spawn('$(node d1)', demo, spawn_monitor, ['$G', order_a, echo_args, [a, b], self()]),
    receive {spawned, P, R} ->
        receive {down_seen, R, P, Why} -> io:format(\"~p ~p~n\", [node(P), Why])
        after 5000 -> io:format(\"no_down~n\") end;
        {spawn_error, E} -> io:format(\"spawn_error ~p~n\", [E])
    after 5000 -> io:format(\"no_spawn~n\") end")
[ "$out" = "'$G' normal" ] || [ "$out" = "$G normal" ] || fail "spawn from a Girder node: $out"
pass "a Girder node spawns a module function remotely (spawn_request from C)"

# ---------------------------------------------------------------- at run time
ctl "$TMP/m1.sock" module.load "s:$M/hello.so" >"$TMP/load.out" || fail "module.load hello: $(cat "$TMP/load.out")"
out=$(erl_eval e3 "io:format(\"~p~n\", [rpc:call('$G', hello, greet, [world])])")
[ "$out" = "{hello,world}" ] || fail "hello:greet after module.load: $out"
out=$(erl_eval e4 "{P, R} = spawn_monitor('$G', hello, greet, [x]),
    receive {'DOWN', R, process, P, Why} -> io:format(\"~p ~p~n\", [node(P), Why]) after 5000 -> io:format(\"timeout~n\") end")
[ "$out" = "$G normal" ] || fail "remote spawn of hello:greet: $out"
pass "module.load at run time: erl calls hello:greet(world) -> {hello,world} and spawns it remotely"
if [ -n "${GIRDER:-}" ]; then
    # the girder CLI is a (hidden) Girder node: its rpc is Girder calling the module
    out=$(timeout 30 "$GIRDER" rpc "$G" hello greet '[world]' --cookie "$COOKIE" 2>&1) \
        || fail "girder rpc hello:greet: $out"
    [ "$out" = "{hello,world}" ] || fail "girder rpc hello:greet: $out"
    pass "a Girder node (the girder CLI) calls hello:greet(world) by rpc -> {hello,world}"
fi
ctl "$TMP/m1.sock" module.load "s:$M/badabi.so" >"$TMP/load.out" && fail "badabi loaded at run time"
grep -q 'built for module ABI 999' "$TMP/load.out" || fail "badabi: $(cat "$TMP/load.out")"
out=$(erl_eval e5 "io:format(\"~p ~p~n\", [net_adm:ping('$G'), rpc:call('$G', hello, greet, [again])])")
[ "$out" = "pong {hello,again}" ] || fail "the node after a refused module: $out"
pass "a wrong-ABI module is refused at run time and the node keeps serving"

# ---------------------------------------------------------------- the apps key
start_girder a1 --no-demo --module-dir "$M" --module order_a --module "$M/order_b.so" --app order_b --app nosuch
[ "$(app_state "$TMP/a1.sock" order_a)" = not_started ] || fail "order_a: $(ctl "$TMP/a1.sock" module.list)"
[ "$(app_state "$TMP/a1.sock" order_b)" = running ] || fail "order_b: $(ctl "$TMP/a1.sock" module.list)"
grep -q 'event=app_start_failed app=nosuch reason="no module of that name loaded"' "$TMP/a1.log" || fail "unknown app not logged"
pass "apps: only the apps listed start; an unknown one is logged"

# ---------------------------------------------------------------- an app's strategy, intensity, period
# order_a: one_for_one, order_b: one_for_all; both 3 restarts in 5 s (tests/.../modules/testapp.c)
start_girder s1 --no-demo --module-dir "$M" --module order_a --module order_b
S=$(node s1)
cat >"$TMP/sup_peer.erl" <<'ERL'
-module(sup_peer).
-export([main/1]).
wh(G, N) -> rpc:call(G, erlang, whereis, [N]).
%% the pid registered as Name on G once it is not Old (a restart), within 5 s
restarted(G, Name, Old) -> restarted(G, Name, Old, 100).
restarted(_, Name, _, 0) -> exit({not_restarted, Name});
restarted(G, Name, Old, N) ->
    case wh(G, Name) of
        P when is_pid(P), P =/= Old -> P;
        _ -> timer:sleep(50), restarted(G, Name, Old, N - 1)
    end.
%% kills the worker registered as Name and returns its successor
crash(G, Name) -> P = wh(G, Name), true = is_pid(P), exit(P, kill), restarted(G, Name, P).
main([G0]) ->
    G = list_to_atom(G0),
    pong = net_adm:ping(G),
    A2 = wh(G, order_a_w2),
    _ = crash(G, order_a_w1),
    A2 = wh(G, order_a_w2),                        % one_for_one: the sibling lives on
    B2 = wh(G, order_b_w2),
    _ = crash(G, order_b_w1),
    _ = restarted(G, order_b_w2, B2),              % one_for_all: the sibling restarted too
    io:format("STRATEGY~n"),
    _ = crash(G, order_a_w1), _ = crash(G, order_a_w1),   % 3 restarts within 5 s: allowed
    P4 = wh(G, order_a_w1),
    exit(P4, kill),                                % a 4th crash: the app's supervisor gives up
    Gone = fun Wait(0) -> exit(still_there);
               Wait(N) -> case {wh(G, order_a_w1), wh(G, order_a_w2)} of
                              {undefined, undefined} -> ok;
                              _ -> timer:sleep(50), Wait(N - 1)
                          end end,
    ok = Gone(100),
    io:format("INTENSITY~n"),
    %% order_b had 1 restart; 2 more, then past its 5 s period 3 more are allowed again
    _ = crash(G, order_b_w1), _ = crash(G, order_b_w1),
    timer:sleep(5500),
    _ = crash(G, order_b_w1), _ = crash(G, order_b_w1), _ = crash(G, order_b_w1),
    true = is_pid(wh(G, order_b_w2)),
    io:format("PERIOD~n"),
    pong = net_adm:ping(G),
    halt().
ERL
(cd "$TMP" && erlc sup_peer.erl) || fail "erlc sup_peer"
timeout 60 "$ERL" -sname "p2$SUF" -setcookie "$COOKIE" -noshell -pa "$TMP" -run sup_peer main "$S" \
    >"$TMP/p2.out" 2>&1 || true
grep -q '^STRATEGY' "$TMP/p2.out" || { cat "$TMP/p2.out"; fail "strategies one_for_one / one_for_all"; }
pass "an app's strategy: one_for_one restarts the crashed child, one_for_all its siblings too"
grep -q '^INTENSITY' "$TMP/p2.out" || { cat "$TMP/p2.out"; fail "intensity"; }
[ "$(app_state "$TMP/s1.sock" order_a)" = exited ] || fail "order_a after 4 crashes: $(ctl "$TMP/s1.sock" module.list)"
grep -q 'event=app_exited app=order_a' "$TMP/s1.log" || fail "app_exited not logged"
pass "an app's intensity: 3 restarts in its period are allowed, a 4th crash ends the app (module.list: exited)"
grep -q '^PERIOD' "$TMP/p2.out" || { cat "$TMP/p2.out"; fail "period"; }
[ "$(app_state "$TMP/s1.sock" order_b)" = running ] || fail "order_b: $(ctl "$TMP/s1.sock" module.list)"
still_up=$(erl_eval e7 "io:format(\"~p~n\", [net_adm:ping('$S')])")
[ "$still_up" = pong ] || fail "the node after its app exited: $still_up"
pass "an app's period: restarts older than it no longer count; the node serves after an app exited"
echo "$PASSED passed, 0 failed"
