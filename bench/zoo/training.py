"""Pieces every zoo training shares: the weight EMA and swapping a finished model folder into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch


@torch.no_grad()
def ema_update(average: torch.nn.Module, current: torch.nn.Module, decay: float) -> None:
    for averaged, trained in zip(average.parameters(), current.parameters(), strict=True):
        averaged.lerp_(trained, 1 - decay)


def publish_folder(output: Path, write: Callable[[Path], None]) -> None:
    """Let ``write`` fill a staging folder beside ``output``, then swap it in by renames: a save that
    fails or is interrupted leaves the previous model folder whole."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}-new-"))
    retired = output.parent / f".{output.name}-old-{os.getpid()}"
    try:
        write(staging)
        staging.chmod(0o755)
        if output.exists():
            output.rename(retired)
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
