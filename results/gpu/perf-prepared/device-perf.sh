#!/usr/bin/env bash
# One device call for issue 19 (prepared 2026-11-30, not yet run on a GPU): MFU of the training step at several
# batch sizes and with compilation, then the 10-epoch recipes on one GPU, one at a time (their time is their own) with
# --time_split (step, data wait, augmentation, logging, evaluation, checkpoint) and no per-step host sync, then the
# longest convolution-free run the remaining time allows. Everything it measures is written under $OUT.
# Needs, carried with the working tree: .data/cifar10 and .whl, as results/gpu/convfree-sweep/README.md says.
# CPU rehearsal (about 3 minutes), see README.md here.
set -u
START=$(date +%s)
DEADLINE=${DEADLINE:-540}
OUT=${OUT:-/tmp/out}
DATA=${DATA:-.data/cifar10}
mkdir -p "$OUT/bench" "$OUT/runs"
left() { echo $((DEADLINE - ($(date +%s) - START))); }
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
exec > >(tee -a "$OUT/device.log") 2>&1

if [ -d .whl ] && [ -z "${SKIP_WHL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || exit 3
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers; from modeling_perceiver_study.timing import TimeSplit; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)" || exit 4

# 1. MFU of the bare training step: the seed-sized convolution-free model and seed, batch sizes, compiled or not.
for preset in ${BENCH_PRESETS:-seed-convfree seed}; do
  for batch in ${BENCH_BATCHES:-256 1024}; do
    [ "$(left)" -gt 380 ] || break
    timeout 180 python3 -m study.benchmark --preset "$preset" --batch "$batch" --precision bf16 --no_peers \
      --attn_implementation sdpa,eager --compile --repeats 5 --steps 10 ${BENCH_EXTRA:-} \
      --output "$OUT/bench/$preset-b$batch.json" > "$OUT/bench/$preset-b$batch.log" 2>&1
    echo "bench $preset batch $batch rc=$? at $(( $(date +%s) - START )) s"
  done
done

# 2. The 10-epoch recipes, alone, timed from process start; no per-step isnan() read-back.
train() {  # name recipe extra...
  local name=$1 recipe=$2; shift 2
  local started=$(date +%s.%N)
  timeout $(( $(left) - 15 )) python3 scripts/train.py "$recipe" --dataset_name "$DATA" \
    --output_dir "$OUT/runs/$name" --save_strategy no --disable_tqdm true --report_to none --time_split true \
    --logging_nan_inf_filter false --torch_compile true --per_device_eval_batch_size 1000 ${EXTRA:-} "$@" \
    > "$OUT/runs/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc wall $(python3 -c "import time; print(round(time.time() - $started, 1))") s at $(( $(date +%s) - START )) s"
}
[ "$(left)" -gt 240 ] && train seed-convfree configuration/recipes/seed-convfree.json
[ "$(left)" -gt 180 ] && train seed-conv configuration/recipes/seed-conv.json

# 3. The longest convolution-free run that fits: epochs sized to the time left at the speed step 2 measured.
EPOCHS=$(python3 - "$OUT/runs/seed-convfree/metrics.json" "$(left)" "${LONG_MAX_EPOCHS:-300}" <<'PY'
import json, sys
try:
    train = json.load(open(sys.argv[1]))["train"]
    seconds_per_epoch = train["train_runtime"] / train["epoch"]
except (OSError, KeyError, ValueError, ZeroDivisionError):
    print(0); sys.exit()
epochs = int((int(sys.argv[2]) - 60) / (1.15 * seconds_per_epoch))  # 15 % margin, a minute to pack up
print(max(0, min(epochs, int(sys.argv[3]))))
PY
)
echo "long run: $EPOCHS epochs"
[ "${EPOCHS:-0}" -ge "${LONG_MIN_EPOCHS:-20}" ] && train "seed-convfree-long" configuration/recipes/seed-convfree.json \
  --num_train_epochs "$EPOCHS" --train_eval_samples 0

for f in "$OUT"/runs/*/metrics.json; do
  python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[1], 'validation', m['validation']['accuracy'], 'time split', m.get('time_split', {}).get('fraction'))" "$f"
done
find "$OUT/runs" -name '*.safetensors' -delete
echo "done at $(( $(date +%s) - START )) s"
