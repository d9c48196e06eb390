#!/bin/sh
# Builds libnode (+ the term core it needs) for aarch64 and runs smoke.c under qemu-user, with
# the assembly context switch and with the ucontext fallback.
# Needs: gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user (Debian packages).
set -eu
root=$(cd "$(dirname "$0")/../../.." && pwd)
out=${1:-/tmp/girder-aarch64}
mkdir -p "$out"
cc=aarch64-linux-gnu-gcc
tc="$root/term_codec/src"
# the term core without the ETF codec (which would need zlib for the target)
srcs="$root/libnode/src/*.c $tc/term.c $tc/atom.c $tc/big.c $tc/compare.c $tc/pattern.c $tc/text_print.c $tc/text_parse.c"
for variant in asm ucontext; do
  defs=""
  [ "$variant" = ucontext ] && defs="-DND__UCONTEXT=1"
  # shellcheck disable=SC2086
  $cc -O2 -g -std=gnu11 -D_GNU_SOURCE $defs -Wall -Wextra -Werror -Wno-unused-parameter \
      -I"$root/libnode/include" -I"$root/libnode/src" -I"$root/term_codec/include" -I"$root/term_codec/base" -I"$tc" \
      $srcs "$root/libnode/tests/cross/smoke.c" -o "$out/smoke-$variant" -lpthread -lm
  printf 'aarch64 %s: ' "$variant"
  QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 "$out/smoke-$variant"
done
