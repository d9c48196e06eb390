#!/bin/sh
# Runs every benchmark program in BUILD/bin/bench-* (BENCH lines on stdout, details on stderr),
# then prints a summary table: benchmark, girder, erlang, ratio, target, met?
set -eu
build=${1:-build}
found=0
lines=$(mktemp /tmp/run-bench-XXXXXX)
trap 'rm -f "$lines" "$lines.one"' EXIT
echo "run-bench: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores," \
  "Linux $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for b in "$build"/bin/bench-*; do
  [ -x "$b" ] || continue
  found=1
  echo "== $(basename "$b") (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  "$b" >"$lines.one" || echo "run-bench: $(basename "$b") exited with an error" >&2
  cat "$lines.one"
  cat "$lines.one" >>"$lines"
done
[ "$found" = 1 ] || { echo "run-bench: no benchmarks built in $build/bin" >&2; exit 1; }

# Targets of issue 15 (ratio = how many times better Girder is); the others have none.
echo
echo "== summary (load $(cut -d' ' -f1-3 /proc/loadavg))"
awk '
BEGIN {
  t["ring"] = 3; t["spawn_exit"] = 3; t["call_latency"] = 2.5; t["etf_codec"] = 2.5
  t["dist_tcp_throughput"] = 3; t["dist_roundtrip"] = 1.5; t["dist_nodedown_latency"] = 2
  t["idle_process_memory"] = 4; t["idle_process_memory_plain"] = 1
  printf "%-28s %14s %14s %-10s %7s %7s %s\n", "benchmark", "girder", "erlang", "unit", "ratio", "target", "met?"
}
$1 == "BENCH" {
  name = $2; g = ""; e = ""; u = ""; r = ""
  for (i = 3; i <= NF; i++) {
    split($i, kv, "=")
    if (kv[1] == "girder") g = kv[2]
    else if (kv[1] == "erlang") e = kv[2]
    else if (kv[1] == "unit") u = kv[2]
    else if (kv[1] == "ratio") r = kv[2]
  }
  target = (name in t) ? t[name] : ""
  if (target == "") met = "-"
  else if (r == "none" || r == "") met = "no (no ratio)"
  else met = (r + 0 >= target) ? "yes" : "no"
  printf "%-28s %14s %14s %-10s %7s %7s %s\n", name, g, e, u, r, (target == "" ? "-" : ">= " target), met
}' "$lines"
