#!/bin/sh
# Large messages from a real erl node go through the decoder threads' queue, which holds up to
# max_message bytes: with the default (256 MiB) 400 messages of 64 KB all arrive, in order, and
# the connection never stops reading; with a bound of about one message, reading stops and
# resumes (backpressure) and still every message arrives, in order.
. "$(dirname "$0")/lib.sh"
: "${RXQUEUE:?}"
start_epmd
compile_peer
N=400
SIZE=65536
# run NAME MAX_MESSAGE: the Girder node NAME with that bound; erl sends; prints its RESULT line
run() {
    "$RXQUEUE" "$1$SUF" "$COOKIE" "$ERL_EPMD_PORT" "$2" "$N" "$SIZE" >"$TMP/$1.out" 2>&1 &
    _rx=$!
    PIDS="$PIDS $_rx"
    wait_for 20 grep -q READY "$TMP/$1.out" || { cat "$TMP/$1.out"; fail "$1 not ready"; }
    peer "s_$1" big_send "$(node "$1")" "$N" "$SIZE"
    passed "s_$1" big_send
    wait_for 60 sh -c "! kill -0 $_rx" || fail "$1 did not finish"
    _st=0
    wait "$_rx" || _st=$?
    cat "$TMP/$1.out"
    # its own verdict, and a sanitizer's report (which changes the exit status) fail the test
    [ "$_st" -eq 0 ] || fail "$1 exited with status $_st"
}
run r1 0
grep -q "^RESULT received=$N in_order=1 read_pauses=0$" "$TMP/r1.out" ||
    fail "with the default bound every message must arrive, in order, without a read pause"
run r2 70000
grep -q "^RESULT received=$N in_order=1 " "$TMP/r2.out" ||
    fail "with a bound of one message every message must still arrive, in order"
log "dist rxqueue: ok"
