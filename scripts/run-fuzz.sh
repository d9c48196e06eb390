#!/bin/sh
# Runs libFuzzer targets from BUILD/bin/fuzz-* for SECONDS each, seeded from fuzz/seeds/<target>.
set -eu
build=$1; secs=$2; shift 2
targets="$*"
[ -n "$targets" ] || targets=$(cd "$build/bin" && ls fuzz-* | sed 's/^fuzz-//')
for t in $targets; do
  corpus=fuzz/corpus-$t
  mkdir -p "$corpus"
  seeds=fuzz/seeds/$t
  echo "== fuzz-$t for ${secs}s (corpus $corpus, seeds $seeds)" >&2
  "$build/bin/fuzz-$t" -max_total_time="$secs" -print_final_stats=1 \
    -rss_limit_mb=2048 -timeout=10 "$corpus" "$seeds"
done
