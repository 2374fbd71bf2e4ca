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


def test_a_ray_run_writes_the_local_store_with_the_local_numbers(tmp_path, vae_copy, caplog):  # noqa: F811
    ray = pytest.importorskip("ray")
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
