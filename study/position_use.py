#!/usr/bin/env python
"""Does a trained model use token positions, and does it underfit? Test-time diagnostics of a saved model folder.

    python -m study.position_use --model_dir outputs/seed-convfree --dataset_name ../shared/data/cifar10

On the validation split the training run held out (rebuilt from its run_args.json), it scores the model on:
  natural                  the images as they are
  tokens-shuffled          each batch's p x p patches (pixels for pixel tokens) moved to other places on the grid
                           by one random permutation, positions left on the grid: what is lost without position
  tokens-and-positions     the same shuffle with each token's position features moved with it: the same set of
                           (token, position) pairs, which a Perceiver must score exactly as `natural` (patch tokens
                           only; a convolutional stem sees its neighbours change)
  flip-averaged            the logits of each image and of its mirror image averaged (test-time flips): what a
                           model gains from seeing both, with or without flips in training
and on a seeded subset of the training images it was trained on (no augmentation), against validation: a model that
scores no better on its training images than on held-out ones underfits. It also measures how each cross-attend reads
the natural images (`cross_attention_reads`): per head, how many tokens it effectively reads (exp of the attention's
entropy; 1 = one token, M = all alike) and its largest weight, and how much of the key/value projection's weight
falls on the pixel features against the position features. Writes a JSON (--output).
"""

import argparse
import json
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

from modeling_perceiver_study.augment import normalize
from modeling_perceiver_study.data import (
    DataError,
    decode_split,
    limit_split,
    open_image_dataset,
    split_held_out,
)
from modeling_perceiver_study.evaluation import training_split_settings
from modeling_perceiver_study.files import require_model_location, write_json_atomic
from study.records import run_record


def shuffle_tokens(images: torch.Tensor, patch_size: int, order: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> the same images with p x p patch m taken from patch `order[m]` (row-major token grid)."""
    batch_size, channels, height, width = images.shape
    p, rows, columns = patch_size, height // patch_size, width // patch_size
    patches = images.reshape(batch_size, channels, rows, p, columns, p).permute(0, 2, 4, 1, 3, 5)
    patches = patches.reshape(batch_size, rows * columns, channels, p, p)[:, order]
    patches = patches.reshape(batch_size, rows, columns, channels, p, p).permute(0, 3, 1, 4, 2, 5)
    return patches.reshape(images.shape)


@contextmanager
def positions_moved(model, order: torch.Tensor):
    """Within the block, token m gets the position features of token `order[m]` (where its patch came from)."""
    encoding = model.perceiver.position_encoding
    original = encoding.token_positions
    encoding.token_positions = lambda pixel_values: original(pixel_values)[order.to(pixel_values.device)]
    try:
        yield
    finally:
        del encoding.token_positions  # the instance attribute hid the class's method


@torch.no_grad()
def accuracy(model, images, labels, mean, std, batch_size, bf16, arm="natural", seed=0) -> float:
    """Accuracy of `model` on uint8 images under one arm (see the module docstring)."""
    patch = model.config.input_patch_size
    num_tokens = (images.shape[2] // patch) * (images.shape[3] // patch)
    generator = torch.Generator().manual_seed(seed)
    correct = 0
    for start in range(0, len(images), batch_size):
        batch = normalize(images[start : start + batch_size], mean, std)
        order = torch.randperm(num_tokens, generator=generator)
        if arm in ("tokens-shuffled", "tokens-and-positions"):
            batch = shuffle_tokens(batch, patch, order)
        moved = positions_moved(model, order) if arm == "tokens-and-positions" else nullcontext()
        with moved, torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(batch).logits.float()
            if arm == "flip-averaged":
                logits = logits + model(batch.flip(-1)).logits.float()
        predictions = logits.argmax(-1)
        correct += int((predictions == labels[start : start + batch_size]).sum())
    return correct / len(images)


@torch.no_grad()
def cross_attention_reads(model, images, mean, std, batch_size, bf16) -> list[dict]:
    """Per cross-attend: the tokens one head of one latent effectively reads (exp(entropy), mean and quartiles over
    heads) and its mean largest weight, over `images`; and the Frobenius norm of the key and value weights on the
    pixel (or stem) features against the position features, each scaled by the input LayerNorm's gain."""
    entropy_sums, max_weight_sums = 0, 0  # per cross-attend, (h,) sums over images and latents
    for start in range(0, len(images), batch_size):
        batch = normalize(images[start : start + batch_size], mean, std)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            attentions = model(batch, output_attentions=True).cross_attentions  # each (B, h, N, M)
        weights = torch.stack([a.float() for a in attentions])  # (cross-attends, B, h, N, M)
        entropy_sums = entropy_sums - (weights * weights.clamp_min(1e-12).log()).sum(-1).sum((1, 3))
        max_weight_sums = max_weight_sums + weights.amax(-1).sum((1, 3))
    num_reads = len(images) * model.config.num_latents  # (image, latent) pairs per head
    encoder = model.perceiver.encoder
    reads = []
    for index, (entropy_sum, max_weight_sum) in enumerate(zip(entropy_sums, max_weight_sums)):
        tokens_read = (entropy_sum / num_reads).exp()  # (h,)
        quartiles = tokens_read.quantile(torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
        layer = encoder.cross_attend_for_block(index)  # cross-attends run in the first blocks, in order
        reads.append(
            {
                "cross_attend": index,
                "tokens_read_per_head_mean": float(tokens_read.mean()),
                "tokens_read_per_head_quartiles": [float(q) for q in quartiles],
                "largest_weight_mean": float(max_weight_sum.sum() / (num_reads * len(tokens_read))),
                **feature_weight_norms(layer, model.config.token_feature_dim),
            }
        )
    return reads


def feature_weight_norms(layer, num_token_features: int) -> dict:
    """Norms of a cross-attention's key and value weights on the token's own features and on its position features,
    after the input LayerNorm's gain (what a unit-variance feature contributes)."""
    gain = layer.inputs_norm.weight.detach()
    norms = {}
    for name, projection in (("key", layer.attention.k_proj), ("value", layer.attention.v_proj)):
        weight = projection.weight.detach() * gain
        norms[f"{name}_weight_norm_pixels"] = float(weight[:, :num_token_features].norm())
        norms[f"{name}_weight_norm_positions"] = float(weight[:, num_token_features:].norm())
    return norms


def held_out_and_training_images(model_dir, dataset_name, config, max_samples, training=True):
    """(validation images, labels), (training images, labels): the split the run carved, the rest of train (None
    when `training` is false: nothing decoded for it)."""
    seed, fraction, test_fraction = training_split_settings(model_dir)
    opened = open_image_dataset(dataset_name)
    image_column, label_column = opened.image_column, opened.label_column
    train, validation, _ = split_held_out(opened.splits, label_column, fraction, seed, test_fraction)

    def decoded(name, split):
        split = limit_split(split, max_samples, seed)
        part = decode_split(split, image_column, label_column, config.image_size, config.num_channels, split_name=name)
        return part.images, part.labels

    return decoded("validation", validation), decoded("train", train) if training else None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="A saved model folder (with run_args.json) or a Hub id.")
    parser.add_argument("--dataset_name", default="uoft-cs/cifar10", help="Hub id, local folder or parquet file.")
    parser.add_argument("--max_samples", type=int, default=5000, help="Images per split (seeded subset).")
    parser.add_argument("--batch_size", type=int, default=500)
    parser.add_argument("--bf16", action="store_true", help="Run under bf16 autocast, as a --bf16 run evaluates.")
    parser.add_argument("--output", default=None, help="JSON to write (default: <model_dir>/position_use.json).")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    args = parse_args(argv)
    if args.max_samples < 1 or args.batch_size < 1:
        print("error: --max_samples and --batch_size must be at least 1", file=sys.stderr)
        return 2
    try:
        require_model_location(args.model_dir)
        model = AutoModelForImageClassification.from_pretrained(
            args.model_dir, trust_remote_code=True, attn_implementation="eager"
        ).eval()
        processor = AutoImageProcessor.from_pretrained(args.model_dir, trust_remote_code=True)
        (images, labels), (train_images, train_labels) = held_out_and_training_images(
            args.model_dir, args.dataset_name, model.config, args.max_samples
        )
    except (DataError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    score = dict(mean=processor.image_mean, std=processor.image_std, batch_size=args.batch_size, bf16=args.bf16)
    arms = ["natural", "tokens-shuffled"]
    if getattr(model.config, "input_stem", "patches") == "patches":
        arms.append("tokens-and-positions")
    arms.append("flip-averaged")
    results = {
        "model": str(args.model_dir),
        "dataset": str(args.dataset_name),
        "num_samples": len(labels),
        "precision": "bf16 autocast" if args.bf16 else "fp32",
        "validation_accuracy": {arm: accuracy(model, images, labels, arm=arm, **score) for arm in arms},
        "training_accuracy_without_augmentation": accuracy(model, train_images, train_labels, **score),
        "training_num_samples": len(train_labels),
        "cross_attention_reads": cross_attention_reads(model, images, **score),
        **run_record("study.position_use", argv),
    }
    output = Path(args.output or Path(args.model_dir) / "position_use.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, results)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
