"""The demo page: a Gradio app (the Hub's Space convention) that classifies an image and shows where the latents look.

    python scripts/demo.py --model_dir outputs/cpu-small          # a model folder, or a Hub id
    python scripts/demo.py --model_dir your-org/perceiver-study-cifar10 --port 7860

An uploaded or example image of any size and mode is cropped to its central square, resized to the model's input size
and classified; the page shows the top-5 labels with their probabilities and the first cross-attend's attention drawn
over the image (`plots.plot_attention_maps`, the drawing `scripts/evaluate_model.py` makes).

This module imports only its siblings `files` and `plots` from the package (and torch, transformers, PIL, gradio), so
a Space carries the three files as they are (`publish.stage_space`).
"""

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .files import require_model_location, shipped_path
from .plots import plot_attention_maps

TOP_K = 5
# The PIL mode a model with this many input channels reads.
PIL_MODE_FOR_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}
# Modes PIL cannot convert to L/RGB faithfully: 16- and 32-bit integer and float images, scaled to 8 bits first.
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


class DemoError(Exception):
    """A problem the page or the command reports in words (what is wrong, and what to do)."""


@dataclass
class Classifier:
    model: torch.nn.Module
    processor: object
    label_names: list[str]

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    @property
    def num_channels(self) -> int:
        return self.model.config.num_channels

    @property
    def token_grid(self) -> tuple[int, int]:
        side = self.image_size // self.model.config.input_patch_size
        return side, side


def load_classifier(model_dir) -> Classifier:
    """The model and its image processor as a user loads them (Auto classes, `trust_remote_code`); anything that
    is not a Perceiver Study image classifier is refused by name, from its config, before any weights load. The ONNX
    export loads through here too."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    try:
        require_model_location(str(model_dir))
        config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
    except (OSError, ValueError) as error:  # FileNotFoundError is an OSError
        raise DemoError(f"{model_dir} is not a model folder or Hub model that loads: {error}") from error
    if getattr(config, "model_type", None) != "perceiver_study":
        raise DemoError(
            f"{model_dir} holds a {getattr(config, 'model_type', None)!r} model, not a Perceiver Study model "
            "(model_type 'perceiver_study')"
        )
    model = AutoModelForImageClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir, trust_remote_code=True)
    labels = [model.config.id2label[index] for index in range(model.config.num_labels)]
    return Classifier(model, processor, labels)


def to_8bit(image):
    """An image in a mode with more than 8 bits per channel, scaled linearly to 8-bit grayscale."""
    import numpy as np
    from PIL import Image

    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    scaled = np.zeros_like(values) if high == low else (values - low) / (high - low) * 255.0
    return Image.fromarray(scaled.round().astype(np.uint8), mode="L")


def model_sized_image(image, image_size: int, num_channels: int):
    """Any PIL image -> the model's view of it: rotated upright (EXIF), converted to the model's channels, its
    central square cropped (the model was trained on square images) and resized to `image_size`."""
    from PIL import Image, ImageOps

    if not isinstance(image, Image.Image):
        raise DemoError(f"expected an image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise DemoError(f"the image has no pixels ({image.width} x {image.height})")
    image = ImageOps.exif_transpose(image)
    if image.mode in WIDE_MODES:
        image = to_8bit(image)
    # Large images are reduced by JPEG draft decoding and PIL's reducing resize, never decoded at full size twice.
    image.draft("RGB", (4 * image_size, 4 * image_size))
    image = image.convert(PIL_MODE_FOR_CHANNELS[num_channels])
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return square.resize((image_size, image_size), Image.Resampling.BILINEAR, reducing_gap=3.0)


def pixels_uint8(image) -> torch.Tensor:
    """(C, H, W) uint8 tensor of a PIL image."""
    import numpy as np

    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1)


@dataclass
class Prediction:
    probabilities: dict[str, float]  # the top-5 labels, highest first
    logits: torch.Tensor  # (num_labels,)
    cross_attention: torch.Tensor  # (heads, latents, tokens) of the first cross-attend
    image_uint8: torch.Tensor  # (C, H, W): what the model saw


def classify(classifier: Classifier, image) -> Prediction:
    """The model's reading of one PIL image: top-5 probabilities and the first cross-attend's weights."""
    small = model_sized_image(image, classifier.image_size, classifier.num_channels)
    if classifier.num_channels == 3:
        pixel_values = classifier.processor(images=small, return_tensors="pt")["pixel_values"]
    else:  # 1 or 4 channels: normalised with the processor's statistics, one per channel, as training did
        mean = torch.tensor(classifier.processor.image_mean, dtype=torch.float32)[:, None, None]
        std = torch.tensor(classifier.processor.image_std, dtype=torch.float32)[:, None, None]
        pixel_values = ((pixels_uint8(small).float() / 255.0 - mean) / std)[None]
    with torch.no_grad():
        output = classifier.model(pixel_values=pixel_values, output_attentions=True)
    logits = output.logits[0].float()
    probabilities = logits.softmax(-1)
    top = torch.topk(probabilities, min(TOP_K, len(probabilities)))
    return Prediction(
        probabilities={classifier.label_names[i]: float(p) for p, i in zip(top.values, top.indices.tolist())},
        logits=logits,
        cross_attention=output.cross_attentions[0][0],
        image_uint8=pixels_uint8(small),
    )


def attention_figure(classifier: Classifier, prediction: Prediction):
    """The attention drawing as a PIL image (drawn to a temporary PNG, read back, removed)."""
    from PIL import Image

    best = next(iter(prediction.probabilities))
    with tempfile.TemporaryDirectory(prefix="perceiver-demo-") as folder:
        path = plot_attention_maps(
            prediction.image_uint8[None],
            prediction.cross_attention[None],
            classifier.token_grid,
            Path(folder) / "attention.png",
            row_titles=[f"pred: {best}"],
            title="where the latents look (first cross-attend): all latents, then the sharpest (latent, head) maps",
        )
        with Image.open(path) as drawn:
            return drawn.convert("RGB")


def example_images() -> list[str]:
    folder = shipped_path("assets/demo-examples")
    return [str(path) for path in sorted(folder.glob("*.png"))]


def build_app(classifier: Classifier, examples: list[str] | None = None, title: str = "Perceiver Study"):
    """The Gradio page: an image in; the top-5 labels and the attention drawing out."""
    gradio = import_gradio()

    def predict(image):
        if image is None:
            raise gradio.Error("Upload an image (or pick an example) first.")
        try:
            prediction = classify(classifier, image)
        except DemoError as error:
            raise gradio.Error(str(error)) from error
        return prediction.probabilities, attention_figure(classifier, prediction)

    config = classifier.model.config
    parameters = sum(p.numel() for p in classifier.model.parameters())
    description = (
        f"A Perceiver (Jaegle et al., 2021) trained on {config.image_size} x {config.image_size} images: "
        f"{config.num_latents} latents read the image's {config.input_patch_size} x {config.input_patch_size}-pixel "
        f"patches through cross-attention ({parameters / 1e6:.2f}M parameters). Any image is cropped to its central "
        f"square and resized to {config.image_size} x {config.image_size}. Labels: {', '.join(classifier.label_names)}."
    )
    return gradio.Interface(
        fn=predict,
        inputs=gradio.Image(type="pil", label="image", image_mode=None),
        outputs=[
            gradio.Label(num_top_classes=TOP_K, label="top 5"),
            gradio.Image(type="pil", label="where the latents look"),
        ],
        examples=examples if examples is not None else example_images(),
        title=title,
        description=description,
        flagging_mode="never",
        cache_examples=False,
    )


def import_gradio():
    try:
        import gradio
    except ImportError as error:
        raise DemoError("the demo needs gradio: pip install 'perceiver-study[demo]'") from error
    return gradio


# ---------------------------------------------------------------------------------------------------------------------
# Command line


def parse_demo_arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="A saved model folder or Hub id.")
    parser.add_argument("--host", default="127.0.0.1", help="Address to serve on (0.0.0.0 to reach it from outside).")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--share", action="store_true", help="Ask Gradio for a public link (needs the internet).")
    return parser.parse_args(argv)


def demo_main(argv=None) -> int:
    """`scripts/demo.py` and the `perceiver-study-demo` command."""
    args = parse_demo_arguments(argv)
    try:
        import_gradio()
        app = build_app(load_classifier(args.model_dir))
    except DemoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app.launch(server_name=args.host, server_port=args.port, share=args.share)
    return 0
