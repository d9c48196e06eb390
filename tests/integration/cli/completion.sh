#!/bin/sh
# The bash completion: commands, cluster subcommands, flags per command, flag values and
# node names from the cluster directory.
. "$(dirname "$0")/lib.sh"
command -v bash >/dev/null || fail "bash is not installed"
COMPLETION="$(cd "$(dirname "$0")/../../../cli" && pwd)/girder.bash"
mkdir -p "$TMP/c/.girder/cluster"
printf 'girder-cluster\t1\nepmd\t4369\t0\t0\nnode\tg1@h\tgirder\t1\t1\t/x/g1.log\t-\nnode\te1@h\terlang\t2\t2\t/x/e1.log\t-\n' \
    > "$TMP/c/.girder/cluster/cluster"

# comp WORDS...: the completions bash offers for the last word
comp() {
    (cd "$TMP/c" && bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _girder; printf "%s\n" "${COMPREPLY[@]}"' \
        _ "$COMPLETION" "$@") > "$TMP/out"
}
comp girder p
out_has '^ping$'
out_has '^ps$'
comp girder cluster ""
out_has '^up$'
out_has '^down$'
comp girder cluster up -
out_has '^--erlang$'
out_has '^-n$'
comp girder ps g1 --so
out_has '^--sort$'
comp girder ps g1 --sort ""
out_has '^mailbox$'
comp girder ping ""
out_has '^g1$'
out_has '^e1@h$'
comp girder --cookie c rpc e
out_has '^e1$'
comp girder ping g1 --proto-dist ""
out_has '^inet_tls$'
comp girder term ""
out_has '^decode$'
comp girder cluster up --mo
out_has '^--module$'
comp girder cluster up --module ""
comp girder cluster up --module w1 -
out_has '^--erlang$'
