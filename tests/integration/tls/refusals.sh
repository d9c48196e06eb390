#!/bin/sh
# TLS refusals, each with its log line, while a good peer stays connected and served: no client
# certificate (1.2 and 1.3), unknown CA (Girder as server and as client), expired certificate,
# host-name mismatch (Girder as client, and its own certificate refused by erl), plain TCP
# against TLS both ways, garbage, a stalled handshake (and a new
# client served at once while handshakes stall).
. "$(dirname "$0")/lib.sh"
start_epmd
make_certs
"$ERLC" -o "$TMP" "$TLSDIR/tls_peer.erl" || fail "erlc tls_peer"
optfile "$TMP/g1.conf" node "'tlsv1.2', 'tlsv1.3'"
optfile "$TMP/good.conf" node
optfile "$TMP/nocert.conf" node "" none
optfile "$TMP/nocert13.conf" node "'tlsv1.3'" none
optfile "$TMP/rogue.conf" rogue
optfile "$TMP/expired.conf" expired
optfile "$TMP/other.conf" otherhost
GOOD=$(tls_args "$TMP/good.conf")
# a short setuptime for the stalled handshake below; sanitizer builds under load need longer
# than 2 s for an honest (refused) handshake
SETUP=2; [ "${DIST_SANITIZED:-0}" = 1 ] && SETUP=5
start_girder g1 --proto-dist inet_tls --ssl-dist-optfile "$TMP/g1.conf" --setuptime $SETUP \
    --control-socket "$TMP/g1.sock"
G1=$(node g1)
G1LOG="$TMP/g1.log"
ERL_ARGS=$GOOD start_erl k -run tls_peer main keeper "$G1"
KPID=$EPID
wait_for 20 grep -q READY "$TMP/k.log" || fail "keeper not ready"

# refused_by_g1 NAME CONF TEXT: an erl node with CONF cannot reach g1; g1 logs TEXT.
refused_by_g1() {
    ERL_ARGS="$2" tpeer "$1" refused "$G1" >/dev/null
    grep -q "^PASS refused" "$TMP/$1.out" || { cat "$TMP/$1.out"; fail "$1 was not refused"; }
    wait_for 10 tls_failed "$G1LOG" "$3" || fail "$1: g1 did not log a TLS failure with '$3'"
    log "refused, logged: $(grep event=tls_failed "$G1LOG" | grep -- "$3" | tail -n 1 | sed 's/.*event=/event=/')"
}
refused_by_g1 n1 "$(tls_args "$TMP/nocert.conf")" "peer did not return a certificate"
refused_by_g1 n2 "$(tls_args "$TMP/nocert13.conf")" "sent fatal alert 'certificate required'"
refused_by_g1 n3 "$(tls_args "$TMP/rogue.conf")" "unable to get local issuer certificate"
refused_by_g1 n4 "$(tls_args "$TMP/expired.conf")" "certificate has expired"
refused_by_g1 n5 "" "TLS handshake failed: wrong version number" # plain TCP

# failed_for NAME TEXT: g1 logged a TLS failure with TEXT for node NAME.
failed_for() { grep event=tls_failed "$G1LOG" | grep "node=$1$SUF@" | grep -q -- "$2"; }

# g1_cannot_reach NAME CONF TEXT: g1, asked by a good peer, cannot reach an erl node NAME
# running with CONF; g1 logs TEXT for it.
g1_cannot_reach() {
    ERL_ARGS="$2" start_erl "$1"
    ERL_ARGS=$GOOD tpeer "q$1" girder_pings "$G1" "$(node "$1")" pang >/dev/null
    grep -q "^PASS girder_pings" "$TMP/q$1.out" || { cat "$TMP/q$1.out"; fail "g1 reached $1"; }
    wait_for 10 failed_for "$1" "$3" || fail "$1: g1 did not log a TLS failure with '$3'"
    log "refused, logged: $(grep event=tls_failed "$G1LOG" | grep -- "$3" | tail -n 1 | sed 's/.*event=/event=/')"
}
g1_cannot_reach r "$(tls_args "$TMP/rogue.conf")" "unable to get local issuer certificate"
g1_cannot_reach o "$(tls_args "$TMP/other.conf")" "host name mismatch: '$HOST' is not a DNS name"
g1_cannot_reach p "" "TLS handshake not finished (0 bytes from the peer): handshake timeout" # plain

# Girder as the server with a certificate that does not name its host: the erl client refuses it
start_girder g2 --proto-dist inet_tls --ssl-dist-optfile "$TMP/other.conf" --control-socket ""
ERL_ARGS=$GOOD tpeer n6 refused "$(node g2)" >/dev/null
grep -q "^PASS refused" "$TMP/n6.out" || { cat "$TMP/n6.out"; fail "n6 reached g2"; }
wait_for 10 tls_failed "$TMP/g2.log" "received fatal alert 'handshake failure'" ||
    fail "g2 did not log the erl client's refusal of its certificate"
log "refused by erl, logged: $(grep event=tls_failed "$TMP/g2.log" | tail -n 1 | sed 's/.*event=/event=/')"

# raw PORT PAYLOAD_HEX HOLD: connects to PORT, sends the bytes, keeps the socket up to HOLD s;
# prints how many seconds passed before the node closed it.
raw() {
    python3 - "$1" "$2" "$3" <<'PY'
import socket, sys, time
port, payload, hold = int(sys.argv[1]), bytes.fromhex(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=hold)
t0 = time.time()
s.sendall(payload)
try:
    while s.recv(4096):
        pass
except socket.timeout:
    pass
print("%.1f" % (time.time() - t0))
PY
}
PORT=$(dist_port g1)
[ -n "$PORT" ] || fail "no port for g1"
GARBAGE=$(od -An -N200 -tx1 /dev/urandom | tr -d ' \n')
T=$(raw "$PORT" "$GARBAGE" 10)
log "garbage: closed after $T s"
wait_for 10 tls_failed "$G1LOG" "TLS handshake failed" || fail "no log line for garbage"
N0=$(grep -c "event=tls_failed" "$G1LOG")
T=$(raw "$PORT" 1603010200 10) # a record header that promises 512 bytes, then nothing
log "stalled handshake: closed after $T s (setuptime $SETUP)"
awk -v t="$T" -v s="$SETUP" 'BEGIN { exit !(t >= s - 0.5 && t < s + 4) }' ||
    fail "a stalled handshake was closed after $T s"
wait_for 10 tls_failed "$G1LOG" "TLS handshake not finished (5 bytes from the peer): handshake timeout" ||
    fail "no log line for the stalled handshake"

log "while 5 handshakes stall, a new TLS client is served at once"
# on g3, whose set-up time (8 s) leaves room for a loaded machine: the ping must end while all
# five stalls are still open, which it could not if a stalled handshake held the loop
start_girder g3 --proto-dist inet_tls --ssl-dist-optfile "$TMP/g1.conf" --setuptime 8 \
    --control-socket ""
P3=$(dist_port g3)
[ -n "$P3" ] || fail "no port for g3"
SP=""
for i in 1 2 3 4 5; do
    raw "$P3" 1603010200 20 >"$TMP/stall$i.out" &
    SP="$SP $!"
done
PIDS="$PIDS $SP"
sleep 0.3
T0=$(date +%s.%N)
timeout 20 "$GIRDER" ping "$(node g3)" --cookie "$COOKIE" --proto-dist inet_tls \
    --ssl-dist-optfile "$TMP/good.conf" >"$TMP/ping.out" 2>&1 || { cat "$TMP/ping.out"; fail "ping"; }
T=$(echo "$T0 $(date +%s.%N)" | awk '{ printf "%.2f", $2 - $1 }')
for p in $SP; do alive "$p" || fail "a stall ended before the ping did ($T s)"; done
grep -q "^$(node g3) pong$" "$TMP/ping.out" || fail "ping: $(cat "$TMP/ping.out")"
log "served in $T s beside 5 stalled handshakes (set-up time 8 s)"
for p in $SP; do wait_exit "$p" 20 || fail "a stalled handshake was not closed"; done
wait_for 10 sh -c "[ \$(grep -c '(5 bytes from the peer): handshake timeout' '$TMP/g3.log') = 5 ]" ||
    fail "the 5 stalled handshakes were not each logged"

log "the keeper is still connected, and g1 still serves"
alive "$KPID" || fail "the keeper went down"
ERL_ARGS=$GOOD tpeer z still_served "$G1" "$(node k)" >/dev/null
grep -q "^PASS still_served" "$TMP/z.out" || { cat "$TMP/z.out"; fail "g1 stopped serving"; }
if grep -q "event=nodedown node=k$SUF@" "$G1LOG"; then fail "the keeper's connection dropped"; fi
N=$(grep -c "event=tls_failed" "$G1LOG")
[ "$N" -ge 10 ] || fail "fewer TLS failures logged ($N) than refusals"
if [ -n "${DAEMON_CTL:-}" ]; then
    "$DAEMON_CTL" call "$TMP/g1.sock" node.info >"$TMP/info.out" || fail "node.info: $(cat "$TMP/info.out")"
    grep -q '"tls": *true' "$TMP/info.out" || fail "node.info does not say tls: $(cat "$TMP/info.out")"
    grep -q "\"tls_failures\": *$N\b" "$TMP/info.out" ||
        fail "node.info's tls_failures is not the $N logged: $(cat "$TMP/info.out")"
    log "node.info: tls true, tls_failures $N"
fi
log "tls refusals: ok"
