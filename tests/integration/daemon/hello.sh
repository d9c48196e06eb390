#!/bin/sh
# The example module built outside the tree: installs Girder into a temporary prefix, builds
# daemon/examples/hello with its own Makefile (pkg-config only), loads it into the installed
# girderd once from the config file and once at run time, and has a real erl call it and spawn
# it remotely; the module and the node share one runtime; a wrong-ABI module is refused.
. "$(dirname "$0")/lib.sh"
: "${BUILD_DIR:?}" "${SRC:?}" "${TEST_MODULE_DIR:?}" "${CC:=cc}" "${SAN_FLAGS:=}"

prefix=$TMP/prefix
cmake --install "$BUILD_DIR" --prefix "$prefix" >"$TMP/install.log" 2>&1 || fail "cmake --install"
pc=$(find "$prefix" -name girder.pc | head -1)
[ -n "$pc" ] || fail "no girder.pc installed"
[ -e "$prefix/include/girder/module.h" ] || fail "girder/module.h not installed"
demo=$(find "$prefix" -path '*/girder/modules/demo.so' | head -1)
[ -n "$demo" ] || fail "the demo module is not installed"
pass "installed: girderd, girder/module.h, girder.pc, the demo module ($demo)"

cp -r "$SRC/daemon/examples/hello" "$TMP/hello"
rm -f "$TMP/hello/hello.so"
PKG_CONFIG_PATH=$(dirname "$pc") make -C "$TMP/hello" CC="$CC" \
    CFLAGS="-O2 -g -Wall -Wextra -Werror $SAN_FLAGS" >"$TMP/make.out" 2>&1 \
    || { cat "$TMP/make.out"; fail "make in daemon/examples/hello"; }
# linked with the shared libraries (NEEDED), carrying no copy of them (no term_/nd_ definitions)
readelf -d "$TMP/hello/hello.so" | grep -q 'NEEDED.*libgirder_term\.so' \
    || fail "hello.so is not linked with the shared libraries"
nm -D --defined-only "$TMP/hello/hello.so" | grep -q ' \(term_\|nd_\|dist_\)' \
    && fail "hello.so defines Girder functions of its own"
pass "daemon/examples/hello builds out of tree with its Makefile (pkg-config --cflags --libs girder)"

GIRDERD=$prefix/bin/girderd
GIRDER_EPMD=$prefix/bin/girder-epmd
start_epmd

# once from the config file
cat >"$TMP/c1.config" <<CFG
[{sname, "c1$SUF"}, {cookie, "$COOKIE"}, {control_socket, "$TMP/c1.sock"},
 {modules, ["hello/hello.so"]}].
CFG
"$GIRDERD" --config "$TMP/c1.config" >>"$TMP/c1.log" 2>&1 &
GPID=$!; PIDS="$PIDS $GPID"
wait_for 20 "$DAEMON_CTL" call "$TMP/c1.sock" api.info || fail "installed girderd did not start"
C1=$(node c1)
out=$(erl_eval e1 "io:format(\"~p~n\", [rpc:call('$C1', hello, greet, [world])]),
    {P, R} = spawn_monitor('$C1', hello, greet, [x]),
    receive {'DOWN', R, process, P, Why} -> io:format(\"~p ~p~n\", [node(P), Why])
    after 5000 -> io:format(\"no_down~n\") end")
[ "$out" = "{hello,world}
$C1 normal" ] || fail "hello loaded from the config file: $out"
pass "loaded from the config file: erl's rpc:call(G, hello, greet, [world]) -> {hello,world}; a remote spawn runs on G"
# one runtime: the node maps each Girder library once, from the prefix
for l in term node dist; do
    n=$(awk '{print $6}' "/proc/$GPID/maps" | grep "libgirder_$l\.so" | sort -u | wc -l)
    [ "$n" -eq 1 ] || fail "libgirder_$l.so mapped from $n files: $(grep libgirder_ "/proc/$GPID/maps" | awk '{print $6}' | sort -u)"
    awk '{print $6}' "/proc/$GPID/maps" | grep "libgirder_$l\.so" | grep -q "^$prefix/" \
        || fail "libgirder_$l.so not from the prefix"
done
pass "one runtime: girderd and hello.so share the prefix's libgirder_*.so, each mapped once"

# once at run time
start_girder r1
R1=$(node r1)
ctl "$TMP/r1.sock" module.load "s:$TMP/hello/hello.so" >"$TMP/load.out" \
    || fail "module.load: $(cat "$TMP/load.out")"
out=$(erl_eval e2 "io:format(\"~p~n\", [rpc:call('$R1', hello, greet, [world])])")
[ "$out" = "{hello,world}" ] || fail "hello loaded at run time: $out"
pass "loaded at run time (module.load): rpc:call(G, hello, greet, [world]) -> {hello,world}"
ctl "$TMP/r1.sock" module.load "s:$TEST_MODULE_DIR/badabi.so" >"$TMP/load.out" 2>&1 && fail "a wrong-ABI module was loaded"
grep -q 'built for module ABI 999' "$TMP/load.out" || fail "wrong ABI: $(cat "$TMP/load.out")"
out=$(erl_eval e3 "io:format(\"~p ~p~n\", [net_adm:ping('$R1'), rpc:call('$R1', hello, greet, [again])])")
[ "$out" = "pong {hello,again}" ] || fail "the node after a refused module: $out"
pass "a wrong-ABI module is refused and the node keeps serving"
echo "$PASSED passed, 0 failed"
