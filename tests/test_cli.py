"""Bad input gets one clear error line naming the fix, exit code 2, and no partial result."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image


def run_bench(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "bench.cli", "--quiet", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=600)


def grid_file(folder: Path, **changes) -> Path:
    grid = {"defenses": ["vae-kl"], "attacks": ["noise"], "metrics": ["psnr"], "data": {"n": 4}, **changes}
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def assert_refused(result: subprocess.CompletedProcess, out: Path, fragment: str) -> None:
    lines = [line for line in result.stderr.strip().splitlines() if line]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0]
    assert not out.exists(), "a refused run must not leave a run folder"


def test_unknown_plugin(tmp_path):
    result = run_bench("run", str(grid_file(tmp_path, attacks=["pgd-encodr"])), "--out", str(tmp_path / "o"))
    assert_refused(result, tmp_path / "o", "did you mean 'pgd-encoder'")


def test_malformed_yaml(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text("defenses: [vae-kl\n  attacks: {noise\n")
    assert_refused(run_bench("run", str(path), "--out", str(tmp_path / "o")), tmp_path / "o", "malformed YAML")


def test_eps_outside_the_unit_interval(tmp_path):
    result = run_bench("run", str(grid_file(tmp_path, eps=[8])), "--out", str(tmp_path / "o"))
    assert_refused(result, tmp_path / "o", "8/255 = 0.0314")


def test_image_folder_with_wrong_shapes(tmp_path, tiny_vae_dir):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(images / "a.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(images / "b.png")
    grid = grid_file(tmp_path, defenses=[{"name": "vae", "model": str(tiny_vae_dir)}],
                     data={"dataset": "folder", "path": str(images), "n": 2})
    assert_refused(run_bench("run", str(grid), "--out", str(tmp_path / "o")), tmp_path / "o", "differ in size")


def test_missing_dataset(tmp_path, tiny_vae_dir):
    grid = grid_file(tmp_path, defenses=[{"name": "vae", "model": str(tiny_vae_dir)}])
    result = run_bench("run", str(grid), "--out", str(tmp_path / "o"), env={"BENCH_FASHION_MNIST": str(tmp_path)})
    assert_refused(result, tmp_path / "o", "apt-get install -y dataset-fashion-mnist")


def test_weight_file_with_a_wrong_sha256(tmp_path, tiny_vae_dir):
    from bench.assets import lpips_weights_path

    cache = tmp_path / "cache"
    cache.mkdir()
    real = lpips_weights_path("alex")
    shutil.copytree(real.parent / "downloads", cache / "downloads")
    (cache / real.name).write_bytes(b"tampered" + real.read_bytes()[8:])
    grid = grid_file(tmp_path, defenses=[{"name": "vae", "model": str(tiny_vae_dir)}], metrics=["lpips"])
    result = run_bench("run", str(grid), "--out", str(tmp_path / "o"), env={"BENCH_CACHE": str(cache)})
    assert_refused(result, tmp_path / "o", "differs from the expected")


@pytest.mark.parametrize("kind", ["attacks", "defenses", "metrics", "scenarios"])
def test_ls(kind):
    result = run_bench("ls", kind)
    assert result.returncode == 0 and f"{kind}:" in result.stdout
