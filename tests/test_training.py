"""The training script end to end at tiny scale: outputs, fine-tuning onto a new label set, resuming after kill -9,
and clear errors for bad input."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoImageProcessor, AutoModelForImageClassification

from modeling_perceiver_study.augment import normalize
from modeling_perceiver_study.training import SetupError, checkpoints_in_order, main
from tests.conftest import write_image_parquet
from tests.helpers import REPO_ROOT, TINY_TRAINING_ARGS, train_tiny


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_training_writes_a_complete_model_folder(synthetic_parquet, tmp_path):
    metrics = train_tiny(synthetic_parquet, tmp_path / "run", "--num_train_epochs", "4")
    folder = tmp_path / "run"
    for name in (
        "model.safetensors",
        "config.json",
        "preprocessor_config.json",
        "modeling_perceiver_study.py",
        "configuration_perceiver_study.py",
        "image_processing_perceiver_study.py",
        "metrics.json",
        "trainer_state.json",
        "training_curves.png",
        "run_args.json",
    ):
        assert (folder / name).is_file(), name
    config = json.loads((folder / "config.json").read_text())
    assert set(config["auto_map"]) == {
        "AutoConfig",
        "AutoModel",
        "AutoModelForImageClassification",
        "AutoImageProcessor",
    }
    assert config["id2label"] == {"0": "red", "1": "green", "2": "blue", "3": "yellow"}
    saved = json.loads((folder / "metrics.json").read_text())
    assert saved["validation"]["num_samples"] == 24 and saved["train"]["num_samples"] == 72
    assert saved["validation"]["accuracy"] == metrics["validation"]["accuracy"]
    assert saved["validation"]["accuracy"] > 0.5  # four easy colour classes: far above chance (0.25)
    assert (folder / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert any(path.name.startswith("checkpoint-") for path in folder.iterdir())


def fine_tune_with_zero_learning_rate(dataset, output_dir, base_dir):
    """Learning rate 0: fine-tuning changes nothing, so the result shows exactly what was loaded."""
    train_tiny(
        dataset,
        output_dir,
        "--model_name_or_path",
        str(base_dir),
        "--learning_rate",
        "0",
        "--num_train_epochs",
        "1",
        "--warmup_steps",
        "0",
    )


def test_fine_tuning_onto_a_new_label_set_keeps_the_encoder(synthetic_parquet, tmp_path):
    train_tiny(synthetic_parquet, tmp_path / "base", "--num_train_epochs", "1")
    other = write_image_parquet(tmp_path / "other.parquet", per_class=8, labels=["cat", "dog", "owl"])
    fine_tune_with_zero_learning_rate(other, tmp_path / "tuned", tmp_path / "base")
    base = load_file(tmp_path / "base" / "model.safetensors")
    tuned = load_file(tmp_path / "tuned" / "model.safetensors")
    encoder = [name for name in base if name.startswith("perceiver.")]
    assert encoder and all(torch.equal(base[name], tuned[name]) for name in encoder)
    assert base["classifier.weight"].shape[0] == 4 and tuned["classifier.weight"].shape[0] == 3
    config = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert config["id2label"] == {"0": "cat", "1": "dog", "2": "owl"}


def test_same_label_set_keeps_the_head(synthetic_parquet, tmp_path):
    train_tiny(synthetic_parquet, tmp_path / "base", "--num_train_epochs", "1")
    fine_tune_with_zero_learning_rate(synthetic_parquet, tmp_path / "again", tmp_path / "base")
    base = load_file(tmp_path / "base" / "model.safetensors")
    again = load_file(tmp_path / "again" / "model.safetensors")
    assert torch.equal(base["classifier.weight"], again["classifier.weight"])


def test_a_new_model_fits_its_patch_whitening_on_the_training_split_and_fine_tuning_keeps_it(
    synthetic_parquet, tmp_path
):
    overrides = ("--config_overrides", "input_patch_size=4,patch_whitening=true")
    train_tiny(synthetic_parquet, tmp_path / "base", "--num_train_epochs", "1", *overrides)
    base = load_file(tmp_path / "base" / "model.safetensors")
    mean, matrix = base["perceiver.patch_whitening.mean"], base["perceiver.patch_whitening.matrix"]
    assert mean.shape == (48,) and mean.abs().sum() > 0  # fitted, not the identity it starts as
    assert not torch.allclose(matrix, torch.eye(48)) and torch.allclose(matrix, matrix.T, atol=1e-5)
    other = write_image_parquet(tmp_path / "other.parquet", per_class=8, labels=["cat", "dog", "owl"])
    fine_tune_with_zero_learning_rate(other, tmp_path / "tuned", tmp_path / "base")  # other images: not refitted
    tuned = load_file(tmp_path / "tuned" / "model.safetensors")
    assert torch.equal(tuned["perceiver.patch_whitening.matrix"], matrix)
    assert torch.equal(tuned["perceiver.patch_whitening.mean"], mean)


def train_command(dataset, output_dir, epochs):
    return [
        sys.executable,
        str(REPO_ROOT / "scripts" / "train.py"),
        "--dataset_name",
        str(dataset),
        "--output_dir",
        str(output_dir),
        *TINY_TRAINING_ARGS,
        "--num_train_epochs",
        str(epochs),
        "--save_total_limit",
        "10",
    ]


def wait_for_checkpoint(process, output_dir, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("training finished before it could be interrupted")
        if (output_dir / "checkpoint-5" / "trainer_state.json").is_file():
            return
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def test_rerun_after_kill_9_resumes_and_matches_an_uninterrupted_run(synthetic_parquet, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        train_command(synthetic_parquet, tmp_path / "straight", 4),
        check=True,
        env=env,
        capture_output=True,
        timeout=600,
    )

    command = train_command(synthetic_parquet, tmp_path / "killed", 4)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_checkpoint(process, tmp_path / "killed")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "killed" / "metrics.json").exists()
    # A checkpoint cut off while being written must be skipped, not resumed from.
    (tmp_path / "killed" / "checkpoint-999").mkdir()
    (tmp_path / "killed" / "checkpoint-999" / "model.safetensors").write_bytes(b"partial")

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming from" in rerun.stdout + rerun.stderr
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "killed" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset_name", "./missing/cifar"], "dataset path './missing/cifar' does not exist"),
        (["--label_column_name", "category"], r"label column 'category' not in split 'train'; its columns are"),
        (["--num_labels", "10"], r"--num_labels 10 disagrees with the dataset, which has 4 labels"),
        (["--resume_from_checkpoint", "/no/such/checkpoint"], "no such checkpoint folder"),
        (["--config_overrides", "num_latents=0"], "num_latents must be an integer >= 1"),
        (["--config_overrides", "latents=3"], r"unknown config fields \['latents'\]"),
        (["--preset", "enormous"], "unknown preset 'enormous'"),
    ],
)
def test_bad_input_is_a_setup_error_naming_the_problem(synthetic_parquet, tmp_path, extra, message):
    with pytest.raises(SetupError, match=message):
        train_tiny(synthetic_parquet, tmp_path / "run", *extra)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_broken_checkpoint_is_refused(synthetic_parquet, tmp_path):
    broken = tmp_path / "checkpoint-3"
    broken.mkdir()
    (broken / "trainer_state.json").write_text("{ not json")
    with pytest.raises(SetupError, match="not a usable checkpoint, interrupted while saving"):
        train_tiny(synthetic_parquet, tmp_path / "run", "--resume_from_checkpoint", str(broken))


def test_dataset_without_label_column_lists_columns(tmp_path):
    path = write_image_parquet(tmp_path / "x.parquet", per_class=2, label_column="category")
    with pytest.raises(SetupError, match=r"no label column in split 'train'.*\['img', 'category'\]"):
        train_tiny(path, tmp_path / "run")


def test_corrupt_images_fail_by_row_or_are_skipped_and_counted(tmp_path):
    path = write_image_parquet(tmp_path / "x.parquet", per_class=8, corrupt_rows=(1,))
    with pytest.raises(SetupError, match=r"could not be decoded: rows of the dataset.s split as loaded \[1\]"):
        train_tiny(path, tmp_path / "run")
    metrics = train_tiny(path, tmp_path / "run", "--skip_corrupt_images", "true", "--num_train_epochs", "1")
    assert sum(metrics["skipped_corrupt_images"].values()) == 1


def test_cli_prints_a_clean_error_and_exits_2(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "train.py"),
            "--dataset_name",
            "./nowhere",
            "--output_dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == "error: dataset path './nowhere' does not exist"
    assert "Traceback" not in result.stderr


def test_recipe_file_with_command_line_overrides(synthetic_parquet, tmp_path):
    recipe = tmp_path / "recipe.json"
    recipe.write_text(
        json.dumps(
            {
                "preset": "tiny",
                "num_train_epochs": 1,
                "use_cpu": True,
                "learning_rate": 0.002,
                "output_dir": str(tmp_path / "from-recipe"),
                "disable_tqdm": True,
            }
        )
    )
    main(
        [
            str(recipe),
            "--dataset_name",
            str(synthetic_parquet),
            "--learning_rate",
            "0.001",
            "--per_device_train_batch_size",
            "32",
            "--dataloader_pin_memory",
            "false",
        ]
    )
    args = json.loads((tmp_path / "from-recipe" / "run_args.json").read_text())
    assert args["training"]["learning_rate"] == 0.001 and args["model"]["preset"] == "tiny"
    assert args["training"]["num_train_epochs"] == 1


def test_time_budget_stops_training_early_and_still_evaluates_and_saves(synthetic_parquet, tmp_path):
    metrics = train_tiny(
        synthetic_parquet, tmp_path / "run", "--num_train_epochs", "20", "--max_train_minutes", "0.0001"
    )
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and metrics["train"]["epoch"] < 1
    assert metrics["validation"]["num_samples"] == 24
    assert [entry for entry in state["log_history"] if "eval_accuracy" in entry]  # the epoch-end evaluation ran
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_a_failed_write_leaves_the_previous_output_whole(tmp_path):
    from modeling_perceiver_study.files import replace_atomically, write_json_atomic

    target = tmp_path / "metrics.json"
    write_json_atomic(target, {"accuracy": 0.5})

    def write_half_then_fail(temporary):
        with open(temporary, "w") as stream:
            stream.write('{"accur')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_atomically(target, write_half_then_fail)
    assert json.loads(target.read_text()) == {"accuracy": 0.5}
    assert [path.name for path in tmp_path.iterdir()] == ["metrics.json"]  # no temporary file left behind


def test_a_dataset_of_one_class_is_refused(tmp_path):
    one_name = write_image_parquet(tmp_path / "one.parquet", per_class=8, labels=["red"])
    with pytest.raises(SetupError, match=r"label column 'label' .* names 1 class\(es\) \['red'\]: a classifier needs"):
        train_tiny(one_name, tmp_path / "run")


def test_training_images_of_one_label_are_refused(tmp_path):
    from datasets import ClassLabel, Dataset, Features
    from datasets import Image as ImageFeature

    from tests.conftest import png_bytes, synthetic_image

    images = [{"bytes": png_bytes(synthetic_image(0, index)), "path": None} for index in range(8)]
    features = Features({"img": ImageFeature(), "label": ClassLabel(names=["red", "green"])})
    path = tmp_path / "one-label.parquet"
    Dataset.from_dict({"img": images, "label": [0] * 8}, features=features).to_parquet(str(path))
    with pytest.raises(SetupError, match=r"training images of .* all have one label \('red'\)"):
        train_tiny(path, tmp_path / "run")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--num_train_epochs", "0"], r"--num_train_epochs must be > 0 .*got 0.0"),
        (["--random_crop_padding", "-2"], r"--random_crop_padding must be an integer >= 0 \(0: off\), got -2"),
        (["--mixup_alpha", "-0.5"], r"--mixup_alpha must be >= 0 \(0: off\), got -0.5"),
        (["--randaugment_magnitude", "1.5"], r"--randaugment_magnitude must be in \[0, 1\], got 1.5"),
        (["--train_eval_samples", "-1"], r"--train_eval_samples must be >= 0 \(0: off\), got -1"),
    ],
)
def test_flags_that_would_train_nothing_or_silently_switch_off_are_refused(synthetic_parquet, tmp_path, flags, message):
    with pytest.raises(SetupError, match=message):
        train_tiny(synthetic_parquet, tmp_path / "run", *flags)
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_drop_last_drops_training_batches_but_never_validation_images(synthetic_parquet, tmp_path):
    """`--dataloader_drop_last` keeps compiled training shapes static; the validation set is still scored whole,
    even when it is smaller than one evaluation batch."""
    metrics = train_tiny(
        synthetic_parquet,
        tmp_path / "run",
        "--num_train_epochs",
        "1",
        "--dataloader_drop_last",
        "true",
        "--per_device_eval_batch_size",
        "1000",
    )
    assert metrics["validation"]["num_samples"] == 24 and 0.0 <= metrics["validation"]["accuracy"] <= 1.0


def test_a_training_split_smaller_than_one_dropped_batch_is_refused(synthetic_parquet, tmp_path):
    with pytest.raises(SetupError, match=r"training split has 72 images, fewer than one batch \(256\)"):
        train_tiny(
            synthetic_parquet, tmp_path, "--per_device_train_batch_size", "256", "--dataloader_drop_last", "true"
        )


def folder_snapshot(folder):
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_rerun_into_a_finished_run_is_a_no_op_or_refused_naming_what_differs(synthetic_parquet, tmp_path):
    run = tmp_path / "run"
    first = train_tiny(synthetic_parquet, run, "--num_train_epochs", "1")
    before = folder_snapshot(run)
    assert not any(path.name == "training_args.bin" for path in before)  # a pickle that could hold a token

    assert train_tiny(synthetic_parquet, run, "--num_train_epochs", "1") == first  # same command: nothing to do
    assert folder_snapshot(run) == before

    with pytest.raises(SetupError, match=r"finished run with other settings \(training.learning_rate: 0.003 there, "):
        train_tiny(synthetic_parquet, run, "--num_train_epochs", "1", "--learning_rate", "1e-3")
    # A changed architecture is named before any weights are loaded (not a size-mismatch traceback).
    with pytest.raises(SetupError, match=r"model.config_overrides: None there, 'num_latents=4' now.*overwrite_output"):
        train_tiny(synthetic_parquet, run, "--num_train_epochs", "1", "--config_overrides", "num_latents=4")
    assert folder_snapshot(run) == before

    again = train_tiny(synthetic_parquet, run, "--num_train_epochs", "1", "--learning_rate", "1e-3",
                       "--overwrite_output_dir", "true")  # fmt: skip
    assert json.loads((run / "run_args.json").read_text())["training"]["learning_rate"] == 1e-3
    assert again["train"]["train_loss"] != first["train"]["train_loss"]


def test_a_checkpoint_whose_weights_do_not_load_is_skipped_for_the_one_before(synthetic_parquet, tmp_path):
    straight = train_tiny(synthetic_parquet, tmp_path / "straight", "--save_total_limit", "3")
    run = tmp_path / "crashed"
    train_tiny(synthetic_parquet, run, "--save_total_limit", "3")
    (run / "metrics.json").unlink()  # as if the process died after its last checkpoint
    newest = checkpoints_in_order(run)[-1]
    weights = newest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # truncated, e.g. by a full disk

    resumed = train_tiny(synthetic_parquet, run, "--save_total_limit", "3")
    assert resumed["validation"]["accuracy"] == straight["validation"]["accuracy"]
    expected, got = load_file(tmp_path / "straight" / "model.safetensors"), load_file(run / "model.safetensors")
    assert all(torch.equal(expected[name], got[name]) for name in expected)


def test_resume_from_checkpoint_false_starts_over(synthetic_parquet, tmp_path):
    run = tmp_path / "run"
    train_tiny(synthetic_parquet, run)
    (run / "metrics.json").unlink()
    metrics = train_tiny(synthetic_parquet, run, "--resume_from_checkpoint", "false")
    # Resumed from the last checkpoint, the Trainer would take no step and report a training loss of 0.
    assert metrics["train"]["train_loss"] > 0


def test_an_output_dir_that_is_a_file_is_refused_before_the_data_is_read(tmp_path):
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(SetupError, match=r"--output_dir .*taken is a file, not a folder"):
        train_tiny(tmp_path / "no-data-needed.parquet", tmp_path / "taken")
    with pytest.raises(SetupError, match=r"--output_dir .*taken/run: .*taken is a file, not a folder"):
        train_tiny(tmp_path / "no-data-needed.parquet", tmp_path / "taken" / "run")


@pytest.mark.parametrize("num_channels", [1, 4])
def test_a_model_of_other_than_three_channels_trains_with_its_own_statistics(synthetic_parquet, tmp_path, num_channels):
    """The training split's per-channel statistics normalise training and are saved for inference."""
    from modeling_perceiver_study.data import channel_statistics

    run = tmp_path / "run"
    overrides = ("--config_overrides", f"num_channels={num_channels}", "--num_train_epochs", "1")
    metrics = train_tiny(synthetic_parquet, run, *overrides)
    assert 0.0 <= metrics["validation"]["accuracy"] <= 1.0
    processor = json.loads((run / "preprocessor_config.json").read_text())
    assert len(processor["image_mean"]) == len(processor["image_std"]) == num_channels
    assert processor["do_convert_rgb"] is False

    images = torch.randint(0, 256, (10, num_channels, 4, 4), dtype=torch.uint8)
    mean, std = channel_statistics(images)
    flat = images.to(torch.float64).div(255).transpose(0, 1).reshape(num_channels, -1)
    assert mean == [round(float(m), 4) for m in flat.mean(1)]
    assert std == [round(float(s), 4) for s in flat.std(1, unbiased=False)]


def test_an_undecodable_channel_count_is_named(synthetic_parquet, tmp_path):
    with pytest.raises(SetupError, match=r"num_channels 2 cannot be decoded: images have 1 \(L\), 3 \(RGB\) or 4"):
        train_tiny(synthetic_parquet, tmp_path / "run", "--config_overrides", "num_channels=2")


def test_a_full_disk_during_a_checkpoint_says_so_and_keeps_the_checkpoint_before(
    synthetic_parquet, tmp_path, monkeypatch
):
    import errno

    from modeling_perceiver_study.training import PerceiverTrainer

    real_save, calls = PerceiverTrainer._save, []

    def save_until_the_disk_fills(self, output_dir=None, state_dict=None):
        calls.append(output_dir)
        if len(calls) == 2:  # the second checkpoint
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(self, output_dir, state_dict)

    monkeypatch.setattr(PerceiverTrainer, "_save", save_until_the_disk_fills)
    run = tmp_path / "run"
    with pytest.raises(SetupError, match=r"no space left on the device .*checkpoint-5, is intact: .*resume from it"):
        train_tiny(synthetic_parquet, run)
    monkeypatch.setattr(PerceiverTrainer, "_save", real_save)
    metrics = train_tiny(synthetic_parquet, run)  # the same command, with space again: resumes and finishes
    assert metrics["train"]["epoch"] == 2


def test_tensorboard_events_land_in_the_run_folder_or_the_run_goes_on_untracked(
    synthetic_parquet, tmp_path, monkeypatch, caplog
):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train_tiny(synthetic_parquet, tmp_path / "tracked", "--report_to", "tensorboard")
    event_files = list((tmp_path / "tracked" / "runs").rglob("events.out.tfevents.*"))
    scalars = {tag for path in event_files for tag in EventAccumulator(str(path)).Reload().Tags()["scalars"]}
    assert {"train/loss", "eval/accuracy", "train/learning_rate"} <= scalars

    import transformers.integrations

    monkeypatch.setattr(transformers.integrations, "is_tensorboard_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="perceiver_study.train"):
        metrics = train_tiny(synthetic_parquet, tmp_path / "untracked", "--report_to", "tensorboard")
    assert "tensorboard is not installed, so this run is not tracked" in caplog.text
    assert metrics["best_validation_accuracy"] is not None and not (tmp_path / "untracked" / "runs").exists()


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_that_emulates_it_is_named_with_the_flag_that_avoids_it(
    synthetic_parquet, tmp_path, monkeypatch, caplog, native
):
    from modeling_perceiver_study import training

    monkeypatch.setattr(training, "cpu_has_native_bf16", lambda: native)
    with caplog.at_level(logging.WARNING, logger="perceiver_study.train"):
        train_tiny(synthetic_parquet, tmp_path / "run", "--bf16", "true", "--num_train_epochs", "1")
    warned = "--bf16 on a CPU without native bfloat16 instructions" in caplog.text
    assert warned == (not native) and (not warned or "pass --bf16 false" in caplog.text)


def test_training_accuracy_is_logged_beside_validation_on_a_fixed_unaugmented_subset(synthetic_parquet, tmp_path):
    metrics = train_tiny(synthetic_parquet, tmp_path / "run", "--train_eval_samples", "12")
    history = json.loads((tmp_path / "run" / "trainer_state.json").read_text())["log_history"]
    validation = [entry for entry in history if "eval_accuracy" in entry]
    train_subset = [entry for entry in history if "train_subset_accuracy" in entry]
    assert len(train_subset) == len(validation) >= 2  # one per evaluation, epochs and the final one
    assert [entry["epoch"] for entry in train_subset] == [entry["epoch"] for entry in validation]
    assert metrics["train_subset"]["num_samples"] == 12 and 0 <= metrics["train_subset"]["accuracy"] <= 1
    assert "train_subset_accuracy" not in metrics["validation"]

    # The subset is scored exactly as the saved model scores those images, without augmentation.
    from modeling_perceiver_study.training import DataArguments, prepare_data, training_subset

    data = prepare_data(DataArguments(dataset_name=str(synthetic_parquet), train_val_split=0.25), 32, 3, seed=3)
    subset = training_subset(data.train, 12, seed=3)
    model = AutoModelForImageClassification.from_pretrained(tmp_path / "run", trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(tmp_path / "run", trust_remote_code=True)
    with torch.no_grad():
        predicted = model(normalize(subset.images, processor.image_mean, processor.image_std)).logits.argmax(-1)
    assert metrics["train_subset"]["accuracy"] == pytest.approx((predicted == subset.labels).float().mean().item())
    assert training_subset(data.train, 0, seed=3) is None


def test_a_run_recorded_before_a_flag_existed_is_the_same_run_at_that_flags_default(synthetic_parquet, tmp_path):
    train_tiny(synthetic_parquet, tmp_path / "run")
    run_args_path = tmp_path / "run" / "run_args.json"
    record = json.loads(run_args_path.read_text())
    del record["data"]["train_eval_samples"]  # as an older version wrote it
    run_args_path.write_text(json.dumps(record))
    before = (tmp_path / "run" / "model.safetensors").stat().st_mtime_ns
    train_tiny(synthetic_parquet, tmp_path / "run")  # the same command: a no-op
    assert (tmp_path / "run" / "model.safetensors").stat().st_mtime_ns == before
    with pytest.raises(SetupError, match=r"data.train_eval_samples: None there, 4 now"):
        train_tiny(synthetic_parquet, tmp_path / "run", "--train_eval_samples", "4")


def test_time_split_charges_each_part_of_the_run_and_its_parts_add_up(synthetic_parquet, tmp_path, monkeypatch):
    from modeling_perceiver_study import training

    collate = training.collate_batch

    def slow_collate(batch):  # waiting for data: charged to data_wait
        time.sleep(0.05)
        return collate(batch)

    real_metrics = training.build_compute_metrics

    def slow_metrics(num_labels):  # part of each evaluation
        compute = real_metrics(num_labels)

        def compute_slowly(prediction):
            time.sleep(0.3)
            return compute(prediction)

        return compute_slowly

    monkeypatch.setattr(training, "collate_batch", slow_collate)
    monkeypatch.setattr(training, "build_compute_metrics", slow_metrics)
    metrics = train_tiny(synthetic_parquet, tmp_path / "run", "--time_split", "true")
    split = metrics["time_split"]
    steps = metrics["train"]["train_steps_per_second"] * metrics["train"]["train_runtime"]
    assert split["steps"] == round(steps) > 0
    assert split["seconds"]["data_wait"] >= 0.05 * split["steps"]
    assert split["seconds"]["evaluation"] >= 0.3 * 2  # the two epoch-end evaluations; the final one is not training
    assert split["seconds"]["step"] > 0 and split["seconds"]["augment"] > 0 and split["seconds"]["checkpoint"] > 0
    assert sum(split["seconds"].values()) == pytest.approx(split["total_seconds"])
    # Trainer's clock starts before the loop's (its train_runtime is rounded to 0.1 ms)
    assert split["total_seconds"] <= metrics["train"]["train_runtime"] + 1e-3
    assert sum(split["fraction"].values()) == pytest.approx(1.0)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["time_split"] == split
