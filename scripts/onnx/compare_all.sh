#!/usr/bin/env bash
# Every model greenbench is compared on, in one invocation of scripts/onnx/compare.sh
# (greenbench CPU time per example / ONNX Runtime's, same threads and profile, one cell at a
# time with the two sides back to back, alternating which goes first): the zoo as ONNX files (`greenbench export all`, imported back by
# greenbench and run as they are by ONNX Runtime), eight of the committed fixtures (the
# convolutional blocks and the BERT-style layer of tests/fixtures/onnx, fixed shapes) and the real architectures the onnx package ships as "light" test
# models (ResNet-50, SqueezeNet, ShuffleNet, DenseNet-121, VGG-19 at 224x224; their weights
# replaced by seeded random ones, scripts/onnx/ort_test_data.py). Batch 1 and 32; the light
# models' files fix batch 1, so they have no batch-32 row.
#   scripts/onnx/compare_all.sh [--threads N] [--profile quick|full] [--out-dir DIR] [--rounds N] [--remeasure N]
# (--rounds N: each cell N times, each side's fastest round kept; --remeasure N, default 2: up to
# N more passes over the cells a side's machine ran slower for, 0 for none; see compare.sh)
# Needs a Python with scripts/onnx/requirements.txt (VENV, default .venv; created if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=2 PROFILE=quick OUT=results/onnx/all ROUNDS=1 REMEASURE=2
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --profile) PROFILE=$2; shift 2 ;;
    --out-dir) OUT=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --remeasure) REMEASURE=$2; shift 2 ;;
    *) echo "unknown argument $1 (use --threads N, --profile quick|full, --out-dir DIR, --rounds N, --remeasure N)" >&2; exit 2 ;;
  esac
done
. scripts/onnx/env.sh
onnx_venv
work=target/compare-all
rm -rf "$work"
mkdir -p "$work"
cargo build --release -q
./target/release/greenbench export all --out-dir "$work/zoo" >/dev/null
light="$(onnx_light_dir "$VENV/bin/python")"
files=()
for m in autoencoder ds-cnn lenet5 mlp mobilenet-v1-0.25 resnet8 tiny-transformer; do
  files+=("$work/zoo/$m/model.onnx")
done
for f in mobilenetv2_block se_hardswish bert_layer fire_module shufflenetv2_unit torch_cnn \
  generic_ops nonlocal_block; do
  files+=("tests/fixtures/onnx/$f/model.onnx")
done
for m in resnet50 squeezenet shufflenet densenet121 vgg19; do
  "$VENV/bin/python" scripts/onnx/ort_test_data.py "$light/light_$m.onnx" "$work/light/$m" \
    --randomize-weights >/dev/null
  files+=("$work/light/$m/model.onnx")
done
models=$(IFS=,; echo "${files[*]}")
exec scripts/onnx/compare.sh --models "$models" --threads "$THREADS" --profile "$PROFILE" \
  --out-dir "$OUT" --batch 1,32 --rounds "$ROUNDS" --remeasure "$REMEASURE"
