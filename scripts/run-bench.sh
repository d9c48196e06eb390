#!/bin/sh
# Runs every benchmark program in BUILD/bin/bench-* and prints their BENCH lines.
set -eu
build=${1:-build}
found=0
for b in "$build"/bin/bench-*; do
  [ -x "$b" ] || continue
  found=1
  echo "== $(basename "$b")" >&2
  "$b"
done
[ "$found" = 1 ] || { echo "run-bench: no benchmarks built in $build/bin" >&2; exit 1; }
