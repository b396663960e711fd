#!/bin/bash
# run.sh NAME [extra train.py flags]: the cpu-small recipe's full 80 epochs (its schedule run to the end, no time
# budget) in float32 on one thread, into outputs/NAME; log in results/probes-2026-12-03-cs80/NAME.log. See README.md.
set -u
NAME=$1; shift
cd "$(dirname "$0")/../.."
OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/train.py configuration/recipes/cpu-small.json \
  --dataset_name ../shared/data/cifar10 --output_dir "outputs/$NAME" --disable_tqdm true --bf16 false \
  --max_train_minutes 600 "$@" > "results/probes-2026-12-03-cs80/$NAME.log" 2>&1
