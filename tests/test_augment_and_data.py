import numpy as np
import pytest
import torch
from datasets import Dataset
from PIL import Image

from modeling_perceiver_study import PerceiverStudyImageProcessor
from modeling_perceiver_study.augment import (
    AugmentConfig,
    augment_batch,
    mix_batch,
    normalize,
    rand_augment,
    random_crop,
    random_horizontal_flip,
    soft_targets,
)
from modeling_perceiver_study.data import (
    DataError,
    TensorImageDataset,
    carve_validation_split,
    collate_batch,
    decode_split,
    find_column,
    load_image_dataset,
)
from modeling_perceiver_study.metrics import LocalAccuracy, build_compute_metrics
from tests.conftest import write_image_parquet


def uint8_batch(batch=6, size=8, seed=0):
    return torch.randint(
        0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed)
    )


def test_training_normalization_matches_the_image_processor():
    """What the model sees in training is what the saved image processor produces at inference."""
    array = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    processor = PerceiverStudyImageProcessor()
    expected = processor(Image.fromarray(array), return_tensors="pt")["pixel_values"]
    ours = normalize(torch.from_numpy(array).permute(2, 0, 1)[None], processor.image_mean, processor.image_std)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_random_crop_takes_a_shifted_window_of_the_padded_image():
    images = uint8_batch()
    torch.testing.assert_close(random_crop(images, 0), images)
    torch.manual_seed(0)
    cropped = random_crop(images, 2)
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(len(images)):
        windows = [padded[i, :, y : y + 8, x : x + 8] for y in range(5) for x in range(5)]
        assert any(torch.equal(cropped[i], window) for window in windows)
    assert not all(torch.equal(cropped[i], images[i]) for i in range(len(images)))


def test_flip_mirrors_about_half_the_images():
    torch.manual_seed(0)
    images = uint8_batch(batch=200)
    flipped = random_horizontal_flip(images)
    mirrored = [torch.equal(flipped[i], images[i].flip(-1)) for i in range(200)]
    kept = [torch.equal(flipped[i], images[i]) for i in range(200)]
    assert all(m or k for m, k in zip(mirrored, kept))
    assert 60 < sum(mirrored) < 140


@pytest.mark.parametrize("config", [AugmentConfig(mixup_alpha=0.4), AugmentConfig(cutmix_alpha=1.0)])
def test_mixup_and_cutmix_give_soft_targets_that_sum_to_one(config):
    torch.manual_seed(0)
    images = normalize(uint8_batch(), [0.5] * 3, [0.25] * 3)
    targets = soft_targets(torch.tensor([0, 1, 2, 3, 0, 1]), 4, smoothing=0.1)
    mixed, mixed_targets = mix_batch(images, targets, config)
    torch.testing.assert_close(mixed_targets.sum(-1), torch.ones(6))
    assert mixed.shape == images.shape and not torch.equal(mixed, images)
    assert (mixed_targets.max(-1).values < 1).all()


def test_rand_augment_changes_images_within_range_and_keeps_shape():
    torch.manual_seed(0)
    images = uint8_batch(batch=64).float() / 255
    augmented = rand_augment(images, num_ops=2, magnitude=0.8)
    assert augmented.shape == images.shape and augmented.min() >= 0 and augmented.max() <= 1
    changed = [(augmented[i] - images[i]).abs().max() > 1e-3 for i in range(64)]
    assert sum(changed) > 48
    torch.testing.assert_close(rand_augment(images, num_ops=2, magnitude=0.0), images)


def test_augment_batch_keeps_hard_labels_without_mixing():
    labels = torch.tensor([1, 2, 3, 0, 1, 2])
    images, out_labels = augment_batch(uint8_batch(), labels, AugmentConfig(), 4, [0.5] * 3, [0.25] * 3)
    assert images.dtype == torch.float32 and torch.equal(out_labels, labels)


def test_tensor_dataset_fetches_whole_batches():
    dataset = TensorImageDataset(type("Split", (), {"images": uint8_batch(10), "labels": torch.arange(10)})())
    batch = collate_batch(dataset.__getitems__([3, 1, 7]))
    assert torch.equal(batch["labels"], torch.tensor([3, 1, 7]))
    assert torch.equal(batch["pixel_values"][1], dataset.images[1])
    stacked = collate_batch([dataset[3], dataset[1]])
    assert torch.equal(stacked["labels"], torch.tensor([3, 1]))


def test_validation_split_is_seeded_and_stratified(synthetic_parquet):
    train = load_image_dataset(str(synthetic_parquet))["train"]
    a_train, a_val = carve_validation_split(train, "label", 0.25, seed=7)
    b_train, b_val = carve_validation_split(train, "label", 0.25, seed=7)
    assert a_val["label"] == b_val["label"] and len(a_val) == 24 and len(a_train) == 72
    assert sorted(np.bincount(a_val["label"]).tolist()) == [6, 6, 6, 6]
    with pytest.raises(DataError, match="train_val_split must be a fraction"):
        carve_validation_split(train, "label", 1.5, seed=7)


def test_decode_reports_corrupt_rows_or_skips_and_counts_them(tmp_path):
    path = write_image_parquet(tmp_path / "bad.parquet", per_class=3, corrupt_rows=(2, 5))
    split = load_image_dataset(str(path))["train"]
    with pytest.raises(DataError, match=r"2 image\(s\) in split 'train', column 'img'.*rows \[2, 5\].*--skip_corrupt"):
        decode_split(split, "img", "label", 32)
    decoded = decode_split(split, "img", "label", 32, skip_corrupt_images=True)
    assert len(decoded) == 10 and decoded.skipped_rows == [2, 5]
    assert decoded.labels.tolist() == [label for row, label in enumerate(split["label"]) if row not in (2, 5)]


def test_decode_resizes_other_sizes(tmp_path):
    path = write_image_parquet(tmp_path / "big.parquet", per_class=1, size=40)
    decoded = decode_split(load_image_dataset(str(path))["train"], "img", "label", 32)
    assert decoded.images.shape == (4, 3, 32, 32) and decoded.images.dtype == torch.uint8


def test_columns_found_by_name_or_error_lists_columns():
    columns = ["image", "fine_label", "coarse_label"]
    assert find_column(columns, None, ("img", "image"), "image", "train") == "image"
    with pytest.raises(DataError, match=r"no label column in split 'train'.*\['image', 'fine_label', 'coarse_label'\]"):
        find_column(columns, None, ("label", "labels"), "label", "train")
    with pytest.raises(DataError, match="label column 'kind' not in split 'train'"):
        find_column(columns, "kind", (), "label", "train")


def test_missing_dataset_path_is_named():
    with pytest.raises(DataError, match="dataset path './no/such/place' does not exist"):
        load_image_dataset("./no/such/place")


def test_local_accuracy_metric_and_compute_metrics(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert LocalAccuracy().compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2]) == {"accuracy": 0.75}
    compute = build_compute_metrics(3)
    logits = np.eye(3)[[0, 1, 2, 2]]
    prediction = type("P", (), {"predictions": logits, "label_ids": np.array([0, 1, 1, 2])})()
    assert compute(prediction) == {"accuracy": 0.75, "num_samples": 4}


def test_local_dataset_folder_loads(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    write_image_parquet(folder / "train-00000-of-00001.parquet", per_class=2)
    assert isinstance(load_image_dataset(str(folder))["train"], Dataset)


def test_a_corrupt_image_is_named_by_its_row_as_loaded_not_after_the_split(tmp_path):
    """The validation carve-out shuffles rows; the error names the rows of the file as the user has it."""
    from modeling_perceiver_study.data import open_image_dataset, split_off_validation

    path = write_image_parquet(tmp_path / "bad.parquet", per_class=10, corrupt_rows=(7, 31))
    opened = open_image_dataset(str(path))
    train, validation = split_off_validation(opened.splits, opened.label_column, 0.25, seed=0)
    found = []
    for name, split in (("train", train), ("validation", validation)):
        try:
            decode_split(split, "img", "label", 32, split_name=name)
        except DataError as error:
            found += [int(row) for row in str(error).split("loaded [")[1].split("]")[0].split(", ")]
    assert sorted(found) == [7, 31]
