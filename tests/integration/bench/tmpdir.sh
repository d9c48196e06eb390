#!/bin/sh
# The distribution benchmarks given (paths) remove their /tmp directory when they stop early:
# with an erlc that fails, each exits with an error and leaves no dist-bench-*, dist-nd-bench-*
# or scale-mon-* directory behind.
set -u
[ $# -gt 0 ] || { echo "FAIL: no benchmark programs given" >&2; exit 1; }
. "$(dirname "$0")/fake-erl.sh" # an erlc that fails
count() { ls -d /tmp/dist-bench-* /tmp/dist-nd-bench-* /tmp/scale-mon-* 2>/dev/null | wc -l; }
for p in "$@"; do
  name=$(basename "$p")
  before=$(count)
  timeout -k 1 30 "$p" > /dev/null 2>&1
  rc=$?
  after=$(count)
  if [ "$rc" = 0 ] || [ "$rc" = 124 ]; then
    echo "FAIL: $name exited with $rc, not an error, with a failing erlc" >&2
    failed=$((failed + 1))
  elif [ "$after" != "$before" ]; then
    echo "FAIL: $name left $((after - before)) directory(ies) in /tmp" >&2
    failed=$((failed + 1))
  else
    echo "ok: $name (exit $rc, nothing left in /tmp)"
  fi
done
[ "$failed" = 0 ] || exit 1
