#!/bin/sh
# host-costs (bench/host-costs.c): --help, a usage error, and one real measurement whose line
# carries the four figures, each a positive number.
set -eu
prog=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
"$prog" --help | grep -q '^usage: host-costs' || fail "--help"
"$prog" -h | grep -q '^usage: host-costs' || fail "-h"
if "$prog" --bogus 2>/tmp/host-costs-err.$$; then fail "--bogus accepted"; fi
grep -q "unknown option '--bogus'" /tmp/host-costs-err.$$ || fail "--bogus message"
rm -f /tmp/host-costs-err.$$
line=$("$prog" 2>/dev/null)
echo "$line"
echo "$line" | grep -Eq '^HOST syscall_ns=[0-9]+ page_fault_ns=[0-9]+ wake_procs_us=[0-9.]+ wake_threads_us=[0-9.]+$' ||
  fail "the HOST line: $line"
for v in $(echo "$line" | sed 's/^HOST //; s/[a-z_]*=//g'); do
  awk -v v="$v" 'BEGIN { exit !(v > 0) }' || fail "a figure is not above 0: $line"
done
echo ok
