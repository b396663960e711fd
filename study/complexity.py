#!/usr/bin/env python
"""Complexity experiment: training-step time and peak memory as the input grows, for the Perceiver and for a plain
Transformer over the same pixel tokens (same width and depth), and as the number of latents grows.

    python -m study.complexity --output results/complexity.json        # measure (minutes on 2 CPU cores)
    python -m study.complexity --plot results/complexity.json --figure docs/figures/complexity.png

Each measurement runs in a fresh process, so its peak resident memory is its own, capped at 12 GiB (past that, the
model is reported out of memory). `perceiver` and `transformer` use PyTorch's SDPA (memory-efficient attention), so the
Transformer's cost is its O(M^2) compute; `transformer-eager` materialises the M x M attention matrix, as plain
attention does, and shows where that runs out of memory.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from modeling_perceiver_study.files import write_json_atomic
from study.records import run_record
from study.report import plot_complexity

CHECKOUT = Path(__file__).resolve().parent.parent  # `python -m study.complexity` runs from here

# The architecture compared: every pixel a token, 1 cross-attend + 4 self-attends (5 layers) of width 128.
BASE = {
    "image_size": 32,
    "input_patch_size": 1,
    "num_latents": 64,
    "latent_dim": 128,
    "num_blocks": 1,
    "num_cross_attends": 1,
    "num_self_attends_per_block": 4,
    "num_cross_attention_heads": 1,
    "num_self_attention_heads": 4,
    "cross_attention_widening_factor": 1,
    "self_attention_widening_factor": 2,
    "num_fourier_bands": 16,
    "fourier_max_resolution": 32,
    "num_labels": 10,
}


def current_rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


MEMORY_CAP_GIB = 12  # a measurement process may use this much; past it, the model counts as out of memory


def measure(model_name: str, size: int, num_latents: int, batch: int, repeats: int, depth: int | None = None) -> dict:
    """One measurement, in this (fresh) process: median seconds of forward + backward, and peak memory added.
    `depth`: latent self-attention layers (default BASE's 4)."""
    cap = MEMORY_CAP_GIB * 1024**3
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))  # fail an allocation cleanly instead of invoking the OOM killer
    import torch

    from modeling_perceiver_study import PerceiverStudyConfig, PerceiverStudyForImageClassification
    from modeling_perceiver_study.modeling_perceiver_study import eager_attention_forward
    from study.baselines import PixelTransformer, sdpa_attention

    torch.manual_seed(0)
    depth = depth or BASE["num_self_attends_per_block"]
    fields = {**BASE, "num_latents": num_latents, "num_self_attends_per_block": depth}
    config = PerceiverStudyConfig(**fields, attn_implementation="sdpa")
    if model_name == "perceiver":
        model = PerceiverStudyForImageClassification(config)

        def step(x, y):
            model(x, labels=y).loss.backward()
    else:
        model = PixelTransformer(config)
        attention_fn = sdpa_attention if model_name == "transformer" else eager_attention_forward

        def step(x, y):
            model(x, labels=y, attention_fn=attention_fn)[0].backward()

    pixels = torch.randn(batch, 3, size, size)
    labels = torch.randint(0, 10, (batch,))
    baseline_kib = current_rss_kib()
    times = []
    try:
        # One warm-up step, then at least `repeats` steps and at least a second of them (short steps are noisy).
        while len(times) < repeats + 1 or (sum(times[1:]) < 1.0 and len(times) < 50):
            started = time.perf_counter()
            step(pixels, labels)
            times.append(time.perf_counter() - started)
            model.zero_grad(set_to_none=True)
    except (RuntimeError, MemoryError) as error:
        return {
            "model": model_name,
            "image_size": size,
            "pixels": size * size,
            "num_latents": num_latents,
            "skipped": f"out of memory under a {MEMORY_CAP_GIB} GiB cap ({str(error).splitlines()[0][:120]})",
        }
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "model": model_name,
        "image_size": size,
        "pixels": size * size,
        "num_latents": num_latents,
        "depth": depth,
        "batch": batch,
        "step_seconds": statistics.median(times[1:]),
        "peak_memory_mib": max(peak_kib - baseline_kib, 0) / 1024,
        "steps_timed": len(times) - 1,
    }


def run_measurement(model_name, size, num_latents, batch, repeats, timeout, depth=None) -> dict:
    command = [sys.executable, "-m", "study.complexity", "--measure", model_name, str(size), str(num_latents)]
    command += [str(batch), str(repeats), str(depth or BASE["num_self_attends_per_block"])]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=CHECKOUT)
    except subprocess.TimeoutExpired:
        return {
            "model": model_name,
            "image_size": size,
            "pixels": size * size,
            "num_latents": num_latents,
            "skipped": f"over the {timeout} s limit",
        }
    if result.returncode != 0:
        reason = "killed (out of memory)" if result.returncode in (-9, 137) else result.stderr.strip()[-300:]
        return {
            "model": model_name,
            "image_size": size,
            "pixels": size * size,
            "num_latents": num_latents,
            "skipped": reason,
        }
    return json.loads(result.stdout.strip().splitlines()[-1])


def fitted_exponent(points) -> float | None:
    """Slope of log(seconds) against log(x): the exponent of a power law through the points."""
    import numpy as np

    points = [(x, y) for x, y in points if y]
    if len(points) < 2:
        return None
    xs, ys = zip(*points)
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def run_all(args) -> dict:
    import torch

    rows = []
    for size in args.sizes:
        for model_name in ("perceiver", "transformer", "transformer-eager"):
            row = run_measurement(model_name, size, BASE["num_latents"], args.batch, args.repeats, args.timeout)
            print(json.dumps(row), flush=True)
            rows.append(row)
    latent_rows = []
    for num_latents in args.latents:
        row = run_measurement("perceiver", args.latent_sweep_size, num_latents, args.batch, args.repeats, args.timeout)
        print(json.dumps(row), flush=True)
        latent_rows.append(row)

    def series(model_name, key):
        return [(r["pixels"], r.get(key)) for r in rows if r["model"] == model_name and "skipped" not in r]

    return {
        **run_record("study.complexity"),
        "threads": torch.get_num_threads(),
        "architecture": BASE,
        "measure": "forward + backward of one training batch (no optimizer), median of repeats after a warm-up",
        "by_input_size": rows,
        "by_latents": latent_rows,
        "fitted_exponents": {
            "perceiver_time_vs_pixels": fitted_exponent(series("perceiver", "step_seconds")),
            "transformer_time_vs_pixels": fitted_exponent(series("transformer", "step_seconds")),
            "perceiver_memory_vs_pixels": fitted_exponent(series("perceiver", "peak_memory_mib")),
            "transformer_memory_vs_pixels": fitted_exponent(series("transformer", "peak_memory_mib")),
            "transformer_eager_time_vs_pixels": fitted_exponent(series("transformer-eager", "step_seconds")),
            "transformer_eager_memory_vs_pixels": fitted_exponent(series("transformer-eager", "peak_memory_mib")),
            "perceiver_time_vs_latents": fitted_exponent(
                [(r["num_latents"], r.get("step_seconds")) for r in latent_rows if "skipped" not in r]
            ),
        },
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="results/complexity.json", help="Where the measurements go (JSON).")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 96, 128])
    parser.add_argument("--latents", type=int, nargs="+", default=[32, 64, 128, 256, 512])
    parser.add_argument("--latent_sweep_size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=600, help="Seconds one measurement may take.")
    parser.add_argument("--plot", default=None, help="Only draw the figure from this results file.")
    parser.add_argument("--figure", default="docs/figures/complexity.png")
    parser.add_argument("--measure", nargs=6, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        model_name, size, num_latents, batch, repeats, depth = args.measure
        print(json.dumps(measure(model_name, int(size), int(num_latents), int(batch), int(repeats), int(depth))))
        return 0
    if args.plot:
        plot_complexity(args.plot, args.figure)
        return 0
    results = run_all(args)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, results)
    plot_complexity(output, args.figure)
    print(json.dumps(results["fitted_exponents"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
