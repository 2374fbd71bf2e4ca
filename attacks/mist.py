"""MIST (Liang and Wu 2023, "Mist: Towards Improved Adversarial Examples for Diffusion Models",
arXiv:2305.12683; code: psyker-team/mist, ``mist_v3.py`` and ``mist_utils.py``).

Targeted L-inf PGD with a uniform random start that minimises, by name of ``loss``:

- ``textural``: ||E(x + delta) - E(y)||^2 summed over latent elements, y the target pattern;
- ``semantic``: ``semantic_sign`` * -L_LDM(x + delta, c), L_LDM the latent diffusion model's
  noise-prediction error at a random timestep for the prompt c (AdvDM's loss; sign +1 maximises it);
- ``fused``: textural + ``rate`` * semantic term, i.e. textural - rate * L_LDM.

The reference code numbers the modes (0 = semantic, 1 = textural, 2 = fused; its README has the
first two the wrong way round), so the loss is recorded by name here. Defaults are the reference's:
eps 16/255, 100 steps of 1/255, fused, rate 1e4, prompt "a painting"; the SRL-VAE paper uses eps
8/255. MIST's target pattern is a texture image shipped with its code (``MIST.png``), which is not
available here: ``target: stripes`` is a stated stand-in, a seeded high-contrast diagonal stripe
texture at the input size; ``target: PATH`` uses an image. E is the latent mean (``latent_dist.mean``),
as in the rest of this suite. Needs a diffusion model for ``semantic`` and ``fused``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bench.base import AttackConfig, PixelAttack, PixelTarget, check_unit_interval, signed_step, uniform_start
from bench.data import load_target_image

LOSSES = ("textural", "semantic", "fused")


@dataclass(frozen=True)
class MistConfig(AttackConfig):
    eps: float = 16 / 255
    steps: int = 100
    step_size: float = 1 / 255
    loss: str = "fused"
    rate: float = 1e4
    semantic_sign: int = 1
    prompt: str = "a painting"
    target: str = "stripes"
    random_start: bool = True

    def __post_init__(self):
        super().__post_init__()
        check_unit_interval("mist", "step_size", self.step_size)
        if self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss!r}; use one of {', '.join(LOSSES)} (by name, not MIST's mode numbers)")
        if self.semantic_sign not in (1, -1):
            raise ValueError(f"semantic_sign={self.semantic_sign}; use 1 (maximise L_LDM, AdvDM) or -1")
        if self.steps < 1:
            raise ValueError(f"steps={self.steps}; use at least 1")
        if self.target != "stripes" and not Path(self.target).is_file():
            raise ValueError(f"target={self.target!r} is neither 'stripes' nor an image file")


def stripes(like: torch.Tensor, period: int = 4) -> torch.Tensor:
    """A (1, 3, H, W) diagonal stripe texture in [0, 1]: the stand-in for MIST's pattern image."""
    height, width = like.shape[-2:]
    rows = torch.arange(height).view(-1, 1)
    columns = torch.arange(width).view(1, -1)
    pattern = (((rows + columns) // (period // 2)) % 2).float()
    return pattern.expand(3, height, width).unsqueeze(0).to(like.device, like.dtype)


class Mist(PixelAttack):
    name = "mist"
    Config = MistConfig

    def differentiates(self) -> str:
        """The textural loss needs the autoencoder only; the semantic one the latent diffusion model."""
        return "autoencoder" if self.config.loss == "textural" else "text-to-image"

    def _target_latent(self, model: PixelTarget, images: torch.Tensor) -> torch.Tensor:
        if self.config.target == "stripes":
            pattern = stripes(images)
        else:
            pattern = load_target_image(self.config.target, images, "mist")
        with torch.no_grad():
            return model.encode(pattern).float()

    def _loss(self, model: PixelTarget, adversarial: torch.Tensor, target: torch.Tensor,
              generator: torch.Generator) -> torch.Tensor:
        """(N,) the quantity MIST minimises."""
        cfg = self.config
        loss = torch.zeros(len(adversarial), device=adversarial.device)
        if cfg.loss in ("textural", "fused"):
            loss = loss + (model.encode(adversarial).float() - target).pow(2).flatten(1).sum(1)
        if cfg.loss in ("semantic", "fused"):
            weight = cfg.rate if cfg.loss == "fused" else 1.0
            ldm = model.diffusion_loss(adversarial, [cfg.prompt] * len(adversarial), generator)
            loss = loss - weight * cfg.semantic_sign * ldm
        return loss

    def perturb(self, model: PixelTarget, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cfg = self.config
        target = self._target_latent(model, images)
        delta = uniform_start(images, cfg.eps, generator, cfg.random_start)
        for _ in range(cfg.steps):
            delta.requires_grad_(True)
            loss = self._loss(model, images + delta, target, generator).sum()
            (grad,) = torch.autograd.grad(loss, delta)
            delta = signed_step(delta, -grad, cfg.step_size, images, cfg.eps)
        return images + delta

    def objective(self, model: PixelTarget, adversarial: torch.Tensor, clean: torch.Tensor, seed: int) -> torch.Tensor:
        return -self._loss(model, adversarial, self._target_latent(model, clean), torch.Generator().manual_seed(seed))
