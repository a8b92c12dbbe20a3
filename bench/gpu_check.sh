#!/usr/bin/env bash
# Issue 24's GPU figures in one call of the lent GPU machine: the hf engine's decode step against
# transformers' own `generate` (bench/host_overhead.py), on the tiny Llama (host work) and on
# SmolLM2-135M's architecture (the real model's arithmetic), fp32 and bf16, at 8, 32, 128 rows.
#
#   bash bench/gpu_check.sh prepare     # here, with the package index: fills .gpu/ (ignored)
#   bash bench/gpu_check.sh             # there, carrying .gpu: figures into $OUT
#
# Why the preparation: that machine reaches no network and a call carries at most 64 MiB. Its
# image has torch and transformers 5.17, not our pinned transformers, nor lm-eval (the engine
# reads a model's maximum length by lm-eval's rule) and dill, which lm-eval imports: they travel
# as wheels (pure Python, no dependencies needed beyond the image's). SmolLM2-135M's weights
# (514 MB) cannot travel, so its architecture runs with random weights: a step's arithmetic and
# host work are the real model's, its text is not (rows rarely stop before T).
# Locally, as a smoke test: DEVICE=cpu PYTHON=.venv/bin/python T=4 bash bench/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
kit=.gpu

if [ "${1:-}" = prepare ]; then
  tokenizer=results/stage/models/smollm2-135m-instruct
  [ -f "$tokenizer/tokenizer.json" ] || {
    echo "no staged tokenizer in $tokenizer: run 'make run' (or its staging) first" >&2
    exit 1
  }
  pin() { grep -oP "\"$1==\\K[^\"]+" pyproject.toml; }
  rm -rf "$kit"
  mkdir -p "$kit/wheels" "$kit/tokenizer"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$kit/wheels" \
    "transformers==$(pin transformers)" "lm-eval==$(pin lm-eval)" dill==0.4.1
  cp "$tokenizer/tokenizer.json" "$tokenizer/tokenizer_config.json" "$kit/tokenizer/"
  du -sh "$kit"
  exit 0
fi

[ -d "$kit/wheels" ] || { echo "no $kit/: run 'bash bench/gpu_check.sh prepare' here first" >&2; exit 1; }
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
out=${OUT:-results/gpu_check}
mkdir -p "$out"
site=$(mktemp -d)
"$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
  --target "$site" "$kit"/wheels/*.whl
export PYTHONPATH="$PWD/src:$PWD:$site" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
{
  date -u
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$python" -c "import torch, transformers; print('torch', torch.__version__, '| transformers', transformers.__version__)"
} 2>&1 | tee "$out/machine.txt"

# Three runs of about two minutes each on an H100 (estimated: not yet run there), one call.
for run in "tiny float32" "smollm2-135m float32" "smollm2-135m bfloat16"; do
  set -- $run
  echo "== host_overhead --shape $1 --dtype $2"
  timeout 170 "$python" -m bench.host_overhead --device "$device" --dtype "$2" --shape "$1" \
    --tokenizer "$kit/tokenizer" --max-new-tokens "${T:-128}" 2>&1 \
    | grep -v "Loading weights" | tee "$out/host_overhead_$1_$2.txt" || echo "(failed or timed out)"
done
