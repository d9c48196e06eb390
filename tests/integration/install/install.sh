#!/bin/sh
# Installs Girder into a temporary prefix, builds ping.c outside the tree with pkg-config and
# with find_package(Girder) (shared and static), and pings a real erl node with each program.
# Usage: install.sh BUILD_DIR
# env: GIRDER_VERSION (expected), ERL, CC, SAN_FLAGS (the build's sanitizer flags, for the programs)
set -eu
build=$1
: "${GIRDER_VERSION:?}" "${ERL:=erl}" "${CC:=cc}" "${SAN_FLAGS:=}"
here=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/girder-install-test.XXXXXX")
PIDS=""
cleanup() {
    status=$?
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    if [ "$status" -ne 0 ]; then
        for f in "$TMP"/*.log; do [ -f "$f" ] && { echo "---- $f"; tail -n 30 "$f"; }; done
    fi
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "FAIL: $*" >&2; exit 1; }
log() { echo "[$(date +%T)] $*"; }
wait_for() {
    _n=$(( $1 * 10 )); shift
    until "$@" >/dev/null 2>&1; do
        _n=$((_n - 1)); [ "$_n" -gt 0 ] || return 1
        sleep 0.1
    done
}

# 1. install
prefix=$TMP/prefix
cmake --install "$build" --prefix "$prefix" >"$TMP/install.log" 2>&1 || fail "cmake --install"
for f in bin/girder bin/girderd bin/girder-epmd lib/pkgconfig/girder.pc \
         lib/cmake/Girder/GirderConfig.cmake lib/cmake/Girder/GirderConfigVersion.cmake \
         lib/cmake/Girder/GirderTargets.cmake; do
    [ -e "$prefix/$f" ] || fail "not installed: $f"
done
for l in term node epmd dist; do
    [ -e "$prefix/lib/libgirder_$l.a" ] || fail "not installed: libgirder_$l.a"
    [ -e "$prefix/lib/libgirder_$l.so" ] || fail "not installed: libgirder_$l.so"
done
for h in girder error export version term node node_dist epmd epmd_uv dist; do
    [ -e "$prefix/include/girder/$h.h" ] || fail "not installed: include/girder/$h.h"
done
[ -z "$(find "$prefix" -name 'girder_*.h' -o -name '*_int.h')" ] || fail "internal headers installed"
log "installed into $prefix"

# 2. build outside the tree: pkg-config, then CMake (shared and static)
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion girder)" = "$GIRDER_VERSION" ] ||
    fail "pkg-config version $(pkg-config --modversion girder)"
# shellcheck disable=SC2046,SC2086
$CC $SAN_FLAGS -o "$TMP/ping-pc" "$here/ping.c" $(pkg-config --cflags --libs girder) \
    -Wl,-rpath,"$prefix/lib" >"$TMP/cc.log" 2>&1 || fail "cc with pkg-config"
readelf -d "$TMP/ping-pc" | grep -q 'NEEDED.*libgirder_dist\.so' || fail "ping-pc not shared-linked"
cmake -S "$here" -B "$TMP/cmake" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$CC" \
      -DCMAKE_C_FLAGS="$SAN_FLAGS" >"$TMP/cmake.log" 2>&1 || fail "cmake configure with find_package"
cmake --build "$TMP/cmake" >>"$TMP/cmake.log" 2>&1 || fail "cmake build with find_package"
readelf -d "$TMP/cmake/ping-cmake" | grep -q 'NEEDED.*libgirder_dist\.so' ||
    fail "ping-cmake not linked to the shared libraries"
! readelf -d "$TMP/cmake/ping-static" | grep -q 'NEEDED.*libgirder' ||
    fail "ping-static linked to a shared Girder library"
log "built ping-pc (pkg-config), ping-cmake and ping-static (find_package)"

# 3. a private port mapper (the installed one) and a real erl node on loopback
. "$here/../../../scripts/free-port.sh"
host=$(hostname -s)
export ERL_EPMD_ADDRESS=127.0.0.1
for _try in 1 2 3 4 5 6 7 8; do
    ERL_EPMD_PORT=$(girder_free_port)
    "$prefix/bin/girder-epmd" -port "$ERL_EPMD_PORT" -address 127.0.0.1 >>"$TMP/epmd.log" 2>&1 &
    epid=$!
    PIDS="$PIDS $epid"
    sleep 0.2
    if kill -0 "$epid" 2>/dev/null &&
        wait_for 3 "$prefix/bin/girder-epmd" -port "$ERL_EPMD_PORT" -names; then
        break
    fi
    kill -9 "$epid" 2>/dev/null || true
    epid=""
done
[ -n "$epid" ] || fail "no port mapper"
export ERL_EPMD_PORT
cookie="inst$$"
"$ERL" -sname "e_$$" -setcookie "$cookie" -noshell -start_epmd false >>"$TMP/erl.log" 2>&1 &
PIDS="$PIDS $!"
wait_for 20 sh -c "'$prefix/bin/girder-epmd' -port $ERL_EPMD_PORT -names | grep -q '^name e_$$ at'" ||
    fail "erl did not register"

# 4. each program pings it
for p in "$TMP/ping-pc" "$TMP/cmake/ping-cmake" "$TMP/cmake/ping-static"; do
    name=$(basename "$p")
    timeout 60 "$p" "${name}_$$" "$cookie" "e_$$@$host" >"$TMP/$name.log" 2>&1 ||
        fail "$name did not get pong: $(cat "$TMP/$name.log")"
    grep -qx pong "$TMP/$name.log" || fail "$name: $(cat "$TMP/$name.log")"
    log "$name: pong"
done
# and a wrong cookie gives pang: the programs can fail
timeout 60 "$TMP/ping-pc" "bad_$$" "wrong$$" "e_$$@$host" >"$TMP/bad.log" 2>&1 &&
    fail "pong with a wrong cookie"
grep -qx pang "$TMP/bad.log" || fail "wrong cookie: $(cat "$TMP/bad.log")"
log "wrong cookie: pang"
log PASS
