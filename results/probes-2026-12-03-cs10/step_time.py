"""Parameters and time of one training step (forward, backward, AdamW) of the cpu-small model and the variants of
this probe round: batch 256, float32, eager (not compiled), one thread. Five rounds, each timing every variant (the
fastest of three steps, after one warm-up step per variant before the first round); each variant's cost against the
base is the median of its five per-round ratios, with their range.

    python results/probes-2026-12-03-cs10/step_time.py > results/probes-2026-12-03-cs10/step_time.json

`--variants cs80-white` times instead the capacity levers weighed on top of whitened patches for the 80-epoch runs
(results/probes-2026-12-03-cs80/step_time.json), each against whitened patches alone; `--variants latents` the
recipe's model with 12, 16 and 32 latents instead of 8 (step_time_latents.json here); `--variants iterative` 2 and 4
cross-attends, with the latent blocks' weights shared or not (step_time_iterative.json here).
"""

import argparse
import json
import statistics
import time

import torch

from modeling_perceiver_study import PerceiverStudyForImageClassification
from modeling_perceiver_study.presets import load_preset

VARIANTS = {
    "base": {},
    "h32": {"num_cross_attention_heads": 32},
    "h32qk256": {"num_cross_attention_heads": 32, "cross_attention_qk_dim": 256},
    "h64qk512": {"num_cross_attention_heads": 64, "cross_attention_qk_dim": 512},
    "h64qk256": {"num_cross_attention_heads": 64, "cross_attention_qk_dim": 256},
    "h128qk512": {"num_cross_attention_heads": 128, "cross_attention_qk_dim": 512},
    "h128qk1024": {"num_cross_attention_heads": 128, "cross_attention_qk_dim": 1024},
    "xa2": {"num_blocks": 2, "num_cross_attends": 2, "num_self_attends_per_block": 2, "share_block_weights": False},
    "sa8": {"num_self_attends_per_block": 8},
}
WHITE = {"patch_whitening": True}
CS80_WHITE_VARIANTS = {
    "base": WHITE,
    "mlp4": {**WHITE, "self_attention_widening_factor": 4},
    "xmlp4": {**WHITE, "cross_attention_widening_factor": 4},
    "v256": {**WHITE, "cross_attention_v_dim": 256},
    "h32v256": {**WHITE, "num_cross_attention_heads": 32, "cross_attention_v_dim": 256},
    "l12": {**WHITE, "num_latents": 12},
    "d160": {**WHITE, "latent_dim": 160, "num_self_attention_heads": 5},
}
LATENT_VARIANTS = {"base": {}, "l12": {"num_latents": 12}, "l16": {"num_latents": 16}, "l32": {"num_latents": 32}}
# The paper's iterative attention: 2 or 4 cross-attends, latent blocks with weights of their own or shared by all.
ITERATIVE_BLOCKS = {"num_blocks": 2, "num_cross_attends": 2, "num_self_attends_per_block": 2}
ITERATIVE_VARIANTS = {
    "base": {},
    "xa2": {**ITERATIVE_BLOCKS, "share_block_weights": False},
    "xa2shared": {**ITERATIVE_BLOCKS, "share_block_weights": True},
    "xa4shared": {
        "num_blocks": 4,
        "num_cross_attends": 4,
        "num_self_attends_per_block": 1,
        "share_block_weights": True,
    },
}
VARIANT_SETS = {
    "cs10": VARIANTS,
    "cs80-white": CS80_WHITE_VARIANTS,
    "latents": LATENT_VARIANTS,
    "iterative": ITERATIVE_VARIANTS,
}
ROUNDS, STEPS_PER_ROUND = 5, 3


def step_seconds(model, optimizer, pixel_values, labels, steps) -> float:
    """The fastest of `steps` training steps."""
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        model(pixel_values=pixel_values, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", choices=sorted(VARIANT_SETS), default="cs10")
    variants = VARIANT_SETS[parser.parse_args().variants]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    pixel_values, labels = torch.randn(256, 3, 32, 32), torch.randint(0, 10, (256,))
    models = {}
    for name, overrides in variants.items():
        model = PerceiverStudyForImageClassification(load_preset("cpu-small", num_labels=10, **overrides))
        optimizer = torch.optim.AdamW(model.parameters())
        step_seconds(model, optimizer, pixel_values, labels, steps=1)  # warm-up
        models[name] = (model, optimizer)
    # Round-robin: this VM's speed drifts by a third within minutes, so every round times every variant, each
    # variant's cost is taken against the same round's base, and the rounds' median and range are reported.
    seconds = {name: [] for name in variants}
    for _ in range(ROUNDS):
        for name, (model, optimizer) in models.items():
            seconds[name].append(step_seconds(model, optimizer, pixel_values, labels, steps=STEPS_PER_ROUND))
    result = {}
    for name, overrides in variants.items():
        ratios = sorted(mine / base for mine, base in zip(seconds[name], seconds["base"]))
        result[name] = {
            "config_overrides": overrides,
            "parameters": sum(parameter.numel() for parameter in models[name][0].parameters()),
            "step_seconds": [round(value, 4) for value in seconds[name]],
            "step_time_vs_base": round(statistics.median(ratios), 2),
            "step_time_vs_base_range": [round(ratios[0], 2), round(ratios[-1], 2)],
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
