#!/bin/sh
# An Elixir node pings a Girder node, sends to its echo process and calls kv.
. "$(dirname "$0")/lib.sh"
# Registered only where CMake found elixir: here its absence is a failure, not a pass.
command -v elixir >/dev/null || fail "elixir not installed"
start_epmd
start_girder g1
G1=$(node g1)
timeout 60 elixir --sname "ex$SUF" --cookie "$COOKIE" -e "
  g = :\"$G1\"
  :pong = Node.ping(g)
  send({:echo, g}, {self(), :from_elixir})
  receive do
    :from_elixir -> :ok
  after 3000 -> raise \"no echo\"
  end
  :ok = GenServer.call({:kv, g}, {:put, :lang, \"elixir\"})
  {:ok, \"elixir\"} = GenServer.call({:kv, g}, {:get, :lang})
  ^g = :rpc.call(g, :erlang, :node, [])
  IO.puts(\"PASS elixir\")
" >"$TMP/ex.out" 2>&1 || true
passed ex elixir
log "dist elixir: ok"
