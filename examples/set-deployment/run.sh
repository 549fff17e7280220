#!/usr/bin/env bash
# A SET deployment on one machine: CENTER and two SETs (set-a, set-b),
# each a broker process with its own data dir and ports, certificates from
# one CA, the same SET table and topology on all three. Shows users'
# messages landing in their cells and global messages reaching every SET.
# Stops the brokers and removes its files when it exits; exits non-zero if
# anything is not where it should be. docs/SET.md explains the model.
#
#   examples/set-deployment/run.sh [path/to/switchyard]   (default: switchyard on PATH)
set -euo pipefail
switchyard=$(command -v "${1:-switchyard}")
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

source "$(dirname "$0")/lib.sh"

say "the same topology on every broker: orders SET-routed, global federated from CENTER"
for cell in "${cells[@]}"; do
    on "$cell" declare exchange orders --type direct --durable --arg set-router=set-router
    on "$cell" declare queue orders --durable
    on "$cell" bind orders orders --key orders
done
on CENTER declare exchange global --type fanout --durable
for cell in set-a set-b; do
    on "$cell" declare exchange global --type fanout --durable --arg federation-upstream=CENTER
    on "$cell" declare queue announcements --durable
    on "$cell" bind announcements global
done
on set-a list cells

say "users' orders, all published to set-a, land in their cells"
declare -A expected=([CENTER]=0 [set-a]=0 [set-b]=0)
for i in $(seq 1 30); do
    user="user-$i"
    cell=$(on set-a cells slot "$user" | awk '{print $4}')
    expected[$cell]=$((expected[$cell] + 1))
    on set-a publish --exchange orders --routing-key orders --header "x-set-key=$user" \
        --confirm "order of $user" 2>/dev/null
done
on set-a publish --exchange orders --routing-key orders --confirm "an order without x-set-key" 2>/dev/null
expected[CENTER]=1

ready() { on "$1" list queues --json | grep "\"name\":\"$2\"" | sed 's/.*"ready":\([0-9]*\).*/\1/'; }
for cell in "${cells[@]}"; do
    for _ in $(seq 300); do
        [ "$(ready "$cell" orders)" = "${expected[$cell]}" ] && break
        sleep 0.1
    done
    got=$(ready "$cell" orders)
    echo "$cell: $got orders (the table says ${expected[$cell]})"
    [ "$got" = "${expected[$cell]}" ] || fail "$cell has $got orders, expected ${expected[$cell]}"
done
on set-a list links

say "global announcements published on CENTER reach every SET"
for cell in set-a set-b; do
    for _ in $(seq 300); do
        on CENTER list bindings --json | grep -q "federation.$cell.global" && break
        sleep 0.1
    done
done
on CENTER publish --exchange global --routing-key news --count 5 --confirm "announcement" 2>/dev/null
for cell in set-a set-b; do
    for _ in $(seq 300); do
        [ "$(ready "$cell" announcements)" = 5 ] && break
        sleep 0.1
    done
    got=$(ready "$cell" announcements)
    echo "$cell: $got announcements"
    [ "$got" = 5 ] || fail "$cell has $got announcements, expected 5"
done
on set-a list federation

say "done: every message is where the table puts it"
