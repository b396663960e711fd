"""Train transformers' Perceiver through this repository's own data pipeline, augmentation, schedule and Trainer
(issue 16's peer comparison): everything as `scripts/train.py` does, except the model.

    python -m study.train_peer configuration/recipes/cpu-small.json --peer fourier \
        --peer_sizes num_latents=64,d_latents=128,num_self_attends_per_block=4 --dataset_name ../shared/data/cifar10

`--peer` picks `fourier` (PerceiverForImageClassificationFourier) or `learned` (...Learned); `--peer_sizes` sets
PerceiverConfig fields (study/peers.py lists them). Every other flag is scripts/train.py's. The run folder gets the
same files as a scripts/train.py run, plus peer.json (the variant and sizes, written at the start).
"""

import sys

from modeling_perceiver_study.training import SetupError, build_model, parse_arguments, train
from study.peers import PEER_CLASSES, build_transformers_peer, parse_sizes
from study.records import record_run_settings, split_flags


def split_peer_flags(argv: list[str]) -> tuple[str, dict, list[str]]:
    """(variant, sizes, the remaining scripts/train.py arguments)."""
    values, rest = split_flags(argv, ("--peer", "--peer_sizes"))
    variant, sizes = values.get("--peer"), parse_sizes(values["--peer_sizes"]) if "--peer_sizes" in values else {}
    if variant is None and not {"-h", "--help"} & set(rest):
        raise SetupError("--peer is required: fourier or learned")
    if variant is not None and variant not in PEER_CLASSES:
        raise SetupError(f"--peer {variant!r}: expected one of {sorted(PEER_CLASSES)}")
    return variant, sizes, rest


def main(argv: list[str] | None = None) -> dict:
    variant, sizes, rest = split_peer_flags(list(sys.argv[1:] if argv is None else argv))
    model_args, data_args, training_args = parse_arguments(rest)

    def build_peer(model_args, label_names):
        image_size = build_model(model_args, config_only=True).image_size  # the size the data is decoded to
        return build_transformers_peer(variant, label_names, image_size=image_size, **sizes)

    record_run_settings(training_args, "peer.json", {"peer": variant, "sizes": sizes}, "peer")
    return train(model_args, data_args, training_args, model_builder=build_peer)


if __name__ == "__main__":
    try:
        main()
    except (SetupError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
