#!/bin/sh
# The long reliability runs (`make soak`): the dist soak (honest traffic, churn and hostile peers
# against one girderd, memory/descriptors/threads sampled) for SOAK_SECONDS, then the reconnect
# race for RECONNECT_CYCLES. The same scripts run briefly inside `make test`.
# Usage: run-soak.sh BUILD [OUTDIR]   (OUTDIR keeps the samples and summaries)
set -eu
build=$(cd "${1:-build}" && pwd)
out=${2:-$build/soak}
mkdir -p "$out"
out=$(cd "$out" && pwd)
here=$(cd "$(dirname "$0")/.." && pwd)
for b in girderd girder-epmd dist-probe; do
  [ -x "$build/bin/$b" ] || { echo "run-soak: $build/bin/$b is not built" >&2; exit 1; }
done
ERL=$(command -v erl) || { echo "run-soak: erl not found (Erlang/OTP is needed)" >&2; exit 1; }
ERLC=$(command -v erlc) || { echo "run-soak: erlc not found" >&2; exit 1; }
export GIRDERD="$build/bin/girderd" GIRDER_EPMD="$build/bin/girder-epmd" \
       DIST_PROBE="$build/bin/dist-probe" ERL ERLC
export SOAK_SECONDS="${SOAK_SECONDS:-1800}" RECONNECT_CYCLES="${RECONNECT_CYCLES:-10000}"
export SOAK_KEEP="$out"
echo "soak: $SOAK_SECONDS s of mixed traffic, then $RECONNECT_CYCLES reconnect cycles; samples in $out" >&2
# (no pipe into tee: its status would hide the test's)
st=0
sh "$here/tests/integration/dist/soak.sh" >"$out/soak.log" 2>&1 || st=1
cat "$out/soak.log"
sh "$here/tests/integration/dist/reconnect.sh" >"$out/reconnect.log" 2>&1 || st=1
cat "$out/reconnect.log"
if [ "$st" = 0 ]; then
  echo "soak: passed; $(tail -1 "$out/soak.summary")"
else
  echo "soak: FAILED (see $out/soak.log and $out/reconnect.log)" >&2
fi
exit "$st"
