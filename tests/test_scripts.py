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


STUDY_COMMANDS = sorted(
    path.stem
    for path in (REPO_ROOT / "study").glob("*.py")
    if "__main__" in path.read_text() and path.stem != "__init__"
)


@pytest.mark.parametrize(
    "command", [["scripts/evaluate_model.py"]] + [["-m", f"study.{name}"] for name in STUDY_COMMANDS], ids=" ".join
)
def test_every_command_starts(command):
    """Every product script and study command (`python -m study.NAME`, from the checkout's root) parses --help, so
    a broken import after a move fails here."""
    result = subprocess.run(
        [sys.executable, *command, "--help"], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()
