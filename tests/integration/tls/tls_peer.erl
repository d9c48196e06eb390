%% Erlang side of the TLS integration tests (besides dist_peer's cases, run over TLS too).
-module(tls_peer).
-export([main/1, girder_dials/1, refused/1, girder_pings/1, keeper/1, still_served/1,
         dialled_by/1, rekey/1, rekey_dialled/1]).

%% erl -noshell -pa DIR -run tls_peer main Case Arg... : prints PASS/FAIL, exits 0/1.
main([Case | Args]) ->
    Self = self(),
    spawn(fun() ->
              R = try apply(?MODULE, list_to_atom(Case), [[list_to_atom(A) || A <- Args]]) of
                      _ -> ok
                  catch C:E:S -> {C, E, S}
                  end,
              Self ! {done, R}
          end),
    receive
        {done, ok} -> io:format("PASS ~s~n", [Case]), halt(0);
        {done, Err} -> io:format("FAIL ~s: ~p~n", [Case, Err]), halt(1)
    after 60000 -> io:format("FAIL ~s: timeout~n", [Case]), halt(1)
    end.

%% Girder G dials the Erlang node E (we ask it by rpc): both see each other, and a message
%% from a Girder process reaches a registered process of E over the connection Girder made.
girder_dials([G, E]) ->
    pong = net_adm:ping(G),
    false = lists:member(E, rpc:call(G, erlang, nodes, [])),
    pong = rpc:call(G, net_adm, ping, [E]),
    true = lists:member(E, rpc:call(G, erlang, nodes, [])),
    true = lists:member(G, rpc:call(E, erlang, nodes, [])),
    Me = self(),
    Fwd = spawn(E, fun() -> register(tls_box, self()), receive M -> Me ! {relayed, M} end end),
    wait(fun() -> is_pid(rpc:call(E, erlang, whereis, [tls_box])) end, 100),
    _ = Fwd,
    via_girder = rpc:call(G, erlang, send, [{tls_box, E}, via_girder]),
    receive {relayed, via_girder} -> ok after 5000 -> error(no_relay) end,
    ok.

%% This node cannot reach G: pang.
refused([G]) ->
    pang = net_adm:ping(G),
    ok.

%% G pings the node N (by rpc from here) and gets Want (pong or pang).
girder_pings([G, N, Want]) ->
    pong = net_adm:ping(G),
    Want = rpc:call(G, net_adm, ping, [N]),
    ok.

%% A good peer that stays connected to G through the refusals (the script kills it).
keeper([G]) ->
    pong = net_adm:ping(G),
    monitor_node(G, true),
    io:format("READY~n"),
    receive {nodedown, G} -> io:format("NODEDOWN~n"), halt(1) end.

%% After the refusals: K (the keeper) is still connected to G, and G still serves.
still_served([G, K]) ->
    pong = net_adm:ping(G),
    true = lists:member(K, rpc:call(G, erlang, nodes, [])),
    {echo, G} ! {self(), still},
    receive still -> ok after 5000 -> error(not_served) end,
    ok.

%% Waits, without dialling anyone, until G has dialled this node; then the dist cases run over
%% the connection G made (G is the TLS client there): dist_peer's basic and big.
dialled_by([G]) ->
    io:format("WAITING~n"),
    wait(fun() -> lists:member(G, nodes()) end, 400),
    dist_peer:basic([G]),
    dist_peer:big([G]),
    ok.

%% Three 10 MB binaries to G's echo and back, over a connection this node dials (its optfile
%% makes it re-key often: renegotiate_at or key_update_at).
rekey([G]) ->
    pong = net_adm:ping(G),
    echo_big(G, self(), 3),
    ok.

%% The same over a connection G dials to E (E's optfile makes it re-key often): a relay on E
%% sends each binary back through G's echo, so it crosses G's connection to E both ways.
rekey_dialled([G, E]) ->
    pong = net_adm:ping(G),
    false = lists:member(E, rpc:call(G, erlang, nodes, [])),
    Relay = spawn(E, fun Loop() ->
                         receive {relay, I, B, To} -> {echo, G} ! {To, {I, B}}, Loop() end
                     end),
    echo_big(G, Relay, 3),
    true = lists:member(E, rpc:call(G, erlang, nodes, [])),
    ok.

%% N times: a fresh 10 MB binary through G's echo (to Via: this process, or a relay that sends it
%% back here through G); each must come back intact.
echo_big(G, Via, N) ->
    Me = self(),
    [begin
         B = crypto:strong_rand_bytes(10 * 1024 * 1024),
         Msg = case Via of Me -> {I, B}; _ -> {relay, I, B, Me} end,
         {echo, G} ! {Via, Msg},
         receive {I, B2} -> true = B =:= B2 after 30000 -> error({no_echo, I}) end
     end || I <- lists:seq(1, N)],
    ok.

wait(_F, 0) -> error(wait_timeout);
wait(F, N) -> case catch F() of true -> ok; _ -> timer:sleep(50), wait(F, N - 1) end.
