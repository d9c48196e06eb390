#!/bin/sh
# girder top: --once and --json against a girderd (control socket and distribution) and a real
# Erlang node; the live view quits on q and gives the terminal back.
. "$(dirname "$0")/../cli/lib.sh"

start_epmd
start_girder g1
G1=$(node g1)
start_erl e1
E1=$(node e1)
# a second girderd whose control socket is elsewhere: top must go through distribution
"$GIRDERD" --sname "g2$SUF" --cookie "$COOKIE" --control-socket "$TMP/g2.sock" >>"$TMP/g2.log" 2>&1 &
GPID=$!
PIDS="$PIDS $GPID"
GPIDS="$GPIDS $GPID"
wait_for 10 registered "g2$SUF" || fail "girderd g2 did not register"
G2=$(node g2)

# girderd through its control socket (no cookie needed: the socket is the node's)
expect 0 top "$G1" --once --interval 300 --limit 50
out_has "^girder top  $G1 \(girder, via control_socket\)"
out_has "^sched +1 \[[#.]{40}\] +[0-9.]+%"
out_has "^sched +2 \[[#.]{40}\] +[0-9.]+%"
out_has " echo +[0-9]"
out_has " kv +[0-9]"
out_has "^memory +rss "
expect 0 top "$G1" --once --json --interval 300 --limit 50 --sort memory
json 'd["kind"] == "girder" and d["via"] == "control_socket" and d["node"] == "'"$G1"'"'
json 'len(d["schedulers"]) == 2 and all(0 <= s["utilization"] <= 1 for s in d["schedulers"])'
json '{"echo", "kv"} <= {p["name"] for p in d["processes_top"]}'
json 'all(a["memory"] >= b["memory"] for a, b in zip(d["processes_top"], d["processes_top"][1:]))'
json 'd["memory"]["rss"] > 0 and d["processes"] > 5 and d["interval_ms"] >= 300'

# girderd through distribution
expect 0 top "$G2" --once --interval 300 --cookie "$COOKIE" --limit 50
out_has "^girder top  $G2 \(girder, via distribution\)"
out_has "^sched +2 \[[#.]{40}\] +[0-9.]+%"
out_has " echo +[0-9]"
out_has " kv +[0-9]"

# a real Erlang node: its registered processes, scheduler_wall_time put back as it was
expect 0 top "$E1" --once --interval 300 --cookie "$COOKIE" --limit 200
out_has "^girder top  $E1 \(erlang, via distribution\)"
out_has "^sched +1 \[[#.]{40}\] +[0-9.]+%"
out_has " code_server +[0-9]"
out_has " kernel_sup +[0-9]"
out_has "^memory +total "
expect 0 top "$E1" --once --json --interval 300 --cookie "$COOKIE" --limit 200 --sort mailbox
json 'd["kind"] == "erlang" and len(d["schedulers"]) >= 1'
json 'all(s["utilization"] is not None and 0 <= s["utilization"] <= 1 for s in d["schedulers"])'
json '{"code_server", "kernel_sup", "application_controller"} <= {p["name"] for p in d["processes_top"]}'
json 'd["memory"]["total"] > 0 and d["process_limit"] > 0'
json 'all(a["message_queue_len"] >= b["message_queue_len"] for a, b in zip(d["processes_top"], d["processes_top"][1:]))'
sleep 0.5
expect 0 rpc "$E1" erlang statistics '[scheduler_wall_time]' --cookie "$COOKIE"
out_has "^undefined$"

# the live view: refreshes, q quits, the terminal's normal screen and cursor come back
if command -v script >/dev/null 2>&1; then
    (sleep 1.5; printf q) | timeout 20 script -qfc "$GIRDER top $G1 --interval 200 --limit 3" /dev/null >"$TMP/live" 2>&1 || fail "live top did not quit on q"
    n=$(grep -o 'girder top  ' "$TMP/live" | wc -l)
    [ "$n" -ge 3 ] || fail "live top drew $n frames in 1.5 s at 200 ms"
    ok
    grep -q "$(printf '\033\[?1049l')" "$TMP/live" || fail "live top did not leave the alternate screen"
    grep -q "$(printf '\033\[?25h')" "$TMP/live" || fail "live top did not show the cursor again"
    ok
    # without a terminal: frames one after another, ended by SIGINT (Ctrl-C)
    "$GIRDER" top "$G1" --interval 200 >"$TMP/plain" 2>&1 &
    TP=$!
    sleep 1
    kill -INT "$TP"
    wait "$TP" || fail "top ended by SIGINT exited $?"
    [ "$(grep -c '^girder top  ' "$TMP/plain")" -ge 3 ] || fail "plain top drew too few frames"
    ok
else
    echo "# script(1) missing: the live view is not checked"
fi

# bash completion knows the commands and their flags
if command -v bash >/dev/null 2>&1; then
    C="$(cd "$(dirname "$0")/../../../cli" && pwd)/girder.bash"
    comp() { bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _girder; printf "%s\n" "${COMPREPLY[@]}"' _ "$C" "$@" >"$TMP/out"; }
    comp girder t
    out_has '^top$'
    out_has '^trace$'
    comp girder top g1 --
    out_has '^--interval$'
    out_has '^--once$'
    comp girder trace g1 --
    out_has '^--duration$'
    out_has '^--html$'
    out_has '^--name$'
    comp girder top g1 --sort ""
    out_has '^memory$'
fi

expect 0 top --help
out_has "^usage: girder top NODE"
expect 0 trace --help
out_has "^usage: girder trace NODE"
expect 2 top "$G1" --json --interval 300
err_has "--json goes with --once"
expect 2 top "$G1" --interval 5
echo "top: all checks passed"
