#!/bin/sh
# girder's command line without any node: help everywhere (with an example), usage errors
# (status 2, one line), bad term text refused before any network traffic, TLS flags refused.
. "$(dirname "$0")/lib.sh"
# nothing listens here: a command that touched the network would fail with status 1, not 2
export ERL_EPMD_PORT=1

expect 0 --help
out_has '^  ping '
out_has '^  cluster up '
out_has '--timeout MS'
expect 0 help
expect 2
expect 0 --version
out_has '^girder [0-9]'
for c in ping nodes ps info rpc spawn send exit stop; do
    expect 0 "$c" --help
    out_has "^usage: girder $c "
    out_has '^  girder '"$c"' '     # the example
    expect 0 help "$c"
    out_has "^usage: girder $c "
done
for s in up status down; do
    expect 0 cluster "$s" --help
    out_has "^usage: girder cluster $s"
    out_has "^  girder cluster $s"
    expect 0 --help cluster "$s"    # the flag may come first
    out_has "^usage: girder cluster $s"
done
expect 0 cluster --help
out_has 'up\|status\|down|up .*status.*down'
expect 0 cluster up --help
out_has '\[--module M\]\.\.\.'
out_has '^  girder cluster up .*--module workload'
expect 2 cluster
expect 2 cluster sideways
err_has "unknown subcommand 'sideways'"
err_one_line
expect 0 term --help
out_has 'girder term decode'

# usage errors: exit 2 and one line saying what
expect 2 frobnicate
err_has "unknown command 'frobnicate'"
err_one_line
expect 2 ping
err_has 'wrong number of arguments'
err_one_line
expect 2 ping g1 --frob
err_has "unknown flag '--frob'"
err_one_line
expect 2 ping g1 --timeout
err_has '--timeout needs a value'
expect 2 ping g1 --timeout soon
err_has 'not a number of milliseconds'
expect 2 ps g1 --sort age
err_has "'age' is not reductions, memory or mailbox"
expect 2 ping g1 --sort memory
err_has 'ping does not take --sort'
expect 2 rpc g1 erlang
err_has 'wrong number of arguments'
expect 2 ping 'a@b@c'
err_has 'is not a node name'
expect 2 ping '@host'
err_has 'is not a node name'

# bad term text: status 2 before any connection (the port mapper at port 1 is never asked)
expect 2 rpc g1 erlang node '[1,'
err_has '^girder: ARGS: .* at byte 3'
err_one_line
expect 2 rpc g1 erlang node 'notalist'
err_has 'is not a proper list'
expect 2 send g1 kv '{unclosed'
err_has '^girder: TERM: '
err_one_line
expect 2 exit g1 kv '"open'
err_has '^girder: REASON: '
expect 2 send g1 '<0.1' hello
err_has '^girder: PID: '
expect 2 rpc g1 "'unterminated" node
err_has 'MOD: .* is not an atom'

# TLS flags: the optfile is read before anything else; usage errors say what is missing
expect 2 ping g1 --proto-dist inet_tls --ssl-dist-optfile /nonexistent.conf
err_has '^girder: --ssl-dist-optfile: /nonexistent.conf: cannot open'
err_one_line
expect 2 ping g1 --ssl-dist-optfile /nonexistent.conf
err_has 'add --proto-dist inet_tls'
expect 2 cluster up --proto-dist inet_tls
err_has 'cluster up over TLS needs --ssl-dist-optfile'
expect 2 ping g1 --proto-dist sctp
err_has 'unknown protocol'

# --module: cluster up only, a name or an existing file, at most 8; refused before anything
# starts (no cluster directory is made)
expect 2 ping g1 --module workload
err_has 'ping does not take --module'
expect 2 cluster up --module '' --dir "$TMP/m"
err_has "^girder: --module '': give a module name"
err_one_line
expect 2 cluster up --module 'a b' --dir "$TMP/m"
err_has "^girder: --module 'a b': give a module name"
expect 2 cluster up --module ./no/such/module.so --dir "$TMP/m"
err_has '^girder: --module ./no/such/module.so: No such file or directory$'
expect 2 cluster up -n 0 --erlang 1 --module workload --dir "$TMP/m"
err_has '--module is for girderd nodes'
expect 2 cluster up --module a --module b --module c --module d --module e --module f --module g --module h --module i --dir "$TMP/m"
err_has 'at most 8 modules'
[ ! -e "$TMP/m" ] || fail "a refused cluster up made its directory"
ok

# no cookie anywhere: a usage error that says where it looked
expect 2 ping g1
err_has 'no cookie: give --cookie'
err_one_line

# flags before the command and after the arguments, and --flag=value, reach the same check;
# a bare NODE is name@<this host's short name>
expect 1 --cookie c --timeout 300 ping g1
err_has "cannot reach the port mapper at 127\.0\.0\.1:1 for g1@$HOST: connection refused"
out_has "^g1@$HOST pang$"
err_one_line
expect 1 ping g1 --cookie=c --timeout=300
err_has 'cannot reach the port mapper at 127\.0\.0\.1:1'

# term keeps working
printf '{a,[1,2],<<"x">>}' | "$GIRDER" term encode | "$GIRDER" term decode > "$TMP/out"
out_has '^\{a,\[1,2\],<<"x">>\}$'
