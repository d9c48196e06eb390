#!/bin/sh
# Makes docs/img/trace-timeline.png and docs/img/top.png from a real run (not a test): a girderd
# with the obswork module, girder trace around obswork:ring, girder top --once, both pictures
# taken by headless Chromium. Usage: screenshots.sh BUILD_DIR OUT_DIR
set -eu
B=$(cd "$1" && pwd)
OUT=$(cd "$2" && pwd)
export GIRDER="$B/bin/girder" GIRDERD="$B/bin/girderd" GIRDER_EPMD="$B/bin/girder-epmd"
. "$(dirname "$0")/../cli/lib.sh"
CH=$(command -v chromium || command -v chromium-browser) || fail "chromium is needed"
shot() { # shot URL OUT.png WIDTH HEIGHT
    timeout 90 "$CH" --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --disable-background-networking --disable-component-update --disable-sync --no-first-run \
        --proxy-server=http://127.0.0.1:9 "--host-resolver-rules=MAP * ~NOTFOUND" \
        --user-data-dir="$TMP/chrome" --window-size="$3,$4" --screenshot="$2" "$1" 2>/dev/null
}
start_epmd
"$GIRDERD" --sname "g1$SUF" --cookie "$COOKIE" --schedulers 2 --module "$B/tests/modules/obswork.so" >>"$TMP/g1.log" 2>&1 &
GPID=$!
PIDS="$PIDS $GPID"
GPIDS="$GPIDS $GPID"
wait_for 10 registered "g1$SUF" || fail "girderd did not start"
# its control socket, which girder trace uses, exists once it is ready
wait_for 10 grep -q event=ready "$TMP/g1.log" || fail "girderd not ready"
G1=$(node g1)
"$GIRDER" trace "$G1" --duration 2 --out "$TMP/t.json" --html "$TMP/t.html" &
TP=$!
sleep 0.8
"$GIRDER" rpc "$G1" obswork ring '[6, 30]' --cookie "$COOKIE"
wait "$TP"
# open the page on the workload: from the first spawn of the ring to its last DOWN
VIEW=$(/usr/bin/python3 - "$TMP/t.json" <<'PYEOF'
import json, sys, collections
ev = json.load(open(sys.argv[1]))["traceEvents"]
inst = [e for e in ev if e["ph"] == "i"]
sp = collections.Counter(e["args"]["pid"] for e in inst if e["name"] == "spawn")
p = [k for k, v in sp.items() if v == 6][0]
ts = [e["ts"] for e in inst if (e["name"] == "spawn" and e["args"]["pid"] == p) or
      (e["name"] == "down" and e["args"]["peer"] == p)]
a, b = min(ts), max(ts)
pad = (b - a) * 0.08
print("%d-%d" % (max(0, (a - pad) * 1000), (b + pad) * 1000))
PYEOF
)
shot "file://$TMP/t.html#view=$VIEW" "$OUT/trace-timeline.png" 1400 560
# girder top --once as a terminal would show it
( for i in 1 2 3 4; do "$GIRDER" rpc "$G1" obswork ring '[300, 3000]' --cookie "$COOKIE"; done ) >"$TMP/ring.out" 2>&1 &
RP=$!
sleep 0.6
"$GIRDER" top "$G1" --once --interval 500 --limit 12 >"$TMP/top.txt"
wait "$RP" || true
/usr/bin/python3 - "$TMP/top.txt" "$TMP/top.html" <<'PYEOF'
import html, sys
t = open(sys.argv[1]).read()
open(sys.argv[2], "w").write('<!DOCTYPE html><meta charset="utf-8"><body style="margin:0;background:#101216">'
  '<pre style="margin:0;padding:14px;color:#d8dbe2;font:13px/1.3 DejaVu Sans Mono,monospace">'
  + html.escape(t) + '</pre>')
PYEOF
shot "file://$TMP/top.html" "$OUT/top.png" 1000 470
echo "wrote $OUT/trace-timeline.png $OUT/top.png"
