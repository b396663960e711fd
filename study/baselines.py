"""Baselines for the study (not part of the Hub model): a plain Transformer that makes every pixel a token."""

import torch
from torch import nn

from modeling_perceiver_study.configuration_perceiver_study import PerceiverStudyConfig
from modeling_perceiver_study.modeling_perceiver_study import (
    FourierPositionEncoding,
    PerceiverStudyEncoder,
    eager_attention_forward,
)


class PixelTransformer(nn.Module):
    """The Perceiver's input (pixel tokens + Fourier features) fed to a plain Transformer of the same width and
    depth: each cross- or self-attention layer of the Perceiver becomes a self-attention layer over all tokens, so
    attention costs O(M^2) in the M input tokens instead of O(M N) + O(N^2)."""

    def __init__(self, config: PerceiverStudyConfig):
        super().__init__()
        if config.input_stem != "patches":
            raise ValueError(f"PixelTransformer reads raw pixel tokens; input_stem {config.input_stem!r} is not built")
        self.position_encoding = FourierPositionEncoding(
            num_bands=config.num_fourier_bands,
            max_resolution=config.resolved_fourier_max_resolution,
            patch_size=config.input_patch_size,
        )
        self.embed = nn.Linear(config.input_dim, config.latent_dim)
        depth = config.num_cross_attends + config.num_blocks * config.num_self_attends_per_block
        self.layers = nn.ModuleList(PerceiverStudyEncoder.self_attention_layer(config) for _ in range(depth))
        self.norm = nn.LayerNorm(config.latent_dim, eps=config.layer_norm_eps)
        self.classifier = nn.Linear(config.latent_dim, config.num_labels)

    def forward(self, pixel_values, labels=None, attention_fn=eager_attention_forward):
        tokens = self.embed(self.position_encoding(pixel_values))  # (B, M, D)
        for layer in self.layers:
            tokens, _ = layer(tokens, attention_fn)
        logits = self.classifier(self.norm(tokens).mean(dim=1))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return loss, logits


def sdpa_attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Memory-efficient attention for the baseline (PyTorch SDPA), so it is not penalised by materialised scores."""
    output = torch.nn.functional.scaled_dot_product_attention(query, key, value, scale=scaling)
    return output.transpose(1, 2).contiguous(), None
