"""``bench run GRID --executor ray``: the grid's cells as Ray tasks, written into the same store
layout as a local run (so a local ``bench run`` of the grid afterwards finds every cell complete).

Ray is an optional extra (``pip install -e ".[ray]"``), imported only here. The driver records the
grid in ``run.json`` and submits groups of ``cells_per_task`` pending cells; each task runs them
with the local runner, so per-cell claims (``bench.claims``) keep one writer per cell. Ray retries
a task whose worker died (``max_retries``); the retry takes over the dead worker's claims, and a
half-written cell is recomputed from its stored batches, never read. The grid file, its inputs and
``--out`` must be on a file system every node sees (as for ``--shard``).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.grid import load_grid
from bench.runner import Runner
from bench.scenario_api import RunOptions


def _import_ray():
    try:
        import ray
    except ImportError:
        raise BenchError('--executor ray needs Ray, an optional extra: pip install -e ".[ray]" '
                         "(or pip install ray)") from None
    return ray


def _run_cells(grid: str, out: str, options: dict[str, Any], keys: list[str], stale_after: float,
               threads: int) -> list[str]:
    import torch

    torch.set_num_threads(threads)  # Ray sets OMP_NUM_THREADS=1; CPU reductions depend on the thread count
    Runner(out, RunOptions(**options), stale_after=stale_after).run_grid(grid, only=keys)
    return keys


def run_on_ray(grid: str | Path, out: str | Path, options: RunOptions, *, address: str | None = None,
               cells_per_task: int = 1, num_gpus: float = 0.0, stale_after: float = 600.0,
               max_retries: int = 3, threads: int | None = None) -> list[dict[str, Any]]:
    """Run ``grid`` on a Ray cluster (``address``; a local one when None) and return the summaries in
    the grid's order, as ``Runner.run_grid`` does.

    Each task asks for ``threads`` CPUs and runs torch with that many threads (default: this
    process's torch thread count), because CPU floating-point reductions, and so the numbers of an
    iterative attack, depend on the thread count: with the same count a cell's numbers equal a local
    run's on the same machine type."""
    import torch

    threads = threads or torch.get_num_threads()
    if cells_per_task < 1:
        raise BenchError(f"--cells-per-task {cells_per_task}: give a whole number of at least 1")
    ray = _import_ray()
    grid, out = str(Path(grid).resolve()), str(Path(out).resolve())
    driver = Runner(out, options, stale_after=stale_after)
    raw, cells = load_grid(grid)
    cells = [driver.bind(cell) for cell in cells]
    for cell in cells:  # inputs and assets checked here, before a task starts: bad input is one error line
        if driver.run.cell(cell.key).readable_summary() is None:
            driver._context(cell)
    with driver.run.lock():  # the grid is recorded (and a clash refused) before any task starts
        driver.run.claim(raw, [cell.key for cell in cells], force=options.force,
                         config_keys=[cell.config_key for cell in cells],
                         labels={cell.key: cell.label for cell in cells},
                         options={"dtype": options.dtype, "device": options.torch_device.type},
                         inputs={k: v for cell in cells for k, v in cell.inputs["files"].items()})
    pending = [cell.key for cell in cells if driver.run.cell(cell.key).readable_summary() is None]
    if pending:
        started_here = not ray.is_initialized()
        if started_here:
            if address is None:  # a local cluster started here: its workers do the benchmark's work, so run
                os.environ.setdefault("RAY_worker_niceness", "0")  # them at normal priority (Ray's default: 15)
            ray.init(address=address, include_dashboard=False, log_to_driver=not options.quiet)
        try:
            task = ray.remote(num_cpus=threads, num_gpus=num_gpus, max_retries=max_retries)(_run_cells)
            worker_options = {**dataclasses.asdict(options), "quiet": True}
            groups = [pending[i:i + cells_per_task] for i in range(0, len(pending), cells_per_task)]
            ray.get([task.remote(grid, out, worker_options, group, stale_after, threads) for group in groups])
        finally:
            if started_here:
                ray.shutdown()
    return [driver.run.cell(cell.key).summary() for cell in cells]
