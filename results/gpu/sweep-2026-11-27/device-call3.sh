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

# (2) variants side by side, each stopped by a training-time budget so all end before the benchmark
BUDGET_MIN=$(python3 -c "print(round(max(0.5, ($(left) - 30) / 60 - 0.5), 2))")
echo "variants: ${BUDGET_MIN} min of training each"
variant() {  # name, extra args...
  local name=$1; shift
  OMP_NUM_THREADS=3 timeout $(( $(left) - 15 )) python3 scripts/train.py configuration/recipes/seed.json \
    --dataset_name $DATA --output_dir /tmp/runs/$name --save_strategy no --disable_tqdm true \
    --max_train_minutes "$BUDGET_MIN" ${EXTRA:-} "$@" > /tmp/runs/$name.log 2>&1
  echo "$name rc=$? at $(( $(date +%s) - START )) s"
}
PIDS=()
variant p4 --config_overrides input_patch_size=4 & PIDS+=($!)
variant p2 --config_overrides input_patch_size=2 & PIDS+=($!)
variant lr5e-4-bs128 --learning_rate 5e-4 --per_device_train_batch_size 128 & PIDS+=($!)
variant x2-lr3e-4-bs128 --config_overrides num_cross_attends=2 --learning_rate 3e-4 --per_device_train_batch_size 128 & PIDS+=($!)
wait "${PIDS[@]}"  # not a bare wait: that also waits for the tee above, forever
grep -h accuracy /tmp/runs/*/metrics.json

# pack: the seed model's weights alone (14 MB), everything else small in one archive
cd /tmp/runs && tar --exclude='checkpoint-*' --exclude='*.safetensors' -czf "$OUT/runs.tar.gz" . && cd - > /dev/null
echo "done at $(( $(date +%s) - START )) s"
