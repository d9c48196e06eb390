# Sourced by the benchmark tests: a temporary directory $TMP (removed on exit), erl and erlc
# stand-ins first on PATH (and as ERL) that fail and leave a mark ($TMP/ran-erl, ran-erlc) so a
# program that started its Erlang side shows it, fail() counting into $failed, and
# no_erl_ran LABEL failing for each mark (then removed).
TMP=$(mktemp -d /tmp/girder-bench-test.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
mkdir "$TMP/fake"
for t in erl erlc; do
  printf '#!/bin/sh\ntouch "%s/ran-%s"\nexit 1\n' "$TMP" "$t" > "$TMP/fake/$t"
  chmod +x "$TMP/fake/$t"
done
PATH="$TMP/fake:$PATH" ERL="$TMP/fake/erl"
export PATH ERL
failed=0
fail() { echo "FAIL: $*" >&2; failed=$((failed + 1)); }
no_erl_ran() {
  for m in "$TMP"/ran-*; do
    [ -e "$m" ] && fail "$1: ran ${m##*/ran-}" && rm -f "$m"
  done
}
