%% Erlang side of bench-dist-tcp: the sink/pong receiver and the sender, same protocol as Girder's.
-module(dist_bench).
-export([receiver/0, throughput/2, roundtrip/2, victim/0, watch/1, serve/3, scale_tp/4]).
-export([mvictim/1, mwatch/2]).

%% bench_sink: {start, N, From} -> From ! {ready, self()}, takes N messages, From ! {done, N}.
%% bench_pong: {From, M} -> From ! M.
receiver() ->
    register(bench_sink, spawn(fun sink/0)),
    register(bench_pong, spawn(fun pong/0)),
    receive after infinity -> ok end.

sink() ->
    receive {start, N, From} -> From ! {ready, self()}, take(N), From ! {done, N} end,
    sink().
take(0) -> ok;
take(N) -> receive _ -> take(N - 1) end.
pong() -> receive {From, M} -> From ! M end, pong().

%% Prints one-way msgs/s to the sink on Node (best of 3 runs of N).
throughput(Node, N) ->
    pong = net_adm:ping(Node),
    Best = lists:max([tp(Node, N) || _ <- [1, 2, 3]]),
    io:format("~.1f~n", [Best]).
tp(Node, N) ->
    {bench_sink, Node} ! {start, N, self()},
    Sink = receive {ready, S} -> S after 10000 -> exit(no_sink) end,
    Msg = {hello, 12345, <<0:256>>},
    T0 = erlang:monotonic_time(microsecond),
    send_n(Sink, Msg, N),
    receive {done, N} -> ok after 60000 -> exit(no_done) end,
    N * 1.0e6 / (erlang:monotonic_time(microsecond) - T0).
send_n(_, _, 0) -> ok;
send_n(P, M, N) -> P ! M, send_n(P, M, N - 1).

%% Interleaved rounds: pings Node, then for every line read on stdin runs one round of Kind
%% (throughput: msgs/s of N messages; roundtrip: mean microseconds over N after a warm-up) and
%% prints it; returns at the end of input.
serve(Kind, Node, N) ->
    pong = net_adm:ping(Node),
    serve_loop(Kind, Node, N).
serve_loop(Kind, Node, N) ->
    case io:get_line('') of
        eof -> ok;
        {error, _} -> ok;
        _ ->
            V = case Kind of
                    throughput -> tp(Node, N);
                    roundtrip -> Pong = rpc_whereis(Node), rt(Pong, 1000),
                                 T0 = erlang:monotonic_time(microsecond), rt(Pong, N),
                                 (erlang:monotonic_time(microsecond) - T0) / N
                end,
            io:format("~f~n", [V * 1.0]),
            serve_loop(Kind, Node, N)
    end.

%% bench-scale-dist: S processes share N messages {hello, 12345, <<Size bytes>>} to the sink on
%% Node over one connection; prints messages per second.
scale_tp(Node, N, S, Size) ->
    pong = net_adm:ping(Node),
    Per = N div S,
    Total = Per * S,
    {bench_sink, Node} ! {start, Total, self()},
    Sink = receive {ready, P} -> P after 10000 -> exit(no_sink) end,
    Msg = {hello, 12345, <<0:(Size * 8)>>},
    T0 = erlang:monotonic_time(microsecond),
    [spawn(fun() -> send_n(Sink, Msg, Per) end) || _ <- lists:seq(1, S)],
    receive {done, Total} -> ok after 300000 -> exit(no_done) end,
    io:format("~f~n", [Total * 1.0e6 / (erlang:monotonic_time(microsecond) - T0)]).

%% Prints the mean round trip in microseconds over M pings (after a warm-up).
roundtrip(Node, M) ->
    pong = net_adm:ping(Node),
    Pong = rpc_whereis(Node),
    rt(Pong, 1000),
    T0 = erlang:monotonic_time(microsecond),
    rt(Pong, M),
    io:format("~.2f~n", [(erlang:monotonic_time(microsecond) - T0) / M]).
rpc_whereis(Node) ->
    {bench_pong, Node} ! {self(), {whoami}},
    receive {whoami} -> ok end,
    {bench_pong, Node}.
rt(_, 0) -> ok;
rt(P, N) -> P ! {self(), ping}, receive ping -> rt(P, N - 1) end.

%% bench-dist-nodedown: the victim node's registered process, and the watcher on another node
%% that links to and monitors it, says READY and prints DOWN once both the exit signal and the
%% DOWN with noconnection have arrived (the victim is killed -9 in between).
victim() ->
    register(bench_victim, spawn(fun victim_loop/0)),
    io:format("READY~n"),
    receive after infinity -> ok end.
victim_loop() -> receive {From, whoami} -> From ! {victim, self()} end, victim_loop().

watch(Node) ->
    pong = net_adm:ping(Node),
    {bench_victim, Node} ! {self(), whoami},
    Pid = receive {victim, P} -> P after 5000 -> exit(no_victim) end,
    process_flag(trap_exit, true),
    link(Pid),
    Ref = monitor(process, Pid),
    {bench_victim, Node} ! {self(), whoami},
    receive {victim, _} -> ok after 5000 -> exit(no_victim) end,
    io:format("READY~n"),
    receive {'EXIT', Pid, noconnection} -> ok after 30000 -> exit(timeout) end,
    receive {'DOWN', Ref, process, Pid, noconnection} -> ok after 30000 -> exit(timeout) end,
    io:format("DOWN~n").

%% bench-scale-monitors: the victim spawns N waiting processes (bench_mvictim gives their pids
%% and answers sync); the watcher monitors them all, says READY, and prints DOWN once N DOWN
%% messages with noconnection have arrived (the victim is killed -9 in between).
mvictim(N) ->
    Pids = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, N)],
    register(bench_mvictim, spawn(fun() -> mvictim_loop(Pids) end)),
    io:format("READY~n"),
    receive after infinity -> ok end.
mvictim_loop(Pids) ->
    receive
        {From, pids} -> From ! {pids, Pids};
        {From, sync} -> From ! sync
    end,
    mvictim_loop(Pids).

mwatch(Node, N) ->
    pong = net_adm:ping(Node),
    {bench_mvictim, Node} ! {self(), pids},
    Pids = receive {pids, P} -> P after 60000 -> exit(no_pids) end,
    N = length(Pids),
    [monitor(process, P) || P <- Pids],
    {bench_mvictim, Node} ! {self(), sync},
    receive sync -> ok after 60000 -> exit(no_sync) end,
    io:format("READY~n"),
    downs(N),
    io:format("DOWN~n").
downs(0) -> ok;
downs(K) -> receive {'DOWN', _, process, _, noconnection} -> downs(K - 1) after 120000 -> exit(timeout) end.
