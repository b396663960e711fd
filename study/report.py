"""Every figure and table of the docs, rebuilt from the recorded result files in `results/` (no model, no data).

Tables live in the Markdown documents between `<!-- generated:NAME -->` and `<!-- /generated:NAME -->` markers;
`update_document` rewrites what is between them, so a number in the docs is whatever the result file says.
"""

import json
import re
from functools import partial
from pathlib import Path

from modeling_perceiver_study import PerceiverStudyConfig
from modeling_perceiver_study.files import percent, read_json, replace_atomically
from modeling_perceiver_study.plots import plot_confusion_matrix, plot_training_curves, pyplot, save_and_close
from modeling_perceiver_study.presets import available_presets, preset_fields
from modeling_perceiver_study.publish import conv_stem_size
from study.permutation import ARMS as PERMUTATION_ARMS

MARKER = re.compile(r"(<!-- generated:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated:(?P=name) -->)", re.DOTALL)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------------
# Tables

# Where recorded training runs live below results/ (one folder per run), by the marker of the table listing them: the
# CPU recipe's runs, GPU runs recorded from a lent device, the seed recipe's 10-epoch runs on the CPU, and the
# convolution-free 10-epoch runs on the CPU.
RUN_GROUPS = {
    "training-runs": "cpu-small-cpu",
    "gpu-training-runs": "gpu",
    "seed-recipe-cpu-runs": "seed-recipe-cpu",
    "convfree-cpu-runs": "convfree-cpu",
    "peer-cpu-runs": "peer-cpu",
    "test-split-cpu-runs": "test-split-cpu",
    "cs80-runs": "probes-2026-12-03-cs80",
}


def model_description(config: dict, preset: str) -> str:
    """One line for a run's model: this repository's config, or transformers' Perceiver (study/train_peer.py)."""
    cross_heads = config.get("num_cross_attention_heads", 1)
    heads = f"{cross_heads} cross-attention head{'s' if cross_heads > 1 else ''}"
    if config.get("model_type") == "perceiver":
        tokens = "1 x 1 conv to 256 + learned positions" if "Learned" in config["architectures"][0] else "pixel tokens"
        return (
            f"transformers' `{config['architectures'][0]}`: {config['num_latents']} x {config['d_latents']} latents, "
            f"{tokens}, {heads}, {config['num_blocks'] * config['num_self_attends_per_block']} latent layers"
        )
    patch = config.get("input_patch_size", 1)
    cross_attends = config.get("num_cross_attends", 1)
    stem = f"conv stem ({conv_stem_size(config)}) " if config.get("input_stem") == "conv" else ""
    if config.get("position_encoding_type") == "learned":
        positions = f"learned positions ({config['learned_position_dim']} per token)"
    else:
        positions = f"{config.get('num_fourier_bands', 64)} Fourier bands"
    return (
        f"`{preset}`: {config['num_latents']} x {config['latent_dim']} latents, {patch} x {patch} {stem}tokens, {heads}"
        + (f", {cross_attends} cross-attends" if cross_attends > 1 else "")
        + f", {positions}"
        + (", locality prior in the cross-attention" if config.get("cross_attention_locality") else "")
        + (", whitened patches" if config.get("patch_whitening") else "")
        + widened_mlps(config, preset)
        + regularisers(config)
    )


def regularisers(config: dict) -> str:
    """The model's own regularisers where a run turned them on (stochastic depth, dropout); empty when off."""
    named = (
        ("drop_path_rate", "stochastic depth"),
        ("hidden_dropout_prob", "dropout"),
        ("attention_probs_dropout_prob", "attention dropout"),
    )
    return "".join(f", {name} {config[key]:g}" for key, name in named if config.get(key))


def widened_mlps(config: dict, preset: str) -> str:
    """The MLP widths a run changed from its preset's (`--config_overrides self_attention_widening_factor=4`)."""
    preset_config = preset_fields(preset) if preset in available_presets() else {}
    changed = [
        f", {where} MLPs {config[key]}x the latent width"
        for key, where in (
            ("cross_attention_widening_factor", "cross-attention"),
            ("self_attention_widening_factor", "latent"),
        )
        if key in preset_config and key in config and config[key] != preset_config[key]
    ]
    return "".join(changed)


def augmentation_description(data_args: dict) -> str:
    """What a run added to the random crop and flip (RandAugment-style ops, mixup, cutmix); empty when nothing."""
    extras = []
    if data_args.get("randaugment_ops", 0) > 0:
        extras.append(
            f"{data_args['randaugment_ops']} RandAugment-style op{'s' if data_args['randaugment_ops'] > 1 else ''} "
            f"at magnitude {data_args['randaugment_magnitude']:g}"
        )
    mixes = [
        f"{name} (alpha {data_args[f'{name}_alpha']:g})"
        for name in ("mixup", "cutmix")
        if data_args.get(f"{name}_alpha", 0) > 0
    ]
    if mixes:
        share = data_args.get("mix_probability", 1.0)
        extras.append(" or ".join(mixes) + (" on every batch" if share == 1 else f" on {share:.0%} of the batches"))
    return "; trained with " + " and ".join(extras) if extras else ""


def training_runs_table(results_dir: Path, root: Path | None = None) -> str:
    """Every recorded Trainer run (a folder of `results_dir` with metrics.json and run_args.json), named by its path
    from `root` (the repository, by default `results_dir`'s parent), with its test accuracy where it has one."""
    root = results_dir.parent if root is None else root
    runs = {path.parent: read_json(path) for path in sorted(results_dir.glob("*/metrics.json"))}
    # A column for the final test split (--test_split) once any run of the group was scored on one.
    scored_on_test = any("test" in metrics for metrics in runs.values())
    rows = []
    for run_dir, metrics in runs.items():
        if not (run_dir / "run_args.json").exists():
            continue
        run_args = read_json(run_dir / "run_args.json")
        model, training = run_args["model"], run_args["training"]
        config = read_json(run_dir / "config.json")
        description = model_description(config, model["preset"]) + augmentation_description(run_args["data"])
        if (run_dir / "permutation.json").is_file():  # study.train_permuted: the tokens were scrambled
            permutation = read_json(run_dir / "permutation.json")
            description += f"; trained and validated with `{permutation['arm']}` (study.train_permuted)"
        rows.append(
            [
                f"`{run_dir.relative_to(root).as_posix()}`",
                description,
                f"{training['learning_rate']:g}",
                f"{metrics['train']['epoch']:.1f} of {training['num_train_epochs']:g}",
                f"{metrics['train']['train_runtime'] / 60:.1f} min",
                f"{metrics['train']['train_samples_per_second']:.0f}",
                f"**{percent(metrics['validation']['accuracy'])}**",
            ]
            + ([percent(metrics["test"]["accuracy"]) if "test" in metrics else "-"] if scored_on_test else [])
        )
    header = ["run", "model", "learning rate", "epochs", "training time", "images/s", "validation accuracy"]
    return markdown_table(header + (["test accuracy"] if scored_on_test else []), rows)


def latents_table(path: Path) -> str:
    result = read_json(path)
    rows = [
        [
            run["num_latents"],
            f"{run['parameters'] / 1e6:.2f}M",
            f"{run['train_images_per_second']:.0f}",
            f"{run['train_seconds'] / 60:.1f} min",
            percent(run["validation_accuracy"]),
        ]
        for run in result["runs"]
    ]
    header = ["latents N", "parameters", "training images/s", "training time", "validation accuracy"]
    return markdown_table(header, rows)


def permutation_table(path: Path) -> str:
    result = read_json(path)
    rows = [
        [
            PERMUTATION_ARMS.get(arm, arm),
            f"{run['parameters'] / 1e6:.2f}M",
            f"{run['train_images_per_second']:.0f}",
            " / ".join(f"{100 * h['validation_accuracy']:.1f}" for h in run["history"]),
            f"**{percent(run['validation_accuracy'])}**",
        ]
        for arm, run in result["arms"].items()
    ]
    header = ["arm", "parameters", "training images/s", "accuracy after each epoch (%)", "validation accuracy"]
    return markdown_table(header, rows)


def complexity_table(path: Path) -> str:
    result = read_json(path)
    names = {"perceiver": "Perceiver", "transformer": "Transformer (SDPA)", "transformer-eager": "Transformer (eager)"}
    rows = []
    for row in result["by_input_size"]:
        if "skipped" in row:
            cells = [f"not run: {row['skipped'].split(' (')[0]}", ""]
        else:
            cells = [f"{1000 * row['step_seconds']:.1f} ms", f"{row['peak_memory_mib']:.0f} MiB"]
        rows.append([names[row["model"]], f"{row['image_size']}²", row["pixels"], *cells])
    exponents = result["fitted_exponents"]
    table = markdown_table(["model", "input", "tokens", "training-step time", "peak memory"], rows)
    fitted = [
        ["Perceiver", f"{exponents['perceiver_time_vs_pixels']:.2f}", f"{exponents['perceiver_memory_vs_pixels']:.2f}"],
        [
            "Transformer (SDPA)",
            f"{exponents['transformer_time_vs_pixels']:.2f}",
            f"{exponents['transformer_memory_vs_pixels']:.2f}",
        ],
        [
            "Transformer (eager)",
            f"{exponents['transformer_eager_time_vs_pixels']:.2f}",
            f"{exponents['transformer_eager_memory_vs_pixels']:.2f}",
        ],
    ]
    table += "\n" + markdown_table(["model", "time exponent in pixels", "memory exponent in pixels"], fitted)
    latent_rows = [
        [row["num_latents"], f"{1000 * row['step_seconds']:.1f} ms", f"{row['peak_memory_mib']:.0f} MiB"]
        for row in result["by_latents"]
        if "skipped" not in row
    ]
    size = result["by_latents"][0]["image_size"] if result["by_latents"] else "?"
    table += (
        f"\nPerceiver against its latent count at a {size}² input (fitted time exponent "
        f"{exponents['perceiver_time_vs_latents']:.2f}):\n\n"
    )
    return table + markdown_table(["latents N", "training-step time", "peak memory"], latent_rows)


def benchmark_table(path: Path) -> str:
    """Throughput of every model timed, and each one's ratio to each peer implementation (train / inference)."""
    result = read_json(path)
    medians, parameters = result["median_images_per_second"], result["parameters"]
    peers = [name for name in ("transformers", "perceiver_pytorch") if name in medians]
    rows = []
    for name, values in medians.items():
        ratios = [
            f"{values['train'] / medians[peer]['train']:.2f}x / {values['inference'] / medians[peer]['inference']:.2f}x"
            if name not in peers
            else ""
            for peer in peers
        ]
        label = name + (f" (commit {result['commit'][:7]})" if name == "perceiver_study" and "commit" in result else "")
        rows.append(
            [label, f"{parameters[name] / 1e6:.2f}M", f"{values['train']:.1f}", f"{values['inference']:.1f}", *ratios]
        )
    header = ["model", "parameters", "training images/s", "inference images/s"]
    header += [f"speed-up vs {peer} (train / inference)" for peer in peers]
    return markdown_table(header, rows)


def performance_steps_table(steps_dir: Path) -> str:
    """One row per model timed in each measurement: what one change bought, against what it was measured."""
    rows = []
    for path in sorted(steps_dir.glob("*.json")):
        result = read_json(path)
        for name, values in result["median_images_per_second"].items():
            code = f"{name} (at {result['commit'][:7]}{'+changes' if result['commit'].endswith('+changes') else ''})"
            rows.append(
                [
                    f"`{path.name}`",
                    f"{result['preset']}, batch {result['batch']}, {result['precision']}",
                    code if name == "perceiver_study" else name,
                    f"{values['train']:.1f}",
                    f"{values['inference']:.1f}",
                ]
            )
    header = ["measurement", "setting", "model", "training images/s", "inference images/s"]
    return markdown_table(header, rows)


def onnx_table(onnx_dir: Path) -> str:
    """One row per recorded export: onnxruntime against PyTorch eager on this CPU, and the check against PyTorch."""
    rows = []
    for path in sorted(onnx_dir.glob("*.json")):
        record = read_json(path)
        bench = record["benchmark"]
        rows.append(
            [
                f"`{path.name}`",
                f"`{record['model']}`",
                str(bench["batch_size"]),
                f"{bench['pytorch_eager_images_per_second']:.0f}",
                f"{bench['onnxruntime_images_per_second']:.0f}",
                f"{bench['onnxruntime_speedup']:.2f}x",
                f"{record['export_seconds']:.1f} s",
                f"{max(record['max_abs_logit_difference'].values()):.1e}",
            ]
        )
    header = ["record", "model", "batch", "PyTorch eager images/s", "onnxruntime images/s", "speed-up", "export"]
    return markdown_table([*header, "max logit difference"], rows)


def time_split_table(split_dir: Path) -> str:
    """Where each recorded run's training-loop time went (`--time_split`), in % of the loop's wall time."""
    rows = []
    for path in sorted(split_dir.glob("*/metrics.json")):
        split = read_json(path)["time_split"]
        fraction = split["fraction"]
        parts = [f"{100 * fraction[part]:.1f} %" for part in ("step", "data_wait", "augment", "evaluation")]
        rest = fraction["logging"] + fraction["checkpoint"] + fraction["other"]
        rows.append([f"`{path.parent.name}`", str(split["steps"]), f"{split['total_seconds']:.0f} s", *parts])
        rows[-1].append(f"{100 * rest:.1f} %")
    header = ["run", "steps", "loop time", "step", "data wait", "augmentation", "evaluation"]
    return markdown_table([*header, "logging, checkpoints, other"], rows)


def weight_average_table(group_dir: Path) -> str:
    """Each `--ema_decay` run's validation accuracy with its trained weights (`raw_accuracy`) and with their moving
    average (`eval_accuracy`, the saved model), both scored at the same evaluations: at the end, and the average's
    lead over the first and the second half of the epochs."""
    rows = []
    for path in sorted(group_dir.glob("*/trainer_state.json")):
        history = read_json(path)["log_history"]
        raw = {entry["epoch"]: entry["raw_accuracy"] for entry in history if "raw_accuracy" in entry}
        averaged = {entry["epoch"]: entry["eval_accuracy"] for entry in history if "eval_accuracy" in entry}
        epochs = sorted(raw)
        leads = [100 * (averaged[epoch] - raw[epoch]) for epoch in epochs]
        half = (len(leads) + 1) // 2
        last = epochs[-1]
        rows.append(
            [
                f"`{path.parent.name}`",
                f"{last:.1f}".removesuffix(".0"),
                percent(raw[last]),
                f"**{percent(averaged[last])}**",
                f"{leads[-1]:+.1f}",
                f"{sum(leads[:half]) / half:+.1f}",
                f"{sum(leads[half:]) / (len(leads) - half):+.1f}",
            ]
        )
    header = [
        "run",
        "epochs",
        "trained weights",
        "average",
        "difference",
        "mean lead, first half",
        "mean lead, second half",
    ]
    return markdown_table(header, rows)


def budget_schedule_table(group_dir: Path) -> str:
    """The time-budgeted recipe with its planned schedule and with `--fit_schedule_to_budget`: per run, its data
    order, where its schedule ends, the epochs and minutes it trained, their mean wall time per epoch (evaluations,
    checkpoints and compilation included), the last learning rate it logged (a share of the peak) and its validation
    accuracy."""
    rows = []
    for run_dir in sorted(path.parent for path in group_dir.glob("*/metrics.json")):
        metrics, training = read_json(run_dir / "metrics.json"), read_json(run_dir / "run_args.json")["training"]
        history = read_json(run_dir / "trainer_state.json")["log_history"]
        last_rate = [entry["learning_rate"] for entry in history if "learning_rate" in entry][-1]
        epochs = metrics["train"]["epoch"]
        rows.append(
            [
                f"`{run_dir.name}`",
                data_order(training),
                schedule_end(run_dir, training, metrics),
                f"{epochs:.1f}",
                f"{metrics['train']['train_runtime'] / 60:.1f} min",
                f"{metrics['train']['train_runtime'] / epochs:.1f} s",
                f"{100 * last_rate / training['learning_rate']:.0f} %",
                f"**{percent(metrics['validation']['accuracy'])}**",
            ]
        )
    header = ["run", "data order", "schedule ends after", "epochs run", "training", "per epoch", "last rate (of peak)"]
    return markdown_table([*header, "validation"], rows)


def schedule_end(run_dir: Path, training: dict, metrics: dict) -> str:
    """The planned epochs, or those the schedule was fitted to: from metrics.json, or for runs recorded before it
    held them, from the run's log line (time_budget.py)."""
    if not training.get("fit_schedule_to_budget"):
        return f"{training['num_train_epochs']:g} epochs (planned)"
    if "schedule" in metrics["train"]:
        schedule = metrics["train"]["schedule"]
        return f"{schedule['end_epoch']:g} epochs ({'fitted' if schedule['fitted'] else 'planned, never fitted'})"
    fitted = re.search(r"schedule fitted to the .* \(([0-9.]+) epochs\)", (run_dir / "train.log").read_text())
    return f"{float(fitted.group(1)):g} epochs (fitted)" if fitted else "fitted, end not logged"


def fixed_epochs_table(controls_path: Path) -> str:
    """Runs whose cosine schedule ends at a fixed number of epochs (the folders beside `controls_path`), against the
    recipe's 80-epoch schedule read at the same epoch (the runs `controls_path` lists, relative to results/): per run,
    its data order, its epochs, its validation accuracy, each control of the same data order that reached that epoch,
    and the difference from their mean."""
    group_dir = controls_path.parent
    controls = [group_dir.parent / path for path in read_json(controls_path)["runs"]]
    control_orders = {control: data_order(read_json(control / "run_args.json")["training"]) for control in controls}
    rows = []
    for run_dir in sorted(path.parent for path in group_dir.glob("*/metrics.json")):
        metrics, training = read_json(run_dir / "metrics.json"), read_json(run_dir / "run_args.json")["training"]
        epochs, order = training["num_train_epochs"], data_order(training)
        same_order = [control for control in controls if control_orders[control] == order]
        read_at_epoch = [(control, validation_at_epoch(control, epochs)) for control in same_order]
        read_at_epoch = [(control, accuracy) for control, accuracy in read_at_epoch if accuracy is not None]
        mean = sum(accuracy for _, accuracy in read_at_epoch) / len(read_at_epoch) if read_at_epoch else None
        rows.append(
            [
                f"`{run_dir.name}`",
                order,
                f"{epochs:g}",
                f"**{percent(metrics['validation']['accuracy'])}**",
                ", ".join(f"{percent(accuracy)} (`{control.name}`)" for control, accuracy in read_at_epoch) or "none",
                # + 0.0 turns a rounded -0.0 into 0.0, so no difference prints as "-0.0"
                f"{round(100 * (metrics['validation']['accuracy'] - mean), 1) + 0.0:+.1f}" if mean is not None else "",
            ]
        )
    header = ["run", "data order", "schedule ends after (epochs)", "validation", "80-epoch schedule at that epoch"]
    return markdown_table([*header, "difference from their mean (points)"], rows)


def data_order(training: dict) -> str:
    data_seed = training.get("data_seed")
    return f"--data_seed {data_seed}" if data_seed is not None else f"--seed {training['seed']}"


def validation_at_epoch(run_dir: Path, epoch: float) -> float | None:
    """A run's validation accuracy at the end of `epoch`, from its trainer_state.json; None if it stopped earlier."""
    history = read_json(run_dir / "trainer_state.json")["log_history"]
    return next((e["eval_accuracy"] for e in history if "eval_accuracy" in e and abs(e["epoch"] - epoch) < 1e-6), None)


def cross_attention_reads_table(group_dir: Path) -> str:
    """10-epoch runs of one recipe with more latents or more ways for them to read the image
    (results/probes-2026-12-03-cs10): per run its data order, its latents and how they read (cross-attention heads,
    query/key and value widths, cross-attends and latent layers, each with how many have weights of their own) and its
    validation accuracy every second epoch; then each design's mean over its runs. Runs are ordered by design
    (latents, heads, widths, cross-attends, latent layers), then data order."""
    runs = []
    for run_dir in (path.parent for path in group_dir.glob("*/metrics.json")):
        config = PerceiverStudyConfig.from_dict(read_json(run_dir / "config.json"))
        training = read_json(run_dir / "run_args.json")["training"]
        history = read_json(run_dir / "trainer_state.json")["log_history"]
        accuracy = {round(entry["epoch"]): entry["eval_accuracy"] for entry in history if "eval_accuracy" in entry}
        reads = (
            config.num_latents,
            config.num_cross_attention_heads,
            config.resolved_cross_attention_qk_dim,
            config.resolved_cross_attention_v_dim,
            config.num_cross_attends,
            config.num_distinct_cross_attends,
            config.num_blocks * config.num_self_attends_per_block,
            config.num_distinct_blocks * config.num_self_attends_per_block,
        )
        data_seed = training.get("data_seed")
        runs.append((reads, data_seed if data_seed is not None else 0, run_dir.name, accuracy))
    rows, finals = [], {}  # sorted below by design, data order, then name (unique, so accuracies are never compared)
    for reads, data_seed, name, accuracy in sorted(runs):
        latents, heads, qk_dim, v_dim, cross_attends, distinct_cross, layers, distinct = reads
        design = (
            f"{latents} latents, {heads} heads, q/k {qk_dim} and v {v_dim} wide, {cross_attends} cross-attend"
            + ("s" if cross_attends > 1 else "")
            + (f" ({distinct_cross} with their own weights)" if distinct_cross < cross_attends else "")
            + f", {layers} latent layers"
            + (f" ({distinct} with their own weights, shared by every block)" if distinct < layers else "")
        )
        rows.append(
            [f"`{name}`", design, str(data_seed)]
            + [percent(accuracy[epoch]) for epoch in (2, 4, 6, 8)]
            + [f"**{percent(accuracy[10])}**"]
        )
        finals.setdefault(design, []).append(100 * accuracy[10])
    header = ["run", "latents, and how they read", "data order", "epoch 2", "epoch 4", "epoch 6", "epoch 8", "epoch 10"]
    summary = [
        [
            design,
            str(len(values)),
            " / ".join(f"{value:.1f}" for value in values),
            f"**{sum(values) / len(values):.2f} %**",
        ]
        for design, values in finals.items()
    ]
    return (
        markdown_table(header, rows)
        + "\n"
        + markdown_table(["latents, and how they read", "runs", "epoch 10 (%)", "mean"], summary)
    )


def depth_cost_table(path: Path) -> str:
    """Training-step time at each latent depth and input size, and the cost of one latent layer at each size."""
    result = read_json(path)
    rows_by_size = {}
    for row in result["rows"]:
        cell = "skipped" if "skipped" in row else f"{1000 * row['step_seconds']:.0f} ms"
        rows_by_size.setdefault(row["image_size"], {})[row["depth"]] = cell
    depths = sorted({row["depth"] for row in result["rows"]})
    per_layer = result["seconds_per_layer_by_image_size"]
    rows = [
        [f"{size} x {size} ({size * size:,} tokens)", *[cells.get(d, "") for d in depths]]
        + [f"{1000 * per_layer[str(size)]:.1f} ms"]
        for size, cells in sorted(rows_by_size.items())
    ]
    additive, interaction = result["additive_fit"], result["interaction_fit"]
    table = markdown_table(["input", *[f"depth {d}" for d in depths], "per added layer"], rows)
    return table + (
        f"\nFit over all cells: t = a + b M + c L explains R^2 = {additive['r2']:.3f} of the variance; adding an "
        f"M x L term gives R^2 = {interaction['r2']:.3f}, and that term is "
        f"{100 * interaction['interaction_share_of_largest_step']:.1f} % of the largest step. "
        f"Batch {result['batch']}.\n"
    )


def depth_accuracy_table(path: Path) -> str:
    result = read_json(path)
    rows = []
    for depth, summary in sorted(result["by_depth"].items(), key=lambda item: int(item[0])):
        runs = [run for run in result["runs"] if str(run["depth"]) == depth]
        low, high = summary["range"]
        rows.append(
            [
                depth,
                f"{runs[0]['parameters'] / 1e6:.2f}M",
                f"**{100 * summary['mean']:.1f} %** ({100 * low:.1f} to {100 * high:.1f})",
                f"{100 * summary['train_subset_mean']:.1f} %",
            ]
        )
    # (No images/s: these runs shared the CPU; the cost of depth is measured alone, in depth-cost.)
    header = ["latent layers", "parameters", f"validation after {result['epochs']:g} epochs, mean (range)"]
    header += ["training subset (not augmented), mean"]
    return markdown_table(header, rows)


def regularisation_table(path: Path) -> str:
    """Per arm and epoch: validation against the un-augmented training subset, and the losses, mean of the seeds."""
    result = read_json(path)
    rows = []
    for arm, runs in result["arms"].items():
        for index, first in enumerate(runs[0]["per_epoch"]):
            epochs = [run["per_epoch"][index] for run in runs if index < len(run["per_epoch"])]

            def mean(key, epochs=epochs):
                values = [epoch[key] for epoch in epochs if epoch.get(key) is not None]
                return sum(values) / len(values) if values else float("nan")

            rows.append(
                [
                    arm if index == 0 else "",
                    f"{first['epoch']:g}",
                    f"{100 * mean('validation_accuracy'):.1f} %",
                    f"{100 * mean('train_subset_accuracy'):.1f} %",
                    f"{mean('validation_loss'):.3f}",
                    f"{mean('train_subset_loss'):.3f}",
                    f"{mean('train_batches_loss'):.3f}",
                ]
            )
    header = ["arm", "epoch", "validation accuracy", "training subset accuracy", "validation loss"]
    header += ["training subset loss", "training-batch loss (augmented)"]
    return markdown_table(header, rows) + f"\nMeans of seeds {', '.join(map(str, result['seeds']))}.\n"


def tables(results_dir: Path) -> dict[str, str]:
    """Every generated table whose result file exists, by marker name."""
    results_dir = Path(results_dir)
    runs_table = partial(training_runs_table, root=results_dir.parent)  # runs named by their path in the repository
    sources = {
        **{marker: (runs_table, results_dir / group) for marker, group in RUN_GROUPS.items()},
        "latents": (latents_table, results_dir / "study" / "latents.json"),
        "permutation": (permutation_table, results_dir / "study" / "permutation.json"),
        "complexity": (complexity_table, results_dir / "complexity.json"),
        "benchmark-seed": (benchmark_table, results_dir / "benchmark-cpu-seed-bf16.json"),
        "benchmark-seed-gpu": (benchmark_table, results_dir / "benchmark-gpu-h100-seed-bf16.json"),
        "performance-steps": (performance_steps_table, results_dir / "performance-steps"),
        "onnx-cpu": (onnx_table, results_dir / "onnx-cpu"),
        "time-split-cpu": (time_split_table, results_dir / "time-split-cpu"),
        "weight-average-cpu": (weight_average_table, results_dir / "weight-average-cpu"),
        "budget-schedule-cpu": (budget_schedule_table, results_dir / "budget-schedule-cpu"),
        "cross-attention-reads-cs10": (cross_attention_reads_table, results_dir / "probes-2026-12-03-cs10"),
        "fixed-epochs-cpu": (fixed_epochs_table, results_dir / "fixed-epochs-cpu" / "controls.json"),
        "depth-cost": (depth_cost_table, results_dir / "study" / "depth-cost.json"),
        "depth-accuracy": (depth_accuracy_table, results_dir / "study" / "depth-accuracy.json"),
        "regularisation": (regularisation_table, results_dir / "study" / "regularisation.json"),
    }
    if run_files(results_dir, "position_use_over_training.json"):
        sources["position-use-over-training"] = (position_use_over_training_table, results_dir)
    return {name: build(source) for name, (build, source) in sources.items() if source.exists()}


def update_document(text: str, generated: dict[str, str]) -> str:
    """`text` with the body of every known marker replaced by its generated table."""

    def replace(match):
        name = match.group("name")
        if name not in generated:
            return match.group(0)
        return match.group(1) + generated[name] + match.group(4)

    return MARKER.sub(replace, text)


def marker_names(text: str) -> list[str]:
    return [match.group("name") for match in MARKER.finditer(text)]


# ---------------------------------------------------------------------------------------------------------------------
# Figures


def plot_latents(path: Path, output_path: Path) -> Path:
    result = read_json(path)
    runs = result["runs"]
    plt = pyplot()
    figure, (accuracy_axis, speed_axis) = plt.subplots(1, 2, figsize=(10, 3.8))
    counts = [run["num_latents"] for run in runs]
    accuracy_axis.semilogx(counts, [100 * run["validation_accuracy"] for run in runs], marker="o", base=2)
    accuracy_axis.set(
        title=f"Validation accuracy after {result['epochs']:g} epochs (one run each)",
        xlabel="latents N",
        ylabel="accuracy (%)",
        ylim=(0, 100),  # from zero: a gap of a point between single 2-epoch runs must not look large
    )
    speed_axis.semilogx(counts, [run["train_images_per_second"] for run in runs], marker="o", base=2)
    speed_axis.set(title="Training throughput", xlabel="latents N", ylabel="images/s")
    for axis in (accuracy_axis, speed_axis):
        axis.set_xticks(counts, [str(count) for count in counts])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
    return save_and_close(figure, output_path)


def plot_permutation(path: Path, output_path: Path) -> Path:
    """One bar per arm: final validation accuracy, natural order solid and permuted arms hatched."""
    result = read_json(path)
    plt = pyplot()
    arms = list(result["arms"].items())
    figure, axis = plt.subplots(figsize=(8, 4))
    accuracies = [100 * run["history"][-1]["validation_accuracy"] for _, run in arms]
    bars = axis.barh(
        range(len(arms)),
        accuracies,
        color=["tab:orange" if arm.startswith("convnet") else "tab:blue" for arm, _ in arms],
    )
    for bar, (arm, _), accuracy in zip(bars, arms, accuracies):
        if "permuted" in arm:
            bar.set_hatch("//")
        axis.text(accuracy + 0.5, bar.get_y() + bar.get_height() / 2, f"{accuracy:.1f} %", va="center", fontsize=8)
    axis.set_yticks(range(len(arms)), [PERMUTATION_ARMS[arm] for arm, _ in arms], fontsize=8)
    axis.invert_yaxis()
    title = f"Permuted pixels: validation accuracy after {result['loop']['epochs']:g} epochs (one run each)"
    axis.set(title=title, xlabel="accuracy (%)")
    axis.set_xlim(0, 100)
    axis.grid(alpha=0.3, axis="x")
    return save_and_close(figure, output_path)


def run_files(results_dir: Path, name: str) -> list[Path]:
    """The file `name` (a path inside a run folder) of every recorded run that has it, in every group of runs."""
    return sorted(path for group in RUN_GROUPS.values() for path in (results_dir / group).glob(f"*/{name}"))


def draw_figures(results_dir: Path, figures_dir: Path) -> list[Path]:
    """Every figure drawn from recorded results: per-run curves and confusion matrices, the study's figures."""
    results_dir, figures_dir = Path(results_dir), Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    drawn = []
    for state in run_files(results_dir, "trainer_state.json"):
        drawn.append(plot_training_curves(state, state.parent / "training_curves.png"))
    for evaluation in run_files(results_dir, "evaluation/evaluation.json"):
        matrix = read_json(evaluation)["confusion_matrix"]
        drawn.append(
            plot_confusion_matrix(
                matrix["rows_true_columns_predicted"], matrix["labels"], evaluation.parent / "confusion_matrix.png"
            )
        )
    study = {
        "complexity.png": (plot_complexity, results_dir / "complexity.json"),
        "latents.png": (plot_latents, results_dir / "study" / "latents.json"),
        "permutation.png": (plot_permutation, results_dir / "study" / "permutation.json"),
    }
    for name, (plot, source) in study.items():
        if source.exists():
            drawn.append(plot(source, figures_dir / name))
    depth_cost, depth_accuracy = (
        results_dir / "study" / "depth-cost.json",
        results_dir / "study" / "depth-accuracy.json",
    )
    if depth_cost.exists() and depth_accuracy.exists():
        drawn.append(plot_depth(depth_cost, depth_accuracy, figures_dir / "depth.png"))
    if (results_dir / "study" / "regularisation.json").exists():
        drawn.append(
            plot_regularisation(results_dir / "study" / "regularisation.json", figures_dir / "regularisation.png")
        )
    if (results_dir / "cpu-small-cpu" / HEAD_RUNS[0]).is_dir():
        drawn.append(plot_heads(results_dir, figures_dir / "heads.png"))
    if (results_dir / "seed-recipe-cpu" / "seed-cpu-l32x16-conv128x4").is_dir():
        drawn.append(plot_stem_epochs(results_dir, figures_dir / "stem-epochs.png"))
    tracked = run_files(results_dir, "position_use_over_training.json")
    if tracked:
        drawn.append(plot_position_use_over_training(tracked, figures_dir / "position-use-over-training.png"))
    return drawn


# The 20-minute runs at 8 latents and 4 x 4 tokens that differ in cross-attention heads (docs/results.md, runs 13-18).
HEAD_RUNS = ("cpu-small-p4l8", "cpu-small-p4l8x4", "cpu-small-p4l8x8", "cpu-small-l8x8-dataseed1", "cpu-small-x16")
HEAD_RUNS += ("cpu-small-x16-dataseed1",)
# 10 epochs at 32 latents x 256 and 4 x 4 tokens, each token's features changed (report section 6).
STEM_RUNS = {
    "seed-convfree-b4-flip": "raw patches, 64 heads, 2 cross-attends, 4 bands, flip only (seed-convfree)",
    "seed-convfree-b4-cpu": "the same without the flip",
    "seed-convfree-white": "seed-convfree with whitened patches (patch_whitening)",
    "seed-convfree-white-crop": "seed-convfree with whitened patches and a random crop",
    "seed-convfree-cpu": "raw patches, 64 heads, 2 cross-attends, 64 bands, crop, flip, label smoothing (until 11-30)",
    "seed-cpu-l32x16": "raw patches, 16 heads",
    "seed-cpu-l32x16-conv": "2-layer stem",
    "seed-cpu-l32x16-conv128-lr1e-3": "2-layer stem, 128 channels, lr 1e-3",
    "seed-cpu-l32x16-conv128x3": "3-layer stem",
    "seed-cpu-l32x16-conv128x4": "4-layer stem (seed-conv)",
    "seed-conv-cpu-dataseed1": "4-layer stem (seed-conv), second data order",
}


def accuracy_axes(axis, title: str, xlabel: str, ylabel: str = "validation accuracy (%)") -> None:
    """Title and labels of an accuracy plot, its y-axis from 0 to 100 % so that a point's gap between single runs
    does not look large, and a light grid."""
    axis.set(title=title, xlabel=xlabel, ylabel=ylabel, ylim=(0, 100))
    axis.grid(alpha=0.3)


def plot_heads(results_dir: Path, output_path: Path) -> Path:
    """Validation accuracy of the 20-minute runs against their cross-attention heads (8 latents, 4 x 4 tokens)."""
    plt = pyplot()
    points = []
    for name in HEAD_RUNS:
        folder = results_dir / "cpu-small-cpu" / name
        config, metrics = read_json(folder / "config.json"), read_json(folder / "metrics.json")
        points.append((config["num_cross_attention_heads"], 100 * metrics["validation"]["accuracy"]))
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    heads, accuracy = zip(*points)
    axis.semilogx(heads, accuracy, "o", base=2)
    axis.set_xticks(sorted(set(heads)), [str(h) for h in sorted(set(heads))])
    axis.minorticks_off()
    accuracy_axes(axis, "20 CPU-minutes, 8 latents, 4 x 4 tokens: one point per run", "cross-attention heads")
    return save_and_close(figure, output_path)


def plot_stem_epochs(results_dir: Path, output_path: Path) -> Path:
    """Validation accuracy per epoch of the 10-epoch runs that differ in their tokens' features."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(10, 4.2))
    colours = [*plt.get_cmap("tab10").colors, "black"]  # more runs than the default cycle's 10 colours
    for index, (name, label) in enumerate(STEM_RUNS.items()):
        group = "convfree-cpu" if name.startswith("seed-convfree") else "seed-recipe-cpu"
        history = read_json(results_dir / group / name / "trainer_state.json")["log_history"]
        points = [(entry["epoch"], 100 * entry["eval_accuracy"]) for entry in history if "eval_accuracy" in entry]
        axis.plot(*zip(*points), marker="o", markersize=3, color=colours[index % len(colours)], label=label)
    accuracy_axes(axis, "10 epochs, 32 latents x 256, 4 x 4 tokens (one run each)", "epoch")
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))  # beside the curves, not over them
    return save_and_close(figure, output_path)


def plot_position_use_over_training(paths: list[Path], output_path: Path) -> Path:
    """Validation accuracy at every kept checkpoint, natural and with the patches shuffled (study.position_use_over_
    training), one colour per run: the gap is what the model draws from position by then."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.5, 4))
    num_samples = sorted({read_json(path).get("num_samples") for path in paths} - {None})
    for index, path in enumerate(paths):
        rows = read_json(path)["checkpoints"]
        epochs = [row["epoch"] for row in rows]
        name, colour = path.parent.name, f"C{index}"
        axis.plot(epochs, [100 * row["natural"] for row in rows], marker="o", color=colour, label=f"{name}: natural")
        shuffled = [100 * row["tokens-shuffled"] for row in rows]
        axis.plot(epochs, shuffled, marker="o", linestyle="--", color=colour, label=f"{name}: patches shuffled")
    samples = " / ".join(f"{n:,}" for n in num_samples)
    accuracy_axes(axis, f"Validation accuracy through training ({samples} images)", "epoch")
    axis.legend(fontsize=7)
    return save_and_close(figure, output_path)


def position_use_over_training_table(results_dir: Path) -> str:
    """Per run and kept checkpoint: natural and patch-shuffled validation accuracy, and the gap between them."""
    rows = []
    for path in run_files(results_dir, "position_use_over_training.json"):
        for row in read_json(path)["checkpoints"]:
            natural, shuffled = row["natural"], row["tokens-shuffled"]
            gap = f"{100 * natural - 100 * shuffled:.1f}"
            rows.append([f"`{path.parent.name}`", f"{row['epoch']:g}", percent(natural), percent(shuffled), gap])
    header = ["run", "epoch", "natural", "patches shuffled", "gap (points)"]
    return markdown_table(header, rows)


def plot_depth(cost_path: Path, accuracy_path: Path, output_path: Path) -> Path:
    """Step time against latent depth at each input size (parallel lines: additive cost), and accuracy against
    depth after a fixed number of epochs (each seed a point)."""
    cost, accuracy = read_json(cost_path), read_json(accuracy_path)
    plt = pyplot()
    figure, (cost_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 3.8))
    for size in sorted({row["image_size"] for row in cost["rows"]}):
        rows = [r for r in cost["rows"] if r["image_size"] == size and "skipped" not in r]
        cost_axis.plot([r["depth"] for r in rows], [1000 * r["step_seconds"] for r in rows], marker="o",
                       label=f"{size} x {size} pixels")  # fmt: skip
    cost_axis.set(title="Training-step time (batch 8)", xlabel="latent layers", ylabel="ms", ylim=(0, None))
    cost_axis.legend(fontsize=8)
    for run in accuracy["runs"]:
        accuracy_axis.plot(run["depth"], 100 * run["validation_accuracy"], "o", color="tab:blue")
        accuracy_axis.plot(run["depth"], 100 * run["train_subset_accuracy"], "s", color="tab:orange", alpha=0.7)
    accuracy_axis.plot([], [], "o", color="tab:blue", label="validation")
    accuracy_axis.plot([], [], "s", color="tab:orange", label="training subset (not augmented)")
    accuracy_axis.set(
        title=f"cpu-small after {accuracy['epochs']:g} epochs (each seed a point)",
        xlabel="latent layers",
        ylabel="accuracy (%)",
        ylim=(0, 100),
    )
    accuracy_axis.legend(fontsize=8)
    for axis in (cost_axis, accuracy_axis):
        axis.set_xscale("log", base=2)
        axis.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
    return save_and_close(figure, output_path)


def plot_regularisation(path: Path, output_path: Path) -> Path:
    """Per epoch, each arm: validation and un-augmented training-subset accuracy, and the two losses against the
    training-batch loss (mean of the seeds)."""
    result = read_json(path)
    plt = pyplot()
    figure, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(10, 3.8))
    for (arm, runs), color in zip(result["arms"].items(), ("tab:blue", "tab:green")):
        epochs = [entry["epoch"] for entry in runs[0]["per_epoch"]]

        def mean(key, runs=runs):
            per_run = [[entry[key] for entry in run["per_epoch"]] for run in runs]
            return [sum(values) / len(values) for values in zip(*per_run)]

        accuracy_axis.plot(epochs, [100 * v for v in mean("validation_accuracy")], "-o", color=color,
                           label=f"{arm}: validation")  # fmt: skip
        accuracy_axis.plot(epochs, [100 * v for v in mean("train_subset_accuracy")], "--s", color=color,
                           label=f"{arm}: training subset")  # fmt: skip
        loss_axis.plot(epochs, mean("validation_loss"), "-o", color=color, label=f"{arm}: validation")
        loss_axis.plot(epochs, mean("train_batches_loss"), ":^", color=color, label=f"{arm}: training batches")
    accuracy_axis.set(title="Accuracy (mean of seeds)", xlabel="epoch", ylabel="%")
    loss_axis.set(title="Loss: validation against the epoch's training batches", xlabel="epoch")
    for axis in (accuracy_axis, loss_axis):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    return save_and_close(figure, output_path)


def write_text_atomic(path: Path, text: str) -> None:
    replace_atomically(path, lambda temporary: Path(temporary).write_text(text))


def plot_complexity(results_path, figure_path) -> Path:
    """Log-log step time and peak memory against pixel count (Perceiver and Transformers), and step time against
    latent count, from the JSON written by `python -m study.complexity`."""
    results = json.loads(Path(results_path).read_text())
    figure_path = Path(figure_path)
    plt = pyplot()
    exponents = results["fitted_exponents"]
    figure, (time_axis, memory_axis, latent_axis) = plt.subplots(1, 3, figsize=(15, 4.2))
    for model_name, marker in (("perceiver", "o"), ("transformer", "s"), ("transformer-eager", "^")):
        rows = [r for r in results["by_input_size"] if r["model"] == model_name and "skipped" not in r]
        key = model_name.replace("-", "_")
        label = f"{model_name} (slope {exponents[f'{key}_time_vs_pixels']:.2f})"
        time_axis.loglog([r["pixels"] for r in rows], [r["step_seconds"] for r in rows], marker=marker, label=label)
        memory_label = f"{model_name} (slope {exponents[f'{key}_memory_vs_pixels']:.2f})"
        memory_axis.loglog(
            [r["pixels"] for r in rows], [r["peak_memory_mib"] for r in rows], marker=marker, label=memory_label
        )
    time_axis.set(title="Training-step time vs input size", xlabel="pixels (tokens)", ylabel="seconds")
    memory_axis.set(title="Peak memory vs input size", xlabel="pixels (tokens)", ylabel="MiB")
    latents = [r for r in results["by_latents"] if "skipped" not in r]
    latent_axis.loglog(
        [r["num_latents"] for r in latents],
        [r["step_seconds"] for r in latents],
        marker="o",
        label=f"perceiver (slope {exponents['perceiver_time_vs_latents']:.2f})",
    )
    counts = [r["num_latents"] for r in latents]
    latent_axis.set_xticks(counts, [str(count) for count in counts])
    latent_axis.minorticks_off()
    size = latents[0]["image_size"] if latents else ""
    latent_axis.set(title=f"Step time vs latents ({size}x{size} input)", xlabel="latents N", ylabel="seconds")
    for axis in (time_axis, memory_axis, latent_axis):
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8, loc="upper left")
    figure_path.parent.mkdir(parents=True, exist_ok=True)
    return save_and_close(figure, figure_path)
