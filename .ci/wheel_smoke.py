"""Run by .ci/wheel-smoke with a fresh virtual environment's Python, from a folder outside the checkout: what a user
gets from `pip install perceiver-study` (a wheel, not an editable install).

    python wheel_smoke.py PRESET [PRESET ...]    (the preset names the checkout ships)
"""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
from datasets import ClassLabel, Dataset, Features
from datasets import Image as ImageFeature
from PIL import Image

import modeling_perceiver_study
from modeling_perceiver_study.presets import available_presets, load_preset


def check(condition, message):
    if not condition:
        sys.exit(f"wheel smoke test failed: {message}")


def synthetic_parquet(path, labels=("circle", "square", "cross"), per_class=8):
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(per_class * len(labels))
    ]
    features = Features({"img": ImageFeature(), "label": ClassLabel(names=list(labels))})
    rows = {"img": images, "label": [index % len(labels) for index in range(len(images))]}
    Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return path


def run(*command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    check(result.returncode == 0, f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result.stdout


def main(expected_presets):
    installed_in = Path(modeling_perceiver_study.__file__).resolve()
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    check(site_packages in installed_in.parents, f"the package imports from {installed_in}, not {site_packages}")

    check(available_presets() == sorted(expected_presets), f"presets {available_presets()} != {expected_presets}")
    for name in expected_presets:
        load_preset(name, num_labels=10)
    print(f"loaded {len(expected_presets)} presets from {installed_in.parent}")

    from modeling_perceiver_study.demo import example_images

    check(len(example_images()) == 6, f"the demo's example images did not ship: {example_images()}")
    data = synthetic_parquet(Path("synthetic.parquet").resolve())
    # The README's recipe path, which outside a checkout names the recipe shipped with the package.
    run(
        "perceiver-study-train", "configuration/recipes/tiny.json", "--dataset_name", str(data),
        "--output_dir", "run", "--max_steps", "1", "--use_cpu", "true", "--disable_tqdm", "true",
        "--dataloader_pin_memory", "false",
    )  # fmt: skip
    # The recipe logs to TensorBoard, which the plain install lacks: the run goes on untracked and says so.
    check(not Path("run/runs").exists(), "a run without tensorboard installed wrote event files")
    steps = json.loads(Path("run/trainer_state.json").read_text())["global_step"]
    check(steps == 1, f"trained {steps} steps, not 1")
    metrics = json.loads(Path("run/metrics.json").read_text())
    print(f"trained one step: validation accuracy {metrics['validation']['accuracy']:.3f}")

    out = run(
        "perceiver-study-push", "--model_dir", "run", "--repo_id", "smoke/perceiver-study",
        "--dataset_id", "smoke/synthetic", "--dry_run", "--staging_dir", "staged",
    )  # fmt: skip
    card = Path("staged/README.md").read_text()
    check(card.startswith("---\n") and "\n# perceiver-study\n" in card, "the model card did not render")
    check("dry run: nothing uploaded" in out, "the push was not a dry run")
    print(f"staged a dry-run push of {len(list(Path('staged').iterdir()))} files with a rendered model card")


if __name__ == "__main__":
    main(sys.argv[1:])
