#!/usr/bin/env bash
# ONNX import, end to end, on every backend this machine has (CI runs it on CPU and lavapipe):
#  1. every committed fixture (tests/fixtures/onnx/*/: files as torch.onnx, tf2onnx and older
#     exporters write them, outputs recorded by ONNX Runtime) through `greenbench verify
#     --test-data`;
#  2. the real architectures the onnx Python package ships as "light" test models (ResNet-50,
#     SqueezeNet, ShuffleNet, DenseNet-121, VGG-19; 224x224) with seeded random weights and
#     test data made here by ONNX Runtime (scripts/onnx/ort_test_data.py), imported, counted
#     (`greenbench inspect`) and checked the same way.
#
#   scripts/onnx/check_imports.sh PYTHON     # a python with scripts/onnx/requirements.txt
set -euo pipefail
cd "$(dirname "$0")/../.."
py="${1:?usage: check_imports.sh PYTHON (with scripts/onnx/requirements.txt installed)}"
gb=(cargo run --release -q --)
fail=0
for d in tests/fixtures/onnx/*/; do
  "${gb[@]}" verify --models "$d/model.onnx" --test-data "$d/test_data_set_0" | tail -n +3 | grep -v '^compared' || fail=1
done
. scripts/onnx/env.sh
light="$(onnx_light_dir "$py")"
work=target/onnx-light
rm -rf "$work"
for m in resnet50 squeezenet shufflenet densenet121 vgg19; do
  "$py" scripts/onnx/ort_test_data.py "$light/light_$m.onnx" "$work/$m" --randomize-weights >/dev/null
  "${gb[@]}" inspect "$work/$m/model.onnx" | tail -2 | head -1 | sed "s/^total/$m total/"
  # (VGG-19's fc6 weight, 392 MiB, is beyond lavapipe's 128 MiB buffer binding: the GPU backend
  # runs it as four blocks of columns.)
  "${gb[@]}" verify --models "$work/$m/model.onnx" --test-data "$work/$m/test_data_set_0" | tail -n +3 | grep -v '^compared' || fail=1
done
if [ $fail -ne 0 ]; then
  echo "ONNX import check FAILED (see the MISMATCH / FAILED rows above)" >&2
fi
exit $fail
