"""PyTorch Perceiver (Jaegle et al., 2021, "Perceiver: General Perception with Iterative Attention") for images.

This file travels to the Hub with the weights: it imports torch, transformers and its own configuration only.

Shapes: B batch, C channels, H x W pixels, M input tokens (H*W, or H*W / p^2 with p x p patches), F input features
per token,
N latents, D latent width, h heads.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput

from .configuration_perceiver_study import PerceiverStudyConfig


@dataclass
class PerceiverStudyModelOutput(ModelOutput):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(batch_size, num_latents, latent_dim)`):
        The latents after the last layer and the final LayerNorm.
    pooler_output (`torch.FloatTensor` of shape `(batch_size, latent_dim)`):
        The latents pooled into one vector (`config.pooling`), the classifier's input.
    hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned when `output_hidden_states=True`):
        The latents before the first layer and after every layer (cross- and self-attention), before the final
        LayerNorm. `hidden_states[-1]` is the encoder's output.
    attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
        Self-attention weights of every applied self-attention layer, each `(batch_size, heads, N, N)`.
    cross_attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
        Cross-attention weights of every applied cross-attend, each `(batch_size, heads, N, M)` with M the input tokens
        (pixels or patches): where each latent looks in the image.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    cross_attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class PerceiverStudyImageClassifierOutput(ImageClassifierOutput):
    r"""
    The standard `ImageClassifierOutput` (`loss`, `logits`, `hidden_states`, `attentions`) plus
    cross_attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True`):
        Cross-attention weights of every applied cross-attend, each `(batch_size, heads, N, M)`, M input tokens.
    """

    cross_attentions: tuple[torch.FloatTensor, ...] | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Position features


def linear_grid(size: int, device=None) -> torch.Tensor:
    """`size` points evenly spaced over [-1, 1] (`torch.linspace(-1, 1, size)` to float rounding), built from
    `arange` because `linspace` fixes a traced size to a constant: exported graphs keep any H x W."""
    step = 2.0 / torch.sym_max(size - 1, 1)
    return torch.arange(size, device=device, dtype=torch.float32) * step - 1.0


def fourier_position_features(height: int, width: int, num_bands: int, max_resolution: int, device=None):
    """Fourier features of every pixel position, as in the paper (and transformers' `PerceiverModel`).

    Positions lie on a linear grid in [-1, 1] per axis; bands are spaced linearly from 1 to the Nyquist frequency
    of `max_resolution`. Returns float32 `(H*W, 2 + 4 * num_bands)` ordered [y, x, sin(y bands), sin(x bands),
    cos(y bands), cos(x bands)].
    """
    ys, xs = linear_grid(height, device), linear_grid(width, device)
    positions = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)  # (M, 2)
    bands = torch.linspace(1.0, max_resolution / 2, num_bands, device=device)  # (K,)
    scaled = (positions[:, :, None] * bands[None, None, :]).reshape(-1, 2 * num_bands)  # (M, 2K)
    return torch.cat([positions, torch.sin(math.pi * scaled), torch.cos(math.pi * scaled)], dim=-1)


def patches_to_tokens(pixel_values: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, p * p * C): each p x p patch a token, values ordered (row, column, channel)."""
    batch_size, channels, height, width = pixel_values.shape
    p = patch_size
    patches = pixel_values.reshape(batch_size, channels, height // p, p, width // p, p)
    return patches.permute(0, 2, 4, 3, 5, 1).reshape(batch_size, (height // p) * (width // p), p * p * channels)


class PositionEncoding(nn.Module):
    """Turns an image into input tokens: its pixels (or p x p patches), each with its position features appended.
    Subclasses say what the position features are (`token_positions`)."""

    def __init__(self, *, patch_size: int = 1):
        super().__init__()
        self.patch_size = patch_size

    def token_positions(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(M, Fs) position features of the H/p x W/p token grid of `pixel_values`, in row-major order."""
        raise NotImplementedError

    def split_tokens(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two parts of every token: (B, M, p * p * C) pixel values, M = H/p * W/p, and (M, P) position features,
        the same for every image. `forward` concatenates them; the model never has to (see `layer_norm_linear`)."""
        return patches_to_tokens(pixel_values, self.patch_size), self.token_positions(pixel_values)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixels, positions = self.split_tokens(pixel_values)
        return torch.cat([pixels, positions.expand(pixels.shape[0], -1, -1)], dim=-1)  # (B, M, F)


class FourierPositionEncoding(PositionEncoding):
    """Fourier features of each token's position, for whatever H x W the input has (no interpolation)."""

    def __init__(self, *, num_bands: int, max_resolution: int, patch_size: int = 1):
        super().__init__(patch_size=patch_size)
        self.num_bands = num_bands
        self.max_resolution = max_resolution
        self._cache: dict[tuple, torch.Tensor] = {}  # (H, W, device) -> float32 features; not part of the weights

    def features(self, height: int, width: int, device, dtype) -> torch.Tensor:
        if torch.compiler.is_compiling() or torch.compiler.is_exporting():  # traced: in the graph, sizes symbolic
            return fourier_position_features(height, width, self.num_bands, self.max_resolution, device).to(dtype)
        key = (height, width, str(device))
        if key not in self._cache:
            self._cache[key] = fourier_position_features(height, width, self.num_bands, self.max_resolution, device)
        return self._cache[key].to(dtype)

    def token_positions(self, pixel_values: torch.Tensor) -> torch.Tensor:
        _, _, height, width = pixel_values.shape
        p = self.patch_size
        return self.features(height // p, width // p, pixel_values.device, pixel_values.dtype)


class LearnedPositionEncoding(PositionEncoding):
    """One trained vector per place of a fixed `grid_size` x `grid_size` token grid as each token's position features,
    so it reads only images of that size."""

    def __init__(self, *, grid_size: int, dim: int, patch_size: int = 1):
        super().__init__(patch_size=patch_size)
        self.grid_size = grid_size
        self.position_embeddings = nn.Parameter(torch.empty(grid_size * grid_size, dim))  # (M, Fs)

    def token_positions(self, pixel_values: torch.Tensor) -> torch.Tensor:
        grid = (pixel_values.shape[2] // self.patch_size, pixel_values.shape[3] // self.patch_size)
        if grid != (self.grid_size, self.grid_size):
            side = self.grid_size * self.patch_size
            raise ValueError(
                f"learned positions exist for {side} x {side} images ({self.grid_size} x {self.grid_size} tokens), "
                f"got pixel_values of shape {tuple(pixel_values.shape)}; resize the images, or use "
                "position_encoding_type='fourier', which reads any size"
            )
        return self.position_embeddings.to(pixel_values.dtype)


def build_position_encoding(config) -> nn.Module:
    if config.position_encoding_type == "learned":
        return LearnedPositionEncoding(
            grid_size=config.image_size // config.input_patch_size,
            dim=config.learned_position_dim,
            patch_size=config.input_patch_size,
        )
    return FourierPositionEncoding(
        num_bands=config.num_fourier_bands,
        max_resolution=config.resolved_fourier_max_resolution,
        patch_size=config.input_patch_size,
    )


class PerceiverStudyConvStem(nn.Module):
    """Perceiver IO's convolutional preprocessing, sized for small images: (B, C, H, W) -> (B, H/p * W/p, channels).

    log2(p) 3 x 3 convolutions of stride 2, then stride-1 ones up to `num_layers` (>= max(log2(p), 1)), each followed
    by BatchNorm and ReLU, so each output position becomes the token of one p x p patch, with local non-linear
    features instead of raw pixel values. The stride-1 layers run at the token grid, where they are cheapest.
    """

    def __init__(self, *, in_channels: int, channels: int, patch_size: int, num_layers: int):
        super().__init__()
        num_downsamples = patch_size.bit_length() - 1  # log2(p)
        layers = []
        for index in range(num_layers):
            stride = 2 if index < num_downsamples else 1
            layers += [
                nn.Conv2d(in_channels if index == 0 else channels, channels, 3, stride, padding=1, bias=False),
                nn.BatchNorm2d(channels),
                nn.ReLU(),
            ]
        self.layers = nn.Sequential(*layers)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        features = self.layers(pixel_values)  # (B, channels, H/p, W/p)
        return features.flatten(2).transpose(1, 2)  # (B, M, channels), tokens in row-major order like the patches


class PatchWhitening(nn.Module):
    """ZCA whitening of each token's patch values: (B, M, Fp) -> (B, M, Fp), one fixed linear map for every patch.

    Why: the pixels and channels of a small patch are strongly correlated, so a few directions (a patch's brightness
    and colour) carry most of its variance and the key/value projections learn the fine ones slowly. Whitened, every
    direction has unit variance. The map is fitted once on training patches (`fit`) and saved with the weights as
    buffers (never trained); until fitted it is the identity.
    """

    def __init__(self, *, num_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_features))  # (Fp,)
        self.register_buffer("matrix", torch.eye(num_features))  # (Fp, Fp)

    @torch.no_grad()
    def fit(self, patches: torch.Tensor, eps: float = 1e-2) -> None:
        """Fit to `patches` (n, Fp), normalised as the model receives them. `eps` is added to every eigenvalue of
        their covariance, so no direction is amplified more than 1 / sqrt(eps) (the near-constant ones are noise)."""
        num_features = self.mean.numel()
        if patches.ndim != 2 or patches.shape[1] != num_features or patches.shape[0] < 2:
            raise ValueError(
                f"patch whitening is fitted on patches of shape (n >= 2, {num_features}), got {tuple(patches.shape)}"
            )
        if not torch.isfinite(patches).all():
            raise ValueError("patch whitening cannot be fitted on patches holding NaN or infinite values")
        if eps <= 0:
            raise ValueError(f"patch whitening eps must be > 0, got {eps}")
        patches = patches.to(torch.float64)
        mean = patches.mean(dim=0)  # (Fp,)
        centred = patches - mean
        covariance = centred.T @ centred / (patches.shape[0] - 1)  # (Fp, Fp)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        scale = (eigenvalues.clamp_min(0.0) + eps).rsqrt()
        # ZCA (rotate, scale, rotate back): the whitened values keep the patch's (row, column, channel) layout.
        matrix = eigenvectors @ torch.diag(scale) @ eigenvectors.T
        self.mean.copy_(mean.to(self.mean.dtype))
        self.matrix.copy_(matrix.to(self.matrix.dtype))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return F.linear(pixels - self.mean.to(pixels.dtype), self.matrix.to(pixels.dtype))


def layer_norm_linear(pixels, positions, norm: nn.LayerNorm, weight, bias=None):
    """`F.linear(norm(tokens), weight, bias)` for tokens = [pixels, positions] (concatenated per token), computed
    without building the tokens. pixels (B, M, Fp), positions (M, Fs), weight (O, Fp + Fs) -> (B, M, O).

    Exact rewrite of the same function: with LayerNorm(x) = (x - mu) * rstd * g + beta,
        LayerNorm(x) @ W.T + b = rstd * ([pixels * g_p, positions * g_s] @ W.T - mu * (W @ g)) + (W @ beta + b),
    and the positions' product is the same for every image, so it is computed once per batch instead of once per
    image. With pixel tokens and 64 Fourier bands that is 258 of 261 input features: most of the multiply-adds of
    the cross-attention's key/value projection.
    """
    num_pixel_features = pixels.shape[-1]
    num_features = num_pixel_features + positions.shape[-1]
    # Per-token LayerNorm statistics of the concatenation, in at least float32 as LayerNorm computes them.
    statistics_dtype = torch.promote_types(pixels.dtype, torch.float32)
    pixels_wide, positions_wide = pixels.to(statistics_dtype), positions.to(statistics_dtype)
    mean = (pixels_wide.sum(-1) + positions_wide.sum(-1)) / num_features  # (B, M)
    mean_of_squares = (pixels_wide.square().sum(-1) + positions_wide.square().sum(-1)) / num_features
    rstd = torch.rsqrt(mean_of_squares - mean.square() + norm.eps)  # (B, M)

    gain = norm.weight
    pixel_weight = weight[:, :num_pixel_features] * gain[:num_pixel_features]  # (O, Fp)
    position_weight = weight[:, num_pixel_features:] * gain[num_pixel_features:]  # (O, Fs)
    # The mean's term rides along as one more pixel feature: [pixels, -mu] @ [W_p * g_p, W @ g].T
    pixel_weight = torch.cat([pixel_weight, (weight @ gain)[:, None]], dim=1)  # (O, Fp + 1)
    pixels_and_mean = torch.cat([pixels, -mean[..., None].to(pixels.dtype)], dim=-1)  # (B, M, Fp + 1)
    projected = F.linear(pixels_and_mean, pixel_weight) + F.linear(positions, position_weight)  # (B, M, O)
    offset = F.linear(norm.bias, weight, bias)  # (O,)
    return torch.addcmul(offset.to(projected.dtype), projected, rstd[..., None].to(projected.dtype))


# ---------------------------------------------------------------------------------------------------------------------
# Layers


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
):
    """Plain softmax attention. (B, h, Lq, d), (B, h, Lk, d), (B, h, Lk, dv) -> (B, Lq, h, dv), (B, h, Lq, Lk)."""
    scores = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


class PerceiverStudyAttention(nn.Module):
    """Multi-head attention from `q_dim` queries to `kv_dim` keys/values; the same module does cross and self."""

    is_causal = False  # read by transformers' SDPA / flash attention functions

    def __init__(
        self,
        *,
        q_dim: int,
        kv_dim: int,
        qk_dim: int,
        v_dim: int,
        out_dim: int,
        num_heads: int,
        attention_dropout: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        self.num_heads = num_heads
        self.qk_head_dim = qk_dim // num_heads
        self.v_head_dim = v_dim // num_heads
        self.scaling = self.qk_head_dim**-0.5
        self.attention_dropout = attention_dropout
        self.q_proj = nn.Linear(q_dim, qk_dim, bias=bias)
        self.k_proj = nn.Linear(kv_dim, qk_dim, bias=bias)
        self.v_proj = nn.Linear(kv_dim, v_dim, bias=bias)
        self.o_proj = nn.Linear(v_dim, out_dim)

    def forward(self, queries, keys_values, attention_fn: Callable):
        """queries (B, Lq, q_dim), keys_values (B, Lk, kv_dim) -> (B, Lq, out_dim), weights (B, h, Lq, Lk)."""
        q, k, v = self.q_proj(queries), self.k_proj(keys_values), self.v_proj(keys_values)
        return self.attend(q, k, v, attention_fn)

    def attend(self, q, k, v, attention_fn: Callable, bias=None):
        """Projected q (B, Lq, qk), k (B, Lk, qk), v (B, Lk, v) -> (B, Lq, out_dim), weights (B, h, Lq, Lk).
        `bias` (1, h, Lq, Lk), if given, is added to the attention logits before the softmax."""
        batch_size, num_queries, _ = q.shape
        q = q.view(batch_size, num_queries, self.num_heads, self.qk_head_dim).transpose(1, 2)  # (B, h, Lq, d)
        k = k.view(batch_size, -1, self.num_heads, self.qk_head_dim).transpose(1, 2)  # (B, h, Lk, d)
        v = v.view(batch_size, -1, self.num_heads, self.v_head_dim).transpose(1, 2)  # (B, h, Lk, dv)
        output, weights = attention_fn(
            self,
            q,
            k,
            v,
            bias,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
        )
        output = output.reshape(batch_size, num_queries, -1)  # (B, Lq, h * dv)
        return self.o_proj(output), weights


class PerceiverStudyMLP(nn.Module):
    def __init__(self, *, dim: int, widening_factor: int, activation: str):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim * widening_factor)
        self.act = ACT2FN[activation]
        self.fc2 = nn.Linear(dim * widening_factor, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a whole residual branch per sample with probability `drop_prob`, rescale the rest."""
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1.0 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep_prob)
    return x * mask / keep_prob


class CrossAttentionLocality(nn.Module):
    """A learned place for every cross-attention head of every latent to read, as a bias on the attention logits:
    `-strength_h * |centre_(h, n) - (y, x)_m|^2` for head h, latent n and token m at (y, x) in [-1, 1]^2. With the
    softmax, each head starts reading a Gaussian neighbourhood of its centre, and its query-key logits then choose
    within it by content (ConViT's positional prior, here in the Perceiver's cross-attention). It is a function of
    the tokens' positions, so tokens moved together with their positions are read the same.
    """

    def __init__(self, *, num_heads: int, num_latents: int, grid_side: int):
        super().__init__()
        self.grid_side = grid_side  # the trained token grid: sets the initial strength
        self.centres = nn.Parameter(torch.empty(num_heads, num_latents, 2))  # (h, N, 2) in (y, x)
        self.log_strength = nn.Parameter(torch.empty(num_heads))  # (h,)

    def initial_log_strength(self) -> float:
        """A neighbour one token away from a head's centre starts at e^-1 of the centre's weight."""
        spacing = 2.0 / max(self.grid_side - 1, 1)
        return math.log(1.0 / spacing**2)

    def forward(self, coordinates: torch.Tensor, dtype) -> torch.Tensor:
        """(M, 2) token coordinates (y, x) -> (1, h, N, M) bias on the cross-attention logits."""
        offsets = self.centres[:, :, None, :] - coordinates.float()[None, None, :, :]  # (h, N, M, 2)
        bias = -self.log_strength.exp()[:, None, None] * offsets.square().sum(-1)  # (h, N, M)
        return bias[None].to(dtype)


class PerceiverStudyCrossAttentionLayer(GradientCheckpointingLayer):
    """Latents (queries) attend to the input tokens (keys/values), then an MLP. Pre-norm, residual."""

    def __init__(
        self,
        *,
        latent_dim: int,
        input_dim: int,
        qk_dim: int,
        v_dim: int,
        num_heads: int,
        widening_factor: int,
        activation: str,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        layer_norm_eps: float = 1e-5,
        use_query_residual: bool = True,
        bias: bool = True,
        locality_grid_side: int | None = None,
        num_latents: int | None = None,
    ):
        super().__init__()
        self.use_query_residual = use_query_residual
        self.latents_norm = nn.LayerNorm(latent_dim, eps=layer_norm_eps)
        self.inputs_norm = nn.LayerNorm(input_dim, eps=layer_norm_eps)
        self.attention = PerceiverStudyAttention(
            q_dim=latent_dim,
            kv_dim=input_dim,
            qk_dim=qk_dim,
            v_dim=v_dim,
            out_dim=latent_dim,
            num_heads=num_heads,
            attention_dropout=attention_dropout,
            bias=bias,
        )
        self.locality = (
            None
            if locality_grid_side is None
            else CrossAttentionLocality(num_heads=num_heads, num_latents=num_latents, grid_side=locality_grid_side)
        )
        self.mlp_norm = nn.LayerNorm(latent_dim, eps=layer_norm_eps)
        self.mlp = PerceiverStudyMLP(dim=latent_dim, widening_factor=widening_factor, activation=activation)
        self.dropout = nn.Dropout(dropout)

    def project_inputs(self, pixels, positions):
        """Keys and values of the tokens [pixels, positions]: (B, M, Fp), (M, Fs) -> (B, M, qk), (B, M, v)."""
        attention = self.attention
        weight = torch.cat([attention.k_proj.weight, attention.v_proj.weight])
        bias = None if attention.k_proj.bias is None else torch.cat([attention.k_proj.bias, attention.v_proj.bias])
        keys_values = layer_norm_linear(pixels, positions, self.inputs_norm, weight, bias)
        return keys_values.split([attention.k_proj.out_features, attention.v_proj.out_features], dim=-1)

    def forward(self, latents, pixels, positions, attention_fn, drop_prob=0.0):
        # latents (B, N, D), pixels (B, M, Fp), positions (M, Fs) -> (B, N, D), weights (B, h, N, M)
        queries = self.attention.q_proj(self.latents_norm(latents))
        # Fourier position features start with the token's (y, x): the locality prior's coordinates.
        bias = None if self.locality is None else self.locality(positions[:, :2], queries.dtype)
        keys, values = self.project_inputs(pixels, positions)
        attended, weights = self.attention.attend(queries, keys, values, attention_fn, bias)
        attended = drop_path(self.dropout(attended), drop_prob, self.training)
        latents = latents + attended if self.use_query_residual else attended
        latents = latents + drop_path(self.dropout(self.mlp(self.mlp_norm(latents))), drop_prob, self.training)
        return latents, weights


class PerceiverStudySelfAttentionLayer(GradientCheckpointingLayer):
    """A pre-norm Transformer layer over the latents."""

    def __init__(
        self,
        *,
        latent_dim: int,
        qk_dim: int,
        v_dim: int,
        num_heads: int,
        widening_factor: int,
        activation: str,
        dropout: float = 0.0,
        attention_dropout: float = 0.0,
        layer_norm_eps: float = 1e-5,
        bias: bool = True,
    ):
        super().__init__()
        self.attention_norm = nn.LayerNorm(latent_dim, eps=layer_norm_eps)
        self.attention = PerceiverStudyAttention(
            q_dim=latent_dim,
            kv_dim=latent_dim,
            qk_dim=qk_dim,
            v_dim=v_dim,
            out_dim=latent_dim,
            num_heads=num_heads,
            attention_dropout=attention_dropout,
            bias=bias,
        )
        self.mlp_norm = nn.LayerNorm(latent_dim, eps=layer_norm_eps)
        self.mlp = PerceiverStudyMLP(dim=latent_dim, widening_factor=widening_factor, activation=activation)
        self.dropout = nn.Dropout(dropout)

    def forward(self, latents, attention_fn, drop_prob=0.0):
        # latents (B, N, D) -> (B, N, D), weights (B, h, N, N)
        normed = self.attention_norm(latents)
        attended, weights = self.attention(normed, normed, attention_fn)
        latents = latents + drop_path(self.dropout(attended), drop_prob, self.training)
        latents = latents + drop_path(self.dropout(self.mlp(self.mlp_norm(latents))), drop_prob, self.training)
        return latents, weights


# ---------------------------------------------------------------------------------------------------------------------
# Encoder


class PerceiverStudyEncoder(nn.Module):
    """`num_blocks` blocks of [cross-attend (first `num_cross_attends` blocks only) -> latent Transformer].

    Weight sharing is expressed by storing each distinct layer once and indexing it per block, so a shared layer
    is one set of parameters applied several times (the paper's recurrent-in-depth scheme).
    """

    def __init__(self, config: PerceiverStudyConfig):
        super().__init__()
        self.config = config
        self.cross_attends = nn.ModuleList(
            [self.cross_attention_layer(config) for _ in range(config.num_distinct_cross_attends)]
        )
        self.blocks = nn.ModuleList(
            nn.ModuleList(self.self_attention_layer(config) for _ in range(config.num_self_attends_per_block))
            for _ in range(config.num_distinct_blocks)
        )
        num_applied = config.num_cross_attends + config.num_blocks * config.num_self_attends_per_block
        self.drop_path_rates = torch.linspace(0, config.drop_path_rate, num_applied).tolist()
        self.gradient_checkpointing = False

    @staticmethod
    def cross_attention_layer(config):
        return PerceiverStudyCrossAttentionLayer(
            latent_dim=config.latent_dim,
            input_dim=config.input_dim,
            qk_dim=config.resolved_cross_attention_qk_dim,
            v_dim=config.resolved_cross_attention_v_dim,
            num_heads=config.num_cross_attention_heads,
            widening_factor=config.cross_attention_widening_factor,
            activation=config.hidden_act,
            dropout=config.hidden_dropout_prob,
            attention_dropout=config.attention_probs_dropout_prob,
            layer_norm_eps=config.layer_norm_eps,
            use_query_residual=config.use_query_residual,
            bias=config.qkv_bias,
            locality_grid_side=config.image_size // config.input_patch_size
            if config.cross_attention_locality
            else None,
            num_latents=config.num_latents,
        )

    @staticmethod
    def self_attention_layer(config):
        return PerceiverStudySelfAttentionLayer(
            latent_dim=config.latent_dim,
            qk_dim=config.resolved_self_attention_qk_dim,
            v_dim=config.resolved_self_attention_v_dim,
            num_heads=config.num_self_attention_heads,
            widening_factor=config.self_attention_widening_factor,
            activation=config.hidden_act,
            dropout=config.hidden_dropout_prob,
            attention_dropout=config.attention_probs_dropout_prob,
            layer_norm_eps=config.layer_norm_eps,
            bias=config.qkv_bias,
        )

    def cross_attend_for_block(self, block_index: int):
        if block_index >= self.config.num_cross_attends:
            return None
        return self.cross_attends[min(block_index, len(self.cross_attends) - 1)]

    def forward(self, latents, pixels, positions, attention_fn, output_attentions=False, output_hidden_states=False):
        """latents (B, N, D), input tokens as pixels (B, M, Fp) and positions (M, Fs) -> latents (B, N, D), ..."""
        hidden_states = (latents,) if output_hidden_states else None
        self_attentions = () if output_attentions else None
        cross_attentions = () if output_attentions else None
        drop_rates = iter(self.drop_path_rates)
        for block_index in range(self.config.num_blocks):
            cross_attend = self.cross_attend_for_block(block_index)
            if cross_attend is not None:
                latents, weights = cross_attend(latents, pixels, positions, attention_fn, next(drop_rates))
                if output_attentions:
                    cross_attentions += (weights,)
                if output_hidden_states:
                    hidden_states += (latents,)
            for layer in self.blocks[block_index % len(self.blocks)]:
                latents, weights = layer(latents, attention_fn, next(drop_rates))
                if output_attentions:
                    self_attentions += (weights,)
                if output_hidden_states:
                    hidden_states += (latents,)
        return latents, hidden_states, self_attentions, cross_attentions


# ---------------------------------------------------------------------------------------------------------------------
# Models


class PerceiverStudyPreTrainedModel(PreTrainedModel):
    config_class = PerceiverStudyConfig
    config: PerceiverStudyConfig
    base_model_prefix = "perceiver"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["PerceiverStudyCrossAttentionLayer", "PerceiverStudySelfAttentionLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, except that a checkpoint whose weights do not fit its config is a
        `ValueError` naming the parameters, never a silent re-initialisation. `ignore_mismatched_sizes=True`
        re-initialises size-mismatched layers on purpose (e.g. a classifier for another number of labels)."""
        allow_mismatched_sizes = kwargs.pop("ignore_mismatched_sizes", False)
        wants_loading_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(
            pretrained_model_name_or_path, *args, ignore_mismatched_sizes=True, output_loading_info=True, **kwargs
        )
        problems = (
            []
            if allow_mismatched_sizes
            else [
                f"{name} has shape {tuple(stored)} in the weights but {tuple(expected)} from the config"
                for name, stored, expected in sorted(info["mismatched_keys"])
            ]
        )
        # A head missing or left over is normal (base model <-> classifier); anything else means another model.
        problems += [
            f"{name} is missing from the weights"
            for name in sorted(info["missing_keys"])
            if not name.startswith("classifier.")
        ]
        problems += [
            f"{name} is in the weights but not in the model the config describes"
            for name in sorted(info["unexpected_keys"])
            if not name.startswith("classifier.")
        ]
        if problems:
            shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
            raise ValueError(
                f"checkpoint {pretrained_model_name_or_path} does not match its config: {shown}. The config "
                "(config.json) and the weights (model.safetensors) must come from the same model."
            )
        return (model, info) if wants_loading_info else model

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, (nn.LayerNorm, nn.BatchNorm2d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, PerceiverStudyModel):
            init.trunc_normal_(module.latents, mean=0.0, std=std)
        elif isinstance(module, CrossAttentionLocality):
            # Centres spread at random over the image: each latent starts reading a different set of places.
            init.uniform_(module.centres, -1.0, 1.0)
            init.constant_(module.log_strength, module.initial_log_strength())
        elif isinstance(module, PatchWhitening):
            init.zeros_(module.mean)
            init.eye_(module.matrix)
        elif isinstance(module, LearnedPositionEncoding):
            # Unit scale, as the Fourier features they stand in for: distinct codes for every place from the start.
            init.normal_(module.position_embeddings, mean=0.0, std=1.0)


class PerceiverStudyModel(PerceiverStudyPreTrainedModel):
    """The Perceiver encoder: pixels + position features (Fourier or learned) -> latents -> pooled vector."""

    def __init__(self, config: PerceiverStudyConfig):
        super().__init__(config)
        # The config checked its fields when built; a config is mutable (`config.num_latents = 0`), so the model
        # checks again rather than fail deep inside torch.
        config.validate_fields()
        self.position_encoding = build_position_encoding(config)
        self.conv_stem = (
            PerceiverStudyConvStem(
                in_channels=config.num_channels,
                channels=config.conv_stem_channels,
                patch_size=config.input_patch_size,
                num_layers=config.resolved_conv_stem_layers,
            )
            if config.input_stem == "conv"
            else None
        )
        self.patch_whitening = PatchWhitening(num_features=config.token_feature_dim) if config.patch_whitening else None
        self.latents = nn.Parameter(torch.empty(config.num_latents, config.latent_dim))
        self.encoder = PerceiverStudyEncoder(config)
        self.layernorm = nn.LayerNorm(config.latent_dim, eps=config.layer_norm_eps)
        self.post_init()

    def check_pixel_values(self, pixel_values) -> None:
        """Refuse input the model cannot mean to read, with a message naming what is wrong."""
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(f"pixel_values must be a torch.Tensor of shape (B, C, H, W), got {type(pixel_values)}")
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values must have 4 dimensions (batch, channels, height, width), got shape "
                f"{tuple(pixel_values.shape)}"
            )
        if not pixel_values.is_floating_point():
            raise TypeError(
                f"pixel_values must be floating point (rescaled and normalized, e.g. by the image processor), got "
                f"{pixel_values.dtype}"
            )
        if 0 in pixel_values.shape:
            raise ValueError(
                "pixel_values must hold at least one image of at least one pixel, got shape "
                f"{tuple(pixel_values.shape)}"
            )
        patch = self.config.input_patch_size
        if pixel_values.shape[2] % patch or pixel_values.shape[3] % patch:
            raise ValueError(
                f"pixel_values height and width {tuple(pixel_values.shape[2:])} must be multiples of "
                f"config.input_patch_size={patch}"
            )
        if pixel_values.shape[1] != self.config.num_channels:
            raise ValueError(
                f"pixel_values has {pixel_values.shape[1]} channels in dimension 1 (shape "
                f"{tuple(pixel_values.shape)}), but the model expects config.num_channels={self.config.num_channels}"
            )

    def attention_function(self, output_attentions: bool) -> Callable:
        implementation = self.config._attn_implementation
        if output_attentions or implementation in (None, "eager"):
            return eager_attention_forward  # the only path that returns attention weights
        if self.config.cross_attention_locality and implementation.startswith("flash"):
            raise ValueError(
                f"cross_attention_locality adds a bias to the attention logits, which attn_implementation "
                f"{implementation!r} cannot take; use 'sdpa' or 'eager'"
            )
        return ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)

    def pool(self, latents):
        if self.config.pooling == "max":
            return latents.max(dim=1).values
        return latents.mean(dim=1)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> PerceiverStudyModelOutput | tuple:
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self.check_pixel_values(pixel_values)
        pixel_values = pixel_values.to(self.latents.dtype)

        if self.conv_stem is None:
            pixels, positions = self.position_encoding.split_tokens(pixel_values)  # (B, M, Fp), (M, Fs)
            if self.patch_whitening is not None:
                pixels = self.patch_whitening(pixels)
        else:  # the stem's features stand in for the raw patch values
            pixels, positions = self.conv_stem(pixel_values), self.position_encoding.token_positions(pixel_values)
        latents = self.latents.expand(pixel_values.shape[0], -1, -1)  # (B, N, D)
        latents, hidden_states, attentions, cross_attentions = self.encoder(
            latents,
            pixels,
            positions,
            self.attention_function(output_attentions),
            output_attentions,
            output_hidden_states,
        )
        last_hidden_state = self.layernorm(latents)
        output = PerceiverStudyModelOutput(
            last_hidden_state=last_hidden_state,
            pooler_output=self.pool(last_hidden_state),
            hidden_states=hidden_states,
            attentions=attentions,
            cross_attentions=cross_attentions,
        )
        return output if return_dict else output.to_tuple()


class PerceiverStudyForImageClassification(PerceiverStudyPreTrainedModel):
    """The Perceiver with a linear classifier on the pooled latents."""

    # The loss is a per-sample mean: Trainer must not pass `num_items_in_batch` nor rescale it.
    accepts_loss_kwargs = False

    def __init__(self, config: PerceiverStudyConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.perceiver = PerceiverStudyModel(config)
        self.classifier = nn.Linear(config.latent_dim, config.num_labels)
        self.post_init()

    def compute_loss(self, logits, labels):
        """Cross-entropy for class indices `(B,)` or for soft targets `(B, num_labels)` (mixup/cutmix)."""
        if labels.is_floating_point() and labels.ndim == 2:
            if labels.shape != logits.shape:
                raise ValueError(
                    f"soft labels must have shape (batch, num_labels) = {tuple(logits.shape)}, "
                    f"got {tuple(labels.shape)}"
                )
            return torch.sum(-labels * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
        if labels.is_floating_point() or labels.ndim != 1 or labels.shape[0] != logits.shape[0]:
            raise ValueError(
                f"labels must be integer class ids of shape ({logits.shape[0]},), got dtype {labels.dtype} and "
                f"shape {tuple(labels.shape)}"
            )
        # (Skipped under torch.compile: reading the flag back is a graph break, and a device sync on a GPU.)
        if not torch.compiler.is_compiling() and bool(((labels < 0) | (labels >= self.num_labels)).any()):
            bad = labels[(labels < 0) | (labels >= self.num_labels)].unique().tolist()
            raise ValueError(f"labels must be in [0, {self.num_labels - 1}] (config.num_labels), got {bad}")
        return F.cross_entropy(logits.float(), labels)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> "PerceiverStudyImageClassifierOutput | tuple":
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.perceiver(
            pixel_values,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(outputs.pooler_output)
        loss = self.compute_loss(logits, labels) if labels is not None else None
        output = PerceiverStudyImageClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            cross_attentions=outputs.cross_attentions,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "PerceiverStudyForImageClassification",
    "PerceiverStudyImageClassifierOutput",
    "PerceiverStudyModel",
    "PerceiverStudyModelOutput",
    "PerceiverStudyPreTrainedModel",
]
