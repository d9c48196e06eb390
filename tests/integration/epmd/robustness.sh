#!/bin/sh
# girder-epmd under abuse (garbage, truncation, oversize, silence, slow and half-open clients,
# 1000 concurrent clients) keeps serving and holds exactly the live registrations.
. "$(dirname "$0")/lib.sh"
: "${EPMD_STRESS:?}"

start_epmd "$GIRDER_EPMD" girder-epmd -packet_timeout 2
timeout 80 "$EPMD_STRESS" "$EPMD_PORT" 2 || fail "stress checks (see above)"
alive "$EPMD_PID" || fail "girder-epmd died"
"$ERLANG_EPMD" -port "$EPMD_PORT" -names | tee "$TMP/names"
[ "$(wc -l <"$TMP/names")" -eq 1 ] || fail "names left over"
refused=$(grep -c " warning epmd event=[a-z_]*refused " "$TMP/girder-epmd.log" || true)
[ "$refused" -gt 0 ] || fail "no refused request logged"
log "girder-epmd logged $refused refused requests; still up"
log PASS
