"""Write a complete, self-describing model folder: what `from_pretrained(..., trust_remote_code=True)` needs."""

from pathlib import Path

from .configuration_perceiver_study import AUTO_MAP

# The Hub files: every module AUTO_MAP names.
CODE_FILES = tuple(dict.fromkeys(f"{target.split('.')[0]}.py" for target in AUTO_MAP.values()))


def complete_auto_map(model):
    """`save_pretrained` records in `auto_map` only the class it saves; the whole map makes every Auto class (config,
    base model, classifier, image processor) resolve from the folder's `config.json` alone, also for a model loaded
    from an older folder whose map lacks an entry."""
    model.config.auto_map = dict(AUTO_MAP)
    return model


def save_model_folder(model, image_processor, output_dir) -> Path:
    """Save weights (safetensors), config (with the whole `auto_map`), image processor and the code files."""
    output_dir = Path(output_dir)
    complete_auto_map(model)
    model.save_pretrained(output_dir, safe_serialization=True)
    image_processor.save_pretrained(output_dir)
    missing = [name for name in CODE_FILES if not (output_dir / name).is_file()]
    if missing:
        raise RuntimeError(f"model folder {output_dir} lacks code files {missing} after saving")
    return output_dir
