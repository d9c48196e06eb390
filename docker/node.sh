#!/bin/sh
# Starts one node of the chaos compose cluster in the foreground: girderd (with its own
# girder-epmd) or erl (with epmd), named SERVICE@proxy, so that every connection goes through
# the relay. Environment (from docker-compose.yml): NODE (the service name), GIRDER_COOKIE,
# CHAOS_TICKTIME, CHAOS_SETUPTIME, CHAOS_HISTORY, CHAOS_PEERS, CHAOS_SEED, GIRDER_SABOTAGE.
set -eu
: "${NODE:?}" "${GIRDER_COOKIE:?}"
tick=${CHAOS_TICKTIME:-4}
setup=${CHAOS_SETUPTIME:-3}
# a node's seed differs from its peers' (the runner passes one for the run)
CHAOS_SEED=$(( ${CHAOS_SEED:-1} + $(printf '%s' "$NODE" | cksum | cut -d' ' -f1) % 1000 ))
export CHAOS_SEED
if command -v girderd >/dev/null 2>&1; then
    girder-epmd -port 4369 &
    sleep 0.3
    set -- --sname "$NODE@proxy" --cookie "$GIRDER_COOKIE" --ticktime "$tick" \
        --setuptime "$setup" --no-start-epmd --no-demo --control-socket= \
        --module /opt/girder/lib/girder/modules/chaos_workload.so
    [ -n "${GIRDER_SABOTAGE:-}" ] && set -- "$@" --sabotage "$GIRDER_SABOTAGE"
    exec girderd "$@"
fi
exec erl -sname "$NODE@proxy" -setcookie "$GIRDER_COOKIE" -noshell -noinput \
    -pa /opt/chaos/ebin -kernel net_ticktime "$tick" -kernel net_setuptime "$setup" \
    -kernel prevent_overlapping_partitions false -eval 'chaos_workload:start()'
