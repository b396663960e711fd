"""Figures drawn from a run's recorded files (no figure needs the model)."""

import json
from pathlib import Path

from .files import replace_atomically


def save_figure(figure, path) -> Path:
    return replace_atomically(path, lambda temporary: figure.savefig(temporary, dpi=120, bbox_inches="tight"))


def save_and_close(figure, path) -> Path:
    """Save `figure` (atomically) and release it, also when saving fails."""
    try:
        return save_figure(figure, path)
    finally:
        pyplot().close(figure)


def curves_from_log_history(log_history: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """(epoch, value) series for training loss, validation loss/accuracy and learning rate."""
    series = {"loss": [], "eval_loss": [], "eval_accuracy": [], "learning_rate": []}
    series |= {"train_subset_loss": [], "train_subset_accuracy": []}  # --train_eval_samples: un-augmented training
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
    plt = pyplot()
    state = json.loads(Path(trainer_state_path).read_text())
    series = curves_from_log_history(state.get("log_history", []))
    figure, (loss_axis, accuracy_axis, lr_axis) = plt.subplots(1, 3, figsize=(15, 4))
    for key, label in (
        ("loss", "train (augmented batches)"),
        ("train_subset_loss", "train subset (not augmented)"),
        ("eval_loss", "validation"),
    ):
        if series[key]:
            loss_axis.plot(*zip(*series[key]), label=label, marker=None if key == "loss" else "o")
    loss_axis.set(title="Cross-entropy loss", xlabel="epoch")
    loss_axis.legend()
    if series["eval_accuracy"]:
        epochs, accuracy = zip(*series["eval_accuracy"])
        accuracy_axis.plot(epochs, [100 * a for a in accuracy], marker="o", label="validation")
        if series["train_subset_accuracy"]:
            epochs, train_accuracy = zip(*series["train_subset_accuracy"])
            accuracy_axis.plot(epochs, [100 * a for a in train_accuracy], marker="s", label="train subset")
            accuracy_axis.legend()
        best = max(accuracy)
        accuracy_axis.set_title(f"Accuracy (best validation {100 * best:.1f} %)")
    else:
        accuracy_axis.set_title("Validation accuracy (not evaluated)")
    accuracy_axis.set(xlabel="epoch", ylabel="%")
    if series["learning_rate"]:
        lr_axis.plot(*zip(*series["learning_rate"]))
    lr_axis.set(title="Learning rate", xlabel="epoch")
    for axis in (loss_axis, accuracy_axis, lr_axis):
        axis.grid(alpha=0.3)
    return save_and_close(figure, output_path)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion_matrix(matrix, label_names, output_path) -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted); the diagonal is per-class accuracy."""
    import numpy as np

    plt = pyplot()
    matrix = np.asarray(matrix, dtype=float)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = max(5, 0.6 * len(label_names))
    figure, axis = plt.subplots(figsize=(size + 1, size))
    image = axis.imshow(100 * rates, cmap="Blues", vmin=0, vmax=100)  # in %, as the cells are labelled
    axis.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
    axis.set_yticks(range(len(label_names)), label_names)
    axis.set(xlabel="predicted", ylabel="true", title="Confusion matrix (row-normalised)")
    for row in range(len(label_names)):
        for column in range(len(label_names)):
            value = rates[row, column]
            if value >= 0.01:
                axis.text(
                    column,
                    row,
                    f"{100 * value:.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > 0.5 else "black",
                )
    figure.colorbar(image, ax=axis, fraction=0.046, label="% of the true class")
    return save_and_close(figure, output_path)


def plot_prediction_grid(
    images_uint8, true_labels, predicted_labels, confidences, label_names, output_path, columns=8, title=None
) -> Path:
    """Images with true and predicted label and confidence; wrong predictions titled in red. `title` says how the
    images were chosen."""
    plt = pyplot()
    count = len(images_uint8)
    rows = (count + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(1.9 * columns, 2.2 * rows), squeeze=False)
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        axis.imshow(images_uint8[index].permute(1, 2, 0).numpy(), interpolation="nearest")
        correct = true_labels[index] == predicted_labels[index]
        axis.set_title(
            f"true: {label_names[true_labels[index]]}\npred: {label_names[predicted_labels[index]]} "
            f"({100 * confidences[index]:.0f} %)",
            fontsize=7,
            color="black" if correct else "red",
        )
    if title:
        figure.suptitle(title, fontsize=9)
    return save_and_close(figure, output_path)


def sharpest_attention_maps(attention, count):
    """The `count` lowest-entropy maps of one image's cross-attention `attention` (heads, latents, tokens), as
    (title, weights) pairs. With several heads each (latent, head) pair is its own map: every head is a separately
    weighted average of the tokens, so averaging the heads would blur what a latent reads."""
    import torch

    num_heads, num_latents = attention.shape[0], attention.shape[1]
    maps = attention.float().flatten(0, 1)  # (heads * latents, tokens), index = head * latents + latent
    entropy = -(maps * maps.clamp_min(1e-12).log()).sum(-1)
    chosen = []
    for index in torch.argsort(entropy)[:count].tolist():
        head, latent = divmod(index, num_latents)
        title = f"latent {latent}" if num_heads == 1 else f"latent {latent}, head {head}"
        chosen.append((title, maps[index]))
    return chosen


def plot_attention_maps(
    images_uint8, attention, grid_size, output_path, maps_to_show=6, row_titles=None, title=None
) -> Path:
    """For each image: the image, the cross-attention averaged over latents and heads, and its sharpest single
    maps (`sharpest_attention_maps`), each drawn over the image, with one colour bar per row (attention weight).

    `attention`: (images, heads, latents, tokens) cross-attention weights of the first cross-attend.
    `row_titles`: one line per image drawn over its row (e.g. true and predicted label).
    """
    plt = pyplot()
    height, width = grid_size
    columns = 2 + maps_to_show
    figure, axes = plt.subplots(
        len(images_uint8), columns, figsize=(1.7 * columns + 0.6, 1.9 * len(images_uint8)), squeeze=False
    )
    for row, image in enumerate(images_uint8):
        picture = image.permute(1, 2, 0).numpy()
        if picture.shape[-1] == 1:
            picture = picture[..., 0]
        extent = (0, picture.shape[1], picture.shape[0], 0)
        average = attention[row].float().mean(dim=(0, 1))
        sharpest = sharpest_attention_maps(attention[row], maps_to_show)
        # The single maps share one scale (the colour bar), so they compare by colour; the average is far flatter
        # and gets its own, with its peak in its title. Each map sums to 1 over the tokens.
        top = max(float(weights.max()) for _, weights in sharpest)
        maps = [("image", None, None), (f"all latents (peak {float(average.max()):.3f})", average, None)]
        maps += [(name, weights, top) for name, weights in sharpest]
        drawn = None
        for column, (name, weights, vmax) in enumerate(maps):
            axis = axes[row, column]
            axis.imshow(picture, interpolation="nearest", cmap="gray" if picture.ndim == 2 else None)
            if weights is not None:
                shown = axis.imshow(
                    weights.reshape(height, width).numpy(),
                    cmap="inferno",
                    alpha=0.6,
                    extent=extent,
                    interpolation="nearest",
                    vmin=0.0,
                    vmax=vmax,
                )
                drawn = shown if vmax is not None else drawn
            axis.set_title(name, fontsize=7)
            axis.axis("off")
        if drawn is not None:
            figure.colorbar(drawn, ax=axes[row, :].tolist(), fraction=0.015, pad=0.01, label="attention weight")
        if row_titles is not None:
            axes[row, 0].text(
                -0.15,
                0.5,
                row_titles[row],
                transform=axes[row, 0].transAxes,
                rotation=90,
                ha="right",
                va="center",
                fontsize=7,
            )
    if title:
        figure.suptitle(title, fontsize=8)
    return save_and_close(figure, output_path)
