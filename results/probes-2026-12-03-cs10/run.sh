#!/bin/bash
# run.sh NAME [extra train.py flags]: the cpu-small recipe for 10 epochs (its schedule run to the end) in float32 on
# one thread, into outputs/NAME; log in results/probes-2026-12-03-cs10/NAME.log. See README.md beside this file.
set -u
NAME=$1; shift
cd "$(dirname "$0")/../.."
OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python scripts/train.py configuration/recipes/cpu-small.json \
  --dataset_name ../shared/data/cifar10 --output_dir "outputs/$NAME" --disable_tqdm true --bf16 false \
  --num_train_epochs 10 --max_train_minutes 240 "$@" > "results/probes-2026-12-03-cs10/$NAME.log" 2>&1
