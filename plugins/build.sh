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
# Both lists are the workspace's members (Cargo.toml), the one list of them.
members=$(sed -n '/^members = \[/,/\]/p' "$here/Cargo.toml" | grep -o '"[^"]*"' | tr -d '"')
mapfile -t builtins < <(grep -v '^testing/' <<<"$members")
mapfile -t testing < <(grep '^testing/' <<<"$members" | sed 's|^testing/||')

out="$here/dist"
if [ "$mode" = "--check" ]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out/testing"

# Cargo's crate hashes include the path of path dependencies, so the same
# sources built in two checkouts differ. Build from a copy at a fixed path:
# the output then depends only on the sources and the toolchain.
stage=/tmp/switchyard-plugins-build
rm -rf "$stage/src"
mkdir -p "$stage/src"
tar -C "$repo" --exclude=target --exclude=dist -cf - Cargo.toml wit sdk/plugin plugins \
  | tar -C "$stage/src" -xf -
# The staged root workspace holds only the SDK (the broker is not staged).
sed -i 's|^members = .*|members = ["sdk/plugin"]|' "$stage/src/Cargo.toml"

echo "building plugins for wasm32-unknown-unknown (Debian $(/usr/bin/rustc --version))"
(cd "$stage/src/plugins" && \
  RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$stage/target" \
  RUSTFLAGS="--remap-path-prefix=$stage/src=/switchyard --remap-path-prefix=$HOME/.cargo=/cargo" \
  /usr/bin/cargo build --locked --release -Zbuild-std=core,alloc \
    --target wasm32-unknown-unknown --workspace)

echo "componentizing"
(cd "$repo" && cargo build --quiet -p switchyard)
switchyard="$repo/target/debug/switchyard"
core="$stage/target/wasm32-unknown-unknown/release"
for name in "${builtins[@]}"; do
  "$switchyard" plugin componentize "$core/switchyard_${name//-/_}.wasm" "$out/$name.wasm"
done
for name in "${testing[@]}"; do
  "$switchyard" plugin componentize "$core/switchyard_${name//-/_}.wasm" "$out/testing/$name.wasm"
done

"$switchyard" plugin manifest --repo "$repo" --dist "$out" --toolchain "$(/usr/bin/rustc --version)" > "$out/manifest.json.new"
mv "$out/manifest.json.new" "$out/manifest.json"

echo "conformance of the rebuilt built-ins"
(cd "$out" && "$switchyard" plugin test "${builtins[@]/%/.wasm}" >/dev/null) || {
  echo "error: rebuilt plugins fail conformance (run: switchyard plugin test $out/*.wasm)" >&2
  exit 1
}

if [ "$mode" = "--check" ]; then
  if ! diff -r "$here/dist" "$out" >/dev/null; then
    echo "error: plugins/dist is stale: rebuilt artifacts differ from the committed ones:" >&2
    diff -r "$here/dist" "$out" >&2 || true
    echo "run plugins/build.sh and commit plugins/dist" >&2
    exit 1
  fi
  echo "plugins/dist is current"
fi
