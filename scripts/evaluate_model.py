#!/usr/bin/env python
"""Evaluate a saved model folder (or Hub id) on a dataset split.

    python scripts/evaluate_model.py --model_dir outputs/cpu-small --dataset_name ../shared/data/cifar10 \
        --split validation

Writes to --output_dir (default: <model_dir>/evaluation): evaluation.json (accuracy, per-class accuracy, confusion
matrix), confusion_matrix.png, predictions.png (images with true and predicted label and confidence) and
attention_maps.png (where the latents attend, drawn over the image). `--split validation` on a dataset without one
rebuilds the held-out split the model's training run carved (same seed and fraction, read from run_args.json).
"""

import argparse
import json
import sys
from pathlib import Path

from modeling_perceiver_study.data import DataError
from modeling_perceiver_study.evaluation import evaluate_model_folder


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="A saved model folder or a Hub id.")
    parser.add_argument("--dataset_name", default="uoft-cs/cifar10", help="Hub id, local folder or parquet file.")
    parser.add_argument("--split", default="validation", help="Split to evaluate (validation, test, train).")
    parser.add_argument("--output_dir", default=None, help="Where results go (default: <model_dir>/evaluation).")
    parser.add_argument("--max_samples", type=int, default=None, help="Evaluate on a seeded subset of this size.")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument(
        "--bf16", action="store_true", help="Run under bf16 autocast (as a --bf16 training run evaluates)."
    )
    parser.add_argument("--attn_implementation", default=None, help="Attention kernel (default: the model's, sdpa).")
    parser.add_argument("--image_column_name", default=None)
    parser.add_argument("--label_column_name", default=None)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    output_dir = args.output_dir or str(Path(args.model_dir) / "evaluation")
    try:
        results = evaluate_model_folder(
            args.model_dir,
            args.dataset_name,
            args.split,
            output_dir,
            max_samples=args.max_samples,
            batch_size=args.batch_size,
            image_column=args.image_column_name,
            label_column=args.label_column_name,
            bf16=args.bf16,
            attn_implementation=args.attn_implementation,
        )
    except (DataError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = {key: results[key] for key in ("dataset", "num_samples", "accuracy")}
    print(json.dumps(summary, indent=2))
    print(f"results and figures in {output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
