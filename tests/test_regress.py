import json
import shutil
import subprocess
import sys

import pytest
import yaml
from safetensors.torch import load_file, save_file

from bench import regress


def number(value, se=0.0, higher=True):
    return {"value": value, "standard_error": se, "higher_is_better": higher, "n": 8}


def test_direction_aware_comparison():
    baseline = {"a|psnr": number(25.0, 0.1), "a|lpips": number(0.10, 0.001, higher=False)}
    worse = {"a|psnr": number(24.0, 0.1), "a|lpips": number(0.20, 0.001, higher=False)}
    better = {"a|psnr": number(26.0, 0.1), "a|lpips": number(0.05, 0.001, higher=False)}
    assert {c.status for c in regress.compare(baseline, worse).changes} == {"regressed"}
    assert {c.status for c in regress.compare(baseline, better).changes} == {"improved"}
    # two-sided: an improvement fails the check as a regression does; the report says which way
    assert not regress.compare(baseline, better).ok and not regress.compare(baseline, worse).ok
    assert regress.compare(baseline, baseline).ok
    assert "improved" in regress.report(regress.compare(baseline, better))
    assert regress.compare(baseline, better).summary() == "2 improved"


def test_paired_tolerance_detects_a_shift_smaller_than_the_spread_across_images():
    values = [10.0, 20.0, 30.0, 40.0]
    baseline = {"a|psnr": {**number(25.0, 5.0), "samples": values}}
    shifted = {"a|psnr": {**number(24.5, 5.0), "samples": [v - 0.5 + 0.01 * i for i, v in enumerate(values)]}}
    assert regress.compare(baseline, shifted).changes[0].status == "regressed"
    unpaired = {"a|psnr": number(24.5, 5.0)}
    assert regress.compare(baseline, unpaired).changes[0].status == "same"


def test_tolerance_comes_from_the_standard_error_with_a_floor():
    wide = regress.tolerance(number(25.0, 0.5), number(25.0, 0.4))
    assert wide == pytest.approx(regress.Z * 0.5)
    narrow = regress.tolerance(number(0.0, 0.0), number(0.0, 0.0))
    assert narrow == regress.ABSOLUTE_FLOOR
    baseline = {"a|psnr": number(25.0, 0.5)}
    assert regress.compare(baseline, {"a|psnr": number(24.0, 0.5)}).changes[0].status == "same"


def test_a_number_missing_from_the_run_or_new_in_it_is_a_change():
    missing = regress.compare({"a|psnr": number(1.0)}, {})
    assert not missing.ok and missing.missing == ["a|psnr"] and "missing from the run" in regress.report(missing)
    new = regress.compare({}, {"a|psnr": number(1.0)})
    assert not new.ok and new.new == ["a|psnr"] and new.summary() == "1 new"


def test_a_number_turning_nan_is_a_change():
    comparison = regress.compare({"a|psnr": number(25.0)}, {"a|psnr": number(float("nan"))})
    assert comparison.changes[0].status == "changed" and not comparison.ok


def test_history_entry_records_what_changed_the_commit_and_the_reason():
    comparison = regress.compare({"a|psnr": number(25.0), "a|ssim": number(0.9)},
                                 {"a|psnr": number(27.0), "a|ssim": number(0.9), "a|lpips": number(0.1)})
    entry = regress.history_entry(comparison, "why", "abc123", "2026-01-01")
    assert entry["reason"] == "why" and entry["commit"] == "abc123" and entry["added"] == ["a|lpips"]
    assert entry["changes"] == [{"number": "a|psnr", "baseline": 25.0, "measured": 27.0,
                                 "tolerance": pytest.approx(0.25), "status": "improved"}]


def bench_regress(grid, baseline, *extra):
    return subprocess.run([sys.executable, "-m", "bench.cli", "--quiet", "regress", str(grid), "--baseline",
                           str(baseline), *extra], capture_output=True, text=True, timeout=600)


def test_a_weakened_defense_fails_and_the_real_one_passes(tmp_path, tiny_vae_dir):
    model = tmp_path / "model"
    shutil.copytree(tiny_vae_dir, model)
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({
        "seed": 0, "batch_size": 4, "data": {"n": 8}, "metrics": ["psnr", "ssim"],
        "defenses": [{"name": "vae", "model": str(model), "label": "tiny"}],
        "attacks": ["none", {"name": "pgd-encoder", "steps": 2, "lpips_weight": 0.0}], "eps": [0.03]}))
    baseline = tmp_path / "baseline.json"
    # one run folder per weights state: a repeated check reads the stored cells instead of recomputing
    real_run, weak_run = ("--out", str(tmp_path / "real")), ("--out", str(tmp_path / "weak"))

    created = bench_regress(grid, baseline, "--update", *real_run)
    assert created.returncode == 0, created.stderr
    assert json.loads(baseline.read_text())["numbers"]

    unchanged = bench_regress(grid, baseline, *real_run)
    assert unchanged.returncode == 0, unchanged.stderr + unchanged.stdout

    history = json.loads(baseline.read_text())["history"]
    assert len(history) == 1 and history[0]["changes"] == "created"

    weights_file = model / "diffusion_pytorch_model.safetensors"
    original = load_file(weights_file)
    weights = dict(original)
    weights["decoder.conv_out.bias"] = weights["decoder.conv_out.bias"] + 10.0  # saturated reconstructions
    save_file(weights, weights_file)
    weakened = bench_regress(grid, baseline, *weak_run)
    assert weakened.returncode == 1
    assert "regressed" in weakened.stdout and "tiny / pgd-encoder" in weakened.stdout
    assert "changed beyond tolerance" in weakened.stderr and "regressed" in weakened.stderr

    refused = bench_regress(grid, baseline, "--update", *weak_run)
    assert refused.returncode == 2 and "--reason" in refused.stderr
    assert len(json.loads(baseline.read_text())["history"]) == 1

    accepted = bench_regress(grid, baseline, "--update", "--reason", "saturating decoder, on purpose", *weak_run)
    assert accepted.returncode == 0, accepted.stderr
    data = json.loads(baseline.read_text())
    assert data["history"][-1]["reason"] == "saturating decoder, on purpose"
    assert data["history"][-1]["commit"] and data["history"][-1]["changes"]
    assert {c["status"] for c in data["history"][-1]["changes"]} >= {"regressed"}

    # back to the real weights: every number improves against the new baseline, and that fails too
    save_file(original, weights_file)
    improved = bench_regress(grid, baseline, "--out", str(tmp_path / "restored"))
    assert improved.returncode == 1, improved.stdout + improved.stderr
    assert "improved" in improved.stdout and "improved" in improved.stderr


def test_reason_without_update_is_refused(tmp_path):
    result = bench_regress(tmp_path / "grid.yaml", tmp_path / "b.json", "--reason", "x")
    assert result.returncode == 2 and "--reason goes with --update" in result.stderr
