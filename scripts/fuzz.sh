#!/usr/bin/env bash
# Run every fuzz target (fuzz/, cargo-fuzz + libFuzzer, nightly toolchain) for SECONDS each
# (default 30), with the bounds every target must hold: no input may take more than 1 s or
# 2 GiB. Prints a table: target, executions, coverage, crashes. Exits 1 on any crash (its
# input is in fuzz/artifacts/<target>/; reproduce with `cargo +nightly fuzz run <target> <file>`).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs: rustup's nightly toolchain and `cargo install cargo-fuzz`.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-30}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O || exit 1
failed=0
printf '%-24s %12s %8s %8s %s\n' target executions cov ft crashes
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log="$(mktemp)"
  cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 \
    -timeout=1 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -o '[0-9]*')"
  ft="$(grep -oE 'ft: [0-9]+' "$log" | tail -1 | grep -o '[0-9]*')"
  crashes=0
  if [ $rc -ne 0 ]; then
    crashes=1
    failed=1
    echo "--- $t failed (exit $rc); the end of its log:" >&2
    tail -30 "$log" >&2
  fi
  printf '%-24s %12s %8s %8s %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$crashes"
  rm -f "$log"
done
exit $failed
