"""Smoke test of scripts/benchmark.py (no timing assertions: speed is recorded in docs, never asserted)."""

import json

from scripts.benchmark import main


def test_benchmark_runs_every_model_and_writes_ratios(tmp_path):
    preset = tmp_path / "small.json"
    preset.write_text(
        json.dumps(
            {
                "num_latents": 8,
                "latent_dim": 32,
                "num_self_attends_per_block": 1,
                "num_self_attention_heads": 2,
                "num_fourier_bands": 64,
                "image_size": 8,
            }
        )
    )
    output = tmp_path / "bench.json"
    assert (
        main(
            [
                "--preset",
                str(preset),
                "--batch",
                "2",
                "--repeats",
                "2",
                "--steps",
                "1",
                "--precision",
                "fp32",
                "--device",
                "cpu",
                "--output",
                str(output),
            ]
        )
        == 0
    )
    results = json.loads(output.read_text())
    assert {"perceiver_study", "transformers"} <= set(results["median_images_per_second"])
    assert len(results["images_per_second"]["transformers"]["train"]) == 2
    assert set(results["speedup_vs"]["transformers"]) == {"train", "inference"}
    assert results["speedup_vs"]["transformers"]["train"] > 0


def test_benchmark_times_an_earlier_revision_and_other_kernels_side_by_side(tmp_path):
    """`--against_revision` imports the Hub files as committed at that revision, beside the current ones."""
    import subprocess

    if subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        import pytest

        pytest.skip("not a git checkout")
    preset = tmp_path / "small.json"
    preset.write_text(
        json.dumps(
            {
                "num_latents": 8,
                "latent_dim": 32,
                "num_self_attends_per_block": 1,
                "num_self_attention_heads": 2,
                "image_size": 8,
            }
        )
    )
    output = tmp_path / "bench.json"
    argv = [
        "--preset",
        str(preset),
        "--batch",
        "2",
        "--repeats",
        "1",
        "--steps",
        "1",
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--no_peers",
        "--attn_implementation",
        "eager,sdpa",
        "--against_revision",
        "HEAD",
        "--output",
        str(output),
    ]
    assert main(argv) == 0
    results = json.loads(output.read_text())
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert set(results["median_images_per_second"]) == {
        "perceiver_study",
        "perceiver_study[sdpa]",
        f"perceiver_study@{head[:7]}",
    }
    assert results["commit"].startswith(head)
