#!/usr/bin/env bash
# Runs the standard `switchyard bench` scenarios (each on a freshly spawned
# broker, several runs, medians) and writes the table, with the machine and
# versions it was measured on, into docs/BENCHMARKS.md between the
# suite markers.
#
#   scripts/bench.sh            # 3 runs per scenario
#   RUNS=5 SCALE=2 scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-3}
scale=${SCALE:-1}

cargo build --release --locked -p switchyard
table=$(target/release/switchyard bench --suite --runs "$runs" --scale "$scale")

conditions=$(cat <<INFO
Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB,
Linux $(uname -r); $(rustc --version); switchyard $(git rev-parse --short HEAD).
Broker and bench client on the same machine over loopback QUIC (TLS 1.3),
broker data on $(df -h --output=source . | tail -1); medians of $runs runs,
each on a fresh broker (\`switchyard bench --suite --runs $runs --scale $scale\`).
INFO
)

python3 - "$table" "$conditions" <<'PY'
import sys, re
table, conditions = sys.argv[1], sys.argv[2]
path = "docs/BENCHMARKS.md"
doc = open(path).read()
block = "<!-- suite:begin -->\n" + conditions + "\n\n" + table.strip() + "\n<!-- suite:end -->"
if "<!-- suite:begin -->" in doc:
    doc = re.sub(r"<!-- suite:begin -->.*?<!-- suite:end -->", lambda _: block, doc, flags=re.S)
else:
    doc += "\n" + block + "\n"
open(path, "w").write(doc)
PY
echo "docs/BENCHMARKS.md updated"
