"""Permuted pixels: does the Perceiver need the image's spatial order, and does a ConvNet?

    python -m study.permutation --dataset_name ../shared/data/cifar10 --epochs 2 \
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

Every image's pixels are shuffled by one fixed permutation, the same for training and evaluation, applied after
augmentation (as in the paper's permuted ImageNet). A model that reads pixels as a set of (value, position) tokens
loses nothing when each pixel's position features travel with it; a model built on locality (a ConvNet) loses its
prior. All arms go through one small training loop, so they share the data split, augmentation, optimizer, schedule
and epoch budget.
"""

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from modeling_perceiver_study import PerceiverStudyForImageClassification
from modeling_perceiver_study.augment import AugmentConfig, augment_batch, normalize
from modeling_perceiver_study.files import write_json_atomic
from modeling_perceiver_study.image_processing_perceiver_study import CIFAR10_MEAN, CIFAR10_STD
from modeling_perceiver_study.modeling_perceiver_study import FourierPositionEncoding
from modeling_perceiver_study.presets import load_preset
from modeling_perceiver_study.training import DataArguments, prepare_data
from study.records import run_record


def pixel_permutation(height: int, width: int, seed: int) -> torch.Tensor:
    """A fixed random order of the H*W pixel positions: pixel m of a permuted image is pixel `order[m]` of the
    original."""
    return torch.randperm(height * width, generator=torch.Generator().manual_seed(seed))


def permute_pixels(images: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W), pixel m taken from pixel `order[m]` (row-major), every channel alike."""
    batch_size, channels, height, width = images.shape
    return images.reshape(batch_size, channels, height * width)[:, :, order].reshape(images.shape)


class PermutedFourierPositionEncoding(FourierPositionEncoding):
    """Position features that travel with the pixels: token m, which holds pixel `order[m]`, gets that pixel's
    original position features. (Pixel tokens only: a patch of permuted pixels has no single position.)"""

    def __init__(self, encoding: FourierPositionEncoding, order: torch.Tensor):
        if encoding.patch_size != 1:
            raise ValueError(f"positions can follow permuted pixels only for pixel tokens, not {encoding.patch_size}")
        super().__init__(num_bands=encoding.num_bands, max_resolution=encoding.max_resolution, patch_size=1)
        self.order = order

    def features(self, height, width, device, dtype):
        return super().features(height, width, device, dtype)[self.order.to(device)]


class SmallConvNet(nn.Module):
    """A ConvNet whose prior is locality (3 x 3 kernels, pooling), at about the multiply-adds of the Perceiver it is
    compared with: 32-64-128-256 channels, batch norm, global average pooling, linear classifier."""

    def __init__(self, num_labels: int = 10, channels=(32, 64, 128, 256), in_channels: int = 3):
        super().__init__()
        layers = []
        for index, width in enumerate(channels):
            layers += [nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            if index > 0:
                layers.append(nn.MaxPool2d(2))
            in_channels = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_channels, num_labels)

    def forward(self, pixel_values):
        return self.classifier(self.features(pixel_values).mean(dim=(2, 3)))  # (B, num_labels)


@dataclass
class LoopConfig:
    epochs: float = 2.0
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    label_smoothing: float = 0.1
    bf16: bool = True
    seed: int = 42


def logits_of(model, pixel_values):
    output = model(pixel_values)
    return output.logits if hasattr(output, "logits") else output


def evaluate_accuracy(model, split, order, mean, std, bf16=True, batch_size=500) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(split.labels), batch_size):
            pixels = normalize(split.images[start : start + batch_size], mean, std)
            if order is not None:
                pixels = permute_pixels(pixels, order)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                predictions = logits_of(model, pixels).argmax(-1)
            correct += int((predictions == split.labels[start : start + batch_size]).sum())
    return correct / len(split.labels)


def train_and_evaluate(model, train, validation, order, loop: LoopConfig, mean, std, log=print) -> dict:
    """Train `model` on the decoded `train` split (uint8 images), evaluating on `validation` after every epoch.
    `order`: the pixel permutation, applied after augmentation and before the model, or None."""
    torch.manual_seed(loop.seed)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": loop.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=loop.learning_rate,
    )
    steps_per_epoch = max(1, len(train.labels) // loop.batch_size)  # drop the last partial batch
    total_steps = int(loop.epochs * steps_per_epoch)
    warmup = max(1, int(loop.warmup_ratio * total_steps))

    def learning_rate_factor(step):  # linear warmup, cosine decay to 0
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor)
    augment_config = AugmentConfig()  # random crop (padding 4) and horizontal flip, as in the recipes
    history, step, train_seconds = [], 0, 0.0
    while step < total_steps:
        model.train()
        started = time.perf_counter()
        shuffled = torch.randperm(len(train.labels))
        for start in range(0, steps_per_epoch * loop.batch_size, loop.batch_size):
            if step >= total_steps:
                break
            index = shuffled[start : start + loop.batch_size]
            pixels, labels = augment_batch(train.images[index], train.labels[index], augment_config, 0, mean, std)
            if order is not None:
                pixels = permute_pixels(pixels, order)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=loop.bf16):
                logits = logits_of(model, pixels)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=loop.label_smoothing)
            last_loss = loss.detach()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            step += 1
        train_seconds += time.perf_counter() - started
        accuracy = evaluate_accuracy(model, validation, order, mean, std, loop.bf16)
        history.append({"epoch": step / steps_per_epoch, "validation_accuracy": accuracy, "loss": float(last_loss)})
        log(f"epoch {step / steps_per_epoch:.2f}: loss {float(last_loss):.3f}, validation accuracy {accuracy:.4f}")
    return {
        "validation_accuracy": history[-1]["validation_accuracy"],
        "history": history,
        "train_seconds": train_seconds,
        "train_images_per_second": step * loop.batch_size / train_seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


# Every arm, in the order it runs and is reported, with the label of the docs' table (the recorded run used the
# cpu-small-2x2 preset, whose tokens are 2 x 2-pixel patches).
ARMS = {
    "perceiver": "Perceiver, pixels in natural order",
    "perceiver-permuted": "Perceiver, pixels permuted, positions moved with them",
    "perceiver-permuted-grid": "Perceiver, pixels permuted, positions left on the grid",
    "convnet": "ConvNet, natural order",
    "convnet-permuted": "ConvNet, pixels permuted",
    "perceiver-patches": "Perceiver, 2 x 2-pixel patch tokens, natural order",
    "perceiver-patches-permuted": "Perceiver, 2 x 2-pixel patch tokens, pixels permuted",
}


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


def arm_flops(args) -> dict:
    """Forward FLOPs per image of each arm's model (torch's formulas, 2 per multiply-add), on a batch of 8."""
    from study.benchmark import count_flops

    pixels, labels = torch.randn(8, 3, 32, 32), torch.zeros(8, dtype=torch.long)
    order = pixel_permutation(32, 32, args.permutation_seed)
    flops = {}
    for arm in args.arms:
        model = build_arm(arm, args.preset, order)

        def forward(x, y, model=model):
            return logits_of(model, x)

        flops[arm] = count_flops(forward, model, pixels, labels, False, "fp32", torch.device("cpu"))
    return {"preset": args.preset, "forward_flops_per_image": flops}


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
    parser.add_argument(
        "--flops_output", default=None, help="Only count each arm's forward FLOPs per image into this JSON, then stop."
    )
    args = parser.parse_args(argv)
    if args.flops_output:
        write_json_atomic(args.flops_output, {**run_record("study.permutation", argv), **arm_flops(args)})
        print(Path(args.flops_output).read_text())
        return 0

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
        **run_record("study.permutation", argv),
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
