"""A saved folder, and the same files served as a Hub repo from an offline cache, load through the Auto classes with
`trust_remote_code` in a fresh process where this package cannot be imported."""

import json

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

from modeling_perceiver_study import PerceiverStudyForImageClassification, PerceiverStudyImageProcessor
from modeling_perceiver_study.export import CODE_FILES
from tests.helpers import (
    CIFAR10_LABELS,
    lay_into_hub_cache,
    offline_env,
    run_without_package,
    save_tiny_model_folder,
)

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
image = Image.fromarray((np.arange(32 * 32 * 3) % 251).astype("uint8").reshape(32, 32, 3))  # = test_image()
classify = pipeline("image-classification", model=source, trust_remote_code=True)
print(json.dumps({{
    "config_class": type(config).__name__, "model_class": type(model).__name__, "base_class": type(base).__name__,
    "module": type(model).__module__, "processor_class": type(processor).__name__,
    "logits": logits.tolist(), "pooled": pooled.tolist(),
    "processed": processor(image, return_tensors="pt")["pixel_values"].tolist(),
    "pipeline": classify(image, top_k=3),
}}))
"""


def test_image():
    return Image.fromarray((np.arange(32 * 32 * 3) % 251).astype("uint8").reshape(32, 32, 3))


def expected_outputs(model):
    torch.manual_seed(0)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        return model(pixels).logits, model.perceiver(pixels).pooler_output


def check_loaded(result, model):
    logits, pooled = expected_outputs(model)
    assert result["config_class"] == "PerceiverStudyConfig"
    assert result["model_class"] == "PerceiverStudyForImageClassification"
    assert result["base_class"] == "PerceiverStudyModel"
    assert result["processor_class"] == "PerceiverStudyImageProcessor"
    assert result["module"].startswith("transformers_modules.")  # the saved code file, not this package
    torch.testing.assert_close(torch.tensor(result["logits"]), logits, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(torch.tensor(result["pooled"]), pooled, atol=1e-6, rtol=1e-6)
    processed = PerceiverStudyImageProcessor()(test_image(), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(torch.tensor(result["processed"]), processed)
    with torch.no_grad():
        probabilities = model(processed).logits.softmax(-1)[0]
    top = probabilities.topk(3)
    expected = [{"label": CIFAR10_LABELS[i], "score": s} for s, i in zip(top.values.tolist(), top.indices.tolist())]
    assert [p["label"] for p in result["pipeline"]] == [p["label"] for p in expected]
    for got, want in zip(result["pipeline"], expected):
        assert abs(got["score"] - want["score"]) < 1e-5


def test_saved_folder_has_weights_config_auto_map_and_code(tmp_path):
    model = save_tiny_model_folder(tmp_path / "model")
    folder = tmp_path / "model"
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_perceiver_study.PerceiverStudyConfig",
        "AutoModel": "modeling_perceiver_study.PerceiverStudyModel",
        "AutoModelForImageClassification": "modeling_perceiver_study.PerceiverStudyForImageClassification",
        "AutoImageProcessor": "image_processing_perceiver_study.PerceiverStudyImageProcessor",
    }
    processor_config = json.loads((folder / "preprocessor_config.json").read_text())
    assert processor_config["auto_map"]["AutoImageProcessor"].endswith("PerceiverStudyImageProcessor")
    assert all((folder / name).is_file() for name in CODE_FILES)
    weights = load_file(folder / "model.safetensors")
    assert set(weights) == set(model.state_dict())


def test_round_trip_in_process_gives_identical_logits(tmp_path):
    model = save_tiny_model_folder(tmp_path)
    loaded = PerceiverStudyForImageClassification.from_pretrained(tmp_path).eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x).logits, model(x).logits, rtol=0, atol=0)


def test_folder_loads_with_trust_remote_code_without_the_package(tmp_path):
    model = save_tiny_model_folder(tmp_path / "model")
    output = run_without_package(
        LOAD_AND_PREDICT.format(source=str(tmp_path / "model")),
        env_extra={"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")},
        cwd=tmp_path,
    )
    check_loaded(json.loads(output.strip().splitlines()[-1]), model)


def test_hub_id_loads_from_offline_cache_without_the_package(tmp_path):
    model = save_tiny_model_folder(tmp_path / "model")
    lay_into_hub_cache(tmp_path / "model", "perceiver-study/tiny-test", tmp_path / "hub")
    output = run_without_package(
        LOAD_AND_PREDICT.format(source="perceiver-study/tiny-test"),
        env_extra=offline_env(tmp_path / "hub", tmp_path / "modules"),
        cwd=tmp_path,
    )
    check_loaded(json.loads(output.strip().splitlines()[-1]), model)
