#!/bin/sh
# Girder and Erlang over mutual TLS (TLS 1.2 or 1.3: interop.sh 12|13), both directions: the
# dist cases (ping, sends, links, monitors, gen_server:call, rpc, remote spawn, 10 MB) over a
# connection Erlang dials and over one Girder dials, kill -9 and SIGSTOP of either side.
. "$(dirname "$0")/lib.sh"
V=${1:?usage: interop.sh 12|13}
start_epmd
make_certs
compile_peer
"$ERLC" -o "$TMP" "$TLSDIR/tls_peer.erl" || fail "erlc tls_peer"
if [ "$V" = 13 ]; then
    optfile "$TMP/tls.conf" node "'tlsv1.3'"
    WANT=TLSv1.3
else
    optfile "$TMP/tls.conf" node
    WANT=TLSv1.2
fi
TLS="--proto-dist inet_tls --ssl-dist-optfile $TMP/tls.conf"
ERL_ARGS="$(tls_args "$TMP/tls.conf") -kernel net_ticktime 4"

# shellcheck disable=SC2086
start_girder g1 $TLS --ticktime 4 --schedulers 2
G1=$(node g1)
log "Erlang dials Girder: the dist cases over TLS"
peer a basic "$G1"; passed a basic
peer b big "$G1"; passed b big
grep -q "event=tls_up .*role=server version=$WANT" "$TMP/g1.log" || fail "g1: no $WANT server"
grep -q "event=nodeup node=a$SUF@$HOST type=normal" "$TMP/g1.log" || fail "no nodeup line"

log "Girder dials Erlang (asked by rpc), then sends to a registered process there"
start_erl e3
tpeer c girder_dials "$G1" "$(node e3)"; passed c girder_dials
grep -q "event=tls_up .*role=client version=$WANT" "$TMP/g1.log" || fail "g1: no $WANT client"

log "Girder dials Erlang: the dist cases over the connection Girder made"
start_erl x -run tls_peer main dialled_by "$G1" # waits for g1 to dial it, dials nothing itself
XPID=$EPID
PX=$(dist_port x)
[ -n "$PX" ] || fail "no port for x"
wait_for 20 grep -q WAITING "$TMP/x.log" || { cat "$TMP/x.log"; fail "x not waiting"; }
tpeer y girder_pings "$G1" "$(node x)" pong >/dev/null
grep -q "^PASS girder_pings" "$TMP/y.out" || { cat "$TMP/y.out"; fail "g1 did not reach x"; }
wait_exit "$XPID" 90 || fail "x hangs"
grep -q "^PASS dialled_by" "$TMP/x.log" || { cat "$TMP/x.log"; fail "the dist cases over g1's connection"; }
grep -q "event=tls_up peer=127.0.0.1:$PX role=client version=$WANT " "$TMP/g1.log" ||
    fail "g1 did not dial x over $WANT"

log "kill -9 of an Erlang node Girder watches: noconnection on Girder's side"
start_erl v -run dist_peer main victim
wait_for 20 grep -q READY "$TMP/v.log" || fail "victim not ready"
VPID=$EPID
peer_bg d nodedown_erlang "$G1" "$(node v)"
wait_for 20 grep -q READY "$TMP/d.out" || { cat "$TMP/d.out"; fail "peer d not ready"; }
kill -9 "$VPID"
wait_exit "$PPID_BG" 30 || fail "peer d hangs"
passed d nodedown_erlang

log "SIGSTOP of an Erlang node: Girder's ticks find it"
start_erl w -run dist_peer main victim
wait_for 20 grep -q READY "$TMP/w.log" || fail "victim w not ready"
WPID=$EPID
peer_bg e nodedown_erlang "$G1" "$(node w)"
wait_for 20 grep -q READY "$TMP/e.out" || { cat "$TMP/e.out"; fail "peer e not ready"; }
kill -STOP "$WPID"
wait_exit "$PPID_BG" 30 || fail "peer e hangs"
kill -CONT "$WPID"
passed e nodedown_erlang
grep -q "event=net_tick_timeout node=w$SUF@$HOST" "$TMP/g1.log" || fail "g1 did not detect w by ticks"

log "SIGSTOP of Girder: Erlang's ticks find it"
peer_bg f ticks_girder "$G1"
wait_for 20 grep -q READY "$TMP/f.out" || { cat "$TMP/f.out"; fail "peer f not ready"; }
kill -STOP "$GPID"
wait_exit "$PPID_BG" 30 || fail "peer f hangs"
kill -CONT "$GPID"
passed f ticks_girder
grep "nodedown after" "$TMP/f.out"

log "kill -9 of Girder: Erlang's links, monitors and monitor_node see noconnection"
peer_bg g nodedown_girder "$G1"
wait_for 20 grep -q READY "$TMP/g.out" || { cat "$TMP/g.out"; fail "peer g not ready"; }
kill -9 "$GPID"
wait_exit "$PPID_BG" 30 || fail "peer g hangs"
passed g nodedown_girder
grep "noconnection after" "$TMP/g.out" || true
if grep -q "event=tls_failed" "$TMP/g1.log"; then fail "a TLS failure among good peers"; fi
log "tls interop (TLS 1.${V#1}): ok"
