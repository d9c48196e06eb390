#!/bin/sh
# A busy distribution connection is reported: Girder's output queue to an Erlang node that stopped
# reading passes 8 MiB, its senders wait (as Erlang's busy_dist_port), and girderd logs
# event=busy_dist_port once for the episode; once the node reads again, the queue drains. The
# sender (demo's echo) meanwhile has its mailbox pass --mailbox-limit: one event=mailbox_limit
# line, nothing lost (report, the default policy).
. "$(dirname "$0")/lib.sh"
start_epmd
compile_peer
start_girder g1 --mailbox-limit 20
G1=$(node g1)
start_erl v
VPID=$EPID
V=$(node v)
peer_bg d busy_flood "$G1" "$V" "$TMP/flag" 100
wait_for 30 grep -q READY "$TMP/d.out" || { cat "$TMP/d.out"; fail "driver not ready"; }
kill -STOP "$VPID"
touch "$TMP/flag"
wait_for 30 grep -q "event=busy_dist_port node=$V" "$TMP/g1.log" || {
    kill -CONT "$VPID"; fail "no busy_dist_port line while $V does not read"; }
grep "event=busy_dist_port" "$TMP/g1.log" | head -3
# echo waits while the driver's messages keep coming: its mailbox passes the limit
wait_for 30 grep -q "event=mailbox_limit" "$TMP/g1.log" || {
    kill -CONT "$VPID"; fail "no mailbox_limit line for echo's flooded mailbox"; }
N=$(grep -c "event=busy_dist_port" "$TMP/g1.log")
[ "$N" -le 2 ] || fail "busy_dist_port logged $N times for one stall (rate limit: one per 10 s)"
kill -CONT "$VPID"
wait_exit "$PPID_BG" 60 || fail "driver hangs"
grep -q SENT "$TMP/d.out" || { cat "$TMP/d.out"; fail "driver did not finish"; }
grep "event=mailbox_limit" "$TMP/g1.log"
[ "$(grep -c "event=mailbox_limit" "$TMP/g1.log")" = 1 ] || fail "mailbox_limit logged more than once"
alive "$GPID" || fail "girderd died"
log "dist busy: ok"
