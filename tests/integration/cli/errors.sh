#!/bin/sh
# Every error path gives its exit status and one line that says which thing is wrong: wrong
# cookie, unknown node name, unreachable port mapper, unresolvable host, malformed term text,
# badrpc, an unresponsive node (bounded by --timeout, never a hang).
. "$(dirname "$0")/lib.sh"
start_epmd
start_girder g1
start_erl e1
G1=$(node g1)
E1=$(node e1)

# wrong cookie, against Girder and Erlang: names the cookie's source
for n in "$G1" "$E1"; do
    expect 1 ping "$n" --cookie not-the-cookie
    out_has "^$n pang$"
    err_has "^girder: $n \(port [0-9]+\) closed the connection during the handshake: the cookie is most likely wrong \(girder used the cookie from --cookie\)$"
    err_one_line
    expect 1 rpc "$n" erlang node --cookie not-the-cookie --json
    json "not d['ok'] and 'cookie is most likely wrong' in d['error']"
done
printf 'stale-cookie' > "$HOME/.erlang.cookie"
chmod 400 "$HOME/.erlang.cookie"
expect 1 info "$G1"
err_has "cookie from $HOME/.erlang.cookie"
err_one_line
rm -f "$HOME/.erlang.cookie"
# the right cookie from ~/.erlang.cookie works
printf '%s\n' "$COOKIE" > "$HOME/.erlang.cookie"
expect 0 ping "$G1" "$E1"
rm -f "$HOME/.erlang.cookie"
C="--cookie $COOKIE"

# unknown node: lists the names the port mapper has
expect 1 ping "nobody$SUF" $C
err_has "^girder: no node named 'nobody$SUF' is registered with the port mapper at 127\.0\.0\.1:$ERL_EPMD_PORT \(it has: .*g1$SUF.*\)$"
err_has "e1$SUF"
err_one_line
expect 1 ps "nobody$SUF" $C --json
json "not d['ok'] and 'no node named' in d['error']"

# unreachable port mapper: address and port
PORT=$ERL_EPMD_PORT
ERL_EPMD_PORT=1 expect 1 ping "$G1" $C
err_has "^girder: cannot reach the port mapper at 127\.0\.0\.1:1 for $G1: connection refused"
err_one_line
export ERL_EPMD_PORT=$PORT

# a name registered with the port mapper at a port where nothing listens
GHOST_PORT=$(random_port)
"$PY" -c 'import socket,struct,sys,time
name = sys.argv[1].encode()
body = struct.pack(">BHBBHHH", 120, int(sys.argv[2]), 77, 0, 6, 5, len(name)) + name + struct.pack(">H", 0)
s = socket.create_connection(("127.0.0.1", int(sys.argv[3])))
s.sendall(struct.pack(">H", len(body)) + body)
s.recv(16)
time.sleep(60)' "ghost$SUF" "$GHOST_PORT" "$ERL_EPMD_PORT" &
PIDS="$PIDS $!"
wait_for 5 registered "ghost$SUF" || fail "the ghost registration did not happen"
expect 1 ping "ghost$SUF" $C
err_has "^girder: ghost$SUF@$HOST is registered at port $GHOST_PORT but refuses connections"
err_one_line

# a host that does not resolve
expect 1 ping "x@no-such-host-$$.invalid" $C
err_has "cannot resolve the host 'no-such-host-$$.invalid'"
err_one_line

# malformed term text: status 2, before any connection
expect 2 rpc "$G1" erlang node '[a,,b]' $C
err_has '^girder: ARGS: .* at byte 3 of'
err_one_line
out_empty
expect 2 send "$E1" init '{a' $C --json
out_empty
err_one_line

# badrpc: an exception and an undefined function, status 1 and one line
expect 1 rpc "$E1" erlang error '[{badrpc_test, 42}]' $C
err_has "^girder: rpc $E1 erlang:error/1: exception error: \{badrpc_test,42\} in erlang:error/1$"
err_one_line
expect 1 rpc "$G1" demo nope $C
err_has "^girder: rpc $G1 demo:nope/0: exception error: undef in demo:nope/0$"
err_one_line

# a node that stopped answering (SIGSTOP): every command ends within its timeout
kill -STOP "$GPID"
T0=$(date +%s)
# (dist_connect's DIST_ETIMEOUT; the reason dist logged, if any, is the detail)
stalled="^girder: (cannot connect to $G1 \(port [0-9]+\): handshake timeout|$G1 \(port [0-9]+\) did not answer within 1500 ms)"
expect 1 ping "$G1" $C --timeout 1500
err_one_line
err_has "$stalled"
expect 1 rpc "$G1" erlang node $C --timeout 1500
err_one_line
err_has "$stalled"
[ $(( $(date +%s) - T0 )) -le 8 ] || fail "two commands with --timeout 1500 took more than 8 s"
ok
kill -CONT "$GPID"
