"""Shared test helpers: tiny models, fresh Python processes without this package, an offline Hub cache."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from modeling_perceiver_study import PerceiverStudyForImageClassification, PerceiverStudyImageProcessor
from modeling_perceiver_study.export import save_model_folder
from modeling_perceiver_study.presets import load_preset

REPO_ROOT = Path(__file__).resolve().parent.parent
CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# A fixed commit id for the fake Hub cache (40 hex digits, as the Hub client expects).
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def tiny_config(**overrides):
    fields = {"id2label": dict(enumerate(CIFAR10_LABELS)), "label2id": {n: i for i, n in enumerate(CIFAR10_LABELS)}}
    return load_preset("tiny", **{**fields, **overrides})


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return PerceiverStudyForImageClassification(tiny_config(**overrides)).eval()


def save_tiny_model_folder(path, seed=0, **overrides):
    model = tiny_model(seed, **overrides)
    save_model_folder(model, PerceiverStudyImageProcessor(), path)
    return model


def run_without_package(code: str, env_extra: dict | None = None, cwd=None, timeout=300) -> str:
    """Run `code` in a fresh interpreter where `modeling_perceiver_study` cannot be imported; return stdout.

    The package is installed in editable mode, so it is blocked explicitly (a `None` entry in `sys.modules` makes
    any import of it fail); the check that it is blocked is part of the script.
    """
    prelude = textwrap.dedent(
        """
        import sys
        sys.modules["modeling_perceiver_study"] = None
        try:
            import modeling_perceiver_study  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("precondition failed: modeling_perceiver_study is importable")
        """
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "TRANSFORMERS_"))}
    env.update(env_extra or {})
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(f"fresh process failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def lay_into_hub_cache(folder, repo_id: str, cache_dir, commit: str = FAKE_COMMIT) -> Path:
    """Lay `folder`'s files out as huggingface_hub's cache holds a downloaded model repo (blobs, snapshot, ref)."""
    repo_dir = Path(cache_dir) / f"models--{repo_id.replace('/', '--')}"
    blobs, snapshot = repo_dir / "blobs", repo_dir / "snapshots" / commit
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for file in sorted(Path(folder).rglob("*")):
        if not file.is_file():
            continue
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copyfile(file, blobs / digest)
        target = snapshot / file.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(os.path.relpath(blobs / digest, target.parent))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    return repo_dir


def offline_env(cache_dir, modules_dir) -> dict:
    return {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache_dir), "HF_MODULES_CACHE": str(modules_dir)}


def dump_tensor(tensor) -> str:
    return json.dumps(tensor.tolist())
