"""The command-line scripts run as `python scripts/NAME.py`, where Python puts scripts/ first on sys.path: no script
may be named like an installed library, or it would be imported in that library's place by every script."""

import importlib.util
import subprocess
import sys

import pytest

from tests.helpers import REPO_ROOT

SCRIPTS = sorted(path for path in (REPO_ROOT / "scripts").glob("*.py") if path.stem != "__init__")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_no_script_is_named_like_an_installed_module(script):
    spec = importlib.util.find_spec(script.stem)
    assert spec is None, f"scripts/{script.name} shadows the installed module {script.stem!r} ({spec.origin})"


@pytest.mark.parametrize("name", ["evaluate_model.py", "position_use.py"])
def test_scripts_that_use_the_evaluate_library_start(name):
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts" / name), "--help"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "--model_dir" in result.stdout
