"""``bench perf``: throughput of the suite's hot paths on this machine (images per second).

Speed targets live here and in BENCHMARKS.md, never in timed tests. Each case runs once to warm up,
then ``repeats`` times; the median wall time is reported.
"""

from __future__ import annotations

import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch


def _time(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    durations = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


def cases(batch: int, device: torch.device, dtype: torch.dtype = torch.float32
          ) -> dict[str, tuple[Callable[[], Any], int]]:
    """name -> (callable, images it processes)."""
    from attacks.mist import Mist
    from attacks.pgd_encoder import PGDEncoder
    from attacks.photoguard import PhotoGuard
    from bench.data import load_fashion_mnist
    from bench.editing import EditConfig, Editor
    from bench.metrics.inception import inception_features
    from bench.metrics.lpips import lpips_distance
    from defenses.impress import ImpressPurifier
    from defenses.vae import AutoencoderKLDefense

    data = load_fashion_mnist("test", batch)
    images = data.images.to(device)
    defense = AutoencoderKLDefense(AutoencoderKLDefense.make_config({"model": "vae-kl"})).to(device, dtype)
    editor = Editor.for_defense(defense, EditConfig(), device)
    pgd = PGDEncoder(PGDEncoder.make_config({"steps": 1}))
    photoguard = PhotoGuard(PhotoGuard.make_config({"steps": 1}))
    mist = Mist(Mist.make_config({"steps": 1}))
    impress = ImpressPurifier(ImpressPurifier.make_config({"steps": 1})).to(device)

    def reconstruct():
        with torch.no_grad():
            defense.reconstruct(images)

    def lpips():
        with torch.no_grad():
            lpips_distance(images, images.flip(0), "alex")

    return {"vae-kl reconstruction": (reconstruct, batch),
            "pgd-encoder step (vae-kl, LPIPS-vgg)": (lambda: pgd(defense, images, seed=0), batch),
            "photoguard step (vae-kl encoder)": (lambda: photoguard(defense, images, seed=0), batch),
            "mist step (fused, ldm-t2i)": (lambda: mist(editor, images, seed=0), batch),
            "impress purification step": (lambda: impress.purify(images), batch),
            "img2img edit (ldm-t2i, 25 of 50 DDIM steps)": (lambda: editor.edit(images, list(data.captions), 0), batch),
            "LPIPS-alex": (lpips, batch),
            "FID Inception features": (lambda: inception_features(images), batch)}


def run_perf(batch: int = 16, repeats: int = 3, device: str = "cpu", dtype: str = "float32") -> list[dict[str, Any]]:
    torch_device = torch.device(device)
    results = []
    for name, (fn, count) in cases(batch, torch_device, getattr(torch, dtype)).items():
        seconds = _time(fn, repeats)
        results.append({"case": name, "batch": count, "seconds": round(seconds, 4),
                        "images_per_second": round(count / seconds, 1)})
    return results


def attack_speedups(images: int = 16, steps: int = 20, device: str = "cpu") -> list[dict[str, Any]]:
    """Each attack's batched path against the reference code's structure, one image at a time with
    nothing reused between images, on the same model in the same process: the suite's speed-up."""
    from attacks.mist import Mist
    from attacks.pgd_encoder import PGDEncoder
    from attacks.photoguard import PhotoGuard
    from bench.data import load_fashion_mnist
    from bench.editing import EditConfig, Editor
    from defenses.vae import AutoencoderKLDefense

    torch_device = torch.device(device)
    data = load_fashion_mnist("test", images).images.to(torch_device)
    defense = AutoencoderKLDefense(AutoencoderKLDefense.make_config({"model": "vae-kl"})).to(torch_device)
    editor = Editor.for_defense(defense, EditConfig(), torch_device)
    attacks = {"photoguard (vae-kl encoder)": (PhotoGuard(PhotoGuard.make_config({"steps": steps})), defense),
               "pgd-encoder (vae-kl, LPIPS-vgg)": (PGDEncoder(PGDEncoder.make_config({"steps": steps})), defense),
               "mist (fused, ldm-t2i)": (Mist(Mist.make_config({"steps": steps})), editor)}
    rows = []
    for name, (attack, model) in attacks.items():
        batched = _time(lambda a=attack, m=model: a(m, data, seed=0), 1)
        looped = _time(lambda a=attack, m=model: [a(m, data[i:i + 1], seed=i) for i in range(len(data))], 1)
        rows.append({"attack": name, "images": images, "steps": steps, "batched_s": round(batched, 2),
                     "per_image_loop_s": round(looped, 2), "speedup": round(looped / batched, 2)})
    return rows


def grid_wall_times(grid: str, device: str = "cpu") -> dict[str, Any]:
    """A grid run cold (a new run folder) and warm (the same folder again), each in its own process,
    with the peak resident memory of the cold run."""
    out = Path(tempfile.mkdtemp(prefix="bench-perf-"))
    command = [sys.executable, "-m", "bench.cli", "--quiet", "run", grid, "--out", str(out / "run"),
               "--device", device]
    try:
        timings = {}
        for phase in ("cold", "warm"):
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            timings[f"{phase}_s"] = round(time.perf_counter() - start, 1)
            if phase == "cold":
                timings["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"grid": grid, **timings}


def peak_rss_mb() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def machine() -> str:
    return f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
