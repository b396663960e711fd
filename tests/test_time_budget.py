"""--max_train_minutes stops every process of a run at the same step; --fit_schedule_to_budget: the schedule equals
Trainer's until its end is fitted, a fitted run anneals to zero and stops at the fitted end, a resumed run follows the
same schedule, and bad combinations are one-line errors.

The training runs read a fake clock (`time_budget.now`: SECONDS_PER_STEP per optimizer step taken, evaluation free),
so the decisions are the same on every machine."""

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from torch.optim.optimizer import register_optimizer_step_post_hook
from transformers import (
    TrainerControl,
    TrainerState,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

from modeling_perceiver_study import time_budget
from modeling_perceiver_study.time_budget import TimeBudgetCallback, WarmupThenDecay, steps_that_fit
from modeling_perceiver_study.training import SetupError
from tests.helpers import copy_run_stopped_after, train_tiny

SECONDS_PER_STEP = 2.0


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def fake_clock(monkeypatch):
    steps = []
    hook = register_optimizer_step_post_hook(lambda *_: steps.append(1))
    monkeypatch.setattr(time_budget, "now", lambda: SECONDS_PER_STEP * len(steps))
    yield
    hook.remove()


def step_where_the_budget_stops(rank: int, init_file: str, out_dir: str) -> None:
    """One of two gloo processes: a 10-s budget, one second per step, rank 1's clock started 5 s before rank 0's."""
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        clock = {"seconds": 0.0}
        time_budget.now = lambda: clock["seconds"]
        callback, state, control = TimeBudgetCallback(max_minutes=10 / 60), TrainerState(), TrainerControl()
        state.logging_steps = 2
        args = SimpleNamespace(device=torch.device("cpu"))
        callback.on_train_begin(args, state, control)
        callback.started -= 5.0 * rank
        for step in range(1, 31):
            state.global_step, clock["seconds"] = step, float(step)
            callback.on_step_end(args, state, control)
            if control.should_training_stop:
                break
        (Path(out_dir) / str(rank)).write_text(str(step))
    finally:
        torch.distributed.destroy_process_group()


def test_every_process_stops_at_the_step_where_the_first_one_runs_out_of_time(tmp_path):
    torch.multiprocessing.spawn(
        step_where_the_budget_stops, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True
    )
    # Alone, rank 1 would stop at step 5; the first process's clock decides, read at logging steps.
    assert (tmp_path / "0").read_text() == (tmp_path / "1").read_text() == "10"


@pytest.mark.parametrize(
    ("kind", "reference"), [("cosine", get_cosine_schedule_with_warmup), ("linear", get_linear_schedule_with_warmup)]
)
def test_unfitted_schedule_is_trainers(kind, reference):
    ours = WarmupThenDecay(kind, warmup_steps=7, total_steps=100)
    theirs = reference(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), 7, 100).lr_lambdas[0]
    for step in range(0, 110):
        assert ours(step) == pytest.approx(theirs(step), abs=1e-12), step


def test_steps_that_fit_counts_whole_epochs_and_never_exceeds_the_plan():
    fit = dict(step=30, planned_steps=800, steps_per_epoch=10)
    assert steps_that_fit(**fit, seconds_per_epoch=40.0, seconds_left=1000.0) == 30 + 25 * 10
    assert steps_that_fit(**fit, seconds_per_epoch=40.0, seconds_left=39.0) == 30  # not one more epoch fits
    assert steps_that_fit(**fit, seconds_per_epoch=40.0, seconds_left=-5.0) == 30  # already past the budget
    assert steps_that_fit(**fit, seconds_per_epoch=1.0, seconds_left=1000.0) == 800  # a fast machine: as planned


def learning_rates(folder) -> list[tuple[int, float]]:
    history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
    return [(entry["step"], entry["learning_rate"]) for entry in history if "learning_rate" in entry]


# 10 epochs of 5 steps (72 images, batch 16) are planned, 10 s each on the fake clock. The third epoch's end comes 30 s
# into a 55-s budget: two more epochs fit, so the schedule ends after 5 epochs (step 25, at 50 s), before the budget
# itself would stop the run (at 55 s, step 28).
FITTED_RUN = ("--num_train_epochs", "10", "--max_train_minutes", str(55 / 60), "--fit_schedule_to_budget", "true")


def test_a_fitted_run_anneals_to_zero_and_stops_at_the_fitted_end(synthetic_parquet, tmp_path, fake_clock):
    metrics = train_tiny(synthetic_parquet, tmp_path / "run", *FITTED_RUN)
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    steps_per_epoch = state["max_steps"] // 10
    assert steps_per_epoch == 5  # what FITTED_RUN's budget was worked out for
    assert state["global_step"] == 5 * steps_per_epoch
    assert metrics["train"]["epoch"] == pytest.approx(5.0)
    assert metrics["train"]["schedule"] == {"fitted": True, "end_step": 25, "end_epoch": 5.0, "planned_steps": 50}
    rates = dict(learning_rates(tmp_path / "run"))
    warmup = math.ceil(0.05 * state["max_steps"])  # Trainer's warmup ratio, of the planned steps
    fitted_at, last = 3 * steps_per_epoch, 5 * steps_per_epoch
    planned = WarmupThenDecay("cosine", warmup_steps=warmup, total_steps=state["max_steps"])
    fitted = WarmupThenDecay("cosine", warmup_steps=warmup, total_steps=last)
    # Trainer logs the rate the step ran at: the schedule's value one step before (LambdaLR counts from 0). Steps up
    # to the third epoch's end ran as planned; every later step runs on the fitted schedule.
    for step, rate in rates.items():
        schedule = planned if step <= fitted_at else fitted
        assert rate == pytest.approx(3e-3 * schedule(step - 1), rel=1e-6), step
    assert rates[last] < 0.02 * 3e-3  # annealed: the last step runs at almost zero
    assert planned(last - 1) > 0.5  # where the planned schedule still was


def test_a_run_resumed_after_the_fit_ends_with_the_same_weights(synthetic_parquet, tmp_path, fake_clock):
    args = (*FITTED_RUN, "--save_total_limit", "10")
    train_tiny(synthetic_parquet, tmp_path / "straight", *args)
    stopped = tmp_path / "stopped"  # the same run stopped after epoch 4: the fit is only in the checkpoint now
    copy_run_stopped_after(tmp_path / "straight", stopped, epochs=4)
    train_tiny(synthetic_parquet, stopped, *args)
    assert learning_rates(stopped)[-1] == learning_rates(tmp_path / "straight")[-1]
    # The fit was made before the stop: the resumed run reads it back from its checkpoint and reports it.
    assert json.loads((stopped / "metrics.json").read_text())["train"]["schedule"]["end_step"] == 25
    straight, resumed = load_file(tmp_path / "straight" / "model.safetensors"), load_file(stopped / "model.safetensors")
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ((), "needs a budget to fit: pass --max_train_minutes"),
        (("--max_train_minutes", "5", "--lr_scheduler_type", "constant"), "needs --lr_scheduler_type in"),
    ],
)
def test_bad_combinations_are_setup_errors(synthetic_parquet, tmp_path, flags, message):
    with pytest.raises(SetupError, match=message):
        train_tiny(synthetic_parquet, tmp_path / "bad", "--fit_schedule_to_budget", "true", *flags)


def test_a_run_too_short_to_fit_says_the_flag_had_no_effect(synthetic_parquet, tmp_path, caplog):
    with caplog.at_level("WARNING", logger=time_budget.__name__):
        metrics = train_tiny(synthetic_parquet, tmp_path / "short", "--num_train_epochs", "2", *FITTED_RUN[2:])
    assert "--fit_schedule_to_budget had no effect" in caplog.text
    assert "ended after 2" in caplog.text
    assert metrics["train"]["schedule"] == {"fitted": False, "end_step": 10, "end_epoch": 2.0, "planned_steps": 10}
