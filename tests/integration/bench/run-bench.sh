#!/bin/sh
# scripts/run-bench.sh's summary: ratio against target, met?, and each benchmark's spread read
# from its stderr, with fake benchmark programs whose lines are known.
set -eu
SRC=$(cd "$(dirname "$0")/../../.." && pwd)
TMP=$(mktemp -d /tmp/girder-runbench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; cat "$TMP/out" >&2 2>/dev/null || true; exit 1; }
mkdir -p "$TMP/bin"
# etf_codec: a noisy run below target (wall spreads 86.1 % and 48.2 %; the on-CPU lines,
# which must not count, say 99 %); ring: met, spreads 12 % and 7.5 %
cat > "$TMP/bin/bench-a" <<'B'
#!/bin/sh
echo "etf_codec (wall) girder: 1 2 3 items/s; median 5.96e+06, min 4.849e+06, max 9.979e+06, spread 86.1% of the median" >&2
echo "etf_codec (wall) ei: 1 2 3 items/s; median 3.542e+06, min 2.284e+06, max 3.991e+06, spread 48.2% of the median" >&2
echo "etf_codec (cpu) girder: 1 2 3 items/s; median 5.96e+06, min 1, max 9, spread 99.0% of the median" >&2
echo "BENCH etf_codec girder=5959860.820 erlang=3542415.055 unit=items/s ratio=1.68"
B
cat > "$TMP/bin/bench-b" <<'B'
#!/bin/sh
echo "ring girder: 1 2 3 msgs/s; median 1.4e+07, min 1.3e+07, max 1.47e+07, spread 12.0% of the median" >&2
echo "ring erlang: 1 2 3 msgs/s; median 2.3e+06, min 2.2e+06, max 2.37e+06, spread 7.5% of the median" >&2
echo "BENCH ring girder=14320931.297 erlang=2354397.867 unit=msgs/s ratio=6.08"
B
# no spread lines, and a failed exit: the row says "-" and the failure is reported
cat > "$TMP/bin/bench-c" <<'B'
#!/bin/sh
echo "BENCH mailbox_message_memory girder=80.000 erlang=111.998 unit=bytes ratio=1.40"
exit 3
B
# the host's costs, measured before and after the benchmarks, head the summary
cat > "$TMP/bin/host-costs" <<'B'
#!/bin/sh
echo "host-costs: machine: fake" >&2
echo "HOST syscall_ns=1018 page_fault_ns=9904 wake_procs_us=24.7 wake_threads_us=25.1"
B
chmod +x "$TMP/bin/bench-a" "$TMP/bin/bench-b" "$TMP/bin/bench-c" "$TMP/bin/host-costs"
sh "$SRC/scripts/run-bench.sh" "$TMP" > "$TMP/out" 2> "$TMP/err" || fail "run-bench.sh exited $?"
grep -q '^benchmark .* met? spread$' "$TMP/out" || fail "header"
grep -Eq '^etf_codec +5959860.820 +3542415.055 items/s +1.68 +>= 2.5 no +86.1%$' "$TMP/out" ||
  fail "etf_codec row"
grep -Eq '^ring +14320931.297 +2354397.867 msgs/s +6.08 +>= 3 yes +12.0%$' "$TMP/out" || fail "ring row"
grep -Eq '^mailbox_message_memory .* 1.40 +- +- +-$' "$TMP/out" || fail "row without spreads"
grep -q '^host costs at the start: syscall_ns=1018 page_fault_ns=9904 wake_procs_us=24.7 wake_threads_us=25.1$' "$TMP/out" ||
  fail "host costs at the start"
grep -q '^host costs at the end:   syscall_ns=1018 page_fault_ns=9904' "$TMP/out" || fail "host costs at the end"
grep -q 'host costs at the start: syscall_ns=1018' "$TMP/err" || fail "host costs on stderr"
grep -q 'bench-c exited with an error' "$TMP/err" || { cat "$TMP/err" >&2; fail "the failed exit"; }
grep -q 'spread 86.1% of the median' "$TMP/err" || fail "benchmarks' stderr passed on"
echo "ok"
