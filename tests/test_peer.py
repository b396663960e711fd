"""transformers' Perceiver trained through this repository's pipeline (study/train_peer.py)."""

import json

import pytest
import torch
from transformers import AutoModelForImageClassification

from study.peers import build_transformers_peer, parse_sizes
from study.train_peer import main as train_peer
from tests.conftest import SYNTHETIC_LABELS
from tests.helpers import TINY_TRAINING_ARGS

SIZES = "num_latents=8,d_latents=32,num_blocks=1,num_self_attends_per_block=1,num_cross_attention_heads=1"


@pytest.mark.parametrize("variant", ["fourier", "learned"])
def test_the_peer_trains_through_the_pipeline_and_its_folder_loads(variant, synthetic_parquet, tmp_path):
    output_dir = tmp_path / variant
    argv = ["--peer", variant, "--peer_sizes", SIZES, "--dataset_name", str(synthetic_parquet)]
    metrics = train_peer([*argv, "--output_dir", str(output_dir), *TINY_TRAINING_ARGS, "--num_train_epochs", "1"])

    assert 0.0 <= metrics["validation"]["accuracy"] <= 1.0 and metrics["train"]["train_loss"] > 0
    assert json.loads((output_dir / "peer.json").read_text())["peer"] == variant
    config = json.loads((output_dir / "config.json").read_text())
    assert config["model_type"] == "perceiver" and config["num_latents"] == 8 and config["image_size"] == 32
    model = AutoModelForImageClassification.from_pretrained(output_dir).eval()
    assert type(model).__name__.endswith(variant.capitalize())
    assert [model.config.id2label[i] for i in range(len(SYNTHETIC_LABELS))] == list(SYNTHETIC_LABELS)
    with torch.no_grad():
        assert model(pixel_values=torch.zeros(2, 3, 32, 32)).logits.shape == (2, len(SYNTHETIC_LABELS))


def test_peer_sizes_are_checked_by_name_and_type():
    assert parse_sizes("num_latents=64,d_latents=128") == {"num_latents": 64, "d_latents": 128}
    with pytest.raises(ValueError, match=r"'num_latnets' is not one of"):
        parse_sizes("num_latnets=64")
    with pytest.raises(ValueError, match=r"d_latents='wide' is not an integer"):
        parse_sizes("d_latents=wide")
    with pytest.raises(ValueError, match=r"peer 'conv': expected one of \['fourier', 'learned'\]"):
        build_transformers_peer("conv", ["a", "b"])


def test_train_peer_without_peer_is_refused(synthetic_parquet, tmp_path):
    from modeling_perceiver_study.training import SetupError

    with pytest.raises(SetupError, match="--peer is required"):
        train_peer(["--dataset_name", str(synthetic_parquet), "--output_dir", str(tmp_path)])


def test_a_rerun_with_another_peer_is_refused_before_the_data_is_read(synthetic_parquet, tmp_path):
    from modeling_perceiver_study.training import SetupError

    output_dir = tmp_path / "run"
    argv = ["--dataset_name", str(synthetic_parquet), "--output_dir", str(output_dir), *TINY_TRAINING_ARGS]
    first = train_peer(["--peer", "fourier", "--peer_sizes", SIZES, *argv, "--num_train_epochs", "1"])
    # The same command again is a no-op; another size or variant is refused, naming both.
    assert train_peer(["--peer", "fourier", "--peer_sizes", SIZES, *argv, "--num_train_epochs", "1"]) == first
    with pytest.raises(SetupError, match=r"holds a run of another peer .*'num_latents': 8.*'num_latents': 16"):
        train_peer(["--peer", "fourier", "--peer_sizes", SIZES.replace("num_latents=8", "num_latents=16"), *argv])
    with pytest.raises(SetupError, match=r"--peer 'conv': expected one of \['fourier', 'learned'\]"):
        train_peer(
            ["--peer", "conv", "--dataset_name", str(tmp_path / "absent.parquet"), "--output_dir", str(tmp_path)]
        )
