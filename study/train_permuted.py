"""Train a recipe on images whose tokens are scrambled by one fixed permutation: does the trained Perceiver use the
spatial order of its position features? (issue 16, target 3: docs/report.md section 4 at the recipe's own length.)

    python -m study.train_permuted configuration/recipes/seed-convfree.json --arm tokens-permuted \
        --dataset_name ../shared/data/cifar10 --output_dir outputs/seed-convfree-tokens-permuted

Arms (`--arm`), the same fixed permutation of the token grid for every image, in training and evaluation:
  tokens-permuted        token m holds the pixel values of token `order[m]` (whole patches for patch tokens, pixels
                         for pixel tokens); position features stay on the grid. Every place keeps a unique, fixed code,
                         but neighbouring patches no longer have similar codes: what the order of the codes is worth.
  tokens-and-positions   the same, with each token's position features moved with it: the natural image's set of
                         tokens, listed in another order, which a Perceiver cannot tell apart (a check, not a study).

Everything else is scripts/train.py's (flags after the recipe override it). The permutation is applied inside the
model's tokenizer, so the run folder's saved weights read permuted tokens only in this script: permutation.json
(written at the start) says so, and a rerun with another arm or seed into the same folder is refused.
"""

import sys

import torch

from modeling_perceiver_study.training import SetupError, build_model, parse_arguments, train
from study.records import record_run_settings, split_flags

ARMS = ("tokens-permuted", "tokens-and-positions")


def token_permutation(num_tokens: int, seed: int) -> torch.Tensor:
    """A fixed random order of the token grid: token m of a permuted image is token `order[m]` of the original."""
    return torch.randperm(num_tokens, generator=torch.Generator().manual_seed(seed))


def permute_tokens(model, order: torch.Tensor, move_positions: bool):
    """Make `model` read every image's tokens in `order`, with the position features left on the grid or moved with
    the tokens. The encoding's parameters (learned positions) stay where they are, so the weights save as usual."""
    if model.config.input_stem != "patches":
        raise SetupError(f"train_permuted permutes patch or pixel tokens; input_stem is {model.config.input_stem!r}")
    encoding = model.perceiver.position_encoding
    num_tokens = (model.config.image_size // model.config.input_patch_size) ** 2
    if len(order) != num_tokens:
        raise SetupError(f"the permutation has {len(order)} places, the token grid {num_tokens}")
    split_tokens = encoding.split_tokens

    def permuted_split_tokens(pixel_values):
        pixels, positions = split_tokens(pixel_values)  # (B, M, Fp), (M, Fs)
        index = order.to(pixels.device)
        return pixels[:, index], positions[index] if move_positions else positions

    encoding.split_tokens = permuted_split_tokens
    return model


def split_arm_flags(argv: list[str]) -> tuple[str, int, list[str]]:
    """(arm, permutation seed, the remaining scripts/train.py arguments)."""
    values, rest = split_flags(argv, ("--arm", "--permutation_seed"))
    arm, seed = values.get("--arm"), values.get("--permutation_seed", "0")
    if arm not in ARMS and not {"-h", "--help"} & set(rest):
        raise SetupError(f"--arm must be one of {list(ARMS)}, got {arm!r}")
    try:
        return arm, int(seed), rest
    except ValueError:
        raise SetupError(f"--permutation_seed must be an integer, got {seed!r}") from None


def main(argv: list[str] | None = None) -> dict:
    arm, seed, rest = split_arm_flags(list(sys.argv[1:] if argv is None else argv))
    model_args, data_args, training_args = parse_arguments(rest)

    def build_permuted(model_args, label_names):
        model = build_model(model_args, label_names)
        num_tokens = (model.config.image_size // model.config.input_patch_size) ** 2
        return permute_tokens(model, token_permutation(num_tokens, seed), move_positions=arm == "tokens-and-positions")

    permutation = {
        "arm": arm,
        "permutation_seed": seed,
        "note": "the saved weights read tokens under this permutation; evaluate them with this script's model",
    }
    record_run_settings(training_args, "permutation.json", permutation, "permutation")
    return train(model_args, data_args, training_args, model_builder=build_permuted)


if __name__ == "__main__":
    try:
        main()
    except (SetupError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
