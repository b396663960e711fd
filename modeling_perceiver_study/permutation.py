"""The permuted-pixels experiment (not part of the Hub model).

Every image's pixels are shuffled by one fixed permutation, the same for training and evaluation, applied after
augmentation (as in the paper's permuted ImageNet). A model that reads pixels as a set of (value, position) tokens
loses nothing when each pixel's position features travel with it; a model built on locality (a ConvNet) loses its
prior. All arms go through one small training loop, so they share the data split, augmentation, optimizer, schedule
and epoch budget.
"""

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .augment import AugmentConfig, augment_batch, normalize
from .modeling_perceiver_study import FourierPositionEncoding


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
        super().__init__(encoding.num_bands, encoding.max_resolution, patch_size=1)
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
