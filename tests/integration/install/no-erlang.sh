#!/bin/sh
# With Erlang and Elixir hidden (a private mount namespace covers their install directories),
# Girder still configures and builds its libraries and executables, and CMake says in one
# message that the tests needing Erlang are not registered. The build is a Release one (-O3):
# `make test` builds RelWithDebInfo, and -Werror on warnings only -O3 gives (maybe-uninitialized)
# once broke Release builds unseen.
# Usage: no-erlang.sh SOURCE_DIR   (as root: needs unshare and mount)
set -eu
src=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
log() { echo "[$(date +%T)] $*"; }
if [ "${GIRDER_NO_ERLANG_NS:-}" != 1 ]; then
    # Mounts made in the new namespace vanish with it and are never seen outside.
    exec unshare --mount --propagation private env GIRDER_NO_ERLANG_NS=1 sh "$0" "$@"
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/girder-no-erlang.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

for d in /usr/lib/erlang /usr/lib/elixir /usr/local/lib/erlang /usr/local/lib/elixir; do
    [ -d "$d" ] && { mount -t tmpfs -o ro,size=64k girder-no-erlang "$d" || fail "mount over $d"; }
done
# Whatever still answers on PATH (another install) is covered by an empty, non-executable file.
: >"$TMP/empty"
for t in erl erlc escript elixir epmd; do
    p=$(command -v "$t" 2>/dev/null) || continue
    [ -e "$p" ] || continue
    mount --bind "$TMP/empty" "$p" || fail "mount over $p"
done
for t in erl erlc escript elixir epmd; do
    p=$(command -v "$t" 2>/dev/null) || continue
    [ -x "$p" ] && fail "$t still visible at $p"
done
log "Erlang and Elixir hidden"

cmake -S "$src" -B "$TMP/build" -DCMAKE_BUILD_TYPE=Release >"$TMP/configure.log" 2>&1 ||
    { cat "$TMP/configure.log"; fail "configure without Erlang"; }
msgs=$(grep -c "Erlang tests skipped" "$TMP/configure.log" || true)
[ "$msgs" = 1 ] || { cat "$TMP/configure.log"; fail "expected one skip message, got $msgs"; }
grep "Erlang tests skipped" "$TMP/configure.log"
grep "Erlang tests skipped" "$TMP/configure.log" | grep -q "dist-int" || fail "message names no test"
# The tests that need Erlang are not registered; the others are.
(cd "$TMP/build" && ctest -N) >"$TMP/tests.txt"
grep -q "term_codec/test-etf" "$TMP/tests.txt" || fail "unit tests not registered"
if grep -E "dist-int-|epmd-int-|term_roundtrip|exit-rules-erlang|integration/install" "$TMP/tests.txt"
then
    fail "tests that need Erlang were registered"
fi
log "configured: Erlang tests not registered"

targets="girder_term girder_term_shared girder_node girder_node_shared girder_epmd
girder_epmd_shared girder_dist girder_dist_shared girder girderd girder-epmd"
# shellcheck disable=SC2086
cmake --build "$TMP/build" -j2 --target $targets >"$TMP/build.log" 2>&1 ||
    { tail -n 40 "$TMP/build.log"; fail "build without Erlang"; }
for f in bin/girder bin/girderd bin/girder-epmd lib/libgirder_dist.so lib/libgirder_term.a; do
    [ -e "$TMP/build/$f" ] || fail "not built: $f"
done
"$TMP/build/bin/girder-epmd" -h 2>&1 | grep -q "usage: girder-epmd" || fail "girder-epmd does not run"
log PASS
