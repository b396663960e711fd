"""--fit_schedule_to_budget: the schedule equals Trainer's until its end is fitted, a fitted run anneals to zero and
stops at the fitted end, a resumed run follows the same schedule, and bad combinations are one-line errors.

The epoch timings come from a fake clock (each call to `budget_schedule.now` advances it by EPOCH_SECONDS), so the
decision is the same on every machine."""

import json
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

from modeling_perceiver_study import budget_schedule
from modeling_perceiver_study.budget_schedule import WarmupThenDecay, steps_that_fit
from modeling_perceiver_study.training import SetupError
from tests.helpers import train_tiny

EPOCH_SECONDS = 10.0


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def fake_clock(monkeypatch):
    calls = iter(range(10_000))
    monkeypatch.setattr(budget_schedule, "now", lambda: EPOCH_SECONDS * next(calls))


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


# 10 epochs of 6 steps are planned; with the fake clock, the third epoch's end comes 30 s into a 50-s budget, with
# epochs of 10 s: two more fit, so the schedule ends after 5 epochs (step 30).
FITTED_RUN = ("--num_train_epochs", "10", "--max_train_minutes", str(50 / 60), "--fit_schedule_to_budget", "true")


def test_a_fitted_run_anneals_to_zero_and_stops_at_the_fitted_end(synthetic_parquet, tmp_path, fake_clock):
    metrics = train_tiny(synthetic_parquet, tmp_path / "run", *FITTED_RUN)
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    steps_per_epoch = state["max_steps"] // 10
    assert state["global_step"] == 5 * steps_per_epoch
    assert metrics["train"]["epoch"] == pytest.approx(5.0)
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
    checkpoints = sorted((tmp_path / "straight").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    stopped.mkdir()
    shutil.copy(tmp_path / "straight" / "run_args.json", stopped)
    for checkpoint in checkpoints[:4]:
        shutil.copytree(checkpoint, stopped / checkpoint.name)
    train_tiny(synthetic_parquet, stopped, *args)
    assert learning_rates(stopped)[-1] == learning_rates(tmp_path / "straight")[-1]
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
