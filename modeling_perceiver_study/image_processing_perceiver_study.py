"""Image processor of the Perceiver Study model: RGB, resize to the training size if needed, rescale, normalize.

This file travels to the Hub with the weights: it imports transformers only and defines a class, nothing else.
It uses transformers' PIL backend, so it needs no torchvision.
"""

from transformers.image_processing_backends import PilBackend
from transformers.image_utils import PILImageResampling

# Per-channel statistics of the CIFAR-10 training images, in [0, 1] units.
CIFAR10_MEAN = [0.4914, 0.4822, 0.4465]
CIFAR10_STD = [0.2470, 0.2435, 0.2616]


class PerceiverStudyImageProcessor(PilBackend):
    r"""
    Turns images (PIL, NumPy or torch; channels first or last) into `pixel_values` of shape `(B, 3, H, W)`:
    converted to RGB, resized to `size` with bilinear filtering (a no-op at the training size), rescaled to [0, 1]
    and normalized with the CIFAR-10 mean and standard deviation.
    """

    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BILINEAR
    image_mean = CIFAR10_MEAN
    image_std = CIFAR10_STD
    size = {"height": 32, "width": 32}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True


__all__ = ["PerceiverStudyImageProcessor"]
