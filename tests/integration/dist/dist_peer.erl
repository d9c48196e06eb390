%% Erlang side of the dist integration tests: each case drives a Girder node from a real OTP node.
-module(dist_peer).
-export([main/1]).
-export([basic/1, hidden/1, big/1, mesh/1, nodedown_girder/1, nodedown_erlang/1,
         victim/1, ticks_girder/1, wrong_cookie/1, serving/1, remote_spawn/1,
         girder_to_erlang/1, spawn_target/1, simultaneous/1, blast/1, latency/1,
         global_pg/1, aliases/1, atom_cache/1, dynamic_named/1, dynamic_namer/1,
         spawn_monitor_procs/1, die_after/2, stall_responsive/1, builtins/1, old_pid/1,
         global_hub/1, global_join/1, latency_until/1, reconnect_cycles/1,
         soak_honest/1, soak_churn/1, atom_count/1, fresh_atoms/1,
         busy_flood/1, monitored_by_demonitor/1, drain_sink/1, drain_send/1, big_send/1,
         roundtrips/1]).

%% erl -noshell -pa DIR -run dist_peer main Case Arg... : prints PASS/FAIL, exits 0/1.
main([Case | Args]) ->
    Self = self(),
    Pid = spawn(fun() ->
                    R = try apply(?MODULE, list_to_atom(Case), [[list_to_atom(A) || A <- Args]]) of
                            _ -> ok
                        catch C:E:S -> {C, E, S}
                        end,
                    Self ! {done, R}
                end),
    receive
        {done, ok} ->
            io:format("PASS ~s~n", [Case]), halt(0);
        {done, Err} ->
            io:format("FAIL ~s: ~p~n", [Case, Err]), halt(1)
    after case os:getenv("DIST_PEER_TIMEOUT_MS") of false -> 60000; T -> list_to_integer(T) end ->
            io:format("FAIL ~s: timeout (~p)~n", [Case, erlang:process_info(Pid, current_stacktrace)]),
            halt(1)
    end.

expect(What, Timeout) ->
    receive Msg -> check(What, Msg)
    after Timeout -> error({timeout_waiting_for, What})
    end.
check(F, Msg) when is_function(F) -> case F(Msg) of true -> Msg; _ -> error({unexpected, Msg}) end;
check(Val, Val) -> Val;
check(Val, Msg) -> error({expected, Val, got, Msg}).

nothing(Timeout) ->
    receive Msg -> error({unexpected, Msg}) after Timeout -> ok end.

step(Name) -> io:format("  ~s~n", [Name]).

wait_until(_F, 0) -> error(wait_until_timeout);
wait_until(F, N) -> case catch F() of true -> ok; _ -> timer:sleep(50), wait_until(F, N - 1) end.

%% ---------------------------------------------------------------- the cases

basic([G]) ->
    step("ping and nodes()"),
    pong = net_adm:ping(G),
    true = lists:member(G, nodes()),
    true = lists:member(node(), rpc:call(G, erlang, nodes, [])),
    step("registered send, reply from Girder to an Erlang pid"),
    {echo, G} ! {self(), hello},
    hello = expect(hello, 3000),
    step("send to a remote pid"),
    Echo = rpc:call(G, erlang, whereis, [echo]),
    true = is_pid(Echo), G = node(Echo),
    Echo ! {self(), {by_pid, [1, 2.5, <<"bin">>, #{k => v}, "str", make_ref()]}},
    {by_pid, [1, 2.5, <<"bin">>, #{k := v}, "str", R0]} = expect(fun(_) -> true end, 3000),
    true = is_reference(R0),
    step("gen_server:call to kv"),
    ok = gen_server:call({kv, G}, {put, k, <<"v">>}),
    {ok, <<"v">>} = gen_server:call({kv, G}, {get, k}),
    error = gen_server:call({kv, G}, {get, nokey}),
    step("rpc:call and erpc:call"),
    G = rpc:call(G, erlang, node, []),
    G = erpc:call(G, erlang, node, []),
    {badrpc, {'EXIT', {undef, _}}} = rpc:call(G, nosuch, fn, [1]),
    {'EXIT', {{exception, undef, _}, _}} = (catch erpc:call(G, nosuch, fn, [])),
    true = is_integer(rpc:call(G, erlang, system_info, [process_count])),
    {registered_name, echo} = rpc:call(G, erlang, process_info, [Echo, registered_name]),
    true = lists:member(kv, rpc:call(G, erlang, registered, [])),
    step("remote spawn, spawn_monitor, spawn_link"),
    P1 = spawn(G, demo, echo, []),
    G = node(P1),
    P1 ! {self(), spawned}, spawned = expect(spawned, 3000),
    {P2, R2} = spawn_monitor(G, demo, echo, []),
    P2 ! {crash, boom},
    {'DOWN', R2, process, P2, boom} = expect(fun({'DOWN', _, _, _, _}) -> true end, 3000),
    process_flag(trap_exit, true),
    P3 = spawn_link(G, demo, echo, []),
    P3 ! {crash, linked_boom},
    {'EXIT', P3, linked_boom} = expect(fun({'EXIT', _, _}) -> true end, 3000),
    {P4, R4} = spawn_monitor(G, nosuch_mod, nosuch_fun, [x]),
    {'DOWN', R4, process, P4, {undef, _}} = expect(fun({'DOWN', _, _, _, _}) -> true end, 3000),
    step("link, unlink, exit/2"),
    P5 = spawn(G, demo, echo, []),
    true = link(P5),
    true = unlink(P5),
    P5 ! {crash, after_unlink},
    nothing(300),
    P6 = spawn(G, demo, echo, []),
    link(P6),
    exit(P6, kill),
    {'EXIT', P6, killed} = expect(fun({'EXIT', _, _}) -> true end, 3000),
    P7 = spawn(G, demo, echo, []),
    link(P7),
    P7 ! stop,
    {'EXIT', P7, normal} = expect(fun({'EXIT', _, _}) -> true end, 3000),
    process_flag(trap_exit, false),
    step("monitors by pid and by name, demonitor, noproc"),
    P8 = spawn(G, demo, echo, []),
    R8 = monitor(process, P8),
    P8 ! stop,
    {'DOWN', R8, process, P8, normal} = expect(fun({'DOWN', _, _, _, _}) -> true end, 3000),
    R9 = monitor(process, {echo, G}),
    {echo, G} ! {crash, named_crash},
    {'DOWN', R9, process, {echo, G}, named_crash} = expect(fun({'DOWN', _, _, _, _}) -> true end, 3000),
    wait_until(fun() -> is_pid(rpc:call(G, erlang, whereis, [echo])) end, 100),
    R10 = monitor(process, {nosuch, G}),
    {'DOWN', R10, process, {nosuch, G}, noproc} = expect(fun({'DOWN', _, _, _, _}) -> true end, 3000),
    P11 = spawn(G, demo, echo, []),
    R11 = monitor(process, P11),
    true = demonitor(R11, [flush]),
    P11 ! stop,
    nothing(300),
    R12 = monitor(process, P11),
    {'DOWN', R12, process, P11, noproc} = expect(fun({'DOWN', _, _, _, _}) -> true end, 3000),
    girder_to_erlang([G]),
    ok.

%% Girder links to, monitors and kills Erlang processes (demo:watch and erlang:exit/2 by rpc).
girder_to_erlang([G]) ->
    step("Girder links and monitors an Erlang process (demo:watch)"),
    Me = self(),
    V = spawn(fun() -> receive die -> exit(boom) end end),
    W = spawn(G, demo, watch, [V, Me]),
    wait_until(fun() -> {links, L} = process_info(V, links), lists:member(W, L) end, 100),
    wait_until(fun() -> {monitored_by, L} = process_info(V, monitored_by), lists:member(W, L) end, 100),
    V ! die,
    {exit_seen, V, boom} = expect(fun({exit_seen, _, _}) -> true end, 3000),
    {down_seen, V, boom} = expect(fun({down_seen, _, _}) -> true end, 3000),
    step("Girder sends exit/2 to an Erlang process"),
    V2 = spawn(fun() -> receive after infinity -> ok end end),
    R = monitor(process, V2),
    true = rpc:call(G, erlang, exit, [V2, kill]),
    {'DOWN', R, process, V2, killed} = expect(fun({'DOWN', _, _, _, _}) -> true end, 3000),
    step("Girder spawns on this Erlang node (erlang:spawn/4 through a spawn request)"),
    Sp = rpc:call(G, erlang, spawn, [node(), dist_peer, spawn_target, [[Me]]]),
    true = is_pid(Sp), true = node(Sp) =:= node(),
    {spawned_on, N0} = expect(fun({spawned_on, _}) -> true end, 3000),
    N0 = node(),
    step("Girder sends to a registered Erlang name"),
    register(dist_peer_box, self()),
    via_name = rpc:call(G, erlang, send, [{dist_peer_box, node()}, via_name]),
    via_name = expect(via_name, 3000),
    unregister(dist_peer_box),
    ok.

hidden([G]) ->
    step("a hidden Girder node: pong, in nodes(hidden) only"),
    pong = net_adm:ping(G),
    false = lists:member(G, nodes()),
    true = lists:member(G, nodes(hidden)),
    {echo, G} ! {self(), hi}, hi = expect(hi, 3000),
    ok.

big([G]) ->
    step("a 10 MB binary to Girder and back"),
    Bin = crypto:strong_rand_bytes(10 * 1024 * 1024),
    {echo, G} ! {self(), {big, Bin}},
    T0 = erlang:monotonic_time(millisecond),
    {big, Bin2} = expect(fun({big, _}) -> true end, 20000),
    true = Bin =:= Bin2,
    io:format("  round trip ~p ms~n", [erlang:monotonic_time(millisecond) - T0]),
    ok.

%% mesh G1 G2 G3 E2: every node ends up connected to every other.
mesh(Nodes) ->
    All = [node() | Nodes],
    Gs = [N || N <- Nodes, lists:prefix("g", atom_to_list(N))],
    step("ping everything from here"),
    [pong = net_adm:ping(N) || N <- Nodes],
    step("each Girder node pings every node"),
    [pong = rpc:call(G, net_adm, ping, [N]) || G <- Gs, N <- All, N =/= G],
    step("nodes() everywhere"),
    wait_until(fun() ->
                   lists:all(fun(N) ->
                                 Seen = lists:sort([N | rpc:call(N, erlang, nodes, [])]),
                                 Seen =:= lists:sort(All)
                             end, All)
               end, 100),
    step("messages across the mesh: Erlang -> G1 -> G2 -> here"),
    [G1, G2 | _] = Gs,
    Echo2 = rpc:call(G2, erlang, whereis, [echo]),
    {_, mesh_hop} = rpc:call(G1, erlang, send, [Echo2, {self(), mesh_hop}]),
    mesh_hop = expect(mesh_hop, 3000),
    ok.

%% The Girder node G is killed -9 by the script after "READY": links and monitors see noconnection.
nodedown_girder([G]) ->
    process_flag(trap_exit, true),
    pong = net_adm:ping(G),
    P = spawn_link(G, demo, echo, []),
    R = monitor(process, P),
    R2 = monitor(process, {kv, G}),
    monitor_node(G, true),
    io:format("READY~n"),
    T0 = erlang:monotonic_time(millisecond),
    {'EXIT', P, noconnection} = expect(fun({'EXIT', _, _}) -> true end, 10000),
    Rest = [expect(fun(_) -> true end, 5000) || _ <- [1, 2, 3]],
    true = lists:member({'DOWN', R, process, P, noconnection}, Rest),
    true = lists:member({'DOWN', R2, process, {kv, G}, noconnection}, Rest),
    true = lists:member({nodedown, G}, Rest),
    io:format("  noconnection after ~p ms~n", [erlang:monotonic_time(millisecond) - T0]),
    ok.

%% victim: a node whose processes Girder watches; it is killed -9 by the script.
victim([]) ->
    register(victim, spawn(fun() -> receive after infinity -> ok end end)),
    io:format("READY~n"),
    receive after infinity -> ok end.

%% Girder G watches victim on node V (demo:watch), reports here; the script kills V.
nodedown_erlang([G, V]) ->
    pong = net_adm:ping(V),
    Pid = rpc:call(V, erlang, whereis, [victim]),
    W = spawn(G, demo, watch, [Pid, self()]),
    wait_until(fun() -> {links, L} = rpc:call(V, erlang, process_info, [Pid, links]),
                        lists:member(W, L) end, 100),
    io:format("READY~n"),
    {exit_seen, Pid, noconnection} = expect(fun({exit_seen, _, _}) -> true end, 10000),
    {down_seen, Pid, noconnection} = expect(fun({down_seen, _, _}) -> true end, 5000),
    ok.

%% The script SIGSTOPs Girder G after READY; ticks must find it within about ticktime.
ticks_girder([G]) ->
    pong = net_adm:ping(G),
    monitor_node(G, true),
    io:format("READY~n"),
    T0 = erlang:monotonic_time(millisecond),
    {nodedown, G} = expect(fun(_) -> true end, 20000),
    io:format("  nodedown after ~p ms~n", [erlang:monotonic_time(millisecond) - T0]),
    ok.

wrong_cookie([G]) ->
    step("a wrong cookie gets pang"),
    pang = net_adm:ping(G),
    ok.

serving([G]) ->
    pong = net_adm:ping(G),
    {echo, G} ! {self(), still_serving},
    still_serving = expect(still_serving, 3000),
    ok.

%% Girder spawns on this Erlang node (erlang:spawn_request from C via dist_spawn_request).
remote_spawn([G]) ->
    pong = net_adm:ping(G),
    ok.

spawn_target([To]) ->
    To ! {spawned_on, node()}.

%% Both Girder nodes dial each other at the same moment, several times: both calls get pong.
simultaneous([G1, G2]) ->
    [begin
         pong = net_adm:ping(G1), pong = net_adm:ping(G2),
         _ = rpc:call(G1, erlang, disconnect_node, [G2]),
         wait_until(fun() -> not lists:member(G2, rpc:call(G1, erlang, nodes, [])) andalso
                                 not lists:member(G1, rpc:call(G2, erlang, nodes, [])) end, 100),
         Me = self(),
         [spawn(fun() -> Me ! {I, rpc:call(A, net_adm, ping, [B])} end)
          || {I, A, B} <- [{1, G1, G2}, {2, G2, G1}]],
         pong = receive {1, R1} -> R1 after 15000 -> error(timeout1) end,
         pong = receive {2, R2} -> R2 after 15000 -> error(timeout2) end,
         true = lists:member(G2, rpc:call(G1, erlang, nodes, [])),
         true = lists:member(G1, rpc:call(G2, erlang, nodes, []))
     end || _ <- lists:seq(1, 5)],
    ok.

%% blast: 10 MB binaries through echo on G, Count times (the other node measures meanwhile).
blast([G, Count]) ->
    pong = net_adm:ping(G),
    Bin = crypto:strong_rand_bytes(10 * 1024 * 1024),
    io:format("READY~n"),
    [begin {echo, G} ! {self(), {big, Bin}}, {big, _} = expect(fun({big, _}) -> true end, 20000) end
     || _ <- lists:seq(1, list_to_integer(atom_to_list(Count)))],
    ok.

%% latency: while big messages flow on another connection, small calls stay fast.
latency([G, MaxMs]) ->
    pong = net_adm:ping(G),
    ok = gen_server:call({kv, G}, {put, k, 1}),
    Lat = [begin
               T0 = erlang:monotonic_time(microsecond),
               {ok, _} = gen_server:call({kv, G}, {get, k}),
               T = erlang:monotonic_time(microsecond) - T0,
               timer:sleep(10),
               T
           end || _ <- lists:seq(1, 200)],
    Max = lists:max(Lat) div 1000,
    io:format("  small-call latency during 10 MB transfers: max ~p ms, median ~p us~n",
              [Max, lists:nth(100, lists:sort(Lat))]),
    true = Max < list_to_integer(atom_to_list(MaxMs)),
    ok.

%% global and pg with a visible Girder node in the cluster (the Erlang node connects to it).
global_pg([G | Others]) ->
    [pong = net_adm:ping(O) || O <- Others],
    ok = global:sync(),
    pong = net_adm:ping(G),
    step("global:sync"),
    T0 = erlang:monotonic_time(millisecond),
    Sync = spawn_monitor(fun() -> exit({synced, global:sync()}) end),
    {_, SRef} = Sync,
    receive {'DOWN', SRef, process, _, {synced, ok}} -> ok
    after 5000 -> error(global_sync_hangs)
    end,
    io:format("  global:sync() took ~p ms~n", [erlang:monotonic_time(millisecond) - T0]),
    true = lists:member(G, gen_server:call(global_name_server, get_known)),
    [{ok, true} = {rpc:call(O, global, sync, []),
                   lists:member(G, rpc:call(O, gen_server, call, [global_name_server, get_known]))}
     || O <- Others],
    step("global:register_name, whereis_name (here and on Girder)"),
    Me = spawn(fun() -> receive stop -> ok end end),
    yes = global:register_name(girder_test_name, Me),
    Me = global:whereis_name(girder_test_name),
    Me = rpc:call(G, global, whereis_name, [girder_test_name]),
    true = lists:member(girder_test_name, rpc:call(G, global, registered_names, [])),
    no = global:register_name(girder_test_name, self()),
    step("global: a dead process's name goes everywhere"),
    Me ! stop,
    wait_until(fun() -> global:whereis_name(girder_test_name) =:= undefined end, 100),
    wait_until(fun() -> rpc:call(G, global, whereis_name, [girder_test_name]) =:= undefined end, 100),
    step("global:unregister_name"),
    yes = global:register_name(girder_test_name2, self()),
    Self = self(),
    Self = rpc:call(G, global, whereis_name, [girder_test_name2]),
    _ = global:unregister_name(girder_test_name2),
    undefined = rpc:call(G, global, whereis_name, [girder_test_name2]),
    step("global:trans"),
    done = global:trans({girder_res, self()}, fun() -> done end),
    ok = global:sync(),
    step("pg: Girder's echo is a member of girder_echo; Erlang joins are seen by Girder"),
    {ok, _} = case whereis(pg) of undefined -> pg:start(pg); P -> {ok, P} end,
    Echo = rpc:call(G, erlang, whereis, [echo]),
    wait_until(fun() -> pg:get_members(girder_echo) =:= [Echo] end, 100),
    ok = pg:join(erl_group, self()),
    wait_until(fun() -> rpc:call(G, pg, get_members, [erl_group]) =:= [self()] end, 100),
    ok = pg:leave(erl_group, self()),
    wait_until(fun() -> rpc:call(G, pg, get_members, [erl_group]) =:= [] end, 100),
    step("pg: a Girder member that dies leaves the group"),
    Echo ! {crash, boom},
    wait_until(fun() -> case pg:get_members(girder_echo) of
                            [E2] when E2 =/= Echo -> true;
                            _ -> false
                        end end, 100),
    ok = global:sync(),
    ok.

%% Process aliases both ways (ALIAS_SEND).
aliases([G]) ->
    pong = net_adm:ping(G),
    step("Erlang -> Girder alias"),
    P = spawn(G, demo, alias, [self()]),
    {alias, P, A} = expect(fun({alias, _, _}) -> true; (_) -> false end, 5000),
    true = is_reference(A),
    A ! hello,
    {got, hello} = expect({got, hello}, 5000),
    P ! unalias,
    {unaliased, true} = expect({unaliased, true}, 5000),
    A ! dropped,
    P ! marker,
    {got, marker} = expect({got, marker}, 5000),
    nothing(200),
    P ! stop,
    step("Girder -> Erlang alias"),
    Al = alias(),
    {echo, G} ! {Al, via_alias},
    via_alias = expect(via_alias, 5000),
    unalias(Al),
    {echo, G} ! {Al, lost},
    {echo, G} ! {self(), marker2},
    marker2 = expect(marker2, 5000),
    nothing(200),
    step("reply alias (alias([reply]))"),
    R = alias([reply]),
    {echo, G} ! {R, first},
    {echo, G} ! {R, second},
    {echo, G} ! {self(), marker3},
    first = expect(first, 5000),
    marker3 = expect(marker3, 5000),
    nothing(200),
    step("gen_server:call (monitor alias) to a Girder server"),
    ok = gen_server:call({kv, G}, {put, alias_k, 1}),
    {ok, 1} = gen_server:call({kv, G}, {get, alias_k}),
    ok.

%% Girder's outgoing atom cache: messages full of atoms come back from Girder's echo intact.
atom_cache([G]) ->
    pong = net_adm:ping(G),
    Long = list_to_atom(lists:duplicate(200, 16#e4)),
    Mk = fun(R, N) -> [{list_to_atom("ac_" ++ integer_to_list(R) ++ "_" ++ integer_to_list(I)),
                        self(), make_ref()} || I <- lists:seq(1, N)] end,
    Terms = [{Long, Mk(1, 300)}, Mk(1, 300), {Mk(2, 40), Long, #{Long => Mk(3, 10)}},
             Mk(1, 300), [list_to_atom([C]) || C <- lists:seq($a, $z)], Mk(4, 1000)],
    lists:foreach(fun(T) ->
                      {echo, G} ! {self(), T},
                      T = expect(T, 5000)
                  end, Terms ++ Terms),
    %% through a registered name and an rpc as well
    Big = Mk(5, 500),
    Big = rpc:call(G, erlang, send, [self(), Big]),
    Big = expect(Big, 5000),
    ok.

%% Dynamic names, Erlang asks: run with -sname undefined; Girder names this node.
dynamic_named([G]) ->
    nonode@nohost = node(),
    true = net_kernel:connect_node(G),
    Me = node(),
    [Name, Host] = string:split(atom_to_list(Me), "@"),
    true = Name =/= "undefined" andalso Name =/= "",
    Host = lists:last(string:split(atom_to_list(G), "@")),
    io:format("  named ~p~n", [Me]),
    G = rpc:call(G, erlang, node, []),
    true = lists:member(Me, rpc:call(G, erlang, nodes, [hidden])),
    {echo, G} ! {self(), hi},
    hi = expect(hi, 5000),
    ok = gen_server:call({kv, G}, {put, dyn, Me}),
    {ok, Me} = gen_server:call({kv, G}, {get, dyn}),
    ok.

%% Dynamic names, Girder asks: waits for a hidden Girder node that this node named.
dynamic_namer([]) ->
    ok = net_kernel:monitor_nodes(true, [{node_type, hidden}]),
    io:format("READY~n"),
    N = receive {nodeup, Node, _} -> Node after 20000 -> error(no_dynamic_node) end,
    io:format("  named ~p~n", [N]),
    %% the daemon starts its services once it is named (as an Erlang node its applications)
    wait_until(fun() -> rpc:call(N, erlang, node, []) =:= N end, 200),
    wait_until(fun() -> is_pid(rpc:call(N, erlang, whereis, [echo])) end, 200),
    {echo, N} ! {self(), hello},
    hello = expect(hello, 5000),
    P = spawn(N, demo, echo, []),
    N = node(P),
    P ! {self(), spawned},
    spawned = expect(spawned, 5000),
    ok.

%% A process that exits with Reason after Ms (a spawn target).
die_after(Ms, Reason) ->
    timer:sleep(Ms),
    exit(Reason).

%% Girder's spawn_request with the monitor option, and erlang:processes/0 on Girder.
spawn_monitor_procs([G]) ->
    pong = net_adm:ping(G),
    step("spawn_request(monitor) from Girder: the DOWN comes with the request's reference"),
    _ = spawn(G, demo, spawn_monitor, [node(), dist_peer, die_after, [300, bye], self()]),
    {spawned, P, Ref} = expect(fun({spawned, _, _}) -> true; (_) -> false end, 5000),
    true = node(P) =:= node() andalso is_reference(Ref),
    {monitored_by, MB} = process_info(P, monitored_by),
    1 = length(MB),
    {down_seen, Ref, P, bye} = expect({down_seen, Ref, P, bye}, 5000),
    step("spawn_request(monitor) of an undefined function: DOWN undef-like exit"),
    _ = spawn(G, demo, spawn_monitor, [node(), dist_peer, no_such_fun, [], self()]),
    {spawned, P2, Ref2} = expect(fun({spawned, _, _}) -> true; (_) -> false end, 5000),
    {down_seen, Ref2, P2, {undef, _}} =
        expect(fun({down_seen, _, _, _}) -> true; (_) -> false end, 5000),
    step("erlang:processes/0 on Girder"),
    Procs = rpc:call(G, erlang, processes, []),
    true = is_list(Procs) andalso length(Procs) >= 5,
    Echo = rpc:call(G, erlang, whereis, [echo]),
    true = lists:member(Echo, Procs),
    true = lists:all(fun(X) -> node(X) =:= G end, Procs),
    true = length(Procs) =:= rpc:call(G, erlang, system_info, [process_count]) orelse
           abs(length(Procs) - rpc:call(G, erlang, system_info, [process_count])) < 3,
    ok.

%% A process of G (one scheduler) pings S, which never answers the handshake: G's setup time
%% passes before it gives up. Meanwhile calls into G must keep answering within MaxMs each.
stall_responsive([G, S, MaxMs0]) ->
    MaxMs = list_to_integer(atom_to_list(MaxMs0)),
    pong = net_adm:ping(G),
    G = rpc:call(G, erlang, node, []),
    Self = self(),
    T0 = erlang:monotonic_time(millisecond),
    spawn(fun() -> R = rpc:call(G, net_adm, ping, [S], 30000),
                   Self ! {pinged, R, erlang:monotonic_time(millisecond) - T0} end),
    timer:sleep(100),
    {Lats, Result, Took} = stall_calls(G, []),
    Max = lists:max(Lats) div 1000,
    io:format("  ~p calls while g1 dialled a frozen node for ~p ms (~p); slowest ~p ms~n",
              [length(Lats), Took, Result, Max]),
    pang = Result,
    true = Took >= 2500,
    true = length(Lats) >= 20,
    true = Max =< MaxMs.

stall_calls(G, Acc) ->
    receive {pinged, R, Took} -> {Acc, R, Took}
    after 0 ->
        T0 = erlang:monotonic_time(microsecond),
        G = rpc:call(G, erlang, node, [], 10000),
        ok = gen_server:call({kv, G}, {put, stall, length(Acc)}, 10000),
        T1 = erlang:monotonic_time(microsecond),
        timer:sleep(50),
        stall_calls(G, [T1 - T0 | Acc])
    end.

%% The built-ins a Girder node answers by rpc tell the truth or say badarg, as Erlang does for an
%% item it does not know.
builtins([G]) ->
    pong = net_adm:ping(G),
    Badarg = fun(M, F, A) -> {badrpc, {'EXIT', {badarg, _}}} = rpc:call(G, M, F, A) end,
    step("statistics: {Total, SinceLastCall}"),
    {R1, _} = rpc:call(G, erlang, statistics, [reductions]),
    [ok = gen_server:call({kv, G}, {put, K, K}) || K <- lists:seq(1, 200)],
    {R2, D2} = rpc:call(G, erlang, statistics, [reductions]),
    true = R2 > R1, true = D2 > 0, true = D2 =< R2 - R1,
    {W1, _} = rpc:call(G, erlang, statistics, [wall_clock]),
    timer:sleep(200),
    {W2, DW} = rpc:call(G, erlang, statistics, [wall_clock]),
    true = W2 - W1 >= 200, true = DW >= 200, true = DW =< W2 - W1 + 5,
    {_, _} = rpc:call(G, erlang, statistics, [runtime]),
    {_, 0} = rpc:call(G, erlang, statistics, [context_switches]),
    Badarg(erlang, statistics, [run_queue_lengths_bogus]),
    step("statistics: run queues and scheduler_wall_time, from libnode's metrics"),
    [true = is_integer(N) andalso N >= 0
     || K <- [run_queue, total_run_queue_lengths, total_run_queue_lengths_all],
        N <- [rpc:call(G, erlang, statistics, [K])]],
    SW1 = lists:sort(rpc:call(G, erlang, statistics, [scheduler_wall_time])),
    [1, 2] = [I || {I, _, _} <- SW1],
    timer:sleep(200),
    SW2 = lists:sort(rpc:call(G, erlang, statistics, [scheduler_wall_time_all])),
    %% total time is wall time (ns); active time grows by no more than it
    [true = T2 - T1 >= 200000000 andalso A2 >= A1 andalso A2 - A1 =< T2 - T1
     || {{I, A1, T1}, {I, A2, T2}} <- lists:zip(SW1, SW2)],
    Badarg(erlang, statistics, [run_queue_lengths]),
    step("system_info: schedulers as configured, nothing made up"),
    2 = rpc:call(G, erlang, system_info, [schedulers]),
    true = is_integer(rpc:call(G, erlang, system_info, [process_count])),
    Badarg(erlang, system_info, [otp_release]),
    Badarg(erlang, system_info, [bogus]),
    step("process_info: Erlang's shapes, badarg for an unknown item"),
    Kv = rpc:call(G, erlang, whereis, [kv]),
    {reductions, KR1} = rpc:call(G, erlang, process_info, [Kv, reductions]),
    [ok = gen_server:call({kv, G}, {put, x, K}) || K <- lists:seq(1, 100)],
    {reductions, KR2} = rpc:call(G, erlang, process_info, [Kv, reductions]),
    true = KR2 > KR1,
    {registered_name, kv} = rpc:call(G, erlang, process_info, [Kv, registered_name]),
    Echo = rpc:call(G, erlang, whereis, [echo]),
    [{status, _}, {trap_exit, _}] = rpc:call(G, erlang, process_info, [Echo, [status, trap_exit]]),
    Badarg(erlang, process_info, [Kv, heap_size]),
    Badarg(erlang, process_info, [Kv, [status, bogus]]),
    All = rpc:call(G, erlang, process_info, [Kv]),
    {registered_name, kv} = lists:keyfind(registered_name, 1, All),
    {message_queue_len, 0} = lists:keyfind(message_queue_len, 1, All),
    %% an unregistered process of our own (one picked from processes() may be a short-lived rpc
    %% worker, gone by the next call)
    Anon = spawn(G, demo, echo, []),
    true = lists:member(Anon, rpc:call(G, erlang, processes, [])),
    [] = rpc:call(G, erlang, process_info, [Anon, registered_name]),
    false = lists:keymember(registered_name, 1, rpc:call(G, erlang, process_info, [Anon])),
    exit(Anon, kill).

%% G is killed and restarted (same name, new creation) while we hold a pid of its first life:
%% linking to it and monitoring it must answer noproc at once, as Erlang does, and must not
%% reach the new incarnation's process that happens to have the same number.
old_pid([G, Flag]) ->
    process_flag(trap_exit, true),
    pong = net_adm:ping(G),
    Old = rpc:call(G, erlang, whereis, [echo]),
    true = is_pid(Old),
    io:format("READY~n"),
    wait_until(fun() -> filelib:is_file(atom_to_list(Flag)) end, 400),
    wait_until(fun() -> pong =:= net_adm:ping(G) end, 100),
    New = rpc:call(G, erlang, whereis, [echo]),
    true = is_pid(New) andalso New =/= Old,
    T0 = erlang:monotonic_time(millisecond),
    true = link(Old),
    {'EXIT', Old, noproc} = expect(fun({'EXIT', _, _}) -> true end, 3000),
    R = monitor(process, Old),
    {'DOWN', R, process, Old, noproc} = expect(fun({'DOWN', _, _, _, _}) -> true end, 3000),
    io:format("  noproc for the old pid after ~p ms~n", [erlang:monotonic_time(millisecond) - T0]),
    {links, Mine} = process_info(self(), links),
    false = lists:member(Old, Mine),
    {links, Theirs} = rpc:call(G, erlang, process_info, [New, links]),
    false = lists:member(self(), Theirs),
    {monitored_by, By} = rpc:call(G, erlang, process_info, [New, monitored_by]),
    false = lists:member(self(), By),
    nothing(300).

%% A hub of the global mesh: connects to every node given, syncs, and stays up.
global_hub(Nodes) ->
    [pong = net_adm:ping(N) || N <- Nodes],
    ok = global:sync(),
    io:format("READY~n"),
    receive after infinity -> ok end.

%% We join the mesh through Hub only (the mesh also holds Others, Girder nodes among them):
%% global:sync() must complete here and on every other node within seconds, as between Erlang
%% nodes (each node that learns of us confirms with in_sync).
global_join([Hub | Others]) ->
    T0 = erlang:monotonic_time(millisecond),
    pong = net_adm:ping(Hub),
    sync_within(node(), 15000),
    Took = erlang:monotonic_time(millisecond) - T0,
    Erl = [N || N <- [Hub | Others], not is_girder(N)],
    [sync_within(N, 15000) || N <- Erl],
    Known = gen_server:call(global_name_server, get_known),
    [true = lists:member(N, Known) || N <- [Hub | Others]],
    %% every Girder node of the mesh knows us too (it sent us in_sync)
    [true = lists:member(node(), gen_server:call({global_name_server, N}, get_known))
     || N <- [Hub | Others], is_girder(N)],
    io:format("  global:sync() on the newcomer took ~p ms; known: ~p~n", [Took, Known]).

is_girder(N) ->
    case rpc:call(N, erlang, system_info, [system_version]) of
        "Girder" ++ _ -> true;
        _ -> false
    end.

sync_within(N, Ms) ->
    {_, R} = spawn_monitor(fun() -> exit({synced, rpc:call(N, global, sync, [], Ms)}) end),
    receive {'DOWN', R, process, _, {synced, ok}} -> ok;
            {'DOWN', R, process, _, Other} -> error({sync_failed, N, Other})
    after Ms + 1000 -> error({global_sync_hangs, N})
    end.

%% Round trips to G's kv every 10 ms until Flag exists (at least 2 s): the slowest must stay
%% under MaxMs while another peer attacks G.
latency_until([G, Flag, MaxMs0]) ->
    MaxMs = list_to_integer(atom_to_list(MaxMs0)),
    pong = net_adm:ping(G),
    ok = gen_server:call({kv, G}, {put, k, 1}),
    io:format("READY~n"),
    T0 = erlang:monotonic_time(millisecond),
    Lat = lat_loop(G, atom_to_list(Flag), T0, []),
    Max = lists:max(Lat) div 1000,
    io:format("  ~p round trips during the attack: slowest ~p ms, median ~p us~n",
              [length(Lat), Max, lists:nth(length(Lat) div 2 + 1, lists:sort(Lat))]),
    true = Max < MaxMs.

lat_loop(G, Flag, T0, Acc) ->
    case filelib:is_file(Flag) andalso erlang:monotonic_time(millisecond) - T0 > 2000 of
        true -> Acc;
        false ->
            T = erlang:monotonic_time(microsecond),
            {ok, _} = gen_server:call({kv, G}, {get, k}, 5000),
            D = erlang:monotonic_time(microsecond) - T,
            timer:sleep(10),
            lat_loop(G, Flag, T0, [D | Acc])
    end.

%% N cycles of disconnect_node then ping, back to back: each ping must be pong, even when the new
%% connection's handshake reaches G before G has seen the old connection close.
reconnect_cycles([G, N0]) ->
    N = list_to_integer(atom_to_list(N0)),
    pong = net_adm:ping(G),
    T0 = erlang:monotonic_time(millisecond),
    Pangs = lists:foldl(fun(_, Acc) ->
                                erlang:disconnect_node(G),
                                case net_adm:ping(G) of pong -> Acc; pang -> Acc + 1 end
                        end, 0, lists:seq(1, N)),
    io:format("  ~p disconnect/ping cycles in ~p ms: ~p pang~n",
              [N, erlang:monotonic_time(millisecond) - T0, Pangs]),
    0 = Pangs.

%% Soak: honest traffic for Secs seconds (kv calls, rpc, sends to echo, a remote spawn with a
%% link now and then); every answer is checked.
soak_honest([G, Secs0]) ->
    Secs = list_to_integer(atom_to_list(Secs0)),
    process_flag(trap_exit, true),
    pong = net_adm:ping(G),
    End = erlang:monotonic_time(millisecond) + Secs * 1000,
    N = soak_honest_loop(G, End, 0),
    io:format("  honest: ~p rounds~n", [N]).

soak_honest_loop(G, End, N) ->
    case erlang:monotonic_time(millisecond) > End of
        true -> N;
        false ->
            K = N rem 1000,
            ok = gen_server:call({kv, G}, {put, K, N}, 10000),
            {ok, N} = gen_server:call({kv, G}, {get, K}, 10000),
            G = rpc:call(G, erlang, node, [], 10000),
            {echo, G} ! {self(), {n, N}},
            receive {n, N} -> ok after 10000 -> error({no_echo, N}) end,
            case N rem 200 of
                0 -> P = spawn_link(G, demo, echo, []), exit(P, kill),
                     receive {'EXIT', P, killed} -> ok after 10000 -> error(no_exit) end;
                _ -> ok
            end,
            soak_honest_loop(G, End, N + 1)
    end.

%% Soak: connection churn for Secs seconds (disconnect, then ping again).
soak_churn([G, Secs0]) ->
    Secs = list_to_integer(atom_to_list(Secs0)),
    End = erlang:monotonic_time(millisecond) + Secs * 1000,
    N = soak_churn_loop(G, End, 0),
    io:format("  churn: ~p reconnects~n", [N]).

soak_churn_loop(G, End, N) ->
    case erlang:monotonic_time(millisecond) > End of
        true -> N;
        false ->
            pong = net_adm:ping(G),
            erlang:disconnect_node(G),
            timer:sleep(20),
            soak_churn_loop(G, End, N + 1)
    end.

%% Prints G's atom table size: "ATOMS N".
atom_count([G]) ->
    pong = net_adm:ping(G),
    N = rpc:call(G, erlang, system_info, [atom_count]),
    true = is_integer(N),
    io:format("ATOMS ~p~n", [N]).

%% An honest peer's never-seen atoms work whatever the state of G's atom table: as kv keys and
%% values, echoed back intact, compared by Girder code, used as a registered name.
fresh_atoms([G, Tag]) ->
    T = atom_to_list(Tag),
    pong = net_adm:ping(G),
    K = list_to_atom("fresh_key_" ++ T),
    V = list_to_atom("fresh_val_" ++ T),
    step("kv put and get with never-seen atoms"),
    ok = gen_server:call({kv, G}, {put, K, V}),
    {ok, V} = gen_server:call({kv, G}, {get, K}),
    error = gen_server:call({kv, G}, {get, list_to_atom("fresh_other_" ++ T)}),
    step("echoed back intact"),
    {echo, G} ! {self(), {K, [V, K, #{K => V}]}},
    {K, [V, K, #{K := V}]} = expect(fun(_) -> true end, 3000),
    step("a never-seen registered name"),
    N = list_to_atom("fresh_name_" ++ T),
    undefined = rpc:call(G, erlang, whereis, [N]),
    P = spawn(G, demo, echo, []),
    true = rpc:call(G, erlang, register, [N, P]),
    P = rpc:call(G, erlang, whereis, [N]),
    {N, G} ! {self(), by_fresh_name},
    by_fresh_name = expect(by_fresh_name, 3000),
    exit(P, kill).

%% Girder's echo sends Count messages of 1 MB to a process on V, a node the test script stops
%% (SIGSTOP) once Flag1 exists: G's output queue to V fills and its senders wait (busy).
busy_flood([G, V, Flag, Count0]) ->
    Count = list_to_integer(atom_to_list(Count0)),
    pong = net_adm:ping(G),
    pong = net_adm:ping(V),
    Sink = rpc:call(V, erlang, spawn, [timer, sleep, [infinity]]),
    true = is_pid(Sink),
    {echo, G} ! {Sink, hello},
    wait_until(fun() -> lists:member(V, rpc:call(G, erlang, nodes, [])) end, 100),
    io:format("READY~n"),
    wait_until(fun() -> filelib:is_file(atom_to_list(Flag)) end, 600),
    Big = binary:copy(<<"x">>, 1 bsl 20),
    [{echo, G} ! {Sink, {I, Big}} || I <- lists:seq(1, Count)],
    io:format("SENT~n").

%% A demonitor from this node shows in the monitored Girder process's monitored_by at once,
%% while that process waits in receive (no message reaches it in between), as on Erlang.
monitored_by_demonitor([G]) ->
    pong = net_adm:ping(G),
    P = spawn(G, demo, echo, []),
    Me = self(),
    MonBy = fun() -> {monitored_by, By} = rpc:call(G, erlang, process_info, [P, monitored_by]),
                     By end,
    %% a monitor shows once P has handled its signal (the rpc may overtake it: wait a little);
    %% a demonitor must show at once
    Refs = [monitor(process, P) || _ <- lists:seq(1, 3)],
    wait_until(fun() -> MonBy() =:= [Me, Me, Me] end, 100),
    [true = demonitor(R) || R <- Refs],
    [] = MonBy(),
    R2 = monitor(process, P),
    wait_until(fun() -> MonBy() =:= [Me] end, 100),
    true = demonitor(R2, [flush]),
    {monitored_by, []} = rpc:call(G, erlang, process_info, [P, monitored_by]),
    exit(P, kill).

%% drain: a message Girder has queued when it is stopped still arrives (as one an Erlang node
%% sends just before init:stop() does). The sink writes its pid to File, then waits.
drain_sink([G, File]) ->
    register(sink, self()),
    pong = net_adm:ping(G),
    ok = file:write_file(atom_to_list(File), term_to_binary(self())),
    io:format("READY~n"),
    receive {big, B} when byte_size(B) =:= 20000000 -> ok
    after 30000 -> error(no_big_message)
    end.

%% Has G's echo send 20 MB to the sink (whose node the script has stopped), and waits until
%% echo has done so.
drain_send([G, File]) ->
    {ok, Bin} = file:read_file(atom_to_list(File)),
    Sink = binary_to_term(Bin),
    pong = net_adm:ping(G),
    {echo, G} ! {Sink, {big, binary:copy(<<7>>, 20000000)}},
    {echo, G} ! {self(), sent},
    receive sent -> ok after 20000 -> error(echo_did_not_answer) end.

%% Sends Count messages {big, I, Binary} (Size bytes) to rxsink on G as fast as it can.
big_send([G, Count0, Size0]) ->
    Count = list_to_integer(atom_to_list(Count0)),
    Size = list_to_integer(atom_to_list(Size0)),
    pong = net_adm:ping(G),
    Ref = monitor(process, {rxsink, G}),
    [{rxsink, G} ! {big, I, <<I:32, (binary:copy(<<"q">>, Size - 8))/binary, I:32>>}
     || I <- lists:seq(1, Count)],
    %% rxsink ends once it has them all (or gave up): nothing is left unsent when this halts
    receive {'DOWN', Ref, process, _, Why} -> io:format("SENT ~p, rxsink ended: ~p~n", [Count, Why])
    after 60000 -> error(rxsink_still_running)
    end.

%% N round trips with the Girder node's `echo` process ({self(), I} comes back as I), then done.
roundtrips([G, N0]) ->
    roundtrips(G, N0, fun(I) -> I end);
%% ... each carrying a binary of Size bytes
roundtrips([G, N0, Size0]) ->
    Bin = binary:copy(<<7>>, list_to_integer(atom_to_list(Size0))),
    roundtrips(G, N0, fun(I) -> {I, Bin} end).

roundtrips(G, N0, Msg) ->
    N = list_to_integer(atom_to_list(N0)),
    pong = net_adm:ping(G),
    [begin
         X = Msg(I),
         {echo, G} ! {self(), X},
         receive X -> ok after 5000 -> error({no_echo, I}) end
     end || I <- lists:seq(1, N)],
    {echo, G} ! {self(), done},
    receive done -> ok after 5000 -> error(no_done) end,
    ok.
