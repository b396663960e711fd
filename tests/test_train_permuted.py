"""Training on token-permuted images (study/train_permuted.py): the permutation reaches the model's tokens, moving
the positions with the tokens leaves a Perceiver's output unchanged, and runs are recorded and refused like others."""

import json

import pytest
import torch

from modeling_perceiver_study.modeling_perceiver_study import patches_to_tokens
from modeling_perceiver_study.training import SetupError
from study.train_permuted import main as train_permuted
from study.train_permuted import permute_tokens, token_permutation
from tests.helpers import TINY_TRAINING_ARGS, tiny_model


def test_permuted_tokens_change_the_output_unless_their_positions_move_with_them():
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    natural = tiny_model(seed=4, input_patch_size=4)
    order = token_permutation(64, seed=0)
    assert sorted(order.tolist()) == list(range(64)) and order.tolist() != list(range(64))
    with torch.no_grad():
        expected = natural(x).logits
        moved = permute_tokens(tiny_model(seed=4, input_patch_size=4), order, move_positions=True)
        torch.testing.assert_close(moved(x).logits, expected, atol=1e-5, rtol=1e-5)  # the same set of tokens
        left = permute_tokens(tiny_model(seed=4, input_patch_size=4), order, move_positions=False)
        assert not torch.allclose(left(x).logits, expected, atol=1e-3)
        pixels, positions = left.perceiver.position_encoding.split_tokens(x)
        torch.testing.assert_close(pixels[:, 5], patches_to_tokens(x, 4)[:, order[5]])  # whole patches move
        torch.testing.assert_close(positions, natural.perceiver.position_encoding.token_positions(x))


def test_a_permuted_run_trains_records_its_arm_and_refuses_another(synthetic_parquet, tmp_path):
    output_dir = tmp_path / "run"
    argv = ["--dataset_name", str(synthetic_parquet), "--output_dir", str(output_dir), *TINY_TRAINING_ARGS]
    metrics = train_permuted(["--arm", "tokens-permuted", *argv, "--num_train_epochs", "1"])
    assert 0.0 <= metrics["validation"]["accuracy"] <= 1.0
    recorded = json.loads((output_dir / "permutation.json").read_text())
    assert recorded["arm"] == "tokens-permuted" and recorded["permutation_seed"] == 0
    assert (output_dir / "model.safetensors").is_file()
    with pytest.raises(SetupError, match=r"holds a run of another permutation .*'permutation_seed': 0.*: 3"):
        train_permuted(["--arm", "tokens-permuted", "--permutation_seed", "3", *argv])
    with pytest.raises(SetupError, match=r"--arm must be one of \['tokens-permuted', 'tokens-and-positions'\]"):
        train_permuted(["--arm", "pixels", *argv])
