#!/bin/sh
# The hygiene rule "a benchmark whose Erlang side fails prints no ratio": each libnode benchmark
# given (paths), run with ND_BENCH_NO_ERLANG=1 and one round, prints BENCH lines whose Girder
# figure is a number and whose Erlang figure is "failed", with ratio=none.
set -u
[ $# -gt 0 ] || { echo "FAIL: no benchmark programs given" >&2; exit 1; }
out=$(mktemp /tmp/girder-benchnoerl.XXXXXX)
trap 'rm -f "$out"' EXIT
failed=0
for p in "$@"; do
  name=$(basename "$p")
  ND_BENCH_NO_ERLANG=1 BENCH_ROUNDS=1 timeout -k 1 60 "$p" > "$out" 2>/dev/null
  rc=$?
  [ "$rc" = 0 ] || { echo "FAIL: $name exited with $rc" >&2; failed=$((failed + 1)); continue; }
  n=$(grep -c '^BENCH ' "$out")
  [ "$n" -gt 0 ] || { echo "FAIL: $name printed no BENCH line" >&2; failed=$((failed + 1)); continue; }
  bad=$(grep '^BENCH ' "$out" | grep -Ev ' girder=[0-9][0-9.]* erlang=failed unit=[^ ]+ ratio=none$')
  if [ -n "$bad" ]; then
    echo "FAIL: $name: $bad" >&2
    failed=$((failed + 1))
  else
    echo "ok: $name ($n BENCH line(s) without a ratio)"
  fi
done
[ "$failed" = 0 ] || { echo "$failed failure(s)" >&2; exit 1; }
