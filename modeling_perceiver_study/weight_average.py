"""An exponential moving average (EMA) of a model's weights during training (`--ema_decay`).

After each optimizer step every shadow weight moves toward the trained weight:
`shadow = d * shadow + (1 - d) * weight`, with `d = min(decay, (1 + step) / (10 + step))` so that the average does not
hold on to the random initialisation while there are still few steps to average (the `num_updates` warmup of
TensorFlow's `ExponentialMovingAverage`). The shadow is kept in float32 whatever the training precision. Evaluation
and the saved model use the averaged weights; `swap` exchanges them with the trained ones in place, so the same
module (compiled or wrapped for DDP) runs both.
"""

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

EMA_FILE = "ema.safetensors"


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"--ema_decay must be in (0, 1) (0 turns it off), got {decay}")
        self.decay = decay
        self.parameters = dict(model.named_parameters())
        self.shadow = {name: weight.detach().float().clone() for name, weight in self.parameters.items()}
        self.swapped = False  # True while the model holds the averaged weights

    def decay_at(self, step: int) -> float:
        return min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, step: int) -> None:
        """After optimizer step number `step` (1-based, as Trainer's global_step counts)."""
        if self.swapped:
            raise RuntimeError("the weight average cannot be updated while its weights are swapped into the model")
        keep = self.decay_at(step)
        self._follow_device()
        for name, weight in self.parameters.items():
            self.shadow[name].lerp_(weight.detach().float(), 1.0 - keep)

    def _follow_device(self) -> None:
        """Trainer may move the model to its device after the average was made."""
        for name, weight in self.parameters.items():
            if self.shadow[name].device != weight.device:
                self.shadow[name] = self.shadow[name].to(weight.device)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the model's weights with the averaged ones (call again to exchange them back)."""
        self._follow_device()
        for name, weight in self.parameters.items():
            trained = weight.detach().float().clone()
            weight.copy_(self.shadow[name])
            self.shadow[name] = trained
        self.swapped = not self.swapped

    def save(self, folder: str | Path) -> None:
        """The averaged weights (whichever side of a swap they are on) into `folder/ema.safetensors`."""
        averaged = self.shadow if not self.swapped else {n: w.detach().float() for n, w in self.parameters.items()}
        save_file({name: tensor.contiguous().cpu() for name, tensor in averaged.items()}, str(Path(folder) / EMA_FILE))

    def load(self, folder: str | Path) -> None:
        """The averaged weights saved by `save` in a checkpoint folder, for resuming; the names must match."""
        path = Path(folder) / EMA_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"checkpoint {folder} has no {EMA_FILE}: it was saved by a run without --ema_decay, so this run "
                "(with it) cannot resume from it; pass --overwrite_output_dir to start over"
            )
        saved = load_file(str(path))
        if set(saved) != set(self.shadow):
            raise ValueError(
                f"{path} holds averages of other weights than this model's (missing "
                f"{sorted(set(self.shadow) - set(saved))[:3]}, unexpected {sorted(set(saved) - set(self.shadow))[:3]})"
            )
        if self.swapped:
            raise RuntimeError("load the weight average before swapping it in")
        for name, tensor in saved.items():
            self.shadow[name] = tensor.to(self.shadow[name].device, torch.float32)
