#!/bin/sh
# girder cluster up/status/down: a port mapper, girderd and erl nodes in a full mesh; node
# commands by bare name with the cluster's cookie; up refused on a running cluster; down
# after a node was killed by hand; a failed up cleans up; no process of a cluster left.
. "$(dirname "$0")/lib.sh"
D="$TMP/c1"

# a free port (the kernel's choice), so that `cluster up` starts its own port mapper there
ERL_EPMD_PORT=$("$PY" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
export ERL_EPMD_PORT

# cluster PIDs of a JSON document on stdout (nodes and the port mapper)
cluster_pids() {
    "$PY" -c 'import json,sys
d = json.load(open(sys.argv[1]))
ps = [n["pid"] for n in d["nodes"] if n["pid"]] + ([d["epmd"]["pid"]] if d["epmd"]["pid"] else [])
print(" ".join(str(p) for p in ps))' "$TMP/out"
}
none_alive() { for p in "$@"; do kill -0 "$p" 2>/dev/null && return 1; done; return 0; }

expect 1 cluster status --dir "$D"
err_has 'no cluster in'
err_one_line
expect 1 cluster down --dir "$D"
err_has 'no cluster in'

expect 0 cluster up -n 2 --erlang 1 --dir "$D" --json
json "d['ok'] and [n['node'] for n in d['nodes']] == ['g1@$HOST', 'g2@$HOST', 'e1@$HOST'] and [n['kind'] for n in d['nodes']] == ['girder', 'girder', 'erlang']"
json "d['epmd']['port'] == $ERL_EPMD_PORT and d['epmd']['pid'] > 0 and all(n['pid'] > 0 for n in d['nodes'])"
CPIDS=$(cluster_pids)
for p in $CPIDS; do PIDS="$PIDS $p"; done   # the test's cleanup kills them if anything fails
[ "$(stat -c %a "$D/cookie")" = 400 ] || fail "cookie file mode is $(stat -c %a "$D/cookie")"
ok
for n in g1 g2 e1; do [ -f "$D/$n.log" ] || fail "no log for $n"; done
ok
# each girderd got a control socket in the directory, recorded in the state; erl has none
json "[n['control_socket'] for n in d['nodes']] == ['$D/g1.sock', '$D/g2.sock', None]"
for n in g1 g2; do
    [ -S "$D/$n.sock" ] && [ "$(stat -c %a "$D/$n.sock")" = 600 ] || fail "no control socket $D/$n.sock (mode 0600)"
    awk -F'\t' -v n="$n@$HOST" -v s="$D/$n.sock" '$1 == "node" && $2 == n && $7 == s { f = 1 } END { exit !f }' "$D/cluster" ||
        fail "the state does not record $n's control socket"
done
awk -F'\t' '$1 == "node" && $3 == "erlang" && $7 == "-" { f = 1 } END { exit !f }' "$D/cluster" || fail "erl's control socket is not '-'"
ok

expect 0 cluster status --dir "$D"
out_has "^g1@$HOST +girder +up +[0-9]+ +2 +[0-9]+$"
out_has "^e1@$HOST +erlang +up +[0-9]+ +2 +[0-9]+$"
out_has "port mapper 127\.0\.0\.1:$ERL_EPMD_PORT up"
CLI_UPS=$(grep -c "nodeup node=girder_cli_" "$D/g1.log" || true)
expect 0 cluster status --dir "$D" --json
json "d['ok'] and all(n['state'] == 'up' and n['connections'] == 2 and n['processes'] > 3 for n in d['nodes']) and d['epmd']['up']"
# girderd answered on its control socket (no distribution connection), erl by distribution
json "[n['via'] for n in d['nodes']] == ['control_socket', 'control_socket', 'distribution']"
[ "$(grep -c "nodeup node=girder_cli_" "$D/g1.log" || true)" = "$CLI_UPS" ] || fail "status connected to g1 by distribution"
ok
# a socket that does not answer (its file removed): status asks by distribution instead
mv "$D/g1.sock" "$TMP/g1.sock.away"
expect 0 cluster status --dir "$D" --json
json "[n['via'] for n in d['nodes']] == ['distribution', 'control_socket', 'distribution'] and d['nodes'][0]['connections'] == 2"
mv "$TMP/g1.sock.away" "$D/g1.sock"
expect 0 cluster status --dir "$D" --json
json "d['nodes'][0]['via'] == 'control_socket'"

# node commands by bare name: the cookie and the port mapper's port come from the cluster
(
    unset ERL_EPMD_PORT
    expect 0 ping g1 g2 e1 --dir "$D"
    out_has "^e1@$HOST pong$"
    expect 0 nodes g1 --dir "$D"
    out_has "^g2@$HOST visible$"
    out_has "^e1@$HOST visible$"
    expect 0 rpc e1 erlang nodes --dir "$D"
    out_has "g1@$HOST"
)

# a second up on the running cluster is refused and changes nothing
expect 1 cluster up --dir "$D"
err_has "a cluster is running in .*c1 \(g1@$HOST, OS pid [0-9]+\)"
err_one_line
expect 0 cluster status --dir "$D"

# kill one node by hand: status says so, down stops the rest
G2PID=$(awk -F'\t' '$1 == "node" && $2 ~ /^g2@/ {print $4}' "$D/cluster")
kill -9 "$G2PID"
wait_for 5 sh -c "! kill -0 $G2PID" || true
expect 1 cluster status --dir "$D" --json
json "[n['state'] for n in d['nodes']] == ['up', 'down', 'up'] and not d['ok']"
err_has 'not every node'
expect 0 cluster down --dir "$D" --json
json "d['ok'] and [n['stopped_by'] for n in d['nodes']] == ['node.stop', 'already down', 'init:stop'] and d['epmd'] == 'stopped'"
wait_for 5 none_alive $CPIDS || fail "cluster processes left: $CPIDS"
ok
[ ! -e "$D" ] || { ls -la "$D"; fail "the cluster directory was not removed"; }
ok
expect 1 cluster status --dir "$D"

# a cluster up that fails (erl exits at once) says why and stops what it started
mkdir -p "$TMP/fakebin"
printf '#!/bin/sh\necho "fake erl: refusing to start" >&2\nexit 3\n' > "$TMP/fakebin/erl"
chmod +x "$TMP/fakebin/erl"
PATH="$TMP/fakebin:$PATH" expect 1 cluster up -n 1 --erlang 1 --prefix f$$x --dir "$TMP/c2"
err_has "e1@$HOST exited while starting \(exit status 3\)"
err_has 'fake erl: refusing to start'
err_has 'stopped what this command started'
[ ! -e "$TMP/c2/cluster" ] || fail "a failed up left its state file"
ok
sleep 0.3
for c in /proc/[0-9]*/cmdline; do
    if cat "$c" 2>/dev/null | tr '\0' ' ' | grep -q "f$$x"; then fail "a node of the failed up still runs: $c"; fi
done
ok
"$GIRDER_EPMD" -port "$ERL_EPMD_PORT" -names >/dev/null 2>&1 && fail "the failed up left its port mapper"
ok

# with a port mapper already running (ours) and a name taken: refused before anything starts
start_epmd
"$GIRDERD" --sname g1 --cookie "$COOKIE" >>"$TMP/plain-g1.log" 2>&1 &
PG1=$!
PIDS="$PIDS $PG1"
GPIDS="$GPIDS $PG1"
wait_for 10 registered g1 || fail "plain g1 did not register"
expect 1 cluster up -n 2 --dir "$TMP/c3"
err_has "a node named g1 is already registered with the port mapper at 127\.0\.0\.1:$ERL_EPMD_PORT"
# another prefix works next to it; down leaves the port mapper (not ours) and that g1 alone
expect 0 cluster up -n 1 --prefix t --dir "$TMP/c3" --json
json "d['epmd']['pid'] is None and d['nodes'][0]['node'] == 't1@$HOST'"
T1=$(cluster_pids)
expect 0 cluster down --dir "$TMP/c3"
out_has 'not started by cluster up'
wait_for 5 none_alive $T1 || fail "t1 still runs"
kill -0 "$EPMD_PID" || fail "down stopped a port mapper it had not started"
kill -0 "$PG1" || fail "down stopped a node that is not part of its cluster"
ok

# --module: every girderd loads it (checked by cluster up); a module a node refuses fails up
MODSO=$(cd "$(dirname "$GIRDERD")/../lib/girder/modules" && pwd)/workload.so
[ -f "$MODSO" ] || fail "no $MODSO"
(cd "$(dirname "$MODSO")" && expect 0 cluster up -n 1 --prefix m --module ./workload.so --dir "$TMP/c4" --json)
json "d['ok']"
M1=$(cluster_pids)
grep -q "event=module_loaded module=workload .*path=$MODSO" "$TMP/c4/m1.log" || fail "m1 did not load $MODSO by its absolute path"
ok
expect 1 rpc m1 workload workers --dir "$TMP/c4"
err_has 'exception error: not_started'     # loaded (not undef), not started
# a girderd whose control socket does not answer is stopped by distribution (init:stop)
rm "$TMP/c4/m1.sock"
expect 0 cluster down --dir "$TMP/c4" --json
json "d['ok'] and d['nodes'][0]['stopped_by'] == 'init:stop'"
wait_for 5 none_alive $M1 || fail "m1 still runs"
ok
expect 1 cluster up -n 2 --prefix x --module no_such_module --dir "$TMP/c5"
err_has "^girder: cluster up: x1@$HOST did not load the module no_such_module; its log says:$"
err_has 'event=module_refused module=.*no_such_module'
err_has 'stopped what this command started'
[ ! -e "$TMP/c5/cluster" ] || fail "a failed up left its state file"
ok
