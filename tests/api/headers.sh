#!/bin/sh
# Every public header compiles alone (strict C11 with POSIX 2008 - libuv's headers need POSIX -
# and warnings as errors); the application headers
# stay narrow: node.h declares no provider call, epmd.h no libuv call whatever comes before it.
# Usage: headers.sh CC INCLUDE_DIR...
set -eu
cc=$1
shift
incs=""
for d in "$@"; do incs="$incs -I$d"; done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/girder-headers.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fails=0

# compiles NAME: the C text on stdin must compile.
compiles() {
    cat >"$tmp/$1.c"
    # shellcheck disable=SC2086
    $cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wpedantic -Werror -Werror=implicit-function-declaration \
        -fsyntax-only $incs "$tmp/$1.c" 2>"$tmp/$1.err"
}

n=0
for d in "$@"; do
    for h in "$d"/girder/*.h; do
        [ -e "$h" ] || continue
        name=$(basename "$h")
        n=$((n + 1))
        # (a declaration after it: a header of macros alone is an empty translation unit)
        if printf '#include <girder/%s>\ntypedef int unit;\n' "$name" | compiles "alone-$name"
        then
            echo "ok: girder/$name compiles alone"
        else
            echo "FAIL: girder/$name does not compile alone:"; cat "$tmp/alone-$name.err"
            fails=$((fails + 1))
        fi
    done
done
[ "$n" -ge 10 ] || { echo "FAIL: only $n public headers found"; exit 1; }

# narrow NAME WRONG RIGHT USE: USE compiles after RIGHT, and not after WRONG.
narrow() {
    if ! printf '%s\n%s\n' "$3" "$4" | compiles "$1-right"; then
        echo "FAIL: $1: does not compile even with the right header:"; cat "$tmp/$1-right.err"
        fails=$((fails + 1))
    elif printf '%s\n%s\n' "$2" "$4" | compiles "$1-wrong"; then
        echo "FAIL: $1: compiles with the application header alone"
        fails=$((fails + 1))
    else
        echo "ok: $1"
    fi
}
narrow "provider API only in node_dist.h" '#include <girder/node.h>' \
    '#include <girder/node_dist.h>' 'void f(void) { nd_set_dist_hook(0, 0); }'
narrow "nd_signal only in node_dist.h" '#include <girder/node.h>' \
    '#include <girder/node_dist.h>' 'int f(void) { return ND_SIG_MSG; }'
narrow "libuv calls only in epmd_uv.h" '#include <uv.h>
#include <girder/epmd.h>' '#include <girder/epmd_uv.h>' \
    'int f(void) { return epmd_uv_register(0, 0, 0, 0, 0, 0); }'
narrow "no provider API in girder.h" '#include <girder/girder.h>' \
    '#include <girder/girder.h>
#include <girder/node_dist.h>' 'void f(void) { nd_set_node(0, 0); }'
[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo PASS
