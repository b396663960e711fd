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


def test_flops_are_counted_by_torch_and_give_the_mfu_against_a_stated_peak(tmp_path):
    """FLOPs grow linearly with the batch, a training step costs 2 to 3.5 forward passes, and `mfu` is
    FLOPs x images/s / peak, so the figure in the JSON can be checked by hand."""
    results = quick_run(tmp_path, "--repeats", "1", "--no_peers", "--peak_tflops", "2.0")
    flops = results["flops_per_image"]["perceiver_study"]
    # backward is about twice the forward, less the gradients no input needs (the pixels, the position features)
    assert flops["inference"] > 0 and 2.0 < flops["train"] / flops["inference"] < 3.5
    expected = flops["train"] * results["median_images_per_second"]["perceiver_study"]["train"] / 2.0e12
    assert results["mfu"]["perceiver_study"]["train"] == pytest.approx(expected)
    assert results["peak_tflops"] == 2.0

    from study.benchmark import count_flops

    config = json.loads(small_preset(tmp_path).read_text())
    import torch

    from modeling_perceiver_study import PerceiverStudyForImageClassification
    from modeling_perceiver_study.presets import load_preset

    model = PerceiverStudyForImageClassification(load_preset(str(small_preset(tmp_path)), num_labels=10))
    size = config["image_size"]

    def per_image(batch):
        pixels, labels = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))
        forward = lambda x, y: model(x, labels=y)  # noqa: E731
        return count_flops(forward, model, pixels, labels, True, "fp32", torch.device("cpu"))

    # Linear in the batch: a per-image part plus the part the model does once per batch (the position features'
    # projection), so the counts of batches 2, 4 and 6 lie on a line.
    totals = [batch * per_image(batch) for batch in (2, 4, 6)]
    assert totals[2] - totals[1] == pytest.approx(totals[1] - totals[0])


def test_a_cpu_without_a_stated_peak_has_no_mfu(tmp_path):
    results = quick_run(tmp_path, "--repeats", "1", "--no_peers")
    assert results["mfu"] is None and results["flops_per_image"]["perceiver_study"]["train"] > 0
