"""Whole-batch augmentation and normalization on the training device.

Batches arrive as uint8 `(B, C, H, W)`; everything here is vectorized over the batch, so a GPU run never waits on
per-image CPU work. Random numbers come from torch's global generator on the batch's device, which the Trainer seeds
and restores with each checkpoint, so a resumed run draws the same augmentations as an uninterrupted one.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    random_crop_padding: int = 4  # pixels of zero padding around the image before a random crop back to size; 0: off
    horizontal_flip: bool = True
    randaugment_ops: int = 0  # > 0: RandAugment-style, this many random photometric/erasing ops per image
    randaugment_magnitude: float = 0.5  # strength of those ops, 0 to 1
    mixup_alpha: float = 0.0  # > 0: mix pairs of images with weight ~ Beta(alpha, alpha)
    cutmix_alpha: float = 0.0  # > 0: paste a box from another image, box area ~ Beta(alpha, alpha)
    mix_probability: float = 1.0  # chance that a batch gets mixup/cutmix when either is on
    label_smoothing: float = 0.0  # folded into the soft targets when mixup/cutmix is on

    def __post_init__(self):
        """Refuse values that would be silently treated as off (negative) or that have no meaning, naming the flag."""
        for name in ("random_crop_padding", "randaugment_ops"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"--{name} must be an integer >= 0 (0: off), got {value!r}")
        for name in ("mixup_alpha", "cutmix_alpha"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"--{name} must be >= 0 (0: off), got {getattr(self, name)!r}")
        for name in ("randaugment_magnitude", "mix_probability"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"--{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"--label_smoothing_factor must be in [0, 1), got {self.label_smoothing!r}")

    @property
    def mixes(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0


def normalize(images: torch.Tensor, mean, std, dtype=torch.float32) -> torch.Tensor:
    """uint8 `(B, C, H, W)` (or float already in [0, 1]) -> float normalized per channel, as the image processor
    does (rescale by 1/255, then subtract mean and divide by std)."""
    mean = torch.as_tensor(mean, device=images.device, dtype=dtype).view(1, -1, 1, 1)
    std = torch.as_tensor(std, device=images.device, dtype=dtype).view(1, -1, 1, 1)
    scaled = images.to(dtype) / 255.0 if images.dtype == torch.uint8 else images.to(dtype)
    return (scaled - mean) / std


def random_crop(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Zero-pad by `padding`, then crop each image back to its size at its own random offset."""
    if padding <= 0:
        return images
    batch, _, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    offset_y = torch.randint(0, 2 * padding + 1, (batch,), device=images.device)
    offset_x = torch.randint(0, 2 * padding + 1, (batch,), device=images.device)
    rows = (offset_y[:, None] + torch.arange(height, device=images.device))[:, None, :, None]  # (B, 1, H, 1)
    cols = (offset_x[:, None] + torch.arange(width, device=images.device))[:, None, None, :]  # (B, 1, 1, W)
    batch_index = torch.arange(batch, device=images.device)[:, None, None, None]
    channel_index = torch.arange(images.shape[1], device=images.device)[None, :, None, None]
    return padded[batch_index, channel_index, rows, cols]


def random_horizontal_flip(images: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(images.shape[0], device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def _per_sample(values, images):
    return values.view(-1, *([1] * (images.ndim - 1)))


def _grayscale(images):
    weights = torch.tensor([0.299, 0.587, 0.114], device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True) if images.shape[1] == 3 else images


def _brightness(images, strength):
    return images * (1 + strength)


def _contrast(images, strength):
    mean = _grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * (1 + strength) + mean


def _saturation(images, strength):
    gray = _grayscale(images)
    return (images - gray) * (1 + strength) + gray


def _erase(images, strength):
    """Zero a square whose side grows with |strength| (up to half the image), at a random place per image."""
    batch, _, height, width = images.shape
    side = (strength.abs() * 0.5 * min(height, width)).round().long().view(-1, 1, 1)
    top = (torch.rand(batch, device=images.device) * height).long().view(-1, 1, 1)
    left = (torch.rand(batch, device=images.device) * width).long().view(-1, 1, 1)
    rows = torch.arange(height, device=images.device).view(1, -1, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, -1)
    inside = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
    return images.masked_fill(inside[:, None], 0.0)


RANDAUGMENT_OPS = (_brightness, _contrast, _saturation, _erase)


def rand_augment(images: torch.Tensor, num_ops: int, magnitude: float) -> torch.Tensor:
    """RandAugment-style on a float batch in [0, 1]: each image gets `num_ops` ops drawn at random (with
    replacement), each with a random sign and strength up to `magnitude`. Vectorized: every op runs on the whole
    batch and is kept only for the images that drew it."""
    batch = images.shape[0]
    for _ in range(num_ops):
        choice = torch.randint(len(RANDAUGMENT_OPS), (batch,), device=images.device)
        strength = (torch.rand(batch, device=images.device) * 2 - 1) * magnitude
        result = images
        for index, op in enumerate(RANDAUGMENT_OPS):
            chosen = _per_sample(choice == index, images)
            result = torch.where(chosen, op(images, _per_sample(strength, images)).clamp(0, 1), result)
        images = result
    return images


def soft_targets(labels: torch.Tensor, num_labels: int, smoothing: float) -> torch.Tensor:
    targets = F.one_hot(labels, num_labels).float()
    return targets * (1.0 - smoothing) + smoothing / num_labels


def mix_batch(images, targets, config: AugmentConfig):
    """Mixup or cutmix (chosen at random when both are on) with a shuffled copy of the batch."""
    if torch.rand(()) >= config.mix_probability:
        return images, targets
    use_cutmix = config.cutmix_alpha > 0 and (config.mixup_alpha <= 0 or bool(torch.rand(()) < 0.5))
    alpha = config.cutmix_alpha if use_cutmix else config.mixup_alpha
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    partner = torch.randperm(images.shape[0], device=images.device)
    if use_cutmix:
        height, width = images.shape[-2:]
        cut_h, cut_w = int(height * (1 - lam) ** 0.5), int(width * (1 - lam) ** 0.5)
        cy, cx = int(torch.randint(height, ())), int(torch.randint(width, ()))
        y0, y1 = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
        x0, x1 = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
        images = images.clone()
        images[:, :, y0:y1, x0:x1] = images[partner, :, y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)  # the area actually pasted
    else:
        images = lam * images + (1 - lam) * images[partner]
    return images, lam * targets + (1 - lam) * targets[partner]


def augment_batch(images_uint8, labels, config: AugmentConfig, num_labels: int, mean, std):
    """Training batch: crop/flip on uint8, optional RandAugment-style ops, normalize, then optional mixup/cutmix
    with soft targets."""
    images = random_crop(images_uint8, config.random_crop_padding)
    if config.horizontal_flip:
        images = random_horizontal_flip(images)
    if config.randaugment_ops > 0:
        images = rand_augment(images.float() / 255.0, config.randaugment_ops, config.randaugment_magnitude)
    images = normalize(images, mean, std)
    if config.mixes:
        targets = soft_targets(labels, num_labels, config.label_smoothing)
        return mix_batch(images, targets, config)
    return images, labels
