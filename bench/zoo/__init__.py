"""The embedded model zoo: small models this project trains on Fashion-MNIST and ships in diffusers
format (config.json + safetensors), each file's sha256 recorded in ``manifest.json``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bench.assets import sha256_file
from bench.errors import BenchError

ZOO_DIR = Path(__file__).parent
MANIFEST = ZOO_DIR / "manifest.json"
WEIGHTS_DIR = ZOO_DIR / "weights"


def manifest() -> dict[str, Any]:
    if not MANIFEST.exists():
        return {}
    return json.loads(MANIFEST.read_text())


def is_zoo_model(name: str) -> bool:
    return name in manifest()


def model_dir(name: str) -> Path:
    """The verified folder of a zoo model (every file's sha256 checked against the manifest)."""
    entry = manifest().get(name)
    if entry is None:
        raise BenchError(f"{name!r} is not in the model zoo; see `bench zoo ls`")
    folder = ZOO_DIR / entry["path"]
    for filename, expected in entry["files"].items():
        path = folder / filename
        if not path.exists():
            raise BenchError(f"zoo model {name}: {path} is missing; rebuild it with `bench zoo train {name}`")
        actual = sha256_file(path)
        if actual != expected:
            raise BenchError(f"zoo model {name}: {path} has sha256 {actual[:16]}..., the manifest says "
                             f"{expected[:16]}...; restore it with `git checkout -- {path}` or rebuild it "
                             f"with `bench zoo train {name}`")
    return folder


def verify_all() -> dict[str, str]:
    results = {}
    for name in manifest():
        try:
            model_dir(name)
            results[name] = "ok"
        except BenchError as err:
            results[name] = str(err)
    return results


def record(name: str, folder: Path, info: dict[str, Any]) -> None:
    """Write a model's file hashes (keyed by their path inside ``folder``, subfolders included) and
    training facts into the manifest, atomically."""
    entries = manifest()
    files = {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}
    entries[name] = {"path": str(folder.relative_to(ZOO_DIR)), "files": files, **info}
    tmp = MANIFEST.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, MANIFEST)
