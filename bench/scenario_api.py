"""The scenario API: what a scenario is handed for one cell (``CellContext``) and what it returns
(``ScenarioResult``), and the run options they carry. Scenarios import this module and
``bench.measure``, never the orchestrator (``bench.runner``); see README "Adding a scenario"."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load_file
from tqdm import tqdm

from bench import data as data_module
from bench.base import Attack, Defense, Metric, Scenario
from bench.errors import BenchError, check_device
from bench.finetune import FineTuneRecipe, finetune
from bench.grid import Cell, PluginSpec
from bench.identity import InputHasher
from bench.stats import Estimate
from bench.store import CellStore, DamagedFile, RunStore, atomic_save_tensors, load_tensors

log = logging.getLogger(__name__)

TEXT_PREFIX = "text:"
"""Stored batches hold a per-sample text column (a list of strings) as a uint8 tensor ``text:NAME``."""


def encode_texts(texts: list[str]) -> torch.Tensor:
    """A list of strings as a uint8 tensor (its UTF-8 JSON), so a batch file stays tensors only."""
    return torch.frombuffer(bytearray(json.dumps(list(texts)).encode()), dtype=torch.uint8).clone()


def decode_texts(tensor: torch.Tensor) -> list[str]:
    return json.loads(bytes(tensor.tolist()).decode())


def to_stored(values: dict[str, torch.Tensor | list[str]]) -> dict[str, torch.Tensor]:
    return {(f"{TEXT_PREFIX}{k}" if isinstance(v, list) else k): (encode_texts(v) if isinstance(v, list) else v)
            for k, v in values.items()}


def from_stored(stored: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | list[str]]:
    return {k.removeprefix(TEXT_PREFIX): decode_texts(v) if k.startswith(TEXT_PREFIX) else v
            for k, v in stored.items()}


@dataclass(frozen=True)
class RunOptions:
    device: str = "cpu"
    dtype: str = "float32"
    quiet: bool = False
    save_images: bool = False
    force: bool = False

    def __post_init__(self):
        check_device(self.device)  # an unknown or absent device fails here, before anything is loaded
        if self.dtype not in ("float32", "float16", "bfloat16"):
            raise BenchError(f"dtype {self.dtype!r} is not supported; use float32, float16 or bfloat16")

    @property
    def torch_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)


@dataclass
class ScenarioResult:
    """Per-sample rows, plus set-level estimates (FID, KID) that have no per-sample value."""

    samples: pd.DataFrame
    set_estimates: dict[str, Estimate] = field(default_factory=dict)
    images: dict[str, torch.Tensor] = field(default_factory=dict)


class CellContext:
    """What a scenario needs to evaluate one cell. ``defense_for`` builds (once per run) the defense
    of a spec, e.g. the transfer source; the scenario decides what model an attack is handed
    (``Scenario.attack_model``) and what the defended system is (``Scenario.evaluation_model``)."""

    def __init__(self, cell: Cell, store: CellStore, run: RunStore, defense: Defense, attack: Attack,
                 metrics: dict[str, Metric], images: data_module.ImageSet, options: RunOptions,
                 scenario: Scenario | None = None, defense_for: Callable[[PluginSpec], Defense] | None = None,
                 hasher: InputHasher | None = None):
        self.cell, self.store, self.run = cell, store, run
        self.hasher = hasher or InputHasher()
        self.defense, self.attack, self.metrics = defense, attack, metrics
        self.data, self.options = images, options
        self.device = options.torch_device
        self.scenario = scenario
        self._defense_for = defense_for or (lambda spec: defense)

    def defense_for(self, spec: PluginSpec) -> Defense:
        return self._defense_for(spec)

    def attack_model(self, spec: PluginSpec) -> Any:
        """The model a white-box attack differentiates when it targets the defense of ``spec``."""
        return self.scenario.attack_model(self, self.defense_for(spec))

    def attack_model_identity(self, spec: PluginSpec) -> dict[str, Any]:
        return self.scenario.attack_model_identity(self, self.defense_for(spec))

    def evaluation_model(self, spec: PluginSpec) -> Any:
        return self.scenario.evaluation_model(self, self.defense_for(spec))

    def data_identity(self) -> dict[str, Any]:
        return dataclasses.asdict(self.cell.data)

    def batches(self) -> list[tuple[int, slice]]:
        n, size = len(self.data.images), self.cell.batch_size
        return [(i, slice(start, min(start + size, n))) for i, start in enumerate(range(0, n, size))]

    def batch_seed(self, index: int) -> int:
        return self.cell.seed * 1_000_003 + index

    def shared(self, parts: dict[str, Any], compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Tensors computed once per run for the same inputs (e.g. clean reconstructions), then reused.
        The file is keyed by ``parts``, the content of every file they name, the files the cell's metrics
        load (feature spaces), dtype and device type; a damaged stored copy is recomputed."""
        metrics = [m.as_dict() for m in self.cell.metrics]
        keyed = {**parts, "inputs": self.hasher.references([parts, metrics]),
                 "run_on": {"dtype": self.options.dtype, "device": self.device.type}}
        digest = hashlib.sha256(json.dumps(keyed, sort_keys=True).encode()).hexdigest()[:16]
        path = self.run.shared_path(f"{parts.get('what', 'shared')}-{digest}")
        if path.exists():
            try:  # always the stored copy, so a first run and a resumed one compute on identical memory
                return load_tensors(path)
            except DamagedFile as err:
                log.warning("%s; recomputing it", err)
        atomic_save_tensors(path, compute())
        return load_file(path)

    def finetune(self, recipe: FineTuneRecipe, data: dict[str, torch.Tensor | list[str]]) -> Path:
        """The folder of ``recipe`` fine-tuned on ``data`` with the cell's seed: trained once per run and
        shared by every cell that asks for the same fine-tune, resumed after a kill (``bench.finetune``);
        trained on the cell's device where the recipe can."""
        return finetune(self.run.folder, recipe, data, self.cell.seed, quiet=self.options.quiet, device=self.device)

    def progress(self, iterable, desc: str):
        return tqdm(iterable, desc=desc, leave=False, disable=self.options.quiet)

    def stored_batches(self, evaluate: Callable[[int, slice], dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """Every batch's stored values in order; a batch the store lacks (a fresh or resumed run) is
        evaluated, saved atomically and read back, so both paths yield the same stored values. A value
        that is a list of strings (a per-sample text column: perturbed prompts, captions) is stored
        and read back as such."""
        for index, batch in self.progress(self.batches(), f"{self.cell.defense.label} x {self.cell.attack.label}"):
            try:
                stored = self.store.load_batch(index)
            except DamagedFile as err:
                log.warning("%s (recomputing batch %d now)", err, index)
                stored = None
            if stored is None:
                self.store.save_batch(index, to_stored(evaluate(index, batch)))
                stored = self.store.load_batch(index)
            yield from_stored(stored)
