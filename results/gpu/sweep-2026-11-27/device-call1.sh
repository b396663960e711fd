#!/usr/bin/env bash
# One device session: (1) the seed recipe exactly as docs/results.md gives it, alone on the GPU (timed);
# (2) four optimisation variants of it side by side (accuracy only: they share the GPU);
# (3) the throughput benchmark against the peers, alone.
# Everything stops by DEADLINE seconds; what finished is packed into $OUT (8 files at most).
set -u
START=$(date +%s)
DEADLINE=${DEADLINE:-470}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" /tmp/runs
left() { echo $((DEADLINE - ($(date +%s) - START))); }
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
DATA=.data/cifar10
LOG=$OUT/device.log
exec > >(tee -a "$LOG") 2>&1

if [ -d .whl ] && [ -z "${SKIP_WHL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || exit 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - <<'EOF' || exit 4
import sys, torch, transformers, datasets, evaluate, accelerate, huggingface_hub, pyarrow, numpy
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(),
      "transformers", transformers.__version__, "datasets", datasets.__version__, "evaluate", evaluate.__version__,
      "accelerate", accelerate.__version__, "hub", huggingface_hub.__version__, "pyarrow", pyarrow.__version__,
      "numpy", numpy.__version__)
from modeling_perceiver_study.metrics import *  # noqa  (fails here rather than after a run if the code is broken)
EOF
echo "preflight done at $(( $(date +%s) - START )) s"

# (1) the seed recipe, alone
date -u +%Y-%m-%dT%H:%M:%SZ > /tmp/runs/seed.started
ACCELERATE="accelerate launch"; command -v accelerate > /dev/null || ACCELERATE="python3 -m accelerate.commands.launch"
timeout $(( $(left) - 120 )) $ACCELERATE --config_file configuration/accelerate/single_gpu.yaml \
  scripts/train.py configuration/recipes/seed.json --dataset_name $DATA --output_dir /tmp/runs/seed \
  --disable_tqdm true ${EXTRA:-} > /tmp/runs/seed.log 2>&1
echo "seed rc=$? at $(( $(date +%s) - START )) s"
date -u +%Y-%m-%dT%H:%M:%SZ > /tmp/runs/seed.finished
grep -E "eval_accuracy|train_samples_per_second|train_runtime|Error|error" /tmp/runs/seed.log | tail -15

# (2) variants side by side, each stopped by a training-time budget so all end before the benchmark
BUDGET_MIN=$(python3 -c "print(round(max(0.5, ($(left) - 110) / 60 - 0.7), 2))")
echo "variants: ${BUDGET_MIN} min of training each"
variant() {  # name, extra args...
  local name=$1; shift
  OMP_NUM_THREADS=3 timeout $(( $(left) - 95 )) python3 scripts/train.py configuration/recipes/seed.json \
    --dataset_name $DATA --output_dir /tmp/runs/$name --save_strategy no --disable_tqdm true \
    --max_train_minutes "$BUDGET_MIN" ${EXTRA:-} "$@" > /tmp/runs/$name.log 2>&1
  echo "$name rc=$? at $(( $(date +%s) - START )) s"
}
PIDS=()
variant bs128-lr1e-3 --per_device_train_batch_size 128 & PIDS+=($!)
variant bs256-lr2e-3 --learning_rate 2e-3 & PIDS+=($!)
variant bs128-lr2e-3 --per_device_train_batch_size 128 --learning_rate 2e-3 & PIDS+=($!)
variant ep20 --num_train_epochs 20 & PIDS+=($!)
wait "${PIDS[@]}"  # not a bare wait: that also waits for the tee above, forever
for f in /tmp/runs/*/metrics.json; do echo "== $f"; cat "$f"; echo; done

# (3) throughput against the peers (alone), if time is left
if [ "$(left)" -gt 60 ]; then
  timeout $(( $(left) - 10 )) python3 scripts/benchmark.py --preset seed --batch 256 --precision bf16 \
    --attn_implementation sdpa,eager --compile ${BENCH:---repeats 5 --steps 10} --output /tmp/runs/benchmark-gpu.json \
    > /tmp/runs/benchmark.log 2>&1
  echo "benchmark rc=$? at $(( $(date +%s) - START )) s"
  tail -30 /tmp/runs/benchmark.log
fi

# pack: the seed model's weights alone (14 MB), everything else small in one archive
[ -f /tmp/runs/seed/model.safetensors ] && cp /tmp/runs/seed/model.safetensors "$OUT/seed-model.safetensors"
cd /tmp/runs && tar --exclude='checkpoint-*' --exclude='*.safetensors' -czf "$OUT/runs.tar.gz" . && cd - > /dev/null
echo "done at $(( $(date +%s) - START )) s"
