#!/bin/sh
# `make chaos`: the chaos run against the compose cluster of docker/. Uses the Docker engine
# that answers (DOCKER_HOST or the default socket); when none does, starts a private one under
# BUILD/docker-engine with only the flags that leave the host's network alone (no bridge, no
# iptables, no IP forwarding) and stops it by its pid at the end. Makes debian:12 if missing
# (docker/base.sh), builds the images, runs `girder chaos run --backend docker`, then checks
# that no container, network, engine or interface of the run is left.
# usage: docker/chaos.sh BUILD   (root; CHAOS_ROUNDS, CHAOS_SEED, CHAOS_ARGS to change the run)
set -u
build=$(cd "${1:-build}" && pwd) || exit 1
top=$(cd "$(dirname "$0")/.." && pwd)
rounds=${CHAOS_ROUNDS:-24}
seed=${CHAOS_SEED:-$(date +%s)}
out=$build/chaos
eng=$build/docker-engine
project=girderchaos$$
t0=$(date +%s)
engine_pid=""

say() { echo "make chaos: $*"; }

stop_engine() {
    [ -n "$engine_pid" ] || return 0
    say "stopping the private engine (pid $engine_pid)"
    kill -TERM "$engine_pid" 2>/dev/null
    i=0
    while kill -0 "$engine_pid" 2>/dev/null && [ $i -lt 60 ]; do sleep 0.5; i=$((i + 1)); done
    if kill -0 "$engine_pid" 2>/dev/null; then
        say "the engine did not stop in 30 s: SIGKILL"
        kill -KILL "$engine_pid" 2>/dev/null
        sleep 1
    fi
    engine_pid=""
    # dockerd leaves its bind mount of the host's network namespace behind
    for m in $(awk -v d="$eng/" 'index($2, d) == 1 {print $2}' /proc/mounts); do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
}

cleanup() {
    docker-compose -p "$project" -f "$top/docker/docker-compose.yml" down -v --remove-orphans \
        -t 5 >/dev/null 2>&1
    stop_engine
}
trap 'cleanup; exit 130' INT TERM

[ "$(id -u)" = 0 ] || { say "needs root (the engine, debootstrap, nsenter)"; exit 1; }
for tool in docker docker-compose nsenter iptables; do
    command -v $tool >/dev/null || { say "$tool is not installed"; exit 1; }
done

links_before=$(ip -o link show | wc -l)
# a private engine of an earlier run that was interrupted still answers on its socket
if [ -z "${DOCKER_HOST:-}" ] && [ -S "$eng/docker.sock" ] &&
    DOCKER_HOST=unix://$eng/docker.sock docker info >/dev/null 2>&1; then
    export DOCKER_HOST=unix://$eng/docker.sock
fi
if docker info >/dev/null 2>&1; then
    say "using the Docker engine that answers (${DOCKER_HOST:-default socket})"
else
    command -v dockerd >/dev/null || { say "no engine answers and dockerd is not installed"; exit 1; }
    mkdir -p "$eng"
    export DOCKER_HOST=unix://$eng/docker.sock
    say "starting a private engine, socket $eng/docker.sock"
    dockerd --data-root "$eng/data" --exec-root "$eng/exec" --pidfile "$eng/dockerd.pid" \
        --host "$DOCKER_HOST" --iptables=false --ip-forward=false --bridge=none \
        >"$eng/dockerd.log" 2>&1 &
    engine_pid=$!
    i=0
    until docker info >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 120 ] || ! kill -0 "$engine_pid" 2>/dev/null; then
            say "the engine did not come up; its log:"
            tail -n 20 "$eng/dockerd.log"
            stop_engine
            exit 1
        fi
        sleep 0.5
    done
fi

rc=0
"$top/docker/base.sh" "$build/docker-base" || rc=1
if [ $rc = 0 ]; then
    say "building the images"
    docker-compose -p "$project" -f "$top/docker/docker-compose.yml" build -q ||
        { say "building the images failed"; rc=1; }
fi
if [ $rc = 0 ]; then
    t1=$(date +%s)
    # shellcheck disable=SC2086
    "$build/bin/girder" chaos run --backend docker --compose "$top/docker/docker-compose.yml" \
        --project "$project" --rounds "$rounds" --seed "$seed" --out "$out" ${CHAOS_ARGS:-}
    rc=$?
    say "the run took $(( $(date +%s) - t1 )) s"
fi

cleanup
left=""
if docker info >/dev/null 2>&1; then
    left=$(docker ps -aq --filter "label=com.docker.compose.project=$project")
    [ -z "$(docker network ls -q --filter "label=com.docker.compose.project=$project")" ] ||
        left="$left network"
fi
[ -z "$left" ] || { say "left behind: $left"; rc=1; }
links_after=$(ip -o link show | wc -l)
[ "$links_after" -le "$links_before" ] ||
    { say "left behind: $((links_after - links_before)) network interfaces"; rc=1; }
say "result $rc (0: no violation), $(( $(date +%s) - t0 )) s in all; report $out/report.json"
exit $rc
