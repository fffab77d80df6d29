#!/usr/bin/env bash
# One invocation, one machine: greenbench CPU time per example / ONNX Runtime's, per model and
# batch, and sgemm 1024^3 GFLOP/s against ONNX Runtime's MatMul, measured back to back with
# the same thread count and profile.
#   scripts/onnx/compare.sh [--threads N] [--profile quick|full] [--out-dir DIR] [--precision fp32,int8]
#   scripts/onnx/compare.sh --models a.onnx,b.onnx [--threads N] [--profile P] [--out-dir DIR] [--batch 1,32] [--dim NAME=SIZE] [--rounds N] [--remeasure N]
# With --models: your own ONNX files, imported by greenbench and run by ONNX Runtime as they are
# (greenbench CPU / ORT per file and batch; scripts/onnx/ort_files.py), one cell at a time, the
# two sides alternating.
# --precision int8 (or fp32,int8): greenbench int8 beside ONNX Runtime running the same quantized
# model (greenbench's QDQ export: per-channel int8 weights, uint8 activations, ORT fuses it into
# its QLinear kernels).
# Needs a Python with scripts/onnx/requirements.txt (VENV, default .venv; created if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
THREADS=2 PROFILE=quick OUT=results/onnx MODELS="" PRECISION=fp32 BATCH=1,32 DIMS=() ROUNDS=1 REMEASURE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) THREADS=$2; shift 2 ;;
    --profile) PROFILE=$2; shift 2 ;;
    --out-dir) OUT=$2; shift 2 ;;
    --models) MODELS=$2; shift 2 ;;
    --precision) PRECISION=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --dim) DIMS+=(--dim "$2"); shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --remeasure) REMEASURE=$2; shift 2 ;;
    *) echo "unknown argument $1 (use --threads N, --profile quick|full, --out-dir DIR, --precision fp32,int8, --models FILES, --batch 1,32, --dim NAME=SIZE, --rounds N, --remeasure N)" >&2; exit 2 ;;
  esac
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "--rounds takes a whole number of rounds, 1 or more (got $ROUNDS)" >&2; exit 2; }
[[ $REMEASURE =~ ^[0-9]+$ ]] || { echo "--remeasure takes a whole number of passes, 0 for none (got $REMEASURE)" >&2; exit 2; }
[ -n "$MODELS" ] || [ "$REMEASURE" = 0 ] || { echo "--remeasure goes with --models (the zoo comparison measures each side once, not cell by cell)" >&2; exit 2; }
. scripts/onnx/env.sh
onnx_venv
mkdir -p "$OUT"
if [ -n "$MODELS" ]; then
  # One cell (file, batch) at a time, the two sides back to back, and which side goes first
  # alternating from cell to cell: a drift of the machine (another tenant, the clock) during
  # the invocation falls on both sides alike instead of on whichever ran later. Batches a file
  # fixes otherwise (the light models fix 1) are skipped on both sides. The parts are joined
  # by `greenbench merge` and `ort_files.py --merge`; % of peak is not measured (--no-peak).
  # With --rounds N each cell is measured N times that way and each side keeps its fastest round:
  # on a machine that swings between a fast and a slow mode, one round can catch one side in
  # each. Each side times a reference MatMul after every window (ort_bench.Reference, greenbench's
  # machine_reference); the joined table marks the cells where either side's ran slow, and with
  # --remeasure N those cells are measured again first (up to N more rounds each, below).
  # greenbench's peak on one thread and on --threads, before and after the cells, ends the output.
  cargo build --release -q
  parts=$(mktemp -d)
  trap 'rm -rf "$parts"' EXIT
  PY="$VENV/bin/python"
  IFS=, read -r -a files <<<"$MODELS"
  greenbench_side() {
    ./target/release/greenbench run --models "$f" --backends cpu --threads "$THREADS" \
      --profile "$PROFILE" --batch "$b" "${DIMS[@]}" --no-peak --force \
      --out "$gpart" >/dev/null 2>"$gpart.log" || { cat "$gpart.log" >&2; exit 1; }
    grep '^warning' "$gpart.log" >&2 || true
  }
  ort_side() {
    "$PY" scripts/onnx/ort_files.py "$f" --threads "$THREADS" --profile "$PROFILE" \
      --batch "$b" "${DIMS[@]}" --out "$opart"
  }
  # Round r of cell k: the two sides back to back, which goes first alternating with k + r;
  # then each side's fastest round so far (lowest median) kept as g-NNNN.json / o-NNNN.json.
  cell_file=() cell_batch=()
  measure_round() {
    local k=$1 r=$2
    local n f b gpart opart
    n=$(printf %04d "$k") f=${cell_file[$k]} b=${cell_batch[$k]}
    gpart="$parts/g-$n-r$r.json" opart="$parts/o-$n-r$r.json"
    if [ $(((k + r) % 2)) -eq 1 ]; then greenbench_side; ort_side; else ort_side; greenbench_side; fi
    cp "$("$PY" scripts/onnx/ort_files.py --fastest "$parts"/g-$n-r*.json)" "$parts/g-$n.json"
    cp "$("$PY" scripts/onnx/ort_files.py --fastest "$parts"/o-$n-r*.json)" "$parts/o-$n.json"
  }
  # The machine's attainable speed on one thread and on the cells' threads, before the cells and
  # after them (`greenbench peak`, 1024^3 fp32 matmul): the one-thread references beside each
  # cell do not see a slowdown of parallel work alone (for instance the VM's second vCPU sharing a core: a guess).
  peak() {
    ./target/release/greenbench peak --threads "$1" 2>/dev/null | sed -nE 's/^peak cpu .*: ([0-9.]+) GFPO\/s.*/\1/p' || true
  }
  peak_threads=$(printf '%s\n' 1 "$THREADS" | sort -un)
  declare -A peak_before
  for t in $peak_threads; do peak_before[$t]=$(peak "$t"); done
  k=0
  for f in "${files[@]}"; do
    batches=$("$PY" scripts/onnx/ort_files.py "$f" --batch "$BATCH" --runnable-batches)
    [ -n "$batches" ] || echo "$f: fixes a batch outside $BATCH, skipped" >&2
    for b in $batches; do
      cell_file[k]=$f cell_batch[k]=$b
      # --rounds N: the cell N times, the sides alternating within and across rounds; each
      # side keeps its fastest round (lowest median).
      for r in $(seq 1 "$ROUNDS"); do measure_round "$k" "$r"; done
      echo "cell $((k + 1)): $(basename "$(dirname "$f")")/$(basename "$f") batch $b" >&2
      k=$((k + 1))
    done
  done
  # --remeasure N: up to N passes over the cells the joined table would mark `slower` (a side's
  # machine reference more than 20 % below its fastest of the invocation: that side's time is
  # suspect), each measured one round more and its sides' fastest rounds kept again; a pass can
  # also mark a cell that was not (a faster reference raises the bar), hence passes. What is still
  # marked after them stays marked in the table.
  for pass in $(seq 1 "$REMEASURE"); do
    flagged=$("$PY" scripts/onnx/ort_files.py --flagged "$parts")
    [ -n "$flagged" ] || break
    echo "re-measuring $(wc -w <<<"$flagged") cell(s) a side's machine ran slower for, pass $pass of $REMEASURE:" \
      "$(for n in $flagged; do echo -n "$((10#$n + 1)) "; done)" >&2
    for n in $flagged; do measure_round "$((10#$n))" "$((ROUNDS + pass))"; done
  done
  [ $k -gt 0 ] || { echo "no cell to measure" >&2; exit 1; }
  ./target/release/greenbench merge --strict "$parts"/g-[0-9][0-9][0-9][0-9].json \
    --out "$OUT/greenbench-imported-$PROFILE.json" >/dev/null
  "$PY" scripts/onnx/ort_files.py --merge "$parts"/o-[0-9][0-9][0-9][0-9].json \
    --greenbench "$OUT/greenbench-imported-$PROFILE.json" --out "$OUT/onnxruntime-imported-$PROFILE.json"
  line=""
  for t in $peak_threads; do
    line+="${line:+; }$t thread(s) ${peak_before[$t]:-?} before the cells, $(peak "$t" | grep . || echo ?) after"
  done
  echo "greenbench peak (1024^3 fp32 matmul, GFPO/s): $line"
  exit 0
fi
EXPORT=$(mktemp -d)
cargo build --release -q
SUFFIX=$PROFILE
[ "$PRECISION" = fp32 ] || SUFFIX="$PROFILE-${PRECISION//,/-}"
IFS=, read -r -a precisions <<<"$PRECISION"
for p in "${precisions[@]}"; do
  ./target/release/greenbench export all --precision "$p" --out-dir "$EXPORT/$p" >/dev/null
done
./target/release/greenbench run --backends cpu --threads "$THREADS" --profile "$PROFILE" \
  --precision "$PRECISION" --out "$OUT/greenbench-cpu-$SUFFIX.json" >/dev/null
for p in "${precisions[@]}"; do
  "$VENV/bin/python" scripts/onnx/ort_bench.py "$EXPORT/$p" --threads "$THREADS" --profile "$PROFILE" \
    --out "$OUT/onnxruntime-cpu-$SUFFIX$([ "$PRECISION" = fp32 ] || echo "-$p").json" \
    --greenbench "$OUT/greenbench-cpu-$SUFFIX.json"
done
rm -rf "$EXPORT"
