#!/usr/bin/env bash
# transformers' Perceiver (issue 16, target 4) trained through this repository's pipeline under cpu-small's budget:
# the cpu-small recipe (data, augmentation, AdamW, cosine schedule, batch 256, 20 minutes of training) with the model
# replaced. Step 1 measures each candidate size's training throughput (30 steps); step 2 trains each for a short
# probe whose schedule is sized to PROBE_MINUTES; the best probe's size then gets the full 20-minute run
# (final.sh). Run from the checkout's root, alone on the machine.
#   DATA=../shared/data/cifar10 OUT=/tmp/peer bash results/peer-cpu/sweep.sh
set -euo pipefail
DATA=${DATA:-../shared/data/cifar10}
OUT=${OUT:-/tmp/peer}
PROBE_MINUTES=${PROBE_MINUTES:-3}
TRAIN_IMAGES=${TRAIN_IMAGES:-45000}
export HF_HUB_OFFLINE=1
mkdir -p "$OUT"

# name variant sizes learning-rate
CANDIDATES=(
  "f-l16d64 fourier num_latents=16,d_latents=64,num_self_attends_per_block=4,num_self_attention_heads=4,self_attention_widening_factor=2 1e-3"
  "f-l32d128 fourier num_latents=32,d_latents=128,num_self_attends_per_block=4,num_self_attention_heads=4,self_attention_widening_factor=2 1e-3"
  "f-l64d128 fourier num_latents=64,d_latents=128,num_self_attends_per_block=4,num_self_attention_heads=4,self_attention_widening_factor=2 1e-3"
  "l-l32d128 learned num_latents=32,d_latents=128,num_self_attends_per_block=4,num_self_attention_heads=4,self_attention_widening_factor=2 1e-3"
  # added after the four above tied at about 20 %: the fastest size at a higher learning rate (its speed folder is a
  # copy of f-l16d64's: the same model and batch)
  "f-l16d64-lr3e-3 fourier num_latents=16,d_latents=64,num_self_attends_per_block=4,num_self_attention_heads=4,self_attention_widening_factor=2 3e-3"
)
COMMON=(configuration/recipes/cpu-small.json --dataset_name "$DATA" --disable_tqdm true --torch_compile false
        --dataloader_pin_memory false --report_to none)

for candidate in "${CANDIDATES[@]}"; do
  read -r name variant sizes lr <<< "$candidate"
  if [ ! -f "$OUT/$name-speed/metrics.json" ]; then
    python -m study.train_peer "${COMMON[@]}" --peer "$variant" --peer_sizes "$sizes" --learning_rate "$lr" \
      --output_dir "$OUT/$name-speed" --max_steps 30 --eval_strategy no --save_strategy no --max_eval_samples 500 \
      > "$OUT/$name-speed.log" 2>&1
  fi
  speed=$(python -c "import json; print(json.load(open('$OUT/$name-speed/metrics.json'))['train']['train_samples_per_second'])")
  epochs=$(python -c "print(round(max(0.2, $speed * 60 * $PROBE_MINUTES / $TRAIN_IMAGES), 2))")
  echo "$name: $speed images/s -> $epochs epochs in $PROBE_MINUTES minutes"
  if [ ! -f "$OUT/$name-probe/metrics.json" ]; then
    python -m study.train_peer "${COMMON[@]}" --peer "$variant" --peer_sizes "$sizes" --learning_rate "$lr" \
      --output_dir "$OUT/$name-probe" --num_train_epochs "$epochs" --max_train_minutes "$PROBE_MINUTES" \
      --eval_strategy no --save_strategy no > "$OUT/$name-probe.log" 2>&1
  fi
  python -c "import json; m = json.load(open('$OUT/$name-probe/metrics.json')); print('$name probe:', m['validation']['accuracy'])"
done
