"""Gaussian noise as a purifier (the first half of "noisy upscaling", Hönig et al. 2024,
arXiv:2406.12027, who add sigma 0.05-0.1 before upscaling): x + N(0, sigma^2), clamped to [0, 1],
then the wrapped autoencoder.

The noise of each image is drawn from a generator seeded by the image's 8-bit content and ``seed``,
so a result is reproducible and resumable, while an attacker whose image changes meets fresh noise
at every step (an expectation over the noise, one draw per step). The purifier is differentiable,
so the adaptive attacker differentiates it exactly. Arguments: ``sigma`` (0.05, [0,1] pixel units),
``seed`` (0), and ``model`` / ``subfolder`` / ``trust_pickle`` of the wrapped AutoencoderKL.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.base import check_unit_interval
from defenses.purifier import Purifier, PurifierConfig, content_generator


@dataclass(frozen=True)
class GaussianNoiseConfig(PurifierConfig):
    sigma: float = 0.05
    seed: int = 0

    def __post_init__(self):
        check_unit_interval("gaussian-noise", "sigma", self.sigma)


class GaussianNoisePurifier(Purifier):
    name = "gaussian-noise"
    Config = GaussianNoiseConfig

    def purify(self, images: torch.Tensor) -> torch.Tensor:
        noise = torch.stack([torch.randn(image.shape, generator=content_generator(image, self.config.seed))
                             for image in images]).to(images.device, images.dtype)
        return (images + self.config.sigma * noise).clamp(0, 1)
