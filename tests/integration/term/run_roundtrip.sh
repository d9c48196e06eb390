#!/bin/sh
# Random terms made by real Erlang go through `girder term decode | girder term encode`, and
# Erlang checks the results (see term_roundtrip.erl). Usage: run_roundtrip.sh GIRDER COUNT SEED
# With a fourth argument FOREIGN (the term-foreign-roundtrip program), the terms go through it
# instead: decoded with every new atom foreign and encoded again (see foreign_roundtrip.c).
set -eu
girder=$1; count=${2:-2000}; seed=${3:-1}; foreign=${4:-}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
erlc -o "$tmp" "$here/term_roundtrip.erl"
# No distribution: these erl runs start no epmd and listen on nothing.
n=$(timeout 120 erl -noshell -noinput -pa "$tmp" -run term_roundtrip gen "$count" "$seed" "$tmp")
if [ -n "$foreign" ]; then
  timeout 300 "$foreign" "$tmp" "$n"
  exec timeout 120 erl -noshell -noinput -pa "$tmp" -run term_roundtrip check "$tmp" foreign
fi
i=1
while [ "$i" -le "$n" ]; do
  if ! "$girder" term decode < "$tmp/$i.etf" 2> "$tmp/$i.err" | "$girder" term encode > "$tmp/$i.out" 2>> "$tmp/$i.err"; then
    echo "girder failed on term $i: $(cat "$tmp/$i.err")" >&2
  fi
  "$girder" term decode --format w < "$tmp/$i.z.etf" | "$girder" term encode > "$tmp/$i.z.out" || true
  i=$((i + 1))
done
exec timeout 120 erl -noshell -noinput -pa "$tmp" -run term_roundtrip check "$tmp"
