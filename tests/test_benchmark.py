"""Smoke test of study/benchmark.py (no timing assertions: speed is recorded in docs, never asserted)."""

import json
import subprocess

import pytest

from study.benchmark import main


def small_preset(tmp_path):
    """A seconds-sized architecture the transformers peer can be built at (64 Fourier bands, pixel tokens)."""
    preset = tmp_path / "small.json"
    fields = {
        "num_latents": 8,
        "latent_dim": 32,
        "num_self_attends_per_block": 1,
        "num_self_attention_heads": 2,
        "num_fourier_bands": 64,
        "image_size": 8,
    }
    preset.write_text(json.dumps(fields))
    return preset


def quick_run(tmp_path, *flags) -> dict:
    output = tmp_path / "bench.json"
    argv = ["--preset", str(small_preset(tmp_path)), "--batch", "2", "--steps", "1", "--precision", "fp32"]
    assert main([*argv, "--device", "cpu", "--output", str(output), *flags]) == 0
    return json.loads(output.read_text())


def test_benchmark_runs_every_model_and_writes_ratios(tmp_path):
    results = quick_run(tmp_path, "--repeats", "2")
    assert {"perceiver_study", "transformers"} <= set(results["median_images_per_second"])
    assert len(results["images_per_second"]["transformers"]["train"]) == 2
    assert set(results["speedup_vs"]["transformers"]) == {"train", "inference"}
    assert results["speedup_vs"]["transformers"]["train"] > 0


def test_benchmark_times_an_earlier_revision_and_other_kernels_side_by_side(tmp_path):
    """`--against_revision` imports the Hub files as committed at that revision, beside the current ones."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    head = head.stdout.strip()
    flags = ["--repeats", "1", "--no_peers", "--attn_implementation", "eager,sdpa", "--against_revision", "HEAD"]
    results = quick_run(tmp_path, *flags)
    assert set(results["median_images_per_second"]) == {
        "perceiver_study",
        "perceiver_study[sdpa]",
        f"perceiver_study@{head[:7]}",
    }
    assert results["commit"].startswith(head)


def test_unknown_revision_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", str(small_preset(tmp_path)), "--no_peers", "--against_revision", "no-such-revision"])
    assert exit_info.value.code == 2
    assert "--against_revision 'no-such-revision' is not a commit" in capsys.readouterr().err
