#!/usr/bin/env bash
# The README's test command: installs what the tests drive besides the
# broker, then runs every test of the workspace. On a fresh Debian machine
# it needs nothing else (root, or sudo, for apt):
#   - chromium            the web console's browser test (e2e_console)
#   - prometheus          promtool and a server for the metrics test (e2e_http)
#   - util-linux          unshare, for the full-disk tests' private mounts
#   - curl                the HTTPS test
#   - the console test's npm driver (playwright-core, no browser download)
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --no-fail-fast`,
# or `scripts/test.sh -p switchyard --test it e2e_cells`).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for need in chromium:chromium promtool:prometheus prometheus:prometheus unshare:util-linux curl:curl; do
    command -v "${need%%:*}" >/dev/null || missing+=("${need#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    # shellcheck disable=SC2046
    "${sudo[@]}" apt-get install -y -qq $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
fi

console_test=broker/http/console/test
if [ ! -d "$console_test/node_modules/playwright-core" ]; then
    (cd "$console_test" && npm ci --no-audit --no-fund)
fi

exec cargo test --workspace --locked "$@"
