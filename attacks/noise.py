"""Uniform random noise in the L-inf ball: the control row every robustness table needs.

Any attack that claims damage must beat this at the same eps; otherwise the "attack" measures only
the model's sensitivity to noise.
"""

from __future__ import annotations

import torch

from bench.base import Defense, PixelAttack


class UniformNoise(PixelAttack):
    """x' = clip(x + U(-eps, eps), 0, 1), then 8-bit quantisation inside the ball (base class).

    Arguments: ``eps`` (default 8/255), the L-inf radius in [0, 1] pixel units.
    """

    name = "noise"
    uses_model = False

    def perturb(self, model: Defense, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = (torch.rand(images.shape, generator=generator) * 2 - 1) * self.config.eps
        return (images + noise.to(images.device)).clamp(0, 1)
