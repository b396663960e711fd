"""ONNX export: a tiny model end to end (dynamic batch, height and width; onnxruntime against PyTorch; learned
positions at their trained size; the cross-attention locality prior; patch whitening), and every refusal named."""

import json

import numpy as np
import pytest
import torch

from modeling_perceiver_study import onnx_export
from modeling_perceiver_study.onnx_export import check_images, export_main
from tests.helpers import save_tiny_model_folder


@pytest.mark.parametrize(
    "overrides",
    [
        {"input_patch_size": 4},
        {"input_patch_size": 4, "input_stem": "conv", "conv_stem_channels": 8},
        {},
        {"input_patch_size": 4, "cross_attention_locality": True},
        {"input_patch_size": 4, "patch_whitening": True},
    ],
    ids=["patches", "conv-stem", "pixels", "locality", "whitening"],
)
def test_export_matches_pytorch_at_any_batch_and_size(tmp_path, overrides, capsys):
    model = save_tiny_model_folder(tmp_path / "model", seed=5, **overrides)
    output = tmp_path / "out" / "model.onnx"
    assert export_main(["--model_dir", str(tmp_path / "model"), "--output", str(output), "--benchmark", "8"]) == 0
    assert "onnxruntime matches PyTorch" in capsys.readouterr().out
    record = json.loads(output.with_suffix(".json").read_text())
    assert record["tolerance"] == 1e-4 and max(record["max_abs_logit_difference"].values()) <= 1e-4
    checked = {"6 images", "1 image", "6 images at 48 x 48", "6 images at 16 x 16"}
    assert set(record["max_abs_logit_difference"]) == checked
    assert record["benchmark"]["batch_size"] == 8 and record["benchmark"]["onnxruntime_images_per_second"] > 0

    import onnxruntime

    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    for shape in [(3, 3, 32, 32), (1, 3, 40, 24)]:  # a batch and a size the check did not use
        pixels = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        (logits,) = session.run(["logits"], {"pixel_values": pixels.numpy()})
        with torch.no_grad():
            expected = model(pixel_values=pixels).logits.numpy()
        assert np.abs(logits - expected).max() <= 1e-4


def test_learned_positions_export_with_a_dynamic_batch_at_the_trained_size(tmp_path, capsys):
    model = save_tiny_model_folder(
        tmp_path / "model", seed=5, input_patch_size=4, position_encoding_type="learned", learned_position_dim=6
    )
    output = tmp_path / "out" / "model.onnx"
    assert export_main(["--model_dir", str(tmp_path / "model"), "--output", str(output)]) == 0
    record = json.loads(output.with_suffix(".json").read_text())
    assert set(record["max_abs_logit_difference"]) == {"6 images", "1 image"}
    assert record["dynamic_axes"]["pixel_values"] == ["batch"]

    import onnxruntime

    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    (logits,) = session.run(["logits"], {"pixel_values": pixels.numpy()})
    with torch.no_grad():
        assert np.abs(logits - model(pixel_values=pixels).logits.numpy()).max() <= 1e-4


def test_a_graph_that_does_not_match_is_not_written(tmp_path, monkeypatch, capsys):
    save_tiny_model_folder(tmp_path / "model", input_patch_size=4)
    monkeypatch.setattr(onnx_export, "compare_logits", lambda session, model, pixels: 0.5)
    output = tmp_path / "model.onnx"
    assert export_main(["--model_dir", str(tmp_path / "model"), "--output", str(output)]) == 2
    assert "differ from PyTorch's by more than 0.0001" in capsys.readouterr().err
    assert not output.exists() and not output.with_suffix(".json").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "model"]  # no temporary left behind


def test_refusals_name_the_problem(tmp_path, monkeypatch, capsys):
    assert export_main(["--model_dir", str(tmp_path / "nowhere")]) == 2
    assert "nowhere does not exist" in capsys.readouterr().err
    (tmp_path / "vit").mkdir()
    (tmp_path / "vit" / "config.json").write_text('{"model_type": "vit"}')  # refused from its config, no weights
    assert export_main(["--model_dir", str(tmp_path / "vit")]) == 2
    assert "holds a 'vit' model, not a Perceiver Study model" in capsys.readouterr().err
    save_tiny_model_folder(tmp_path / "model", input_patch_size=4)
    (tmp_path / "notes.txt").write_text("not an image")
    arguments = ["--model_dir", str(tmp_path / "model"), "--images", str(tmp_path / "notes.txt")]
    assert export_main(arguments) == 2
    assert "notes.txt is not an image" in capsys.readouterr().err
    assert export_main([*arguments[:2], "--output", str(tmp_path / "old.onnx"), "--opset", "7"]) == 2
    assert "could not be converted to opset 7: the exporter left it at opset 18" in capsys.readouterr().err
    assert not (tmp_path / "old.onnx").exists()
    monkeypatch.setattr(onnx_export, "_missing", lambda name: name == "onnxruntime")
    assert export_main(["--model_dir", str(tmp_path / "model")]) == 2
    assert "needs onnxruntime: pip install 'perceiver-study[export]'" in capsys.readouterr().err


def test_the_default_check_images_are_the_shipped_examples():
    images = check_images(None)
    assert len(images) == 6 and all(image.size == (32, 32) and image.mode == "RGB" for image in images)
