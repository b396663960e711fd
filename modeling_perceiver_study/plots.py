"""Figures drawn from a run's recorded files (no figure needs the model)."""

import json
import os
import tempfile
from pathlib import Path


def _atomic_savefig(figure, path: Path) -> Path:
    """Write a figure to a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(handle)
    try:
        figure.savefig(temporary, dpi=120, bbox_inches="tight")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def curves_from_log_history(log_history: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """(epoch, value) series for training loss, validation loss/accuracy and learning rate."""
    series = {"loss": [], "eval_loss": [], "eval_accuracy": [], "learning_rate": []}
    for entry in log_history:
        epoch = entry.get("epoch")
        if epoch is None:
            continue
        for key in series:
            if key in entry:
                series[key].append((float(epoch), float(entry[key])))
    return series


def plot_training_curves(trainer_state_path, output_path) -> Path:
    """Loss, validation accuracy and learning rate against epochs, from a `trainer_state.json`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    state = json.loads(Path(trainer_state_path).read_text())
    series = curves_from_log_history(state.get("log_history", []))
    figure, (loss_axis, accuracy_axis, lr_axis) = plt.subplots(1, 3, figsize=(15, 4))
    for key, label in (("loss", "train"), ("eval_loss", "validation")):
        if series[key]:
            loss_axis.plot(*zip(*series[key]), label=label, marker="o" if key == "eval_loss" else None)
    loss_axis.set(title="Cross-entropy loss", xlabel="epoch")
    loss_axis.legend()
    if series["eval_accuracy"]:
        epochs, accuracy = zip(*series["eval_accuracy"])
        accuracy_axis.plot(epochs, [100 * a for a in accuracy], marker="o")
        best = max(accuracy)
        accuracy_axis.set_title(f"Validation accuracy (best {100 * best:.1f} %)")
    else:
        accuracy_axis.set_title("Validation accuracy (not evaluated)")
    accuracy_axis.set(xlabel="epoch", ylabel="%")
    if series["learning_rate"]:
        lr_axis.plot(*zip(*series["learning_rate"]))
    lr_axis.set(title="Learning rate", xlabel="epoch")
    for axis in (loss_axis, accuracy_axis, lr_axis):
        axis.grid(alpha=0.3)
    try:
        return _atomic_savefig(figure, output_path)
    finally:
        plt.close(figure)
