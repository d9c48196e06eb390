#!/bin/sh
# Runs `girder chaos check` on one fabricated history and holds it to what the history was made
# to show: EXPECT is the one invariant that must report violations (every other must report
# none, exit status 1), or "none" (exit status 0, and each invariant named in MUST_CHECK must
# have been checked at least once, so a pass cannot come from checking nothing).
# usage: check-history.sh GIRDER HISTORY EXPECT [MUST_CHECK...]
set -u
girder=$1 hist=$2 expect=$3
shift 3
must_check="$*"
out=$(mktemp -d "${TMPDIR:-/tmp}/chaos-check.XXXXXX") || exit 1
trap 'rm -rf "$out"' EXIT INT TERM

"$girder" chaos check "$hist" --out "$out" --quiet >"$out/stdout" 2>"$out/stderr"
rc=$?
cat "$out/stdout" "$out/stderr"
report=$out/report.json
[ -s "$report" ] || { echo "FAIL: no report.json"; exit 1; }

# "NAME": {"checked": C, "violations": V, ...} -> C V
counts() {
    sed -n "s/^ *\"$1\": {\"checked\": \([0-9]*\), \"violations\": \([0-9]*\).*/\1 \2/p" "$report"
}
invariants=$(sed -n 's/^ *"\([a-z-]*\)": {"checked": [0-9]*, "violations".*/\1/p' "$report")
[ -n "$invariants" ] || { echo "FAIL: report.json lists no invariants"; exit 1; }

fail=0
if [ "$expect" = none ]; then
    [ "$rc" -eq 0 ] || { echo "FAIL: exit status $rc, expected 0"; fail=1; }
else
    [ "$rc" -eq 1 ] || { echo "FAIL: exit status $rc, expected 1"; fail=1; }
    echo "$invariants" | grep -qx -- "$expect" || { echo "FAIL: no invariant $expect"; fail=1; }
fi
for inv in $invariants; do
    c=$(counts "$inv")
    checked=${c% *} violations=${c#* }
    if [ "$inv" = "$expect" ]; then
        [ "$violations" -ge 1 ] || { echo "FAIL: $inv reports no violation"; fail=1; }
        grep -q "\"invariant\": \"$inv\", \"message\"" "$report" ||
            { echo "FAIL: no violation of $inv in report.json"; fail=1; }
    else
        [ "$violations" -eq 0 ] || { echo "FAIL: $inv: $violations violations, expected 0"; fail=1; }
    fi
    for m in $must_check; do
        [ "$m" = "$inv" ] && [ "$checked" -eq 0 ] && { echo "FAIL: $inv was never checked"; fail=1; }
    done
done
for m in $must_check; do
    echo "$invariants" | grep -qx -- "$m" || { echo "FAIL: no invariant $m"; fail=1; }
done
# a violation is shown with its witness: the history lines that make it
if [ "$expect" != none ]; then
    grep -A1 '"witness": \[' "$report" | grep -q '^ *{"t":' ||
        { echo "FAIL: a violation without witness lines"; fail=1; }
fi
exit $fail
