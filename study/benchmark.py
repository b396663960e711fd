#!/usr/bin/env python
"""Throughput of this model against its peers at the same architecture, precision and batch.

    python -m study.benchmark --preset seed --batch 64 --precision bf16 --output results/benchmark-cpu.json

Peers: transformers' `PerceiverForImageClassificationFourier` (always) and lucidrains' `perceiver-pytorch` (when
installed: `pip install -e ".[bench]"`). Models are timed interleaved (each repeat times every model in turn, so
drifting machine load hits all alike); the JSON holds every repeat, the medians and this model's ratio to each peer.
Training throughput counts forward, backward and an AdamW step; inference counts a no-grad forward pass.
"""

import argparse
import importlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from modeling_perceiver_study import PerceiverStudyForImageClassification
from modeling_perceiver_study.presets import load_preset
from study import peers
from study.records import machine, run_record

ROOT = Path(__file__).resolve().parent.parent


def git(*args: str) -> str:
    """Output of a git command in this repository; CalledProcessError (with git's message) when it fails."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def build_ours(config, attn_implementation, compiled=False):
    model = PerceiverStudyForImageClassification(config)
    model.config._attn_implementation = attn_implementation
    forward = torch.compile(model) if compiled else model
    return model, lambda pixels, labels: forward(pixels, labels=labels)


def build_ours_at_revision(config, attn_implementation, revision):
    """This model as the Hub files were at git `revision`: measures what a change bought, in the same process run.
    The files are imported as a package of their own, so both versions live side by side."""
    package = Path(tempfile.mkdtemp(prefix="perceiver-study-rev-")) / f"perceiver_study_at_{revision[:12]}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("configuration_perceiver_study.py", "modeling_perceiver_study.py"):
        (package / name).write_text(git("show", f"{revision}:modeling_perceiver_study/{name}"))
    sys.path.insert(0, str(package.parent))
    modeling = importlib.import_module(f"{package.name}.modeling_perceiver_study")
    configuration = importlib.import_module(f"{package.name}.configuration_perceiver_study")
    old_config = configuration.PerceiverStudyConfig(**config.to_diff_dict())
    model = modeling.PerceiverStudyForImageClassification(old_config)
    model.config._attn_implementation = attn_implementation
    return model, lambda pixels, labels: model(pixels, labels=labels)


def build_transformers_peer(config):
    """transformers' Fourier-preprocessed Perceiver with our config's sizes. Differences: its preprocessor always
    uses max_resolution 224 (frequencies, not cost), and its head is a one-query cross-attention decoder instead of
    mean pooling + linear (a small share of the cost)."""
    if (
        config.num_fourier_bands != 64
        or config.input_patch_size != 1
        or config.input_stem != "patches"
        or config.num_cross_attends != 1
    ):
        raise ValueError("the transformers peer needs 64 Fourier bands, raw pixel tokens and one cross-attend")
    model = peers.build_transformers_peer(
        "fourier",
        [str(label) for label in range(config.num_labels)],
        num_latents=config.num_latents,
        d_latents=config.latent_dim,
        num_blocks=config.num_blocks,
        num_self_attends_per_block=config.num_self_attends_per_block,
        num_self_attention_heads=config.num_self_attention_heads,
        num_cross_attention_heads=config.num_cross_attention_heads,
        qk_channels=config.latent_dim,
        v_channels=config.latent_dim,
        cross_attention_widening_factor=config.cross_attention_widening_factor,
        self_attention_widening_factor=config.self_attention_widening_factor,
        image_size=config.image_size,
    )
    return model, lambda pixels, labels: model(inputs=pixels, labels=labels)


def build_lucidrains_peer(config):
    """lucidrains' perceiver-pytorch with the same latent array, depth, heads and Fourier bands (its attention and
    feed-forward layers are parametrised differently: GEGLU feed-forward, its own head widths)."""
    from perceiver_pytorch import Perceiver

    model = Perceiver(
        input_channels=config.num_channels,
        input_axis=2,
        num_freq_bands=config.num_fourier_bands,
        max_freq=config.resolved_fourier_max_resolution,
        depth=config.num_blocks,
        num_latents=config.num_latents,
        latent_dim=config.latent_dim,
        cross_heads=config.num_cross_attention_heads,
        latent_heads=config.num_self_attention_heads,
        cross_dim_head=config.latent_dim,
        latent_dim_head=config.latent_dim // config.num_self_attention_heads,
        num_classes=config.num_labels,
        attn_dropout=0.0,
        ff_dropout=0.0,
        weight_tie_layers=config.share_block_weights,
        self_per_cross_attn=config.num_self_attends_per_block,
    )

    def forward(pixels, labels):
        logits = model(pixels.permute(0, 2, 3, 1))  # it reads channels-last images
        return type("Output", (), {"loss": torch.nn.functional.cross_entropy(logits.float(), labels)})()

    return model, forward


def resolve_revision(revision: str) -> str:
    """A git revision (HEAD~1, a branch, a short hash) as its full commit hash, so results name what was timed."""
    return git("rev-parse", "--verify", f"{revision}^{{commit}}").strip()


def git_commit() -> str:
    """The checked-out commit, marked `+changes` when the working tree differs from it."""
    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no").strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def time_model(forward, model, pixels, labels, steps, train, precision, device, warmup_steps=1):
    """Images per second over `steps` steps (after `warmup_steps` untimed ones)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4) if train else None
    model.train(train)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            if train:
                loss = forward(pixels, labels).loss
            else:
                with torch.no_grad():
                    forward(pixels, labels)
        if train:
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup_steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * len(pixels) / (time.perf_counter() - started)


# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, for the MFU: the SXM parts' datasheet figures.
PEAK_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    """--peak_tflops, or the datasheet peak of a known GPU; None (no MFU) for a CPU or an unknown GPU."""
    if given is not None or device.type != "cuda":
        return given
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def count_flops(forward, model, pixels, labels, train: bool, precision, device) -> float:
    """FLOPs per image of one step as torch counts them (its FlopCounterMode formulas: matmuls, convolutions and
    attention, 2 per multiply-add), forward and backward for training, forward for inference; the optimizer step is
    left out. Counted at dispatch, without FlopCounterMode's per-module hooks, which fail on modules whose outputs
    carry no gradient (the constant position features)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Counter(TorchDispatchMode):
        flops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            formula = flop_registry.get(func._overloadpacket)
            if formula is not None:
                self.flops += formula(*args, **(kwargs or {}), out_val=out)
            return out

    model.train(train)
    with Counter() as counter, torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        if train:
            forward(pixels, labels).loss.backward()
            model.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                forward(pixels, labels)
    return counter.flops / len(pixels)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument(
        "--attn_implementation",
        default="eager",
        help="This model's attention kernel; several, comma-separated (eager,sdpa), time one copy each. Ratios are "
        "those of the first.",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="Also time a torch.compile'd copy of this model (its compile time is reported, not counted).",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="Timed steps per repeat.")
    parser.add_argument(
        "--against_revision",
        default=None,
        help="Also time this model as committed at this git revision (e.g. the commit before a speed change).",
    )
    parser.add_argument("--no_peers", action="store_true", help="Time only this model (and --against_revision).")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output", default=None, help="Write the results here (JSON).")
    parser.add_argument(
        "--peak_tflops",
        type=float,
        default=None,
        help="The device's dense peak (TFLOP/s) at this precision, for `mfu`; known GPUs (H100, H200, A100) default "
        "to their bf16 datasheet peak, a CPU has none unless given.",
    )
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    config = load_preset(args.preset, num_labels=10)
    torch.manual_seed(0)
    attn_implementations = args.attn_implementation.split(",")
    models = {"perceiver_study": build_ours(config, attn_implementations[0])}
    for implementation in attn_implementations[1:]:
        models[f"perceiver_study[{implementation}]"] = build_ours(config, implementation)
    if args.compile:
        models["perceiver_study[compiled]"] = build_ours(config, attn_implementations[0], compiled=True)
    if args.against_revision:
        try:
            revision = resolve_revision(args.against_revision)
        except subprocess.CalledProcessError as error:
            parser.error(f"--against_revision {args.against_revision!r} is not a commit here: {error.stderr.strip()}")
        models[f"perceiver_study@{revision[:7]}"] = build_ours_at_revision(config, attn_implementations[0], revision)
    if not args.no_peers:
        models["transformers"] = build_transformers_peer(config)
        try:
            models["perceiver_pytorch"] = build_lucidrains_peer(config)
        except ImportError:
            print("perceiver-pytorch not installed: skipping that peer (pip install -e '.[bench]')", file=sys.stderr)
    for model, _ in models.values():
        model.to(device)
    pixels = torch.randn(args.batch, config.num_channels, config.image_size, config.image_size, device=device)
    labels = torch.randint(0, config.num_labels, (args.batch,), device=device)

    # First steps, untimed by the repeats: they hold one-off costs (torch.compile's compilation, allocator growth).
    first_step_seconds = {
        name: {
            mode: args.batch
            / time_model(forward, model, pixels, labels, 1, mode == "train", args.precision, device, warmup_steps=0)
            for mode in ("train", "inference")
        }
        for name, (model, forward) in models.items()
    }
    runs = {name: {"train": [], "inference": []} for name in models}
    for _ in range(args.repeats):
        for name, (model, forward) in models.items():
            for mode in ("train", "inference"):
                runs[name][mode].append(
                    time_model(forward, model, pixels, labels, args.steps, mode == "train", args.precision, device)
                )
    medians = {
        name: {mode: statistics.median(values) for mode, values in modes.items()} for name, modes in runs.items()
    }
    flops = {
        name: {
            mode: count_flops(forward, model, pixels, labels, mode == "train", args.precision, device)
            for mode in ("train", "inference")
        }
        for name, (model, forward) in models.items()
        if "compiled" not in name  # the same model's FLOPs; counting through the compiled graph is not supported
    }
    peak = peak_tflops(device, args.peak_tflops)
    mfu = (
        {
            name: {mode: flops[name][mode] * medians[name][mode] / (peak * 1e12) for mode in flops[name]}
            for name in flops
        }
        if peak
        else None
    )
    ours = medians["perceiver_study"]
    results = {
        **run_record("study.benchmark", argv),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else machine(),
        "commit": git_commit(),
        "preset": args.preset,
        "batch": args.batch,
        "precision": args.precision,
        "attn_implementation": args.attn_implementation,
        "parameters": {name: sum(p.numel() for p in model.parameters()) for name, (model, _) in models.items()},
        "first_step_seconds": first_step_seconds,
        "images_per_second": runs,
        "median_images_per_second": medians,
        "flops_per_image": flops,
        "peak_tflops": peak,
        "mfu": mfu,
        "speedup_vs": {
            name: {mode: ours[mode] / values[mode] for mode in values}
            for name, values in medians.items()
            if name != "perceiver_study"
        },
    }
    print(
        json.dumps(
            {key: results[key] for key in ("device", "parameters", "median_images_per_second", "speedup_vs", "mfu")},
            indent=2,
        )
    )
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
