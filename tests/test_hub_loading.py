"""A saved folder, and the same files served as a Hub repo from an offline cache, load through the Auto classes with
`trust_remote_code` in a fresh process where this package cannot be imported."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageClassification

from modeling_perceiver_study import (
    PerceiverStudyForImageClassification,
    PerceiverStudyImageProcessor,
    PerceiverStudyModel,
)
from modeling_perceiver_study.export import CODE_FILES, save_model_folder
from tests.helpers import (
    LOAD_AND_PREDICT,
    check_loaded,
    lay_into_hub_cache,
    offline_env,
    run_without_package,
    save_tiny_model_folder,
    tiny_model,
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


def test_conv_stem_batchnorm_statistics_survive_the_round_trip(tmp_path):
    model = tiny_model(input_patch_size=4, input_stem="conv", conv_stem_channels=8).train()
    model(torch.randn(8, 3, 32, 32) * 3 + 1)  # a training pass moves BatchNorm's running statistics
    model.eval()
    save_model_folder(model, PerceiverStudyImageProcessor(), tmp_path)
    loaded = PerceiverStudyForImageClassification.from_pretrained(tmp_path).eval()
    norm = loaded.perceiver.conv_stem.layers[1]
    assert not torch.equal(norm.running_mean, torch.zeros_like(norm.running_mean))
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x).logits, model(x).logits, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("fields", "trained_name"),
    [
        ({"position_encoding_type": "learned"}, "perceiver.position_encoding.position_embeddings"),
        ({"cross_attention_locality": True}, "perceiver.encoder.cross_attends.0.locality.centres"),
    ],
    ids=["learned-positions", "locality"],
)
def test_trained_position_parameters_load_in_a_fresh_process_without_the_package(tmp_path, fields, trained_name):
    model = save_tiny_model_folder(tmp_path / "model", input_patch_size=4, **fields)
    weights = load_file(tmp_path / "model" / "model.safetensors")
    torch.testing.assert_close(weights[trained_name], model.state_dict()[trained_name], rtol=0, atol=0)
    output = run_without_package(
        LOAD_AND_PREDICT.format(source=str(tmp_path / "model")),
        env_extra={"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")},
        cwd=tmp_path,
    )
    check_loaded(json.loads(output.strip().splitlines()[-1]), model)


def test_fitted_patch_whitening_loads_in_a_fresh_process_without_the_package(tmp_path):
    model = tiny_model(input_patch_size=4, patch_whitening=True)
    generator = torch.Generator().manual_seed(0)
    correlated = torch.randn(500, 48, generator=generator) @ torch.randn(48, 48, generator=generator)
    model.perceiver.patch_whitening.fit(correlated)
    save_model_folder(model, PerceiverStudyImageProcessor(), tmp_path / "model")
    weights = load_file(tmp_path / "model" / "model.safetensors")
    for name in ("mean", "matrix"):
        stored = weights[f"perceiver.patch_whitening.{name}"]
        assert not torch.equal(stored, torch.eye(48) if name == "matrix" else torch.zeros(48))  # the fitted map
        torch.testing.assert_close(stored, getattr(model.perceiver.patch_whitening, name), rtol=0, atol=0)
    loaded = PerceiverStudyForImageClassification.from_pretrained(tmp_path / "model").eval()
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x).logits, model.eval()(x).logits, rtol=0, atol=0)
    output = run_without_package(
        LOAD_AND_PREDICT.format(source=str(tmp_path / "model")),
        env_extra={"HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")},
        cwd=tmp_path,
    )
    check_loaded(json.loads(output.strip().splitlines()[-1]), model)


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


def test_checkpoint_whose_config_does_not_match_the_weights_is_refused(tmp_path):
    save_tiny_model_folder(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "latent_dim": 64}))
    expected = r"does not match its config: classifier\.weight has shape \(10, 32\) in the weights but \(10, 64\)"
    with pytest.raises(ValueError, match=expected + r".*; and \d+ more\. The config \(config\.json\) and the weights"):
        PerceiverStudyForImageClassification.from_pretrained(tmp_path)


def test_checkpoint_with_layers_the_config_lacks_is_refused(tmp_path):
    save_tiny_model_folder(tmp_path, share_block_weights=False)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "share_block_weights": True}))
    with pytest.raises(ValueError, match=r"perceiver\.encoder\.blocks\.1\..* is in the weights but not in the model"):
        AutoModelForImageClassification.from_pretrained(tmp_path, trust_remote_code=True)


def test_new_head_on_purpose_and_base_model_from_a_classifier_load(tmp_path):
    save_tiny_model_folder(tmp_path)
    model = PerceiverStudyForImageClassification.from_pretrained(tmp_path, num_labels=3, ignore_mismatched_sizes=True)
    assert model.classifier.out_features == 3
    base = PerceiverStudyModel.from_pretrained(tmp_path)  # leaves the classifier's weights behind
    assert base.latents.shape == (8, 32)


OLD_FOLDER = Path(__file__).parent / "fixtures" / "model-folder-2026-11-30"


def expected_old_logits():
    expected = json.loads((OLD_FOLDER / "expected_logits.json").read_text())
    torch.manual_seed(expected["seed"])
    return torch.randn(*expected["shape"]), torch.tensor(expected["logits"])


def test_a_folder_saved_by_an_earlier_version_loads_with_the_package():
    """A tiny model folder saved by commit 0965c5f (before the package's layout changed) loads through the Auto
    classes with today's package and gives the logits recorded when it was saved."""
    pixels, expected = expected_old_logits()
    model = AutoModelForImageClassification.from_pretrained(OLD_FOLDER).eval()
    assert type(model).__module__ == "modeling_perceiver_study.modeling_perceiver_study"
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, expected, atol=1e-5, rtol=1e-5)


def test_a_folder_saved_by_an_earlier_version_loads_without_the_package(tmp_path):
    """The same folder with its own code files (trust_remote_code), in a process where the package is absent."""
    pixels, expected = expected_old_logits()
    code = f"""
        import json, torch
        from transformers import AutoModelForImageClassification
        model = AutoModelForImageClassification.from_pretrained({str(OLD_FOLDER)!r}, trust_remote_code=True).eval()
        torch.manual_seed({json.loads((OLD_FOLDER / "expected_logits.json").read_text())["seed"]})
        with torch.no_grad():
            print(json.dumps(model(torch.randn(2, 3, 32, 32)).logits.tolist()))
        """
    output = run_without_package(code, env_extra={"HF_MODULES_CACHE": str(tmp_path / "modules")})
    torch.testing.assert_close(
        torch.tensor(json.loads(output.strip().splitlines()[-1])), expected, atol=1e-5, rtol=1e-5
    )
