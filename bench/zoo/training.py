"""Pieces every zoo training shares: the weight EMA, swapping a finished model folder into place, and
where a recipe keeps its resumable checkpoint (the loop itself is ``bench.training``)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
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


def checkpoint_folder(output: Path, config) -> Path:
    """Where a training of ``config`` into ``output`` keeps its checkpoint (in the suite's cache): keyed
    by the output folder and the whole config, so only the same training resumes from it."""
    from bench.assets import cache_dir

    key = json.dumps([str(Path(output).resolve()), asdict(config)], sort_keys=True, default=list)
    return cache_dir() / "zoo-checkpoints" / f"{Path(output).name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
