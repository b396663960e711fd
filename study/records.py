"""The record every study command writes beside its numbers: the command that rebuilds them, the date, the machine."""

import os
import platform
import shlex
import sys
from datetime import datetime, timezone

import torch


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
