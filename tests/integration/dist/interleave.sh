#!/bin/sh
# Simultaneous connects between Girder nodes resolve; 10 MB transfers on one connection do not stall small calls on another.
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
start_girder g1
start_girder g2
peer s simultaneous "$(node g1)" "$(node g2)"; passed s simultaneous
grep -h "simultaneous" "$TMP/g1.log" "$TMP/g2.log" | head -3 || true
peer_bg a blast "$(node g1)" 12
wait_for 20 grep -q READY "$TMP/a.out" || { cat "$TMP/a.out"; fail "blaster not ready"; }
# small calls must stay fast: 250 ms at most (1.5 s in sanitizer builds, several times slower)
MAXMS=250; [ "${DIST_SANITIZED:-0}" = 1 ] && MAXMS=1500
peer b latency "$(node g1)" "$MAXMS"; passed b latency
wait_exit "$PPID_BG" 60 || fail "blaster hangs"
passed a blast
log "dist interleave: ok"
