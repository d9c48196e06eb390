%% The chaos workload on an Erlang node: the twin of chaos_workload.c (same processes, same
%% messages on the wire, same history lines); docs/chaos.md ("The workload") specifies both.
-module(chaos_workload).
-behaviour(supervisor).

-export([start/0, target/3, start_child/2, init/1]).
%% internal entry points (spawned)
-export([main/0, logger/1, rx/0, nodemon/0, sampler/0, sender/1, mgr/3, keeper/1]).

-define(SUP_INTENSITY, 10).
-define(SUP_PERIOD_MS, 10000).

%% ---------------------------------------------------------------- start

%% Reads CHAOS_HISTORY, CHAOS_PEERS, CHAOS_SAMPLE_MS, CHAOS_RATE_MS, CHAOS_SEED and starts the
%% workload (registered chaos_workload); `erl ... -eval 'chaos_workload:start()'`.
start() ->
    Hist = os:getenv("CHAOS_HISTORY"),
    Peers0 = os:getenv("CHAOS_PEERS"),
    (Hist =:= false orelse Hist =:= "" orelse Peers0 =:= false) andalso
        erlang:error({chaos_workload, "CHAOS_HISTORY and CHAOS_PEERS must be set"}),
    Peers = [list_to_atom(P) || P <- string:lexemes(Peers0, ", "), list_to_atom(P) =/= node()],
    persistent_term:put(chaos_peers, Peers),
    persistent_term:put(chaos_sample_ms, env_int("CHAOS_SAMPLE_MS", 500)),
    persistent_term:put(chaos_rate_ms, env_int("CHAOS_RATE_MS", 100)),
    persistent_term:put(chaos_seed, env_int("CHAOS_SEED", 1)),
    persistent_term:put(chaos_counter, counters:new(2, [atomics])),
    Log = spawn(?MODULE, logger, [Hist]),
    register(chaos_log, Log),
    persistent_term:put(chaos_log, Log),
    Pid = spawn(?MODULE, main, []),
    register(chaos_workload, Pid),
    {ok, Pid}.

env_int(Name, Def) ->
    case os:getenv(Name) of
        false -> Def;
        "" -> Def;
        V -> list_to_integer(V)
    end.

%% ---------------------------------------------------------------- history lines

%% The one writer of the history file: lines arrive complete (time taken by the caller), get
%% their number and go out in one write each.
logger(Hist) ->
    {ok, Fd} = file:open(Hist, [append, raw, binary]),
    logger(Fd, 0).
logger(Fd, N) ->
    receive
        {line, Iodata} ->
            ok = file:write(Fd, [Iodata, <<",\"n\":">>, integer_to_binary(N + 1), <<"}\n">>]),
            logger(Fd, N + 1)
    end.

%% Logs {"t":..,"node":..,"cr":..,"kind":Kind, Fields...}; a field is {Key, Value} with a
%% value {str, S} | {int, I} | {bool, B} | {pid, P} | {term, T} | {strs, [S]} | null.
log(Kind, Fields) ->
    T = os:system_time(microsecond),
    Head = [<<"{\"t\":">>, integer_to_binary(T),
            field(node, {str, atom_to_list(node())}),
            field(cr, {int, erlang:system_info(creation)}),
            field(kind, {str, Kind})],
    persistent_term:get(chaos_log) ! {line, [Head | [field(K, V) || {K, V} <- Fields]]},
    ok.

field(K, V) -> [$,, $", atom_to_list(K), $", $:, value(V)].

value({str, S}) -> [$", esc(unicode:characters_to_binary(S)), $"];
value({int, I}) -> integer_to_binary(I);
value({bool, B}) -> atom_to_binary(B);
value({pid, P}) -> value({str, pid_text(P)});
value({term, T}) -> value({str, io_lib:format("~w", [T])});
value({strs, L}) -> [$[, lists:join($,, [value({str, S}) || S <- L]), $]];
value(null) -> <<"null">>.

esc(B) -> << <<(esc_c(C))/binary>> || <<C>> <= B >>.
esc_c($") -> <<"\\\"">>;
esc_c($\\) -> <<"\\\\">>;
esc_c(C) when C < 16#20; C =:= 16#7f -> list_to_binary(io_lib:format("\\u~4.16.0b", [C]));
esc_c(C) -> <<C>>.

%% A pid as NODE#ID.SERIAL#CREATION (from its external format: NEW_PID_EXT).
pid_text(P) ->
    {Node, Id, Ser, Cr} = pid_parts(P),
    io_lib:format("~s#~b.~b#~b", [Node, Id, Ser, Cr]).

pid_parts(P) ->
    <<131, 88, Rest/binary>> = term_to_binary(P),
    {Node, <<Id:32, Ser:32, Cr:32>>} = atom_ext(Rest),
    {Node, Id, Ser, Cr}.

atom_ext(<<100, L:16, A:L/binary, R/binary>>) -> {A, R};
atom_ext(<<118, L:16, A:L/binary, R/binary>>) -> {A, R};
atom_ext(<<115, L:8, A:L/binary, R/binary>>) -> {A, R};
atom_ext(<<119, L:8, A:L/binary, R/binary>>) -> {A, R}.

pid_creation(P) -> element(4, pid_parts(P)).

%% The id of an owner's pair N: OWNER_NODE/OWNER_CREATION/N; its target adds "/r".
pair_id(Owner, N) ->
    {Node, _, _, Cr} = pid_parts(Owner),
    lists:flatten(io_lib:format("~s/~b/~b", [Node, Cr, N])).

next_pair() ->
    C = persistent_term:get(chaos_counter),
    counters:add(C, 1, 1),
    counters:get(C, 1).

mono() -> erlang:monotonic_time(millisecond).

%% ---------------------------------------------------------------- main

%% The workload's root: starts every part linked to itself and restarts one that crashed
%% (logging "crash", which the checker counts as a violation).
main() ->
    process_flag(trap_exit, true),
    log("start", [{impl, {str, "erlang"}}, {os_pid, {int, list_to_integer(os:getpid())}},
                  {sample_ms, {int, persistent_term:get(chaos_sample_ms)}},
                  {rate_ms, {int, persistent_term:get(chaos_rate_ms)}}]),
    Seed = persistent_term:get(chaos_seed) bxor erlang:system_info(creation),
    rand:seed(exsss, Seed),
    Peers = persistent_term:get(chaos_peers),
    Parts = [{rx, none}, {nodemon, none}, {sampler, none}]
        ++ lists:append([[{mgr, P}, {sender, P}] || P <- Peers]) ++ [{keeper, none}],
    Running = [{start_part(W, P), W, P} || {W, P} <- Parts],
    main_loop(Running).

start_part(rx, _) ->
    Pid = spawn_link(?MODULE, rx, []),
    register(chaos_rx, Pid),
    Pid;
start_part(mgr, Peer) -> spawn_link(?MODULE, mgr, [Peer, rand:uniform(1 bsl 40), self()]);
start_part(sender, Peer) -> spawn_link(?MODULE, sender, [Peer]);
start_part(keeper, _) -> spawn_link(?MODULE, keeper, [self()]);
start_part(W, _) -> spawn_link(?MODULE, W, []).

main_loop(Running) ->
    receive
        {'EXIT', From, Reason} ->
            case lists:keyfind(From, 1, Running) of
                {From, W, P} ->
                    log("crash", [{what, {str, atom_to_list(W)}}, {reason, {term, Reason}}]
                        ++ [{peer, {str, atom_to_list(P)}} || P =/= none]),
                    timer:sleep(500),
                    main_loop(lists:keyreplace(From, 1, Running, {start_part(W, P), W, P}));
                false ->
                    main_loop(Running)
            end;
        _ ->
            main_loop(Running)
    end.

%% ---------------------------------------------------------------- streams, node events, samples

rx() ->
    receive
        {chaos_seq, S, Seq} when is_pid(S), is_integer(Seq) ->
            log("recv", [{s, {pid, S}}, {seq, {int, Seq}}]);
        _ ->
            ok
    end,
    rx().

sender(Peer) ->
    sender(Peer, 0, mono()).
sender(Peer, Seq, Next0) ->
    Next = Next0 + persistent_term:get(chaos_rate_ms),
    D = Next - mono(),
    Next1 = if D > 0 -> timer:sleep(D), Next; true -> mono() end,
    case lists:member(Peer, nodes()) of
        true ->
            {chaos_rx, Peer} ! {chaos_seq, self(), Seq + 1},
            log("send", [{s, {pid, self()}}, {to, {str, atom_to_list(Peer)}},
                         {seq, {int, Seq + 1}}]),
            sender(Peer, Seq + 1, Next1);
        false ->
            sender(Peer, Seq, Next1)
    end.

nodemon() ->
    ok = net_kernel:monitor_nodes(true),
    nodemon_loop().
nodemon_loop() ->
    receive
        {nodeup, N} -> log("nodeup", [{peer, {str, atom_to_list(N)}}]);
        {nodedown, N} -> log("nodedown", [{peer, {str, atom_to_list(N)}}]);
        _ -> ok
    end,
    nodemon_loop().

sampler() ->
    {ok, Fds} = file:list_dir("/proc/self/fd"),
    {ok, Statm} = file:read_file("/proc/self/statm"),
    [_, Res | _] = binary:split(Statm, <<" ">>, [global]),
    log("sample", [{nodes, {strs, [atom_to_list(N) || N <- nodes()]}},
                   {fds, {int, length(Fds)}},
                   {rss, {int, binary_to_integer(Res) * 4096}},
                   {procs, {int, erlang:system_info(process_count)}}]),
    timer:sleep(persistent_term:get(chaos_sample_ms)),
    sampler().

%% ---------------------------------------------------------------- targets

%% chaos_workload:target(Owner, N, Kind), spawned on this node by an owner elsewhere; see the
%% C twin (target_export) for the contract.
target(Owner, N, Kind) ->
    process_flag(trap_exit, true),
    Rid = pair_id(Owner, N) ++ "/r",
    MRef = erlang:monitor(process, Owner),
    log("monitor", [{id, {str, Rid}}, {a, {pid, self()}}, {b, {pid, Owner}}]),
    Linked = lists:member(Kind, [link, unlink, child]),
    Linked andalso begin
                       link(Owner),
                       log("link", [{id, {str, Rid}}, {a, {pid, self()}}, {b, {pid, Owner}}])
                   end,
    Owner ! {chaos_ready, N, self()},
    target_loop(#{owner => Owner, rid => Rid, mref => MRef, linked => Linked,
                  got_exit => false, got_down => false, deadline => infinity}).

target_loop(#{owner := Owner, rid := Rid, mref := MRef} = S) ->
    Wait = case maps:get(deadline, S) of
               infinity -> infinity;
               D -> max(0, D - mono())
           end,
    receive
        {chaos_exit, R} ->
            target_exit(Rid, R);
        {chaos_unlinked, _} ->
            log("unlink", [{id, {str, Rid}}]),
            target_loop(S#{linked := false});
        {'EXIT', Owner, R} ->
            log("exit", [{id, {str, Rid}}, {a, {pid, self()}}, {b, {pid, Owner}},
                         {reason, {term, R}}]),
            R =/= noconnection andalso target_exit(Rid, R),
            maps:get(got_down, S) andalso target_exit(Rid, normal),
            target_loop(S#{got_exit := true, linked := false, deadline := mono() + 5000});
        {'DOWN', MRef, process, Owner, R} ->
            log("down", [{id, {str, Rid}}, {a, {pid, self()}}, {b, {pid, Owner}},
                         {reason, {term, R}}]),
            (not maps:get(linked, S) orelse maps:get(got_exit, S))
                andalso target_exit(Rid, normal),
            target_loop(S#{got_down := true, deadline := mono() + 5000});
        _ ->
            target_loop(S)
    after Wait ->
            target_exit(Rid, normal)
    end.

target_exit(Rid, R) ->
    log("texit", [{id, {str, Rid}}, {pid, {pid, self()}}, {reason, {term, R}}]),
    exit(R).

spawn_target(Node, N, Kind) ->
    erlang:spawn_request(Node, ?MODULE, target, [self(), N, Kind], [{reply, yes}]).

%% ---------------------------------------------------------------- the pair manager

%% A pair: #{kind, state, n, id, target, ref, due, closed_at}; states as in the C twin:
%% spawn, ready, open, retiring, silent, closed.
-record(mgr, {peer, pairs = [], next_at = #{}, peer_cr = 0, peer_pid = none,
              probe = none, next_connect = 0}).

mgr(Peer, Seed, Parent) ->
    process_flag(trap_exit, true),
    rand:seed(exsss, Seed),
    put(chaos_parent, Parent),
    mgr_loop(#mgr{peer = Peer}, mono()).

mgr_loop(G0, NextTick) ->
    {G, Next} = case mono() >= NextTick of
                    true -> {mgr_tick(G0), mono() + 250};
                    false -> {G0, NextTick}
                end,
    Parent = get(chaos_parent),
    receive
        {'EXIT', Parent, R} -> exit(R);
        M -> mgr_loop(mgr_handle(M, G), Next)
    after max(0, Next - mono()) ->
            mgr_loop(G, Next)
    end.

kinds() -> [link, monitor, unlink, demonitor].

new_pair(Kind) ->
    N = next_pair(),
    #{kind => Kind, state => spawn, n => N, id => pair_id(self(), N), target => none,
      ref => none, due => 0, closed_at => 0}.

put_pair(P, G) ->
    G#mgr{pairs = [P | [Q || Q <- G#mgr.pairs, maps:get(n, Q) =/= maps:get(n, P)]]}.

close_pair(P, G) ->
    Now = mono(),
    put_pair(P#{state := closed, closed_at := Now},
             G#mgr{next_at = maps:put(maps:get(kind, P), Now + 500, G#mgr.next_at)}).

mgr_tick(G0) ->
    Now = mono(),
    G1 = lists:foldl(fun(P, G) ->
                             St = maps:get(state, P),
                             case St =/= closed andalso St =/= silent andalso
                                 maps:get(due, P) > 0 andalso Now >= maps:get(due, P) of
                                 true -> pair_step(P, G);
                                 false -> G
                             end
                     end, G0, G0#mgr.pairs),
    G2 = case G1#mgr.probe of
             #{due := PDue} when Now >= PDue -> probe_finish(G1);
             _ -> G1
         end,
    Peer = G2#mgr.peer,
    G3 = case lists:member(Peer, nodes()) of
             false when Now >= G2#mgr.next_connect ->
                 %% connecting can take seconds: not here, where signals are logged
                 spawn(net_kernel, connect_node, [Peer]),
                 G2#mgr{next_connect = Now + 1000};
             false ->
                 G2;
             true ->
                 lists:foldl(fun(K, G) -> maybe_start(K, G, Now) end, G2, kinds())
         end,
    G3#mgr{pairs = [P || P <- G3#mgr.pairs,
                         not (lists:member(maps:get(state, P), [closed, silent]) andalso
                              Now - maps:get(closed_at, P) > 120000)]}.

maybe_start(K, G, Now) ->
    Busy = [P || P <- G#mgr.pairs, maps:get(kind, P) =:= K,
                 not lists:member(maps:get(state, P), [closed, silent])],
    case Busy =:= [] andalso Now >= maps:get(K, G#mgr.next_at, 0) of
        false ->
            G;
        true ->
            P = new_pair(K),
            Ref = spawn_target(G#mgr.peer, maps:get(n, P), K),
            put_pair(P#{ref := Ref, due := Now + 5000}, G)
    end.

pair_step(#{state := open, kind := K, n := N, id := Id, target := T} = P, G)
  when K =:= link; K =:= monitor ->
    R = {retired, N},
    log("retire", [{id, {str, Id}}, {reason, {term, R}}]),
    T ! {chaos_exit, R},
    put_pair(P#{state := retiring, due := mono() + 15000}, G);
pair_step(#{state := open, kind := unlink, n := N, id := Id, target := T} = P, G) ->
    unlink(T),
    receive
        {'EXIT', T, R} -> log_signal("exit", Id, T, R)
    after 0 -> ok
    end,
    log("unlink", [{id, {str, Id}}]),
    T ! {chaos_unlinked, N},
    T ! {chaos_exit, {bye, N}},
    silent(P, G);
pair_step(#{state := open, kind := demonitor, n := N, id := Id, target := T, ref := Ref} = P,
          G) ->
    Active = erlang:demonitor(Ref, [info]),
    log("demonitor", [{id, {str, Id}}, {active, {bool, Active}}]),
    T ! {chaos_exit, {bye, N}},
    silent(P, G);
pair_step(P, G) ->
    close_pair(P, G).

silent(P, G) ->
    Now = mono(),
    put_pair(P#{state := silent, closed_at := Now},
             G#mgr{next_at = maps:put(maps:get(kind, P), Now + 500, G#mgr.next_at)}).

log_signal(Kind, Id, From, R) ->
    log(Kind, [{id, case Id of none -> null; _ -> {str, Id} end},
               {a, {pid, self()}}, {b, {pid, From}}, {reason, {term, R}}]).

find(Fun, G) ->
    case [P || P <- G#mgr.pairs, Fun(P)] of
        [P | _] -> P;
        [] -> none
    end.

mgr_handle({spawn_reply, Ref, ok, T}, G) ->
    case find(fun(P) -> maps:get(ref, P) =:= Ref end, G) of
        #{state := spawn} = P -> put_pair(P#{state := ready, target := T, due := mono() + 5000}, G);
        _ -> G
    end;
mgr_handle({spawn_reply, Ref, error, _}, G) ->
    case find(fun(P) -> maps:get(ref, P) =:= Ref end, G) of
        #{state := spawn} = P -> close_pair(P, G);
        _ -> G
    end;
mgr_handle({chaos_ready, N, T}, G) ->
    case find(fun(P) -> maps:get(n, P) =:= N end, G) of
        #{state := ready, target := T} = P -> on_ready(P, T, G);
        _ when is_pid(T) ->
            %% too late: not wanted any more (and maybe linked)
            unlink(T),
            T ! {chaos_exit, abandoned},
            G;
        _ -> G
    end;
mgr_handle({'EXIT', From, R}, #mgr{probe = #{pid := From} = Pr} = G) ->
    probe_maybe_done(G#mgr{probe = Pr#{link_r := [R]}});
mgr_handle({'EXIT', From, R}, G) ->
    case find(fun(P) -> maps:get(target, P) =:= From end, G) of
        none ->
            log_signal("exit", none, From, R),
            G;
        #{id := Id, state := St, kind := K} = P ->
            log_signal("exit", Id, From, R),
            case not lists:member(St, [silent, closed]) andalso lists:member(K, [link, unlink]) of
                true -> close_pair(P, G);
                false -> G
            end
    end;
mgr_handle({'DOWN', Ref, process, _, R}, #mgr{probe = #{ref := Ref} = Pr} = G) ->
    probe_maybe_done(G#mgr{probe = Pr#{mon_r := [R]}});
mgr_handle({'DOWN', Ref, process, From, R}, G) ->
    case find(fun(P) -> maps:get(ref, P) =:= Ref end, G) of
        none ->
            log_signal("down", none, From, R),
            G;
        #{id := Id, state := St, kind := K} = P ->
            log_signal("down", Id, From, R),
            case not lists:member(St, [silent, closed]) andalso
                lists:member(K, [monitor, demonitor]) of
                true -> close_pair(P, G);
                false -> G
            end
    end;
mgr_handle(_, G) ->
    G.

on_ready(#{kind := K, n := _} = P0, T, G0) ->
    Cr = pid_creation(T),
    G1 = case G0#mgr.peer_cr =/= 0 andalso Cr =/= G0#mgr.peer_cr andalso
             G0#mgr.peer_pid =/= none andalso G0#mgr.probe =:= none of
             true -> start_probe(G0#mgr.peer_pid, G0);
             false -> G0
         end,
    G = case Cr =/= G1#mgr.peer_cr orelse G1#mgr.peer_pid =:= none of
            true -> G1#mgr{peer_cr = Cr, peer_pid = T};
            false -> G1
        end,
    P = P0#{target := T, ref := none, state := open},
    Ms = fun(Lo, Hi) -> mono() + Lo + rand:uniform(Hi - Lo + 1) - 1 end,
    case K of
        link ->
            log("link", [{id, {str, maps:get(id, P)}}, {a, {pid, self()}}, {b, {pid, T}}]),
            put_pair(P#{due := Ms(3000, 8000)}, G);
        unlink ->
            log("link", [{id, {str, maps:get(id, P)}}, {a, {pid, self()}}, {b, {pid, T}}]),
            put_pair(P#{due := Ms(500, 2000)}, G);
        monitor ->
            Ref = erlang:monitor(process, T),
            log("monitor", [{id, {str, maps:get(id, P)}}, {a, {pid, self()}}, {b, {pid, T}}]),
            put_pair(P#{ref := Ref, due := Ms(3000, 8000)}, G);
        demonitor ->
            Ref = erlang:monitor(process, T),
            log("monitor", [{id, {str, maps:get(id, P)}}, {a, {pid, self()}}, {b, {pid, T}}]),
            put_pair(P#{ref := Ref, due := Ms(500, 2000)}, G)
    end.

start_probe(Old, G) ->
    link(Old),
    Ref = erlang:monitor(process, Old),
    G#mgr{probe = #{pid => Old, ref => Ref, link_r => [], mon_r => [], due => mono() + 5000}}.

probe_maybe_done(#mgr{probe = #{link_r := [_], mon_r := [_]}} = G) -> probe_finish(G);
probe_maybe_done(G) -> G.

probe_finish(#mgr{probe = #{pid := Old, ref := Ref, link_r := LR, mon_r := MR}} = G) ->
    Res = fun([R]) -> {term, R}; ([]) -> {str, "timeout"} end,
    log("stale", [{pid, {pid, Old}}, {link, Res(LR)}, {monitor, Res(MR)}]),
    MR =:= [] andalso erlang:demonitor(Ref, [flush]),
    LR =:= [] andalso unlink(Old),
    G#mgr{probe = none}.

%% ---------------------------------------------------------------- the remote supervisor

%% Keeps one remote supervisor running: logs sup_start and sup_exit, starts a new one 2 s after
%% the last one gave up. Ends with its parent.
keeper(Parent) ->
    process_flag(trap_exit, true),
    case persistent_term:get(chaos_peers) of
        [] -> receive {'EXIT', Parent, R} -> exit(R) end;
        _ -> keeper(Parent, 1)
    end.

keeper(Parent, K) ->
    SupId = lists:flatten(io_lib:format("~s/~b/s~b", [node(), erlang:system_info(creation), K])),
    persistent_term:put(chaos_sup_id, SupId),
    log("sup_start", [{sup, {str, SupId}}, {intensity, {int, ?SUP_INTENSITY}},
                      {period_ms, {int, ?SUP_PERIOD_MS}}]),
    case supervisor:start_link(?MODULE, rsup) of
        {ok, Sup} ->
            keeper_wait(Parent, Sup, SupId);
        Other ->
            log("sup_exit", [{sup, {str, SupId}}, {reason, {term, Other}}])
    end,
    timer:sleep(2000),
    keeper(Parent, K + 1).

keeper_wait(Parent, Sup, SupId) ->
    receive
        {'EXIT', Parent, R} ->
            exit(R);
        {'EXIT', Sup, R} ->
            log("sup_exit", [{sup, {str, SupId}}, {reason, {term, R}}]);
        _ ->
            keeper_wait(Parent, Sup, SupId)
    end.

init(rsup) ->
    Child = fun(I) ->
                    Id = list_to_atom("c" ++ integer_to_list(I + 1)),
                    #{id => Id, start => {?MODULE, start_child, [I, Id]},
                      restart => permanent, shutdown => 2000, type => worker}
            end,
    {ok, {#{strategy => one_for_one, intensity => ?SUP_INTENSITY,
            period => ?SUP_PERIOD_MS div 1000},
          [Child(I) || I <- [0, 1, 2]]}}.

%% A child of the remote supervisor (runs in the supervisor): a target of kind child on the first
%% connected peer of this child's rotation, waiting up to 30 s for one (as the C twin).
start_child(Idx, Cid) ->
    Peers = persistent_term:get(chaos_peers),
    case pick_peer(Idx, Peers, mono() + 30000) of
        none ->
            {error, no_peer};
        Node ->
            N = next_pair(),
            Ref = spawn_target(Node, N, child),
            receive
                {spawn_reply, Ref, ok, T} ->
                    receive
                        {chaos_ready, N, T} ->
                            log("child_start", [{sup, {str, persistent_term:get(chaos_sup_id)}},
                                                {child, {str, atom_to_list(Cid)}},
                                                {id, {str, pair_id(self(), N)}},
                                                {pid, {pid, T}},
                                                {on, {str, atom_to_list(Node)}}]),
                            {ok, T}
                    after 10000 ->
                            exit(T, kill),
                            {error, timeout}
                    end;
                {spawn_reply, Ref, error, R} ->
                    {error, R}
            after 10000 ->
                    {error, timeout}
            end
    end.

pick_peer(Idx, Peers, GiveUp) ->
    C = persistent_term:get(chaos_counter),
    counters:add(C, 2, 1),
    K = counters:get(C, 2) - 1,
    Len = length(Peers),
    Order = [lists:nth((Idx + K + I) rem Len + 1, Peers) || I <- lists:seq(0, Len - 1)],
    Connected = nodes(),
    case [P || P <- Order, lists:member(P, Connected)] of
        [P | _] -> P;
        [] ->
            case mono() >= GiveUp of
                true -> none;
                false -> timer:sleep(200), pick_peer(Idx, Peers, GiveUp)
            end
    end.
