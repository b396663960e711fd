"""Training within a time budget (`--max_train_minutes`), and a schedule that ends with it (`--fit_schedule_to_budget`).

The budget counts wall time from the start of training in each process (evaluations and checkpoints included); the
final evaluation and save come after it. In a multi-process run the first process decides when to stop, for all.

A time-budgeted recipe sizes its cosine schedule in epochs (cpu-small: 80 epochs in 20 minutes on the CPUs it was
tuned on). A slower machine reaches the budget first and stops with the learning rate still high (at 72-78 % of its
peak after 28-31 epochs on an AVX2-only CPU, results/weight-average-cpu/), never having annealed. Here the run times
one epoch in steady state, from the end of the second epoch it runs to the end of the third (the first compiles the
training step, the first evaluation compiles its own), which includes the evaluation and checkpoint between them;
from then on the schedule ends after as many whole epochs as the rest of the budget holds, never later than the
epochs asked for. Only the schedule's end moves: the warmup and every step already taken keep their learning rates
(the recipes decide during warmup, so nothing jumps).

The estimate is that one epoch's: on a machine whose speed drifts during the run (a third within twenty minutes on a
2-core VM, docs/results.md) the schedule can end after the budget (cut before its last steps) or well before
it (budget unused).

The decision is stored in the scheduler's state (`scheduler.pt` in each checkpoint), so a resumed run follows the
same schedule.
"""

import logging
import math
import time

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

SCHEDULES = ("cosine", "linear")


def now() -> float:
    return time.monotonic()


class TimeBudgetCallback(TrainerCallback):
    """Ends training once `max_minutes` have passed (the final model is still saved and evaluated).

    Processes of one run start their clocks at different moments, so each deciding alone could stop one a step
    before another, which would then wait for it forever; the first process's clock decides, read at logging steps
    (Trainer synchronises there anyway) rather than at every step."""

    def __init__(self, max_minutes: float):
        self.max_seconds = 60.0 * max_minutes
        self.started = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = now()

    def on_step_end(self, args, state, control, **kwargs):
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if distributed and state.global_step % max(1, state.logging_steps) != 0:
            return
        over = now() - self.started >= self.max_seconds
        if distributed:
            over = bool(same_on_every_process(int(over), args.device))
        if over:
            logger.info("time budget of %.1f minutes reached at step %d", self.max_seconds / 60, state.global_step)
            control.should_training_stop = True  # the epoch-end evaluation and checkpoint then follow as configured


class WarmupThenDecay:
    """Trainer's `cosine` and `linear` schedules (linear warmup, then decay to 0 at `total_steps`) as a callable
    object: `LambdaLR.state_dict` saves an object's attributes (not a function's), so a resized end is checkpointed."""

    def __init__(self, kind: str, warmup_steps: int, total_steps: int):
        if kind not in SCHEDULES:
            raise ValueError(f"--fit_schedule_to_budget needs --lr_scheduler_type in {SCHEDULES}, got {kind!r}")
        self.kind, self.warmup_steps, self.total_steps = kind, warmup_steps, total_steps
        self.fitted = False  # True once the end was set from the budget

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return step / max(1, self.warmup_steps)
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        if self.kind == "linear":
            return max(0.0, 1.0 - progress)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def steps_that_fit(
    *, step: int, planned_steps: int, steps_per_epoch: int, seconds_per_epoch: float, seconds_left: float
) -> int:
    """The schedule's new end: `step` plus as many whole epochs as `seconds_left` holds, at most `planned_steps`."""
    epochs_left = max(0, math.floor(seconds_left / seconds_per_epoch)) if seconds_per_epoch > 0 else math.inf
    return int(min(planned_steps, step + epochs_left * steps_per_epoch))


class FitScheduleToBudgetCallback(TrainerCallback):
    """Times the epochs of this process, ends the schedule within the budget, and stops training at its end."""

    def __init__(self, max_minutes: float):
        self.budget_seconds = 60.0 * max_minutes
        self.started = None
        self.epoch_ends = []  # (time, global_step) at each epoch end in this process

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = now()

    def on_epoch_end(self, args, state, control, lr_scheduler=None, **kwargs):
        # The interval between two epoch ends holds an epoch's steps and the evaluation and checkpoint before them.
        self.epoch_ends.append((now(), state.global_step))
        schedule = schedule_of(lr_scheduler)
        if schedule.fitted or len(self.epoch_ends) < 3:
            return  # timed from the second epoch's end to the third's (see the module's docstring)
        (before, step_before), (last, step) = self.epoch_ends[-2:]
        end = steps_that_fit(
            step=step,
            planned_steps=schedule.total_steps,
            steps_per_epoch=step - step_before,
            seconds_per_epoch=last - before,
            seconds_left=self.budget_seconds - (last - self.started),
        )
        schedule.total_steps, schedule.fitted = same_on_every_process(end, args.device), True
        rerun_last_step(lr_scheduler)
        logger.info(
            "schedule fitted to the %.1f-minute budget: it ends at step %d (%.1f epochs) of the %d planned",
            self.budget_seconds / 60,
            schedule.total_steps,
            schedule.total_steps / (step - step_before),
            state.max_steps,
        )
        self.stop_at_the_end(state, control, schedule)

    def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
        self.stop_at_the_end(state, control, schedule_of(lr_scheduler))

    def on_train_end(self, args, state, control, lr_scheduler=None, **kwargs):
        if lr_scheduler is not None and not schedule_of(lr_scheduler).fitted:
            logger.warning(
                "--fit_schedule_to_budget had no effect: the schedule is fitted after three epochs in one process and "
                "this run ended after %d, so it followed the planned %d-step schedule",
                len(self.epoch_ends),
                state.max_steps,
            )

    @staticmethod
    def stop_at_the_end(state, control, schedule: WarmupThenDecay) -> None:
        if schedule.fitted and state.global_step >= schedule.total_steps:
            control.should_training_stop = True  # the epoch-end evaluation and checkpoint then follow as configured


def schedule_of(lr_scheduler) -> WarmupThenDecay:
    scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)  # accelerate may wrap it
    return scheduler.lr_lambdas[0]


def fitted_schedule_summary(lr_scheduler, state, planned_epochs: float) -> dict:
    """Where the run's schedule ended, for its metrics.json: whether it was fitted, and its end in steps and epochs
    (the planned end when it was not). Read from the scheduler, so a resumed run reports the fit made before it."""
    schedule = schedule_of(lr_scheduler)
    steps_per_epoch = state.max_steps / planned_epochs
    return {
        "fitted": schedule.fitted,
        "end_step": schedule.total_steps,
        "end_epoch": round(schedule.total_steps / steps_per_epoch, 2),
        "planned_steps": state.max_steps,
    }


def rerun_last_step(lr_scheduler) -> None:
    """Sets the next step's learning rate from the fitted schedule: the scheduler computed it before the fit."""
    scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)
    scheduler.last_epoch -= 1
    scheduler.step()  # the same step again: counts up to where it was and sets the optimizer's rates


def same_on_every_process(value: int, device) -> int:
    """The first process's `value`, on every process (each timed its own epochs)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return value
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    torch.distributed.broadcast(tensor, src=0)
    return int(tensor.item())
