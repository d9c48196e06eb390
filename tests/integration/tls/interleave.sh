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
grep -q "event=tls_up .*role=client" "$TMP/g1.log" || fail "g1 made no TLS connection"
peer_bg a blast "$(node g1)" 4
wait_for 20 grep -q READY "$TMP/a.out" || { cat "$TMP/a.out"; fail "blaster not ready"; }
# small calls stay fast while 10 MB messages cross TLS on the blaster's connection
MAXMS=400; [ "${DIST_SANITIZED:-0}" = 1 ] && MAXMS=2000
peer b latency "$(node g1)" "$MAXMS"; passed b latency
wait_exit "$PPID_BG" 90 || fail "blaster hangs"
passed a blast
log "tls interleave: ok"
