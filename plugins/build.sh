#!/usr/bin/env bash
# Rebuilds every plugin under plugins/ into a wasm component in plugins/dist/
# and rewrites plugins/dist/manifest.json.
#
# Needs Debian's Rust toolchain for wasm (rustup's has no wasm32 std here):
#   apt-get install rustc-web cargo-web rust-web-src lld-22
# Componentizing uses the `switchyard` binary (wit-component as a library).
#
#   plugins/build.sh          rebuild and rewrite dist/
#   plugins/build.sh --check  rebuild into a scratch dir and fail if dist/ differs
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
mode="${1:-write}"

for tool in /usr/bin/cargo /usr/bin/rustc; do
  if [ ! -x "$tool" ]; then
    echo "error: $tool not found; install Debian's wasm-capable toolchain:" >&2
    echo "  apt-get install rustc-web cargo-web rust-web-src lld-22" >&2
    exit 1
  fi
done

# Built-ins are committed to dist/; test-only plugins to dist/testing/.
builtins=(direct topic fanout headers consistent-hash dead-letter idempotency set-router)
testing=(probe)

out="$here/dist"
if [ "$mode" = "--check" ]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out/testing"

# Reproducible output: no machine paths in panic locations, one codegen unit.
export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
export RUSTFLAGS="--remap-path-prefix=$repo=/switchyard --remap-path-prefix=$HOME/.cargo=/cargo"
export CARGO_TARGET_DIR="$here/target"
echo "building plugins for wasm32-unknown-unknown (Debian $(/usr/bin/rustc --version))"
(cd "$here" && /usr/bin/cargo build --locked --release -Zbuild-std=core,alloc \
  --target wasm32-unknown-unknown --workspace)

echo "componentizing"
(cd "$repo" && cargo build --quiet -p switchyard)
switchyard="$repo/target/debug/switchyard"
core="$here/target/wasm32-unknown-unknown/release"
for name in "${builtins[@]}"; do
  "$switchyard" plugin componentize "$core/switchyard_${name//-/_}.wasm" "$out/$name.wasm"
done
for name in "${testing[@]}"; do
  "$switchyard" plugin componentize "$core/switchyard_${name//-/_}.wasm" "$out/testing/$name.wasm"
done

"$switchyard" plugin manifest --repo "$repo" --dist "$out" --toolchain "$(/usr/bin/rustc --version)" > "$out/manifest.json.new"
mv "$out/manifest.json.new" "$out/manifest.json"

if [ "$mode" = "--check" ]; then
  if ! diff -r "$here/dist" "$out" >/dev/null; then
    echo "error: plugins/dist is stale: rebuilt artifacts differ from the committed ones:" >&2
    diff -r "$here/dist" "$out" >&2 || true
    echo "run plugins/build.sh and commit plugins/dist" >&2
    exit 1
  fi
  echo "plugins/dist is current"
fi
