"""`bench run --executor ray` on a local Ray cluster the test starts: the store a local run writes,
the local run's numbers."""

from __future__ import annotations

import logging
import sys

import pytest

from bench.cli import main
from bench.runner import Runner, RunOptions
from bench.store import RunStore
from tests.test_store import vae_copy, write_grid  # noqa: F401 - the fixture is used by name


def test_a_missing_ray_is_one_error_line_naming_the_extra(tmp_path, vae_copy, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setitem(sys.modules, "ray", None)
    grid = write_grid(tmp_path, vae_copy)
    assert main(["run", str(grid), "--out", str(tmp_path / "run"), "--executor", "ray"]) == 2
    [error] = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert 'pip install -e ".[ray]"' in error


def test_a_ray_run_writes_the_local_store_with_the_local_numbers(tmp_path, vae_copy, caplog,  # noqa: F811
                                                                 monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_worker_niceness", "0")  # Ray's default 15 starves the workers beside other jobs
    from bench.ray_executor import run_on_ray

    grid = write_grid(tmp_path, vae_copy, attacks=("noise", "none", "pgd-encoder"))
    local = Runner(tmp_path / "local", RunOptions(quiet=True)).run_grid(grid)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_on_ray(grid, tmp_path / "ray", RunOptions(quiet=True), cells_per_task=2)
    finally:
        ray.shutdown()
    assert [(s["key"], s["metrics"]) for s in remote] == [(s["key"], s["metrics"]) for s in local]
    assert RunStore(tmp_path / "ray").cell_keys() == [s["key"] for s in local]
    with caplog.at_level(logging.INFO, logger="bench"):
        again = Runner(tmp_path / "ray", RunOptions(quiet=True)).run_grid(grid)
    assert "computing it" not in caplog.text and [s["metrics"] for s in again] == [s["metrics"] for s in local]


def test_a_worker_killed_mid_cell_is_retried_and_its_half_written_cell_recomputed(tmp_path, vae_copy,  # noqa: F811
                                                                                  monkeypatch):
    """SIGKILL the Ray worker that holds a cell's claim once the cell has stored a batch: Ray retries
    the task, the retry takes over the dead worker's claim, and the cell's numbers equal a local run's."""
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_worker_niceness", "0")
    import contextlib
    import json
    import os
    import signal
    import threading
    import time

    from bench.ray_executor import run_on_ray

    grid = write_grid(tmp_path, vae_copy, attacks=({"name": "photoguard", "steps": 60},),
                      data={"split": "test", "n": 16})
    local = Runner(tmp_path / "local", RunOptions(quiet=True)).run_grid(grid)
    cell = tmp_path / "ray" / "cells" / local[0]["key"]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    outcome: dict = {}
    driver = threading.Thread(target=lambda: outcome.update(
        summaries=run_on_ray(grid, tmp_path / "ray", RunOptions(quiet=True), max_retries=2)))
    killed = []
    try:
        driver.start()
        deadline = time.time() + 300
        while driver.is_alive() and not killed and time.time() < deadline:
            claims = sorted(cell.glob("claims/*.json"), key=lambda path: int(path.stem))
            if claims and list(cell.glob("batches/*.safetensors")):
                with contextlib.suppress(ValueError):  # a claim file caught between its creation and its write
                    pid = json.loads(claims[-1].read_text())["pid"]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            time.sleep(0.02)
        driver.join(timeout=300)
    finally:
        ray.shutdown()
    assert killed, "no batch stored by a Ray worker was seen before the cell ended or 300 s passed"
    assert [(s["key"], s["metrics"]) for s in outcome["summaries"]] == [(s["key"], s["metrics"]) for s in local]
    assert not list(cell.glob("claims/*.json"))
