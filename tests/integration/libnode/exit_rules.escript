#!/usr/bin/env escript
%% Exit-signal scenarios run in real Erlang; prints one line per scenario (recorded in
%% exit_rules.expected, replayed by libnode/tests/test-exit-rules.c against Girder).
%% Line: <scenario> <trap of B> <alive|dead:Reason> [EXIT:From:Reason | DOWN:Reason | link:Result]...
-mode(compile).

main(_) ->
    Reasons = [normal, kill, killed, shutdown, boom],
    [run({link_exit, R}, T) || R <- Reasons, T <- [false, true]],
    [run({exit2, R}, T) || R <- Reasons, T <- [false, true]],
    [run({self_exit2, R}, T) || R <- [normal, kill, boom], T <- [false, true]],
    [run({exit2_from_linked, R}, T) || R <- [normal, boom], T <- [false, true]],
    [run(killed_link, T) || T <- [false, true]],
    [run(unlink_exit, T) || T <- [false, true]],
    [run(link_dead, T) || T <- [false, true]],
    [run({crash_child, R}, T) || R <- [normal, boom], T <- [false, true]],
    [run(monitor_dead, T) || T <- [false]],
    [run({monitor_exit, R}, T) || R <- [normal, kill, boom], T <- [false]],
    ok.

name(T) when is_atom(T) -> atom_to_list(T);
name({A, R}) -> atom_to_list(A) ++ "/" ++ atom_to_list(R).

run(Sc, Trap) ->
    H = self(),
    B = spawn(fun() -> process_flag(trap_exit, Trap), H ! {ready, self()}, b_loop(H) end),
    receive {ready, B} -> ok end,
    Mon = monitor(process, B),
    Names = act(Sc, H, B),
    timer:sleep(30),
    Status = receive {'DOWN', Mon, process, B, R} -> "dead:" ++ atom_to_list(R)
             after 0 -> demonitor(Mon, [flush]), exit(B, kill), "alive" end,
    Msgs = collect([{B, "B"} | Names]),
    io:format("~s ~s ~s~s~n", [name(Sc), Trap, Status, Msgs]).

b_loop(H) ->
    receive
        {do, F} -> F(), b_loop(H);
        M -> H ! {b_got, M}, b_loop(H)
    end.

collect(Names) ->
    receive
        {b_got, {'EXIT', P, R}} -> " EXIT:" ++ who(P, Names) ++ ":" ++ atom_to_list(R) ++ collect(Names);
        {b_got, {'DOWN', _, process, _, R}} -> " DOWN:" ++ atom_to_list(R) ++ collect(Names);
        {b_got, {link, R}} -> " link:" ++ atom_to_list(R) ++ collect(Names);
        {'DOWN', _, _, _, _} -> collect(Names)
    after 0 -> ""
    end.

who(P, Names) -> case lists:keyfind(P, 1, Names) of {_, N} -> N; false -> "?" end.

%% A: a helper process linked to B (link made by A) that then does something.
act({link_exit, R}, H, B) ->
    A = spawn(fun() -> link(B), H ! {linked, self()}, receive go -> exit(R) end end),
    receive {linked, A} -> ok end,
    A ! go, [{A, "A"}];
act({exit2, R}, _H, B) ->
    A = spawn(fun() -> exit(B, R) end), [{A, "A"}];
act({self_exit2, R}, _H, B) ->
    B ! {do, fun() -> exit(self(), R) end}, [];
act({exit2_from_linked, R}, H, B) ->
    A = spawn(fun() -> link(B), exit(B, R), H ! {done, self()}, receive after 1000 -> ok end end),
    receive {done, A} -> ok end, [{A, "A"}];
act(killed_link, H, B) ->
    A = spawn(fun() -> link(B), H ! {linked, self()}, receive after infinity -> ok end end),
    receive {linked, A} -> ok end,
    exit(A, kill), [{A, "A"}];
act(unlink_exit, H, B) ->
    A = spawn(fun() -> link(B), unlink(B), H ! {linked, self()}, receive go -> exit(boom) end end),
    receive {linked, A} -> ok end,
    A ! go, [{A, "A"}];
act(link_dead, _H, B) ->
    D = spawn(fun() -> ok end), timer:sleep(5),
    B ! {do, fun() -> R = case catch link(D) of true -> true; {'EXIT', {E, _}} -> E end,
                      self() ! {link, R} end},
    [{D, "D"}];
act({crash_child, R}, H, B) ->
    B ! {do, fun() -> C = spawn_link(fun() -> receive go -> exit(R) end end),
                      H ! {child, C}, C ! go end},
    receive {child, C} -> [{C, "C"}] end;
act(monitor_dead, _H, B) ->
    D = spawn(fun() -> ok end), timer:sleep(5),
    B ! {do, fun() -> monitor(process, D) end}, [{D, "D"}];
act({monitor_exit, R}, H, B) ->
    A = spawn(fun() -> H ! {up, self()}, receive go -> exit(R) end end),
    receive {up, A} -> ok end,
    B ! {do, fun() -> monitor(process, A), H ! monitored end},
    receive monitored -> ok end,
    A ! go, [{A, "A"}].
