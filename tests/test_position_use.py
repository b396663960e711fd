"""study/position_use.py: the token shuffle moves whole patches, moving positions with them leaves a Perceiver's
output unchanged (and leaving them does not), and the command scores a trained folder."""

import json

import pytest
import torch

from modeling_perceiver_study.augment import normalize
from study.position_use import accuracy, cross_attention_reads, positions_moved, shuffle_tokens
from study.position_use import main as position_use_main
from study.position_use_over_training import main as over_training_main
from tests.helpers import tiny_model, train_tiny


def test_shuffle_tokens_moves_whole_patches():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    assert torch.equal(shuffle_tokens(images, 4, torch.arange(4)), images)
    order = torch.tensor([3, 0, 2, 1])  # token m of the result is token order[m] of the input (2 x 2 grid)
    shuffled = shuffle_tokens(images, 4, order)
    patch = lambda tensor, index: tensor[:, :, 4 * (index // 2) : 4 * (index // 2) + 4, 4 * (index % 2) :][..., :4]  # noqa: E731
    for target, source in enumerate(order.tolist()):
        assert torch.equal(patch(shuffled, target), patch(images, source))


def test_moving_positions_with_the_tokens_leaves_the_output_unchanged():
    model = tiny_model(seed=1, input_patch_size=2).eval()
    pixels = torch.randn(3, 3, 32, 32)
    order = torch.randperm(16 * 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        natural = model(pixels).logits
        shuffled = model(shuffle_tokens(pixels, 2, order)).logits
        with positions_moved(model, order):
            moved = model(shuffle_tokens(pixels, 2, order)).logits
        restored = model(pixels).logits  # the patched method is gone after the block
    torch.testing.assert_close(moved, natural, atol=1e-5, rtol=1e-5)
    assert (shuffled - natural).abs().max() > 1e-3
    torch.testing.assert_close(restored, natural, atol=0, rtol=0)


def test_the_command_scores_a_trained_folder(synthetic_parquet, tmp_path, capsys):
    model_dir = tmp_path / "run"
    train_tiny(synthetic_parquet, model_dir, "--save_strategy", "no", "--config_overrides", "input_patch_size=4")
    output = tmp_path / "position_use.json"
    argv = ["--model_dir", str(model_dir), "--dataset_name", str(synthetic_parquet), "--output", str(output)]
    assert position_use_main([*argv, "--batch_size", "10"]) == 0
    results = json.loads(output.read_text())
    metrics = json.loads((model_dir / "metrics.json").read_text())
    accuracies = results["validation_accuracy"]
    assert results["num_samples"] == metrics["validation"]["num_samples"] == 24
    assert accuracies["natural"] == pytest.approx(metrics["validation"]["accuracy"], abs=1e-9)
    assert accuracies["tokens-and-positions"] == pytest.approx(accuracies["natural"], abs=1e-9)
    assert 0.0 <= accuracies["flip-averaged"] <= 1.0
    assert results["training_num_samples"] == 72
    assert 0.0 <= results["training_accuracy_without_augmentation"] <= 1.0
    config = json.loads((model_dir / "config.json").read_text())
    assert len(results["cross_attention_reads"]) == config["num_cross_attends"]
    reads = results["cross_attention_reads"][0]  # 8 x 8 tokens of 4 x 4 patches
    quartiles = reads["tokens_read_per_head_quartiles"]
    assert 1.0 <= quartiles[0] <= reads["tokens_read_per_head_mean"] <= quartiles[-1] <= 64.0
    assert 1 / 64 <= reads["largest_weight_mean"] <= 1.0
    assert reads["key_weight_norm_pixels"] > 0 and reads["value_weight_norm_positions"] > 0


def test_flip_averaging_scores_the_summed_logits_of_each_image_and_its_mirror():
    model = tiny_model(seed=2, input_patch_size=4).eval()
    images = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8)
    mean, std = [0.5] * 3, [0.25] * 3
    with torch.no_grad():
        batch = normalize(images, mean, std)
        labels = (model(batch).logits + model(batch.flip(-1)).logits).argmax(-1)
        mirrored_labels = model(batch.flip(-1)).logits.argmax(-1)
    score = dict(mean=mean, std=std, batch_size=4, bf16=False)
    assert accuracy(model, images, labels, arm="flip-averaged", **score) == 1.0
    assert accuracy(model, images.flip(-1), mirrored_labels, arm="natural", **score) == 1.0


def test_cross_attention_reads_counts_the_tokens_a_head_reads():
    """A head that attends to one token reads 1 token; one that attends to all alike reads all M."""
    model = tiny_model(seed=1, input_patch_size=4, num_cross_attends=2, num_blocks=2).eval()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    score = dict(mean=[0.5] * 3, std=[0.25] * 3, batch_size=3, bf16=False)
    layer = model.perceiver.encoder.cross_attends[0]
    with torch.no_grad():  # keys independent of the token: every weight 1/M
        layer.attention.k_proj.weight.zero_()
        layer.attention.k_proj.bias.zero_()
    reads = cross_attention_reads(model, images, **score)
    assert len(reads) == 2
    assert reads[0]["tokens_read_per_head_mean"] == pytest.approx(64.0, rel=1e-4)
    assert reads[0]["largest_weight_mean"] == pytest.approx(1 / 64, rel=1e-4)
    assert reads[0]["key_weight_norm_pixels"] == 0.0
    assert reads[1]["tokens_read_per_head_mean"] < 64.0


def test_the_command_names_a_missing_model_folder(tmp_path, capsys):
    assert position_use_main(["--model_dir", str(tmp_path / "absent"), "--dataset_name", str(tmp_path)]) == 2
    assert str(tmp_path / "absent") in capsys.readouterr().err


def test_position_use_is_tracked_over_every_checkpoint_a_run_kept(synthetic_parquet, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train_tiny(synthetic_parquet, run_dir, "--save_total_limit", "3", "--config_overrides", "input_patch_size=4")
    argv = ["--run_dir", str(run_dir), "--dataset_name", str(synthetic_parquet), "--batch_size", "10"]
    assert over_training_main(argv) == 0
    results = json.loads((run_dir / "position_use_over_training.json").read_text())
    rows = results["checkpoints"]
    assert [row["epoch"] for row in rows] == [1.0, 2.0]  # one checkpoint per epoch, earliest first
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert rows[-1]["natural"] == pytest.approx(metrics["validation"]["accuracy"], abs=1e-9)  # the final weights
    assert results["num_samples"] == 24 and 0.0 <= rows[0]["tokens-shuffled"] <= 1.0

    (tmp_path / "empty").mkdir()
    assert over_training_main(["--run_dir", str(tmp_path / "empty")]) == 2
    assert "holds no checkpoint-* folders" in capsys.readouterr().err
    (run_dir / "checkpoint-1" / "trainer_state.json").parent.mkdir()
    (run_dir / "checkpoint-1" / "trainer_state.json").write_text("{}")  # an interrupted save
    assert over_training_main(argv) == 2
    assert "checkpoint-1/trainer_state.json is not a Trainer checkpoint's state" in capsys.readouterr().err
