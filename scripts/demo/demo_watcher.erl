%% The Erlang side of `make demo`: a process on a real Erlang node that monitors the workers of
%% the Girder workload, and the timeline and checks the demo prints.
-module(demo_watcher).
-export([start/0, events/0, recovered/3, report/3]).

%% An event, as the workload module's: {TimeMs, ObservedOn, What, Id, Pid, WorkerNode, Detail}.

%% Starts the registered watcher (unlinked: it outlives the rpc that starts it). The workload
%% sends it {watch, Id, Pid} for every worker it (re)starts; it monitors each one.
start() ->
    case whereis(?MODULE) of
        undefined ->
            Pid = spawn(fun() -> loop([], #{}) end),
            true = register(?MODULE, Pid),
            {ok, Pid};
        Pid ->
            {ok, Pid}
    end.

loop(Events, Ids) ->
    receive
        {watch, Id, Pid} when is_pid(Pid) ->
            erlang:monitor(process, Pid),
            E = {now_ms(), node(), watching, Id, Pid, node(Pid), none},
            loop([E | Events], Ids#{Pid => Id});
        {'DOWN', _Ref, process, Pid, Reason} ->
            E = {now_ms(), node(), down, maps:get(Pid, Ids, unknown), Pid, node(Pid), Reason},
            loop([E | Events], Ids);
        {events, From, Tag} ->
            From ! {Tag, lists:reverse(Events)},
            loop(Events, Ids);
        _ ->
            loop(Events, Ids)
    end.

now_ms() -> erlang:system_time(millisecond).

%% The watcher's events, oldest first.
events() ->
    Tag = make_ref(),
    ?MODULE ! {events, self(), Tag},
    receive {Tag, Es} -> Es after 5000 -> exit(watcher_not_answering) end.

%% true once everything the demo expects after Victim was killed at T0 has been seen.
recovered(Sup, Victim, T0) ->
    {Problems, _} = check(Sup, Victim, T0),
    Problems =:= [].

%% Prints the timeline since T0 (the kill) and one line per worker, then returns ok, or exits
%% with the list of what was not seen (so `girder rpc` fails with it).
report(Sup, Victim, T0) ->
    {Problems, Lines} = check(Sup, Victim, T0),
    io:format("~n  Timeline (t = 0: kill -9 of ~s; times are wall clock on this machine)~n",
              [short(Victim)]),
    io:format("    ~s  ~8s  ~s~n", [clock(T0), "+0 ms", "kill -9 " ++ short(Victim)]),
    [io:format("    ~s  ~8s  ~s~n", [clock(T), rel(T - T0), describe(E)])
     || E = {T, _, _, _, _, _, _} <- timeline(Sup, T0)],
    io:format("~n  Each worker that ran on ~s:~n", [short(Victim)]),
    [io:format("    ~s~n", [L]) || L <- Lines],
    case Problems of
        [] -> ok;
        _ -> exit({recovery_not_observed, Problems})
    end.

timeline(Sup, T0) ->
    Es = girder_events(Sup) ++ events(),
    %% stable by time: events of one millisecond keep the order each log recorded them in
    lists:keysort(1, [E || E = {T, _, What, _, _, _, _} <- Es, T >= T0, What =/= watching]).

girder_events(Sup) ->
    case rpc:call(Sup, workload, events, [], 5000) of
        Es when is_list(Es) -> Es;
        Other -> exit({cannot_read_the_workload_events, Sup, Other})
    end.

%% The checks: {Problems, Lines}. Affected workers are those whose latest start before T0 was on
%% Victim. For each: an exit signal and a DOWN with reason noconnection at the supervisor's
%% node (the event log there), a DOWN noconnection here, a restart after T0 on another node
%% that is still up, and the new worker answering a ping. Workers elsewhere are not restarted.
check(Sup, Victim, T0) ->
    Gs = girder_events(Sup),
    Ws = events(),
    Before = lists:foldl(fun({T, _, W, Id, Pid, Node, _}, Acc)
                               when T < T0, W =:= started orelse W =:= restarted ->
                                 Acc#{Id => {Pid, Node}};
                            (_, Acc) -> Acc
                         end, #{}, Gs),
    Affected = lists:sort([{Id, Pid} || {Id, {Pid, Node}} <- maps:to_list(Before), Node =:= Victim]),
    Others = [Id || {Id, {_, Node}} <- maps:to_list(Before), Node =/= Victim],
    Check = rpc:call(Sup, workload, check, [], 5000),
    Alive = nodes(),
    Results = [worker(Id, Pid, Gs, Ws, Check, Alive, Victim, T0) || {Id, Pid} <- Affected],
    Untouched = [{restarted_though_not_on_victim, Id}
                 || Id <- Others,
                    lists:any(fun({T, _, restarted, I, _, _, _}) -> T >= T0 andalso I =:= Id;
                                 (_) -> false end, Gs)],
    None = [no_worker_ran_on_the_killed_node || Affected =:= []],
    Problems = None ++ Untouched ++ lists:append([P || {P, _} <- Results]),
    {Problems, [L || {_, L} <- Results]}.

worker(Id, Old, Gs, Ws, Check, Alive, Victim, T0) ->
    Exit = find(Gs, exit, Old, T0),
    Down = find(Gs, down, Old, T0),
    EDown = find(Ws, down, Old, T0),
    Restart = [E || E = {T, _, restarted, I, _, _, _} <- Gs, I =:= Id, T >= T0],
    P1 = [{no_exit_signal_at_the_supervisor_node, Id} || not reason_is(Exit, noconnection)]
        ++ [{no_down_at_the_supervisor_node, Id} || not reason_is(Down, noconnection)]
        ++ [{no_down_at_the_erlang_watcher, Id} || not reason_is(EDown, noconnection)],
    {P2, RText} =
        case Restart of
            [{TR, _, _, _, New, Node, _} | _] ->
                Pong = is_list(Check) andalso lists:member({Id, Node, pong}, Check),
                Live = Node =/= Victim andalso lists:member(Node, Alive),
                {[{restarted_on_a_dead_node, Id, Node} || not Live]
                 ++ [{restarted_worker_does_not_answer, Id} || not Pong],
                 io_lib:format("restarted ~s as ~s on ~s, ~s",
                               [rel(TR - T0), pid(New), short(Node),
                                if Pong -> "answers a ping"; true -> "does NOT answer" end])};
            [] ->
                {[{not_restarted, Id}], "NOT restarted"}
        end,
    On = short(node_of(Gs)),
    Line = io_lib:format("~s ~s: exit signal at ~s ~s, DOWN at ~s ~s, DOWN at ~s ~s; ~s",
                         [Id, pid(Old), On, when_(Exit, T0), On, when_(Down, T0), short(node()),
                          when_(EDown, T0), RText]),
    {P1 ++ P2, lists:flatten(Line)}.

node_of([{_, On, _, _, _, _, _} | _]) -> On;
node_of([]) -> unknown.

find(Es, What, Pid, T0) ->
    case [E || E = {T, _, W, _, P, _, _} <- Es, W =:= What, P =:= Pid, T >= T0] of
        [E | _] -> E;
        [] -> none
    end.

reason_is({_, _, _, _, _, _, R}, R) -> true;
reason_is(_, _) -> false.

when_(none, _) -> "(not seen)";
when_({T, _, _, _, _, _, R}, T0) -> lists:flatten(io_lib:format("~s (~p)", [rel(T - T0), R])).

describe({_, On, What, Id, Pid, Node, Detail}) ->
    W = short(On),
    case What of
        exit ->
            io_lib:format("~-3s exit signal ~p from ~s ~s on ~s, to the linked event log",
                          [W, Detail, Id, pid(Pid), short(Node)]);
        down when On =:= node() ->
            io_lib:format("~-3s DOWN ~p        of ~s ~s on ~s, to the Erlang watcher's monitor",
                          [W, Detail, Id, pid(Pid), short(Node)]);
        down ->
            io_lib:format("~-3s DOWN ~p        of ~s ~s on ~s, to the event log's monitor",
                          [W, Detail, Id, pid(Pid), short(Node)]);
        restarted ->
            {was, OldPid, _} = Detail,
            io_lib:format("~-3s restart by workload_sup: ~s ~s on ~s (replaces ~s)",
                          [W, Id, pid(Pid), short(Node), pid(OldPid)]);
        started ->
            io_lib:format("~-3s start by workload_sup: ~s ~s on ~s", [W, Id, pid(Pid), short(Node)]);
        _ ->
            io_lib:format("~-3s ~p ~s ~s", [W, What, Id, pid(Pid)])
    end.

%% A pid as its own node prints it (<0.X.Y>: what `girder ps` shows there).
pid(Pid) when is_pid(Pid) ->
    [_ | Rest] = string:split(erlang:pid_to_list(Pid), "."),
    "<0." ++ Rest;
pid(Other) ->
    io_lib:format("~p", [Other]).

short(Node) when is_atom(Node) -> hd(string:split(atom_to_list(Node), "@"));
short(Other) -> io_lib:format("~p", [Other]).

rel(Ms) -> "+" ++ integer_to_list(Ms) ++ " ms".

clock(Ms) ->
    {_, {H, M, S}} = calendar:system_time_to_local_time(Ms div 1000, second),
    io_lib:format("~2..0w:~2..0w:~2..0w.~3..0w", [H, M, S, Ms rem 1000]).
