#!/bin/sh
# Atom floods from authenticated peers: a peer's budget of new atoms holds across its reconnects,
# peers together never take the reserve, flooding peers keep their connections (their further
# names arrive as foreign atoms), and afterwards new nodes still connect and an honest peer's
# never-seen atoms still work.
. "$(dirname "$0")/lib.sh"
: "${DIST_PROBE:?}"
start_epmd
compile_peer
BUDGET=30000
QUOTA=80000
LIMIT=1048576
start_girder g1 --max-new-atoms $BUDGET --atom-reserve $((LIMIT - QUOTA))
G1=$(node g1)

atoms() {
    peer "cnt$1" atom_count "$G1" >/dev/null
    passed "cnt$1" atom_count
    sed -n 's/^ATOMS //p' "$TMP/cnt$1.out"
}
# flood NAME TAG COUNT: a peer named NAME sends COUNT fresh atoms; its connection must stay open
flood() {
    PROBE_NAME=$1 PROBE_TAG=$2 PROBE_ATOMS=$3 timeout 60 "$DIST_PROBE" atoms-keep "$G1" "$COOKIE" \
        "$ERL_EPMD_PORT" >>"$TMP/probe.log" 2>&1 || { cat "$TMP/probe.log"; fail "flood $1/$2: connection closed"; }
}

B=$(atoms 0)
log "atoms at start: $B"

# 1. one peer node, three connections of 20,000 new atoms each: it may add BUDGET in all
for r in 1 2 3; do flood flooder$$ r$r 20000; done
A1=$(atoms 1)
D1=$((A1 - B))
log "one peer, 3 x 20000 new atoms over 3 connections: the table grew by $D1"
[ "$D1" -ge $BUDGET ] && [ "$D1" -le $((BUDGET + 50)) ] ||
    fail "budget across reconnects: grew by $D1, expected $BUDGET (+ a few node names)"
grep -q "event=atom_budget_exhausted node=flooder$$@.*action=foreign_atoms" "$TMP/g1.log" ||
    fail "no atom_budget_exhausted log line"

# 2. fresh node names, each within its budget: together they stop at the quota
for n in 1 2 3; do flood fresh${n}_$$ q$n 30000; done
A2=$(atoms 2)
D2=$((A2 - B))
log "three more peers, 30000 new atoms each: the table grew by $D2 in all (quota $QUOTA)"
[ "$D2" -ge $QUOTA ] && [ "$D2" -le $((QUOTA + 100)) ] || fail "quota: grew by $D2, expected $QUOTA"
grep -q "event=atom_quota_exhausted" "$TMP/g1.log" || fail "no atom_quota_exhausted log line"

# 3. the node still serves: a new node connects, an honest peer's never-seen atoms work
peer a serving "$G1"; passed a serving
peer h fresh_atoms "$G1" t$$; passed h fresh_atoms
A3=$(atoms 3)
log "after honest peers: $((A3 - A2)) more atoms (their node names, one registered name)"
[ $((A3 - A2)) -le 20 ] || fail "honest peers' atoms were interned past the quota: $((A3 - A2))"
alive "$GPID" || fail "girderd died"
log "dist atoms: ok"
