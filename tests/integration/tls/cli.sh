#!/bin/sh
# The girder CLI over TLS: node commands against girderd and erl nodes, refusals with their
# reasons, and cluster up/status/down of girderd and erl nodes over mutual TLS.
. "$(dirname "$0")/lib.sh"
: "${GIRDER:?}"
start_epmd
make_certs
optfile "$TMP/tls.conf" node
optfile "$TMP/rogue.conf" rogue
TLS="--proto-dist inet_tls --ssl-dist-optfile $TMP/tls.conf"
start_girder g1 $TLS
ERL_ARGS=$(tls_args "$TMP/tls.conf") start_erl e1
G1=$(node g1)
E1=$(node e1)

# run STATUS ARGS...: girder with ARGS exits with STATUS; output in $TMP/out, $TMP/err.
run() {
    _want=$1; shift
    _st=0
    timeout 60 "$GIRDER" "$@" >"$TMP/out" 2>"$TMP/err" || _st=$?
    [ "$_st" = "$_want" ] || { cat "$TMP/out" "$TMP/err"; fail "girder $* exited $_st, not $_want"; }
    if grep -q "Sanitizer\|runtime error:" "$TMP/err"; then cat "$TMP/err"; fail "sanitizer: girder $*"; fi
}

log "node commands over TLS, on girderd and erl"
# shellcheck disable=SC2086
run 0 ping "$G1" "$E1" --cookie "$COOKIE" $TLS
grep -q "^$G1 pong$" "$TMP/out" && grep -q "^$E1 pong$" "$TMP/out" || fail "ping: $(cat "$TMP/out")"
# shellcheck disable=SC2086
run 0 rpc "$E1" erlang node --cookie "$COOKIE" $TLS
grep -qx "$E1" "$TMP/out" || fail "rpc on e1: $(cat "$TMP/out")"
# shellcheck disable=SC2086
run 0 rpc "$G1" erlang node --cookie "$COOKIE" $TLS --json
grep -q "\"$G1\"" "$TMP/out" || fail "rpc --json on g1: $(cat "$TMP/out")"
# shellcheck disable=SC2086
run 0 ps "$G1" --cookie "$COOKIE" $TLS
grep -q " echo " "$TMP/out" || fail "ps g1 lacks echo"
# shellcheck disable=SC2086
run 0 send "$G1" echo "{self, hi}" --cookie "$COOKIE" $TLS

log "refusals, with their reasons"
run 1 ping "$G1" --cookie "$COOKIE"
grep -q "before checking the cookie: it may run TLS distribution" "$TMP/err" ||
    fail "plain TCP against TLS: $(cat "$TMP/err")"
run 1 ping "$E1" --cookie "$COOKIE" --proto-dist inet_tls --ssl-dist-optfile "$TMP/rogue.conf"
grep -q "TLS failure with $E1 .*unknown CA" "$TMP/err" || fail "rogue client: $(cat "$TMP/err")"
run 1 ping "$G1" --cookie "$COOKIE" --proto-dist inet_tls --ssl-dist-optfile "$TMP/rogue.conf"
grep -q "TLS failure with $G1 .*unknown CA" "$TMP/err" || fail "rogue client: $(cat "$TMP/err")"
wait_for 10 tls_failed "$TMP/g1.log" "unable to get local issuer certificate" ||
    fail "g1 did not log the rogue client"

log "cluster up over TLS: 2 girderd and 1 erl node"
CL="$TMP/cl"
# shellcheck disable=SC2086
run 0 cluster up -n 2 --erlang 1 --prefix t --dir "$CL" $TLS --timeout 60000
grep -q "^tls	$TMP/tls.conf$" "$CL/cluster" || fail "the cluster file does not record TLS"
grep -q "transport=tls" "$CL/t1.log" || fail "t1 is not on TLS"
grep -q "event=tls_up" "$CL/t2.log" || fail "t2 made no TLS connection"
run 0 ping "t1@$HOST" "t2@$HOST" "e1@$HOST" --dir "$CL"
[ "$(grep -c ' pong$' "$TMP/out")" = 3 ] || fail "cluster ping: $(cat "$TMP/out")"
run 0 nodes "t1@$HOST" --dir "$CL"
grep -q "^e1@$HOST visible" "$TMP/out" || fail "t1 is not connected to e1: $(cat "$TMP/out")"
run 0 cluster status --dir "$CL"
[ "$(grep -c ' up ' "$TMP/out")" = 3 ] || fail "cluster status: $(cat "$TMP/out")"
run 1 ping "t1@$HOST" --dir "$CL" --proto-dist inet_tcp
run 0 cluster down --dir "$CL"
log "tls cli: ok"
