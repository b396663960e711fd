"""Short training runs of the cpu-small recipe for the study's experiments (depth, regularisation): the library's own
training code, the recipe's data, augmentation and schedule, a fixed number of epochs, uncompiled, training accuracy
logged on a fixed subset. A run already finished in its folder is not trained again (the training code's rerun rule)."""

import math
from pathlib import Path

from safetensors import safe_open

RECIPE = "configuration/recipes/cpu-small.json"
RECIPE_NOTE = f"{RECIPE} with --num_train_epochs EPOCHS, --train_eval_samples 5000, no compilation"


def train_variant(dataset_name, name, flags, seed, epochs, work_dir) -> dict:
    """Train the recipe with `flags` into `work_dir/name`; the run's accuracies, per epoch and final."""
    from modeling_perceiver_study.files import read_json
    from modeling_perceiver_study.training import main as train_main

    output = Path(work_dir) / name
    argv = [
        RECIPE,
        "--dataset_name", dataset_name,
        "--output_dir", str(output),
        "--num_train_epochs", str(epochs),
        "--max_train_minutes", "60",
        "--seed", str(seed),
        "--torch_compile", "false",
        "--save_strategy", "no",
        "--disable_tqdm", "true",
        "--report_to", "none",
        "--train_eval_samples", "5000",
        *flags,
    ]  # fmt: skip
    metrics = train_main(argv)
    history = read_json(output / "trainer_state.json")["log_history"]
    with safe_open(str(output / "model.safetensors"), framework="pt") as weights:
        parameters = sum(math.prod(weights.get_slice(key).get_shape()) for key in weights.keys())
    return {
        "name": name,
        "seed": seed,
        "epochs": epochs,
        "flags": list(flags),
        "folder": str(output),
        "parameters": parameters,
        "validation_accuracy": metrics["validation"]["accuracy"],
        "train_subset_accuracy": metrics.get("train_subset", {}).get("accuracy"),
        "train_samples_per_second": metrics["train"]["train_samples_per_second"],
        "per_epoch": epoch_curves(history),
    }


def epoch_curves(history: list[dict]) -> list[dict]:
    """Per evaluation during training: validation and training-subset accuracy and loss, and the mean training loss
    (on augmented, label-smoothed batches) logged since the previous evaluation."""
    curves, window = [], []
    for entry in history:
        if "loss" in entry:
            window.append(entry["loss"])
        if "eval_accuracy" in entry:
            curves.append(
                {
                    "epoch": entry["epoch"],
                    "validation_accuracy": entry["eval_accuracy"],
                    "validation_loss": entry["eval_loss"],
                    "train_batches_loss": sum(window) / len(window) if window else None,
                }
            )
            window = []
        if "train_subset_accuracy" in entry and curves and curves[-1]["epoch"] == entry["epoch"]:
            curves[-1]["train_subset_accuracy"] = entry["train_subset_accuracy"]
            curves[-1]["train_subset_loss"] = entry["train_subset_loss"]
    return curves
