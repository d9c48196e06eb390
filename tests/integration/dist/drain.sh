#!/bin/sh
# What girderd has queued for a node when it is stopped still arrives: SIGTERM while 20 MB wait
# for a node that is not reading (stopped); the node resumes and gets the whole message, as from
# an Erlang node that sends just before init:stop(). dist_stop writes the queues out first
# (bounded: half its timeout, at most 2 s). A node that stays stopped past that bound loses
# the message, and girderd says so (event=stop_unwritten) rather than dropping it silently.
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
start_girder g1
G1=$(node g1)
start_erl r -run dist_peer main drain_sink "$G1" "$TMP/sink.bin"
RPID=$EPID
wait_for 20 grep -q READY "$TMP/r.log" || { cat "$TMP/r.log"; fail "sink not ready"; }
kill -STOP "$RPID"
peer d drain_send "$G1" "$TMP/sink.bin"; passed d drain_send
kill -TERM "$GPID"
sleep 0.3
kill -CONT "$RPID"
wait_for 20 grep -q "^PASS drain_sink" "$TMP/r.log" || { cat "$TMP/r.log"; fail "the queued message was lost"; }
wait_for 10 sh -c "! kill -0 $GPID" || fail "girderd did not stop"
wait "$GPID"; RC=$?
[ "$RC" = 0 ] || fail "girderd exit status $RC"

# the bound: the sink stays stopped; girderd stops within the drain time and names what it cut
start_girder g1
start_erl r2 -run dist_peer main drain_sink "$G1" "$TMP/sink2.bin"
R2PID=$EPID
wait_for 20 grep -q READY "$TMP/r2.log" || { cat "$TMP/r2.log"; fail "sink r2 not ready"; }
kill -STOP "$R2PID"
peer d2 drain_send "$G1" "$TMP/sink2.bin"; passed d2 drain_send
kill -TERM "$GPID"
wait_for 15 sh -c "! kill -0 $GPID" || { kill -CONT "$R2PID"; fail "girderd did not stop"; }
wait "$GPID"; RC=$?
kill -CONT "$R2PID"
[ "$RC" = 0 ] || fail "girderd exit status $RC"
grep -q "event=stop_unwritten node=r2$SUF@[^ ]* [a-z_]*_bytes=" "$TMP/g1.log" ||
    fail "girderd stopped with output unwritten for r2 and did not say so"
grep "event=stop_unwritten" "$TMP/g1.log"
log "dist drain: ok"
