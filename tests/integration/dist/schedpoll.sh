#!/bin/sh
# Idle schedulers run the distribution loop (docs/distribution.md, Threads): a real erl node
# makes 2,000 round trips with an echo process on a Girder node. With schedulers spinning before
# they sleep (the default), they read the messages off the socket themselves: 99 % of the reads
# on a quiet machine, 40 % seen beside another test that kept both cores busy (a scheduler that
# is not spinning when a message comes does not read it); at least 20 % is asked. With
# ND_SPIN_US=0 (no spin, so no scheduler ever asks for the loop) the loop thread makes every
# read and the schedulers none. Round trips of 64 KB messages are bulk traffic: the loop stays
# on its thread, which makes at least half of their reads (99 % quiet; 1 % without the bulk
# rule), reading while the schedulers run the receivers.
. "$(dirname "$0")/lib.sh"
: "${SCHEDPOLL:?}"
start_epmd
compile_peer
N=2000
SIZE=
# run NAME [ENV...]: the Girder node NAME (with ENV), erl's N round trips (each with a binary of
# SIZE bytes if SIZE is set); its RESULT line
run() {
    _name=$1
    shift
    env "$@" "$SCHEDPOLL" "$_name$SUF" "$COOKIE" "$ERL_EPMD_PORT" >"$TMP/$_name.out" 2>&1 &
    _pid=$!
    PIDS="$PIDS $_pid"
    wait_for 20 grep -q READY "$TMP/$_name.out" || { cat "$TMP/$_name.out"; fail "$_name not ready"; }
    # shellcheck disable=SC2086
    peer "p_$_name" roundtrips "$(node "$_name")" "$N" $SIZE
    passed "p_$_name" roundtrips
    wait_for 30 sh -c "! kill -0 $_pid" || fail "$_name did not finish"
    _st=0
    wait "$_pid" || _st=$?
    cat "$TMP/$_name.out"
    [ "$_st" -eq 0 ] || fail "$_name exited with status $_st"
}
# field NAME KEY: KEY's value on NAME's RESULT line
field() { sed -n "s/^RESULT.* $2=\([0-9]*\).*/\1/p" "$TMP/$1.out"; }

run spin
[ "$(field spin echoed)" = "$N" ] || fail "spin: every round trip must be echoed"
t=$(field spin reads_loop_thread)
s=$(field spin reads_schedulers)
[ "$s" -ge $((N / 5)) ] || fail "spin: schedulers made $s reads of $N round trips (loop thread $t)"

run nospin ND_SPIN_US=0
[ "$(field nospin echoed)" = "$N" ] || fail "nospin: every round trip must be echoed"
[ "$(field nospin reads_schedulers)" = 0 ] || fail "nospin: schedulers read without spinning"
[ "$(field nospin reads_loop_thread)" -ge "$N" ] || fail "nospin: the loop thread must make every read"
N=500
SIZE=65536
run bulk
[ "$(field bulk echoed)" = "$N" ] || fail "bulk: every round trip must be echoed"
bt=$(field bulk reads_loop_thread)
bs=$(field bulk reads_schedulers)
[ "$bt" -ge $(((bt + bs) / 2)) ] || fail "bulk: the loop thread made $bt reads, schedulers $bs"
log "dist schedpoll: ok (spin: schedulers $s reads, loop thread $t; bulk: loop thread $bt, schedulers $bs)"
