"""The record every study command writes beside its numbers: the command that rebuilds them, the date, the machine."""

import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from modeling_perceiver_study.files import read_json, write_json_atomic
from modeling_perceiver_study.training import SetupError


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {torch.get_num_threads()} threads"
    )


def run_record(module: str, argv: list[str] | None = None) -> dict:
    """`module` is the command's module (`study.permutation`); `argv` its arguments (default: this process's)."""
    arguments = sys.argv[1:] if argv is None else argv
    return {
        "command": shlex.join(["python", "-m", module, *arguments]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": machine(),
        "torch": torch.__version__,
    }


def record_run_settings(training_args, file_name: str, settings: dict, what: str) -> None:
    """Write what run_args.json cannot hold (a study script's own settings) to `file_name` in the run folder, from
    the first process, at the start of the run. A rerun into a folder that holds another `what` is refused, naming
    both, before the data is read, as scripts/train.py refuses other settings."""
    if training_args.process_index != 0:
        return
    path = Path(training_args.output_dir) / file_name
    if path.is_file() and not training_args.overwrite_output_dir:
        recorded = read_json(path)
        if recorded != settings:
            raise SetupError(
                f"output_dir {path.parent} holds a run of another {what} ({recorded}, now {settings}). Pass "
                "--overwrite_output_dir to start over there, or choose another --output_dir"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)


def split_flags(argv: list[str], names: tuple[str, ...]) -> tuple[dict, list[str]]:
    """({flag: value} for the study script's own `names`, the remaining scripts/train.py arguments)."""
    values, rest = {}, []
    items = iter(argv)
    for item in items:
        if item in names:
            value = next(items, None)
            if value is None:
                raise SetupError(f"{item} needs a value")
            values[item] = value
        else:
            rest.append(item)
    return values, rest
