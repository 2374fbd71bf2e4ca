"""The result store: one folder per cell, named by the hash of its resolved config.

    RUN_DIR/run.json                      the grid and the keys of its cells
    RUN_DIR/cells/<key>/config.json       the resolved config of the cell
    RUN_DIR/cells/<key>/batches/*.safetensors   per-batch checkpoints (resume)
    RUN_DIR/cells/<key>/samples.csv       per-sample rows
    RUN_DIR/cells/<key>/summary.json      aggregates with intervals and provenance (written last)
    RUN_DIR/shared/*.safetensors          clean reconstructions and reference features, reused

Every file is written to a temporary name and renamed into place, so a run killed at any moment
leaves only whole files; a cell is complete once its summary exists.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from bench.errors import BenchError


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=True) + "\n")


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


class CellStore:
    def __init__(self, folder: Path):
        self.folder = folder

    @property
    def summary_path(self) -> Path:
        return self.folder / "summary.json"

    def is_complete(self) -> bool:
        return self.summary_path.exists()

    def check_config(self, resolved: dict[str, Any]) -> None:
        """Create the cell's config, or refuse when a different one is already stored there."""
        path = self.folder / "config.json"
        if path.exists():
            stored = json.loads(path.read_text())
            if stored != json.loads(json.dumps(resolved)):
                raise BenchError(f"{self.folder} holds results of a different configuration; "
                                 "use a new --out folder or delete that cell folder")
        else:
            atomic_write_json(path, resolved)

    def batch_path(self, index: int) -> Path:
        return self.folder / "batches" / f"batch_{index:05d}.safetensors"

    def load_batch(self, index: int) -> dict[str, torch.Tensor] | None:
        path = self.batch_path(index)
        return load_file(path) if path.exists() else None

    def save_batch(self, index: int, tensors: dict[str, torch.Tensor]) -> None:
        atomic_save_tensors(self.batch_path(index), tensors)

    def summary(self) -> dict[str, Any]:
        return json.loads(self.summary_path.read_text())


class RunStore:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def cell(self, key: str) -> CellStore:
        return CellStore(self.folder / "cells" / key)

    def shared_path(self, name: str) -> Path:
        return self.folder / "shared" / f"{name}.safetensors"

    def claim(self, grid: dict[str, Any], keys: list[str], force: bool = False) -> None:
        """Record which grid this folder holds; refuse a different grid unless ``force``."""
        path = self.folder / "run.json"
        if path.exists() and not force:
            stored = json.loads(path.read_text())
            if stored.get("cells") != keys:
                raise BenchError(f"{self.folder} holds a run of a different grid; use a new --out folder, "
                                 "or --force to add these cells beside the old ones")
        if not path.exists() or force:
            atomic_write_json(path, {"grid": grid, "cells": keys})

    def cell_keys(self) -> list[str]:
        path = self.folder / "run.json"
        if not path.exists():
            raise BenchError(f"{self.folder} is not a run folder (no run.json); run `bench run GRID --out "
                             f"{self.folder}` first")
        return json.loads(path.read_text())["cells"]

    def summaries(self) -> list[dict[str, Any]]:
        return [self.cell(key).summary() for key in self.cell_keys() if self.cell(key).is_complete()]
