"""Down- and up-scaling as a purifier: resize by 1/``factor`` and back (bicubic, antialiased), which
removes the high frequencies most protective perturbations live in, then the wrapped autoencoder.
A simple stand-in for the learned upscaler of "noisy upscaling" (Hönig et al. 2024,
arXiv:2406.12027). Differentiable, so the adaptive attacker differentiates it exactly.

Arguments: ``factor`` (2), ``mode`` (bicubic; or bilinear, area), and ``model`` / ``subfolder`` /
``trust_pickle`` of the wrapped AutoencoderKL (``vae-kl``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from defenses.purifier import Purifier, PurifierConfig

MODES = ("bicubic", "bilinear", "area")


@dataclass(frozen=True)
class RescaleConfig(PurifierConfig):
    factor: int = 2
    mode: str = "bicubic"

    def __post_init__(self):
        if self.factor < 2:
            raise ValueError(f"factor={self.factor}; downscale by a whole factor of at least 2")
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r}; use one of {', '.join(MODES)}")


class RescalePurifier(Purifier):
    name = "rescale"
    Config = RescaleConfig

    def purify(self, images: torch.Tensor) -> torch.Tensor:
        size = images.shape[-2:]
        small = (size[0] // self.config.factor, size[1] // self.config.factor)
        antialias = self.config.mode in ("bicubic", "bilinear")
        down = torch.nn.functional.interpolate(images, size=small, mode=self.config.mode, antialias=antialias)
        up = torch.nn.functional.interpolate(down, size=tuple(size), mode=self.config.mode,
                                             **({"align_corners": False} if antialias else {}))
        return up.clamp(0, 1)
