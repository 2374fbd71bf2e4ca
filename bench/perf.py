"""``bench perf``: throughput of the suite's hot paths on this machine (images per second).

Speed targets live here and in BENCHMARKS.md, never in timed tests. Each case runs once to warm up,
then ``repeats`` times; the median wall time is reported.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
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


def cases(batch: int, device: torch.device) -> dict[str, tuple[Callable[[], Any], int]]:
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
    defense = AutoencoderKLDefense(AutoencoderKLDefense.make_config({"model": "vae-kl"})).to(device)
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


def run_perf(batch: int = 16, repeats: int = 3, device: str = "cpu") -> list[dict[str, Any]]:
    torch_device = torch.device(device)
    results = []
    for name, (fn, count) in cases(batch, torch_device).items():
        seconds = _time(fn, repeats)
        results.append({"case": name, "batch": count, "seconds": round(seconds, 4),
                        "images_per_second": round(count / seconds, 1)})
    return results


def machine() -> str:
    return f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"
