import json

import pytest

from modeling_perceiver_study import PerceiverStudyConfig
from modeling_perceiver_study.presets import available_presets, load_preset, preset_fields
from modeling_perceiver_study.training import parse_arguments, parse_overrides
from tests.helpers import REPO_ROOT


def test_defaults_are_valid_and_derived_sizes_follow_fields():
    config = PerceiverStudyConfig(num_fourier_bands=8, num_channels=1)
    assert config.model_type == "perceiver_study"
    assert config.input_dim == 1 + 2 + 4 * 8
    assert config.resolved_fourier_max_resolution == config.image_size
    assert config.resolved_cross_attention_qk_dim == config.latent_dim
    assert PerceiverStudyConfig(cross_attention_qk_dim=64).resolved_cross_attention_v_dim == 64
    patched = PerceiverStudyConfig(input_patch_size=4, num_fourier_bands=8)
    assert patched.input_dim == 3 * 16 + 2 + 4 * 8 and patched.resolved_fourier_max_resolution == 8
    stem = PerceiverStudyConfig(input_patch_size=4, input_stem="conv", conv_stem_channels=24, num_fourier_bands=8)
    assert stem.input_dim == 24 + 2 + 4 * 8


def test_conv_stem_needs_a_power_of_two_patch():
    with pytest.raises(ValueError, match="input_stem 'conv' needs input_patch_size a power of two"):
        PerceiverStudyConfig(image_size=24, input_patch_size=6, input_stem="conv")


def test_conv_stem_layers_cover_the_strided_convolutions():
    assert PerceiverStudyConfig(input_patch_size=4, input_stem="conv").resolved_conv_stem_layers == 2
    assert PerceiverStudyConfig(input_stem="conv").resolved_conv_stem_layers == 1
    deeper = PerceiverStudyConfig(input_patch_size=4, input_stem="conv", conv_stem_layers=3)
    assert deeper.resolved_conv_stem_layers == 3
    with pytest.raises(ValueError, match=r"conv_stem_layers \(1\) must be at least log2\(input_patch_size\) = 2"):
        PerceiverStudyConfig(input_patch_size=4, input_stem="conv", conv_stem_layers=1)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("num_latents", 0, "num_latents must be an integer >= 1"),
        ("latent_dim", -4, "latent_dim must be an integer >= 1"),
        ("num_latents", 2.5, "num_latents must be an integer"),
        ("num_blocks", True, "num_blocks must be an integer"),
        ("hidden_dropout_prob", 1.0, "hidden_dropout_prob must be a number in [0.0, 1.0)"),
        ("drop_path_rate", -0.1, "drop_path_rate must be a number in [0.0, 1.0)"),
        ("layer_norm_eps", 0.0, "layer_norm_eps must be a number in (0.0, 1.0]"),
        ("pooling", "cls", "pooling must be one of ('mean', 'max')"),
        ("hidden_act", "tanhh", "hidden_act must be one of"),
        ("share_block_weights", "yes", "share_block_weights must be true or false"),
        ("num_cross_attends", 3, "num_cross_attends must be between 1 and num_blocks (1)"),
        ("num_self_attention_heads", 3, "self_attention_qk_dim (resolved to 256) must be divisible by"),
        ("cross_attention_v_dim", 0, "cross_attention_v_dim must be an integer >= 1"),
        ("input_patch_size", 5, "input_patch_size (5) must divide image_size (32)"),
        ("input_patch_size", 0, "input_patch_size must be an integer >= 1"),
        ("input_stem", "resnet", "input_stem must be one of ('patches', 'conv')"),
        ("conv_stem_channels", 0, "conv_stem_channels must be an integer >= 1"),
        ("conv_stem_layers", 0, "conv_stem_layers must be an integer >= 1"),
        ("position_encoding_type", "rope", "position_encoding_type must be one of ('fourier', 'learned')"),
        ("learned_position_dim", 0, "learned_position_dim must be an integer >= 1"),
        ("cross_attention_locality", "yes", "cross_attention_locality must be true or false"),
        ("patch_whitening", 1, "patch_whitening must be true or false"),
        ("conv_stem_layers", 3, "conv_stem_layers (3) applies only to input_stem 'conv', got input_stem 'patches'"),
    ],
)
def test_invalid_values_raise_value_error_naming_field_and_range(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        PerceiverStudyConfig(**{field: value})


def test_patch_whitening_needs_the_raw_patches_stem():
    with pytest.raises(ValueError, match="patch_whitening whitens raw patch values; it needs input_stem 'patches'"):
        PerceiverStudyConfig(patch_whitening=True, input_stem="conv", input_patch_size=4)


def test_cross_attention_locality_needs_fourier_positions_for_the_token_places():
    with pytest.raises(ValueError, match="cross_attention_locality reads each token's place from its Fourier position"):
        PerceiverStudyConfig(cross_attention_locality=True, position_encoding_type="learned")


def test_round_trip_through_json(tmp_path):
    config = PerceiverStudyConfig(
        num_latents=16,
        latent_dim=64,
        num_blocks=3,
        num_cross_attends=2,
        id2label={0: "a", 1: "b"},
        label2id={"a": 0, "b": 1},
    )
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "perceiver_study"
    assert set(saved["auto_map"]) >= {"AutoConfig", "AutoModel", "AutoModelForImageClassification"}
    loaded = PerceiverStudyConfig.from_pretrained(tmp_path)
    assert (loaded.num_latents, loaded.num_blocks, loaded.num_cross_attends) == (16, 3, 2)
    assert loaded.id2label == {0: "a", 1: "b"} and loaded.num_labels == 2


def test_presets_exist_and_seed_matches_the_original_study():
    assert {"tiny", "cpu-small", "seed", "paper-imagenet"} <= set(available_presets())
    seed = load_preset("seed")
    assert (seed.num_latents, seed.latent_dim, seed.num_cross_attends, seed.num_blocks) == (128, 256, 1, 1)
    assert seed.num_self_attends_per_block == 4 and seed.pooling == "mean"
    paper = load_preset("paper-imagenet")
    assert (paper.num_latents, paper.latent_dim, paper.num_blocks, paper.num_cross_attends) == (512, 1024, 8, 8)
    assert paper.share_cross_attend_weights and paper.share_block_weights and paper.num_self_attends_per_block == 6


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown preset 'huge'.*tiny"):
        preset_fields("huge")


def test_a_preset_file_with_a_misspelt_field_is_refused_like_an_override(tmp_path):
    path = tmp_path / "typo.json"
    path.write_text('{"_comment": "comments are fine", "num_latnets": 16, "latent_dim": 64}')
    with pytest.raises(ValueError, match=r"preset file .*typo.json names unknown config fields \['num_latnets'\]"):
        preset_fields(str(path))
    with pytest.raises(ValueError, match=r"config_overrides names unknown config fields \['num_latnets'\]"):
        parse_overrides("num_latnets=16")


RECIPES = sorted((REPO_ROOT / "configuration" / "recipes").glob("*.json"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.stem)
def test_every_recipe_parses_and_names_a_preset_that_builds(recipe):
    model_args, data_args, training_args = parse_arguments([str(recipe), "--use_cpu", "true"])
    config = load_preset(model_args.preset)
    assert data_args.dataset_name and training_args.num_train_epochs > 0 and config.num_latents >= 1


def test_a_recipe_path_outside_the_checkout_names_the_shipped_recipe(tmp_path, monkeypatch):
    """The README's `configuration/recipes/...` paths work from any folder, as they must from a wheel install
    (.ci/wheel-smoke checks the wheel itself); a local file of that path comes first."""
    monkeypatch.chdir(tmp_path)
    model_args, _, training_args = parse_arguments(["configuration/recipes/seed.json", "--use_cpu", "true"])
    assert model_args.preset == "seed" and training_args.output_dir == "outputs/seed"

    local = tmp_path / "configuration" / "recipes" / "seed.json"
    local.parent.mkdir(parents=True)
    local.write_text(json.dumps({"preset": "tiny", "output_dir": "outputs/mine"}))
    model_args, _, training_args = parse_arguments(["configuration/recipes/seed.json", "--use_cpu", "true"])
    assert model_args.preset == "tiny" and training_args.output_dir == "outputs/mine"

    with pytest.raises(FileNotFoundError, match=r"recipe file configuration/recipes/sed\.json does not exist .*seed"):
        parse_arguments(["configuration/recipes/sed.json"])
