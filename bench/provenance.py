"""Where a number came from: code version, packages, device, dtype, seed, date."""

from __future__ import annotations

import datetime
import importlib.metadata
import platform
import subprocess
from functools import lru_cache
from pathlib import Path

import torch

import bench

PACKAGES = ("torch", "diffusers", "transformers", "torchmetrics", "lpips", "numpy", "scipy", "safetensors")


@lru_cache(maxsize=1)
def git_revision() -> str:
    root = Path(bench.__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name: CPU floating-point results differ between processor families (their
    vector kernels), so a number's provenance names it beside the thread count."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {platform.machine()}"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({cpu_model()}, {torch.get_num_threads()} threads)"


def provenance(device: torch.device, dtype: torch.dtype, seed: int) -> dict:
    return {"suite_version": bench.__version__, "git": git_revision(), "packages": package_versions(),
            "python": platform.python_version(), "device": device_name(device), "dtype": str(dtype),
            "seed": seed, "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
