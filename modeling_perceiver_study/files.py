"""Files the package reads (the shipped presets, recipes and model-card template) and writes (run outputs, never
half-written)."""

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
# `configuration/` and `model_card.md` travel inside a wheel as `modeling_perceiver_study/_shipped/` (package data,
# see pyproject.toml), with the checkout's layout; an editable install reads them from the checkout itself.
SHIPPED_ROOT = _PACKAGE_DIR / "_shipped" if (_PACKAGE_DIR / "_shipped").is_dir() else _PACKAGE_DIR.parent


def shipped_path(relative) -> Path:
    """A file shipped with the package, by its path in the checkout: `configuration/presets/seed.json`."""
    return SHIPPED_ROOT / relative


def replace_atomically(path, write: Callable[[str], object]) -> Path:
    """Call `write(temporary_path)` on a file beside `path`, then rename it into place: readers see the old file or
    the new one, never part of one."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=path.suffix)
    os.close(handle)
    try:
        write(temporary)
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; results are meant to be read by others
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def write_json_atomic(path, payload) -> None:
    text = json.dumps(payload, indent=2, default=str) + "\n"
    replace_atomically(path, lambda temporary: Path(temporary).write_text(text))


def require_model_location(name_or_path: str) -> None:
    """Refuse, naming the path, a model location that cannot load: a local path that does not exist, or a folder
    without `config.json`. A name that reads as a Hub id (`name`, or `org/name` with no local folder `org`) is left
    to the Hub client. Without this, a mistyped folder reached the Hub client and failed as 'check your internet
    connection'."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").is_file():
            raise FileNotFoundError(f"{name_or_path} is not a model folder: it has no config.json")
        for weights in sorted(path.glob("*.safetensors")):
            require_loadable_safetensors(weights)
        return
    text = str(name_or_path)
    slashes = text.count("/")
    if text.startswith((".", "/", "~")) or slashes > 1 or (slashes == 1 and path.parent.is_dir()):
        raise FileNotFoundError(f"model folder {name_or_path} does not exist")


def read_json(path):
    """The JSON in `path`; a file that is not JSON is named in the error (ValueError)."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error


def percent(value: float, decimals: int = 1) -> str:
    """A fraction as a percentage, `0.6768` -> `67.7 %`: docs use one decimal, the model card two."""
    return f"{100 * value:.{decimals}f} %"


def require_loadable_safetensors(path) -> None:
    """A weights file whose header or length is wrong (e.g. truncated by an interrupted copy), named; the loader's
    own error does not say which file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt"):
            pass
    except (SafetensorError, OSError) as error:
        raise ValueError(f"weights file {path} does not load ({error}): it is damaged or incomplete") from error
