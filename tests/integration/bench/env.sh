#!/bin/sh
# The benchmarks refuse a malformed count in their environment (BENCH_SCALE_NS, BENCH_SCALE_ROUNDS,
# BENCH_IDLE_PLAIN, BENCH_DIST_MSGS, BENCH_DIST_RT, BENCH_SCALE_SIZE) at once, before they start
# anything: exit status 2, one line on stderr naming the variable, no erl, nothing on stdout.
# Before, "abc" read as 0 and "1e6" as 1, and a benchmark ran with it.
# usage: env.sh BINDIR
set -u
BIN=${1:?bindir}
. "$(dirname "$0")/fake-erl.sh"

# refused PROG VAR VALUE
refused() {
  env "$2=$3" timeout -k 1 5 "$BIN/$1" > "$TMP/out" 2> "$TMP/err"
  rc=$?
  [ "$rc" = 2 ] || fail "$1 $2=$3: exit status $rc, not 2"
  [ -s "$TMP/out" ] && fail "$1 $2=$3: stdout not empty: $(head -c 200 "$TMP/out")"
  [ "$(wc -l < "$TMP/err")" = 1 ] && grep -q "^$2=" "$TMP/err" ||
    fail "$1 $2=$3: stderr is not one line naming $2: $(head -c 300 "$TMP/err")"
  no_erl_ran "$1 $2=$3"
}

for v in abc 0 -5 1,,2 10000, 100000000 1,2,3,4,5,6,7,8,9 "1 2"; do
  refused bench-scale-spawn BENCH_SCALE_NS "$v"
  refused bench-scale-monitors BENCH_SCALE_NS "$v"
done
for v in abc 0 65 3x; do
  refused bench-scale-spawn BENCH_SCALE_ROUNDS "$v"
  refused bench-scale-monitors BENCH_SCALE_ROUNDS "$v"
  refused bench-scale-dist BENCH_SCALE_ROUNDS "$v"
done
for v in abc 0 -1 2.5; do refused bench-idle-memory BENCH_IDLE_PLAIN "$v"; done
for v in 1e6 0 x; do
  refused bench-dist-tcp BENCH_DIST_MSGS "$v"
  refused bench-dist-tcp BENCH_DIST_RT "$v"
done
for v in 2048 0 64k; do refused bench-scale-dist BENCH_SCALE_SIZE "$v"; done
[ "$failed" = 0 ] || { echo "FAIL: $failed checks failed" >&2; exit 1; }
echo "ok: malformed counts refused"
