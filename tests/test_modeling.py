import pytest
import torch

from modeling_perceiver_study import (
    PerceiverStudyConfig,
    PerceiverStudyForImageClassification,
    PerceiverStudyModel,
)
from modeling_perceiver_study.modeling_perceiver_study import (
    fourier_position_features,
    layer_norm_linear,
    patches_to_tokens,
)
from modeling_perceiver_study.presets import available_presets, load_preset
from tests.helpers import tiny_config, tiny_model


def images(batch=3, size=32, seed=1):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_classifier_output_shapes_and_loss():
    model = tiny_model()
    out = model(images(), labels=torch.tensor([0, 5, 9]))
    assert out.logits.shape == (3, 10)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    expected = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 5, 9]))
    torch.testing.assert_close(out.loss, expected)


def test_base_model_returns_latents_pooled_and_attention_weights():
    config = tiny_config()
    model = PerceiverStudyModel(config).eval()
    out = model(images(2), output_attentions=True, output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, config.num_latents, config.latent_dim)
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state.mean(dim=1))
    applied_self = config.num_blocks * config.num_self_attends_per_block
    assert len(out.attentions) == applied_self
    assert out.attentions[0].shape == (2, config.num_self_attention_heads, config.num_latents, config.num_latents)
    assert len(out.cross_attentions) == config.num_cross_attends
    assert out.cross_attentions[0].shape == (2, config.num_cross_attention_heads, config.num_latents, 32 * 32)
    torch.testing.assert_close(out.cross_attentions[0].sum(-1), torch.ones(2, 1, config.num_latents))
    assert len(out.hidden_states) == 1 + config.num_cross_attends + applied_self


def test_weight_sharing_schemes_set_parameter_counts():
    def count(**fields):
        return sum(p.numel() for p in PerceiverStudyModel(tiny_config(**fields)).parameters())

    shared = count(num_blocks=4, num_cross_attends=4, share_cross_attend_weights=True, share_block_weights=True)
    unshared_blocks = count(
        num_blocks=4, num_cross_attends=4, share_cross_attend_weights=True, share_block_weights=False
    )
    unshared_all = count(num_blocks=4, num_cross_attends=4, share_cross_attend_weights=False, share_block_weights=False)
    one_block = count(num_blocks=1, num_cross_attends=1)
    model = PerceiverStudyModel(tiny_config(num_blocks=4, num_cross_attends=4))
    cross = sum(p.numel() for p in model.encoder.cross_attends[0].parameters())
    block = sum(p.numel() for p in model.encoder.blocks[0].parameters())
    assert shared == one_block + cross  # a second, shared cross-attend; blocks shared
    assert unshared_blocks == shared + 3 * block
    assert unshared_all == unshared_blocks + 2 * cross


def test_fourier_features_match_formula_and_any_resolution_runs():
    features = fourier_position_features(4, 6, num_bands=3, max_resolution=8)
    assert features.shape == (24, 2 + 4 * 3)
    y, x = features[7, 0], features[7, 1]  # row 1, column 1
    torch.testing.assert_close(y, torch.tensor(-1 + 2 / 3))
    torch.testing.assert_close(x, torch.tensor(-1 + 2 / 5))
    bands = torch.linspace(1, 4, 3)
    torch.testing.assert_close(features[7, 2:5], torch.sin(torch.pi * y * bands))
    torch.testing.assert_close(features[7, 11:14], torch.cos(torch.pi * x * bands))
    model = tiny_model()
    assert model(images(2, size=48)).logits.shape == (2, 10)  # trained size 32, no interpolation needed
    assert model(torch.randn(1, 3, 20, 36)).logits.shape == (1, 10)


def test_patch_tokens_hold_each_patch_and_cut_the_token_count():
    pixels = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    tokens = patches_to_tokens(pixels, 2)
    assert tokens.shape == (2, 4, 12)
    # token 1 is the top-right 2 x 2 patch, values ordered (row, column, channel)
    torch.testing.assert_close(tokens[0, 1], pixels[0, :, 0:2, 2:4].permute(1, 2, 0).reshape(-1))
    model = tiny_model(input_patch_size=2)
    out = model(images(2), output_attentions=True)
    assert out.cross_attentions[0].shape[-1] == 16 * 16
    assert model.config.resolved_fourier_max_resolution == 16
    with pytest.raises(ValueError, match=r"must be multiples of config.input_patch_size=2"):
        model(torch.randn(1, 3, 31, 32))


@pytest.mark.parametrize(
    ("patch", "num_layers", "strides"),
    [(1, None, [1]), (2, None, [2]), (4, None, [2, 2]), (4, 3, [2, 2, 1]), (2, 3, [2, 1, 1]), (1, 2, [1, 1])],
)
def test_conv_stem_gives_one_token_per_patch_from_log2_p_strided_convolutions(patch, num_layers, strides):
    model = tiny_model(input_patch_size=patch, input_stem="conv", conv_stem_channels=8, conv_stem_layers=num_layers)
    model.eval()
    stem = model.perceiver.conv_stem
    convolutions = [layer for layer in stem.layers if isinstance(layer, torch.nn.Conv2d)]
    assert [c.stride for c in convolutions] == [(stride, stride) for stride in strides]
    x = images(2)
    tokens = stem(x)
    assert tokens.shape == (2, (32 // patch) ** 2, 8)
    # token t is grid position (t // W, t % W) of the stem's output, in the same row-major order as the positions
    torch.testing.assert_close(tokens[:, 32 // patch + 1], stem.layers(x)[:, :, 1, 1])
    out = model(x, output_attentions=True)
    assert out.cross_attentions[0].shape[-1] == (32 // patch) ** 2
    # the stem changes the logits: the tokens are its features, not the raw pixel values
    torch.nn.init.zeros_(convolutions[0].weight)
    assert not torch.allclose(model(x).logits, out.logits)


def test_learned_positions_are_one_trained_vector_per_token_place_of_the_trained_grid():
    model = tiny_model(input_patch_size=4, position_encoding_type="learned", learned_position_dim=6)
    encoding = model.perceiver.position_encoding
    assert encoding.position_embeddings.shape == (8 * 8, 6)
    assert model.config.input_dim == 4 * 4 * 3 + 6
    assert 0.8 < float(encoding.position_embeddings.detach().std()) < 1.2  # unit scale, as Fourier features
    x = images(2)
    pixels, positions = encoding.split_tokens(x)
    torch.testing.assert_close(pixels, patches_to_tokens(x, 4))
    assert positions is not None and positions.data_ptr() == encoding.position_embeddings.data_ptr()
    logits = model(x).logits
    with torch.no_grad():  # the positions are read: changing one place's vector changes the logits
        encoding.position_embeddings[5] += 3.0
    assert not torch.allclose(model(x).logits, logits)
    model(x, labels=torch.tensor([1, 2])).loss.backward()
    assert encoding.position_embeddings.grad.abs().sum() > 0
    with pytest.raises(
        ValueError,
        match=r"learned positions exist for 32 x 32 images \(8 x 8 tokens\), got "
        r"pixel_values of shape \(1, 3, 48, 48\)",
    ):
        model(torch.randn(1, 3, 48, 48))


def test_cross_attention_locality_starts_each_head_reading_around_its_centre():
    model = tiny_model(input_patch_size=4, cross_attention_locality=True, num_cross_attention_heads=4)
    cross_attend = model.perceiver.encoder.cross_attends[0]
    locality = cross_attend.locality
    assert locality.centres.shape == (4, model.config.num_latents, 2)
    assert locality.centres.abs().max() <= 1.0  # spread over the image
    torch.testing.assert_close(locality.log_strength.exp(), torch.full((4,), (7 / 2) ** 2))  # e^-1 one token away
    x = images(2)
    with torch.no_grad():  # no content logits: what each head reads is the prior alone
        cross_attend.attention.q_proj.weight.zero_()
        cross_attend.attention.q_proj.bias.zero_()
    weights = model(x, output_attentions=True).cross_attentions[0]  # (B, h, N, M)
    places = fourier_position_features(8, 8, num_bands=1, max_resolution=8)[:, :2]  # (M, 2) token (y, x)
    distances = (locality.centres.detach()[:, :, None] - places).square().sum(-1)  # (h, N, M)
    expected = torch.softmax(-((7 / 2) ** 2) * distances, dim=-1)
    torch.testing.assert_close(weights[0], expected, atol=1e-5, rtol=1e-4)
    assert torch.equal(weights[1].argmax(-1), distances.argmin(-1))  # the nearest token weighs most, for any image

    model.train()
    model(x, labels=torch.tensor([1, 2])).loss.backward()
    assert locality.centres.grad.abs().sum() > 0 and locality.log_strength.grad.abs().sum() > 0


def test_cross_attention_locality_reads_tokens_moved_with_their_positions_the_same():
    model = tiny_model(input_patch_size=4, cross_attention_locality=True, num_cross_attention_heads=4)
    encoding = model.perceiver.position_encoding
    x = images(2)
    logits = model(x).logits
    order = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    split_tokens = encoding.split_tokens

    def moved(pixel_values):
        pixels, positions = split_tokens(pixel_values)
        return pixels[:, order], positions[order]

    encoding.split_tokens = moved
    torch.testing.assert_close(model(x).logits, logits, atol=1e-5, rtol=1e-5)
    encoding.split_tokens = lambda pixel_values: (split_tokens(pixel_values)[0][:, order], split_tokens(x)[1])
    assert not torch.allclose(model(x).logits, logits, atol=1e-3)  # the prior reads places: patches alone moved
    del encoding.split_tokens

    model.config._attn_implementation = "sdpa"  # the bias reaches SDPA's logits as it does the eager ones
    torch.testing.assert_close(model(x).logits, logits, atol=1e-5, rtol=1e-5)
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="cross_attention_locality adds a bias to the attention logits, which "):
        model(x)


def test_patch_whitening_is_the_identity_until_fitted_then_whitens_the_patches():
    model = tiny_model(input_patch_size=4, patch_whitening=True).eval()
    plain = tiny_model(input_patch_size=4).eval()
    x = images(2)
    torch.testing.assert_close(model(x).logits, plain(x).logits, rtol=0, atol=0)  # same seed, identity map

    generator = torch.Generator().manual_seed(0)
    mixing = torch.randn(48, 48, generator=generator) * torch.logspace(0, -2, 48)  # correlated, unequal variances
    patches = torch.randn(20_000, 48, generator=generator) @ mixing.T + 3.0
    whitening = model.perceiver.patch_whitening
    whitening.fit(patches, eps=1e-9)
    whitened = whitening(patches[None])[0].double()  # (n, 48)
    torch.testing.assert_close(whitened.mean(0), torch.zeros(48, dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(torch.cov(whitened.T), torch.eye(48, dtype=torch.float64), atol=2e-3, rtol=0)
    torch.testing.assert_close(whitening.matrix, whitening.matrix.T)  # ZCA: symmetric, keeps the patch layout

    whitening.fit(patches, eps=1.0)  # eps bounds the gain of the weak directions
    assert torch.linalg.eigvalsh(whitening.matrix.double()).max() <= 1.0 + 1e-6
    tokens = patches_to_tokens(x, 4)
    pixels, _ = model.perceiver.position_encoding.split_tokens(x)
    torch.testing.assert_close(whitening(pixels), (tokens - whitening.mean) @ whitening.matrix.T)
    assert not torch.allclose(model(x).logits, plain(x).logits)  # the model reads the whitened patches

    with pytest.raises(ValueError, match=r"fitted on patches of shape \(n >= 2, 48\), got \(10, 12\)"):
        whitening.fit(torch.randn(10, 12))
    with pytest.raises(ValueError, match="NaN or infinite"):
        whitening.fit(torch.full((10, 48), float("nan")))


def test_position_features_follow_input_dtype_under_autocast():
    model = tiny_model()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(images(2)).logits
    assert torch.isfinite(logits.float()).all()
    encoding = model.perceiver.position_encoding
    assert encoding(images(1).bfloat16()).dtype == torch.bfloat16
    assert len(encoding._cache) >= 1  # computed once per resolution, then reused


@pytest.mark.parametrize("bias", [True, False])
def test_split_layer_norm_linear_equals_concatenate_normalize_project(bias):
    """The cross-attention's key/value projection never builds [pixels, positions]; values and gradients must equal
    the plain LayerNorm + Linear over the concatenation (float64, so only a wrong formula can fail this)."""
    generator = torch.Generator().manual_seed(0)
    pixels = (3.0 * torch.randn(2, 16, 5, generator=generator, dtype=torch.float64) + 1.0).requires_grad_()
    positions = torch.randn(16, 11, generator=generator, dtype=torch.float64)
    norm = torch.nn.LayerNorm(16, eps=1e-5).double()
    linear = torch.nn.Linear(16, 7, bias=bias).double()
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        norm.weight.normal_(generator=generator)
        norm.bias.normal_(generator=generator)

    def grads(output):
        output.square().sum().backward()
        parameters = [pixels, norm.weight, norm.bias, linear.weight] + ([linear.bias] if bias else [])
        result = [p.grad.clone() for p in parameters]
        for p in parameters:
            p.grad = None
        return result

    plain = linear(norm(torch.cat([pixels, positions.expand(2, -1, -1)], dim=-1)))
    plain_grads = grads(plain)
    split = layer_norm_linear(pixels, positions, norm, linear.weight, linear.bias)
    torch.testing.assert_close(split, plain, rtol=1e-10, atol=1e-10)
    for got, expected in zip(grads(split), plain_grads):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def test_eager_and_sdpa_agree_in_fp32():
    model = tiny_model(num_cross_attention_heads=2, cross_attention_qk_dim=32)
    x = images(4)
    model.config._attn_implementation = "sdpa"
    sdpa = model(x).logits
    model.config._attn_implementation = "eager"
    eager = model(x).logits
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("stem", ["patches", "conv"])
def test_gradient_reaches_every_parameter(stem):
    model = tiny_model(
        num_blocks=3, num_cross_attends=3, share_block_weights=False, input_patch_size=2, input_stem=stem
    ).train()
    model(images(4), labels=torch.tensor([1, 2, 3, 4])).loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    x, labels = images(4), torch.tensor([1, 2, 3, 4])
    plain = tiny_model().train()
    plain(x, labels=labels).loss.backward()
    checkpointed = tiny_model().train()
    checkpointed.activation_checkpointing_enable()
    calls = []
    first_op = checkpointed.perceiver.encoder.cross_attends[0].latents_norm
    first_op.register_forward_pre_hook(lambda *args: calls.append(1))
    checkpointed(x, labels=labels).loss.backward()
    assert len(calls) == 2  # run in forward, then recomputed in backward
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_same_seed_same_model_and_outputs():
    a, b = tiny_model(seed=3), tiny_model(seed=3)
    torch.testing.assert_close(a(images()).logits, b(images()).logits, rtol=0, atol=0)
    assert not torch.equal(a(images()).logits, tiny_model(seed=4)(images()).logits)


def test_dropout_and_drop_path_only_in_training():
    model = tiny_model(hidden_dropout_prob=0.3, drop_path_rate=0.3)
    x = images()
    torch.testing.assert_close(model(x).logits, model(x).logits)
    model.train()
    assert not torch.equal(model(x).logits, model(x).logits)


@pytest.mark.parametrize("preset", available_presets())
def test_every_preset_builds_and_runs_a_forward_pass(preset):
    config = load_preset(preset, num_labels=10)
    model = PerceiverStudyForImageClassification(config).eval()
    size = 16 if preset == "paper-imagenet" else config.image_size  # Fourier features run at any size
    with torch.no_grad():
        logits = model(torch.randn(1, 3, size, size)).logits
    assert logits.shape == (1, 10) and torch.isfinite(logits).all()


def test_soft_labels_give_soft_cross_entropy():
    model = tiny_model()
    x = images(2)
    hard = torch.tensor([3, 7])
    soft = torch.nn.functional.one_hot(hard, 10).float()
    torch.testing.assert_close(model(x, labels=soft).loss, model(x, labels=hard).loss)


@pytest.mark.parametrize(
    ("pixel_values", "error", "message"),
    [
        (torch.randn(2, 1, 32, 32), ValueError, "pixel_values has 1 channels.*config.num_channels=3"),
        (torch.randn(3, 32, 32), ValueError, r"must have 4 dimensions.*got shape \(3, 32, 32\)"),
        (torch.randint(0, 255, (2, 3, 32, 32), dtype=torch.uint8), TypeError, "must be floating point.*uint8"),
        ([[0.0]], TypeError, "pixel_values must be a torch.Tensor"),
        (torch.randn(0, 3, 32, 32), ValueError, r"at least one image of at least one pixel.*\(0, 3, 32, 32\)"),
        (torch.randn(2, 3, 0, 0), ValueError, r"at least one image of at least one pixel.*\(2, 3, 0, 0\)"),
    ],
)
def test_bad_pixel_values_raise_clear_errors(pixel_values, error, message):
    with pytest.raises(error, match=message):
        tiny_model()(pixel_values)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (torch.tensor([0, 10]), r"labels must be in \[0, 9\].*got \[10\]"),
        (torch.tensor([-1, 2]), r"labels must be in \[0, 9\].*got \[-1\]"),
        (torch.tensor([[1], [2]]), "labels must be integer class ids of shape"),
        (torch.ones(2, 3), r"soft labels must have shape \(batch, num_labels\)"),
    ],
)
def test_bad_labels_raise_clear_errors(labels, message):
    with pytest.raises(ValueError, match=message):
        tiny_model()(images(2), labels=labels)


def test_config_changed_after_construction_is_rechecked():
    config = PerceiverStudyConfig(num_latents=4, latent_dim=16, num_self_attention_heads=2)
    config.num_latents = 0
    with pytest.raises(ValueError, match="num_latents"):
        PerceiverStudyModel(config)
