"""A run killed with SIGKILL mid-way resumes where it stopped and ends with the same numbers."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml


def write_grid(folder: Path, vae_dir: Path) -> Path:
    grid = {"name": "resume", "seed": 0, "batch_size": 2, "data": {"split": "test", "n": 8},
            "metrics": ["psnr", "lpips", "kid"], "defenses": [{"name": "vae", "model": str(vae_dir)}],
            "attacks": ["noise", {"name": "pgd-encoder", "steps": 3}], "eps": [0.03]}
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def bench(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.cli", "--quiet", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def results(run_dir: Path) -> dict:
    from bench.store import RunStore

    out = {}
    for key in RunStore(run_dir).cell_keys():
        summary = json.loads((run_dir / "cells" / key / "summary.json").read_text())
        out[key] = (summary["metrics"], (run_dir / "cells" / key / "samples.csv").read_text())
    return out


def test_sigkill_then_resume_gives_the_uninterrupted_numbers(tmp_path, tiny_vae_dir):
    grid = write_grid(tmp_path, tiny_vae_dir)
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"

    process = bench("run", str(grid), "--out", str(killed_dir))
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if len(list(killed_dir.glob("cells/*/batches/*.safetensors"))) >= 3:
            break
        time.sleep(0.02)
    assert process.poll() is None, "the run finished before it could be killed: " + process.stderr.read()
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    survivors = {p: p.stat().st_mtime_ns for p in killed_dir.glob("cells/*/batches/*.safetensors")}
    assert len(list(killed_dir.glob("cells/*/summary.json"))) < 2

    resumed = bench("run", str(grid), "--out", str(killed_dir))
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    for path, mtime in survivors.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was recomputed instead of reused"

    uninterrupted = bench("run", str(grid), "--out", str(clean_dir))
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()
    assert results(killed_dir) == results(clean_dir)


def test_a_changed_cell_config_is_refused(tmp_path, tiny_vae_dir):
    from bench.errors import BenchError
    from bench.store import CellStore

    store = CellStore(tmp_path / "cell")
    store.check_config({"attack": {"eps": 0.03}})
    store.check_config({"attack": {"eps": 0.03}})
    with pytest.raises(BenchError, match="different configuration"):
        store.check_config({"attack": {"eps": 0.05}})


def test_a_different_grid_in_the_same_folder_is_refused(tmp_path):
    from bench.errors import BenchError
    from bench.store import RunStore

    run = RunStore(tmp_path)
    run.claim({"name": "a"}, ["k1", "k2"])
    run.claim({"name": "a"}, ["k1", "k2"])
    with pytest.raises(BenchError, match="new --out folder"):
        run.claim({"name": "b"}, ["k3"])
    assert run.cell_keys() == ["k1", "k2"]
