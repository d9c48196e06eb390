#!/bin/sh
# Installs the Debian packages Girder needs to build and test, only those missing.
set -eu
pkgs="build-essential cmake pkg-config clang-14 libclang-rt-14-dev clang-format
openssl libssl-dev libuv1-dev libmsgpack-dev libcmocka-dev zlib1g-dev
erlang-base erlang-ssl erlang-crypto erlang-public-key erlang-asn1 erlang-dev
erlang-src elixir iproute2 iptables procps chromium
gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing Debian packages:$missing" >&2
  echo "install-deps: run as root, or: sudo apt-get install$missing" >&2
  exit 1
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
