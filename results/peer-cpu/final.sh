#!/usr/bin/env bash
# The peer's 20-minute run (issue 16, target 4): the cpu-small recipe unchanged (20 minutes of training, batch 256,
# AdamW at the recipe's learning rate unless given, cosine schedule, crop and flip, label smoothing), the model
# replaced by the size the probes of sweep.sh chose, its epochs sized to its measured speed so that the schedule ends
# within the 20 minutes. Run from the checkout's root, alone on the machine:
#   bash results/peer-cpu/final.sh NAME VARIANT SIZES LEARNING_RATE EPOCHS [--data_seed N ...]
set -euo pipefail
name=$1 variant=$2 sizes=$3 lr=$4 epochs=$5
shift 5
export HF_HUB_OFFLINE=1
python -m study.train_peer configuration/recipes/cpu-small.json --dataset_name "${DATA:-../shared/data/cifar10}" \
  --peer "$variant" --peer_sizes "$sizes" --learning_rate "$lr" --num_train_epochs "$epochs" \
  --output_dir "outputs/peer-$name" --disable_tqdm true --torch_compile false --dataloader_pin_memory false \
  --report_to none "$@"
