"""--dtype float16 / bfloat16, checked on the CPU so the GPU path is tested without a GPU: the
defended model runs in the half dtype, every metric is handed float32 images and computes in
float32, and the numbers stay close to the float32 run's."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from bench.metrics import psnr as psnr_module
from bench.runner import Runner, RunOptions


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_half_precision_run_hands_the_metrics_float32(dtype, tmp_path, tiny_vae_dir, monkeypatch):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({"name": "dtype", "seed": 0, "batch_size": 4, "data": {"split": "test", "n": 4},
                                    "metrics": ["psnr", "lpips"], "defenses": [{"name": "vae", "model": str(tiny_vae_dir)}],
                                    "attacks": [{"name": "pgd-encoder", "steps": 2}], "eps": [0.03]}))
    seen = []
    original = psnr_module.PSNR.per_sample
    monkeypatch.setattr(psnr_module.PSNR, "per_sample",
                        lambda self, images, reference: seen.append((images.dtype, reference.dtype))
                        or original(self, images, reference))
    runner = Runner(tmp_path / dtype, RunOptions(quiet=True, dtype=dtype))
    [half] = runner.run_grid(grid)
    [defense] = runner._defenses.values()
    assert next(defense.vae.parameters()).dtype == getattr(torch, dtype)
    assert seen and set(seen) == {(torch.float32, torch.float32)}
    [full] = Runner(tmp_path / "float32", RunOptions(quiet=True)).run_grid(grid)
    assert half["key"] != full["key"]  # the dtype is one of the cell's inputs
    for column in ("psnr", "lpips", "linf"):
        value, reference = half["metrics"][column]["value"], full["metrics"][column]["value"]
        assert math.isfinite(value) and value == pytest.approx(reference, rel=0.15, abs=0.01), column  # 2 PGD steps amplify rounding


def test_the_gpu_perf_script_writes_its_section_and_replaces_it_on_a_rerun(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("perf_gpu", Path(__file__).parents[1] / "scripts/device/perf_gpu.py")
    perf_gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(perf_gpu)
    report = {"machine": "NVIDIA X", "results": [{"case": "vae-kl reconstruction", "batch": 16, "images_per_second": 9.0}],
              "attacks": [{"attack": "photoguard", "images": 16, "steps": 20, "speedup": 4.2}],
              "grid": {"grid": "grids/default.yaml", "cold_s": 30.0, "warm_s": 2.0, "peak_rss_mb": 900}}
    half = {"machine": "NVIDIA X", "results": [{"case": "vae-kl reconstruction", "batch": 16, "images_per_second": 20.0}]}
    benchmarks = tmp_path / "BENCHMARKS.md"
    benchmarks.write_text("# Benchmarks\n\nCPU numbers.\n")
    perf_gpu.write_section(benchmarks, perf_gpu.section({"float32": report, "bfloat16": half}))
    first = benchmarks.read_text()
    assert "| vae-kl reconstruction | 16 | 9.0 | 20.0 |" in first and "photoguard" in first and "cold 30.0 s" in first
    perf_gpu.write_section(benchmarks, perf_gpu.section({"float32": {**report, "machine": "NVIDIA Y"}, "bfloat16": half}))
    second = benchmarks.read_text()
    assert second.count(perf_gpu.START) == 1 and "NVIDIA Y" in second and "NVIDIA X" not in second
    assert second.startswith("# Benchmarks\n\nCPU numbers.\n")
