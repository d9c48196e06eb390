#!/bin/sh
# girderd's configuration: precedence (flag > file > environment > default), every kind of
# validation error (one line naming file, line and key; exit 2), --check-config, the cookie file
# check, and docs/girderd.md's option table against the one in the binary.
. "$(dirname "$0")/lib.sh"

# expect_error WHAT PATTERN CMD...: CMD must exit 2 with exactly one line on stderr matching PATTERN.
expect_error() {
    _what=$1; _pat=$2; shift 2
    set +e
    "$@" >"$TMP/out" 2>"$TMP/err"
    _rc=$?
    set -e
    [ "$_rc" -eq 2 ] || { cat "$TMP/err"; fail "$_what: exit $_rc, expected 2"; }
    [ "$(wc -l <"$TMP/err")" -eq 1 ] || { cat "$TMP/err"; fail "$_what: not one line"; }
    grep -q -- "$_pat" "$TMP/err" || { cat "$TMP/err"; fail "$_what: message does not match $_pat"; }
    pass "$_what ($(cat "$TMP/err"))"
}

# value KEY: the line of --check-config's output for KEY.
value() { grep "^[[ ]{$1," "$TMP/out"; }

cd "$TMP"
C=$TMP/node.config

# ---------------------------------------------------------------- precedence
cat >"$C" <<'CFG'
%% a config file is one Erlang proplist
[{sname, "prec"},
 {cookie, "c"},
 {epmd_port, 2222},
 {log_level, warning}].
CFG
ERL_EPMD_PORT=1111 GIRDER_LOG_LEVEL=debug "$GIRDERD" --check-config "$C" --epmd-port 3333 >"$TMP/out"
value epmd_port | grep -q '{epmd_port, 3333}, % --epmd-port' || fail "flag over file: $(value epmd_port)"
value log_level | grep -q "{log_level, warning}, % $C:5: key log_level" || fail "file over env: $(value log_level)"
pass "a flag overrides the file"
ERL_EPMD_PORT=1111 "$GIRDERD" --check-config "$C" >"$TMP/out"
value epmd_port | grep -q "{epmd_port, 2222}, % $C:4: key epmd_port" || fail "file over env: $(value epmd_port)"
pass "the file overrides the environment"
printf '[{sname, "prec"}, {cookie, "c"}].\n' >"$C"
ERL_EPMD_PORT=1111 GIRDER_LOG_LEVEL=debug "$GIRDERD" --check-config "$C" >"$TMP/out"
value epmd_port | grep -q '{epmd_port, 1111}, % ERL_EPMD_PORT' || fail "env over default: $(value epmd_port)"
value log_level | grep -q '{log_level, debug}, % GIRDER_LOG_LEVEL' || fail "env over default: $(value log_level)"
pass "the environment overrides the default"
env -u ERL_EPMD_PORT "$GIRDERD" --check-config "$C" >"$TMP/out"
value epmd_port | grep -q '{epmd_port, 4369}, % default' || fail "default: $(value epmd_port)"
pass "the default when nothing is given"

# lists: the flags replace the file's list; module paths in the file are relative to the file
mkdir -p "$TMP/etc"
printf '[{sname, "l"}, {cookie, "c"}, {modules, ["mods/a.so", b]}, {log_file, "girderd.log"}].\n' >"$TMP/etc/g.config"
"$GIRDERD" --check-config "$TMP/etc/g.config" >"$TMP/out"
value modules | grep -q "{modules, \[\"$TMP/etc/mods/a.so\", \"b\"\]}" || fail "file list: $(value modules)"
value log_file | grep -q "{log_file, \"$TMP/etc/girderd.log\"}" || fail "relative path: $(value log_file)"
"$GIRDERD" --check-config "$TMP/etc/g.config" --module x --module y >"$TMP/out"
value modules | grep -q '{modules, \["x", "y"\]}, % --module' || fail "flag list: $(value modules)"
pass "list flags replace the file's list; paths in the file are relative to it"

# the printed configuration is an Erlang term file that erl reads and girderd reads back
"$GIRDERD" --check-config "$TMP/etc/g.config" --hidden >"$TMP/printed.config"
"$ERL" -noshell -eval '{ok, [L]} = file:consult(hd(init:get_plain_arguments())),
    true = proplists:get_value(hidden, L), "l" = proplists:get_value(sname, L),
    io:format("consulted~n"), halt().' -extra "$TMP/printed.config" >"$TMP/erl.out" 2>&1 \
    || { cat "$TMP/erl.out"; fail "erl cannot read the printed configuration"; }
"$GIRDERD" --check-config "$TMP/printed.config" >"$TMP/out"
value hidden | grep -q '{hidden, true}' || fail "hidden lost"
pass "--check-config prints a config file erl's file:consult reads and girderd reads back"

# a real node: the flag's listen port wins over the file's, the file's port mapper over the env's
start_epmd
P1=$(random_port); P2=$(random_port)
cat >"$C" <<CFG
[{sname, "prec$SUF"}, {cookie, "$COOKIE"}, {listen_port, $P1}, {epmd_port, $ERL_EPMD_PORT},
 {control_socket, "$TMP/prec.sock"}].
CFG
ERL_EPMD_PORT=$((ERL_EPMD_PORT + 1)) "$GIRDERD" --config "$C" --listen-port "$P2" >>"$TMP/prec.log" 2>&1 &
GPID=$!; PIDS="$PIDS $GPID"
wait_for 20 "$DAEMON_CTL" call "$TMP/prec.sock" api.info || fail "node with a config file did not start"
ctl "$TMP/prec.sock" node.info >"$TMP/info.out"
grep -q "\"listen_port\":$P2," "$TMP/info.out" || fail "listen port: $(cat "$TMP/info.out")"
registered "prec$SUF" || fail "not registered with the port mapper named in the file"
pass "a running node: --listen-port over the file, the file's epmd_port over ERL_EPMD_PORT"
kill -TERM "$GPID"; wait "$GPID" || fail "exit status $? after SIGTERM"

# ---------------------------------------------------------------- validation errors
printf '[{sname, "v"},\n {cookie, "c"},\n {no_such_key, 1}].\n' >"$C"
expect_error "unknown key" "^girderd: $C:3: unknown key no_such_key\$" "$GIRDERD" --config "$C"
printf '[{sname, "v"},\n {listen_port, "abc"}].\n' >"$C"
expect_error "wrong type" "^girderd: $C:2: key listen_port: expected an integer in 0..65535, got \"abc\"\$" "$GIRDERD" --config "$C"
printf '[{sname, "v"},\n\n {listen_port, 70000}].\n' >"$C"
expect_error "out of range" "^girderd: $C:3: key listen_port: 70000 is out of range 0..65535\$" "$GIRDERD" --config "$C"
printf '[{sname, "v"}, {hidden, yes}].\n' >"$C"
expect_error "a boolean" "^girderd: $C:1: key hidden: expected true or false, got yes\$" "$GIRDERD" --config "$C"
printf '[{sname, "v"},\n {log_level, loud}].\n' >"$C"
expect_error "a level" "^girderd: $C:2: key log_level: expected one of .*got loud\$" "$GIRDERD" --config "$C"
printf '[{sname, "v"},\n {modules, [1, 2]}].\n' >"$C"
expect_error "a list of names" "^girderd: $C:2: key modules: expected a list of names, got element 1\$" "$GIRDERD" --config "$C"
printf '[{sname, "v"},\n {ticktime, 0}].\n' >"$C"
expect_error "below the range" "^girderd: $C:2: key ticktime: 0 is out of range 1..86400\$" "$GIRDERD" --config "$C"
printf '[{sname, "v"},\n {cookie, "a"},\n\n {cookie, "b"}].\n' >"$C"
expect_error "a key given twice" "^girderd: $C:4: key cookie: given twice (also on line 2)\$" "$GIRDERD" --config "$C"
printf '[{sname, "v"},\n {cookie, "a"}\n {hidden, true}].\n' >"$C"
expect_error "a syntax error" "^girderd: $C:3: syntax error: " "$GIRDERD" --config "$C"
printf '{sname, "v"}.\n' >"$C"
expect_error "not a list" "^girderd: $C:1: expected a list \[{Key, Value}, ...\]\$" "$GIRDERD" --config "$C"
printf '[{sname, "v"},\n sname].\n' >"$C"
expect_error "not a pair" "^girderd: $C:2: expected {Key, Value}, got sname\$" "$GIRDERD" --config "$C"
expect_error "an unreadable file" "^girderd: $TMP/nope.config: cannot read: No such file or directory\$" "$GIRDERD" --config "$TMP/nope.config"
expect_error "a directory as config file" "^girderd: $TMP: cannot read: Is a directory\$" "$GIRDERD" --config "$TMP"
expect_error "--check-config reports the same errors" "^girderd: $TMP/nope.config: cannot read" "$GIRDERD" --check-config "$TMP/nope.config"
expect_error "a flag out of range" "^girderd: --listen-port: 70000 is out of range 0..65535\$" "$GIRDERD" --sname v --cookie c --listen-port 70000
expect_error "a flag of the wrong type" "^girderd: --schedulers: expected an integer in 0..1024, got \"many\"\$" "$GIRDERD" --sname v --cookie c --schedulers many
expect_error "an unknown flag" "^girderd: unknown option --no-such (see --help)\$" "$GIRDERD" --sname v --no-such
expect_error "a flag without its value" "^girderd: --cookie needs a value (COOKIE)\$" "$GIRDERD" --sname v --cookie
expect_error "a variable out of range" "^girderd: ERL_EPMD_PORT: 0 is out of range 1..65535\$" env ERL_EPMD_PORT=0 "$GIRDERD" --sname v --cookie c
expect_error "two names" "^girderd: sname (--sname) and name ($C:1: key name) are both set; give one\$" sh -c "printf '[{name, \"n@h\"}].\n' >'$C'; exec '$GIRDERD' --config '$C' --sname v --cookie c"
expect_error "no name" "^girderd: no node name" "$GIRDERD" --cookie c
expect_error "a long name without a host" "^girderd: --name: expected NAME@HOST, got \"n\"\$" "$GIRDERD" --name n --cookie c
expect_error "a dynamic name without connect" "needs connect" "$GIRDERD" --sname undefined --cookie c

# the cookie file, checked as erl checks it (same message)
mkdir -p "$TMP/home"
printf 'secret\n' >"$TMP/home/.erlang.cookie"
chmod 0644 "$TMP/home/.erlang.cookie"
expect_error "a cookie file readable by others" "^girderd: Cookie file $TMP/home/.erlang.cookie must be accessible by owner only\$" env HOME="$TMP/home" "$GIRDERD" --sname v
chmod 0400 "$TMP/home/.erlang.cookie"
printf '[].\n' >"$C"
HOME="$TMP/home" "$GIRDERD" --sname v --check-config "$C" >/dev/null || fail "a 0400 cookie file refused: $(cat "$TMP/err")"
pass "a cookie file accessible by its owner only is accepted"

# ---------------------------------------------------------------- --help and the docs
"$GIRDERD" --help >"$TMP/help.out"
for k in sname name cookie hidden listen-port epmd-port ticktime setuptime schedulers \
         control-socket log-file log-level pid-file module app demo; do
    grep -q -- "--\(\[no-\]\)\{0,1\}$k\b" "$TMP/help.out" || fail "--help lacks --$k"
done
pass "--help lists every option"

# ---------------------------------------------------------------- one table: --foo-bar V is {foo_bar, V}
# Every row of the option table (--help-markdown): the flag is the key with '-' for '_' (the
# repeatable --module and --app add to the lists modules and apps), --help shows the flag, and
# the flag and the file's key both set that key (--check-config names the source).
"$GIRDERD" --help-markdown | sed -n '3,$p' | sed 's/\\|/@@/g' \
    | awk -F' [|] ' '{ f = $1; sub(/^\| `--/, "", f); sub(/[` ,].*/, "", f); k = $2; gsub(/`/, "", k); print f, k, $3 }' \
    >"$TMP/rows"
[ "$(wc -l <"$TMP/rows")" -ge 30 ] || fail "option table: $(cat "$TMP/rows")"
nrows=0
while read -r flag key type; do
    nrows=$((nrows + 1))
    case "$flag:$key" in
        module:modules|app:apps) ;;
        *) [ "$(echo "$flag" | tr - _)" = "$key" ] || fail "flag --$flag is not key $key" ;;
    esac
    grep -q -- "--\(\[no-\]\)\{0,1\}$flag\b" "$TMP/help.out" || fail "--help lacks --$flag"
    # a value of the option's type, as a flag's words and as a term of the file
    case "$type" in
        integer*) v=${type#integer }; v=${v%%..*}; fv=$v ;;
        '`true`'*) v=; fv=true ;;
        level) v=notice; fv=notice ;;
        path) v=/tmp/x; fv='"/tmp/x"' ;;
        "list of strings") v=x; fv='["x"]' ;;
        *) case "$key" in
               proto_dist) v=inet_tcp ;; mailbox_policy) v=drop_newest ;; sabotage) v=drop-down=3 ;;
               name) v=n@h ;; listen_addr) v=127.0.0.1 ;; *) v=x ;;
           esac
           fv="\"$v\"" ;;
    esac
    case "$key" in ssl_dist_opt|ssl_dist_optfile) continue ;; esac   # need TLS files: tls-int-girderd
    base='{sname, "v"}, {cookie, "c"}'
    case "$key" in sname) base='{cookie, "c"}' ;; name) base='{cookie, "c"}' ;; cookie) base='{sname, "v"}' ;; esac
    printf '[%s,\n {%s, %s}].\n' "$base" "$key" "$fv" >"$C"
    "$GIRDERD" --check-config "$C" >"$TMP/out" 2>"$TMP/err" || fail "{$key, $fv} refused: $(cat "$TMP/err")"
    value "$key" | grep -q "% $C:2: key $key\$" || fail "{$key, $fv} did not set $key: $(value "$key")"
    printf '[%s].\n' "$base" >"$C"
    # shellcheck disable=SC2086
    "$GIRDERD" --check-config "$C" --$flag $v >"$TMP/out" 2>"$TMP/err" || fail "--$flag $v refused: $(cat "$TMP/err")"
    value "$key" | grep -q "% --$flag\$" || fail "--$flag $v did not set $key: $(value "$key")"
done <"$TMP/rows"
pass "each of the $nrows options: --foo-bar is key foo_bar (--module/--app: modules/apps), in --help, set by flag and by file"
if [ -n "${SRC:-}" ]; then
    "$GIRDERD" --help-markdown >"$TMP/table.md"
    sed -n '/<!-- options:begin -->/,/<!-- options:end -->/p' "$SRC/docs/girderd.md" \
        | sed '1d;$d' >"$TMP/doc-table.md"
    diff -u "$TMP/doc-table.md" "$TMP/table.md" \
        || fail "docs/girderd.md's option table differs from girderd --help-markdown (regenerate it)"
    pass "docs/girderd.md's option table is the binary's"
fi
echo "$PASSED passed, 0 failed"
