"""Write a complete, self-describing model folder: what `from_pretrained(..., trust_remote_code=True)` needs."""

from pathlib import Path

from .configuration_perceiver_study import MODEL_AUTO_MAP

IMAGE_PROCESSOR_AUTO_MAP = {"AutoImageProcessor": "image_processing_perceiver_study.PerceiverStudyImageProcessor"}
FULL_AUTO_MAP = {**MODEL_AUTO_MAP, **IMAGE_PROCESSOR_AUTO_MAP}
CODE_FILES = (
    "configuration_perceiver_study.py",
    "modeling_perceiver_study.py",
    "image_processing_perceiver_study.py",
)


def save_model_folder(model, image_processor, output_dir) -> Path:
    """Save weights (safetensors), config, image processor and the code files.

    `save_pretrained` records in `auto_map` only the class it saves; setting the whole map first makes every Auto
    class (config, base model, classifier, image processor) resolve from the folder's `config.json` alone.
    """
    output_dir = Path(output_dir)
    model.config.auto_map = dict(FULL_AUTO_MAP)
    model.save_pretrained(output_dir, safe_serialization=True)
    image_processor.save_pretrained(output_dir)
    missing = [name for name in CODE_FILES if not (output_dir / name).is_file()]
    if missing:
        raise RuntimeError(f"model folder {output_dir} lacks code files {missing} after saving")
    return output_dir
