#!/bin/sh
# Makes the image debian:12 when the engine does not have it: no registry is reachable here, so
# the root filesystem is made with debootstrap (minbase, bookworm) and imported.
# usage: docker/base.sh WORKDIR      (needs root, debootstrap, and the docker client)
# MIRROR (env) overrides the Debian mirror, by default the first of this machine's apt sources.
set -eu
work=${1:?usage: base.sh WORKDIR}
if docker image inspect debian:12 >/dev/null 2>&1; then
    echo "base: debian:12 is there"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "base: debootstrap is not installed" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "base: debootstrap needs root" >&2; exit 1; }
mirror=${MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
             grep -v security | head -n 1)
fi
if [ -z "$mirror" ]; then
    mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) bookworm .*/\2/p' /etc/apt/sources.list \
             2>/dev/null | head -n 1)
fi
mirror=${mirror:-http://deb.debian.org/debian}
rootfs=$work/rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs"
echo "base: debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 20 "$work/debootstrap.log" >&2
    exit 1
}
# the image's apt uses the same mirror
echo "deb $mirror bookworm main" >"$rootfs/etc/apt/sources.list"
tar -C "$rootfs" -c . | docker import - debian:12 >/dev/null
rm -rf "$rootfs"
echo "base: debian:12 imported"
