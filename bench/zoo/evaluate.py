"""Quality bars of zoo models, measured by ``bench zoo eval NAME [--json]``."""

from __future__ import annotations

from typing import Any

import torch

from bench.data import load_fashion_mnist
from bench.errors import BenchError
from bench.stats import mean_interval, set_interval


def evaluate_autoencoder(name: str, n: int = 500, batch_size: int = 50) -> dict[str, Any]:
    """Test-split reconstruction quality: PSNR, SSIM, LPIPS (alex) with intervals, rFID and KID."""
    from bench.metrics.fid import FID
    from bench.metrics.kid import KID
    from bench.metrics.lpips import LPIPS
    from bench.metrics.psnr import PSNR
    from bench.metrics.ssim import SSIM
    from defenses.vae import AutoencoderKLDefense

    defense = AutoencoderKLDefense(AutoencoderKLDefense.make_config({"model": name}))
    images = load_fashion_mnist("test", n).images
    with torch.no_grad():
        reconstructions = torch.cat([defense.reconstruct(chunk) for chunk in images.split(batch_size)])
    result: dict[str, Any] = {"model": name, "split": "test", "n": n}
    for metric in (PSNR(), SSIM(), LPIPS()):
        result[metric.name] = mean_interval(metric.per_sample(reconstructions, images).numpy()).as_dict()
    fid, kid = FID(), KID()
    features, reference = fid.features(reconstructions), fid.features(images)
    for metric in (fid, kid):
        interval = set_interval(metric.statistic, features.numpy(), reference.numpy())
        result[f"r{metric.name}"] = {**interval.as_dict(), "value": metric.from_features(features, reference)}
    return result


EVALUATORS = {"vae-kl": evaluate_autoencoder}


def evaluate(name: str, n: int) -> dict[str, Any]:
    if name not in EVALUATORS:
        raise BenchError(f"no quality bar defined for {name!r}; evaluable: {', '.join(EVALUATORS)}")
    return EVALUATORS[name](name, n)
