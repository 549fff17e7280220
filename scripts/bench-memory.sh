#!/usr/bin/env bash
# The broker's memory in the two situations issue 19 names (docs/BENCHMARKS.md,
# "Memory"): a backlog of 2M messages of 1 KiB that nobody consumes yet, and
# 100 slow consumers (1 ms per message, prefetch 1000) on 100 queues fed by a
# fast producer. A broker is started per scenario; its VmRSS (all resident
# memory, mapped log pages included) and RssAnon (its own heap) are sampled
# every 0.2 s during the run and the peaks printed.
#
#   scripts/bench-memory.sh [path/to/switchyard] [backlog messages]
#   BROKER=path/to/older/switchyard scripts/bench-memory.sh   # that broker,
#                                                           # this bench client
set -euo pipefail
switchyard=$(realpath "${1:-target/release/switchyard}")
backlog=${2:-2000000}
server=$(realpath "${BROKER:-$switchyard}")
work=$(mktemp -d)
broker=
trap '[ -n "$broker" ] && kill "$broker" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT

start_broker() {
    rm -rf "$work/data" "$work/serve.out" && mkdir -p "$work/data"
    "$server" serve --data-dir "$work/data" --listen 127.0.0.1:0 --http-listen off \
        >"$work/serve.out" 2>"$work/serve.log" &
    broker=$!
    for _ in $(seq 300); do
        [ -s "$work/serve.out" ] && break
        sleep 0.1
    done
    address=$(awk '{print $4; exit}' "$work/serve.out")
    [ -n "$address" ] || { cat "$work/serve.log"; exit 1; }
}

stop_broker() {
    kill "$broker"
    wait "$broker" 2>/dev/null || true
    broker=
}

# Runs `switchyard bench` against the broker while sampling its memory;
# prints "<peak VmRSS MiB> <peak RssAnon MiB>".
measure() {
    "$switchyard" bench --server "switchyard://guest:guest@$address" --ca "$work/data/tls/ca.pem" \
        --json "$@" >"$work/bench.json" &
    local bench=$! rss=0 anon=0 r a
    while kill -0 "$bench" 2>/dev/null; do
        r=$(awk '/^VmRSS:/ {print $2}' "/proc/$broker/status")
        a=$(awk '/^RssAnon:/ {print $2}' "/proc/$broker/status")
        [ "$r" -gt "$rss" ] && rss=$r
        [ "$a" -gt "$anon" ] && anon=$a
        sleep 0.2
    done
    wait "$bench"
    echo "$((rss / 1024)) $((anon / 1024))"
}

start_broker
read -r rss anon < <(measure --mode batch --batch 100 --persistent --count "$backlog" --consumers 0)
echo "backlog of $backlog: peak VmRSS $rss MiB, peak RssAnon $anon MiB"
stop_broker

start_broker
read -r rss anon < <(measure --mode batch --batch 100 --persistent --count 500000 \
    --queues 100 --consumers 100 --consumer-pause-ms 1)
echo "100 slow consumers: peak VmRSS $rss MiB, peak RssAnon $anon MiB"
stop_broker
