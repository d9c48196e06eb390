#!/bin/sh
# Makes a throw-away PKI for the TLS tests: two CAs, node certificates (good, expired, wrong host).
#
# Usage: make-certs.sh DIR [HOST...]
# The node certificates name every HOST (default: localhost, 127.0.0.1, $(hostname -s)) as a
# DNS SAN, and each numeric HOST also as an IP SAN (OTP checks a node's host as a DNS name).
# Everything is generated here, now; nothing private is ever committed.
#
# Files written in DIR (keys are unencrypted PKCS#8 unless said otherwise):
#   ca.pem ca.key             the CA the nodes trust
#   node.pem node.key         CA-signed, serverAuth+clientAuth, SANs for every HOST
#   node-enc.key              node.key encrypted (AES-256) with the password "girder-pw"
#   chain.pem                 node.pem followed by ca.pem
#   expired.pem expired.key   CA-signed, same SANs, valid 2000-01-01 .. 2001-01-01
#   otherhost.pem .key        CA-signed, SAN DNS:other.invalid only (host-name mismatch)
#   nosan.pem nosan.key       CA-signed, CN=HOST1 and no SAN at all
#   ca2.pem ca2.key           a second, unrelated CA
#   rogue.pem rogue.key       signed by ca2, same SANs as node.pem (unknown CA)
#   self.pem self.key         self-signed, same SANs (no CA at all)
#   crl.pem                   a CRL of ca that revokes revoked.pem
#   revoked.pem revoked.key   CA-signed, same SANs, listed in crl.pem
#   crls/                     crl.pem under its hash name (<hash>.r0), as ssl_crl_hash_dir reads
#   ipsan.pem ipsan.key       CA-signed, SAN with IP:127.0.0.1 only
#   wildcn.pem wildcn.key     CA-signed, CN=*.girder.test and no SAN
#   inter.pem inter.key       an intermediate CA signed by ca
#   leafi.pem leafi.key       signed by inter, same SANs; leafi-chain.pem = leafi.pem + inter.pem
set -eu
dir=${1:?usage: make-certs.sh DIR [HOST...]}
shift
[ $# -gt 0 ] || set -- localhost 127.0.0.1 "$(hostname -s)"
mkdir -p "$dir"
cd "$dir"

san=""
for h in "$@"; do
    san="${san:+$san,}DNS:$h"
    case $h in
    *[!0-9.]*) ;;
    *) san="$san,IP:$h" ;;
    esac
done

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# ca NAME: a self-signed CA certificate NAME.pem with key NAME.key and an `openssl ca` database
ca() {
    key "$1.key"
    openssl req -new -x509 -key "$1.key" -out "$1.pem" -days 3650 -subj "/CN=Girder test $1" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
        2>/dev/null
    mkdir -p "db-$1"
    : >"db-$1/index.txt"
    echo 1000 >"db-$1/serial"
    echo 1000 >"db-$1/crlnumber"
    cat >"db-$1/ca.cnf" <<EOF
[ca]
default_ca = this
[this]
database = db-$1/index.txt
serial = db-$1/serial
crlnumber = db-$1/crlnumber
new_certs_dir = db-$1
certificate = $1.pem
private_key = $1.key
default_md = sha256
default_crl_days = 3650
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
[leaf]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = \${ENV::LEAF_SAN}
[inter]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
[leaf_nosan]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
EOF
}

# leaf CA NAME SAN [openssl ca dates...]: NAME.pem/NAME.key signed by CA ("" SAN: none)
leaf() {
    _ca=$1 _name=$2 _san=$3
    shift 3
    key "$_name.key"
    openssl req -new -key "$_name.key" -out "$_name.csr" -subj "/CN=${LEAF_CN:-$first}" 2>/dev/null
    _ext=leaf
    [ -n "$_san" ] || _ext=leaf_nosan
    LEAF_SAN=${_san:-DNS:unused} openssl ca -batch -config "db-$_ca/ca.cnf" -extensions "$_ext" \
        -in "$_name.csr" -out "$_name.pem" -notext "$@" 2>/dev/null
    rm -f "$_name.csr"
}

first=$1
export LEAF_SAN=DNS:unused # every `openssl ca` run reads the config, which names it
ca ca
ca ca2
leaf ca node "$san" -days 3650
leaf ca expired "$san" -startdate 20000101000000Z -enddate 20010101000000Z
leaf ca otherhost "DNS:other.invalid" -days 3650
leaf ca nosan "" -days 3650
leaf ca revoked "$san" -days 3650
leaf ca2 rogue "$san" -days 3650
openssl ca -batch -config db-ca/ca.cnf -revoke revoked.pem 2>/dev/null
openssl ca -batch -config db-ca/ca.cnf -gencrl -out crl.pem 2>/dev/null
mkdir -p crls
cp crl.pem "crls/$(openssl crl -hash -noout -in crl.pem).r0"
leaf ca ipsan "IP:127.0.0.1" -days 3650
LEAF_CN="*.girder.test" leaf ca wildcn "" -days 3650
leaf ca inter "" -days 3650 -extensions inter
ca_from_leaf() { # turns a signed leaf into a CA that can sign (its own openssl ca database)
    cp -r db-ca "db-$1"
    : >"db-$1/index.txt"
    sed -i "s/^certificate = .*/certificate = $1.pem/; s/^private_key = .*/private_key = $1.key/; s/db-ca\//db-$1\//g" "db-$1/ca.cnf"
}
ca_from_leaf inter
leaf inter leafi "$san" -days 3650
cat leafi.pem inter.pem >leafi-chain.pem
key self.key
openssl req -new -x509 -key self.key -out self.pem -days 3650 -subj "/CN=$first" \
    -addext "subjectAltName=$san" 2>/dev/null
openssl pkcs8 -topk8 -in node.key -out node-enc.key -v2 aes-256-cbc -passout pass:girder-pw
cat node.pem ca.pem >chain.pem
chmod 600 ./*.key
