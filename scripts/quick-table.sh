#!/usr/bin/env bash
# Run the quick suite (all zoo models, batch 1 and 32, CPU) and print the table.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -- run --profile quick "$@"
