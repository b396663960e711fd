"""The weight average (--ema_decay): its update rule, the swap used for evaluation and saving, checkpoints that
resume to the same weights as a run that was never stopped, and clear errors."""

import json

import pytest
import torch
from safetensors.torch import load_file

from modeling_perceiver_study.training import SetupError, last_complete_checkpoint
from modeling_perceiver_study.weight_average import EMA_FILE, WeightAverage
from tests.helpers import copy_run_stopped_after, train_tiny


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_update_follows_the_warmed_up_decay_and_swap_round_trips():
    model = torch.nn.Linear(3, 2)
    start = {name: weight.detach().clone() for name, weight in model.named_parameters()}
    average = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model.weight.add_(1.0)
    average.update(step=1)  # decay min(0.9, 2 / 11): the average moves most of the way at first
    keep = 2 / 11
    assert torch.allclose(average.shadow["weight"], keep * start["weight"] + (1 - keep) * (start["weight"] + 1))
    assert torch.equal(average.shadow["bias"], start["bias"])
    assert average.decay_at(10_000) == 0.9

    trained = model.weight.detach().clone()
    averaged = average.shadow["weight"].clone()
    average.swap()
    assert torch.equal(model.weight, averaged) and average.swapped
    with pytest.raises(RuntimeError, match="cannot be updated while its weights are swapped"):
        average.update(step=2)
    average.swap()
    assert torch.equal(model.weight, trained) and torch.equal(average.shadow["weight"], averaged)


def test_save_and_load_keep_the_average_whichever_side_of_a_swap(tmp_path):
    model = torch.nn.Linear(3, 2)
    average = WeightAverage(model, decay=0.5)
    with torch.no_grad():
        model.weight.mul_(3.0)
    average.update(step=100)
    expected = average.shadow["weight"].clone()
    average.swap()
    average.save(tmp_path)  # swapped: the average is in the model now
    restored = WeightAverage(torch.nn.Linear(3, 2), decay=0.5)
    restored.load(tmp_path)
    assert torch.equal(restored.shadow["weight"], expected)
    with pytest.raises(ValueError, match="averages of other weights"):
        WeightAverage(torch.nn.Linear(3, 2, bias=False), decay=0.5).load(tmp_path)
    with pytest.raises(FileNotFoundError, match="has no ema.safetensors"):
        restored.load(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="must be in"):
        WeightAverage(model, decay=1.0)


def test_training_evaluates_and_saves_the_average_and_logs_the_trained_weights(synthetic_parquet, tmp_path):
    metrics = train_tiny(synthetic_parquet, tmp_path / "run", "--num_train_epochs", "3", "--ema_decay", "0.9")
    folder = tmp_path / "run"
    history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
    raw = [entry for entry in history if "raw_accuracy" in entry]
    averaged = [entry for entry in history if "eval_accuracy" in entry]
    assert len(raw) == 3 and len(averaged) == 3  # one pair per epoch
    checkpoint = last_complete_checkpoint(folder)
    saved, trained, ema = (
        load_file(path)
        for path in (folder / "model.safetensors", checkpoint / "model.safetensors", checkpoint / EMA_FILE)
    )
    # The folder's model is the average at the last step; the checkpoint keeps the trained weights beside it.
    for name, tensor in ema.items():
        assert torch.equal(saved[name], tensor.to(saved[name].dtype)), name
    assert any(not torch.equal(saved[name], trained[name]) for name in ema)
    assert metrics["validation"]["accuracy"] == averaged[-1]["eval_accuracy"]


def test_a_resumed_run_ends_with_the_same_average(synthetic_parquet, tmp_path):
    args = ("--num_train_epochs", "4", "--ema_decay", "0.8", "--save_total_limit", "10")
    train_tiny(synthetic_parquet, tmp_path / "straight", *args)
    # The same run stopped after epoch 2: only its first two checkpoints and its run record are left.
    stopped = tmp_path / "stopped"
    copy_run_stopped_after(tmp_path / "straight", stopped, epochs=2)
    train_tiny(synthetic_parquet, stopped, *args)
    straight, resumed = load_file(tmp_path / "straight" / "model.safetensors"), load_file(stopped / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


def test_bad_decay_and_a_checkpoint_without_an_average_are_setup_errors(synthetic_parquet, tmp_path):
    with pytest.raises(SetupError, match=r"--ema_decay must be in \[0, 1\)"):
        train_tiny(synthetic_parquet, tmp_path / "bad", "--ema_decay", "1.5")
    train_tiny(synthetic_parquet, tmp_path / "plain", "--num_train_epochs", "1")
    checkpoint = next((tmp_path / "plain").glob("checkpoint-*"))
    with pytest.raises(SetupError, match="has no ema.safetensors"):
        train_tiny(
            synthetic_parquet, tmp_path / "other", "--ema_decay", "0.9", "--resume_from_checkpoint", str(checkpoint)
        )


def test_a_run_recorded_before_the_flag_existed_is_still_the_same_run(synthetic_parquet, tmp_path):
    first = train_tiny(synthetic_parquet, tmp_path / "run", "--num_train_epochs", "1")
    record = tmp_path / "run" / "run_args.json"
    run_args = json.loads(record.read_text())
    del run_args["training"]["ema_decay"]  # as runs recorded before 2026-12-02 hold them
    record.write_text(json.dumps(run_args))
    assert train_tiny(synthetic_parquet, tmp_path / "run", "--num_train_epochs", "1") == first  # a no-op rerun
    with pytest.raises(SetupError, match=r"training.ema_decay: None there, 0.9 now"):
        train_tiny(synthetic_parquet, tmp_path / "run", "--num_train_epochs", "1", "--ema_decay", "0.9")
