#!/bin/sh
# girderd starts girder-epmd when no port mapper answers (as erl does); that port mapper must
# answer, outlive girderd (like epmd) and stop on a plain SIGTERM. Usage: epmd_autostart.sh BINDIR
set -u
bin=$1
port=$(( 20000 + $$ % 20000 ))
gpid= ; epid=
cleanup() {
  [ -n "$gpid" ] && kill -KILL "$gpid" 2>/dev/null
  [ -n "$epid" ] && kill -KILL "$epid" 2>/dev/null
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# pick a port nobody listens on
for try in 1 2 3 4 5 6 7 8; do
  ss -ltn "sport = :$port" 2>/dev/null | grep -q LISTEN || break
  port=$((port + 1))
done
ERL_EPMD_PORT=$port "$bin/girderd" --sname "autostart$$" --cookie c > /dev/null 2>&1 &
gpid=$!
# up to 20 s: sanitizer builds under load start slowly. The port mapper is the process that
# listens on the port (ss names it): `girder-epmd -daemon` forks and its parent exits, so a
# match by command line can find the parent; and a `tr` per process in /proc at every look took
# more than the test's 60 s in a full make tsan, with the other tests' processes about.
end=$(( $(date +%s) + 20 ))
while [ "$(date +%s)" -lt "$end" ]; do
  epid=$(ss -ltnpH "sport = :$port" 2>/dev/null | sed -n 's/.*"girder-epmd",pid=\([0-9]*\).*/\1/p' | head -1)
  [ -n "$epid" ] && break
  sleep 0.1
done
[ -n "$epid" ] || fail "girderd did not start girder-epmd on port $port"
kill -TERM "$gpid"; wait "$gpid" 2>/dev/null; gpid=
kill -0 "$epid" 2>/dev/null || fail "girder-epmd died with girderd (it should outlive it, as epmd does)"
grep -q '^SigBlk:.*' "/proc/$epid/status"
blk=$(awk '/^SigBlk:/ {print $2}' "/proc/$epid/status")
[ "$blk" = "0000000000000000" ] || echo "note: girder-epmd blocked signal mask is $blk" >&2
kill -TERM "$epid"
for i in $(seq 30); do kill -0 "$epid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$epid" 2>/dev/null && fail "girder-epmd ignored SIGTERM (blocked mask $blk inherited from girderd?)"
epid=
echo "1 passed, 0 failed"
