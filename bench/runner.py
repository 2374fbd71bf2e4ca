"""Runs the cells of a grid: resumable, one cell folder each, clean computations shared."""

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
from bench.base import Attack, Defense, Metric
from bench.errors import BenchError, check_device
from bench.grid import Cell, PluginSpec, load_grid
from bench.identity import InputHasher
from bench.plugins import ATTACKS, DEFENSES, METRICS, SCENARIOS
from bench.provenance import provenance
from bench.stats import Estimate, mean_interval, set_interval
from bench.store import (
    CellStore,
    DamagedFile,
    RunStore,
    atomic_save_tensors,
    atomic_write_json,
    atomic_write_text,
    load_tensors,
)

log = logging.getLogger(__name__)


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
                 scenario: Any = None, defense_for: Callable[[PluginSpec], Defense] | None = None,
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

    def progress(self, iterable, desc: str):
        return tqdm(iterable, desc=desc, leave=False, disable=self.options.quiet)

    def stored_batches(self, evaluate: Callable[[int, slice], dict[str, torch.Tensor]]
                       ) -> Iterator[dict[str, torch.Tensor]]:
        """Every batch's stored tensors in order; a batch the store lacks (a fresh or resumed run) is
        evaluated, saved atomically and read back, so both paths yield the same stored values."""
        for index, batch in self.progress(self.batches(), f"{self.cell.defense.label} x {self.cell.attack.label}"):
            try:
                stored = self.store.load_batch(index)
            except DamagedFile as err:
                log.warning("%s (recomputing batch %d now)", err, index)
                stored = None
            if stored is None:
                self.store.save_batch(index, evaluate(index, batch))
                stored = self.store.load_batch(index)
            yield stored


def metric_label(spec: PluginSpec) -> str:
    return spec.label if spec.label != spec.name else spec.name


class Runner:
    def __init__(self, out: str | Path, options: RunOptions = RunOptions()):
        self.run = RunStore(out)
        self.options = options
        self._defenses: dict[str, Defense] = {}
        self._data: dict[str, data_module.ImageSet] = {}
        self.hasher = InputHasher()  # every referenced file hashed once per run

    def bind(self, cell: Cell) -> Cell:
        """The cell with its inputs (dtype, device type, content hash of each file it names), which
        enter its key: a cell run on other inputs gets another folder, never a mixed one."""
        inputs = {"dtype": self.options.dtype, "device": self.options.torch_device.type,
                  "files": self.hasher.references(cell.resolved())}
        return dataclasses.replace(cell, inputs=inputs)

    def _defense(self, spec: PluginSpec) -> Defense:
        key = json.dumps(spec.as_dict(), sort_keys=True)
        if key not in self._defenses:
            defense = spec.build(DEFENSES).prepare(self.options.torch_device)
            self._defenses[key] = defense.to(self.options.torch_device, self.options.torch_dtype)
        return self._defenses[key]

    def _images(self, spec) -> data_module.ImageSet:
        key = repr(spec)
        if key not in self._data:
            self._data[key] = data_module.load(spec)
        return self._data[key]

    def _context(self, cell: Cell) -> CellContext:
        device = self.options.torch_device
        metrics = {metric_label(m): m.build(METRICS).prepare(device) for m in cell.metrics}
        if cell.transfer_source is not None:
            self._defense(cell.transfer_source)
        scenario = cell.scenario.build(SCENARIOS).prepare(device)
        images = self._images(cell.data)
        scenario.check_data(images)
        return CellContext(cell, self.run.cell(cell.key), self.run, self._defense(cell.defense),
                           cell.attack.build(ATTACKS).prepare(device), metrics, images,
                           self.options, scenario, self._defense, self.hasher)

    def run_grid(self, grid_path: str | Path) -> list[dict[str, Any]]:
        raw, cells = load_grid(grid_path)
        cells = [self.bind(cell) for cell in cells]
        pending = [cell for cell in cells if not self._finished(cell)]
        contexts = {cell.key: self._context(cell) for cell in pending}  # inputs and assets checked first
        with self.run.lock():  # one `bench run` per folder; a second one is refused
            self.run.claim(raw, [cell.key for cell in cells], force=self.options.force,
                           config_keys=[cell.config_key for cell in cells],
                           labels={cell.key: cell.label for cell in cells},
                           options={"dtype": self.options.dtype, "device": self.options.torch_device.type},
                           inputs={k: v for cell in cells for k, v in cell.inputs["files"].items()})
            self.run.remove_temporary_files()
            summaries = []
            for cell in tqdm(cells, desc="cells", disable=self.options.quiet):
                if cell.key in contexts and not self._finished(cell):
                    summaries.append(self.run_cell(contexts[cell.key]))
                else:
                    log.info("cell %s (%s x %s) already complete", cell.key, cell.defense.label, cell.attack.label)
                    summaries.append(self.run.cell(cell.key).summary())
        return summaries

    def _finished(self, cell: Cell) -> bool:
        """True when the cell's summary exists and reads back; a damaged one is recomputed."""
        store = self.run.cell(cell.key)
        if store.readable_summary() is not None:
            store.check_config(cell.resolved())
            return True
        return False

    def run_cell(self, context: CellContext) -> dict[str, Any]:
        cell, store = context.cell, context.store
        store.check_config(cell.resolved())
        torch.manual_seed(cell.seed)
        result: ScenarioResult = context.scenario.run(context)
        return self._write(cell, store, context, result)

    def _write(self, cell: Cell, store: CellStore, context: CellContext, result: ScenarioResult) -> dict:
        atomic_write_text(store.folder / "samples.csv", result.samples.to_csv(index=False))
        if self.options.save_images:
            save_pngs(store.folder / "images", result.images)
        metrics: dict[str, Any] = {}
        for column in result.samples.columns:
            if column in RECORD_ONLY_COLUMNS:
                continue
            estimate = mean_interval(result.samples[column].to_numpy(), seed=cell.seed)
            metrics[column] = {**estimate.as_dict(), "higher_is_better": higher_is_better(column, context),
                               "kind": "mean"}
        for column, estimate in result.set_estimates.items():
            metrics[column] = {**estimate.as_dict(), "higher_is_better": higher_is_better(column, context),
                               "kind": "set"}
        nans = {column: values["nan_count"] for column, values in metrics.items()
                if values["nan_count"] and not nan_meaningful(column, context)}
        if nans:  # samples.csv stays for inspection; without a summary the cell is not complete
            from bench.errors import BenchError

            counts = ", ".join(f"{column} {count} of {count + metrics[column]['n']}" for column, count in nans.items())
            raise BenchError(f"cell {cell.key} ({cell.defense.label} x {cell.attack.label} [{cell.threat_model}] "
                             f"({cell.scenario.label}) eps={cell.eps:.4g}): NaN values in {counts}; see "
                             f"{store.folder / 'samples.csv'}")
        summary = {"key": cell.key, "defense": cell.defense.label, "attack": cell.attack.label,
                   "scenario": cell.scenario.label, "eps": cell.eps, "n": len(result.samples),
                   "threat_model": cell.threat_model,
                   "transfer_source": cell.transfer_source.label if cell.transfer_source else None,
                   **({"transfer_kept_fraction": float(result.samples["transfer_kept"].mean())}
                      if "transfer_kept" in result.samples else {}),
                   "config": cell.resolved(), "metrics": metrics,
                   "weights": context.defense.weights(),
                   "provenance": provenance(self.options.torch_device, self.options.torch_dtype, cell.seed)}
        atomic_write_json(store.summary_path, summary)
        return summary


LOWER_IS_BETTER_COLUMNS = ("latent_shift", "linf", "lpips_input", "attack_objective")
RECORD_ONLY_COLUMNS = ("index", "transfer_kept", "selection_damage")
"""Per-sample columns kept in samples.csv but not summarised as metrics."""


def nan_meaningful(column: str, context: CellContext) -> bool:
    """Whether NaN is a legitimate value of a result column: only where its metric declares it
    (``Metric.nan_meaningful``); anywhere else a NaN fails the cell."""
    base = column.removeprefix("clean_rec_").split("_vs_")[0]
    metric = context.metrics.get(base)
    if metric is None and base in METRICS:
        metric = METRICS.get(base)
    return bool(getattr(metric, "nan_meaningful", False))


def higher_is_better(column: str, context: CellContext) -> bool:
    """Direction of a result column: a scenario quantity, or the metric it was computed with
    (``psnr_vs_clean_rec`` and ``clean_rec_psnr`` are PSNR)."""
    base = column.removeprefix("clean_rec_").split("_vs_")[0]
    if base in LOWER_IS_BETTER_COLUMNS:
        return False
    metric = context.metrics.get(base)
    if metric is None and base in METRICS:
        metric = METRICS.get(base)
    return bool(metric.higher_is_better) if metric is not None else True


def save_pngs(folder: Path, images: dict[str, torch.Tensor]) -> None:
    from PIL import Image

    for kind, batch in images.items():
        target = folder / kind
        target.mkdir(parents=True, exist_ok=True)
        array = (batch.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()
        for i, image in enumerate(array):
            path = target / f"{i:04d}.png"
            tmp = path.with_suffix(".png.tmp")
            Image.fromarray(image).save(tmp, format="PNG")
            tmp.replace(path)


def set_metric_estimates(metrics: dict[str, Metric], images: torch.Tensor,
                         reference_features: dict[str, torch.Tensor], seed: int,
                         features: dict[str, torch.Tensor] | None = None) -> dict[str, Estimate]:
    """FID/KID of ``images`` against reference features (one tensor per feature space), with intervals;
    ``features`` may hold the images' features already computed."""
    estimates = {}
    features_by_space: dict[str, torch.Tensor] = dict(features or {})
    for label, metric in metrics.items():
        if metric.kind != "set":
            continue
        if metric.feature_space not in features_by_space:
            features_by_space[metric.feature_space] = metric.features(images)
        features = features_by_space[metric.feature_space]
        reference = reference_features[metric.feature_space]
        value = metric.from_features(features, reference)
        interval = set_interval(metric.statistic, features.numpy(), reference.numpy(), seed=seed)
        estimates[label] = Estimate(value, interval.low, interval.high, len(features))
    return estimates


def summaries_frame(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for summary in summaries:
        for metric, values in summary["metrics"].items():
            rows.append({"defense": summary["defense"], "attack": summary["attack"], "eps": summary["eps"],
                         "scenario": summary["scenario"], "metric": metric, **values})
    return pd.DataFrame(rows)


def load_run(folder: str | Path) -> list[dict[str, Any]]:
    return RunStore(folder).summaries()

