#!/usr/bin/env bash
# Builds every example plugin in examples/plugins/ from source with
# `switchyard plugin build` (installing the Python and JavaScript
# toolchains from PyPI and npm), runs each through `switchyard plugin test`
# with its cases, then loads them into a running broker and routes through
# the five amount-range builds. Exits non-zero on the first failure.
#
#   scripts/plugin-examples.sh [path/to/switchyard]    (default: target/debug/switchyard)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
switchyard=$(realpath "${1:-target/debug/switchyard}")
examples=$repo/examples/plugins
work=$(mktemp -d)
trap 'kill "${broker_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

say() { printf '\n--- %s\n' "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

say "toolchains: componentize-py from PyPI, node packages from npm (pinned in each package.json)"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet componentize-py==0.25.1
export PATH="$work/venv/bin:$PATH"
for project in "$examples"/*/js "$examples"/*/assemblyscript; do
    [ -f "$project/package.json" ] || continue
    (cd "$project" && npm install --no-audit --no-fund --loglevel=error)
done

say "build and test every example"
for cases in "$examples"/*/cases.toml; do
    example=$(dirname "$cases")
    for project in "$example"/*/; do
        project=${project%/}
        name=$(sed -n 's/^name = "\(.*\)"/\1/p' "$project/switchyard-plugin.toml")
        "$switchyard" plugin build "$project"
        rm -rf "$project/target" # a Rust build's std and deps; only dist/ is needed
        "$switchyard" plugin test "$project/dist/$name.wasm" --cases "$cases"
    done
done

say "plugin new: every language and kind builds as generated and passes its cases"
scaffolds=$work/scaffolds
mkdir -p "$scaffolds"
js_modules=$(realpath "$examples/amount-range/js/node_modules")
as_modules=$(realpath "$examples/amount-range/assemblyscript/node_modules")
for lang in rust c python js assemblyscript; do
    for kind in exchange dead-letter filter set-router; do
        [ "$lang" = assemblyscript ] && [ "$kind" != exchange ] && continue
        name="new-$lang-$kind"
        "$switchyard" plugin new "$name" --lang "$lang" --kind "$kind" --dir "$scaffolds/$name"
        # The same pinned packages as the examples: link rather than download again.
        [ "$lang" = js ] && ln -s "$js_modules" "$scaffolds/$name/node_modules"
        [ "$lang" = assemblyscript ] && ln -s "$as_modules" "$scaffolds/$name/node_modules"
        "$switchyard" plugin build "$scaffolds/$name"
        rm -rf "$scaffolds/$name/target"
        "$switchyard" plugin test "$scaffolds/$name/dist/$name.wasm" --cases "$scaffolds/$name/cases.toml"
    done
done
if "$switchyard" plugin new as-filter --lang assemblyscript --kind filter --dir "$scaffolds/as-filter" 2>"$work/err"; then
    fail "an AssemblyScript filter was scaffolded"
fi
grep -q "exchanges only" "$work/err" || fail "unclear refusal: $(cat "$work/err")"

say "through a running broker"
"$switchyard" serve --data-dir "$work/data" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
broker_pid=$!
for _ in $(seq 100); do grep -q "listening on" "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
addr=$(sed -n 's/^switchyard listening on \([^ ]*\).*/\1/p' "$work/serve.out")
[ -n "$addr" ] || fail "the broker did not start: $(cat "$work/serve.err")"
export SWITCHYARD_URL="switchyard://guest:guest@$addr/" SWITCHYARD_DATA_DIR="$work/data"
sy() { "$switchyard" "$@"; }

for project in "$examples"/amount-range/*/; do
    lang=$(basename "$project")
    plugin=amount-range-$lang
    sy plugin load "$project/dist/amount-range.wasm" --name "$plugin"
    sy declare exchange "pay-$lang" --type "$plugin"
    for queue in small large; do sy declare queue "$lang-$queue"; done
    sy bind "$lang-small" "pay-$lang" --key "" --arg max=99
    sy bind "$lang-large" "pay-$lang" --key "" --arg min=1000
    if sy bind "$lang-small" "pay-$lang" --key "" --arg min=9 --arg max=1 2>"$work/err"; then
        fail "$lang: a binding with min > max was accepted"
    fi
    sy publish --exchange "pay-$lang" --routing-key pay --header amount=5 --confirm "$lang small"
    sy publish --exchange "pay-$lang" --routing-key pay --header amount=5000 --confirm "$lang large"
    if sy publish --exchange "pay-$lang" --routing-key pay --confirm "$lang none" 2>"$work/err"; then
        fail "$lang: a message without an amount was confirmed"
    fi
    grep -q "no numeric amount header" "$work/err" || fail "$lang: refusal without the plugin's reason: $(cat "$work/err")"
    grep -q "$lang small" <<<"$(sy get --queue "$lang-small")" || fail "$lang: small did not get its message"
    grep -q "$lang large" <<<"$(sy get --queue "$lang-large")" || fail "$lang: large did not get its message"
    echo "amount-range in $lang routes through the broker"
done
for project in "$examples"/same-body/*/; do
    lang=$(basename "$project")
    sy plugin load "$project/dist/same-body.wasm" --name "same-body-$lang"
    sy declare exchange "dedup-$lang" --type fanout --arg filter="same-body-$lang"
    sy declare queue "dedup-$lang"
    sy bind "dedup-$lang" "dedup-$lang" --key ""
    for body in first second first; do
        sy publish --exchange "dedup-$lang" --routing-key k --confirm "$body"
    done
    if sy publish --exchange "dedup-$lang" --routing-key k --confirm - </dev/null 2>"$work/err"; then
        fail "$lang: an empty body passed the same-body filter"
    fi
    row=$(grep "\"name\":\"dedup-$lang\"" <<<"$(sy list queues --json)")
    grep -q '"ready":2,' <<<"$row" || fail "$lang: the same-body filter let a duplicate through: $row"
    echo "same-body in $lang filters an exchange in the broker"
done
for project in "$examples"/retry-backoff/*/; do
    sy plugin load "$project/dist/retry-backoff.wasm" --name "retry-backoff-$(basename "$project")"
done
# The policy decides deaths in the broker: retries after 500 ms, 1 s, 2 s,
# then parks (each build), and a hot swap from the Rust build to the
# Python one changes the decisions of later deaths only.
backoff=$examples/retry-backoff
export SWITCHYARD_CA=$work/data/tls/ca.pem
cargo run --quiet --locked -p switchyard-examples --example retry_backoff -- \
    "$backoff/python/dist/retry-backoff.wasm"
cargo run --quiet --locked -p switchyard-examples --example retry_backoff -- \
    "$backoff/rust/dist/retry-backoff.wasm" "$backoff/python/dist/retry-backoff.wasm"
echo "retry-backoff in rust and python decides deaths in the broker, and swaps live"
# A transactional message kept consistent with a local sled write, the
# dying producer's transaction committed by the broker's check.
cargo run --quiet --locked -p switchyard-examples --example transactional_outbox
sy plugin list
listed=$(sy plugin list --json)
for lang in rust c python javascript assemblyscript; do
    grep -q "\"language\":\"$lang\"" <<<"$listed" || fail "plugin list does not show a $lang plugin"
done
say "every example built, passed its cases and ran in the broker"
