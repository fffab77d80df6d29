#!/usr/bin/env bash
# The deterministic outputs of a greenbench binary, in one folder: run it before and after a
# change that must not change behaviour (a split of files by concern), then `diff -r` the two
# folders. Usage: scripts/structure-golden.sh BINARY OUT_DIR
# Covers: list, inspect (every zoo model, fp32 and int8, every ONNX fixture), verify (fp32 and
# int8; max errors are deterministic for one build's kernels), the ONNX exports byte for byte,
# and the errors for bad input (exit codes included). Timings and energy are not deterministic
# and are left out.
set -uo pipefail
bin=$(realpath "$1")
out=$2
cd "$(dirname "$0")/.."
rm -rf "$out" && mkdir -p "$out"
run() { # name, args...
  local name=$1; shift
  "$bin" "$@" >"$out/$name.out" 2>"$out/$name.err"
  echo "exit $?" >>"$out/$name.out"
}
run list list
run list-json list --format json
for m in $("$bin" list --format json | python3 -c 'import json,sys; [print(m["name"]) for m in json.load(sys.stdin)]' 2>/dev/null || echo lenet5 mlp ds-cnn mobilenet-v1-0.25 resnet8 autoencoder tiny-transformer); do
  run "inspect-$m" inspect "$m"
  run "inspect-$m-int8" inspect "$m" --precision int8
done
for f in tests/fixtures/onnx/*/model.onnx; do
  n=$(basename "$(dirname "$f")")
  run "inspect-onnx-$n" inspect "$f"
done
run verify verify --backends cpu
run verify-int8 verify --precision int8
for f in tests/fixtures/onnx/*/model.onnx; do
  n=$(basename "$(dirname "$f")")
  run "verify-onnx-$n" verify --models "$f" --backends cpu
done
run export export all --out "$out/export"
run export-int8 export all --precision int8 --out "$out/export-int8"
# Errors: unknown model, missing file, a truncated ONNX file, a bad flag.
run err-unknown inspect no-such-model
run err-missing inspect /nonexistent/model.onnx
head -c 300 tests/fixtures/onnx/torch_cnn/model.onnx >"$out/truncated.onnx"
run err-truncated inspect "$out/truncated.onnx"
run err-flag run --no-such-flag
# The paths of this folder are in some outputs; make them relative.
sed -i -e "s#$out#OUT#g" -e "s#$(basename "$bin")#greenbench#g" "$out"/*.out "$out"/*.err
