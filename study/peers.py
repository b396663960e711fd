"""The implementations a user would pick instead of this one, built at chosen sizes for comparisons under the same
budget: transformers' `PerceiverForImageClassificationFourier` and `...Learned`."""

from transformers import PerceiverConfig, PerceiverForImageClassificationFourier, PerceiverForImageClassificationLearned

PEER_CLASSES = {
    "fourier": PerceiverForImageClassificationFourier,  # pixel tokens + 64-band Fourier features (max resolution 224)
    "learned": PerceiverForImageClassificationLearned,  # a 1x1 convolution to 256 channels + learned positions
}
# PerceiverConfig fields a sweep may set; the rest keep transformers' defaults (those of the paper's ImageNet model).
SIZE_FIELDS = (
    "num_latents",
    "d_latents",
    "num_blocks",
    "num_self_attends_per_block",
    "num_self_attention_heads",
    "num_cross_attention_heads",
    "qk_channels",
    "v_channels",
    "cross_attention_widening_factor",
    "self_attention_widening_factor",
)


def parse_sizes(text: str | None) -> dict:
    """`num_latents=64,d_latents=128` as PerceiverConfig fields (integers), refusing names it does not know."""
    sizes = {}
    for item in filter(None, (text or "").split(",")):
        name, _, value = item.partition("=")
        if name not in SIZE_FIELDS:
            raise ValueError(f"--peer_sizes: {name!r} is not one of {list(SIZE_FIELDS)}")
        try:
            sizes[name] = int(value)
        except ValueError:
            raise ValueError(f"--peer_sizes: {name}={value!r} is not an integer") from None
    return sizes


def build_transformers_peer(variant: str, label_names: list[str], image_size: int = 32, **sizes):
    """A freshly initialised transformers Perceiver classifier for `label_names`, with `sizes` set on its config.
    Its attention dropout is off, as in this repository's models; queries, keys and values default to the latent
    width."""
    if variant not in PEER_CLASSES:
        raise ValueError(f"peer {variant!r}: expected one of {sorted(PEER_CLASSES)}")
    unknown = sorted(set(sizes) - set(SIZE_FIELDS))
    if unknown:
        raise ValueError(f"unknown peer sizes {unknown}: expected some of {list(SIZE_FIELDS)}")
    # transformers' default projects queries and keys to the input's width (261 for 64 Fourier bands), which its
    # default 8 cross-attention heads do not divide; the latent width is what study/benchmark.py uses too.
    sizes.setdefault("qk_channels", sizes.get("d_latents", PerceiverConfig().d_latents))
    sizes.setdefault("v_channels", sizes["qk_channels"])
    config = PerceiverConfig(
        image_size=image_size,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id={name: index for index, name in enumerate(label_names)},
        attention_probs_dropout_prob=0.0,
        **sizes,
    )
    return PEER_CLASSES[variant](config)
