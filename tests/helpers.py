"""Shared test helpers: tiny models, fresh Python processes without this package, an offline Hub cache."""

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from modeling_perceiver_study import PerceiverStudyForImageClassification, PerceiverStudyImageProcessor
from modeling_perceiver_study.export import save_model_folder
from modeling_perceiver_study.presets import load_preset
from modeling_perceiver_study.training import checkpoints_in_order

REPO_ROOT = Path(__file__).resolve().parent.parent
CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
# A fixed commit id for the fake Hub cache (40 hex digits, as the Hub client expects).
FAKE_COMMIT = "0123456789abcdef0123456789abcdef01234567"


# scripts/train.py flags for a seconds-long CPU run of the tiny preset (later flags override these).
TINY_TRAINING_ARGS = (
    "--preset tiny --num_train_epochs 2 --per_device_train_batch_size 16 --per_device_eval_batch_size 32 "
    "--learning_rate 3e-3 --logging_steps 1 --use_cpu true --disable_tqdm true --seed 3 --train_val_split 0.25 "
    "--dataloader_pin_memory false"
).split()


def train_tiny(dataset, output_dir, *extra) -> dict:
    """Run the training script's main() in this process; returns its metrics."""
    from modeling_perceiver_study.training import main

    return main(["--dataset_name", str(dataset), "--output_dir", str(output_dir), *TINY_TRAINING_ARGS, *extra])


def copy_run_stopped_after(straight: Path, stopped: Path, epochs: int) -> None:
    """`stopped`: what a run in `straight` left had it stopped after `epochs` epochs (its run record and the first
    `epochs` checkpoints, one per epoch), to resume from."""
    stopped.mkdir()
    shutil.copy(straight / "run_args.json", stopped)
    for checkpoint in checkpoints_in_order(straight)[:epochs]:
        shutil.copytree(checkpoint, stopped / checkpoint.name)


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


LOAD_AND_PREDICT = """
import json, numpy as np, torch
from PIL import Image
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification, pipeline
source = {source!r}
config = AutoConfig.from_pretrained(source, trust_remote_code=True)
model = AutoModelForImageClassification.from_pretrained(source, trust_remote_code=True).eval()
base = AutoModel.from_pretrained(source, trust_remote_code=True).eval()
processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=True)
torch.manual_seed(0)
pixels = torch.randn(2, 3, 32, 32)
with torch.no_grad():
    logits = model(pixels).logits
    pooled = base(pixels).pooler_output
image = Image.fromarray((np.arange(32 * 32 * 3) % 251).astype("uint8").reshape(32, 32, 3))  # = sample_image()
classify = pipeline("image-classification", model=source, trust_remote_code=True)
print(json.dumps({{
    "config_class": type(config).__name__, "model_class": type(model).__name__, "base_class": type(base).__name__,
    "module": type(model).__module__, "processor_class": type(processor).__name__,
    "logits": logits.tolist(), "pooled": pooled.tolist(),
    "processed": processor(image, return_tensors="pt")["pixel_values"].tolist(),
    "pipeline": classify(image, top_k=3),
}}))
"""


def sample_image():
    return Image.fromarray((np.arange(32 * 32 * 3) % 251).astype("uint8").reshape(32, 32, 3))


def expected_outputs(model):
    torch.manual_seed(0)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        return model(pixels).logits, model.perceiver(pixels).pooler_output


def check_loaded(result, model, labels=CIFAR10_LABELS):
    """`result` of LOAD_AND_PREDICT matches `model`: classes, logits, processor output, pipeline labels/scores."""
    logits, pooled = expected_outputs(model)
    assert result["config_class"] == "PerceiverStudyConfig"
    assert result["model_class"] == "PerceiverStudyForImageClassification"
    assert result["base_class"] == "PerceiverStudyModel"
    assert result["processor_class"] == "PerceiverStudyImageProcessor"
    assert result["module"].startswith("transformers_modules.")  # the saved code file, not this package
    torch.testing.assert_close(torch.tensor(result["logits"]), logits, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(torch.tensor(result["pooled"]), pooled, atol=1e-6, rtol=1e-6)
    processed = PerceiverStudyImageProcessor()(sample_image(), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(torch.tensor(result["processed"]), processed)
    with torch.no_grad():
        probabilities = model(processed).logits.softmax(-1)[0]
    top = probabilities.topk(3)
    expected = [{"label": labels[i], "score": s} for s, i in zip(top.values.tolist(), top.indices.tolist())]
    assert [p["label"] for p in result["pipeline"]] == [p["label"] for p in expected]
    for got, want in zip(result["pipeline"], expected):
        assert abs(got["score"] - want["score"]) < 1e-5
