"""PhotoGuard (Salman et al. 2023, "Raising the Cost of Malicious AI-Powered Image Editing",
arXiv:2302.06588; code: MadryLab/photoguard, ``notebooks/demo_simple_attack_img2img.ipynb``).

``variant: encoder`` (the encoder attack, what the SRL-VAE paper evaluates): minimise the distance of
the latent mean to a target latent, ||E(x + delta) - z_target||_2, by signed PGD in an L-inf ball
from a uniform random start, the step size decaying linearly from ``step_size`` to
``step_size / 100`` over the iterations, as in the reference code. ``target: zero`` is the img2img
demo's z_target = 0; ``target: PATH`` uses the latent of that image (the inpainting demo's choice).

``variant: diffusion`` (the diffusion attack): minimise ||f(x + delta) - x_target||_2^2, where f is a
differentiable img2img edit (``bench.editing.Editor.denoise``) with ``diffusion_steps`` DDIM steps
toward ``prompt``, and x_target = D(z_target); it backpropagates through the whole pipeline, so
it needs the img2img-edit scenario. Its noise is fixed per batch, as in the reference code.

Defaults are the reference code's, converted from its [-1, 1] pixels to [0, 1]: eps 0.06 -> 0.03,
step 0.02 -> 0.01, 1000 iterations (encoder); the SRL-VAE paper uses eps 16/255. The diffusion
attack's reference settings (L-inf eps 0.1 -> 0.05, step 0.006 -> 0.003, 200 iterations, 4
denoising steps) are registered as ``photoguard-diffusion``.

Usage::

    attack = PhotoGuard(PhotoGuard.make_config({"eps": 16 / 255, "steps": 200}))
    protected = attack(model, images, seed=0)   # (N, 3, H, W) in [0, 1], 8-bit, inside the ball
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from bench.base import AttackConfig, PixelAttack, PixelTarget, check_unit_interval, signed_step, uniform_start
from bench.data import load_target_image

VARIANTS = ("encoder", "diffusion")


@dataclass(frozen=True)
class PhotoGuardConfig(AttackConfig):
    eps: float = 0.03
    steps: int = 1000
    step_size: float = 0.01
    variant: str = "encoder"
    target: str = "zero"
    prompt: str = ""
    diffusion_steps: int = 4
    random_start: bool = True

    def __post_init__(self):
        super().__post_init__()
        check_unit_interval("photoguard", "step_size", self.step_size)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant={self.variant!r}; use one of {', '.join(VARIANTS)}")
        if self.steps < 1 or self.diffusion_steps < 1:
            raise ValueError("steps and diffusion_steps must be at least 1")
        if self.target != "zero" and not Path(self.target).is_file():
            raise ValueError(f"target={self.target!r} is neither 'zero' nor an image file")


class PhotoGuard(PixelAttack):
    name = "photoguard"
    Config = PhotoGuardConfig

    def differentiates(self) -> str:
        return "text-to-image" if self.config.variant == "diffusion" else "autoencoder"

    def _targets(self, model: PixelTarget, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The target latent and, for the diffusion variant, its decoding: fixed for the whole batch."""
        with torch.no_grad():
            if self.config.target == "zero":
                latent = torch.zeros(model.encode(images[:1]).shape, device=images.device)
            else:
                latent = model.encode(load_target_image(self.config.target, images, "photoguard")).float()
            if self.config.variant == "encoder":
                return latent, None
            return latent, model.decode(latent.expand(len(images), *latent.shape[1:])).float()

    def _loss(self, model: PixelTarget, adversarial: torch.Tensor, targets: tuple[torch.Tensor, torch.Tensor | None],
              generator_seed: int) -> torch.Tensor:
        """(N,) the distance PhotoGuard minimises."""
        target_latent, target_image = targets
        if target_image is None:
            return (model.encode(adversarial).float() - target_latent).flatten(1).norm(dim=1)
        prompts = [self.config.prompt] * len(adversarial)
        edited = model.denoise(adversarial, prompts, torch.Generator().manual_seed(generator_seed),
                               steps=self.config.diffusion_steps)
        return (edited.float() - target_image).pow(2).flatten(1).sum(1)

    def perturb(self, model: PixelTarget, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cfg = self.config
        targets = self._targets(model, images)
        noise_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        delta = uniform_start(images, cfg.eps, generator, cfg.random_start)
        for step in range(cfg.steps):
            step_size = cfg.step_size - (cfg.step_size - cfg.step_size / 100) * step / max(1, cfg.steps - 1)
            delta.requires_grad_(True)
            loss = self._loss(model, images + delta, targets, noise_seed).sum()
            (grad,) = torch.autograd.grad(loss, delta)
            delta = signed_step(delta, -grad, step_size, images, cfg.eps)
        return images + delta

    def objective(self, model: PixelTarget, adversarial: torch.Tensor, clean: torch.Tensor, seed: int) -> torch.Tensor:
        return -self._loss(model, adversarial, self._targets(model, clean), seed)
