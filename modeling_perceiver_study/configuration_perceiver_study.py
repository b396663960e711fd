"""Configuration of the Perceiver Study model.

This file travels to the Hub with the weights: it imports transformers only and defines a class, nothing else.
"""

from transformers import PreTrainedConfig

POOLING_MODES = ("mean", "max")
INPUT_STEMS = ("patches", "conv")
POSITION_ENCODINGS = ("fourier", "learned")
HIDDEN_ACTIVATIONS = ("gelu", "gelu_new", "relu", "silu")

# The Auto classes a saved model folder answers to, and the code file and class each loads (trust_remote_code).
# The one source: the config records it, the package registers its classes from it, saving writes it.
AUTO_MAP = {
    "AutoConfig": "configuration_perceiver_study.PerceiverStudyConfig",
    "AutoModel": "modeling_perceiver_study.PerceiverStudyModel",
    "AutoModelForImageClassification": "modeling_perceiver_study.PerceiverStudyForImageClassification",
    "AutoImageProcessor": "image_processing_perceiver_study.PerceiverStudyImageProcessor",
}


class PerceiverStudyConfig(PreTrainedConfig):
    r"""
    Configuration of a Perceiver (Jaegle et al., 2021) for image classification.

    The model reads the pixels of an image as a set of `H * W` tokens, each the pixel's channels concatenated with
    Fourier features of its (y, x) position. A small array of learned latents cross-attends to that set, then a
    latent Transformer refines the latents. A *block* is one (optional) cross-attend followed by
    `num_self_attends_per_block` latent self-attention layers; the model runs `num_blocks` blocks.

    Args:
        image_size (`int`, defaults to 32):
            Side of the square images the model is trained on. Also the default `fourier_max_resolution`.
        num_channels (`int`, defaults to 3):
            Channels of `pixel_values`.
        input_patch_size (`int`, defaults to 1):
            Side of the square pixel patches that become input tokens. 1 (the paper's ImageNet setting) makes every
            pixel a token; p > 1 makes every p x p patch one token of `p * p * num_channels` values (space-to-depth,
            as in Perceiver IO), p^2 times fewer tokens. Image sides must be multiples of p.
        input_stem (`str`, defaults to `"patches"`):
            What a token's features are. `patches`: the raw values of its p x p pixels (the paper: no convolution).
            `conv`: the output of a small convolutional stem at the token's place, as in Perceiver IO's
            convolutional preprocessing: log2(p) 3 x 3 convolutions of stride 2 (one of stride 1 when p is 1), each
            followed by BatchNorm and ReLU, then `conv_stem_channels` features per token. Needs p a power of two.
        patch_whitening (`bool`, defaults to `False`):
            Whether the `patches` stem whitens each token's p x p patch values (ZCA: the same fixed linear map for
            every patch, which decorrelates its pixels and channels and gives every direction unit variance) before
            the position features are appended. The map is fitted on training patches (`PatchWhitening.fit`, which
            `scripts/train.py` calls for a new model) and saved with the weights; unfitted, it is the identity. A
            token stays a linear function of its own patch: convolution-free.
        conv_stem_channels (`int`, defaults to 64):
            Channels of every convolution of the `conv` stem, so features per token before the position features.
        conv_stem_layers (`int`, *optional*):
            Convolutions in the `conv` stem: the log2(p) of stride 2, then stride-1 ones at the token grid (each
            with BatchNorm and ReLU) up to this count, for deeper, wider-reaching token features. Unset: log2(p),
            at least one.
        num_latents (`int`, defaults to 128):
            Number of latent vectors (N in the paper): the size of the bottleneck.
        latent_dim (`int`, defaults to 256):
            Width of each latent vector (D in the paper).
        num_blocks (`int`, defaults to 1):
            Number of blocks (cross-attend + latent Transformer).
        num_cross_attends (`int`, defaults to 1):
            How many of the blocks, counted from the first, start with a cross-attend to the input (1 to
            `num_blocks`). The paper's ImageNet model cross-attends in all 8 blocks.
        share_cross_attend_weights (`bool`, defaults to `True`):
            Whether cross-attends after the first share one set of weights (the paper's scheme). The first
            cross-attend always has its own weights.
        num_self_attends_per_block (`int`, defaults to 4):
            Latent self-attention layers in each block.
        share_block_weights (`bool`, defaults to `True`):
            Whether all blocks share one latent Transformer (the paper's scheme), making the model recurrent in depth.
        num_cross_attention_heads (`int`, defaults to 1):
            Heads of the cross-attention.
        num_self_attention_heads (`int`, defaults to 8):
            Heads of the latent self-attention.
        cross_attention_qk_dim (`int`, *optional*):
            Width of cross-attention queries and keys. Defaults to `latent_dim`.
        cross_attention_v_dim (`int`, *optional*):
            Width of cross-attention values. Defaults to `cross_attention_qk_dim`.
        self_attention_qk_dim (`int`, *optional*):
            Width of self-attention queries and keys. Defaults to `latent_dim`.
        self_attention_v_dim (`int`, *optional*):
            Width of self-attention values. Defaults to `self_attention_qk_dim`.
        cross_attention_widening_factor (`int`, defaults to 1):
            Hidden width of the MLP after a cross-attention, as a multiple of `latent_dim`.
        self_attention_widening_factor (`int`, defaults to 4):
            Hidden width of the MLP after a self-attention, as a multiple of `latent_dim`.
        use_query_residual (`bool`, defaults to `True`):
            Whether the cross-attention output is added to the latents that queried it.
        position_encoding_type (`str`, defaults to `"fourier"`):
            Where a token's position features come from. `fourier`: fixed Fourier features of its (y, x) place (the
            paper's choice, any input size). `learned`: one trained vector of `learned_position_dim` features per
            place of the `image_size // input_patch_size` square token grid (transformers'
            `PerceiverForImageClassificationLearned`), so inputs must be `image_size` square.
        learned_position_dim (`int`, defaults to 64):
            Features per token of the `learned` position encoding.
        cross_attention_locality (`bool`, defaults to `False`):
            Whether every cross-attention head of every latent adds a learned locality prior to its attention
            logits, `-strength * |centre - (y, x)|^2` over the tokens' places (a trained centre per head and latent,
            spread at random over the image; a trained strength per head, starting where a token one step from the
            centre weighs e^-1 of it). Needs `fourier` positions, whose first two features are the place (y, x).
        num_fourier_bands (`int`, defaults to 64):
            Frequency bands per spatial axis. Each pixel gets `2 + 4 * num_fourier_bands` position features.
        fourier_max_resolution (`int`, *optional*):
            Resolution whose Nyquist frequency is the highest band (bands are spaced linearly from 1 to
            `fourier_max_resolution / 2`). Defaults to the token grid's side, `image_size // input_patch_size`.
        hidden_act (`str`, defaults to `"gelu"`):
            MLP activation, one of `gelu`, `gelu_new`, `relu`, `silu`.
        hidden_dropout_prob (`float`, defaults to 0.0):
            Dropout on every residual branch output.
        attention_probs_dropout_prob (`float`, defaults to 0.0):
            Dropout on attention probabilities.
        drop_path_rate (`float`, defaults to 0.0):
            Stochastic depth: the largest probability of dropping a residual branch; it rises linearly with depth.
        layer_norm_eps (`float`, defaults to 1e-5):
            Epsilon of every LayerNorm.
        initializer_range (`float`, defaults to 0.02):
            Standard deviation of the truncated-normal initialisation of linear weights and latents.
        qkv_bias (`bool`, defaults to `True`):
            Whether query, key and value projections have a bias.
        pooling (`str`, defaults to `"mean"`):
            How the latents become one vector for the classifier: `mean` or `max` over latents.
    """

    model_type = "perceiver_study"

    image_size: int = 32
    num_channels: int = 3
    input_patch_size: int = 1
    input_stem: str = "patches"
    patch_whitening: bool = False
    conv_stem_channels: int = 64
    conv_stem_layers: int | None = None
    num_latents: int = 128
    latent_dim: int = 256
    num_blocks: int = 1
    num_cross_attends: int = 1
    share_cross_attend_weights: bool = True
    num_self_attends_per_block: int = 4
    share_block_weights: bool = True
    num_cross_attention_heads: int = 1
    num_self_attention_heads: int = 8
    cross_attention_qk_dim: int | None = None
    cross_attention_v_dim: int | None = None
    self_attention_qk_dim: int | None = None
    self_attention_v_dim: int | None = None
    cross_attention_widening_factor: int = 1
    self_attention_widening_factor: int = 4
    use_query_residual: bool = True
    position_encoding_type: str = "fourier"
    learned_position_dim: int = 64
    cross_attention_locality: bool = False
    num_fourier_bands: int = 64
    fourier_max_resolution: int | None = None
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    drop_path_rate: float = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    qkv_bias: bool = True
    pooling: str = "mean"

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if getattr(self, "auto_map", None) is None:
            self.auto_map = dict(AUTO_MAP)
        self.validate_fields()

    # Derived sizes (never stored, so they cannot disagree with the fields they come from).
    @property
    def input_dim(self) -> int:
        """Features per input token: its pixel values (or conv stem features), then its position features."""
        return self.token_feature_dim + self.position_dim

    @property
    def position_dim(self) -> int:
        """Position features per input token: learned ones, or (y, x) and sin/cos of each Fourier band per axis."""
        if self.position_encoding_type == "learned":
            return self.learned_position_dim
        return 2 + 4 * self.num_fourier_bands

    @property
    def token_feature_dim(self) -> int:
        """Features per input token before its position features."""
        if self.input_stem == "conv":
            return self.conv_stem_channels
        return self.num_channels * self.input_patch_size**2

    @property
    def num_conv_stem_downsamples(self) -> int:
        """Stride-2 convolutions of the `conv` stem: log2(input_patch_size)."""
        return self.input_patch_size.bit_length() - 1

    @property
    def resolved_conv_stem_layers(self) -> int:
        return self.conv_stem_layers or max(self.num_conv_stem_downsamples, 1)

    @property
    def resolved_fourier_max_resolution(self) -> int:
        return self.fourier_max_resolution or self.image_size // self.input_patch_size

    @property
    def resolved_cross_attention_qk_dim(self) -> int:
        return self.cross_attention_qk_dim or self.latent_dim

    @property
    def resolved_cross_attention_v_dim(self) -> int:
        return self.cross_attention_v_dim or self.resolved_cross_attention_qk_dim

    @property
    def resolved_self_attention_qk_dim(self) -> int:
        return self.self_attention_qk_dim or self.latent_dim

    @property
    def resolved_self_attention_v_dim(self) -> int:
        return self.self_attention_v_dim or self.resolved_self_attention_qk_dim

    @property
    def num_distinct_cross_attends(self) -> int:
        """Cross-attends with weights of their own: the first, then one set for all later ones when they share it."""
        if self.num_cross_attends > 1 and self.share_cross_attend_weights:
            return 2
        return self.num_cross_attends

    @property
    def num_distinct_blocks(self) -> int:
        """Latent blocks with weights of their own: one when the blocks share them (recurrent in depth)."""
        return 1 if self.share_block_weights else self.num_blocks

    def validate_fields(self) -> None:
        """Raise a `ValueError` naming the first field whose value is out of its allowed range."""
        for name in (
            "image_size",
            "num_channels",
            "input_patch_size",
            "num_latents",
            "latent_dim",
            "num_blocks",
            "num_cross_attends",
            "num_self_attends_per_block",
            "num_cross_attention_heads",
            "num_self_attention_heads",
            "cross_attention_widening_factor",
            "self_attention_widening_factor",
            "num_fourier_bands",
            "learned_position_dim",
            "conv_stem_channels",
        ):
            _require_int(self, name, minimum=1)
        for name in (
            "cross_attention_qk_dim",
            "cross_attention_v_dim",
            "self_attention_qk_dim",
            "self_attention_v_dim",
            "fourier_max_resolution",
            "conv_stem_layers",
        ):
            if getattr(self, name) is not None:
                _require_int(self, name, minimum=1, allow_none=True)
        for name in (
            "share_cross_attend_weights",
            "share_block_weights",
            "use_query_residual",
            "qkv_bias",
            "cross_attention_locality",
            "patch_whitening",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"):
            _require_float(self, name, low=0.0, high=1.0, high_inclusive=False)
        _require_float(self, "layer_norm_eps", low=0.0, high=1.0, low_inclusive=False)
        _require_float(self, "initializer_range", low=0.0, high=10.0, low_inclusive=False)
        if self.num_cross_attends > self.num_blocks:
            raise ValueError(
                f"num_cross_attends must be between 1 and num_blocks ({self.num_blocks}), got {self.num_cross_attends}"
            )
        if self.image_size % self.input_patch_size != 0:
            raise ValueError(f"input_patch_size ({self.input_patch_size}) must divide image_size ({self.image_size})")
        if self.input_stem not in INPUT_STEMS:
            raise ValueError(f"input_stem must be one of {INPUT_STEMS}, got {self.input_stem!r}")
        patch = self.input_patch_size
        if self.input_stem == "conv" and patch & (patch - 1):
            raise ValueError(f"input_stem 'conv' needs input_patch_size a power of two (1, 2, 4, ...), got {patch}")
        if self.conv_stem_layers is not None and self.input_stem != "conv":
            raise ValueError(
                f"conv_stem_layers ({self.conv_stem_layers}) applies only to input_stem 'conv', got input_stem "
                f"{self.input_stem!r}"
            )
        if self.patch_whitening and self.input_stem != "patches":
            raise ValueError(
                f"patch_whitening whitens raw patch values; it needs input_stem 'patches', got {self.input_stem!r}"
            )
        if self.conv_stem_layers is not None and self.conv_stem_layers < self.num_conv_stem_downsamples:
            raise ValueError(
                f"conv_stem_layers ({self.conv_stem_layers}) must be at least log2(input_patch_size) = "
                f"{self.num_conv_stem_downsamples}, the stride-2 convolutions that make one token per patch"
            )
        if self.position_encoding_type not in POSITION_ENCODINGS:
            raise ValueError(
                f"position_encoding_type must be one of {POSITION_ENCODINGS}, got {self.position_encoding_type!r}"
            )
        if self.cross_attention_locality and self.position_encoding_type != "fourier":
            raise ValueError(
                "cross_attention_locality reads each token's place from its Fourier position features; it needs "
                f"position_encoding_type 'fourier', got {self.position_encoding_type!r}"
            )
        if self.pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {self.pooling!r}")
        if self.hidden_act not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {HIDDEN_ACTIVATIONS}, got {self.hidden_act!r}")
        _require_divisible(
            self, "resolved_cross_attention_qk_dim", "cross_attention_qk_dim", "num_cross_attention_heads"
        )
        _require_divisible(self, "resolved_cross_attention_v_dim", "cross_attention_v_dim", "num_cross_attention_heads")
        _require_divisible(self, "resolved_self_attention_qk_dim", "self_attention_qk_dim", "num_self_attention_heads")
        _require_divisible(self, "resolved_self_attention_v_dim", "self_attention_v_dim", "num_self_attention_heads")
        if self.id2label is not None and len(self.id2label) < 1:
            raise ValueError("id2label must name at least one label")


def _require_int(config, name, minimum, allow_none=False):
    value = getattr(config, name)
    if allow_none and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _require_float(config, name, low, high, low_inclusive=True, high_inclusive=True):
    value = getattr(config, name)
    ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    in_range = (
        ok_type
        and (value >= low if low_inclusive else value > low)
        and (value <= high if high_inclusive else value < high)
    )
    if not in_range:
        interval = f"{'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")


def _require_divisible(config, resolved_attr, field_name, heads_name):
    width, heads = getattr(config, resolved_attr), getattr(config, heads_name)
    if width % heads != 0:
        raise ValueError(f"{field_name} (resolved to {width}) must be divisible by {heads_name} ({heads})")


__all__ = ["PerceiverStudyConfig"]
