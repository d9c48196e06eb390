#!/bin/sh
# Every benchmark program given (paths) answers --help and -h with its usage and refuses an unknown
# option, at once and before it starts anything: no machine line, no erl, nothing left running.
set -u
[ $# -gt 0 ] || { echo "FAIL: no benchmark programs given" >&2; exit 1; }
. "$(dirname "$0")/fake-erl.sh"
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# run PROG ARG: exit status in $rc, stdout and stderr in $TMP/out and $TMP/err, time in $ms;
# timeout(1) ends a program that started its benchmark instead (status 124; its children die
# with it: bench_child.c)
run() {
  t0=$(now_ms)
  timeout -k 1 5 "$1" "$2" > "$TMP/out" 2> "$TMP/err"
  rc=$?
  ms=$(($(now_ms) - t0))
}

# what every run must show: quick, and neither erl nor erlc run
quick() {
  [ "$ms" -lt 2000 ] || fail "$1 $2: took $ms ms"
  no_erl_ran "$1 $2"
}

for p in "$@"; do
  n=$(basename "$p")
  before=$failed
  [ -x "$p" ] || { fail "$n: no program at $p"; continue; }
  for h in --help -h; do
    run "$p" "$h"
    [ "$rc" = 0 ] || fail "$n $h: exit status $rc, not 0"
    grep -q 'usage' "$TMP/out" || fail "$n $h: no usage on stdout"
    grep -q 'bench/README.md' "$TMP/out" || fail "$n $h: usage does not point to bench/README.md"
    [ -s "$TMP/err" ] && fail "$n $h: stderr not empty: $(head -c 300 "$TMP/err")"
    quick "$n" "$h"
  done
  run "$p" --bogus-option
  [ "$rc" = 2 ] || fail "$n --bogus-option: exit status $rc, not 2"
  [ -s "$TMP/out" ] && fail "$n --bogus-option: stdout not empty: $(head -c 300 "$TMP/out")"
  printf "%s: unknown option '--bogus-option' (see %s --help)\n" "$n" "$n" > "$TMP/want"
  cmp -s "$TMP/want" "$TMP/err" ||
    fail "$n --bogus-option: stderr is not the one line wanted: $(head -c 300 "$TMP/err")"
  quick "$n" --bogus-option
  [ "$failed" = "$before" ] && echo "ok $n"
done
[ "$failed" = 0 ] || { echo "FAIL: $failed checks failed" >&2; exit 1; }
echo "ok: $# programs"
