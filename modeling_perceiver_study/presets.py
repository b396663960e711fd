"""Model presets: JSON files of config fields, by name from `configuration/presets/` or by path."""

import json
from pathlib import Path

from .configuration_perceiver_study import PerceiverStudyConfig
from .files import shipped_path

PRESETS_DIR = shipped_path("configuration/presets")


def available_presets() -> list[str]:
    return sorted(path.stem for path in PRESETS_DIR.glob("*.json"))


def preset_path(name_or_path: str) -> Path:
    """A preset name (`seed`) or a path to a JSON file of config fields."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".json" and candidate.is_file():
        return candidate
    path = PRESETS_DIR / f"{name_or_path}.json"
    if not path.is_file():
        raise ValueError(
            f"unknown preset {name_or_path!r}: expected one of {available_presets()} (in {PRESETS_DIR}) "
            "or the path of a JSON file of config fields"
        )
    return path


def preset_fields(name_or_path: str) -> dict:
    path = preset_path(name_or_path)
    try:
        fields = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"preset file {path} is not valid JSON: {error}") from error
    if not isinstance(fields, dict):
        raise ValueError(f"preset file {path} must hold a JSON object of config fields")
    fields = {key: value for key, value in fields.items() if not key.startswith("_")}
    unknown = unknown_config_fields(fields)
    if unknown:
        raise ValueError(f"preset file {path} names unknown config fields {unknown} (a comment's key starts with _)")
    return fields


def unknown_config_fields(names) -> list[str]:
    """The names that are not fields of `PerceiverStudyConfig`: one rule for preset files and --config_overrides,
    since the config itself would keep a misspelt field as an attribute nobody reads."""
    return sorted(name for name in names if name not in PerceiverStudyConfig.__dataclass_fields__)


def load_preset(name_or_path: str, **overrides) -> PerceiverStudyConfig:
    """Build a config from a preset, with `overrides` (e.g. `num_labels`, `id2label`) applied on top."""
    return PerceiverStudyConfig(**{**preset_fields(name_or_path), **overrides})
