"""Where a training run's time goes: the step, waiting for the batch, augmentation, logging, evaluation, checkpoints.

`TimeSplit` keeps one clock mark. At each boundary of the training loop the trainer attributes the time since the
mark to the part that just ended and moves the mark, so the parts add up to the run's wall time by construction and
nothing is counted twice. On a GPU the boundaries synchronise the device first: kernels run asynchronously, and
without it a step's compute would be charged to whatever next waits for the device (usually logging's `.item()`).
That synchronisation costs a little, so the split is measured on request (`--time_split true`).
"""

import time

import torch

PARTS = ("step", "data_wait", "augment", "logging", "evaluation", "checkpoint", "other")


class TimeSplit:
    def __init__(self, device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else None
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self.steps = 0
        self._mark = None

    @property
    def started(self) -> bool:
        return self._mark is not None

    def start(self) -> None:
        self._synchronize()
        self._mark = time.perf_counter()

    def stop(self) -> None:
        """Close the clock: later boundaries (e.g. the evaluation after training) are not charged."""
        self._mark = None

    def charge(self, part: str) -> None:
        """Attribute the time since the last mark to `part` (one of PARTS) and move the mark."""
        if self._mark is None:
            return
        self._synchronize()
        now = time.perf_counter()
        self.seconds[part] += now - self._mark
        self._mark = now

    def _synchronize(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def summary(self) -> dict:
        total = sum(self.seconds.values())
        return {
            "total_seconds": total,
            "steps": self.steps,
            "seconds": dict(self.seconds),
            "fraction": {part: (seconds / total if total else 0.0) for part, seconds in self.seconds.items()},
            # The measure: waiting for data against the time of the steps it feeds.
            "data_wait_per_step_time": (
                self.seconds["data_wait"] / (self.seconds["step"] + self.seconds["augment"] + self.seconds["data_wait"])
                if self.steps
                else 0.0
            ),
        }

    def describe(self) -> str:
        summary = self.summary()
        parts = ", ".join(
            f"{part} {100 * fraction:.1f} %" for part, fraction in summary["fraction"].items() if fraction > 0
        )
        return f"time split over {summary['total_seconds']:.1f} s and {self.steps} steps: {parts}"
