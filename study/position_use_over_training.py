#!/usr/bin/env python
"""When does a model come to rely on where its tokens are? The test-time patch shuffle, tracked over training.

    python -m study.position_use_over_training --run_dir outputs/seed-convfree --dataset_name ../shared/data/cifar10

For every checkpoint the run kept (train with `--save_total_limit` at least the number of epochs to keep them all),
it scores the validation split the run held out (rebuilt from the run's run_args.json) twice, as study.position_use
does: `natural`, and `tokens-shuffled` (each batch's p x p patches moved over the grid, positions left in place).
The gap between the two is what the model has learned to draw from position by that point of training. Writes a JSON
(default: <run_dir>/position_use_over_training.json).
"""

import argparse
import json
import sys
from pathlib import Path

from modeling_perceiver_study.data import DataError
from modeling_perceiver_study.files import write_json_atomic
from modeling_perceiver_study.training import checkpoints_in_order
from study.position_use import accuracy, held_out_and_training_images
from study.records import run_record

ARMS = ("natural", "tokens-shuffled")


def checkpoint_epoch(checkpoint: Path) -> float:
    state = checkpoint / "trainer_state.json"
    try:
        return float(json.loads(state.read_text())["epoch"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{state} is not a Trainer checkpoint's state (no epoch: {error})") from error


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--run_dir", required=True, help="A training run's output folder with its checkpoint-* folders."
    )
    parser.add_argument("--dataset_name", default="uoft-cs/cifar10", help="Hub id, local folder or parquet file.")
    parser.add_argument("--max_samples", type=int, default=2000, help="Validation images (seeded subset).")
    parser.add_argument("--batch_size", type=int, default=500)
    parser.add_argument("--bf16", action="store_true", help="Run under bf16 autocast, as a --bf16 run evaluates.")
    parser.add_argument(
        "--output", default=None, help="JSON to write (default: <run_dir>/position_use_over_training.json)."
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    args = parse_args(argv)
    run_dir = Path(args.run_dir)
    if args.max_samples < 1 or args.batch_size < 1:
        print("error: --max_samples and --batch_size must be at least 1", file=sys.stderr)
        return 2
    try:
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir} is not a training run's folder")
        checkpoints = checkpoints_in_order(run_dir)
        if not checkpoints:
            raise ValueError(
                f"{run_dir} holds no checkpoint-* folders; train with --save_strategy epoch and --save_total_limit "
                "at least the number of epochs to keep one per epoch"
            )
        epochs = [checkpoint_epoch(checkpoint) for checkpoint in checkpoints]  # a damaged one is named up front
        processor = AutoImageProcessor.from_pretrained(checkpoints[-1], trust_remote_code=True)
        config = AutoConfig.from_pretrained(checkpoints[0], trust_remote_code=True)
        (images, labels), _ = held_out_and_training_images(
            run_dir, args.dataset_name, config, args.max_samples, training=False
        )
    except (DataError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    score = dict(mean=processor.image_mean, std=processor.image_std, batch_size=args.batch_size, bf16=args.bf16)
    rows = []
    for checkpoint, epoch in zip(checkpoints, epochs):
        model = AutoModelForImageClassification.from_pretrained(
            checkpoint, trust_remote_code=True, attn_implementation="eager"
        ).eval()
        scored = {arm: accuracy(model, images, labels, arm=arm, **score) for arm in ARMS}
        rows.append({"checkpoint": checkpoint.name, "epoch": epoch, **scored})
        print(json.dumps(rows[-1]), flush=True)
    results = {
        "run": str(run_dir),
        "dataset": str(args.dataset_name),
        "num_samples": len(labels),
        "precision": "bf16 autocast" if args.bf16 else "fp32",
        "checkpoints": rows,
        **run_record("study.position_use_over_training", argv),
    }
    output = Path(args.output or run_dir / "position_use_over_training.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
