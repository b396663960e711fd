#!/bin/bash
# run.sh NAME [extra train.py flags]: the cpu-small recipe in float32 on one thread with no time budget, into
# outputs/NAME; log in results/fixed-epochs-cpu/NAME.log. See README.md.
set -u
NAME=$1; shift
cd "$(dirname "$0")/../.."
OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/train.py configuration/recipes/cpu-small.json \
  --dataset_name ../shared/data/cifar10 --output_dir "outputs/$NAME" --disable_tqdm true --bf16 false \
  --max_train_minutes 600 "$@" > "results/fixed-epochs-cpu/$NAME.log" 2>&1
