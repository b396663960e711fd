"""Parameters and time of one training step (forward, backward, AdamW) of the cpu-small model and the variants of
this probe round: batch 256, float32, eager (not compiled), one thread, the fastest of seven steps after a warm-up step.

    python results/probes-2026-12-03-cs10/step_time.py > results/probes-2026-12-03-cs10/step_time.json
"""

import json
import time

import torch

from modeling_perceiver_study import PerceiverStudyForImageClassification
from modeling_perceiver_study.presets import load_preset

VARIANTS = {
    "base": {},
    "h32": {"num_cross_attention_heads": 32},
    "h32qk256": {"num_cross_attention_heads": 32, "cross_attention_qk_dim": 256},
    "h64qk512": {"num_cross_attention_heads": 64, "cross_attention_qk_dim": 512},
    "xa2": {"num_blocks": 2, "num_cross_attends": 2, "num_self_attends_per_block": 2, "share_block_weights": False},
    "sa8": {"num_self_attends_per_block": 8},
}


def step_seconds(model, pixel_values, labels, steps=8) -> float:
    optimizer = torch.optim.AdamW(model.parameters())
    times = []
    for _ in range(steps):
        started = time.perf_counter()
        model(pixel_values=pixel_values, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    return min(times[1:])


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    pixel_values, labels = torch.randn(256, 3, 32, 32), torch.randint(0, 10, (256,))
    result = {}
    for name, overrides in VARIANTS.items():
        model = PerceiverStudyForImageClassification(load_preset("cpu-small", num_labels=10, **overrides))
        seconds = step_seconds(model, pixel_values, labels)
        result[name] = {
            "config_overrides": overrides,
            "parameters": sum(parameter.numel() for parameter in model.parameters()),
            "step_seconds": round(seconds, 4),
        }
    base = result["base"]["step_seconds"]
    for entry in result.values():
        entry["step_time_vs_base"] = round(entry["step_seconds"] / base, 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
