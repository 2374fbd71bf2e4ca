"""Runs the cells of a grid: resumable, one cell folder each, clean computations shared."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm import tqdm

from bench import data as data_module
from bench.base import Defense
from bench.claims import DEFAULT_STALE_AFTER, CellClaim
from bench.columns import LOWER_IS_BETTER_COLUMNS, RECORD_ONLY_COLUMNS, metric_base
from bench.errors import BenchError
from bench.grid import Cell, PluginSpec, load_grid
from bench.identity import InputHasher
from bench.plugins import ATTACKS, DEFENSES, METRICS, SCENARIOS
from bench.provenance import provenance
from bench.scenario_api import CellContext, RunOptions, ScenarioResult
from bench.shards import Shard
from bench.stats import mean_interval
from bench.store import (
    CellStore,
    RunStore,
    atomic_write_json,
    atomic_write_text,
)

log = logging.getLogger(__name__)


def metric_label(spec: PluginSpec) -> str:
    return spec.label if spec.label != spec.name else spec.name


class Runner:
    def __init__(self, out: str | Path, options: RunOptions | None = None, *,
                 stale_after: float = DEFAULT_STALE_AFTER, poll_seconds: float = 2.0):
        self.run = RunStore(out)
        self.stale_after = stale_after
        self.poll_seconds = poll_seconds
        self.options = options if options is not None else RunOptions()
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
        scenario = cell.scenario.build(SCENARIOS).prepare(device)
        images = self._images(cell.data)
        scenario.check_data(images)
        for spec in filter(None, (cell.defense, cell.transfer_source)):
            self._defense(spec).check_images(images.images)
        context = CellContext(cell, self.run.cell(cell.key), self.run, self._defense(cell.defense),
                              cell.attack.build(ATTACKS).prepare(device), metrics, images,
                              self.options, scenario, self._defense, self.hasher)
        scenario.check_cell(context)
        return context

    def run_grid(self, grid_path: str | Path, shard: Shard | None = None,
                 only: Collection[str] | None = None) -> list[dict[str, Any]]:
        """Run the grid's cells (those of ``shard``, or the cell keys in ``only``, when given) and
        return their summaries.

        Several runs, shards or Ray workers may write one folder at once: each cell is computed by the
        one worker that claims it (``bench.claims``); a cell another live worker holds is waited for,
        and taken over if that worker dies."""
        raw, cells = load_grid(grid_path)
        cells = [self.bind(cell) for cell in cells]
        mine = cells if shard is None else shard.select(cells)
        if only is not None:
            mine = [cell for cell in mine if cell.key in set(only)]
        pending = [cell for cell in mine if not self._finished(cell)]
        contexts = {cell.key: self._context(cell) for cell in pending}  # inputs and assets checked first
        with self.run.lock():  # held only to record the grid in run.json
            self.run.claim(raw, [cell.key for cell in cells], force=self.options.force,
                           config_keys=[cell.config_key for cell in cells],
                           labels={cell.key: cell.label for cell in cells},
                           options={"dtype": self.options.dtype, "device": self.options.torch_device.type},
                           inputs={k: v for cell in cells for k, v in cell.inputs["files"].items()})
            if not self._live_claims():
                self.run.remove_temporary_files()
        summaries: dict[str, dict[str, Any]] = {}
        elsewhere = []
        for cell in tqdm(mine, desc="cells", disable=self.options.quiet):
            if cell.key in contexts and not self._finished(cell):
                summary = self._run_claimed(contexts[cell.key])
                if summary is None:
                    log.info("cell %s is being computed by another worker; waiting for it at the end", cell.key)
                    elsewhere.append(cell)
                else:
                    summaries[cell.key] = summary
            else:
                log.info("cell %s (%s x %s) already complete", cell.key, cell.defense.label, cell.attack.label)
                summaries[cell.key] = self.run.cell(cell.key).summary()
        while elsewhere:  # computed by another worker: read its summary, or take the cell over if it died
            time.sleep(self.poll_seconds)
            for cell in list(elsewhere):
                summary = self.run.cell(cell.key).readable_summary()
                if summary is None:
                    summary = self._run_claimed(contexts[cell.key])
                if summary is not None:
                    summaries[cell.key] = summary
                    elsewhere.remove(cell)
        return [summaries[cell.key] for cell in mine]

    def _live_claims(self) -> bool:
        return any(claim.latest() is not None and claim.latest().live
                   for claim in (CellClaim(folder, self.stale_after) for folder in self.run.folder.glob("cells/*")))

    def _run_claimed(self, context: CellContext) -> dict[str, Any] | None:
        """Compute the cell if this worker can claim it; None when another live worker holds it."""
        claim = CellClaim(context.store.folder, self.stale_after)
        if not claim.acquire():
            return None
        try:
            finished = context.store.readable_summary()  # completed by another worker meanwhile
            if finished is not None:
                claim.release()
                return finished
            for leftover in context.store.folder.rglob("*.tmp"):  # a dead writer's: this worker owns the cell
                leftover.unlink(missing_ok=True)
            log.info("cell %s (%s): computing it", context.cell.key, context.cell.label)
            summary = self.run_cell(context, claim)
        except BaseException as err:
            claim.release(error=f"{type(err).__name__}: {err}".strip())
            raise
        claim.release()
        return summary

    def _finished(self, cell: Cell) -> bool:
        """True when the cell's summary exists and reads back; a damaged one is recomputed."""
        store = self.run.cell(cell.key)
        if store.readable_summary() is not None:
            store.check_config(cell.resolved())
            return True
        return False

    def run_cell(self, context: CellContext, claim: CellClaim | None = None) -> dict[str, Any]:
        cell, store = context.cell, context.store
        store.check_config(cell.resolved())
        torch.manual_seed(cell.seed)
        result: ScenarioResult = context.scenario.run(context)
        if claim is not None and not claim.still_owned():
            raise BenchError(f"cell {cell.key} was taken over by another worker while this one computed it (no "
                             f"heartbeat for {self.stale_after:.0f} s); its result is theirs, nothing was written")
        return self._write(cell, store, context, result)

    def _write(self, cell: Cell, store: CellStore, context: CellContext, result: ScenarioResult) -> dict:
        atomic_write_text(store.folder / "samples.csv", result.samples.to_csv(index=False))
        if self.options.save_images:
            save_pngs(store.folder / "images", result.images)
        metrics: dict[str, Any] = {}
        for column in result.samples.columns:
            if column in RECORD_ONLY_COLUMNS or not pd.api.types.is_numeric_dtype(result.samples[column]):
                continue  # text columns (prompts, captions) are kept in samples.csv, not summarised
            estimate = mean_interval(result.samples[column].to_numpy(), seed=cell.seed)
            metrics[column] = {**estimate.as_dict(), "higher_is_better": higher_is_better(column, context),
                               "kind": "mean"}
        for column, estimate in result.set_estimates.items():
            metrics[column] = {**estimate.as_dict(), "higher_is_better": higher_is_better(column, context),
                               "kind": "set"}
        nans = {column: values["nan_count"] for column, values in metrics.items()
                if values["nan_count"] and not nan_meaningful(column, context)}
        if nans:  # samples.csv stays for inspection; without a summary the cell is not complete

            counts = ", ".join(f"{column} {count} of {count + metrics[column]['n']}" for column, count in nans.items())
            raise BenchError(f"cell {cell.key} ({cell.defense.label} x {cell.attack.label} [{cell.threat_model}] "
                             f"({cell.scenario.label}) eps={cell.eps:.4g}): NaN values in {counts}; see "
                             f"{store.folder / 'samples.csv'}")
        summary = {"key": cell.key, "defense": cell.defense.label, "attack": cell.attack.label,
                   "scenario": cell.scenario.label, "eps": cell.eps, "budget": cell.budget, "n": len(result.samples),
                   "threat_model": cell.threat_model,
                   "transfer_source": cell.transfer_source.label if cell.transfer_source else None,
                   **({"transfer_kept_fraction": float(result.samples["transfer_kept"].mean())}
                      if "transfer_kept" in result.samples else {}),
                   "config": cell.resolved(), "metrics": metrics,
                   "weights": context.defense.weights(),
                   "provenance": provenance(self.options.torch_device, self.options.torch_dtype, cell.seed)}
        # keys in the order computed, not sorted: a warm run's table has the cold run's column order
        atomic_write_json(store.summary_path, summary, sort_keys=False)
        return summary


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
    base = metric_base(column)
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


def load_run(folder: str | Path) -> list[dict[str, Any]]:
    return RunStore(folder).summaries()

