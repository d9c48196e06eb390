#!/bin/sh
# girderd's TLS options: flags, config-file keys and -ssl_dist_opt words; bad setups are one
# line naming the file or option, exit 2; nodes configured by words (in the config file, and on
# the command line) serve an erl TLS node, and dial one.
. "$(dirname "$0")/lib.sh"
start_epmd
make_certs
compile_peer
optfile "$TMP/tls.conf" node

# refused ARGS... -- TEXT: girderd ARGS exits 2 with one line on stderr containing TEXT.
refused() {
    _args=""
    while [ "$1" != -- ]; do _args="$_args $1"; shift; done
    _text=$2
    _st=0
    # shellcheck disable=SC2086
    timeout 20 "$GIRDERD" --sname "x$SUF" --cookie c --control-socket "" $_args \
        >"$TMP/r.out" 2>"$TMP/r.err" || _st=$?
    [ "$_st" = 2 ] || { cat "$TMP/r.err"; fail "girderd$_args: exit $_st, not 2"; }
    [ "$(wc -l <"$TMP/r.err")" = 1 ] || { cat "$TMP/r.err"; fail "girderd$_args: not one line"; }
    grep -q -- "$_text" "$TMP/r.err" || { cat "$TMP/r.err"; fail "girderd$_args: no '$_text'"; }
    log "refused: $(cat "$TMP/r.err")"
}
sed "s#$CERTS/node.pem#$CERTS/missing.pem#" "$TMP/tls.conf" >"$TMP/missing.conf"
refused --proto-dist inet_tls --ssl-dist-optfile "$TMP/missing.conf" -- \
    "^girderd: --ssl-dist-optfile: $TMP/missing.conf: server: option certfile: cannot read $CERTS/missing.pem: No such file or directory$"
refused --proto-dist inet_tls --ssl-dist-optfile "$TMP/nothere.conf" -- "nothere.conf: cannot open"
refused --ssl-dist-optfile "$TMP/tls.conf" -- "but proto_dist is inet_tcp (add --proto-dist inet_tls)"
refused --proto-dist inet_sctp -- "expected inet_tcp or inet_tls"
refused --proto-dist inet_tls --ssl-dist-opt server_certfile -- "ssl_dist_opt"
refused --proto-dist inet_tls --ssl-dist-opt server_nodelay true -- "nodelay"
printf '[{server, [{versions, [%s]}]}].\n' "'tlsv1.1'" >"$TMP/old.conf"
refused --proto-dist inet_tls --ssl-dist-optfile "$TMP/old.conf" -- "option versions: 'tlsv1.1' is refused"
cat >"$TMP/bad.config" <<EOT
[{proto_dist, "inet_tls"},
 {ssl_dist_optfile, "missing.conf"}].
EOT
refused --config "$TMP/bad.config" -- "bad.config:2: key ssl_dist_optfile: $TMP/missing.conf: server: option certfile"

log "the same keys in a config file, --check-config"
cat >"$TMP/g.config" <<EOT
[{proto_dist, inet_tls},
 {ssl_dist_opt, ["server_certfile", "$CERTS/node.pem", "server_keyfile", "$CERTS/node.key",
                 "server_cacertfile", "$CERTS/ca.pem", "server_verify", "verify_peer",
                 "server_fail_if_no_peer_cert", "true",
                 client_certfile, "$CERTS/node.pem", client_keyfile, "$CERTS/node.key",
                 client_cacertfile, "$CERTS/ca.pem", client_verify, verify_peer]}].
EOT
"$GIRDERD" --sname "y$SUF" --cookie c --check-config "$TMP/g.config" >"$TMP/check.out" 2>&1 ||
    { cat "$TMP/check.out"; fail "--check-config refused a good TLS config"; }
grep -q '{proto_dist, "inet_tls"}' "$TMP/check.out" || fail "check-config: $(cat "$TMP/check.out")"
grep -q '{ssl_dist_opt, \["server_certfile", ' "$TMP/check.out" || fail "check-config words"

log "a node set up by -ssl_dist_opt words serves an erl node that uses the optfile"
start_girder g1 --config "$TMP/g.config" --control-socket ""
ERL_ARGS=$(tls_args "$TMP/tls.conf") peer a serving "$(node g1)" >/dev/null
passed a serving
grep -q "event=tls_up .*role=server version=TLSv1.2" "$TMP/g1.log" || fail "no TLS connection"
if grep -q "tls_option_warning" "$TMP/g1.log"; then fail "warnings for a clean setup"; fi

log "the same words on the command line (--ssl-dist-opt), up to the next flag"
start_girder g2 --proto-dist inet_tls --ssl-dist-opt server_certfile "$CERTS/node.pem" \
    server_keyfile "$CERTS/node.key" server_cacertfile "$CERTS/ca.pem" server_verify verify_peer \
    server_fail_if_no_peer_cert true client_certfile "$CERTS/node.pem" \
    client_keyfile "$CERTS/node.key" client_cacertfile "$CERTS/ca.pem" client_verify verify_peer \
    --control-socket ""
ERL_ARGS=$(tls_args "$TMP/tls.conf") peer b serving "$(node g2)" >/dev/null
passed b serving
grep -q "event=tls_up .*role=server version=TLSv1.2" "$TMP/g2.log" || fail "g2: no TLS connection"
# and g2's client role, from the same words, dials the erl node that uses the optfile
ERL_ARGS=$(tls_args "$TMP/tls.conf") start_erl e
"$ERLC" -o "$TMP" "$TLSDIR/tls_peer.erl" || fail "erlc tls_peer"
ERL_ARGS=$(tls_args "$TMP/tls.conf") tpeer c girder_pings "$(node g2)" "$(node e)" pong >/dev/null
grep -q "^PASS girder_pings" "$TMP/c.out" || { cat "$TMP/c.out"; fail "g2 did not reach e"; }
grep -q "event=tls_up .*role=client version=TLSv1.2" "$TMP/g2.log" || fail "g2 dialled e without TLS"
if grep -q "tls_option_warning" "$TMP/g2.log"; then fail "warnings for a clean setup (g2)"; fi
log "tls girderd: ok"
