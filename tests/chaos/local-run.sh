#!/bin/sh
# A short local chaos run (girder chaos run --backend local) held to its verdict.
# usage: local-run.sh GIRDER OUTDIR clean ARGS...      exit 0 with 0 violations
#        local-run.sh GIRDER OUTDIR sabotage ARGS...   the run must complete, find the DOWNs
#                                                      girderd dropped (--sabotage) as
#                                                      exactly-once violations, exit 1
# The run cleans up its own processes and namespaces; this script checks that it did.
set -u
girder=$1 out=$2 mode=$3
shift 3
rm -rf "$out"
mkdir -p "$(dirname "$out")" || exit 1
ns_before=$(ip netns list 2>/dev/null | grep -c '^gc' || true)
"$girder" chaos run --out "$out" "$@" >"$out.stdout" 2>&1 &
pid=$!
wait $pid
rc=$?
cat "$out.stdout"
fail=0
if grep -q "the run itself failed" "$out.stdout"; then
    echo "FAIL: the run itself failed (see $out/logs)"
    fail=1
fi
report=$out/report.json
[ -s "$report" ] || { echo "FAIL: no $report"; exit 1; }
once=$(sed -n 's/^ *"exactly-once": {"checked": [0-9]*, "violations": \([0-9]*\).*/\1/p' "$report")
case $mode in
clean)
    [ "$rc" -eq 0 ] || { echo "FAIL: exit status $rc, expected 0 (violations above)"; fail=1; }
    ;;
sabotage)
    [ "$rc" -eq 1 ] || { echo "FAIL: exit status $rc, expected 1"; fail=1; }
    [ "${once:-0}" -ge 1 ] || { echo "FAIL: no exactly-once violation reported"; fail=1; }
    grep -q '"message": "[^"]*DOWN missing' "$report" ||
        { echo "FAIL: no missing DOWN among the violations"; fail=1; }
    grep -qh 'sabotage_dropped_down' "$out"/logs/g*.log ||
        { echo "FAIL: no girderd log says it dropped a DOWN"; fail=1; }
    ;;
*)
    echo "usage: local-run.sh GIRDER OUTDIR clean|sabotage ARGS..."
    exit 2
    ;;
esac
ns_after=$(ip netns list 2>/dev/null | grep -c '^gc' || true)
[ "$ns_after" -le "$ns_before" ] || { echo "FAIL: network namespaces left behind"; fail=1; }
exit $fail
