#!/bin/sh
# The shared libraries export their public API and nothing else: every dynamic symbol they
# define carries a public prefix, none a double underscore (internals), and the API is there.
# Usage: exports.sh LIBGIRDER_TERM LIBGIRDER_NODE LIBGIRDER_EPMD LIBGIRDER_DIST
set -eu
fails=0
for lib in "$@"; do
    # (AddressSanitizer defines an __odr_asan.NAME indicator next to each exported variable)
    syms=$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^__odr_asan[._]' || true)
    [ -n "$syms" ] || { echo "FAIL: $lib exports nothing"; fails=$((fails + 1)); continue; }
    bad=$(printf '%s\n' "$syms" | grep -v '^\(term\|etf\|nd\|epmd\|dist\|girder\)_[a-z0-9_]*$' |
          grep -v '^TERM_ATOM_[A-Z]*$' || true)
    internal=$(printf '%s\n' "$syms" | grep '__' || true)
    if [ -n "$bad$internal" ]; then
        echo "FAIL: $lib exports what is not public API:"
        printf '  %s\n' $bad $internal
        fails=$((fails + 1))
    else
        echo "ok: $(basename "$lib"): $(printf '%s\n' "$syms" | wc -l) public symbols"
    fi
done
# a few of each library's calls must be there (hidden visibility must not hide the API)
all=$(for lib in "$@"; do nm -D --defined-only "$lib"; done | awk '{print $3}')
for s in term_atom etf_decode term_parse girder_version TERM_ATOM_OK nd_init nd_spawn \
         nd_set_dist_hook epmd_register epmd_uv_register dist_start dist_ping; do
    printf '%s\n' "$all" | grep -qx "$s" || { echo "FAIL: $s not exported"; fails=$((fails + 1)); }
done
[ "$fails" -eq 0 ] || exit 1
echo PASS
