"""The identity "attack": scores the defense on clean images, the fidelity row of every table."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.base import AttackConfig, Defense, PixelAttack


@dataclass(frozen=True)
class NoAttackConfig(AttackConfig):
    eps: float = 0.0


class NoAttack(PixelAttack):
    name = "none"
    Config = NoAttackConfig
    uses_model = False

    def perturb(self, model: Defense, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return images.clone()
