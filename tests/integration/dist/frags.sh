#!/bin/sh
# Fragment reassembly memory: a peer that opens fragmented messages and never completes them is
# disconnected once they hold max_message (256 MiB) together, the daemon's memory stays within
# that bound, and another peer's traffic goes on meanwhile.
. "$(dirname "$0")/lib.sh"
: "${DIST_PROBE:?}"
start_epmd
compile_peer
start_girder g1
G1=$(node g1)
MAXMS=500; [ "${DIST_SANITIZED:-0}" = 1 ] && MAXMS=5000
peer_bg b latency_until "$G1" "$TMP/frags-done" "$MAXMS"
wait_for 20 grep -q READY "$TMP/b.out" || { cat "$TMP/b.out"; fail "peer b not ready"; }
rss() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
RSS0=$(rss "$GPID" VmRSS)
timeout 120 "$DIST_PROBE" frags "$G1" "$COOKIE" "$ERL_EPMD_PORT" >>"$TMP/probe.log" 2>&1 ||
    { cat "$TMP/probe.log"; fail "the connection holding unfinished fragments was not closed"; }
cat "$TMP/probe.log"
touch "$TMP/frags-done"
wait_exit "$PPID_BG" 30 || fail "peer b hangs"
passed b latency_until
grep "round trips" "$TMP/b.out"
alive "$GPID" || fail "girderd died"
HWM=$(rss "$GPID" VmHWM)
# bound: max_message of buffers (256 MiB) plus the socket's read buffers and a frame in flight
BOUND=$((300 * 1024))
# (sanitizers: ASan redzones and quarantine, TSan shadow memory multiply it)
[ "${DIST_SANITIZED:-0}" = 1 ] && BOUND=$((1536 * 1024))
log "girderd memory: $RSS0 kB before, peak $HWM kB (bound +$BOUND kB)"
[ $((HWM - RSS0)) -lt "$BOUND" ] || fail "peak memory grew by $((HWM - RSS0)) kB"
grep -q "reassembly" "$TMP/g1.log" || fail "no log line naming the reassembly limit"
sleep 0.5
RSS1=$(rss "$GPID" VmRSS)
log "after the close: $RSS1 kB"
# (ASan's allocator keeps freed memory in its quarantine: not checked there)
if [ "${DIST_SANITIZED:-0}" != 1 ]; then
    [ $((RSS1 - RSS0)) -lt 65536 ] || fail "the fragments' memory was not returned: +$((RSS1 - RSS0)) kB"
fi
log "dist frags: ok"
