"""Slow tier: the main job's recipe on the real CIFAR-10 copy, shortened. Skips cleanly where the copy is absent."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT

CIFAR10 = Path(os.environ.get("PERCEIVER_STUDY_CIFAR10", REPO_ROOT.parent / "shared" / "data" / "cifar10"))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CIFAR10.is_dir(), reason=f"no local CIFAR-10 copy at {CIFAR10}"),
]


def test_cpu_small_recipe_learns_cifar10(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "train.py"),
            str(REPO_ROOT / "configuration" / "recipes" / "cpu-small.json"),
            "--dataset_name",
            str(CIFAR10),
            "--output_dir",
            str(tmp_path / "run"),
            "--max_train_samples",
            "6000",
            "--max_eval_samples",
            "1000",
            "--num_train_epochs",
            "2",
            "--disable_tqdm",
            "true",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["label_names"][:3] == ["airplane", "automobile", "bird"]
    assert metrics["train"]["num_samples"] == 6000 and metrics["validation"]["num_samples"] == 1000
    assert metrics["validation"]["accuracy"] > 0.15  # chance is 0.10
    # The recipe trains a torch.compile'd model; the saved folder must hold the plain model's weights.
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, modeling_perceiver_study; from transformers import AutoModelForImageClassification; "
            "AutoModelForImageClassification.from_pretrained(sys.argv[1]); print('loaded')",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=REPO_ROOT,
    )
    assert loaded.stdout.strip() == "loaded", loaded.stderr[-3000:]
