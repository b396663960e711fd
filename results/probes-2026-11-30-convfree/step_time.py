"""Images/s of one training step of `seed-convfree` with config overrides (eager attention, bf16 autocast, batch 128,
AdamW): a one-minute check of what a probe would cost before running it. Four timed steps after two warm-up steps.

    python results/probes-2026-11-30-convfree/step_time.py input_patch_size=2 num_cross_attention_heads=16
"""

import sys
import time

import torch

from modeling_perceiver_study import PerceiverStudyForImageClassification
from modeling_perceiver_study.presets import load_preset

overrides = {key: int(value) for key, value in (item.split("=") for item in sys.argv[1:])}
config = load_preset("seed-convfree", num_labels=10, attn_implementation="eager", **overrides)
model = PerceiverStudyForImageClassification(config)
optimizer = torch.optim.AdamW(model.parameters())
pixels, labels = torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))


def step():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(pixels, labels=labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


step(), step()
started = time.perf_counter()
for _ in range(4):
    step()
seconds = (time.perf_counter() - started) / 4
print(overrides, f"{sum(p.numel() for p in model.parameters()):,} parameters", f"{128 / seconds:.0f} images/s")
