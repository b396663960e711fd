"""The docs' generated tables and figures come from the recorded result files."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from study.report import (
    cross_attention_reads_table,
    fixed_epochs_table,
    marker_names,
    schedule_end,
    tables,
    update_document,
)

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def test_docs_tables_match_the_recorded_results():
    """Every number in a generated table of the docs is what results/ holds (run study/make_figures.py)."""
    completed = subprocess.run(
        [sys.executable, "-m", "study.make_figures", "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert completed.returncode == 0, completed.stderr


def test_update_document_rewrites_only_between_markers():
    text = "intro\n<!-- generated:latents -->\nold table\n<!-- /generated:latents -->\noutro\n"
    updated = update_document(text, {"latents": "| new |\n"})
    assert updated == "intro\n<!-- generated:latents -->\n| new |\n<!-- /generated:latents -->\noutro\n"
    assert update_document(text, {}) == text
    assert marker_names(text) == ["latents"]


def test_tables_and_figures_rebuild_from_a_copy_of_results(tmp_path):
    shutil.copytree(ROOT / "results", tmp_path / "results")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text(
        "<!-- generated:training-runs -->\n<!-- /generated:training-runs -->\n"
        "GPU\n<!-- generated:gpu-training-runs -->\n<!-- /generated:gpu-training-runs -->\n"
    )
    (tmp_path / "README.md").write_text("no tables\n")
    for png in (tmp_path / "results").rglob("*.png"):
        png.unlink()
    subprocess.run([sys.executable, "-m", "study.make_figures", "--root", str(tmp_path)], check=True, cwd=ROOT)
    page = (tmp_path / "docs" / "page.md").read_text()
    run = json.loads((ROOT / "results" / "cpu-small-cpu" / "cpu-small-patch2" / "metrics.json").read_text())
    assert f"{100 * run['validation']['accuracy']:.1f} %" in page
    assert (tmp_path / "results" / "cpu-small-cpu" / "cpu-small-patch2" / "training_curves.png").stat().st_size > 0
    assert (tmp_path / "docs" / "figures" / "complexity.png").exists()
    assert set(tables(tmp_path / "results")) >= {"training-runs", "gpu-training-runs", "complexity"}
    cpu_table, gpu_table = page.split("GPU\n")
    assert "`results/gpu/seed-h100`" in gpu_table and "results/gpu/" not in cpu_table  # GPU runs in their own table
    assert (tmp_path / "results" / "gpu" / "seed-h100" / "training_curves.png").stat().st_size > 0


def test_latent_ablation_runs_train_per_count_and_keeps_their_files(synthetic_parquet, tmp_path):
    output = tmp_path / "study" / "latents.json"
    command = [
        sys.executable,
        "-m",
        "study.ablate_latents",
        "--dataset_name",
        str(synthetic_parquet),
        "--recipe",
        "configuration/recipes/tiny.json",
        "--latents",
        "4",
        "8",
        "--epochs",
        "1",
        "--work_dir",
        str(tmp_path / "runs"),
        "--output",
        str(output),
    ]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True, env=OFFLINE)
    result = json.loads(output.read_text())
    assert [run["num_latents"] for run in result["runs"]] == [4, 8]
    for run in result["runs"]:
        config = json.loads((Path(run["run_files"]) / "config.json").read_text())
        assert config["num_latents"] == run["num_latents"]  # the override reached the model
        assert 0.0 <= run["validation_accuracy"] <= 1.0 and run["parameters"] > 0
    assert "latents" in tables(tmp_path)


def test_a_failed_ablation_run_is_named_and_stops_the_ablation(tmp_path):
    command = [
        sys.executable,
        "-m",
        "study.ablate_latents",
        "--dataset_name",
        str(tmp_path / "absent"),
        "--latents",
        "4",
        "--work_dir",
        str(tmp_path / "runs"),
        "--output",
        str(tmp_path / "latents.json"),
    ]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=OFFLINE)
    assert completed.returncode == 2
    assert "training with num_latents=4 failed" in completed.stderr
    assert not (tmp_path / "latents.json").exists()


def test_a_run_trained_on_permuted_tokens_is_marked_in_the_runs_table(tmp_path):
    from study.report import training_runs_table

    source = ROOT / "results" / "convfree-cpu" / "seed-convfree-b4-cpu"
    for name, permuted in (("natural", False), ("permuted", True)):
        shutil.copytree(source, tmp_path / "runs" / name)
        if permuted:
            (tmp_path / "runs" / name / "permutation.json").write_text('{"arm": "tokens-permuted"}')
    rows = {line.split(" | ")[0]: line for line in training_runs_table(tmp_path / "runs").splitlines()[2:]}
    assert "tokens-permuted" in rows["| `runs/permuted`"] and "permut" not in rows["| `runs/natural`"]


def test_a_run_trained_with_extra_augmentation_says_so_in_the_runs_table(tmp_path):
    from study.report import training_runs_table

    source = ROOT / "results" / "convfree-cpu" / "seed-convfree-b4-cpu"
    for name, extra in (
        ("plain", {}),
        ("cutmix", {"cutmix_alpha": 1.0, "mix_probability": 0.5}),
        ("ra", {"randaugment_ops": 2}),
    ):
        shutil.copytree(source, tmp_path / "runs" / name)
        run_args_file = tmp_path / "runs" / name / "run_args.json"
        run_args = json.loads(run_args_file.read_text())
        run_args["data"].update(extra)
        run_args_file.write_text(json.dumps(run_args))
    rows = {line.split(" | ")[0]: line for line in training_runs_table(tmp_path / "runs").splitlines()[2:]}
    assert "trained with" not in rows["| `runs/plain`"]
    assert "; trained with cutmix (alpha 1) on 50% of the batches |" in rows["| `runs/cutmix`"]
    assert "; trained with 2 RandAugment-style ops at magnitude 0.5 |" in rows["| `runs/ra`"]


def test_the_model_column_names_the_options_that_change_what_a_token_is_or_how_it_is_read():
    from study.report import model_description

    config = json.loads((ROOT / "results" / "convfree-cpu" / "seed-convfree-b4-cpu" / "config.json").read_text())
    plain = model_description(config, "seed-convfree")
    assert "whitened" not in plain and "locality" not in plain
    described = model_description({**config, "patch_whitening": True, "cross_attention_locality": True}, "p")
    assert described.endswith("4 Fourier bands, locality prior in the cross-attention, whitened patches")
    assert "MLPs" not in plain  # the preset's own widths go unsaid
    narrower = model_description({**config, "self_attention_widening_factor": 2}, "seed-convfree")
    assert narrower.endswith("4 Fourier bands, latent MLPs 2x the latent width")
    assert "stochastic depth" not in plain and "dropout" not in plain  # off in the recorded config
    regularised = model_description({**config, "drop_path_rate": 0.1, "hidden_dropout_prob": 0.05}, "seed-convfree")
    assert regularised.endswith("4 Fourier bands, stochastic depth 0.1, dropout 0.05")


def test_a_run_scored_on_the_final_test_split_shows_its_test_accuracy(tmp_path):
    from study.report import training_runs_table

    source = ROOT / "results" / "convfree-cpu" / "seed-convfree-b4-cpu"
    shutil.copytree(source, tmp_path / "runs" / "validation-only")
    assert "test accuracy" not in training_runs_table(tmp_path / "runs")  # no column while no run has a test split
    shutil.copytree(source, tmp_path / "runs" / "tested")
    metrics = json.loads((source / "metrics.json").read_text())
    metrics["test"] = {"accuracy": 0.6123, "num_samples": 5000}
    (tmp_path / "runs" / "tested" / "metrics.json").write_text(json.dumps(metrics))
    header, _, *lines = training_runs_table(tmp_path / "runs").splitlines()
    rows = {line.split(" | ")[0]: line for line in lines}
    assert header.endswith("| test accuracy |")
    assert rows["| `runs/tested`"].endswith("| 61.2 % |") and rows["| `runs/validation-only`"].endswith("| - |")


def test_position_use_over_training_is_drawn_and_tabled_from_each_tracked_run(tmp_path):
    from study.report import draw_figures, tables

    run = tmp_path / "results" / "test-split-cpu" / "a-run"
    run.mkdir(parents=True)
    rows = [
        {"checkpoint": "checkpoint-10", "epoch": 1.0, "natural": 0.4, "tokens-shuffled": 0.35},
        {"checkpoint": "checkpoint-20", "epoch": 2.0, "natural": 0.5, "tokens-shuffled": 0.3},
    ]
    (run / "position_use_over_training.json").write_text(json.dumps({"checkpoints": rows}))
    table = tables(tmp_path / "results")["position-use-over-training"]
    assert "| `a-run` | 2 | 50.0 % | 30.0 % | 20.0 |" in table
    drawn = draw_figures(tmp_path / "results", tmp_path / "figures")
    assert tmp_path / "figures" / "position-use-over-training.png" in drawn
    assert (tmp_path / "figures" / "position-use-over-training.png").stat().st_size > 0


def test_a_fitted_schedule_end_is_read_from_the_run_or_from_its_log(tmp_path):
    fitted = {"fit_schedule_to_budget": True}
    recorded = {"train": {"schedule": {"fitted": True, "end_epoch": 34.0, "end_step": 5950, "planned_steps": 14000}}}
    assert schedule_end(tmp_path, fitted, recorded) == "34 epochs (fitted)"
    (tmp_path / "train.log").write_text(
        "schedule fitted to the 20.0-minute budget: it ends at step 9975 (57.0 epochs)\n"
    )
    assert schedule_end(tmp_path, fitted, {"train": {}}) == "57 epochs (fitted)"  # recorded before metrics held it
    assert schedule_end(tmp_path, {"num_train_epochs": 80.0}, {"train": {}}) == "80 epochs (planned)"


def write_probe_run(
    run_dir: Path, *, heads: int, data_seed, final_accuracy: float, latents: int = 8, blocks: dict | None = None
) -> None:
    """A 10-epoch run folder as results/probes-2026-12-03-cs10 holds them (only what the table reads)."""
    run_dir.mkdir(parents=True)
    config = {"num_latents": latents, "num_cross_attention_heads": heads, "latent_dim": 128, "num_cross_attends": 1}
    config.update(blocks or {"num_blocks": 1, "num_self_attends_per_block": 4})
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "run_args.json").write_text(json.dumps({"training": {"data_seed": data_seed}}))
    history = [{"epoch": float(epoch), "eval_accuracy": 0.5} for epoch in range(1, 10)]
    history.append({"epoch": 10.0, "eval_accuracy": final_accuracy})
    (run_dir / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    (run_dir / "metrics.json").write_text(json.dumps({"validation": {"accuracy": final_accuracy}}))


def test_the_reads_table_orders_runs_by_design_and_averages_each_design(tmp_path):
    # Folder names sort the 128-head runs before the 32-head one; the table sorts by the design instead.
    write_probe_run(tmp_path / "cs10-h128-dataseed1", heads=128, data_seed=1, final_accuracy=0.62)
    write_probe_run(tmp_path / "cs10-h128", heads=128, data_seed=None, final_accuracy=0.61)
    write_probe_run(tmp_path / "cs10-h32", heads=32, data_seed=None, final_accuracy=0.55)
    write_probe_run(tmp_path / "cs10-l16", heads=16, data_seed=None, final_accuracy=0.56, latents=16)
    runs_table, summary = cross_attention_reads_table(tmp_path).split("\n\n")
    names = [line.split(" | ")[0].strip("| `") for line in runs_table.splitlines()[2:]]
    assert names == ["cs10-h32", "cs10-h128", "cs10-h128-dataseed1", "cs10-l16"]  # more latents after the 8-latent runs
    assert "| 16 latents, 16 heads, q/k 128 and v 128 wide, 1 cross-attend, 4 latent layers | 1 | 56.0 |" in summary
    design = "8 latents, 128 heads, q/k 128 and v 128 wide, 1 cross-attend, 4 latent layers"
    assert f"| {design} | 2 | 61.0 / 62.0 | **61.50 %** |" in summary


def test_the_reads_table_keeps_blocks_that_share_weights_apart_from_blocks_that_do_not(tmp_path):
    iterative = {"num_blocks": 2, "num_cross_attends": 2, "num_self_attends_per_block": 2}
    unshared, shared = {**iterative, "share_block_weights": False}, {**iterative, "share_block_weights": True}
    write_probe_run(tmp_path / "xa2", heads=16, data_seed=None, final_accuracy=0.56, blocks=unshared)
    write_probe_run(tmp_path / "xa2-shared", heads=16, data_seed=None, final_accuracy=0.55, blocks=shared)
    summary = cross_attention_reads_table(tmp_path).split("\n\n")[1]
    design = "8 latents, 16 heads, q/k 128 and v 128 wide, 2 cross-attends, 4 latent layers"
    assert f"| {design} | 1 | 56.0 |" in summary
    assert f"| {design} (2 with their own weights, shared by every block) | 1 | 55.0 |" in summary
    recurrent = {"num_blocks": 4, "num_cross_attends": 4, "num_self_attends_per_block": 1}
    write_probe_run(tmp_path / "xa4-shared", heads=16, data_seed=None, final_accuracy=0.57, blocks=recurrent)
    summary = cross_attention_reads_table(tmp_path).split("\n\n")[1]
    design = "2 cross-attends (2 with their own weights)"  # two cross-attends never share: the first has its own
    assert design not in summary
    design = (
        "4 cross-attends (2 with their own weights), 4 latent layers (1 with their own weights, shared by every block)"
    )
    assert f"{design} | 1 | 57.0 |" in summary


def write_run(run_dir: Path, training: dict, accuracy_by_epoch: dict[int, float]) -> None:
    """A run folder with what the fixed-epochs table reads: run arguments, per-epoch validation, final metrics."""
    run_dir.mkdir(parents=True)
    (run_dir / "run_args.json").write_text(json.dumps({"training": {"seed": 42, **training}}))
    history = [{"epoch": float(epoch), "eval_accuracy": value} for epoch, value in accuracy_by_epoch.items()]
    (run_dir / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    final = accuracy_by_epoch[max(accuracy_by_epoch)]
    (run_dir / "metrics.json").write_text(json.dumps({"validation": {"accuracy": final}}))


def test_the_fixed_epochs_table_reads_each_control_of_the_same_data_order_at_the_same_epoch(tmp_path):
    results = tmp_path / "results"
    write_run(results / "recipe" / "long", {"num_train_epochs": 80}, {30: 0.60, 31: 0.70, 50: 0.64})
    write_run(results / "recipe" / "long-again", {"num_train_epochs": 80}, {30: 0.62})  # stopped by its budget
    write_run(results / "recipe" / "long-dataseed1", {"num_train_epochs": 80, "data_seed": 1}, {30: 0.50})
    group = results / "fixed"
    write_run(group / "e30", {"num_train_epochs": 30}, {29: 0.1, 30: 0.65})
    write_run(group / "e50-dataseed1", {"num_train_epochs": 50, "data_seed": 1}, {50: 0.66})
    runs = ["recipe/long", "recipe/long-again", "recipe/long-dataseed1"]
    (group / "controls.json").write_text(json.dumps({"runs": runs}))
    rows = fixed_epochs_table(group / "controls.json").splitlines()[2:]
    assert rows == [
        "| `e30` | --seed 42 | 30 | **65.0 %** | 60.0 % (`long`), 62.0 % (`long-again`) | +4.0 |",
        "| `e50-dataseed1` | --data_seed 1 | 50 | **66.0 %** | none |  |",  # its control stopped before epoch 50
    ]
