#!/usr/bin/env python
"""Depth decoupled from input size: what a latent layer costs at each input size, and what depth buys in accuracy.

    python -m study.depth cost --output results/study/depth-cost.json                  # ~10 min on 2 CPU cores
    python -m study.depth accuracy --dataset_name ../shared/data/cifar10 \
        --output results/study/depth-accuracy.json                                      # ~15 min

`cost`: the training step (forward + backward) of study.complexity's pixel-token Perceiver, each measurement in a fresh
process, at latent depths x input sizes. The paper's claim is that the two are separable: a latent layer costs the same
whatever the input size (it sees only the N latents), and the input's cost (the cross-attend, O(M N)) does not grow
with depth. So the step time fits t = a + b M + c L, and an interaction term d M L adds nothing. The JSON holds every
measurement, both fits, and each depth's cost per pixel and each size's cost per layer.

`accuracy`: the cpu-small preset (4 x 4 patch tokens, 8 latents of 128) at 1, 2, 4 and 8 latent layers, trained by the
same training code for the same epochs, two seeds each (the seed sets initialisation and data order).
"""

import argparse
import json
import sys
from pathlib import Path

from modeling_perceiver_study.files import write_json_atomic
from study.complexity import BASE, run_measurement
from study.records import run_record
from study.short_runs import RECIPE_NOTE, train_variant

DEPTHS = (1, 2, 4, 8)
SIZES = (32, 48, 64)  # pixel tokens: M = 1,024, 2,304 and 4,096


def least_squares(rows, columns):
    """Coefficients and R^2 of step_seconds ~ columns (functions of a row)."""
    import numpy as np

    design = np.array([[column(row) for column in columns] for row in rows], dtype=float)
    target = np.array([row["step_seconds"] for row in rows])
    coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coefficients
    r_squared = 1.0 - float(residual @ residual) / float(((target - target.mean()) ** 2).sum())
    return [float(c) for c in coefficients], r_squared


def slope(points) -> float:
    import numpy as np

    xs, ys = zip(*points)
    return float(np.polyfit(xs, ys, 1)[0])


def measure_cost(depths, sizes, batch, repeats, timeout) -> dict:
    rows = []
    for size in sizes:
        for depth in depths:
            row = run_measurement("perceiver", size, BASE["num_latents"], batch, repeats, timeout, depth=depth)
            print(json.dumps(row), flush=True)
            rows.append(row)
    measured = [row for row in rows if "skipped" not in row]
    additive, additive_r2 = least_squares(measured, [lambda r: 1.0, lambda r: r["pixels"], lambda r: r["depth"]])
    interaction, interaction_r2 = least_squares(
        measured,
        [lambda r: 1.0, lambda r: r["pixels"], lambda r: r["depth"], lambda r: r["pixels"] * r["depth"]],
    )
    per_layer = {
        size: slope([(r["depth"], r["step_seconds"]) for r in measured if r["image_size"] == size]) for size in sizes
    }
    per_pixel = {
        depth: slope([(r["pixels"], r["step_seconds"]) for r in measured if r["depth"] == depth]) for depth in depths
    }
    largest_depth, largest_size = max(depths), max(sizes)
    interaction_share = (
        interaction[3]
        * largest_size**2
        * largest_depth
        / next(r["step_seconds"] for r in measured if r["depth"] == largest_depth and r["image_size"] == largest_size)
    )
    return {
        "architecture": {**BASE, "num_self_attends_per_block": "varied"},
        "measure": "forward + backward of one training batch (no optimizer), median of repeats after a warm-up",
        "batch": batch,
        "rows": rows,
        "additive_fit": {"seconds": additive[0], "per_pixel": additive[1], "per_layer": additive[2], "r2": additive_r2},
        "interaction_fit": {
            "seconds": interaction[0],
            "per_pixel": interaction[1],
            "per_layer": interaction[2],
            "per_pixel_layer": interaction[3],
            "r2": interaction_r2,
            "interaction_share_of_largest_step": interaction_share,
        },
        "seconds_per_layer_by_image_size": {str(k): v for k, v in per_layer.items()},
        "seconds_per_pixel_by_depth": {str(k): v for k, v in per_pixel.items()},
    }


# ---------------------------------------------------------------------------------------------------------------------
# Accuracy against depth


def train_depth(dataset_name, depth, seed, epochs, work_dir) -> dict:
    flags = ["--config_overrides", f"num_self_attends_per_block={depth}"]
    run = train_variant(dataset_name, f"depth{depth}-seed{seed}", flags, seed, epochs, work_dir)
    return {"depth": depth, **run}


def measure_accuracy(dataset_name, depths, seeds, epochs, work_dir) -> dict:
    import statistics

    runs = [train_depth(dataset_name, depth, seed, epochs, work_dir) for depth in depths for seed in seeds]
    by_depth = {}
    for depth in depths:
        accuracies = [run["validation_accuracy"] for run in runs if run["depth"] == depth]
        by_depth[str(depth)] = {
            "mean": statistics.mean(accuracies),
            "range": [min(accuracies), max(accuracies)],
            "train_subset_mean": statistics.mean(run["train_subset_accuracy"] for run in runs if run["depth"] == depth),
        }
    return {
        "preset": "cpu-small",
        "recipe": RECIPE_NOTE,
        "epochs": epochs,
        "seeds": list(seeds),
        "runs": runs,
        "by_depth": by_depth,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=("cost", "accuracy"))
    parser.add_argument("--output", required=True, help="Where the results go (JSON).")
    parser.add_argument("--depths", type=int, nargs="+", default=list(DEPTHS))
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=int, default=600, help="Seconds one cost measurement may take.")
    parser.add_argument("--dataset_name", default="uoft-cs/cifar10")
    parser.add_argument("--epochs", type=float, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    parser.add_argument("--work_dir", default="outputs/study-depth", help="Training runs (reruns skip finished ones).")
    args = parser.parse_args(argv)
    if args.part == "cost":
        results = measure_cost(args.depths, args.sizes, args.batch, args.repeats, args.timeout)
    else:
        results = measure_accuracy(args.dataset_name, args.depths, args.seeds, args.epochs, args.work_dir)
    results = {**run_record("study.depth"), **results}
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(output, results)
    print(json.dumps({key: value for key, value in results.items() if key not in ("rows", "runs")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
