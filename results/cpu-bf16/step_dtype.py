"""Images/s of one training step (eager attention, AdamW, random images) in float32 and in bf16 autocast: is bf16
native on this CPU? Two warm-up steps, then the mean of three timed steps, for each precision in turn.

    OMP_NUM_THREADS=2 python results/cpu-bf16/step_dtype.py seed-convfree 128
    OMP_NUM_THREADS=2 python results/cpu-bf16/step_dtype.py cpu-small 256
"""

import sys
import time

import torch

from modeling_perceiver_study import PerceiverStudyForImageClassification
from modeling_perceiver_study.presets import load_preset

preset, batch = sys.argv[1], int(sys.argv[2])
model = PerceiverStudyForImageClassification(load_preset(preset, num_labels=10, attn_implementation="eager"))
optimizer = torch.optim.AdamW(model.parameters())
pixels, labels = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16 {native}")


def step(bf16: bool):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model(pixels, labels=labels).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()


for precision in ("fp32", "bf16"):
    step(precision == "bf16"), step(precision == "bf16")
    started = time.perf_counter()
    for _ in range(3):
        step(precision == "bf16")
    seconds = (time.perf_counter() - started) / 3
    print(preset, precision, f"{batch / seconds:.0f} images/s", flush=True)
