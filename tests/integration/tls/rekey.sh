#!/bin/sh
# Erlang's re-keys over TLS, accepted by Girder (rekey.sh 12|13): an erl node whose optfile makes
# it renegotiate (TLS 1.2, renegotiate_at) or send KeyUpdates (TLS 1.3, key_update_at) every few
# records, in both directions (erl dials Girder; Girder dials erl). 30 MB cross each connection
# both ways intact, g1 logs each re-key (it starts none itself before 2^28 records or 2^38.5
# bytes), and no connection fails.
. "$(dirname "$0")/lib.sh"
V=${1:?usage: rekey.sh 12|13}
start_epmd
make_certs
compile_peer
"$ERLC" -o "$TMP" "$TLSDIR/tls_peer.erl" || fail "erlc tls_peer"
if [ "$V" = 13 ]; then
    optfile "$TMP/tls.conf" node "'tlsv1.3'"
    EXTRA="{key_update_at, 100000}" KIND=key_update WANT=TLSv1.3
else
    optfile "$TMP/tls.conf" node
    EXTRA="{renegotiate_at, 50}" KIND=renegotiation WANT=TLSv1.2
fi
# the same optfile, plus the re-key option in both roles (OTP honours it in either)
sed "s/{verify, verify_peer}/{verify, verify_peer}, $EXTRA/g" "$TMP/tls.conf" >"$TMP/rekey.conf"
[ "$(grep -c "$EXTRA" "$TMP/rekey.conf")" = 2 ] || fail "rekey.conf lacks $EXTRA"
start_girder g1 --proto-dist inet_tls --ssl-dist-optfile "$TMP/tls.conf" --log-level debug
G1=$(node g1)

# rekeys PEER: how many re-keys of KIND g1 logged on its connection with PEER (address:port)
rekeys() { grep -c "event=tls_rekey peer=$1 kind=$KIND " "$TMP/g1.log" || true; }

log "erl dials Girder and re-keys as the TLS client"
ERL_ARGS=$(tls_args "$TMP/rekey.conf") tpeer a rekey "$G1" >/dev/null
grep -q "^PASS rekey" "$TMP/a.out" || { cat "$TMP/a.out"; fail "10 MB over a's re-keying connection"; }
PA=$(sed -n "s/.*event=tls_up peer=\([^ ]*\) role=server version=$WANT .*/\1/p" "$TMP/g1.log")
[ "$(echo "$PA" | wc -w)" = 1 ] || fail "not one TLS server connection on g1: '$PA'"
NA=$(rekeys "$PA")
log "g1 went through $NA re-keys ($KIND) started by a"
[ "$NA" -ge 3 ] || fail "only $NA re-keys seen on a's connection"

log "Girder dials erl, which re-keys as the TLS server"
# -connect_all false on e and c: otherwise e's global, told of g1 by c, dials g1 at the same
# time as g1 dials e, and the attempt e drops shows in g1's log as a handshake cut short (seen
# under TSan with two tests at a time)
ERL_ARGS="$(tls_args "$TMP/rekey.conf") -connect_all false" start_erl e
PE=$(dist_port e)
[ -n "$PE" ] || fail "no port for e"
ERL_ARGS="$(tls_args "$TMP/tls.conf") -connect_all false" tpeer c rekey_dialled "$G1" "$(node e)" >/dev/null
grep -q "^PASS rekey_dialled" "$TMP/c.out" || { cat "$TMP/c.out"; fail "10 MB over the connection g1 dialled"; }
grep -q "event=tls_up peer=127.0.0.1:$PE role=client version=$WANT " "$TMP/g1.log" ||
    fail "g1 did not dial e over $WANT"
NE=$(rekeys "127.0.0.1:$PE")
log "g1 went through $NE re-keys ($KIND) started by e"
[ "$NE" -ge 3 ] || fail "only $NE re-keys seen on the connection to e"
if grep -q "event=tls_failed\|event=nodedown node=e$SUF@" "$TMP/g1.log"; then
    grep "event=tls_failed\|event=nodedown" "$TMP/g1.log"
    fail "a connection failed while re-keying"
fi
log "tls rekey (TLS 1.${V#1}): ok"
