#!/usr/bin/env bash
# SET deployment benchmarks (docs/BENCHMARKS.md, "SET deployments"), 1 KiB
# messages, on three brokers on this machine (CENTER, set-a, set-b; started
# by examples/set-deployment/lib.sh):
#   - confirmed publish rate to set-a (`switchyard bench --mode confirm`,
#     1 producer, ≤1000 in flight) when messages stay in set-a (local), go
#     to set-b confirmed once stored here (store-and-forward), or confirmed
#     once set-b has them (end to end);
#   - federation throughput: a burst of messages published on CENTER's
#     global exchange, until every one is stored in both SETs.
# Runs interleave (run i of every scenario before run i+1); the medians are
# printed last.
#
#   scripts/bench-cells.sh [path/to/switchyard] [runs] [messages]
set -euo pipefail
switchyard=$(realpath "${1:-target/release/switchyard}")
runs=${2:-3}
count=${3:-100000}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
cd "$(dirname "$0")/.."
source examples/set-deployment/lib.sh

user_in() {
    local i
    for i in $(seq 1 1000); do
        [ "$(on set-a cells slot "u$i" | awk '{print $4}')" = "$1" ] && { echo "u$i"; return; }
    done
}
local_user=$(user_in set-a)
remote_user=$(user_in set-b)
echo "a set-a user: $local_user, a set-b user: $remote_user"

# Forwarded bench messages land in set-b's copy of the bench topology.
on set-b declare exchange bench-exchange --type direct --durable --arg set-router=set-router
on set-b declare queue bench-q0 --durable
on set-b bind bench-q0 bench-exchange --key bench-q0

queued() { on set-a list links --json | grep '"peer":"set-b"' | sed 's/.*"queued":\([0-9]*\).*/\1/'; }
drained() {
    for _ in $(seq 1200); do
        [ "$(queued)" = 0 ] && break
        sleep 0.1
    done
    on set-b purge bench-q0 >/dev/null 2>&1 || true
}
confirm_rate() {
    "$switchyard" bench --server "switchyard://guest:guest@${address[set-a]}" --ca "$work/ca/ca.pem" \
        --mode confirm --exchange-type direct --exchange-arg set-router=set-router \
        --count "$count" --json "$@" | sed 's/.*"producer_msgs_per_s":\([0-9.]*\).*/\1/'
}

# Federation: `fed` on CENTER, followed by set-a and set-b.
on CENTER declare exchange fed --type fanout --durable
for cell in set-a set-b; do
    on "$cell" declare exchange fed --type fanout --durable --arg federation-upstream=CENTER
    on "$cell" declare queue fed-q --durable
    on "$cell" bind fed-q fed
    for _ in $(seq 300); do
        on CENTER list bindings --json | grep -q "federation.$cell.fed" && break
        sleep 0.1
    done
done
ready() { on "$1" list queues --json | grep "\"name\":\"$2\"" | sed 's/.*"ready":\([0-9]*\).*/\1/'; }
federation_rate() {
    local cell now start
    start=$(date +%s.%N)
    on CENTER publish --exchange fed --routing-key x --count "$count" --size 1024 >/dev/null 2>&1
    for cell in set-a set-b; do
        for _ in $(seq 6000); do
            [ "$(ready "$cell" fed-q)" = "$count" ] && break
            sleep 0.05
        done
        [ "$(ready "$cell" fed-q)" = "$count" ] || fail "$cell has $(ready "$cell" fed-q) of $count federated"
    done
    now=$(date +%s.%N)
    for cell in set-a set-b; do on "$cell" purge fed-q >/dev/null; done
    # Messages per second into each SET (each got all of them).
    echo "$count / ($now - $start)" | bc -l
}

declare -A results
for run in $(seq "$runs"); do
    say "run $run of $runs"
    results[local]+="$(confirm_rate --header "x-set-key=$local_user") "
    results[stored]+="$(confirm_rate --header "x-set-key=$remote_user" --consumers 0) "
    drained
    on set-a cells confirm remote >/dev/null 2>&1
    results[remote]+="$(confirm_rate --header "x-set-key=$remote_user" --consumers 0) "
    on set-a cells confirm stored >/dev/null 2>&1
    drained
    results[federation]+="$(federation_rate) "
    for scenario in local stored remote federation; do
        echo "$scenario: ${results[$scenario]}"
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
say "medians of $runs runs, $count messages of 1 KiB (msgs/s)"
for scenario in local stored remote federation; do
    printf '%-11s %8.0f\n' "$scenario" "$(median <<<"${results[$scenario]}")"
done
