#!/bin/sh
# Runs every benchmark program in BUILD/bin/bench-* (BENCH lines on stdout, details on stderr),
# then prints a summary table: benchmark, girder, erlang, ratio, target, met?
set -eu
build=${1:-build}
found=0
lines=$(mktemp /tmp/run-bench-XXXXXX)
trap 'rm -f "$lines" "$lines.one" "$lines.err"' EXIT
echo "run-bench: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(nproc) cores," \
  "Linux $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# What this host charges for a system call, a page fault and a wake-up (bench/host-costs.c),
# before and after: two machines of one kind can differ tenfold in these, and every figure
# below is made of them.
host() {
  [ -x "$build/bin/host-costs" ] || { echo "(host-costs not built)"; return; }
  "$build/bin/host-costs" 2>/dev/null | sed -n 's/^HOST //p' | grep . || echo "(host-costs failed)"
}
host_start=$(host)
echo "run-bench: host costs at the start: $host_start" >&2
for b in "$build"/bin/bench-*; do
  [ -x "$b" ] || continue
  found=1
  echo "== $(basename "$b") (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  # stderr still goes to stderr; a copy keeps each side's spread for the summary
  { "$b" 2>&1 >"$lines.one" || echo "run-bench: $(basename "$b") exited with an error"; } |
    tee -a "$lines.err" >&2
  cat "$lines.one"
  cat "$lines.one" >>"$lines"
done
[ "$found" = 1 ] || { echo "run-bench: no benchmarks built in $build/bin" >&2; exit 1; }
host_end=$(host)

# Targets of issue 15 (ratio = how many times better Girder is); the others have none. The
# spread column is the larger of the two sides' (max - min) / median over the rounds: a run
# whose rounds spread far (the host's load changed under it) says little about the code.
echo
echo "== summary (load $(cut -d' ' -f1-3 /proc/loadavg))"
echo "host costs at the start: $host_start"
echo "host costs at the end:   $host_end"
awk '
BEGIN {
  t["ring"] = 3; t["spawn_exit"] = 3; t["call_latency"] = 2.5; t["etf_codec"] = 2.5
  t["dist_tcp_throughput"] = 3; t["dist_roundtrip"] = 1.5; t["dist_nodedown_latency"] = 2
  t["idle_process_memory"] = 4; t["idle_process_memory_plain"] = 1
  printf "%-28s %14s %14s %-10s %7s %7s %-4s %s\n", "benchmark", "girder", "erlang", "unit", "ratio", "target", "met?", "spread"
}
# "NAME SIDE: rounds...; median M, min A, max B, spread S% of the median" from the stderr copy
# (for etf_codec, the wall-clock lines): the larger spread of the two sides, per name
FILENAME == ARGV[1] {
  if ($0 !~ /spread [0-9.]+% of the median$/) next
  n = $1; if ($2 == "(cpu)") next
  s = $0; sub(/.*spread /, "", s); sub(/%.*/, "", s)
  if (!(n in sp) || s + 0 > sp[n] + 0) sp[n] = s
  next
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
  printf "%-28s %14s %14s %-10s %7s %7s %-4s %s\n", name, g, e, u, r, (target == "" ? "-" : ">= " target), met,
    (name in sp) ? sp[name] "%" : "-"
}' "$lines.err" "$lines"
