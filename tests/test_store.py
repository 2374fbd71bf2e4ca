"""The result store: cell keys name dtype, device and input contents; one run per folder (lock);
--force keeps every grid; temporary files are cleaned; damaged files are named, then recomputed."""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest
import torch
import yaml
from PIL import Image

from bench import store as store_module
from bench.cli import main
from bench.errors import BenchError
from bench.grid import load_grid
from bench.runner import Runner, RunOptions
from bench.shards import Shard
from bench.store import RunStore


def write_grid(folder, model, attacks=("noise",), name="grid.yaml", data=None):
    grid = {"name": "store", "seed": 0, "batch_size": 2, "data": data or {"split": "test", "n": 4},
            "metrics": ["psnr"], "defenses": [{"name": "vae", "model": str(model)}], "attacks": list(attacks),
            "eps": [0.05]}
    path = folder / name
    path.write_text(yaml.safe_dump(grid))
    return path


def run(out, grid, **options):
    return Runner(out, RunOptions(quiet=True, **options)).run_grid(grid)


def snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def vae_copy(tmp_path, tiny_vae_dir):
    folder = tmp_path / "vae"
    shutil.copytree(tiny_vae_dir, folder)
    return folder


def test_another_dtype_never_resumes_or_extends_a_cell(tmp_path, vae_copy):
    grid, out = write_grid(tmp_path, vae_copy), tmp_path / "run"
    [summary] = run(out, grid)
    cell = out / "cells" / summary["key"]
    (cell / "summary.json").unlink()  # as if killed after its batches were written
    before = snapshot(cell)
    for force in (False, True):
        with pytest.raises(BenchError, match="dtype float32 then, bfloat16 now.*--dtype float32"):
            run(out, grid, dtype="bfloat16", force=force)
    assert snapshot(cell) == before, "a bfloat16 run wrote into the float32 cell"
    [cell_spec] = load_grid(grid)[1]
    keys = {Runner(out, RunOptions(dtype=d, device=v)).bind(cell_spec).key
            for d, v in (("float32", "cpu"), ("bfloat16", "cpu"), ("float32", "auto"))}
    assert len(keys) == (3 if torch.cuda.is_available() else 2)  # auto resolves before keying
    [resumed] = run(out, grid)  # the same dtype resumes
    assert resumed["key"] == summary["key"] and resumed["metrics"] == summary["metrics"]
    assert resumed["provenance"]["dtype"] == "torch.float32"


def test_changed_weights_in_the_same_folder_are_not_served_old_numbers(tmp_path, vae_copy):
    from tests.conftest import build_tiny_vae

    grid = write_grid(tmp_path, vae_copy)
    [old] = run(tmp_path / "run", grid)
    build_tiny_vae(seed=1).save_pretrained(vae_copy, safe_serialization=True)  # same folder, new weights
    with pytest.raises(BenchError, match=f"contents of {vae_copy} changed.*new --out folder"):
        run(tmp_path / "run", grid)
    [new] = run(tmp_path / "run2", grid)
    assert new["key"] != old["key"]
    assert new["metrics"]["psnr"]["value"] != old["metrics"]["psnr"]["value"]
    assert new["config"]["inputs"]["files"][str(vae_copy)] != old["config"]["inputs"]["files"][str(vae_copy)]


def test_data_folder_contents_and_transfer_source_enter_the_key(tmp_path, vae_copy, tiny_vae_dir):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        Image.new("RGB", (32, 32), (10 * i, 20, 30)).save(images / f"{i}.png")
    grid = write_grid(tmp_path, vae_copy, attacks=({"name": "pgd-encoder", "steps": 1},),
                      data={"dataset": "folder", "path": str(images), "n": 2})
    raw = yaml.safe_load(grid.read_text())
    raw.update(threat_models=["transfer"], transfer_source={"name": "vae", "model": str(tiny_vae_dir)})
    grid.write_text(yaml.safe_dump(raw))
    runner = Runner(tmp_path / "run", RunOptions())

    def key():
        runner.hasher = type(runner.hasher)()  # a new run hashes afresh
        return runner.bind(load_grid(grid)[1][0]).key

    first = key()
    assert key() == first
    inputs = runner.bind(load_grid(grid)[1][0]).inputs["files"]
    assert {str(vae_copy), str(tiny_vae_dir)} <= set(inputs) and any(ref.startswith("data:folder") for ref in inputs)
    Image.new("RGB", (32, 32), (99, 20, 30)).save(images / "2.png")  # beyond n=2: not loaded
    assert key() == first
    Image.new("RGB", (32, 32), (99, 20, 30)).save(images / "1.png")
    second = key()
    assert second != first
    (images / "captions.json").write_text(json.dumps({"0.png": "a", "1.png": "b"}))
    assert key() != second


def test_the_folder_lock_is_waited_for_briefly_then_refused_and_never_stale(tmp_path, vae_copy, monkeypatch):
    grid, out = write_grid(tmp_path, vae_copy), tmp_path / "run"
    with RunStore(out).lock():
        with pytest.raises(BenchError, match="locked by another `bench run` \\(pid"):
            with RunStore(out).lock(wait=0.2):
                pass
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from bench.store import RunStore\n"
                               "with RunStore(sys.argv[1]).lock():\n    print('locked', flush=True); time.sleep(600)",
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr(store_module, "LOCK_WAIT", 0.5)
        with pytest.raises(BenchError, match="locked by another"):
            run(out, grid)
        assert not (out / "run.json").exists()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    [summary] = run(out, grid)  # the kernel released the dead holder's lock: nothing stale
    assert summary["n"] == 4


def test_a_cell_a_live_worker_holds_is_waited_for_and_taken_over_when_it_dies(tmp_path, vae_copy):
    grid, out = write_grid(tmp_path, vae_copy), tmp_path / "run"
    cell = out / "cells" / Runner(out).bind(load_grid(grid)[1][0]).key
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path\n"
                               "from bench.claims import CellClaim\n"
                               "assert CellClaim(Path(sys.argv[1])).acquire(); print('claimed', flush=True); "
                               "time.sleep(600)", str(cell)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "claimed"
    being_written = [cell / "batches" / "tmpa1.tmp", out / "shared" / "tmpb2.tmp"]
    for path in being_written:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("the live worker's file being written")
    seen_while_alive = []

    def kill_holder():
        seen_while_alive.append([path.exists() for path in being_written])
        seen_while_alive.append(main(["status", str(out)]))
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()

    timer = threading.Timer(2.0, kill_holder)
    timer.start()
    try:
        [summary] = Runner(out, RunOptions(quiet=True), poll_seconds=0.2).run_grid(grid)
    finally:
        timer.join()
    assert seen_while_alive == [[True, True], 0]  # nothing of the live worker's was touched
    assert summary["n"] == 4 and not being_written[0].exists()
    assert not list((cell / "claims").glob("*.json")) and not (cell / "failed.json").exists()


def test_bench_status_names_each_state_and_a_failed_cell_keeps_its_error(tmp_path, vae_copy, capsys, monkeypatch):
    grid, out = write_grid(tmp_path, vae_copy, attacks=("noise", "none")), tmp_path / "run"
    cells = [Runner(out).bind(cell) for cell in load_grid(grid)[1]]

    def fail(self, context, claim=None):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(Runner, "run_cell", fail)
    with pytest.raises(RuntimeError):
        run(out, grid)
    monkeypatch.undo()
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "RuntimeError: out of memory" in text and "0 done, 0 running, 0 stale, 1 failed, 1 pending" in text
    run(out, grid)
    assert main(["status", str(out)]) == 0
    assert "2 done, 0 running, 0 stale, 0 failed, 0 pending" in capsys.readouterr().out
    assert not (out / "cells" / cells[0].key / "failed.json").exists()


def test_two_concurrent_cli_runs_compute_each_cell_once(tmp_path, vae_copy):
    grid, out = write_grid(tmp_path, vae_copy, attacks=("noise", "none")), tmp_path / "run"
    command = [sys.executable, "-m", "bench.cli", "run", str(grid), "--out", str(out)]
    first, second = (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(2))
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in (first, second)]
    assert [code for code, _, _ in results] == [0, 0], results
    assert sum(stderr.count(": computing it") for _, _, stderr in results) == 2, results
    assert results[0][1] == results[1][1]  # both print the whole grid's table
    assert len(list(out.glob("cells/*/summary.json"))) == 2


def test_force_keeps_every_grid_and_any_recorded_grid_reruns(tmp_path, vae_copy, capsys):
    grid_a = write_grid(tmp_path, vae_copy, attacks=("noise",), name="a.yaml")
    grid_b = write_grid(tmp_path, vae_copy, attacks=("none",), name="b.yaml")
    out = tmp_path / "run"
    [a] = run(out, grid_a)
    with pytest.raises(BenchError, match="different grid.*--force"):
        run(out, grid_b)
    [b] = run(out, grid_b, force=True)
    store = RunStore(out)
    assert store.cell_keys() == [a["key"], b["key"]]
    recorded = json.loads((out / "run.json").read_text())
    assert [g["cells"] for g in recorded["grids"]] == [[a["key"]], [b["key"]]]
    assert recorded["cells"] == [b["key"]]  # the latest grid, what `bench submit` reads
    mtime = (out / "cells" / a["key"] / "summary.json").stat().st_mtime_ns
    [again] = run(out, grid_a)  # a recorded grid is accepted without --force, and not recomputed
    assert again == a and (out / "cells" / a["key"] / "summary.json").stat().st_mtime_ns == mtime
    assert store.cell_keys() == [a["key"], b["key"]]
    assert main(["table", str(out), "--format", "csv"]) == 0
    table = capsys.readouterr().out
    assert ",noise," in table and ",none," in table


def test_resume_removes_temporary_files_of_a_killed_run(tmp_path, vae_copy):
    grid, out = write_grid(tmp_path, vae_copy), tmp_path / "run"
    [summary] = run(out, grid)
    cell = out / "cells" / summary["key"]
    left = [cell / "batches" / "tmpa1.tmp", cell / "tmpb2.tmp", out / "shared" / "tmpc3.tmp", out / "tmpd4.tmp"]
    for path in left:
        path.write_bytes(b"x" * 1000)
    plots_tmp = out / "plots" / "plots.json.tmp"  # not a run's file
    plots_tmp.parent.mkdir()
    plots_tmp.write_text("{}")
    run(out, grid)
    assert not any(p.exists() for p in left)
    assert plots_tmp.exists()


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_a_truncated_summary_is_one_error_line_on_table_and_recomputed_on_resume(tmp_path, vae_copy, capsys):
    grid, out = write_grid(tmp_path, vae_copy), tmp_path / "run"
    [summary] = run(out, grid)
    path = out / "cells" / summary["key"] / "summary.json"
    intact = path.read_text()
    truncate(path)
    assert main(["table", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cell ") and summary["key"] in err[0]
    assert "vae x noise" in err[0] and "recompute" in err[0]
    [resumed] = run(out, grid)
    assert resumed["metrics"] == summary["metrics"]
    assert json.loads(path.read_text())["metrics"] == json.loads(intact)["metrics"]


def test_a_truncated_batch_is_recomputed_on_resume_and_named_elsewhere(tmp_path, vae_copy, caplog):
    grid, out = write_grid(tmp_path, vae_copy), tmp_path / "run"
    [summary] = run(out, grid)
    cell = out / "cells" / summary["key"]
    samples = (cell / "samples.csv").read_text()
    batch = cell / "batches" / "batch_00001.safetensors"
    intact = batch.read_bytes()
    truncate(batch)
    with pytest.raises(BenchError, match=f"cell {summary['key']} \\(vae x noise.*is damaged.*recompute"):
        RunStore(out).cell(summary["key"]).load_batch(1)
    (cell / "summary.json").unlink()  # an interrupted cell whose batch was damaged
    for shared in (out / "shared").glob("*.safetensors"):
        truncate(shared)
    [resumed] = run(out, grid)
    assert "recomputing batch 1" in caplog.text
    assert batch.read_bytes() == intact
    assert (cell / "samples.csv").read_text() == samples and resumed["metrics"] == summary["metrics"]


def test_a_damaged_run_json_is_one_error_line(tmp_path, vae_copy, capsys):
    grid, out = write_grid(tmp_path, vae_copy), tmp_path / "run"
    run(out, grid)
    truncate(out / "run.json")
    assert main(["table", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run.json" in err[0] and "new --out folder" in err[0]
    with pytest.raises(BenchError, match="run.json"):
        run(out, grid)


def test_a_run_folder_of_the_previous_layout_still_tabulates_and_is_not_mixed(tmp_path, vae_copy, capsys):
    grid, out = write_grid(tmp_path, vae_copy), tmp_path / "run"
    [summary] = run(out, grid)
    [cell] = load_grid(grid)[1]
    legacy = out / "cells" / cell.key  # version 1: folders named by the config alone
    (out / "cells" / summary["key"]).rename(legacy)
    (out / "run.json").write_text(json.dumps({"grid": yaml.safe_load(grid.read_text()), "cells": [cell.key]}))
    assert main(["table", str(out), "--format", "csv"]) == 0
    assert ",noise," in capsys.readouterr().out
    with pytest.raises(BenchError, match="older version of the suite"):
        run(out, grid, force=True)


def test_shards_partition_the_grid_and_together_equal_one_run(tmp_path, vae_copy, capsys):
    grid = write_grid(tmp_path, vae_copy, attacks=("noise", "none", "pgd-encoder"))
    straight = run(tmp_path / "straight", grid)
    out = tmp_path / "sharded"
    first = Runner(out, RunOptions(quiet=True)).run_grid(grid, Shard.parse("1/2"))
    assert main(["status", str(out)]) == 0
    assert "2 done, 0 running, 0 stale, 0 failed, 1 pending" in capsys.readouterr().out
    second = Runner(out, RunOptions(quiet=True)).run_grid(grid, Shard.parse("2/2"))
    assert [s["attack"] for s in first] == ["noise", "pgd-encoder"] and [s["attack"] for s in second] == ["none"]
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("cells/*/summary.json")}
    again = run(out, grid)  # a plain run of the folder finds every cell complete, with one run's numbers
    assert [(s["key"], s["metrics"]) for s in again] == [(s["key"], s["metrics"]) for s in straight]
    assert {p: p.stat().st_mtime_ns for p in out.glob("cells/*/summary.json")} == mtimes


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "a/b", "1-2", ""])
def test_a_bad_shard_is_one_error_line(text):
    with pytest.raises(BenchError, match="write i/n with 1 <= i <= n"):
        Shard.parse(text)
