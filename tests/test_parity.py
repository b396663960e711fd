"""The architecture is the Perceiver: with the same configuration and weights, our encoder's latents equal those of
transformers' own `PerceiverModel` with its Fourier image preprocessor."""

import torch
from transformers import PerceiverConfig, PerceiverModel
from transformers.models.perceiver.modeling_perceiver import PerceiverImagePreprocessor

from modeling_perceiver_study import PerceiverStudyConfig, PerceiverStudyModel

LATENTS, WIDTH, BANDS, SIZE = 16, 64, 8, 16


def build_pair(num_blocks=2, self_attends=2):
    ours = PerceiverStudyModel(
        PerceiverStudyConfig(
            image_size=SIZE,
            num_latents=LATENTS,
            latent_dim=WIDTH,
            num_blocks=num_blocks,
            num_cross_attends=1,
            num_self_attends_per_block=self_attends,
            share_block_weights=True,
            num_cross_attention_heads=1,
            num_self_attention_heads=4,
            cross_attention_widening_factor=1,
            self_attention_widening_factor=2,
            num_fourier_bands=BANDS,
            hidden_act="gelu",
        )
    ).eval()
    hf_config = PerceiverConfig(
        num_latents=LATENTS,
        d_latents=WIDTH,
        num_blocks=num_blocks,
        num_self_attends_per_block=self_attends,
        num_self_attention_heads=4,
        num_cross_attention_heads=1,
        qk_channels=WIDTH,
        v_channels=WIDTH,
        cross_attention_widening_factor=1,
        self_attention_widening_factor=2,
        hidden_act="gelu",
        attention_probs_dropout_prob=0.0,
        use_query_residual=True,
        image_size=SIZE,
    )
    preprocessor = PerceiverImagePreprocessor(
        hf_config,
        prep_type="pixels",
        spatial_downsample=1,
        fourier_position_encoding_kwargs={
            "concat_pos": True,
            "max_resolution": (SIZE, SIZE),
            "num_bands": BANDS,
            "sine_only": False,
        },
    )
    theirs = PerceiverModel(hf_config, input_preprocessor=preprocessor).eval()
    copy_weights(theirs, ours)
    return ours, theirs


def copy_weights(theirs, ours):
    """Map transformers' parameter names onto ours; every parameter of both models is used exactly once."""

    def layer_map(hf_prefix, our_prefix, cross):
        pairs = {
            "attention.self.layernorm1": "latents_norm" if cross else "attention_norm",
            "attention.self.query": "attention.q_proj",
            "attention.self.key": "attention.k_proj",
            "attention.self.value": "attention.v_proj",
            "attention.output.dense": "attention.o_proj",
            "layernorm": "mlp_norm",
            "mlp.dense1": "mlp.fc1",
            "mlp.dense2": "mlp.fc2",
        }
        if cross:
            pairs["attention.self.layernorm2"] = "inputs_norm"
        return {f"{hf_prefix}.{a}.{p}": f"{our_prefix}.{b}.{p}" for a, b in pairs.items() for p in ("weight", "bias")}

    mapping = {"embeddings.latents": "latents", **layer_map("encoder.cross_attention", "encoder.cross_attends.0", True)}
    for i in range(len(ours.encoder.blocks[0])):
        mapping.update(layer_map(f"encoder.self_attends.{i}", f"encoder.blocks.0.{i}", False))
    theirs_params, ours_params = dict(theirs.named_parameters()), dict(ours.named_parameters())
    assert set(mapping) == set(theirs_params)
    assert set(mapping.values()) | {"layernorm.weight", "layernorm.bias"} == set(ours_params)
    with torch.no_grad():
        for hf_name, our_name in mapping.items():
            ours_params[our_name].copy_(theirs_params[hf_name])


def test_encoder_latents_equal_transformers_perceiver():
    ours, theirs = build_pair()
    pixels = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = theirs(inputs=pixels).last_hidden_state
        for implementation in ("eager", "sdpa"):
            ours.config._attn_implementation = implementation
            latents = ours(pixels, output_hidden_states=True).hidden_states[-1]
            torch.testing.assert_close(latents, expected, atol=1e-5, rtol=1e-5)


def test_parity_is_sensitive_to_the_weights():
    ours, theirs = build_pair()
    pixels = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        ours.encoder.blocks[0][1].mlp.fc2.bias.add_(1e-3)
        difference = (ours(pixels, output_hidden_states=True).hidden_states[-1] - theirs(inputs=pixels)[0]).abs()
    assert difference.max() > 1e-4
