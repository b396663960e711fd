#!/usr/bin/env python
"""Latent-size ablation: the cpu-small recipe at a fixed training budget (epochs) for several latent counts.

    python -m study.ablate_latents --dataset_name ../shared/data/cifar10 --latents 8 16 32 64 128 --epochs 2 \
        --output results/study/latents.json

Each latent count is one ordinary `scripts/train.py` run (Trainer, same data split, seed, schedule, augmentation),
with only `num_latents` changed. Runs whose folder already holds a finished run are reused, so an interrupted
ablation continues where it stopped. The JSON holds, per latent count, validation accuracy, parameters, training
time and throughput; each run's metrics, arguments, config and trainer_state.json are copied beside it (e.g.
results/study/latents/latents-64/). `study/make_figures.py` draws it.
"""

import argparse
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

from safetensors import safe_open

from modeling_perceiver_study.files import write_json_atomic
from study.records import run_record

ROOT = Path(__file__).resolve().parent.parent
RUN_FILES = ("metrics.json", "run_args.json", "trainer_state.json", "config.json")  # kept; the weights are not


class RunFailed(Exception):
    pass


def parameter_count(model_dir: Path) -> int:
    with safe_open(model_dir / "model.safetensors", framework="pt") as weights:
        return sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())


def run_once(num_latents: int, args, run_dir: Path) -> dict:
    metrics_path = run_dir / "metrics.json"
    command = [
        sys.executable,
        str(ROOT / "scripts" / "train.py"),
        str(ROOT / args.recipe),
        "--dataset_name",
        args.dataset_name,
        "--output_dir",
        str(run_dir),
        "--num_train_epochs",
        str(args.epochs),
        "--max_train_minutes",
        "1000",  # the budget here is the epoch count, the same for every latent count
        "--save_strategy",
        "no",
        "--eval_strategy",
        "epoch",
        "--disable_tqdm",
        "true",
        "--config_overrides",
        f"num_latents={num_latents}",
        *args.extra,
    ]
    if not metrics_path.exists():
        print(f"[latents={num_latents}] {' '.join(command)}", flush=True)
        completed = subprocess.run(command)
        if completed.returncode != 0:
            raise RunFailed(
                f"training with num_latents={num_latents} failed (exit code {completed.returncode}, its output is "
                f"above); finished counts are kept in {run_dir.parent}, so a rerun continues from there"
            )
    metrics = json.loads(metrics_path.read_text())
    kept = Path(args.output).with_suffix("") / run_dir.name  # the run's small files, beside the ablation's JSON
    kept.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        shutil.copyfile(run_dir / name, kept / name)
    return {
        "num_latents": num_latents,
        "validation_accuracy": metrics["validation"]["accuracy"],
        "epochs": metrics["train"]["epoch"],
        "train_seconds": metrics["train"]["train_runtime"],
        "train_images_per_second": metrics["train"]["train_samples_per_second"],
        "parameters": parameter_count(run_dir),
        "run_files": kept.as_posix(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_name", default="uoft-cs/cifar10")
    parser.add_argument("--recipe", default="configuration/recipes/cpu-small.json")
    parser.add_argument("--latents", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--work_dir", default="outputs/ablate-latents", help="One training run folder per count.")
    parser.add_argument("--output", default="results/study/latents.json")
    parser.add_argument("extra", nargs="*", help="More train.py flags, after `--`.")
    args = parser.parse_args(argv)

    try:
        rows = [run_once(n, args, Path(args.work_dir) / f"latents-{n}") for n in args.latents]
    except RunFailed as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    result = {
        **run_record("study.ablate_latents", argv),
        "recipe": args.recipe,
        "epochs": args.epochs,
        "runs": rows,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.output, result)
    for row in rows:
        print(
            f"latents {row['num_latents']:>4}: {100 * row['validation_accuracy']:.1f} % "
            f"({row['train_images_per_second']:.0f} images/s, {row['parameters'] / 1e6:.2f}M parameters)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
