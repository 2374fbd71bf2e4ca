"""The result store: one folder per cell, named by the hash of everything that shapes its numbers.

    RUN_DIR/run.json                      every grid run into the folder and the keys of its cells
    RUN_DIR/run.lock                      held (flock) for a moment by a worker updating run.json
    RUN_DIR/cells/<key>/claims/<n>.json   the worker computing the cell (``bench.claims``)
    RUN_DIR/cells/<key>/failed.json       the error of a cell whose computation raised
    RUN_DIR/cells/<key>/config.json       the resolved config of the cell, with its inputs
    RUN_DIR/cells/<key>/batches/*.safetensors   per-batch checkpoints (resume)
    RUN_DIR/cells/<key>/samples.csv       per-sample rows
    RUN_DIR/cells/<key>/summary.json      aggregates with intervals and provenance (written last)
    RUN_DIR/shared/*.safetensors          clean reconstructions and reference features, reused

A cell key is the sha256 of the cell's resolved config plus its inputs (dtype, device type, the
content hash of every weight file, data folder and target image it names; ``bench.identity``), so
a run with another dtype, device or changed weights never reuses or extends another's cells.

Every file is written to a temporary name (``*.tmp``) and renamed into place, so a run killed at
any moment leaves only whole files (and temporary ones, removed by the next run under the lock); a
cell is complete once its summary exists. Only files this suite wrote are read back, and only as
JSON, CSV or safetensors, never pickles; a damaged one (truncated, not parseable) is named with its
cell, and a resumed run recomputes it.

``run.json`` (version 2) keeps a list of every grid run into the folder (``grids``), each with its
options, inputs and cell keys; ``grid`` and ``cells`` at the top are those of the latest run (what
``bench submit`` reads). Re-running any recorded grid with the same dtype, device and inputs resumes
it; another grid is refused unless ``--force``, which adds it beside the old ones; a cell the folder
already holds computed on other inputs (dtype, device, changed files) is refused even with
``--force``: one folder never shows two computations of the same cell.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bench.errors import BenchError

log = logging.getLogger(__name__)

RUN_VERSION = 2
LOCK_NAME = "run.lock"
LOCK_WAIT = 60.0


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(handle.name, 0o644)
    os.replace(handle.name, path)


def atomic_write_json(path: Path, data: Any, sort_keys: bool = True) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=sort_keys, allow_nan=True) + "\n")


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


class DamagedFile(BenchError):
    """A stored file that cannot be read back (truncated, or not what this suite writes); a resumed
    run recomputes it, anything else reports it as one ``error:`` line."""


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DamagedFile(f"{path} cannot be read ({type(err).__name__}: {err})") from None


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file written by ``atomic_save_tensors``; ``DamagedFile`` when it cannot be read."""
    try:
        return load_file(path)
    except (OSError, SafetensorError, ValueError, RuntimeError) as err:
        raise DamagedFile(f"{path} cannot be read as safetensors ({err})") from None


class CellStore:
    def __init__(self, folder: Path, label: str = ""):
        self.folder = folder
        self.label = label

    @property
    def key(self) -> str:
        return self.folder.name

    def describe(self) -> str:
        """``key (defense x attack ...)`` for messages."""
        label = self.label
        if not label:
            try:
                config = read_json(self.folder / "config.json")
                label = f"{config['defense']['name']} x {config['attack']['name']}"
            except (DamagedFile, KeyError, TypeError):
                label = "labels unknown"
        return f"{self.key} ({label})"

    @property
    def summary_path(self) -> Path:
        return self.folder / "summary.json"

    def is_complete(self) -> bool:
        return self.summary_path.exists()

    def check_config(self, resolved: dict[str, Any]) -> None:
        """Create the cell's config, or refuse when a different one is already stored there. A damaged
        config.json is rewritten: the folder name, a hash of the config, already identifies it."""
        path = self.folder / "config.json"
        try:
            stored = read_json(path) if path.exists() else None
        except DamagedFile as err:
            log.warning("cell %s: %s; rewriting it", self.describe(), err)
            stored = None
        if stored is None:
            atomic_write_json(path, resolved)
        elif stored != json.loads(json.dumps(resolved)):
            raise BenchError(f"{self.folder} holds results of a different configuration; "
                             "use a new --out folder or delete that cell folder")

    def batch_path(self, index: int) -> Path:
        return self.folder / "batches" / f"batch_{index:05d}.safetensors"

    def load_batch(self, index: int) -> dict[str, torch.Tensor] | None:
        """The stored batch, None when absent; ``DamagedFile`` when it cannot be read."""
        path = self.batch_path(index)
        if not path.exists():
            return None
        try:
            return load_tensors(path)
        except DamagedFile as err:
            raise DamagedFile(f"cell {self.describe()} is damaged: {err}; rerun the grid with `bench run GRID "
                              f"--out {self.folder.parent.parent}` to recompute it") from None

    def save_batch(self, index: int, tensors: dict[str, torch.Tensor]) -> None:
        atomic_save_tensors(self.batch_path(index), tensors)

    def summary(self) -> dict[str, Any]:
        try:
            summary = read_json(self.summary_path)
            if not isinstance(summary, dict) or not isinstance(summary.get("metrics"), dict):
                raise DamagedFile(f"{self.summary_path} is not a summary this suite wrote")
        except DamagedFile as err:
            raise BenchError(f"cell {self.describe()} is damaged: {err}; rerun the grid with `bench run GRID "
                             f"--out {self.folder.parent.parent}` to recompute it") from None
        return summary

    def readable_summary(self) -> dict[str, Any] | None:
        """The summary, or None (with a warning) when it is missing or damaged, so the cell is recomputed."""
        if not self.is_complete():
            return None
        try:
            return self.summary()
        except BenchError as err:
            log.warning("%s", err)
            return None


class RunStore:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._labels: dict[str, str] | None = None

    @property
    def run_path(self) -> Path:
        return self.folder / "run.json"

    def cell(self, key: str) -> CellStore:
        if self._labels is None:
            self._labels = {}
            with contextlib.suppress(BenchError):
                for record in self._records():
                    self._labels.update(record.get("labels", {}))
        return CellStore(self.folder / "cells" / key, self._labels.get(key, ""))

    def shared_path(self, name: str) -> Path:
        return self.folder / "shared" / f"{name}.safetensors"

    # --- run.json -------------------------------------------------------------------------------------

    def _read_run(self) -> dict[str, Any] | None:
        if not self.run_path.exists():
            return None
        try:
            run = read_json(self.run_path)
            if not isinstance(run, dict) or not isinstance(run.get("cells"), list):
                raise DamagedFile(f"{self.run_path} is not a run record this suite wrote")
        except DamagedFile as err:
            raise BenchError(f"{self.folder}: {err}; it lists the folder's grids, so it cannot be rebuilt: use a "
                             "new --out folder (the cells under cells/ are untouched)") from None
        return run

    def _records(self) -> list[dict[str, Any]]:
        run = self._read_run()
        if run is None:
            return []
        if run.get("version") == RUN_VERSION and isinstance(run.get("grids"), list):
            return run["grids"]
        # version 1 (one grid, cell keys of the config alone): read as one record
        return [{"grid": run.get("grid"), "cells": run["cells"], "config_keys": run["cells"], "legacy": True}]

    def claim(self, grid: dict[str, Any], keys: list[str], force: bool = False, *,
              config_keys: list[str] | None = None, labels: dict[str, str] | None = None,
              options: dict[str, Any] | None = None, inputs: dict[str, str] | None = None) -> None:
        """Record that this folder holds ``grid``'s cells (call it under ``lock``).

        Re-running a recorded grid (the same cell keys) is accepted; another grid is refused unless
        ``force``, which adds it beside the recorded ones; a cell already recorded with the same config
        but other inputs (``config_keys`` equal, keys different) is refused even with ``force``."""
        config_keys = config_keys or list(keys)
        record = {"grid": grid, "cells": list(keys), "config_keys": list(config_keys), "labels": labels or {},
                  "options": options or {}, "inputs": inputs or {}}
        records = self._records()
        same = next((r for r in records if r.get("cells") == list(keys)), None)
        if same is None and records:
            self._refuse_or_allow(records, record, force)
        if same is None:
            records.append(record)
        else:  # a recorded grid rerun: refreshed in its place, so the folder's cell order stays
            records[records.index(same)] = {**same, **record}
        atomic_write_json(self.run_path, {"version": RUN_VERSION, "grid": grid, "cells": list(keys),
                                          "grids": records})
        self._labels = None

    def _refuse_or_allow(self, records: list[dict[str, Any]], record: dict[str, Any], force: bool) -> None:
        recorded = {}
        for r in records:
            for key, config_key in zip(r.get("cells", []), r.get("config_keys", r.get("cells", [])), strict=False):
                recorded.setdefault(config_key, (key, r))
        clashes = [(key, config_key) for key, config_key in zip(record["cells"], record["config_keys"], strict=True)
                   if config_key in recorded and recorded[config_key][0] != key]
        if clashes:
            key, config_key = clashes[0]
            old = recorded[config_key][1]
            label = record["labels"].get(key, key)
            raise BenchError(f"{self.folder} already holds cell {label} computed on other inputs "
                             f"({_difference(old, record)}); one folder holds one computation of a cell, so "
                             f"{_fix(old, record)}use a new --out folder for this one (the old cells stay here)")
        if not force:
            raise BenchError(f"{self.folder} holds a run of a different grid; use a new --out folder, "
                             "or --force to add these cells beside the old ones")

    def cell_keys(self) -> list[str]:
        """Every cell of every grid recorded in the folder, in order, each once."""
        if not self.run_path.exists():
            raise BenchError(f"{self.folder} is not a run folder (no run.json); run `bench run GRID --out "
                             f"{self.folder}` first")
        return list(dict.fromkeys(key for record in self._records() for key in record.get("cells", [])))

    def summaries(self) -> list[dict[str, Any]]:
        return [self.cell(key).summary() for key in self.cell_keys() if self.cell(key).is_complete()]

    # --- the lock and temporary files -----------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, wait: float | None = None) -> Iterator[None]:
        """Hold the folder's lock (an exclusive flock on ``run.lock``) while ``run.json`` is updated.
        Workers hold it for a moment only (cells are claimed one by one, ``bench.claims``), so another
        worker waits up to ``wait`` seconds (``LOCK_WAIT``) for it, then is refused. The kernel
        releases the lock when the holder dies, even by SIGKILL, so a lock is never stale (on a local
        file system; across machines, cell claims keep one writer per cell)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(self.folder / LOCK_NAME, "a+")  # noqa: SIM115 - held until the context ends
        deadline = time.monotonic() + (LOCK_WAIT if wait is None else wait)
        try:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        handle.seek(0)
                        holder = handle.read().strip() or "another process"
                        raise BenchError(f"{self.folder} is locked by another `bench run` ({holder}) for too long; "
                                         "wait for it to finish, or use another --out folder") from None
                    time.sleep(0.05)
            handle.seek(0)
            handle.truncate()
            started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
            handle.write(f"pid {os.getpid()}, started {started}\n")
            handle.flush()
            yield
        finally:
            handle.close()

    def remove_temporary_files(self) -> list[Path]:
        """Delete ``*.tmp`` files a killed run left between write and rename (call it under ``lock``,
        when no cell has a live claim: then no worker of this suite is writing here)."""
        candidates = [*self.folder.glob("*.tmp"), *self.folder.glob("cells/**/*.tmp"),
                      *self.folder.glob("shared/*.tmp")]
        removed = []
        for path in candidates:
            if path.is_file() and not path.is_symlink():
                path.unlink(missing_ok=True)
                removed.append(path)
        if removed:
            log.info("removed %d temporary files left by an interrupted run", len(removed))
        return removed


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    if old.get("legacy"):
        return "its cells were written by an older version of the suite, whose keys do not name dtype, device " \
               "and input hashes"
    before, after = old.get("options", {}), new.get("options", {})
    changed = [f"{name} {before.get(name)} then, {after.get(name)} now" for name in sorted(set(before) | set(after))
               if before.get(name) != after.get(name)]
    old_inputs, new_inputs = old.get("inputs", {}), new.get("inputs", {})
    changed += [f"the contents of {ref} changed" for ref in sorted(set(old_inputs) & set(new_inputs))
                if old_inputs[ref] != new_inputs[ref]]
    return "; ".join(changed[:3]) or "its inputs differ"


def _fix(old: dict[str, Any], new: dict[str, Any]) -> str:
    options = old.get("options") or {}
    if options and not old.get("legacy") and options != new.get("options"):
        return f"resume it with {' '.join(f'--{k} {v}' for k, v in sorted(options.items()))} if that is the change, or "
    return ""
