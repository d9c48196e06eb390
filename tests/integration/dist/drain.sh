#!/bin/sh
# What girderd has queued for a node when it is stopped still arrives: SIGTERM while 20 MB wait
# for a node that is not reading (stopped); the node resumes and gets the whole message, as from
# an Erlang node that sends just before init:stop(). dist_stop writes the queues out first
# (bounded: half its timeout, at most 2 s). A node that stays stopped past that bound loses
# the message, and girderd says so (event=stop_unwritten) rather than dropping it silently.
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer

# stopped_sink SINK SENDER: a sink node SINK (pid in RPID), stopped (SIGSTOP) once ready; SENDER
# has girderd's echo send it 20 MB; then girderd gets SIGTERM.
stopped_sink() {
    start_erl "$1" -run dist_peer main drain_sink "$G1" "$TMP/$1.bin"
    RPID=$EPID
    wait_for 20 grep -q READY "$TMP/$1.log" || { cat "$TMP/$1.log"; fail "sink $1 not ready"; }
    kill -STOP "$RPID"
    peer "$2" drain_send "$G1" "$TMP/$1.bin"; passed "$2" drain_send
    kill -TERM "$GPID"
}

start_girder g1
G1=$(node g1)
stopped_sink r d
sleep 0.3
kill -CONT "$RPID"
wait_for 20 grep -q "^PASS drain_sink" "$TMP/r.log" || { cat "$TMP/r.log"; fail "the queued message was lost"; }
wait_for 10 sh -c "! kill -0 $GPID" || fail "girderd did not stop"
wait "$GPID"; RC=$?
[ "$RC" = 0 ] || fail "girderd exit status $RC"

# the bound: the sink stays stopped; girderd stops within the drain time and names what it cut
start_girder g1
stopped_sink r2 d2
wait_for 15 sh -c "! kill -0 $GPID" || { kill -CONT "$RPID"; fail "girderd did not stop"; }
wait "$GPID"; RC=$?
kill -CONT "$RPID"
[ "$RC" = 0 ] || fail "girderd exit status $RC"
grep -q "event=stop_unwritten node=r2$SUF@[^ ]* [a-z_]*_bytes=" "$TMP/g1.log" ||
    fail "girderd stopped with output unwritten for r2 and did not say so"
grep "event=stop_unwritten" "$TMP/g1.log"
log "dist drain: ok"
