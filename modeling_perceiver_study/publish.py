"""Publish a trained model folder to the Hugging Face Hub: stage exactly the repository's files, render the model
card from the run's own files, then upload everything in one commit."""

import argparse
import os
import shutil
import string
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .export import CODE_FILES
from .files import percent, read_json, shipped_path

MODEL_CARD_TEMPLATE = shipped_path("model_card.md")

# What the Hub repository holds, and nothing else (no optimizer state, checkpoints or stray files).
COPIED_FILES = (
    "model.safetensors",
    "config.json",
    "preprocessor_config.json",
    *CODE_FILES,
    "training_curves.png",
    "metrics.json",
)
# Read to write the card, not published.
RUN_FILES = ("run_args.json",)
REQUIRED_FILES = COPIED_FILES + RUN_FILES
PAPER = "https://arxiv.org/abs/2103.03206"


class PublishError(RuntimeError):
    """Publishing cannot go on; the message says why and what to do."""


@dataclass
class StagedFile:
    path_in_repo: str
    local_path: Path

    @property
    def size(self) -> int:
        return self.local_path.stat().st_size


def check_model_folder(model_dir) -> Path:
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise PublishError(f"model folder {model_dir} does not exist")
    missing = [name for name in REQUIRED_FILES if not (model_dir / name).is_file()]
    if missing:
        raise PublishError(
            f"model folder {model_dir} lacks {', '.join(missing)}: publish the output folder of a finished "
            "scripts/train.py run"
        )
    return model_dir


def conv_stem_size(config: dict) -> str:
    """'128 channels', plus the number of convolutions where the config sets it (unset: log2 of the patch size)."""
    layers = config.get("conv_stem_layers")
    return f"{config['conv_stem_channels']} channels" + (f", {layers} convolutions" if layers else "")


# The card's two sentences that depend on how tokens are made, per input stem: how the model reads an image, and
# the limitation that follows from it.
CARD_TEXT_BY_STEM = {
    "patches": (
        "The model reads an image as a set of tokens, each the raw values of one pixel or of one non-overlapping "
        "patch (see Input below) concatenated with features of its position, with no convolution.",
        "Without convolutions, a Perceiver learns spatial structure from data alone and needs more training than a "
        "CNN of similar cost to reach the same accuracy on small images.",
    ),
    "conv": (
        "The model reads an image as a set of patch tokens, each the output of a small convolutional stem at its "
        "place (the one departure from the paper's convolution-free input) concatenated with features of its "
        "position.",
        "Its convolutional stem gives the tokens local features that a convolution-free Perceiver must learn from "
        "data; in this project's 10-epoch CIFAR-10 runs the stem was worth 10 to 21 points, so this model's "
        "accuracy is not evidence for the paper's convolution-free design.",
    ),
}


def position_features(config: dict) -> str:
    if config.get("position_encoding_type") == "learned":
        return f"learned, {config['learned_position_dim']} per token"
    locality = (
        "; a learned locality prior on the cross-attention logits" if config.get("cross_attention_locality") else ""
    )
    return f"Fourier, {config['num_fourier_bands']} bands per axis{locality}"


def token_features(config: dict) -> str:
    if config.get("input_stem") == "conv":
        return f"convolutional stem (Perceiver IO style), {conv_stem_size(config)}"
    if config.get("patch_whitening"):
        return "the raw pixel values, whitened by one fixed linear map fitted on training patches (no convolution)"
    return "the raw pixel values (no convolution)"


def architecture_table(config: dict) -> str:
    rows = [
        (
            "Input",
            f"{config['image_size']} x {config['image_size']} x {config['num_channels']} pixels, "
            f"{config.get('input_patch_size', 1)} x {config.get('input_patch_size', 1)} pixels per token",
        ),
        ("Token features", token_features(config)),
        ("Position features", position_features(config)),
        ("Latents", f"{config['num_latents']} x {config['latent_dim']}"),
        ("Blocks", f"{config['num_blocks']} ({config['num_cross_attends']} with a cross-attend)"),
        ("Self-attention layers per block", str(config["num_self_attends_per_block"])),
        ("Heads (cross / self)", f"{config['num_cross_attention_heads']} / {config['num_self_attention_heads']}"),
        ("Weight sharing", weight_sharing(config)),
        ("Pooling", f"{config['pooling']} over latents, then a linear classifier"),
    ]
    return "\n".join(["| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])


def weight_sharing(config: dict) -> str:
    parts = []
    if config["num_cross_attends"] > 1:
        shared = config["share_cross_attend_weights"]
        parts.append(
            "cross-attends after the first share weights" if shared else "every cross-attend has its own weights"
        )
    if config["num_blocks"] > 1:
        parts.append(
            "one latent Transformer shared by all blocks"
            if config["share_block_weights"]
            else "every block has its own latent Transformer"
        )
    return "; ".join(parts) or "none (one block, one cross-attend)"


def recipe_table(run_args: dict, metrics: dict) -> str:
    training, data = run_args.get("training", {}), run_args.get("data", {})
    train = metrics.get("train", {})
    rows = [
        ("Epochs", training.get("num_train_epochs")),
        ("Global batch", _global_batch(training, train)),
        (
            "Optimizer",
            f"{training.get('optim')}, learning rate {training.get('learning_rate')}, weight decay "
            f"{training.get('weight_decay')}",
        ),
        ("Schedule", f"{training.get('lr_scheduler_type')}, warmup {training.get('warmup_steps')}"),
        ("Label smoothing", training.get("label_smoothing_factor")),
        (
            "Augmentation",
            f"random crop (padding {data.get('random_crop_padding')}), horizontal flip "
            f"{data.get('horizontal_flip')}, mixup {data.get('mixup_alpha')}, cutmix "
            f"{data.get('cutmix_alpha')}",
        ),
        ("Precision", "bf16 autocast" if training.get("bf16") else "fp32"),
        ("Training images", train.get("num_samples")),
        ("Training wall time", f"{train['wall_seconds'] / 60:.1f} min" if "wall_seconds" in train else None),
    ]
    return "\n".join(["| | |", "|---|---|", *(f"| {n} | {v} |" for n, v in rows if v is not None)])


def _global_batch(training: dict, train_metrics: dict):
    per_device = training.get("per_device_train_batch_size")
    world = train_metrics.get("world_size", 1)
    accumulation = training.get("gradient_accumulation_steps", 1)
    return None if per_device is None else per_device * world * accumulation


def results_table(metrics: dict) -> str:
    rows = []
    for split in ("validation", "test"):
        scores = metrics.get(split)
        if scores and "accuracy" in scores:
            rows.append(f"| {split} | {scores.get('num_samples', '')} | {percent(scores['accuracy'], decimals=2)} |")
    if metrics.get("best_validation_accuracy") is not None:
        rows.append(f"| validation, best epoch | | {percent(metrics['best_validation_accuracy'], decimals=2)} |")
    return "\n".join(["| split | images | accuracy |", "|---|---|---|", *rows])


CIFAR10_HUB_ID = "uoft-cs/cifar10"
LOCAL_CIFAR10_NOTE = (
    "\n- It was trained on a local copy of CIFAR-10 that stores JPEG-compressed images; accuracy on the lossless "
    "originals differs by a few points. Compare numbers only within one copy."
)
CIFAR10_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def resolve_dataset_id(run_dataset: str, label_names: list[str], explicit: str | None = None) -> str:
    """The Hub id the card names: given, the run's own if it was one, or CIFAR-10's for a local CIFAR-10 copy."""
    from .data import looks_like_local_path

    if explicit:
        return explicit
    if run_dataset and not looks_like_local_path(run_dataset):
        return run_dataset
    if label_names == CIFAR10_LABELS:
        return CIFAR10_HUB_ID
    raise PublishError(f"the run trained on a local dataset ({run_dataset}); name its Hub dataset id with --dataset_id")


def validation_split_name(run_args: dict) -> str:
    fraction = run_args.get("data", {}).get("train_val_split")
    return f"validation ({100 * fraction:g} % of train, seeded)" if fraction else "validation"


def card_metadata(metrics: dict, repo_id: str, dataset_id: str, validation_split: str):
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    for split in ("validation", "test"):
        scores = metrics.get(split)
        if scores and "accuracy" in scores:
            results.append(
                EvalResult(
                    task_type="image-classification",
                    task_name="Image Classification",
                    dataset_type=dataset_id,
                    dataset_name="CIFAR-10" if "cifar10" in dataset_id else dataset_id,
                    dataset_split=validation_split if split == "validation" else "test",
                    metric_type="accuracy",
                    metric_name="Accuracy",
                    metric_value=round(scores["accuracy"], 4),
                )
            )
    return ModelCardData(
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag="image-classification",
        datasets=[dataset_id],
        metrics=["accuracy"],
        tags=["perceiver", "image-classification", "custom_code", "vision"]
        + (["cifar10"] if dataset_id == CIFAR10_HUB_ID else []),
        model_name=repo_id.split("/")[-1],
        eval_results=results or None,
    )


def render_model_card(model_dir, repo_id: str, dataset_id: str | None = None, template_path=MODEL_CARD_TEMPLATE) -> str:
    """The README.md of the Hub repo: metadata and body, every number read from the run's files."""
    model_dir = Path(model_dir)
    config = read_json(model_dir / "config.json")
    metrics = read_json(model_dir / "metrics.json")
    run_args = read_json(model_dir / "run_args.json")
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    run_dataset = run_args.get("data", {}).get("dataset_name", metrics.get("dataset", ""))
    dataset_id = resolve_dataset_id(run_dataset, labels, dataset_id)
    validation = metrics.get("validation", {})
    headline = (
        f"It reaches **{percent(validation['accuracy'], decimals=2)}** accuracy on a held-out validation split"
        if "accuracy" in validation
        else "No validation accuracy was recorded for this run"
    )
    input_description, convolution_note = CARD_TEXT_BY_STEM[config.get("input_stem", "patches")]
    body = string.Template(Path(template_path).read_text()).substitute(
        repo_id=repo_id,
        model_name=repo_id.split("/")[-1],
        headline=headline,
        dataset=dataset_id if run_dataset == dataset_id else f"{dataset_id} (trained from a local copy)",
        image_size=config["image_size"],
        input_description=input_description,
        convolution_note=convolution_note,
        copy_note=LOCAL_CIFAR10_NOTE if run_dataset != dataset_id and dataset_id == CIFAR10_HUB_ID else "",
        labels=", ".join(labels),
        num_parameters=_parameter_count(model_dir),
        architecture=architecture_table(config),
        recipe=recipe_table(run_args, metrics),
        results=results_table(metrics),
        paper=PAPER,
    )
    metadata = card_metadata(metrics, repo_id, dataset_id, validation_split_name(run_args))
    return f"---\n{metadata.to_yaml()}\n---\n\n{body}"


def _parameter_count(model_dir: Path) -> str:
    from math import prod

    from safetensors import safe_open

    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as weights:
        total = sum(prod(weights.get_slice(name).get_shape()) for name in weights.keys())
    return f"{total / 1e6:.2f}M"


def check_repo_id(repo_id: str) -> str:
    """The Hub's own rule for a repository id (`org/name`), checked before anything is staged."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if repo_id.count("/") != 1:
        raise PublishError(f"repo id {repo_id!r} must be 'owner/name' (e.g. your-org/perceiver-study-cifar10)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise PublishError(f"repo id {repo_id!r} is not valid on the Hub: {error}") from error
    return repo_id


LOAD_CHECK = """
import sys, torch
from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification
folder = sys.argv[1]
config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
size = config.image_size
with torch.no_grad():
    logits = model(torch.zeros(1, config.num_channels, size, size)).logits
assert logits.shape == (1, config.num_labels) and torch.isfinite(logits).all(), logits
"""


def check_staged_folder_loads(staging_dir) -> None:
    """Load the staged files through the Auto classes in a fresh process that has only them (their own code files,
    as a Hub user gets), so a folder whose config and weights disagree is refused before anything is uploaded."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    with tempfile.TemporaryDirectory() as modules:
        env["HF_MODULES_CACHE"] = modules
        result = subprocess.run(
            [sys.executable, "-c", LOAD_CHECK, str(staging_dir)], capture_output=True, text=True, env=env, timeout=600
        )
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PublishError(f"the staged folder {staging_dir} does not load through the Auto classes: {last_line}")


def stage_repository(model_dir, staging_dir, repo_id: str, dataset_id: str | None = None) -> list[StagedFile]:
    """Copy exactly the repository's files into an empty `staging_dir`, write the rendered model card, and check that
    the result loads as a Hub user would load it."""
    check_repo_id(repo_id)
    model_dir = check_model_folder(model_dir)
    staging_dir = Path(staging_dir)
    if staging_dir.exists() and any(staging_dir.iterdir()):
        raise PublishError(f"staging folder {staging_dir} is not empty")
    staging_dir.mkdir(parents=True, exist_ok=True)
    for name in COPIED_FILES:
        shutil.copyfile(model_dir / name, staging_dir / name)
    (staging_dir / "README.md").write_text(render_model_card(model_dir, repo_id, dataset_id))
    check_staged_folder_loads(staging_dir)
    return [StagedFile(path.name, path) for path in sorted(staging_dir.iterdir())]


def resolve_token(token: str | None = None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN or run `hf auth login`, then rerun (nothing was sent)")
    return token


def upload(
    staged: list[StagedFile],
    repo_id: str,
    token: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str = "Upload Perceiver Study model",
    api=None,
    repo_type: str = "model",
):
    """Create the repo if needed (a Gradio Space for `repo_type="space"`), then one commit that makes its files
    exactly the staged ones.

    A Hub commit is atomic: if it fails, nothing of it is published.
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = api or HfApi(token=token)
    kind = {"repo_type": repo_type}
    try:
        space = {"space_sdk": "gradio"} if repo_type == "space" else {}
        api.create_repo(repo_id, private=private, exist_ok=True, **kind, **space)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True, **kind)
        existing = set(api.list_repo_files(repo_id, revision=revision, **kind))
        staged_names = {item.path_in_repo for item in staged}
        operations = [
            CommitOperationAdd(path_in_repo=item.path_in_repo, path_or_fileobj=str(item.local_path)) for item in staged
        ]
        operations += [
            CommitOperationDelete(path_in_repo=name)
            for name in sorted(existing - staged_names)
            if name != ".gitattributes"
        ]
        return api.create_commit(
            repo_id, operations=operations, commit_message=commit_message, revision=revision, **kind
        )
    except Exception as error:  # noqa: BLE001 - any failure is reported the same way, with what to do next
        raise PublishError(
            f"upload to {repo_id} failed ({type(error).__name__}: {error}). Hub commits are atomic, so nothing of this "
            "upload was published; fix the cause and rerun the same command."
        ) from error


# ---------------------------------------------------------------------------------------------------------------------
# The demo Space: the Gradio page of `demo.py`, loading the model repository from the Hub

# The package modules the demo needs, copied as they are (one implementation, here and on the Space).
SPACE_MODULES = ("demo.py", "files.py", "plots.py")
SPACE_PACKAGE = "perceiver_study_demo"
SPACE_EXAMPLES = "assets/demo-examples"
SPACE_GRADIO_VERSION = "6.31.0"  # the Gradio the demo is tested with (the [demo] extra allows 6.x)
SPACE_REQUIREMENTS = """torch>=2.4,<3
transformers>=5.0,<6
safetensors>=0.4
pillow>=10
numpy>=1.26
matplotlib>=3.8
"""
SPACE_APP = '''"""Perceiver Study demo: {repo_id}, with the cross-attention drawn over the image."""

import os

from {package}.demo import build_app, load_classifier

MODEL_ID = os.environ.get("PERCEIVER_STUDY_MODEL", "{repo_id}")  # the model repository this Space shows
demo = build_app(load_classifier(MODEL_ID), title="Perceiver Study: {repo_id}")

if __name__ == "__main__":
    demo.launch()
'''
SPACE_CARD = """---
title: Perceiver Study
emoji: 🔭
colorFrom: indigo
colorTo: gray
sdk: gradio
sdk_version: {gradio_version}
app_file: app.py
models:
  - {repo_id}
license: apache-2.0
pinned: false
---

# Perceiver Study demo

Classifies an image with [{repo_id}](https://huggingface.co/{repo_id}), a Perceiver (Jaegle et al., 2021,
{paper}) trained on CIFAR-10, and draws where its latents look: the first cross-attend's weights over the image,
averaged over all latents and for its sharpest single (latent, head) maps. Any image is cropped to its central square
and resized to the model's input size. The example images are CIFAR-10 validation images no model here trained on.
"""

SPACE_CHECK = """
import sys
from PIL import Image
sys.path.insert(0, sys.argv[1])
sys.modules["modeling_perceiver_study"] = None  # the Space has only its own files
from {package}.demo import attention_figure, classify, example_images, load_classifier
classifier = load_classifier(sys.argv[2])
examples = example_images()
assert examples, "no example images"
prediction = classify(classifier, Image.open(examples[0]))
attention_figure(classifier, prediction)
print(next(iter(prediction.probabilities)))  # the top label
"""


def stage_space(staging_dir, repo_id: str) -> list[StagedFile]:
    """Write the demo Space's files into an empty `staging_dir`: app.py, requirements.txt, README.md (the Space's
    metadata), the demo's modules as the package `perceiver_study_demo`, and the example images."""
    from . import demo as demo_module

    check_repo_id(repo_id)
    staging_dir = Path(staging_dir)
    if staging_dir.exists() and any(staging_dir.iterdir()):
        raise PublishError(f"Space staging folder {staging_dir} is not empty")
    package = staging_dir / SPACE_PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""The Perceiver Study demo\'s modules, copied from the package."""\n')
    source = Path(demo_module.__file__).parent
    for name in SPACE_MODULES:
        shutil.copyfile(source / name, package / name)
    examples = staging_dir / SPACE_EXAMPLES
    examples.mkdir(parents=True)
    for image in sorted(shipped_path(SPACE_EXAMPLES).glob("*.png")):
        shutil.copyfile(image, examples / image.name)
    (staging_dir / "app.py").write_text(SPACE_APP.format(repo_id=repo_id, package=SPACE_PACKAGE))
    (staging_dir / "requirements.txt").write_text(SPACE_REQUIREMENTS)
    card = SPACE_CARD.format(repo_id=repo_id, gradio_version=SPACE_GRADIO_VERSION, paper=PAPER)
    (staging_dir / "README.md").write_text(card)
    return [
        StagedFile(path.relative_to(staging_dir).as_posix(), path)
        for path in sorted(staging_dir.rglob("*"))
        if path.is_file()
    ]


def check_staged_space_runs(space_dir, model_dir) -> str:
    """Run the staged Space's demo code in a fresh process that has only the Space's files (and the staged model
    folder in place of the Hub repository): load, classify an example, draw the attention. Returns the top label."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": "", "MPLBACKEND": "Agg"}
    with tempfile.TemporaryDirectory() as modules:
        env["HF_MODULES_CACHE"] = modules
        result = subprocess.run(
            [sys.executable, "-c", SPACE_CHECK.format(package=SPACE_PACKAGE), str(space_dir), str(model_dir)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
    if result.returncode != 0:
        last_line = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise PublishError(f"the staged Space {space_dir} does not run its demo: {last_line}")
    return result.stdout.strip()


# ---------------------------------------------------------------------------------------------------------------------
# Command line

PUSH_USAGE = """Publish a trained model folder to the Hugging Face Hub in one commit.

    python scripts/push_to_hub.py --model_dir outputs/cpu-small --repo_id your-org/perceiver-study-cifar10 --dry_run
    python scripts/push_to_hub.py --model_dir outputs/cpu-small --repo_id your-org/perceiver-study-cifar10

The repository gets exactly: model.safetensors, config.json (auto_map for AutoConfig, AutoModel,
AutoModelForImageClassification, AutoImageProcessor), the code files, preprocessor_config.json, README.md (the model
card rendered from model_card.md and the run's files), training_curves.png and metrics.json. The token comes from
HF_TOKEN or `hf auth login`; it is never printed.

With --space_id, the demo page (scripts/demo.py) is staged as a Gradio Space that loads --repo_id: app.py,
requirements.txt, README.md (the Space's metadata), the demo's modules and its example images; the staged Space's demo
is run on the staged model before anything is uploaded, and the Space is published after the model.
"""


def parse_push_arguments(argv=None):
    parser = argparse.ArgumentParser(description=PUSH_USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="Output folder of a finished scripts/train.py run.")
    parser.add_argument("--repo_id", required=True, help="Hub repository, e.g. your-org/perceiver-study-cifar10.")
    parser.add_argument(
        "--dataset_id",
        default=None,
        help="Hub id of the training dataset for the card (default: the run's own, or uoft-cs/cifar10 "
        "for a local CIFAR-10 copy).",
    )
    parser.add_argument("--private", action="store_true", help="Create the repository as private.")
    parser.add_argument("--revision", default=None, help="Branch to commit to (created if needed; default main).")
    parser.add_argument("--commit_message", default="Upload Perceiver Study model")
    parser.add_argument("--staging_dir", default=None, help="Where to stage the files (default: a temporary folder).")
    parser.add_argument("--dry_run", action="store_true", help="Stage and list the files; upload nothing.")
    parser.add_argument(
        "--space_id",
        default=None,
        help="Also publish the demo page as a Gradio Space (e.g. your-org/perceiver-study-demo) that loads --repo_id.",
    )
    parser.add_argument("--space_staging_dir", default=None, help="Where to stage the Space (default: temporary).")
    return parser.parse_args(argv)


def push_main(argv=None) -> int:
    """`scripts/push_to_hub.py` and the `perceiver-study-push` command."""
    args = parse_push_arguments(argv)
    temporaries = []

    def staging_folder(given, prefix) -> Path:
        if given:
            return Path(given)
        temporaries.append(tempfile.TemporaryDirectory(prefix=prefix))  # removed at the end, weights included
        return Path(temporaries[-1].name)

    try:
        if args.space_id:
            check_repo_id(args.space_id)
        staging = staging_folder(args.staging_dir, "perceiver-study-hub-")
        staged = stage_repository(args.model_dir, staging, args.repo_id, args.dataset_id)
        list_staged(staged, args.repo_id, staging)
        space_staged = None
        if args.space_id:
            space_staging = staging_folder(args.space_staging_dir, "perceiver-study-space-")
            space_staged = stage_space(space_staging, args.repo_id)
            top_label = check_staged_space_runs(space_staging, staging)
            list_staged(space_staged, f"the Space {args.space_id}", space_staging)
            print(f"  (its demo ran on the staged model: the first example is classified as {top_label!r})")
        if args.dry_run:
            print("dry run: nothing uploaded")
            return 0
        token = resolve_token()
        commit = upload(
            staged,
            args.repo_id,
            token,
            private=args.private,
            revision=args.revision,
            commit_message=args.commit_message,
        )
        print(f"published {args.repo_id} in one commit: {getattr(commit, 'commit_url', commit)}")
        if space_staged:
            commit = upload(
                space_staged,
                args.space_id,
                token,
                private=args.private,
                commit_message=f"Demo of {args.repo_id}",
                repo_type="space",
            )
            print(f"published the Space {args.space_id} in one commit: {getattr(commit, 'commit_url', commit)}")
    except (PublishError, ValueError) as error:  # ValueError: a run file that is not JSON, named
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        for temporary in temporaries:
            temporary.cleanup()
    return 0


def list_staged(staged: list[StagedFile], name: str, folder: Path) -> None:
    print(f"staged {len(staged)} files for {name} in {folder}:")
    for item in staged:
        print(f"  {item.size:>12,d}  {item.path_in_repo}")
