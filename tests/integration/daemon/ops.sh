#!/bin/sh
# Operating girderd: READY=1/STOPPING=1 on NOTIFY_SOCKET, the pid file, SIGTERM's graceful order
# (apps in reverse, each through its supervisor, then distribution), SIGHUP reopening the log
# file, a second signal forcing the exit, init:stop from erl, one-line start-up failures.
. "$(dirname "$0")/lib.sh"
: "${TEST_MODULE_DIR:?}"
M=$TEST_MODULE_DIR
start_epmd

# ---------------------------------------------------------------- systemd notify, pid file, order
"$DAEMON_CTL" notify-recv "$TMP/notify" 60 2 >"$TMP/notify.out" 2>&1 &
NPID=$!; PIDS="$PIDS $NPID"
wait_for 5 test -S "$TMP/notify" || fail "no notify socket"
GIRDER_TEST_ORDER=$TMP/order NOTIFY_SOCKET=$TMP/notify "$GIRDERD" --sname "o1$SUF" \
    --cookie "$COOKIE" --control-socket "$TMP/o1.sock" --log-file "$TMP/o1.log" \
    --pid-file "$TMP/o1.pid" --module-dir "$M" --module order_a --module order_b &
GPID=$!; PIDS="$PIDS $GPID"
wait_for 20 grep -q '^READY=1$' "$TMP/notify.out" || fail "no READY=1 on NOTIFY_SOCKET"
registered "o1$SUF" || fail "READY=1 before the node was registered"
ctl "$TMP/o1.sock" api.info >/dev/null || fail "READY=1 before the control socket served"
pass "READY=1 on NOTIFY_SOCKET once registered and serving"
[ "$(cat "$TMP/o1.pid")" = "$GPID" ] || fail "pid file holds $(cat "$TMP/o1.pid"), not $GPID"
pass "the pid file holds the daemon's pid"
kill -TERM "$GPID"
wait "$GPID" && st=0 || st=$?
[ "$st" -eq 0 ] || fail "exit status $st after SIGTERM"
wait_for 5 grep -q '^STOPPING=1$' "$TMP/notify.out" || fail "no STOPPING=1"
pass "SIGTERM: exit status 0, STOPPING=1 sent"
cat >"$TMP/order.want" <<WANT
terminate order_b w2
terminate order_b w1
stop order_b app
terminate order_a w2
terminate order_a w1
stop order_a app
WANT
diff -u "$TMP/order.want" "$TMP/order" || fail "apps did not stop in reverse order through their supervisors"
pass "apps stop in reverse start order, each child through its supervisor, then the app's stop()"
# in the log: the apps stop before distribution does
grep -o 'event=app_stopped app=order_[ab]\|dist event=stopped\|event=stopped status=0' "$TMP/o1.log" \
    | tr '\n' ',' >"$TMP/seq"
[ "$(cat "$TMP/seq")" = "event=app_stopped app=order_b,event=app_stopped app=order_a,dist event=stopped,event=stopped status=0," ] \
    || fail "shutdown sequence in the log: $(cat "$TMP/seq")"
[ ! -e "$TMP/o1.pid" ] || fail "pid file left behind"
[ ! -e "$TMP/o1.sock" ] || fail "control socket left behind"
pass "apps stop before distribution; pid file and socket removed"
# every line of the log is "<time> <level> <component> event=..."
bad=$(grep -cv '^[0-9-]*T[0-9:.]*Z \(emergency\|alert\|critical\|error\|warning\|notice\|info\|debug\) [a-z_]* event=[a-z_]*' "$TMP/o1.log" || true)
[ "$bad" -eq 0 ] || { grep -v 'event=' "$TMP/o1.log"; fail "$bad log lines not in the format"; }
pass "every log line is <time> <level> <component> event=... key=value"

# the example unit: systemd's own checker finds nothing to say (with ExecStart at this build)
if [ -n "${SRC:-}" ] && command -v systemd-analyze >/dev/null; then
    sed "s#^ExecStart=/usr/bin/girderd #ExecStart=$GIRDERD #" "$SRC/daemon/girderd.service" >"$TMP/girderd.service"
    grep -q "^ExecStart=$GIRDERD --config " "$TMP/girderd.service" || fail "girderd.service: no ExecStart"
    grep -q '^Type=notify$' "$TMP/girderd.service" || fail "girderd.service is not Type=notify"
    grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$TMP/girderd.service" || fail "girderd.service: no SIGHUP reload"
    timeout 30 systemd-analyze verify "$TMP/girderd.service" >"$TMP/verify.out" 2>&1 || true
    [ ! -s "$TMP/verify.out" ] || { cat "$TMP/verify.out"; fail "systemd-analyze verify daemon/girderd.service"; }
    pass "daemon/girderd.service: Type=notify, reload by SIGHUP, clean for systemd-analyze verify"
fi

# ---------------------------------------------------------------- the default control socket
# under this test's own port mapper: .../girder/epmd-<port>/<node>.sock
if [ "$(id -u)" = 0 ] || [ -z "${XDG_RUNTIME_DIR:-}" ]; then rundir=/run; else rundir=$XDG_RUNTIME_DIR; fi
dsock="$rundir/girder/epmd-$ERL_EPMD_PORT/$(node ds).sock"
# (root: /run whatever XDG_RUNTIME_DIR says, so that root's shells and services agree)
XDG_RUNTIME_DIR=$TMP/xdg-root "$GIRDERD" --sname "ds$SUF" --cookie "$COOKIE" >>"$TMP/ds.log" 2>&1 &
GPID=$!; PIDS="$PIDS $GPID"
wait_for 20 "$DAEMON_CTL" call "$dsock" api.info || fail "no control socket at $dsock"
[ "$(stat -c %a "$dsock")" = 600 ] || fail "socket mode $(stat -c %a "$dsock")"
[ "$(stat -c %a "$(dirname "$dsock")")" = 700 ] || fail "directory mode $(stat -c %a "$(dirname "$dsock")")"
kill -TERM "$GPID"; wait "$GPID" || fail "ds exit status $?"
[ ! -e "$dsock" ] || fail "default control socket left behind"
[ ! -e "$(dirname "$dsock")" ] || fail "the empty epmd-<port> directory left behind"
pass "the default control socket: $rundir/girder/epmd-<port>/<node>.sock, mode 0600 in a 0700 directory"
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    # another user: $XDG_RUNTIME_DIR/girder/...; root may still talk to the socket
    mkdir -p "$TMP/xdg"; chown 65534:65534 "$TMP/xdg"; chmod 0711 "$TMP"
    usock="$TMP/xdg/girder/epmd-$ERL_EPMD_PORT/$(node du).sock"
    XDG_RUNTIME_DIR=$TMP/xdg setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$GIRDERD" --sname "du$SUF" --cookie "$COOKIE" --no-demo >>"$TMP/du.log" 2>&1 &
    GPID=$!; PIDS="$PIDS $GPID"
    wait_for 20 "$DAEMON_CTL" call "$usock" api.info || fail "no control socket at $usock"
    [ "$(stat -c '%a %u' "$usock")" = "600 65534" ] || fail "socket $(stat -c '%a %u' "$usock")"
    kill -TERM "$GPID"; wait "$GPID" || fail "du exit status $?"
    [ ! -e "$usock" ] || fail "the user's control socket left behind"
    chmod 0700 "$TMP"
    pass "another user's node: \$XDG_RUNTIME_DIR/girder/epmd-<port>/<node>.sock, owned by it, root served"
fi
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
    # the port mapper's own port 4369, in a network namespace of this test's own (loopback
    # only): /run/girder/<node>.sock, no epmd-<port> directory
    rsock="/run/girder/$(node dr).sock"
    timeout 60 unshare -n sh -c '
        ip link set lo up || exit 3
        "$1" -port 4369 -address 127.0.0.1 >>"$2/dr-epmd.log" 2>&1 & e=$!
        env -u ERL_EPMD_PORT "$3" --sname "$4" --cookie c --no-demo >>"$2/dr.log" 2>&1 & g=$!
        n=100; until "$5" call "$6" api.info >/dev/null 2>&1; do
            n=$((n - 1)); [ $n -gt 0 ] || { kill -9 $g $e; exit 4; }; sleep 0.1; done
        [ "$(stat -c %a "$6")" = 600 ] || { kill -9 $g $e; exit 5; }
        kill -TERM $g; wait $g; st=$?
        kill $e; wait $e
        exit $st' sh "$GIRDER_EPMD" "$TMP" "$GIRDERD" "dr$SUF" "$DAEMON_CTL" "$rsock" \
        && st=0 || st=$?
    [ "$st" -eq 0 ] || fail "the node on port mapper port 4369 (namespace): status $st, socket $rsock"
    [ ! -e "$rsock" ] || fail "$rsock left behind"
    pass "with the port mapper on 4369: /run/girder/<node>.sock"
fi

# ---------------------------------------------------------------- SIGHUP reopens the log file
start_girder h1 --log-file "$TMP/h1.file" --log-level info
mv "$TMP/h1.file" "$TMP/h1.file.1"
kill -HUP "$GPID"
wait_for 5 grep -q 'event=log_reopened' "$TMP/h1.file" || fail "no event=log_reopened in the new file"
ctl "$TMP/h1.sock" log.level s:info >/dev/null
wait_for 5 grep -q 'event=log_level' "$TMP/h1.file" || fail "lines after SIGHUP not in the new file"
grep -q 'event=ready' "$TMP/h1.file.1" || fail "the old file lost its lines"
grep -q 'event=log_level' "$TMP/h1.file.1" && fail "a line after SIGHUP went to the old file"
alive "$GPID" || fail "SIGHUP killed the node"
pass "SIGHUP reopens the log file (logrotate's move-then-HUP works)"
kill -TERM "$GPID"; wait "$GPID" || fail "h1 exit status $?"

# ---------------------------------------------------------------- a second signal forces the exit
start_girder f1 --no-demo --module-dir "$M" --module hang
kill -TERM "$GPID"
sleep 1
alive "$GPID" || fail "the hanging app did not hold the graceful stop (test is void)"
kill -TERM "$GPID"
wait_for 5 gone "$GPID" || fail "a second SIGTERM did not force the exit"
wait "$GPID" && st=0 || st=$?
[ "$st" -eq 1 ] || fail "forced exit status $st, expected 1"
grep -q 'event=forced_exit signal=SIGTERM' "$TMP/f1.log" || fail "forced exit not logged"
pass "a second SIGTERM during a stuck shutdown forces the exit (status 1)"

# ---------------------------------------------------------------- a child's shutdown time
# slowstop's child ignores the shutdown: its supervisor kills it after its 800 ms, then the
# stop goes on to exit 0
start_girder t1 --no-demo --module-dir "$M" --module slowstop
t0=$(date +%s%N)
kill -TERM "$GPID"
wait_for 15 gone "$GPID" || fail "a child past its shutdown time held the stop"
t1=$(date +%s%N)
wait "$GPID" && st=0 || st=$?
[ "$st" -eq 0 ] || fail "exit status $st after a child was killed at its shutdown time"
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -ge 700 ] || fail "stopped after $ms ms: the child's 800 ms shutdown time was not given"
grep -q 'event=app_stopped app=slowstop' "$TMP/t1.log" || fail "slowstop's app did not stop"
pass "a child that ignores the shutdown is killed at its shutdown time (stopped in $ms ms), exit 0"

# ---------------------------------------------------------------- SIGINT, --log-level
start_girder n1 --log-level warning
kill -INT "$GPID"
wait "$GPID" && st=0 || st=$?
[ "$st" -eq 0 ] || fail "exit status $st after SIGINT"
grep -q ' info \| notice \| debug ' "$TMP/n1.log" && fail "--log-level warning let through: $(grep ' info \| notice \| debug ' "$TMP/n1.log" | head -3)"
start_girder n2 --log-level debug
ctl "$TMP/n2.sock" api.info >/dev/null
kill -INT "$GPID"
wait "$GPID" && st=0 || st=$?
[ "$st" -eq 0 ] || fail "exit status $st after SIGINT"
grep -q ' debug girderd event=control_client_connected' "$TMP/n2.log" || fail "--log-level debug: no debug line"
grep -q ' info girderd event=stopping reason=SIGINT' "$TMP/n2.log" || fail "SIGINT not logged as the stop's reason"
pass "SIGINT stops gracefully (exit 0); --log-level warning drops info lines, debug shows debug lines"

# ---------------------------------------------------------------- init:stop from Erlang
start_girder i1
out=$(erl_eval e1 "io:format(\"~p~n\", [rpc:call('$(node i1)', init, stop, [])])")
[ "$out" = ok ] || fail "init:stop answered $out"
wait_for 10 gone "$GPID" || fail "init:stop did not stop the node"
wait "$GPID" && st=0 || st=$?
[ "$st" -eq 0 ] || fail "exit status $st after init:stop()"
grep -q 'event=stopping reason=init:stop' "$TMP/i1.log" || fail "init:stop not logged"
start_girder i2
out=$(erl_eval e2 "io:format(\"~p~n\", [rpc:call('$(node i2)', init, stop, [3])])")
[ "$out" = ok ] || fail "init:stop(3) answered $out"
wait_for 10 gone "$GPID" || fail "init:stop(3) did not stop the node"
wait "$GPID" && st=0 || st=$?
[ "$st" -eq 3 ] || fail "exit status $st after init:stop(3)"
pass "init:stop() and init:stop(3) from erl: ok, graceful stop, exit status 0 and 3"
# An Erlang node answers rpc:call(N, init, stop, []) with ok every time (tried between two erl
# nodes): the answer must reach the caller before the node drops its connections. Without
# apps the shutdown is at its fastest, the race at its widest (it lost ~1 call in 30 before
# the shutdown waited for the answer).
K=30; i=0; kpids=""; knodes=""
while [ $i -lt $K ]; do
    i=$((i + 1))
    "$GIRDERD" --sname "k$i$SUF" --cookie "$COOKIE" --control-socket "$TMP/k$i.sock" --no-demo \
        --schedulers 1 >>"$TMP/k$i.log" 2>&1 &
    kpids="$kpids $!"; PIDS="$PIDS $!"
    knodes="$knodes${knodes:+,}'$(node "k$i")'"
done
i=0
while [ $i -lt $K ]; do
    i=$((i + 1))
    wait_for 30 "$DAEMON_CTL" call "$TMP/k$i.sock" api.info || fail "node k$i did not start"
done
out=$(erl_eval e3 "io:format(\"~p~n\", [[rpc:call(N, init, stop, []) || N <- [$knodes]]])" | tr -d ' \n')
want=$(i=0; printf '['; while [ $i -lt $K ]; do i=$((i + 1)); printf 'ok'; [ $i -lt $K ] && printf ','; done; printf ']')
[ "$out" = "$want" ] || fail "rpc:call(N, init, stop, []) on $K nodes answered $out"
for p in $kpids; do
    wait_for 10 gone "$p" || fail "init:stop did not stop $p"
    wait "$p" && st=0 || st=$?
    [ "$st" -eq 0 ] || fail "exit status $st after init:stop()"
done
pass "rpc:call(N, init, stop, []) answers ok on each of $K nodes without apps, as erl's init does"

# ---------------------------------------------------------------- start-up failures
# expect_startup_failure WHAT PATTERN ARGS...: girderd must exit non-zero within 30 s with one
# "girderd: " line on stderr matching PATTERN.
expect_startup_failure() {
    _what=$1; _pat=$2; shift 2
    set +e
    timeout 30 "$GIRDERD" "$@" >"$TMP/sf.out" 2>"$TMP/sf.err"
    _rc=$?
    set -e
    [ "$_rc" -ne 0 ] && [ "$_rc" -ne 124 ] || { cat "$TMP/sf.err"; fail "$_what: exit $_rc"; }
    [ "$(grep -c '^girderd: ' "$TMP/sf.err")" -eq 1 ] || { cat "$TMP/sf.err"; fail "$_what: not one line"; }
    grep -q "^girderd: $_pat" "$TMP/sf.err" || { cat "$TMP/sf.err"; fail "$_what: no line matching $_pat"; }
    pass "start-up failure, $_what: $(grep '^girderd: ' "$TMP/sf.err") (exit $_rc)"
}
P=$(random_port)
start_girder s1 --listen-port "$P"
expect_startup_failure "name taken" "the name s1$SUF seems to be in use by another node" \
    --sname "s1$SUF" --cookie c --control-socket "$TMP/x.sock"
expect_startup_failure "port in use" "cannot listen on distribution port $P: Address already in use" \
    --sname "s2$SUF" --cookie c --listen-port "$P" --control-socket "$TMP/x.sock"
expect_startup_failure "control socket in use" "control socket $TMP/s1.sock is in use by a running process" \
    --sname "s3$SUF" --cookie c --control-socket "$TMP/s1.sock"
registered "s3$SUF" && fail "a failed start left its name registered"
NOPORT=$(random_port)
expect_startup_failure "port mapper unreachable" "no port mapper on port $NOPORT (and start_epmd is false)" \
    --sname "s4$SUF" --cookie c --epmd-port "$NOPORT" --no-start-epmd
printf '[{server, [{certfile, "%s/none.pem"}, {keyfile, "%s/none.key"}]},\n {client, []}].\n' "$TMP" "$TMP" >"$TMP/tls.conf"
expect_startup_failure "certificate file missing" \
    "--ssl-dist-optfile: $TMP/tls.conf: server: option certfile: cannot read $TMP/none.pem: No such file or directory\$" \
    --sname "s6$SUF" --cookie c --proto-dist inet_tls --ssl-dist-optfile "$TMP/tls.conf"
mkdir -p "$TMP/lonely"
cp "$GIRDERD" "$TMP/lonely/girderd"   # no girder-epmd beside it
set +e
timeout 30 "$TMP/lonely/girderd" --sname "s5$SUF" --cookie c --epmd-port "$NOPORT" --no-demo \
    >"$TMP/sf.out" 2>"$TMP/sf.err"
rc=$?
set -e
[ "$rc" -eq 1 ] && grep -q "^girderd: no port mapper on port $NOPORT, and $TMP/lonely/girder-epmd did not start one" "$TMP/sf.err" \
    || { cat "$TMP/sf.err"; fail "port mapper not startable: exit $rc"; }
pass "start-up failure, port mapper not startable: $(grep '^girderd: ' "$TMP/sf.err")"
echo "$PASSED passed, 0 failed"
