#!/bin/sh
# Over TLS: simultaneous connects between Girder nodes resolve; 10 MB transfers on one
# connection do not stall small calls on another (the TLS transport encrypts in bounded slices).
. "$(dirname "$0")/lib.sh"
start_epmd
make_certs
compile_peer
optfile "$TMP/tls.conf" node
TLS="--proto-dist inet_tls --ssl-dist-optfile $TMP/tls.conf"
ERL_ARGS=$(tls_args "$TMP/tls.conf")
# shellcheck disable=SC2086
start_girder g1 $TLS
# shellcheck disable=SC2086
start_girder g2 $TLS
peer s simultaneous "$(node g1)" "$(node g2)"; passed s simultaneous
# Each of the five connections between g1 and g2 was dialled over TLS, by one of them: in a real
# race the greater name (g2) keeps its own attempt, so g1 may end up with server sides only.
# tls_up names the dialled node's listening port for the client role.
P1=$(dist_port g1) P2=$(dist_port g2)
[ -n "$P1" ] && [ -n "$P2" ] || fail "no ports for g1, g2"
C12=$(grep -c "event=tls_up peer=127.0.0.1:$P2 role=client" "$TMP/g1.log" || true)
C21=$(grep -c "event=tls_up peer=127.0.0.1:$P1 role=client" "$TMP/g2.log" || true)
UP=$(grep -c "event=nodeup node=$(node g2) " "$TMP/g1.log" || true)
log "g1 -> g2 dialled over TLS $C12 times, g2 -> g1 $C21 times; g1 saw g2 up $UP times"
[ "$UP" -ge 5 ] || fail "g1 saw g2 up $UP times, not 5"
[ $((C12 + C21)) -ge "$UP" ] || fail "fewer TLS dials ($C12 + $C21) than connections ($UP)"
# the lesser name never keeps its own attempt against the greater's
if grep "event=simultaneous_connect" "$TMP/g1.log" | grep -q "our own attempt wins"; then
    fail "g1 (the lesser name) kept its own attempt against g2"
fi
peer_bg a blast "$(node g1)" 4
wait_for 20 grep -q READY "$TMP/a.out" || { cat "$TMP/a.out"; fail "blaster not ready"; }
# small calls stay fast while 10 MB messages cross TLS on the blaster's connection
MAXMS=400; [ "${DIST_SANITIZED:-0}" = 1 ] && MAXMS=2000
peer b latency "$(node g1)" "$MAXMS"; passed b latency
wait_exit "$PPID_BG" 90 || fail "blaster hangs"
passed a blast
log "tls interleave: ok"
