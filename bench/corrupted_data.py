"""Corrupted training data, the training-data surface of the denoiser track (Robustadv, arXiv:2505.21742):
``percent`` % of the training images get additive Gaussian noise of std ``sigma``, the rest stay clean,
and the trainer is told neither which nor how much.

Units: ``sigma`` is in the suite's [0, 1] pixel units. The paper's settings (sigma 0.1 and 0.2, p = 90%)
are stated for images its code (improved-diffusion) holds in [-1, 1]; if its noise is added there, its
sigma s is s / 2 here (0.05 and 0.1); if it is added to [0, 1] images, it is s. The paper's text that
would settle this was not readable (``shared/notes/robustadv-method.md``, section 6), so the runs
name the sigma they used in our units. The noisy values are not clipped to [0, 1] (clipping would
turn zero-mean noise on the black background into a grey cast), and the noise is drawn once per
pixel of the grey image and shared by its three channels, so corrupted images stay grey like the
data. Which images are corrupted and their noise come from ``seed`` alone; the corrupted set is
identified by the sha256 of its grey channel as float32 bytes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import torch

from bench.errors import BenchError


@dataclass(frozen=True)
class CorruptionConfig:
    percent: float = 0.0
    sigma: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if not (isinstance(self.percent, int | float) and 0 <= self.percent <= 100):
            raise BenchError(f"corruption percent={self.percent} must lie in [0, 100] (the share of images "
                             "corrupted, in %)")
        if not (isinstance(self.sigma, int | float) and math.isfinite(self.sigma) and self.sigma >= 0):
            raise BenchError(f"corruption sigma={self.sigma} must be a finite std >= 0 in [0, 1] pixel units")


@dataclass(frozen=True)
class CorruptedData:
    images: torch.Tensor
    corrupted: torch.Tensor
    """A bool per image: whether it got noise."""
    sha256: str
    config: CorruptionConfig

    def describe(self) -> dict:
        return {"images": len(self.images), "corrupted": int(self.corrupted.sum()), "percent": self.config.percent,
                "sigma_01": self.config.sigma, "seed": self.config.seed, "sha256": self.sha256}


def corrupt(images: torch.Tensor, config: CorruptionConfig) -> CorruptedData:
    """``images`` (N, C, H, W) in [0, 1], grey (channels equal), with ``round(percent / 100 * N)`` of them,
    chosen by ``seed``, noised by N(0, sigma^2) per pixel."""
    generator = torch.Generator().manual_seed(config.seed)
    chosen = torch.randperm(len(images), generator=generator)[:round(config.percent / 100 * len(images))]
    mask = torch.zeros(len(images), dtype=torch.bool)
    mask[chosen] = True
    out = images
    if len(chosen) and config.sigma > 0:
        noise = torch.randn((len(chosen), 1, *images.shape[2:]), generator=generator) * config.sigma
        out = images.clone()
        out[chosen] = images[chosen] + noise.to(images.dtype)
    digest = hashlib.sha256(out[:, :1].to(torch.float32).contiguous().numpy().tobytes()).hexdigest()
    return CorruptedData(out, mask, digest, config)
