"""Attack surfaces (issue 10): a pixel, a prompt and a training-data attack run end to end through the
toy scenario; their measured budgets and text columns are stored, and a run interrupted mid-cell
resumes to the uninterrupted results. A scenario refuses an attack on a surface it does not take."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml

from bench.base import (
    SURFACES,
    ConditioningAttack,
    PixelAttack,
    PoisoningAttack,
    PromptAttack,
    SamplingAttack,
)
from bench.errors import BenchError
from bench.grid import parse_grid
from bench.plugins import ATTACKS
from bench.runner import Runner, RunOptions

ATTACK_OF = {"pixels": {"name": "noise", "eps": 0.05},
             "prompts": {"name": "typo", "edits": 2},
             "training-data": {"name": "dirty-label", "source": 0, "target": 1, "ratio": 0.25},
             "sampling": {"name": "sampling-noise", "scale": 0.5},
             "conditioning": {"name": "aelif-probe", "p": 0.5}}
TOY_SURFACES = [surface for surface in SURFACES if surface not in ("sampling", "conditioning")]
"""sampling: tests/test_sampling_perturbation.py; conditioning: tests/test_aelif_probe.py."""
TEXT_COLUMN = {"pixels": None, "prompts": "prompt", "training-data": "caption"}
BUDGET_COLUMN = {"pixels": "linf", "prompts": "prompt_edits", "training-data": "poisoned"}


def toy_grid(tmp_path, surface: str, vae_dir) -> str:
    grid = {"name": f"toy-{surface}", "seed": 3, "batch_size": 4, "data": {"split": "test", "n": 12},
            "scenario": "toy", "metrics": ["psnr"] if surface == "pixels" else [],
            "defenses": [{"name": "vae", "model": str(vae_dir)}], "attacks": [ATTACK_OF[surface]]}
    path = tmp_path / f"{surface}.yaml"
    path.write_text(yaml.safe_dump(grid))
    return str(path)


def stored(run_dir) -> dict:
    from bench.store import RunStore

    out = {}
    for key in RunStore(run_dir).cell_keys():
        summary = json.loads((run_dir / "cells" / key / "summary.json").read_text())
        out[key] = (summary["metrics"], (run_dir / "cells" / key / "samples.csv").read_text())
    return out


def test_every_surface_has_a_base_and_an_attack_registered():
    bases = {PixelAttack: "pixels", PromptAttack: "prompts", PoisoningAttack: "training-data",
             SamplingAttack: "sampling", ConditioningAttack: "conditioning"}
    assert sorted(bases.values()) == sorted(SURFACES)
    for base, surface in bases.items():
        assert base.surface == surface
    for surface, entry in ATTACK_OF.items():
        assert ATTACKS.get(entry["name"]).surface == surface


@pytest.mark.parametrize("surface", TOY_SURFACES)
def test_surface_end_to_end_interrupted_and_resumed(tmp_path, tiny_vae_dir, kill_after_saving, surface):
    grid = toy_grid(tmp_path, surface, tiny_vae_dir)
    uninterrupted = Runner(tmp_path / "clean", RunOptions(quiet=True))
    [summary] = uninterrupted.run_grid(grid)

    kill_after_saving(2)
    with pytest.raises(KeyboardInterrupt):
        Runner(tmp_path / "killed", RunOptions(quiet=True)).run_grid(grid)
    kill_after_saving(None)
    survivors = {p: p.stat().st_mtime_ns for p in (tmp_path / "killed").glob("cells/*/batches/*.safetensors")}
    assert len(survivors) == 2 and not list((tmp_path / "killed").glob("cells/*/summary.json"))

    Runner(tmp_path / "killed", RunOptions(quiet=True)).run_grid(grid)
    for path, mtime in survivors.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was recomputed instead of reused"
    assert stored(tmp_path / "killed") == stored(tmp_path / "clean")

    samples = pd.read_csv(uninterrupted.run.cell(summary["key"]).folder / "samples.csv")
    assert len(samples) == 12 and "correct" in summary["metrics"]
    budget = BUDGET_COLUMN[surface]
    assert summary["metrics"][budget]["higher_is_better"] is False
    text = TEXT_COLUMN[surface]
    if text is not None:
        assert text in samples and text not in summary["metrics"]  # stored and shown, not averaged
        assert samples[text].map(type).eq(str).all()
    if surface == "pixels":
        assert 0 < samples["linf"].max() <= 0.05 + 1e-6
    if surface == "prompts":
        from bench.data import load_fashion_mnist

        clean = load_fashion_mnist("test", 12).captions
        assert (samples["prompt_edits"] == 2).all()  # two substitutions at distinct positions
        assert all(p != c and len(p) == len(c) for p, c in zip(samples["prompt"], clean, strict=True))
    if surface == "training-data":
        from bench.data import caption, load_fashion_mnist

        labels = load_fashion_mnist("test", 12).labels
        poisoned = samples[samples["poisoned"] == 1]
        assert len(poisoned) == min(3, int((labels == 1).sum()))  # ratio 0.25 of 12, among target images
        assert (labels[poisoned.index.to_numpy()] == 1).all()
        assert (poisoned["caption"] == caption(0)).all()
        clean_rows = samples[samples["poisoned"] == 0]
        assert all(c == caption(int(labels[i])) for i, c in zip(clean_rows.index, clean_rows["caption"], strict=True))


def test_a_prompt_attack_on_reconstruction_is_refused_with_one_line(tmp_path, capsys):
    from bench.cli import main

    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"defenses": ["vae-kl"], "attacks": ["typo"], "scenario": "reconstruction"}))
    code = main(["--quiet", "run", str(grid), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "'typo' perturbs prompts" in err and "'reconstruction'" in err
    assert not (tmp_path / "run").exists()


def test_budget_axes_reach_only_the_attacks_they_budget():
    raw = {"defenses": ["vae-kl"], "scenario": "toy", "metrics": [], "attacks": ["noise", "typo", "dirty-label"],
           "eps": [0.01, 0.02], "rate": [0.2], "edits": [3], "ratio": [0.5], "count": [2]}
    budgets = sorted((c.attack.name, json.dumps(c.budget, sort_keys=True)) for c in parse_grid(raw))
    assert budgets == sorted([
        ("noise", '{"eps": 0.01}'), ("noise", '{"eps": 0.02}'),
        ("typo", '{"edits": 0, "rate": 0.2}'), ("typo", '{"edits": 3, "rate": 0.1}'),
        ("dirty-label", '{"count": 0, "ratio": 0.5}'), ("dirty-label", '{"count": 2, "ratio": 0.1}')])
    labels = {c.label for c in parse_grid(raw)}
    assert "vae-kl x typo [none] (toy) rate=0.2 edits=0" in labels
    with pytest.raises(BenchError, match="rate 2 must be a number in"):
        parse_grid({**raw, "rate": [2]})
    with pytest.raises(BenchError, match="count -1 must be a non-negative whole number"):
        parse_grid({**raw, "count": [-1]})


def test_typo_is_seeded_and_keeps_its_budget():
    typo = ATTACKS.get("typo")(ATTACKS.get("typo").make_config({"rate": 0.25}))
    prompts = ["a photo of a sandal", "a photo of a bag"]
    assert typo(prompts, seed=1) == typo(prompts, seed=1) != typo(prompts, seed=2)
    from bench.measure import prompt_budget_columns

    edits = prompt_budget_columns(typo(prompts, seed=1), prompts)["prompt_edits"]
    assert edits.tolist() == [round(0.25 * len(p)) for p in prompts]  # substitutions at distinct positions


def test_text_columns_round_trip_through_a_batch_file(tmp_path):
    from bench.scenario_api import from_stored, to_stored
    from bench.store import atomic_save_tensors, load_tensors

    values = {"x": torch.arange(3.0), "prompt": ["a ph0to", "ünïcode, \"quoted\"", ""]}
    atomic_save_tensors(tmp_path / "b.safetensors", to_stored(values))
    back = from_stored(load_tensors(tmp_path / "b.safetensors"))
    assert back["prompt"] == values["prompt"] and torch.equal(back["x"], values["x"])


def test_tables_keep_cells_apart_by_their_prompt_or_poison_budget():
    from bench import tables

    def summary(attack, budget, value):
        return {"defense": "vae-kl", "attack": attack, "threat_model": "none", "scenario": "toy", "eps": 0.0,
                "budget": budget, "metrics": {"correct": {"value": value, "low": value, "high": value, "n": 4,
                                                          "higher_is_better": True, "kind": "mean"}}}

    summaries = [summary("typo", {"rate": 0.1, "edits": 0}, 0.9), summary("typo", {"rate": 0.3, "edits": 0}, 0.5),
                 summary("noise", {"eps": 0.03}, 0.8)]
    headers, rows = tables.wide_table(summaries)
    assert "budget" in headers and len(rows) == 3
    assert {row[headers.index("budget")] for row in rows} == {"rate=0.1 edits=0", "rate=0.3 edits=0", ""}
    headers, rows = tables.wide_table(summaries[2:])  # a pixel-only table is unchanged: no budget column
    assert "budget" not in headers


KILL_SCRIPT = """
import os, signal, sys
import bench.store as store

kill_at, where = int(sys.argv[1]), sys.argv[2]
calls = []

def dies(original):
    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == kill_at:
            if where == "mid-write":  # half a file under its temporary name, then the kill
                with open(args[1], "wb") as handle:
                    handle.write(b"partial")
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)
    return wrapper

if kill_at:
    if where == "mid-write":
        store.save_file = dies(store.save_file)
    else:
        store.CellStore.save_batch = dies(store.CellStore.save_batch)
from bench.cli import main
sys.exit(main(["--quiet", "run", sys.argv[3], "--out", sys.argv[4]]))
"""


def run_bench(tmp_path, grid: str, out, kill_at: int = 0, where: str = "mid-cell"):
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "kill_script.py"
    script.write_text(KILL_SCRIPT)
    return subprocess.run([sys.executable, str(script), str(kill_at), where, grid, str(out)], capture_output=True,
                          text=True, cwd=Path(__file__).parent.parent, timeout=600)


def stored_files(run_dir) -> dict[str, bytes]:
    """Every batch, shared and samples file by its path in the run folder, and each summary's numbers."""
    files = {str(p.relative_to(run_dir)): p.read_bytes() for pattern in
             ("cells/*/batches/*.safetensors", "shared/*.safetensors", "cells/*/samples.csv") for p in run_dir.glob(pattern)}
    files.update({str(p.relative_to(run_dir)): json.dumps(json.loads(p.read_text())["metrics"], sort_keys=True).encode()
                  for p in run_dir.glob("cells/*/summary.json")})
    return files


def test_a_toy_grid_killed_by_sigkill_resumes_to_the_straight_run(tmp_path, tiny_vae_dir):
    """`bench run` of every surface through the toy scenario in a subprocess, SIGKILLed in the middle of a
    cell, resumed and SIGKILLed again halfway through writing a batch file, then resumed to the end: the
    store holds what a straight run holds (batches, shared files, samples.csv, every summary's numbers)."""
    import signal

    grid = {"name": "toy-kill", "seed": 2, "batch_size": 4, "data": {"split": "test", "n": 12}, "scenario": "toy",
            "metrics": ["psnr"], "defenses": [{"name": "vae", "model": str(tiny_vae_dir)}],
            "attacks": ["none", {"name": "noise", "eps": 0.05}, {"name": "typo", "edits": 1},
                        {"name": "dirty-label", "source": 0, "target": 1, "ratio": 0.25}]}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    straight = run_bench(tmp_path, str(path), tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    summaries = {k for k in stored_files(tmp_path / "straight") if k.endswith("summary.json")}
    assert len(summaries) == 4

    killed = run_bench(tmp_path, str(path), tmp_path / "killed", 5, "mid-cell")  # the 2nd batch of the 2nd cell
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len([k for k in stored_files(tmp_path / "killed") if k.endswith("summary.json")]) == 1
    killed = run_bench(tmp_path, str(path), tmp_path / "killed", 4, "mid-write")  # a batch file of the 3rd cell
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len([k for k in stored_files(tmp_path / "killed") if k.endswith("summary.json")]) == 2
    assert list((tmp_path / "killed").rglob("*.tmp"))
    resumed = run_bench(tmp_path, str(path), tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr
    assert stored_files(tmp_path / "killed") == stored_files(tmp_path / "straight")
    assert not list((tmp_path / "killed").rglob("*.tmp"))
