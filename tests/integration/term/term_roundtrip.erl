%% Random terms made by real Erlang go through `girder term decode | girder term encode`;
%% Erlang checks that what comes back is the same term, byte for byte where Girder promises it.
-module(term_roundtrip).
-export([gen/1, check/1]).

%% Phase 1: write COUNT terms (seeded) as DIR/N.etf (plain) and DIR/N.z.etf (compressed),
%% and the whole list as DIR/terms.etf for phase 3. The shell runs girder on each file.
gen([CountS, SeedS, Dir]) ->
    Count = list_to_integer(CountS),
    Seed = list_to_integer(SeedS),
    rand:seed(exsss, {Seed, Seed * 7 + 1, Seed * 13 + 5}),
    Fixed = fixed_terms(),
    Terms = Fixed ++ [rgen(4) || _ <- lists:seq(1, max(0, Count - length(Fixed)))],
    lists:foreach(fun({I, T}) ->
                          ok = file:write_file(name(Dir, I, ".etf"), term_to_binary(T)),
                          ok = file:write_file(name(Dir, I, ".z.etf"),
                                               term_to_binary(T, [compressed]))
                  end, lists:zip(lists:seq(1, length(Terms)), Terms)),
    ok = file:write_file(filename:join(Dir, "terms.etf"), term_to_binary(Terms, [compressed])),
    io:format("~p~n", [length(Terms)]),
    halt(0).

%% Phase 3: DIR/N.out came from the plain input through `decode | encode`, DIR/N.z.out from
%% the compressed one through `decode --format w | encode`; both must equal the original term,
%% and be byte-identical to term_to_binary/1 unless the term holds a map of over 32 keys.
%% With "foreign", the outputs checked are DIR/N.f.out and DIR/N.fz.out, which
%% term-foreign-roundtrip wrote from decodes where every new atom was foreign.
check([Dir]) -> check(Dir, {".out", ".z.out"});
check([Dir, "foreign"]) -> check(Dir, {".f.out", ".fz.out"}).

check(Dir, Outs) ->
    {ok, B} = file:read_file(filename:join(Dir, "terms.etf")),
    Terms = binary_to_term(B),
    Results = [check_one(Dir, Outs, I, T)
               || {I, T} <- lists:zip(lists:seq(1, length(Terms)), Terms)],
    Failed = [R || R <- Results, R =/= ok],
    Types = lists:usort(lists:flatmap(fun types/1, Terms)),
    io:format("types covered: ~w~n", [Types]),
    Missing = [integer, float, atom, reference, 'fun', port, pid, tuple, map, nil, list,
               binary, bitstring] -- Types,
    [io:format("FAIL ~s~n", [F]) || F <- lists:sublist(Failed, 20)],
    Missing =:= [] orelse io:format("FAIL: the generator missed types ~w~n", [Missing]),
    io:format("~p passed, ~p failed~n", [length(Terms) - length(Failed), length(Failed)]),
    halt(case {Failed, Missing} of {[], []} -> 0; _ -> 1 end).

name(Dir, I, Ext) -> filename:join(Dir, integer_to_list(I) ++ Ext).

check_one(Dir, {Out, ZOut}, I, T) ->
    Plain = term_to_binary(T),
    Exact = not has_big_map(T),
    case {file:read_file(name(Dir, I, Out)), file:read_file(name(Dir, I, ZOut))} of
        {{ok, B1}, {ok, B2}} ->
            case catch {binary_to_term(B1), binary_to_term(B2)} of
                {T1, T2} when T1 =:= T, T2 =:= T ->
                    case Exact andalso (B1 =/= Plain orelse B2 =/= Plain) of
                        true -> fmt(I, T, "bytes differ from term_to_binary/1");
                        false -> ok
                    end;
                Other -> fmt(I, T, io_lib:format("came back as ~P", [Other, 12]))
            end;
        Other -> fmt(I, T, io_lib:format("no output from girder: ~p", [Other]))
    end.

fmt(I, T, Why) -> lists:flatten(io_lib:format("#~p ~s: ~P", [I, Why, T, 15])).

has_big_map(T) when is_map(T) ->
    map_size(T) > 32 orelse lists:any(fun has_big_map/1, maps:keys(T) ++ maps:values(T));
has_big_map(T) when is_tuple(T) -> lists:any(fun has_big_map/1, tuple_to_list(T));
has_big_map([H | T]) -> has_big_map(H) orelse has_big_map(T);
has_big_map(T) when is_function(T) ->
    case erlang:fun_info(T, type) of
        {type, local} -> {env, Env} = erlang:fun_info(T, env), has_big_map(Env);
        _ -> false
    end;
has_big_map(_) -> false.

types(T) when is_integer(T) -> [integer];
types(T) when is_float(T) -> [float];
types(T) when is_atom(T) -> [atom];
types(T) when is_reference(T) -> [reference];
types(T) when is_function(T) -> ['fun'];
types(T) when is_port(T) -> [port];
types(T) when is_pid(T) -> [pid];
types(T) when is_tuple(T) -> [tuple | lists:flatmap(fun types/1, tuple_to_list(T))];
types(T) when is_map(T) -> [map | lists:flatmap(fun types/1, maps:keys(T) ++ maps:values(T))];
types([]) -> [nil];
types([H | T]) -> [list | types(H) ++ (if is_list(T) -> tl_types(T); true -> types(T) end)];
types(T) when is_binary(T) -> [binary];
types(T) when is_bitstring(T) -> [bitstring].

tl_types([]) -> [];
tl_types([H | T]) when is_list(T) -> types(H) ++ tl_types(T);
tl_types([H | T]) -> types(H) ++ types(T).

%% Edge cases every run includes.
fixed_terms() ->
    Edges = [1 bsl 27, 1 bsl 31, 1 bsl 63, 1 bsl 64],
    Ints = lists:flatmap(fun(E) -> [E - 1, E, E + 1, -E + 1, -E, -E - 1] end, Edges),
    Ints ++ [0, 255, 256, -1, 1 bsl 2000, -(1 bsl 2040) + 3,
             0.0, -0.0, 0.1, 1.0e300, -1.0e-300, 5.0e-324, 1.7976931348623157e308, 123456.0,
             '', 'hello world', 'Quoted', 'end', 'a@b', list_to_atom([228, 246]),
             list_to_atom([8364, 955, 128512]), list_to_atom(lists:duplicate(255, 955)),
             [], "", "abc", [1 | 2], [a, b | c], [[]], lists:seq(1, 300),
             lists:duplicate(70000, $x), [256, 1000, 955],
             <<>>, <<0, 255>>, <<1:1>>, <<5:3>>, <<"text">>, crypto_bytes(100000),
             binary:part(crypto_bytes(300), 3, 200), sub_bits(),
             {}, list_to_tuple(lists:seq(1, 300)), #{}, big_map(40), map_with_composite_keys(),
             self(), make_ref(), hd(erlang:ports()), node(),
             ext_pid('other@host', 16#7FFF, 16#1FFF, 16#FFFFFFFF),
             ext_pid('other@host', 1, 0, 0), ext_ref('far@away', 16#FFFFFFFE, [1, 2, 3]),
             ext_ref('far@away', 7, [1, 2, 3, 4, 5]), ext_port('p@q', 16#FFFFFFFFF, 16#FFFFFFFF),
             ext_port('p@q', 5, 3),
             fun lists:map/2, fun erlang:'+'/2, closure(42), closure({deep, [self()]}),
             fun() -> ok end,
             deep_list(5000), deep_tuple(5000)].

closure(X) -> fun(Y) -> {X, Y} end.
crypto_bytes(N) -> list_to_binary([rand:uniform(256) - 1 || _ <- lists:seq(1, N)]).
sub_bits() -> <<_:3, Rest:20/bitstring, _/bitstring>> = crypto_bytes(8), Rest.
big_map(N) -> maps:from_list([{I, I * I} || I <- lists:seq(1, N)]).
map_with_composite_keys() ->
    #{{a, 1} => x, [1, 2] => y, #{k => v} => z, <<"b">> => w, 1.0 => f, 1 => i, -0.0 => nz}.
deep_list(0) -> [];
deep_list(N) -> [deep_list(N - 1)].
deep_tuple(0) -> {};
deep_tuple(N) -> {deep_tuple(N - 1)}.

ext_pid(Node, Id, Serial, Creation) ->
    N = atom_to_binary(Node, utf8),
    binary_to_term(<<131, 88, 119, (byte_size(N)), N/binary, Id:32, Serial:32, Creation:32>>).
ext_ref(Node, Creation, Words) ->
    N = atom_to_binary(Node, utf8),
    binary_to_term(<<131, 90, (length(Words)):16, 119, (byte_size(N)), N/binary, Creation:32,
                     (<<<<W:32>> || W <- Words>>)/binary>>).
ext_port(Node, Id, Creation) ->
    N = atom_to_binary(Node, utf8),
    binary_to_term(<<131, 120, 119, (byte_size(N)), N/binary, Id:64, Creation:32>>).

%% Random terms, depth-bounded.
rgen(0) -> leaf();
rgen(D) ->
    case rand:uniform(10) of
        1 -> list_to_tuple([rgen(D - 1) || _ <- lists:seq(1, rand:uniform(5) - 1)]);
        2 -> [rgen(D - 1) || _ <- lists:seq(1, rand:uniform(5) - 1)];
        3 -> maps:from_list([{rgen(D - 1), rgen(D - 1)} || _ <- lists:seq(1, rand:uniform(5) - 1)]);
        4 -> [rgen(D - 1) | leaf()];
        5 -> closure(rgen(D - 1));
        _ -> leaf()
    end.

leaf() ->
    case rand:uniform(16) of
        1 -> rand:uniform(1 bsl 70) - (1 bsl 69);
        2 -> rand:uniform(1000) - 500;
        3 -> (rand:uniform(2) * 2 - 3) * (1 bsl (rand:uniform(200))) + rand:uniform(3) - 2;
        4 -> (rand:uniform() - 0.5) * math:pow(10, rand:uniform(600) - 300);
        5 -> list_to_atom([rand:uniform(26) + $a - 1 || _ <- lists:seq(1, rand:uniform(8))]);
        6 -> list_to_atom([rand:uniform(16#2FFF) || _ <- lists:seq(1, rand:uniform(10))]);
        7 -> crypto_bytes(rand:uniform(100) - 1);
        8 -> <<(crypto_bytes(rand:uniform(10)))/binary, (rand:uniform(127)):(rand:uniform(7))>>;
        9 -> [rand:uniform(255) || _ <- lists:seq(1, rand:uniform(20))];
        10 -> [rand:uniform(16#10FFF) || _ <- lists:seq(1, rand:uniform(10))];
        11 -> ext_pid(random_node(), rand:uniform(1 bsl 32) - 1, rand:uniform(1 bsl 32) - 1,
                      rand:uniform(1 bsl 32) - 1);
        12 -> ext_ref(random_node(), rand:uniform(1 bsl 32) - 1,
                      [rand:uniform(1 bsl 32) - 1 || _ <- lists:seq(1, rand:uniform(5))]);
        13 -> ext_port(random_node(), rand:uniform(1 bsl 40), rand:uniform(1 bsl 32) - 1);
        14 -> make_ref();
        15 -> [];
        16 -> {}
    end.

random_node() ->
    list_to_atom([rand:uniform(26) + $a - 1 || _ <- lists:seq(1, 5)] ++ "@" ++
                 [rand:uniform(26) + $a - 1 || _ <- lists:seq(1, 4)]).
