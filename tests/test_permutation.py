import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from study.permutation import (
    ARMS,
    PermutedFourierPositionEncoding,
    SmallConvNet,
    permute_pixels,
    pixel_permutation,
)
from tests.helpers import tiny_model

ROOT = Path(__file__).resolve().parent.parent


def images(batch=2, size=32):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(3))


def test_permute_pixels_moves_whole_pixels_by_one_fixed_order():
    order = pixel_permutation(4, 4, seed=0)
    image = torch.arange(2 * 16, dtype=torch.float32).reshape(1, 2, 4, 4)
    permuted = permute_pixels(image, order)
    assert torch.equal(permuted.reshape(2, 16), image.reshape(2, 16)[:, order])  # both channels, same order
    assert torch.equal(order, pixel_permutation(4, 4, seed=0)) and not torch.equal(order, torch.arange(16))


def test_perceiver_is_unchanged_when_positions_travel_with_permuted_pixels():
    """The paper's permuted setting is an exact symmetry of the Perceiver with pixel tokens: the same set of
    (value, position) tokens, listed in another order."""
    model = tiny_model(input_patch_size=1)
    x = images()
    order = pixel_permutation(32, 32, seed=0)
    with torch.no_grad():
        natural = model(x).logits
        model.perceiver.position_encoding = PermutedFourierPositionEncoding(model.perceiver.position_encoding, order)
        permuted = model(permute_pixels(x, order)).logits
    torch.testing.assert_close(permuted, natural, rtol=1e-4, atol=1e-5)


def test_permuted_pixels_on_grid_positions_change_the_perceivers_output():
    model = tiny_model(input_patch_size=1)
    x = images()
    with torch.no_grad():
        natural = model(x).logits
        scrambled = model(permute_pixels(x, pixel_permutation(32, 32, seed=0))).logits
    assert (natural - scrambled).abs().max() > 1e-4  # ten times the tolerance of the exact symmetry above


def test_positions_cannot_follow_pixels_into_patch_tokens():
    model = tiny_model(input_patch_size=2)
    with pytest.raises(ValueError, match="pixel tokens"):
        PermutedFourierPositionEncoding(model.perceiver.position_encoding, pixel_permutation(16, 16, 0))


def test_convnet_classifies_a_batch():
    assert SmallConvNet(num_labels=4)(images()).shape == (2, 4)


@pytest.mark.parametrize(
    ("preset", "message"),
    [
        ("seed-conv", "preset 'seed-conv' has input_stem 'conv'; the permutation test needs raw pixel tokens"),
        ("huge", "unknown preset 'huge'"),
    ],
)
def test_permutation_script_refuses_presets_it_cannot_test(preset, message, tmp_path, capsys):
    from study.permutation import main

    assert main(["--dataset_name", str(tmp_path / "never-read"), "--preset", preset]) == 2
    assert message in capsys.readouterr().err


def test_permutation_script_trains_every_arm_and_resumes(synthetic_parquet, tmp_path):
    command = [
        sys.executable,
        "-m",
        "study.permutation",
        "--dataset_name",
        str(synthetic_parquet),
        "--preset",
        "tiny",
        "--epochs",
        "1",
        "--work_dir",
        str(tmp_path / "arms"),
        "--output",
        str(tmp_path / "permutation.json"),
    ]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True)
    result = json.loads((tmp_path / "permutation.json").read_text())
    assert list(result["arms"]) == list(ARMS)
    for arm in result["arms"].values():
        assert 0.0 <= arm["validation_accuracy"] <= 1.0 and arm["history"]
    # A rerun reuses finished arms instead of training them again.
    finished = (tmp_path / "arms" / "convnet.json").read_text()
    rerun = subprocess.run(command, check=True, cwd=ROOT, capture_output=True, text=True)
    assert "[convnet]" not in rerun.stdout and (tmp_path / "arms" / "convnet.json").read_text() == finished


def test_missing_dataset_is_a_clear_error(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "study.permutation", "--dataset_name", str(tmp_path / "absent")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 2
    assert f"dataset path '{tmp_path / 'absent'}' does not exist" in completed.stderr
