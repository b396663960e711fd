#!/usr/bin/env python
"""Permuted pixels: does the Perceiver need the image's spatial order, and does a ConvNet?

    python scripts/permutation.py --dataset_name ../shared/data/cifar10 --epochs 2 \
        --output results/study/permutation.json

Arms, all trained by the same loop with the same split, augmentation, optimizer, schedule and epochs:
  perceiver                      pixel tokens in their natural order
  perceiver-permuted             pixels under one fixed permutation, each pixel's position features moved with it
                                 (the paper's setting: the tokens are the same set, only listed in another order)
  perceiver-permuted-grid        pixels permuted but position features left on the grid: each pixel still has a
                                 unique, fixed code, but neighbours no longer have similar codes
  convnet                        a small ConvNet, natural order
  convnet-permuted               the same ConvNet on permuted pixels
  perceiver-patches              the preset's own tokens (2 x 2-pixel patches for cpu-small), natural order
  perceiver-patches-permuted     the same on permuted pixels: each patch token now holds 4 scattered pixels
Each arm's result is written to --work_dir as it finishes; a rerun skips finished arms.
"""

import argparse
import json
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch

from modeling_perceiver_study import PerceiverStudyForImageClassification
from modeling_perceiver_study.files import write_json_atomic
from modeling_perceiver_study.image_processing_perceiver_study import CIFAR10_MEAN, CIFAR10_STD
from modeling_perceiver_study.permutation import (
    LoopConfig,
    PermutedFourierPositionEncoding,
    SmallConvNet,
    pixel_permutation,
    train_and_evaluate,
)
from modeling_perceiver_study.presets import load_preset
from modeling_perceiver_study.training import DataArguments, prepare_data

ARMS = (
    "perceiver",
    "perceiver-permuted",
    "perceiver-permuted-grid",
    "convnet",
    "convnet-permuted",
    "perceiver-patches",
    "perceiver-patches-permuted",
)


def build_arm(arm: str, preset: str, order: torch.Tensor):
    torch.manual_seed(0)
    if arm.startswith("convnet"):
        return SmallConvNet(num_labels=10)
    patch_size = {} if arm.startswith("perceiver-patches") else {"input_patch_size": 1}
    model = PerceiverStudyForImageClassification(load_preset(preset, num_labels=10, **patch_size))
    model.config._attn_implementation = "eager"  # as the recipes train (set after construction, which resets it)
    if arm == "perceiver-permuted":
        model.perceiver.position_encoding = PermutedFourierPositionEncoding(model.perceiver.position_encoding, order)
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_name", default="uoft-cs/cifar10")
    parser.add_argument("--preset", default="cpu-small", help="Perceiver preset, run with pixel tokens.")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--permutation_seed", type=int, default=0)
    parser.add_argument("--max_train_samples", type=int, default=None)
    parser.add_argument("--work_dir", default="outputs/permutation")
    parser.add_argument("--output", default="results/study/permutation.json")
    args = parser.parse_args(argv)

    try:
        stem = load_preset(args.preset).input_stem
    except ValueError as error:  # names the unknown preset or the bad field
        print(f"error: {error}", file=sys.stderr)
        return 2
    if stem != "patches":
        print(
            f"error: preset {args.preset!r} has input_stem {stem!r}; the permutation test needs raw pixel tokens (a "
            "convolution over permuted pixels mixes pixels from all over the image, so no position can follow them)",
            file=sys.stderr,
        )
        return 2
    loop = LoopConfig(epochs=args.epochs)
    try:
        data = prepare_data(
            DataArguments(dataset_name=args.dataset_name, max_train_samples=args.max_train_samples), 32, 3, loop.seed
        )
    except (ValueError, FileNotFoundError) as error:  # DataError is a ValueError; each names the problem
        print(f"error: {error}", file=sys.stderr)
        return 2
    train, validation = data.train, data.validation  # TensorImageDataset: .images uint8, .labels
    order = pixel_permutation(32, 32, args.permutation_seed)
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for arm in args.arms:
        arm_path = work_dir / f"{arm}.json"
        if arm_path.exists():
            results[arm] = json.loads(arm_path.read_text())
            continue
        print(f"[{arm}]", flush=True)
        model = build_arm(arm, args.preset, order)
        arm_order = order if "permuted" in arm else None
        results[arm] = train_and_evaluate(model, train, validation, arm_order, loop, CIFAR10_MEAN, CIFAR10_STD)
        write_json_atomic(arm_path, results[arm])
    summary = {
        "command": "python scripts/permutation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "loop": asdict(loop),
        "preset": args.preset,
        "permutation_seed": args.permutation_seed,
        "train_images": len(train.labels),
        "validation_images": len(validation.labels),
        "arms": results,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.output, summary)
    for arm, result in results.items():
        print(
            f"{arm:>24}: {100 * result['validation_accuracy']:.1f} % ({result['train_images_per_second']:.0f} images/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
