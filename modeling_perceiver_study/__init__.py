"""Perceiver Study: the Perceiver as a native Hugging Face image classifier.

Importing the package registers the model with transformers' Auto classes, so that `AutoModel...from_pretrained`
works on a saved folder without `trust_remote_code` while the package is installed; a folder or Hub repo loaded
*without* the package uses the code files saved beside the weights (`trust_remote_code=True`).
"""

from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
)

from .configuration_perceiver_study import AUTO_MAP, PerceiverStudyConfig
from .image_processing_perceiver_study import PerceiverStudyImageProcessor
from .modeling_perceiver_study import (
    PerceiverStudyForImageClassification,
    PerceiverStudyModel,
    PerceiverStudyPreTrainedModel,
)

__version__ = "0.1.0"

AutoConfig.register(PerceiverStudyConfig.model_type, PerceiverStudyConfig, exist_ok=True)
AutoModel.register(PerceiverStudyConfig, PerceiverStudyModel, exist_ok=True)
AutoModelForImageClassification.register(PerceiverStudyConfig, PerceiverStudyForImageClassification, exist_ok=True)
AutoImageProcessor.register(
    PerceiverStudyConfig, slow_image_processor_class=PerceiverStudyImageProcessor, exist_ok=True
)
# `save_pretrained` copies the code files of classes registered for an Auto class (for trust_remote_code loading).
for _auto_class, _target in AUTO_MAP.items():
    globals()[_target.split(".")[1]].register_for_auto_class(_auto_class)
del _auto_class, _target

__all__ = [
    "PerceiverStudyConfig",
    "PerceiverStudyForImageClassification",
    "PerceiverStudyImageProcessor",
    "PerceiverStudyModel",
    "PerceiverStudyPreTrainedModel",
]
