"""Evaluate any saved model folder (or Hub id) on an image-classification split: accuracy, per-class accuracy,
confusion matrix, a grid of predictions and cross-attention maps (`scripts/evaluate_model.py`)."""

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .augment import normalize
from .data import (
    TEST_SPLIT_SEED,
    DataError,
    decode_split,
    limit_split,
    open_image_dataset,
    split_held_out,
)
from .files import read_json, require_model_location, write_json_atomic
from .metrics import load_accuracy
from .plots import plot_attention_maps, plot_confusion_matrix, plot_prediction_grid
from .training import DataArguments, PerceiverTrainingArguments

# The training script's defaults, for a model folder without run_args.json.
DEFAULT_SEED = PerceiverTrainingArguments.__dataclass_fields__["seed"].default
DEFAULT_FRACTION = DataArguments.__dataclass_fields__["train_val_split"].default


@dataclass
class EvaluationData:
    images: torch.Tensor  # uint8 (N, C, H, W)
    labels: torch.Tensor  # int64 (N,)
    label_names: list[str]
    description: str


def training_split_settings(model_dir) -> tuple[int, float, float]:
    """Seed, validation fraction and test fraction (`--test_split`, 0 if none) of the run that trained `model_dir`,
    to rebuild its held-out splits."""
    run_args_path = Path(model_dir) / "run_args.json"
    if run_args_path.is_file():
        run_args = read_json(run_args_path)  # a file that is not JSON is named
        try:
            data = run_args["data"]
            return (
                run_args["training"].get("seed", DEFAULT_SEED),
                data.get("train_val_split", DEFAULT_FRACTION),
                data.get("test_split", 0.0),
            )
        except (KeyError, AttributeError, TypeError) as error:
            raise ValueError(f"{run_args_path} is not a training run's record (no {error})") from error
    return DEFAULT_SEED, DEFAULT_FRACTION, 0.0


def load_evaluation_data(
    dataset_name,
    split,
    image_size,
    num_channels,
    seed,
    train_val_split,
    max_samples=None,
    image_column=None,
    label_column=None,
    test_split=0.0,
) -> EvaluationData:
    # Held-out splits are the dataset's own or, as training does, carved from train: columns are read on train.
    carved = split in ("validation", "test")
    opened = open_image_dataset(dataset_name, "train" if carved else split, image_column, label_column)
    dataset, image_column, label_column, names = (
        opened.splits,
        opened.image_column,
        opened.label_column,
        opened.label_names,
    )
    source = dataset.get(split)
    description = f"{dataset_name} [{split}]"
    if source is None and split == "test" and not test_split:
        raise DataError(
            f"{dataset_name} has no test split, and the run that trained this model carved none (--test_split)"
        )
    if source is None:  # a held-out split the training run carved: carve it again the same way
        _, validation, test = split_held_out(dataset, label_column, train_val_split, seed, test_split)
        source = validation if split == "validation" else test
        if split == "validation":
            description = f"{dataset_name} [validation: {100 * train_val_split:g} % of train carved with seed {seed}]"
        else:
            description = (
                f"{dataset_name} [test: {100 * test_split:g} % of train carved with seed {TEST_SPLIT_SEED}, "
                "disjoint from validation]"
            )
    source = limit_split(source, max_samples, seed)
    decoded = decode_split(source, image_column, label_column, image_size, num_channels, split_name=split)
    return EvaluationData(decoded.images, decoded.labels, names, description)


@torch.no_grad()
def predict(model, images_uint8, mean, std, batch_size=256, bf16=False, mirrored=False) -> torch.Tensor:
    """Float32 logits for uint8 images, normalized exactly as the image processor does; `bf16` runs under bf16
    autocast, as a run trained with `--bf16 true` evaluates; `mirrored` reads every image flipped left to right."""
    device = next(model.parameters()).device
    logits = []
    for start in range(0, len(images_uint8), batch_size):
        batch = normalize(images_uint8[start : start + batch_size].to(device), mean, std)
        if mirrored:
            batch = batch.flip(-1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits.append(model(batch).logits.float().cpu())
    return torch.cat(logits)


def confusion_matrix(true, predicted, num_labels) -> np.ndarray:
    return np.bincount(num_labels * np.asarray(true) + np.asarray(predicted), minlength=num_labels**2).reshape(
        num_labels, num_labels
    )


def flip_averaged_accuracy(model, data, processor, logits, batch_size, bf16) -> dict:
    """Test-time flips: accuracy when each image's logits and its mirror image's are summed. Reported beside the
    plain accuracy (which stays the headline): what reading both views adds, at twice the inference cost."""
    mirrored = predict(model, data.images, processor.image_mean, processor.image_std, batch_size, bf16, mirrored=True)
    predictions = (logits + mirrored).argmax(-1)
    accuracy = load_accuracy().compute(predictions=predictions.tolist(), references=data.labels.tolist())["accuracy"]
    return {"accuracy_flip_averaged": accuracy}


def evaluate_model_folder(
    model_dir,
    dataset_name,
    split,
    output_dir,
    max_samples=None,
    batch_size=256,
    grid_images=32,
    attention_images=4,
    image_column=None,
    label_column=None,
    bf16=False,
    attn_implementation=None,
    test_time_flip=False,
) -> dict:
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    require_model_location(model_dir)
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForImageClassification.from_pretrained(model_dir, trust_remote_code=True, **extra).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir, trust_remote_code=True)
    config = model.config
    seed, train_val_split, test_split = training_split_settings(model_dir)
    data = load_evaluation_data(
        dataset_name,
        split,
        config.image_size,
        config.num_channels,
        seed,
        train_val_split,
        max_samples,
        image_column,
        label_column,
        test_split,
    )
    model_labels = [config.id2label[i] for i in range(config.num_labels)]
    if data.label_names != model_labels:
        raise DataError(f"the dataset's labels {data.label_names} differ from the model's {model_labels}")

    logits = predict(model, data.images, processor.image_mean, processor.image_std, batch_size, bf16)
    confidences, predictions = logits.softmax(-1).max(-1)
    accuracy = load_accuracy().compute(predictions=predictions.tolist(), references=data.labels.tolist())["accuracy"]
    matrix = confusion_matrix(data.labels.numpy(), predictions.numpy(), config.num_labels)
    per_class = {name: float(matrix[i, i] / max(matrix[i].sum(), 1)) for i, name in enumerate(model_labels)}
    results = {
        "model": str(model_dir),
        "dataset": data.description,
        "num_samples": len(data.labels),
        "precision": "bf16 autocast" if bf16 else "fp32",
        "accuracy": accuracy,
        **(flip_averaged_accuracy(model, data, processor, logits, batch_size, bf16) if test_time_flip else {}),
        "per_class_accuracy": per_class,
        "confusion_matrix": {"labels": model_labels, "rows_true_columns_predicted": matrix.tolist()},
    }

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output_dir / "evaluation.json", results)
    plot_confusion_matrix(matrix, model_labels, output_dir / "confusion_matrix.png")
    shown = torch.randperm(len(data.labels), generator=torch.Generator().manual_seed(0))[:grid_images]
    plot_prediction_grid(
        data.images[shown],
        data.labels[shown].tolist(),
        predictions[shown].tolist(),
        confidences[shown].tolist(),
        model_labels,
        output_dir / "predictions.png",
        title=f"{len(shown)} images drawn at random (seed 0) from {data.description}; wrong predictions in red",
    )
    attended = shown[:attention_images]
    device = next(model.parameters()).device
    with torch.no_grad():
        pixels = normalize(data.images[attended].to(device), processor.image_mean, processor.image_std)
        cross_attention = model(pixels, output_attentions=True).cross_attentions[0].cpu()
    patch = getattr(config, "input_patch_size", 1)
    grid = (config.image_size // patch, config.image_size // patch)
    row_titles = [
        f"true: {model_labels[data.labels[i]]}\npred: {model_labels[predictions[i]]}" for i in attended.tolist()
    ]
    plot_attention_maps(
        data.images[attended],
        cross_attention,
        grid,
        output_dir / "attention_maps.png",
        row_titles=row_titles,
        title="first cross-attend: all latents and heads averaged, then the sharpest single (latent, head) maps",
    )
    return results


# ---------------------------------------------------------------------------------------------------------------------
# Command line

EVALUATE_USAGE = """Evaluate a saved model folder (or Hub id) on a dataset split.

    python scripts/evaluate_model.py --model_dir outputs/cpu-small --dataset_name ../shared/data/cifar10 \
        --split validation

Writes to --output_dir (default: <model_dir>/evaluation): evaluation.json (accuracy, per-class accuracy, confusion
matrix), confusion_matrix.png, predictions.png (images with true and predicted label and confidence) and
attention_maps.png (where the latents attend, drawn over the image). `--split validation` on a dataset without one
rebuilds the held-out split the model's training run carved (same seed and fraction, read from run_args.json).
"""


def positive_int(text: str) -> int:
    """An argparse type: argparse names the flag and the value when this raises."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def parse_evaluate_arguments(argv=None):
    parser = argparse.ArgumentParser(description=EVALUATE_USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="A saved model folder or a Hub id.")
    parser.add_argument("--dataset_name", default="uoft-cs/cifar10", help="Hub id, local folder or parquet file.")
    parser.add_argument("--split", default="validation", help="Split to evaluate (validation, test, train).")
    parser.add_argument("--output_dir", default=None, help="Where results go (default: <model_dir>/evaluation).")
    parser.add_argument(
        "--max_samples", type=positive_int, default=None, help="Evaluate on a seeded subset of this size."
    )
    parser.add_argument("--batch_size", type=positive_int, default=256)
    parser.add_argument(
        "--bf16", action="store_true", help="Run under bf16 autocast (as a --bf16 training run evaluates)."
    )
    parser.add_argument("--attn_implementation", default=None, help="Attention kernel (default: the model's, sdpa).")
    parser.add_argument(
        "--test_time_flip",
        action="store_true",
        help="Also score each image with its mirror image's logits added (accuracy_flip_averaged, beside accuracy).",
    )
    parser.add_argument("--image_column_name", default=None)
    parser.add_argument("--label_column_name", default=None)
    return parser.parse_args(argv)


def evaluate_main(argv=None) -> int:
    """`scripts/evaluate_model.py` and the `perceiver-study-evaluate` command."""
    args = parse_evaluate_arguments(argv)
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
            test_time_flip=args.test_time_flip,
        )
    except (DataError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    summary = {
        key: results[key] for key in ("dataset", "num_samples", "accuracy", "accuracy_flip_averaged") if key in results
    }
    print(json.dumps(summary, indent=2))
    print(f"results and figures in {output_dir}")
    return 0
