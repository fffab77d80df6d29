#!/usr/bin/env bash
# Regenerate the committed baselines: a full-profile run of every zoo model at batch 1 and 32
# on the CPU and (where an adapter exists) the GPU, then the report generated from it.
#   scripts/baselines.sh            # measure (about 10 minutes on the 2-core dev VM) + report
#   scripts/baselines.sh --report   # only regenerate the reports from the committed runs
# Reports: results/BASELINES.md (+ cells.csv, plots/) from the baseline run; results/html/
# (index.html, models/, labels/) from the baseline run and the committed training runs.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=results/baseline/vm-full.json
cargo build --release -q
if [ "${1:-}" != "--report" ]; then
  mkdir -p results/baseline
  ./target/release/greenbench run --profile full --backends cpu,gpu --out "$RUN"
fi
./target/release/greenbench report "$RUN" --format md --out-dir results --name BASELINES.md
rm -rf results/html
./target/release/greenbench report "$RUN" results/training/*.json --format html --out-dir results/html
