import json
import shutil
import subprocess
import sys

import pytest
import yaml
from safetensors.torch import load_file, save_file

from bench import regress
from bench.errors import BenchError


def number(value, se=0.0, higher=True):
    return {"value": value, "standard_error": se, "higher_is_better": higher, "n": 8}


def test_direction_aware_comparison():
    baseline = {"a|psnr": number(25.0, 0.1), "a|lpips": number(0.10, 0.001, higher=False)}
    worse = {"a|psnr": number(24.0, 0.1), "a|lpips": number(0.20, 0.001, higher=False)}
    better = {"a|psnr": number(26.0, 0.1), "a|lpips": number(0.05, 0.001, higher=False)}
    assert {c.status for c in regress.compare(baseline, worse)} == {"regressed"}
    assert {c.status for c in regress.compare(baseline, better)} == {"improved"}


def test_paired_tolerance_detects_a_shift_smaller_than_the_spread_across_images():
    values = [10.0, 20.0, 30.0, 40.0]
    baseline = {"a|psnr": {**number(25.0, 5.0), "samples": values}}
    shifted = {"a|psnr": {**number(24.5, 5.0), "samples": [v - 0.5 + 0.01 * i for i, v in enumerate(values)]}}
    assert regress.compare(baseline, shifted)[0].status == "regressed"
    unpaired = {"a|psnr": number(24.5, 5.0)}
    assert regress.compare(baseline, unpaired)[0].status == "same"


def test_tolerance_comes_from_the_standard_error_with_a_floor():
    wide = regress.tolerance(number(25.0, 0.5), number(25.0, 0.4))
    assert wide == pytest.approx(regress.Z * 0.5)
    narrow = regress.tolerance(number(0.0, 0.0), number(0.0, 0.0))
    assert narrow == regress.ABSOLUTE_FLOOR
    baseline = {"a|psnr": number(25.0, 0.5)}
    assert regress.compare(baseline, {"a|psnr": number(24.0, 0.5)})[0].status == "same"


def test_a_number_missing_from_the_run_fails_clearly():
    with pytest.raises(BenchError, match="--update"):
        regress.compare({"a|psnr": number(1.0)}, {})


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

    created = bench_regress(grid, baseline, "--update")
    assert created.returncode == 0, created.stderr
    assert json.loads(baseline.read_text())["numbers"]

    unchanged = bench_regress(grid, baseline)
    assert unchanged.returncode == 0, unchanged.stderr + unchanged.stdout

    weights_file = model / "diffusion_pytorch_model.safetensors"
    weights = load_file(weights_file)
    weights["decoder.conv_out.bias"] = weights["decoder.conv_out.bias"] + 10.0  # saturated reconstructions
    save_file(weights, weights_file)
    weakened = bench_regress(grid, baseline)
    assert weakened.returncode == 1
    assert "regressed" in weakened.stdout and "tiny / pgd-encoder" in weakened.stdout
    assert "regressed beyond tolerance" in weakened.stderr
