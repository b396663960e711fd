#!/usr/bin/env bash
# One device call for issue 16 (prepared on 2026-11-30, not yet run on a GPU): 10-epoch runs of the convolution-free
# Perceiver, four at a time on one GPU (accuracy only: runs that share the GPU do not report their own speed). Since
# 2026-12-03 the first round is the recipe and the recipe with 128 cross-attention heads whose queries and keys are
# four times the latent width (4.43M parameters), each in two data orders: at 10 epochs of the cpu-small model, twice
# the heads at twice the width gained 3.0 points over two data orders and four times both more again
# (results/probes-2026-12-03-cs10, docs/results.md). The second round: 128 heads at the recipe's widths (heads of
# width 4, 4.10M parameters; 61.3 % against 60.5 % for 64 heads of width 8 at 10 epochs of the cpu-small model), in two
# data orders, then the 1,024-wide heads with a random crop and with four cross-attends. Whitening with a crop ran on
# the CPU (65.8 / 66.2 %, no gain) and is left out; so are the wide heads with whitening and four cross-attends at 64
# heads, which 128 heads of width 4 replaced on 2026-12-03.
# Needs, carried with the working tree: .data/cifar10 (the parquet of ../shared/data/cifar10) and .whl (the wheels
# the device image lacks: transformers 5.24.0, datasets, evaluate, dill, multiprocess; see sweep-2026-11-27/README.md).
# Everything stops by DEADLINE seconds; what finished is packed into $OUT (one archive).
# CPU rehearsal (seconds): SKIP_WHL=1 DEADLINE=300 OUT=/tmp/rehearsal DATA=../shared/data/cifar10 RUNS=/tmp/rehearsal-runs \
#   EXTRA="--use_cpu true --max_train_samples 256 --max_eval_samples 128 --num_train_epochs 1 --per_device_eval_batch_size 64" \
#   bash results/gpu/convfree-sweep/device-sweep.sh
set -u
START=$(date +%s)
DEADLINE=${DEADLINE:-540}
OUT=${OUT:-/tmp/out}
RUNS=${RUNS:-/tmp/runs}
DATA=${DATA:-.data/cifar10}
mkdir -p "$OUT" "$RUNS"
left() { echo $((DEADLINE - ($(date +%s) - START))); }
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
exec > >(tee -a "$OUT/device.log") 2>&1

if [ -d .whl ] && [ -z "${SKIP_WHL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || exit 3
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - <<'PY' || exit 4
import sys, torch, transformers, datasets, evaluate, accelerate
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available(),
      "transformers", transformers.__version__, "datasets", datasets.__version__, "accelerate", accelerate.__version__)
from modeling_perceiver_study.presets import load_preset
from modeling_perceiver_study.training import parse_overrides  # fails here rather than after a run if code is broken
load_preset("seed-convfree")
PY
echo "preflight done at $(( $(date +%s) - START )) s"

run() {  # name, extra args... : one 10-epoch run of the seed-convfree recipe, 4 CPU threads
  local name=$1; shift
  OMP_NUM_THREADS=4 timeout $(( $(left) - 20 )) python3 scripts/train.py configuration/recipes/seed-convfree.json \
    --dataset_name "$DATA" --output_dir "$RUNS/$name" --save_strategy no --disable_tqdm true ${EXTRA:-} "$@" \
    > "$RUNS/$name.log" 2>&1
  echo "$name rc=$? at $(( $(date +%s) - START )) s"
}
round() {  # runs "name|args" specs side by side, waits for all
  local pids=() spec name
  for spec in "$@"; do
    name=${spec%%|*}
    # shellcheck disable=SC2086  # the args are words on purpose
    run "$name" ${spec#*|} & pids+=($!)
  done
  wait "${pids[@]}"  # not a bare wait: that also waits for the tee above, forever
}
H128="num_cross_attention_heads=128,cross_attention_qk_dim=1024,cross_attention_v_dim=512"
H128W4="num_cross_attention_heads=128"  # the recipe's widths (512) over 128 heads of width 4: no parameter more
C="--random_crop_padding 4"
X4="num_blocks=4,num_cross_attends=4,num_self_attends_per_block=1"
round "recipe|--seed 42" "recipe-dataseed1|--data_seed 1" "h128|--config_overrides $H128" \
  "h128-dataseed1|--config_overrides $H128 --data_seed 1"
if [ "$(left)" -gt 200 ]; then
  round "h128w4|--config_overrides $H128W4" "h128w4-dataseed1|--config_overrides $H128W4 --data_seed 1" \
    "h128-crop|--config_overrides $H128 $C" "h128-x4|--config_overrides $H128,$X4"
fi
for f in "$RUNS"/*/metrics.json; do echo "== $f"; grep -A3 '"validation"' "$f" | grep accuracy; done

# Issue 22: fsdp.yaml on a GPU, one process (accelerate refuses FSDP on CPUs): wrapping by the model's layer classes,
# saving, and loading the saved folder through the Auto classes against an unsharded run of the same settings.
if [ "$(left)" -gt 90 ] && python3 -c "import torch; assert torch.cuda.is_available()" 2> /dev/null; then
  TINY=(configuration/recipes/tiny.json --dataset_name "$DATA" --save_strategy no --disable_tqdm true --seed 3)
  timeout 60 accelerate launch --config_file configuration/accelerate/fsdp.yaml --num_processes 1 \
    --mixed_precision no scripts/train.py "${TINY[@]}" --output_dir "$RUNS/fsdp-check" > "$RUNS/fsdp-check.log" 2>&1
  echo "fsdp-check rc=$? ($(grep -c 'parameters sharded by FSDP' "$RUNS/fsdp-check.log") FSDP log line)"
  timeout 60 python3 scripts/train.py "${TINY[@]}" --output_dir "$RUNS/fsdp-reference" > "$RUNS/fsdp-reference.log" 2>&1
  timeout 30 python3 - "$RUNS/fsdp-check" "$RUNS/fsdp-reference" <<'PY'
import sys, torch
from transformers import AutoModelForImageClassification
torch.manual_seed(0)
pixels = torch.randn(4, 3, 32, 32)
logits = [AutoModelForImageClassification.from_pretrained(f, trust_remote_code=True).eval()(pixels).logits for f in sys.argv[1:]]
print("fsdp-check max logit difference against the unsharded run:", float((logits[0] - logits[1]).abs().max()))
PY
fi

cd "$RUNS" && tar --exclude='checkpoint-*' --exclude='*.safetensors' -czf "$OUT/runs.tar.gz" . && cd - > /dev/null
echo "done at $(( $(date +%s) - START )) s"
