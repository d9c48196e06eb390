%% Erlang side of libnode's benchmarks: each function prints one number (see bench/bench-*.c).
-module(libnode_bench).
-export([ring/2, spawn_exit/1, idle_memory/1, call_latency/1, best/2]).
-export([trace_overhead/2, mailbox_memory/1]).
-export([scale_spawn/1]).
-export([serve/1, ring1/2, spawn_exit1/1, call_latency1/1, idle_memory1/1, idle_plain1/1]).
-export([init/1, handle_call/3, handle_cast/2]).

%% Each throughput/latency benchmark runs 3 times and prints the best run (the C side does
%% the same), so a burst of load on the shared machine hurts neither side more.
best(F, Dir) -> io:format("~f~n", [lists:Dir([F() || _ <- lists:seq(1, 3)])]).

%% The benchmarks' interleaved rounds: for every line read on stdin, runs F once and prints its
%% number; returns at the end of input. The C side alternates its own rounds with these.
serve(F) ->
    case io:get_line('') of
        eof -> ok;
        {error, _} -> ok;
        _ -> io:format("~f~n", [F()]), serve(F)
    end.

%% Ring of N processes passing a token Laps times around; prints messages per second.
ring(N, Laps) -> best(fun() -> ring1(N, Laps) end, max).

ring1(N, Laps) ->
    Self = self(),
    First = lists:foldl(fun(_, Next) -> spawn(fun() -> node_loop(Next) end) end, Self,
                        lists:seq(1, N - 1)),
    Hops = N * Laps,
    T0 = erlang:monotonic_time(nanosecond),
    First ! Hops - 1,
    main_loop(First),
    T1 = erlang:monotonic_time(nanosecond),
    %% main_loop took the last 0, so the ring still waits: a lap of 0 (not timed) ends it, as
    %% the C side's does (bench/nd_bench.h, nb_ring)
    First ! 0,
    receive 0 -> ok end,
    Hops / ((T1 - T0) / 1.0e9).

node_loop(Next) ->
    receive
        0 -> Next ! 0;
        K -> Next ! K - 1, node_loop(Next)
    end.

main_loop(First) ->
    receive
        0 -> ok;
        K -> First ! K - 1, main_loop(First)
    end.

%% Spawns N processes that exit at once; prints spawn+exit per second (until all are gone).
spawn_exit(N) -> best(fun() -> spawn_exit1(N) end, max).

spawn_exit1(N) ->
    Base = erlang:system_info(process_count),
    T0 = erlang:monotonic_time(nanosecond),
    spawn_n(N),
    wait_count(Base),
    T1 = erlang:monotonic_time(nanosecond),
    N / ((T1 - T0) / 1.0e9).

spawn_n(0) -> ok;
spawn_n(K) -> spawn(fun() -> ok end), spawn_n(K - 1).

wait_count(Base) ->
    case erlang:system_info(process_count) =< Base of
        true -> ok;
        false -> erlang:yield(), wait_count(Base)
    end.

%% N idle gen_server processes; prints bytes per process (erlang:memory(total) delta).
idle_memory(N) -> io:format("~f~n", [idle_memory1(N)]).

%% One round of idle_memory in a fresh node: bytes per process; the processes are killed after.
idle_memory1(N) ->
    garbage_collect(),
    M0 = erlang:memory(total),
    Pids = [begin {ok, P} = gen_server:start(?MODULE, [], []), P end || _ <- lists:seq(1, N)],
    timer:sleep(500),
    M1 = erlang:memory(total),
    [exit(P, kill) || P <- Pids],
    (M1 - M0) / N.

%% N plain processes blocked in receive; bytes per process (erlang:memory(total) delta).
idle_plain1(N) ->
    garbage_collect(),
    M0 = erlang:memory(total),
    Pids = [spawn(fun() -> receive stop -> ok end end) || _ <- lists:seq(1, N)],
    timer:sleep(500),
    M1 = erlang:memory(total),
    [P ! stop || P <- Pids],
    (M1 - M0) / N.

%% bench-scale-spawn: spawns N processes that wait in receive (each bumps a counter when it
%% runs), until all run; then stops them all, until the count is back. Prints "spawn seconds,
%% bytes per process (erlang:memory(total) growth), stop seconds".
scale_spawn(N) ->
    garbage_collect(),
    Base = erlang:system_info(process_count),
    C = atomics:new(1, []),
    M0 = erlang:memory(total),
    T0 = erlang:monotonic_time(nanosecond),
    Pids = [spawn(fun() -> atomics:add(C, 1, 1), receive stop -> ok end end)
            || _ <- lists:seq(1, N)],
    wait_atomic(C, N),
    T1 = erlang:monotonic_time(nanosecond),
    M1 = erlang:memory(total),
    [P ! stop || P <- Pids],
    wait_count(Base),
    T2 = erlang:monotonic_time(nanosecond),
    io:format("~f ~f ~f~n", [(T1 - T0) / 1.0e9, (M1 - M0) / N, (T2 - T1) / 1.0e9]).

wait_atomic(C, N) ->
    case atomics:get(C, 1) >= N of
        true -> ok;
        false -> erlang:yield(), wait_atomic(C, N)
    end.

%% Round trip of gen_server:call, microseconds (mean over N calls).
call_latency(N) -> best(fun() -> call_latency1(N) end, min).

call_latency1(N) ->
    {ok, P} = gen_server:start(?MODULE, [], []),
    [gen_server:call(P, ping) || _ <- lists:seq(1, 1000)],
    T0 = erlang:monotonic_time(nanosecond),
    call_n(P, N),
    T1 = erlang:monotonic_time(nanosecond),
    gen_server:stop(P),
    (T1 - T0) / 1000 / N.

call_n(_, 0) -> ok;
call_n(P, K) -> pong = gen_server:call(P, ping), call_n(P, K - 1).

init([]) -> {ok, 0}.
handle_call(ping, _From, S) -> {reply, pong, S}.
handle_cast(_, S) -> {noreply, S}.

%% The ring with and without tracing (send, 'receive', running, procs of every process it
%% spawns, to a tracer process that discards), alternately, best of 3 each; prints how many
%% times slower the traced ring runs.
trace_overhead(N, Laps) ->
    Runs = [begin
                Off = ring1(N, Laps),
                Tracer = spawn(fun tracer/0),
                erlang:trace(new_processes, true, [send, 'receive', running, procs,
                                                   {tracer, Tracer}]),
                On = ring1(N, Laps),
                erlang:trace(new_processes, false, [all]),
                exit(Tracer, kill),
                {Off, On}
            end || _ <- lists:seq(1, 3)],
    BestOff = lists:max([Off || {Off, _} <- Runs]),
    BestOn = lists:max([On || {_, On} <- Runs]),
    io:format("~f~n", [BestOff / BestOn]).

tracer() -> receive _ -> tracer() end.

%% Bytes a process's memory grows by per queued {msg, I} (process_info(P, memory)).
mailbox_memory(N) ->
    P = spawn(fun() -> receive stop -> ok end end),
    {memory, M0} = process_info(P, memory),
    [P ! {msg, I} || I <- lists:seq(1, N)],
    {memory, M1} = process_info(P, memory),
    exit(P, kill),
    io:format("~f~n", [(M1 - M0) / N]).
