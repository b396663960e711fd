"""Image-classification data for training: load a dataset (Hub id, local folder or parquet files), find its columns,
carve a seeded stratified validation split, and decode every image once into a uint8 tensor.

Training then indexes whole batches out of that tensor (`TensorImageDataset.__getitems__`): no per-image Python and
no re-decoding on the hot path. Augmentation and normalization happen per batch on the training device
(`augment.py`).
"""

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

logger = logging.getLogger(__name__)

IMAGE_COLUMN_CANDIDATES = ("img", "image", "pixel_values", "images")
# Each row's index in its split as loaded, kept through shuffles and the validation carve-out, so a bad image is
# named by a row (or file) a user can find, not by its position after splitting.
SOURCE_ROW = "source_row"
LABEL_COLUMN_CANDIDATES = ("label", "labels", "fine_label", "class")


class DataError(ValueError):
    """Bad dataset input: a message that names the dataset, split, column or rows at fault."""


@dataclass
class DecodedSplit:
    """One split decoded into memory: images uint8 `(N, C, H, W)`, labels int64 `(N,)`."""

    images: torch.Tensor
    labels: torch.Tensor
    skipped_rows: list[int]

    def __len__(self):
        return len(self.labels)


def looks_like_local_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or name.endswith(".parquet") or Path(name).exists()


def load_image_dataset(dataset_name: str, dataset_config_name: str | None = None, cache_dir: str | None = None):
    """A `DatasetDict` from a Hub id (e.g. `uoft-cs/cifar10`), a local dataset folder, or parquet file(s)."""
    import datasets

    if looks_like_local_path(dataset_name):
        path = Path(dataset_name).expanduser()
        if not path.exists() and "*" not in dataset_name:
            raise DataError(f"dataset path {dataset_name!r} does not exist")
        if path.is_file() or "*" in dataset_name:
            return datasets.load_dataset("parquet", data_files={"train": str(path)}, cache_dir=cache_dir)
        return datasets.load_dataset(str(path), dataset_config_name, cache_dir=cache_dir)
    try:
        return datasets.load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir)
    except (FileNotFoundError, ConnectionError) as error:
        raise DataError(
            f"could not load dataset {dataset_name!r} from the Hugging Face Hub or its cache ({error}). "
            "Pass a local folder or parquet file with --dataset_name."
        ) from error


def find_column(column_names, explicit: str | None, candidates, kind: str, split: str) -> str:
    column_names = [name for name in column_names if name != SOURCE_ROW]  # ours, not the user's
    if explicit:
        if explicit not in column_names:
            raise DataError(f"{kind} column {explicit!r} not in split {split!r}; its columns are {list(column_names)}")
        return explicit
    for name in candidates:
        if name in column_names:
            return name
    raise DataError(
        f"no {kind} column in split {split!r}: looked for {list(candidates)}, the columns are {list(column_names)}. "
        f"Name it with --{kind}_column_name."
    )


def label_names(dataset_split, label_column: str) -> list[str]:
    """Class names from a `ClassLabel` feature, or the sorted distinct values of a plain integer column."""
    feature = dataset_split.features[label_column]
    if hasattr(feature, "names"):
        return list(feature.names)
    values = sorted(set(dataset_split[label_column]))
    if values != list(range(len(values))):
        raise DataError(f"label column {label_column!r} must hold class ids 0..K-1, found values {values[:20]}")
    return [str(value) for value in values]


@dataclass
class OpenedDataset:
    """A dataset with its image and label columns found and its class names read."""

    splits: object  # datasets.DatasetDict
    image_column: str
    label_column: str
    label_names: list[str]


def open_image_dataset(
    dataset_name: str,
    split: str = "train",
    image_column: str | None = None,
    label_column: str | None = None,
    dataset_config_name: str | None = None,
    cache_dir: str | None = None,
) -> OpenedDataset:
    """Load a dataset and resolve its columns and class names on `split`: the one way training, evaluation and the
    study open their data, so all of them name the same columns, labels and errors."""
    dataset = load_image_dataset(dataset_name, dataset_config_name, cache_dir)
    if split not in dataset:
        raise DataError(f"dataset {dataset_name!r} has no split {split!r}; its splits are {list(dataset)}")
    columns = dataset[split].column_names
    image_column = find_column(columns, image_column, IMAGE_COLUMN_CANDIDATES, "image", split)
    label_column = find_column(columns, label_column, LABEL_COLUMN_CANDIDATES, "label", split)
    names = label_names(dataset[split], label_column)
    for name in list(dataset):
        if SOURCE_ROW not in dataset[name].column_names:
            dataset[name] = dataset[name].add_column(SOURCE_ROW, np.arange(len(dataset[name])))
    return OpenedDataset(dataset, image_column, label_column, names)


def carve_validation_split(train_split, label_column: str, fraction: float, seed: int, name: str = "train_val_split"):
    """A seeded, stratified (train, held-out) pair carved from `train_split`; `name` is the flag the fraction came
    from, for the error."""
    from datasets import ClassLabel

    if not 0.0 < fraction < 1.0:
        raise DataError(f"{name} must be a fraction in (0, 1), got {fraction}")
    if not isinstance(train_split.features[label_column], ClassLabel):
        names = label_names(train_split, label_column)
        train_split = train_split.cast_column(label_column, ClassLabel(names=names))
    parts = train_split.train_test_split(test_size=fraction, seed=seed, stratify_by_column=label_column)
    return parts["train"], parts["test"]


# The final test split is carved with this seed whatever the run's --seed, so every run and seed that asks for one
# holds out the same images, and no choice made on validation has looked at them.
TEST_SPLIT_SEED = 20261130


def split_held_out(dataset, label_column: str, train_val_split: float, seed: int, test_split: float = 0.0):
    """(train, validation, test or None). The dataset's own validation and test splits when it has them; otherwise a
    test split (`test_split` of train, seeded with TEST_SPLIT_SEED, stratified) is carved first when asked for, and the
    validation split (`train_val_split` of what is left, seeded with `seed`) from the rest: the two never overlap."""
    test = dataset["test"] if "test" in dataset else None
    if test is not None and test_split:
        raise DataError(
            f"the dataset has its own test split ({len(test)} rows): --test_split carves one only from a dataset "
            "without one; leave it at 0"
        )
    remaining = dict(dataset)
    if test is None and test_split:
        remaining["train"], test = carve_validation_split(
            dataset["train"], label_column, test_split, TEST_SPLIT_SEED, name="test_split"
        )
    train, validation = split_off_validation(remaining, label_column, train_val_split, seed)
    return train, validation, test


def split_off_validation(dataset, label_column: str, fraction: float, seed: int):
    """(train, validation): the dataset's own validation split, or one carved from train with `fraction` and `seed`."""
    if "validation" in dataset:
        return dataset["train"], dataset["validation"]
    return carve_validation_split(dataset["train"], label_column, fraction, seed)


def limit_split(split, maximum: int | None, seed: int):
    """At most `maximum` rows: a random subset drawn with `seed`, so training and evaluation pick the same rows."""
    if maximum is None or maximum >= len(split):
        return split
    return split.shuffle(seed=seed).select(range(maximum))


PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}  # num_channels -> the PIL mode images are converted to


def channel_statistics(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 `(N, C, H, W)` images, in [0, 1] units (as the image
    processor's image_mean / image_std), accumulated in float64 over the whole set."""
    totals = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(totals)
    for start in range(0, len(images), 4096):  # in chunks: the float copy of 50,000 images would be 600 MB
        chunk = images[start : start + 4096].to(torch.float64) / 255.0
        totals += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square().sum(dim=(0, 2, 3))
    count = images.shape[0] * images.shape[2] * images.shape[3]
    mean = totals / count
    std = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
    return [round(float(value), 4) for value in mean], [round(max(float(value), 1e-3), 4) for value in std]


def decode_image(value, image_size: int, num_channels: int) -> np.ndarray:
    """Bytes / path / PIL image -> uint8 `(C, H, W)`, resized to `image_size` if it is not already that size."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        image = Image.open(io.BytesIO(value))
    elif isinstance(value, str):
        image = Image.open(value)
    elif isinstance(value, Image.Image):
        image = value
    else:
        raise TypeError(f"unsupported image value of type {type(value).__name__}")
    image = image.convert(PIL_MODES[num_channels])
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def decode_split(
    dataset_split,
    image_column: str,
    label_column: str,
    image_size: int,
    num_channels: int = 3,
    skip_corrupt_images: bool = False,
    split_name: str = "train",
) -> DecodedSplit:
    """Decode every image of a split once. Corrupt images are an error naming their rows, or, with
    `skip_corrupt_images`, dropped and counted."""
    from datasets import Image as ImageFeature

    if num_channels not in PIL_MODES:
        raise DataError(f"num_channels {num_channels} cannot be decoded: images have 1 (L), 3 (RGB) or 4 (RGBA)")

    if isinstance(dataset_split.features[image_column], ImageFeature):
        dataset_split = dataset_split.cast_column(image_column, ImageFeature(decode=False))
    images = np.empty((len(dataset_split), num_channels, image_size, image_size), dtype=np.uint8)
    labels = np.asarray(dataset_split[label_column], dtype=np.int64)
    columns = dataset_split.column_names
    source_rows = dataset_split[SOURCE_ROW] if SOURCE_ROW in columns else range(len(dataset_split))
    bad_rows, bad_files, kept = [], [], 0
    for row, value in enumerate(dataset_split[image_column]):
        try:
            images[kept] = decode_image(value, image_size, num_channels)
        except (UnidentifiedImageError, OSError, TypeError, ValueError) as error:
            bad_rows.append(int(source_rows[row]))
            path = value.get("path") if isinstance(value, dict) else value if isinstance(value, str) else None
            if path:
                bad_files.append(str(path))
            logger.debug("row %d of split %s: %s", bad_rows[-1], split_name, error)
            continue
        labels[kept] = labels[row]
        kept += 1
    if bad_rows and not skip_corrupt_images:
        origin = "rows of the dataset's split as loaded" if SOURCE_ROW in columns else "rows"
        files = f", files {bad_files[:5]}{' ...' if len(bad_files) > 5 else ''}" if bad_files else ""
        raise DataError(
            f"{len(bad_rows)} image(s) in split {split_name!r}, column {image_column!r} could not be decoded: "
            f"{origin} {sorted(bad_rows)[:20]}{' ...' if len(bad_rows) > 20 else ''}{files}. Fix them, or pass "
            "--skip_corrupt_images to drop them (they are counted in the metrics)."
        )
    if bad_rows:
        logger.warning("skipped %d corrupt image(s) in split %s: rows %s", len(bad_rows), split_name, bad_rows[:20])
    return DecodedSplit(torch.from_numpy(images[:kept]), torch.from_numpy(labels[:kept]), bad_rows)


class TensorImageDataset(torch.utils.data.Dataset):
    """Decoded images as a map-style dataset whose batches are gathered with one tensor index."""

    def __init__(self, split: DecodedSplit):
        self.images, self.labels = split.images, split.labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"pixel_values": self.images[index], "labels": self.labels[index]}

    def __getitems__(self, indices):  # used by torch's DataLoader to fetch a whole batch at once
        index = torch.as_tensor(indices, dtype=torch.long)
        return {"pixel_values": self.images[index], "labels": self.labels[index]}


def collate_batch(batch):
    """Collator for `TensorImageDataset`: a batch fetched whole passes through; a list of items is stacked."""
    if isinstance(batch, dict):
        return batch
    return {key: torch.stack([item[key] for item in batch]) for key in batch[0]}
