#!/usr/bin/env python
"""Does validation beating training early in a run reflect strong regularisation? Train the cpu-small recipe as it is
and with its regularisers off (no random crop, no flip, no label smoothing), two seeds each, and log at every epoch
the validation accuracy and loss, the accuracy and loss on a fixed un-augmented subset of the training images, and the
training loss on the augmented, label-smoothed batches the optimizer sees.

    python -m study.regularisation --dataset_name ../shared/data/cifar10 --output results/study/regularisation.json

The recipe arm is study.depth's 4-layer run (the same command and folder), so running both trains it once.
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

from modeling_perceiver_study.files import write_json_atomic
from study.depth import train_depth
from study.records import run_record
from study.short_runs import RECIPE_NOTE, train_variant

REGULARISERS_OFF = ["--random_crop_padding", "0", "--horizontal_flip", "false", "--label_smoothing_factor", "0"]


def first_epoch_gaps(run) -> dict:
    first = run["per_epoch"][0]
    return {
        "validation_minus_train_subset_accuracy": first["validation_accuracy"] - first["train_subset_accuracy"],
        "validation_minus_train_batches_loss": first["validation_loss"] - first["train_batches_loss"],
    }


def summarise(runs) -> dict:
    final_gap = [run["train_subset_accuracy"] - run["validation_accuracy"] for run in runs]
    return {
        "validation_mean": statistics.mean(run["validation_accuracy"] for run in runs),
        "train_subset_mean": statistics.mean(run["train_subset_accuracy"] for run in runs),
        "final_train_subset_minus_validation": [min(final_gap), max(final_gap)],
        "first_epoch": [first_epoch_gaps(run) for run in runs],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="Where the results go (JSON).")
    parser.add_argument("--dataset_name", default="uoft-cs/cifar10")
    parser.add_argument("--epochs", type=float, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    parser.add_argument("--work_dir", default="outputs/study-depth", help="Training runs (reruns skip finished ones).")
    args = parser.parse_args(argv)
    arms = {
        "recipe": [train_depth(args.dataset_name, 4, seed, args.epochs, args.work_dir) for seed in args.seeds],
        "regularisers off": [
            train_variant(args.dataset_name, f"noreg-seed{seed}", REGULARISERS_OFF, seed, args.epochs, args.work_dir)
            for seed in args.seeds
        ],
    }
    results = {
        **run_record("study.regularisation"),
        "preset": "cpu-small",
        "recipe": RECIPE_NOTE,
        "regularisers_off_flags": REGULARISERS_OFF,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "arms": arms,
        "summary": {name: summarise(runs) for name, runs in arms.items()},
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, results)
    print(json.dumps(results["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
