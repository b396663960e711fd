"""A saved folder, and the same files served as a Hub repo from an offline cache, load through the Auto classes with
`trust_remote_code` in a fresh process where this package cannot be imported."""

import json

import torch
from safetensors.torch import load_file

from modeling_perceiver_study import PerceiverStudyForImageClassification
from modeling_perceiver_study.export import CODE_FILES
from tests.helpers import (
    LOAD_AND_PREDICT,
    check_loaded,
    lay_into_hub_cache,
    offline_env,
    run_without_package,
    save_tiny_model_folder,
)


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
