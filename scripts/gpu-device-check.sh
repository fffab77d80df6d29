#!/usr/bin/env bash
# Every GPU check of the GPU-backend issue, in one script, for a machine with a real GPU and no
# Rust toolchain (the `device` tool's machines). Build here first:
#   cargo build --release && mkdir -p .dev && cp target/release/greenbench .dev/
# (.dev/ ignored through .git/info/exclude), carry .dev and the Vulkan loader (.gl, see the
# device README), then run this script there. Writes everything under $OUT (default ./gpu-out).
set -uo pipefail
BIN=${BIN:-.dev/greenbench}
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
{
  echo "== nvidia-smi"; nvidia-smi --query-gpu=name,driver_version,power.draw --format=csv 2>&1
  echo "== devices"; "$BIN" devices 2>&1
  echo "== verify (all models, batch 1 and 32, cpu vs gpu)"; "$BIN" verify 2>&1
  echo "== peak gpu 4096^3 (target: >= 10 TFLOP/s on an H100)"
  "$BIN" peak --backends gpu --size 4096 2>&1
  echo "== peak cpu 1024^3"; "$BIN" peak --backends cpu 2>&1
  echo "== resnet8 batch 256, cpu and gpu (target: gpu >= 10x faster per example)"
  "$BIN" run --models resnet8 --batch 256 --backends cpu,gpu --out "$OUT/resnet8-b256.json" 2>&1
  echo "== zoo, batch 1 and 32, cpu and gpu"
  "$BIN" run --backends cpu,gpu --out "$OUT/zoo-quick.json" 2>&1
} | tee "$OUT/gpu-check.log"
