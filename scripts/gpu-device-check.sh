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
# Each step is cut at STEP_S seconds (default 150) so that one hung step cannot spend the
# device lease; the log says which one was cut (exit 124).
step() { timeout "${STEP_S:-150}" "$@" || echo "(exit $? from: $*)"; }
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
{
  echo "== nvidia-smi"; nvidia-smi --query-gpu=name,driver_version,power.draw --format=csv 2>&1
  echo "== devices"; step "$BIN" devices 2>&1
  echo "== verify (all models, batch 1 and 32, cpu vs gpu)"; step "$BIN" verify 2>&1
  echo "== peak gpu 4096^3 (target: >= 10 TFLOP/s on an H100)"
  step "$BIN" peak --backends gpu --size 4096 2>&1
  echo "== peak cpu 1024^3"; step "$BIN" peak --backends cpu 2>&1
  echo "== resnet8 batch 256, cpu and gpu (target: gpu >= 10x faster per example)"
  step "$BIN" run --models resnet8 --batch 256 --backends cpu,gpu --out "$OUT/resnet8-b256.json" 2>&1
  echo "== zoo, batch 1 and 32, cpu and gpu"
  step "$BIN" run --backends cpu,gpu --out "$OUT/zoo-quick.json" 2>&1
  echo "== bf16: every zoo model's bf16 graph, cpu and gpu against the reference"
  step "$BIN" verify --precision bf16 --batch 1 2>&1
  echo "== imported fixtures: each backend's output against ONNX Runtime's recorded one"
  for d in tests/fixtures/onnx/*/; do
    [ -d "$d/test_data_set_0" ] || continue
    echo "-- $d"; step "$BIN" verify --models "$d/model.onnx" --test-data "$d/test_data_set_0" 2>&1 | tail -n 3
  done
  # Optional: real architectures (scripts/onnx/ort_test_data.py), as ONNX_LIGHT=dir/{name}/model.onnx
  for m in ${ONNX_LIGHT:+$ONNX_LIGHT/*/model.onnx}; do
    d=$(dirname "$m"); echo "== $d: verify against ORT's recorded output, then batch 1 cpu and gpu"
    step "$BIN" verify --models "$m" --test-data "$d/test_data_set_0" 2>&1 | tail -n 3
    step "$BIN" run --models "$m" --batch 1 --backends cpu,gpu --no-peak --out "$OUT/$(basename "$d")-b1.json" 2>&1
  done
} | tee "$OUT/gpu-check.log"
