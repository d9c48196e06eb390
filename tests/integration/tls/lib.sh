# Shared helpers for the TLS integration tests: dist's helpers plus certificates and optfiles.
. "$(dirname "$0")/../dist/lib.sh"
TLSDIR=$(cd "$(dirname "$0")" && pwd)
HERE="$TLSDIR/../dist" # compile_peer's dist_peer.erl
CERTS="$TMP/certs"

# make_certs: a throw-away PKI in $CERTS naming this host (see make-certs.sh).
make_certs() {
    sh "$TLSDIR/make-certs.sh" "$CERTS" "$HOST" localhost 127.0.0.1 >/dev/null || fail "make-certs"
}

# optfile FILE CERT [VERSIONS] [CLIENT_CERT]: an optfile for mutual TLS, server and client roles
# with CERT.pem/CERT.key (the client role with CLIENT_CERT, "none" for no certificate),
# trusting ca.pem, verify_peer, fail_if_no_peer_cert; VERSIONS e.g. "'tlsv1.3'" (default:
# OTP's, TLS 1.2 only).
optfile() {
    _f=$1 _c=$2 _v=${3:-} _cc=${4:-$2}
    _vers=""
    [ -n "$_v" ] && _vers=", {versions, [$_v]}"
    _ccert="{certfile, \"$CERTS/$_cc.pem\"}, {keyfile, \"$CERTS/$_cc.key\"}, "
    [ "$_cc" = none ] && _ccert=""
    cat >"$_f" <<EOT
%% written by tests/integration/tls/lib.sh
[{server, [{certfile, "$CERTS/$_c.pem"}, {keyfile, "$CERTS/$_c.key"},
           {cacertfile, "$CERTS/ca.pem"}, {verify, verify_peer},
           {fail_if_no_peer_cert, true}$_vers]},
 {client, [$_ccert{cacertfile, "$CERTS/ca.pem"}, {verify, verify_peer}$_vers]}].
EOT
}

# tls_args FILE: erl's flags for TLS distribution with optfile FILE.
tls_args() { echo "-proto_dist inet_tls -ssl_dist_optfile $1"; }

# dist_port NAME: the distribution port the port mapper has for NAME$SUF.
dist_port() {
    "$GIRDER_EPMD" -port "$ERL_EPMD_PORT" -names 2>/dev/null |
        sed -n "s/^name $1$SUF at port \([0-9]*\)\$/\1/p"
}

# tls_failed LOG TEXT: LOG has an event=tls_failed line containing TEXT.
tls_failed() { grep "event=tls_failed" "$1" | grep -q -- "$2"; }

# tpeer NAME CASE ARGS...: runs tls_peer:CASE on a fresh erl node NAME (foreground, bounded).
tpeer() {
    _n=$1; _case=$2; shift 2
    # shellcheck disable=SC2086
    timeout 90 "$ERL" -sname "$_n$SUF" -setcookie "$COOKIE" -noshell -pa "$TMP" ${ERL_ARGS:-} \
        -run tls_peer main "$_case" "$@" >"$TMP/$_n.out" 2>&1 || true
    cat "$TMP/$_n.out"
}
