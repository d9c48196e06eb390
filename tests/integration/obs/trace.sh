#!/bin/sh
# girder trace: a scripted workload (obswork:ring) recorded through the control socket gives the
# expected events in Perfetto JSON; the HTML page loads in headless Chromium without errors or
# network and draws the lanes and arrows; a pid filter; Erlang nodes refused with a reason.
. "$(dirname "$0")/../cli/lib.sh"
: "${OBSWORK:?}"

start_epmd
"$GIRDERD" --sname "g1$SUF" --cookie "$COOKIE" --schedulers 2 --module "$OBSWORK" >>"$TMP/g1.log" 2>&1 &
GPID=$!
PIDS="$PIDS $GPID"
GPIDS="$GPIDS $GPID"
wait_for 10 registered "g1$SUF" || fail "girderd g1 did not register"
# girder trace finds the node by its control socket, which exists once it is ready (it
# registers with epmd before: under TSan trace came first three times in four)
wait_for 10 grep -q event=ready "$TMP/g1.log" || fail "girderd g1 not ready"
G1=$(node g1)

N=10
LAPS=5
"$GIRDER" trace "$G1" --duration 3 --out "$TMP/t.json" --html "$TMP/t.html" >"$TMP/trace.out" 2>"$TMP/trace.err" &
TP=$!
sleep 1
expect 0 rpc "$G1" obswork ring "[$N, $LAPS]" --cookie "$COOKIE"
out_has "^ok$"
wait "$TP" || { st=$?; cat "$TMP/trace.err"; fail "girder trace exited $st"; }
grep -Eq "^$G1: [0-9]+ events over [0-9.]+ s on 2 schedulers" "$TMP/trace.out" || { cat "$TMP/trace.out"; fail "trace summary"; }
ok

# the exact events of the workload, found by its caller P: the one process with N spawns
"$PY" - "$TMP/t.json" "$N" "$LAPS" <<'PYEOF' || fail "the trace does not hold the workload's events"
import json, sys, collections
d = json.load(open(sys.argv[1]))
n, laps = int(sys.argv[2]), int(sys.argv[3])
ev = d["traceEvents"]
od = d["otherData"]
assert od["dropped_full"] == 0 and od["dropped_rate"] == 0 and not od["truncated"], od
names = {e["tid"]: e["args"]["name"] for e in ev if e["ph"] == "M" and e["name"] == "thread_name"}
assert names.get(1) == "scheduler 1" and names.get(2) == "scheduler 2", names
inst = [e for e in ev if e["ph"] == "i"]
spawns = collections.Counter(e["args"]["pid"] for e in inst if e["name"] == "spawn")
parents = [p for p, k in spawns.items() if k == n]
assert len(parents) == 1, spawns
P = parents[0]
C = {e["args"]["peer"] for e in inst if e["name"] == "spawn" and e["args"]["pid"] == P}
assert len(C) == n, C
exits = [e for e in inst if e["name"] == "exit" and e["args"]["pid"] in C]
assert len(exits) == n and all(e["args"].get("reason") == "normal" for e in exits), exits
downs = [e for e in inst if e["name"] == "down" and e["args"]["pid"] in C and e["args"]["peer"] == P]
assert len(downs) == n, len(downs)
s = {e["id"]: e for e in ev if e["ph"] == "s"}
f = {e["id"]: e for e in ev if e["ph"] == "f"}
assert set(s) == set(f), "unpaired flow events"
for i in s:
    assert f[i]["ts"] >= s[i]["ts"], ("a receive before its send", s[i], f[i])
msg = [s[i]["args"] for i in s if s[i]["name"] == "message"]
to_ring = sum(1 for a in msg if a["to"] in C and a["from"] in C | {P})
ring_to_p = sum(1 for a in msg if a["from"] in C and a["to"] == P)
down_arrows = sum(1 for i in s if s[i]["name"] == "DOWN" and s[i]["args"]["from"] in C and s[i]["args"]["to"] == P)
assert to_ring == n + n * laps, ("messages into the ring", to_ring)
assert ring_to_p == 1, ("done", ring_to_p)
assert down_arrows == n, ("DOWN arrows", down_arrows)
# every spawn of a child precedes the child's first run, every exit follows its last
runs = collections.defaultdict(list)
for e in ev:
    if e["ph"] == "X":
        runs[e["args"]["pid"]].append((e["ts"], e["ts"] + e["dur"]))
        assert e["tid"] in (1, 2), e
for e in inst:
    if e["name"] == "spawn" and e["args"]["pid"] == P:
        c = e["args"]["peer"]
        assert runs[c] and min(r[0] for r in runs[c]) >= e["ts"], ("ran before its spawn", c)
for e in exits:
    c = e["args"]["pid"]
    assert e["ts"] >= min(r[0] for r in runs[c]), ("exit before it ran", c)
print("workload: %d spawns, %d exits, %d DOWNs, %d messages into the ring, causal order" % (n, n, n, to_ring))
PYEOF
ok

# --name: only that process's events (and those of the processes it talks to). Three sends
# spread over the capture: under ThreadSanitizer a girder command takes up to a second to start,
# and one send a second after its own rpc once fell outside a 2 s capture (no run recorded).
ECHO=$("$GIRDER" rpc "$G1" erlang whereis '[echo]' --cookie "$COOKIE")
"$GIRDER" trace "$G1" --duration 3 --name echo --out "$TMP/e.json" >"$TMP/trace.out" 2>"$TMP/trace.err" &
TP=$!
for i in 1 2 3; do
    sleep 0.5
    expect 0 send "$G1" echo "{$ECHO, hello}" --cookie "$COOKIE"
done
wait "$TP" || { st=$?; cat "$TMP/trace.err"; fail "girder trace --name exited $st"; }
"$PY" - "$TMP/e.json" <<'PYEOF' || fail "--name echo recorded other processes' runs"
import json, sys
ev = json.load(open(sys.argv[1]))["traceEvents"]
x = [e for e in ev if e["ph"] == "X"]
assert x and all(e["name"].startswith("echo <") for e in x), [e["name"] for e in x][:5]
PYEOF
ok

# refusals
expect 2 trace "$G1" --duration 1
err_has "--out FILE.json is required"
expect 2 trace "$G1" --duration 1 --out "$TMP/x.json" --pid '<0.1.1>' --name echo
# an Erlang node: through erlang:trace by a tracer spawned there. The workload, from another
# erl node: a process P on e1 spawns 5 children, sends each {tok, P} and waits for its {ack, C}.
if command -v "$ERL" >/dev/null 2>&1; then
    start_erl e1
    E1=$(node e1)
    "$GIRDER" trace "$E1" --duration 3 --out "$TMP/erl.json" --html "$TMP/erl.html" --cookie "$COOKIE" \
        >"$TMP/trace.out" 2>"$TMP/trace.err" &
    TP=$!
    sleep 1.2
    timeout 30 "$ERL" -sname "drv$SUF" -setcookie "$COOKIE" -noshell -eval "
        Me = self(),
        spawn('$E1', fun() ->
            Ps = [spawn(fun() -> receive {tok, F} -> F ! {ack, self()} end end) || _ <- lists:seq(1, 5)],
            [begin C ! {tok, self()}, receive {ack, C} -> ok end end || C <- Ps],
            Me ! done end),
        receive done -> ok after 10000 -> halt(1) end, init:stop()." >>"$TMP/drv.log" 2>&1 || fail "the Erlang workload did not run"
    wait "$TP" || { st=$?; cat "$TMP/trace.err"; fail "girder trace of an Erlang node exited $st"; }
    grep -Eq "^$E1: [0-9]+ events over" "$TMP/trace.out" || { cat "$TMP/trace.out"; fail "trace summary (erl)"; }
    "$PY" - "$TMP/erl.json" <<'PYEOF' || fail "the Erlang trace does not hold the workload"
import json, sys, collections
d = json.load(open(sys.argv[1]))
ev = d["traceEvents"]
inst = [e for e in ev if e["ph"] == "i"]
sp = collections.Counter(e["args"]["pid"] for e in inst if e["name"] == "spawn")
P = [p for p, k in sp.items() if k == 5]
assert len(P) == 1, sp
P = P[0]
C = {e["args"]["peer"] for e in inst if e["name"] == "spawn" and e["args"]["pid"] == P}
s = {e["id"]: e for e in ev if e["ph"] == "s"}
f = {e["id"]: e for e in ev if e["ph"] == "f"}
assert set(s) == set(f)
to_c = [i for i in s if s[i]["args"]["from"] == P and s[i]["args"]["to"] in C]
to_p = [i for i in s if s[i]["args"]["from"] in C and s[i]["args"]["to"] == P]
assert len(to_c) == 5 and len(to_p) == 5, (len(to_c), len(to_p))
assert all(f[i]["ts"] >= s[i]["ts"] for i in s)
exits = [e for e in inst if e["name"] == "exit" and e["args"]["pid"] in C]
assert len(exits) == 5 and all(e["args"]["reason"] == "normal" for e in exits), exits
x = [e for e in ev if e["ph"] == "X"]
assert x and any(e["args"]["pid"] in C for e in x)
assert any(e["ph"] == "M" and e["name"] == "thread_name" and e["args"]["name"] == "scheduler 1" for e in ev)
print("erlang: 5 spawns, 5 messages each way, 5 exits")
PYEOF
    ok
    # the tracer is gone and tracing is off on the node
    sleep 0.5
    expect 0 rpc "$E1" erlang trace_info '[new, flags]' --cookie "$COOKIE"
    out_has "^\{flags,\[\]\}$"
fi

# the page in a real headless browser
if [ -z "${CHROMIUM:-}" ] || ! [ -x "$CHROMIUM" ]; then
    echo "SKIP: the HTML page is not checked: chromium is not installed (apt-get install chromium; scripts/install-deps.sh installs it)"
    exit 0
fi
if grep -Eq "https?://|src=|<link" "$TMP/t.html"; then fail "the page refers to something outside itself"; fi
ok
# Chromium itself phones home (updates, time, accounts) whatever the page does: its own requests
# are sent to a dead loopback proxy and resolve no name, so nothing leaves the machine, and the
# net log tells them ("initiator": "not an origin") from the page's ("null" for a file page).
timeout 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 \
    --disable-background-networking --disable-component-update --disable-sync --no-first-run \
    --proxy-server=http://127.0.0.1:9 "--host-resolver-rules=MAP * ~NOTFOUND" \
    --user-data-dir="$TMP/chrome" --log-net-log="$TMP/net.json" --window-size=1400,900 \
    --dump-dom "file://$TMP/t.html" >"$TMP/dom.html" 2>"$TMP/chrome.err" || fail "chromium failed"
grep -o '<div id="verdict"[^>]*>[^<]*' "$TMP/dom.html" >"$TMP/verdict" || { tail -20 "$TMP/chrome.err"; fail "the page wrote no verdict"; }
cat "$TMP/verdict"
"$PY" - "$TMP/verdict" <<'PYEOF' || fail "the page's verdict"
import re, sys
v = open(sys.argv[1]).read()
a = dict(re.findall(r'data-([a-z]+)="([0-9]+)"', v))
assert int(a["schedulers"]) == 2 and int(a["lanes"]) >= 2, a
assert int(a["arrows"]) >= 1 and int(a["slices"]) >= 1 and int(a["errors"]) == 0, a
PYEOF
ok
if grep -a "CONSOLE" "$TMP/chrome.err"; then fail "the page wrote to the console (an error?)"; fi
ok
# the net log: the page asked for nothing but itself
"$PY" - "$TMP/net.json" <<'PYEOF' || fail "the page made network requests"
import json, sys
d = json.load(open(sys.argv[1]))
bad = [p["url"] for p in (e.get("params", {}) for e in d["events"])
       if "url" in p and "initiator" in p and p["initiator"] != "not an origin"
       and not p["url"].startswith("file://")]
assert not bad, bad
PYEOF
ok
# the Erlang node's page too
if [ -f "$TMP/erl.html" ]; then
    timeout 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --enable-logging=stderr --v=0 \
        --disable-background-networking --disable-component-update --disable-sync --no-first-run \
        --proxy-server=http://127.0.0.1:9 "--host-resolver-rules=MAP * ~NOTFOUND" \
        --user-data-dir="$TMP/chrome2" --dump-dom "file://$TMP/erl.html" >"$TMP/dom2.html" 2>"$TMP/chrome2.err" || fail "chromium failed (erl page)"
    grep -Eq '<div id="verdict" data-lanes="[1-9][0-9]*" data-schedulers="[0-9]+" data-arrows="[1-9][0-9]*" data-slices="[1-9][0-9]*" data-errors="0"' "$TMP/dom2.html" || fail "the Erlang trace's page verdict"
    if grep -a "CONSOLE" "$TMP/chrome2.err"; then fail "the Erlang trace's page wrote to the console"; fi
    ok
fi
echo "trace: all checks passed"
