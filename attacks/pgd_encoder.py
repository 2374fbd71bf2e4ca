"""Untargeted PGD on a VAE's reconstruction: the inner maximisation of SRL-VAE.

Reference: Smooth Robust Latent VAE (SRL-VAE), eq. 5 (``../shared/papers/srl-vae.txt``)::

    delta <- Proj_{||delta||inf <= eps}( delta + step * sign(grad_delta [ MSE(D(E(x+delta)), x)
                                                             + lambda * LPIPS(D(E(x+delta)), x) ]) )

L-inf, random uniform start, batched. Defaults follow the paper's training attack: eps 8/255,
10 steps, step 0.02 (all in [0, 1] units). The paper does not state lambda; 1.0 is used. MSE is taken
in [0, 1] pixels and LPIPS with the VGG16 backbone, the network the paper names.

Usage::

    attack = PGDEncoder(PGDEncoder.make_config({"eps": 8 / 255, "steps": 10}))
    adversarial = attack(model, images, seed=0)   # (N, 3, H, W) in [0, 1], 8-bit, inside the ball
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.base import AttackConfig, Defense, PixelAttack, check_unit_interval, signed_step, uniform_start
from bench.metrics.lpips import check_lpips_net, lpips_distance, lpips_distance_to, lpips_features, lpips_network


@dataclass(frozen=True)
class PGDEncoderConfig(AttackConfig):
    eps: float = 8 / 255
    steps: int = 10
    step_size: float = 0.02
    lpips_weight: float = 1.0
    lpips_net: str = "vgg"
    random_start: bool = True

    def __post_init__(self):
        super().__post_init__()
        check_unit_interval("pgd-encoder", "step_size", self.step_size)
        check_lpips_net("lpips_net", self.lpips_net)
        if self.steps < 1:
            raise ValueError(f"steps={self.steps}; use at least 1")


def reconstruction_loss(model: Defense, images: torch.Tensor, clean: torch.Tensor, lpips_weight: float,
                        lpips_net: str, clean_features: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Per-image MSE + lambda * LPIPS of D(E(images)) against the clean images (SRL-VAE eq. 5).

    ``clean_features``, the clean images' ``lpips_features``, spare the LPIPS backbone's pass over
    the clean images when the caller has them; the loss is the same.
    """
    reconstruction = model.decode(model.encode(images))
    mse = ((reconstruction - clean) ** 2).flatten(1).mean(1)
    if lpips_weight == 0:
        return mse
    if clean_features is None:
        return mse + lpips_weight * lpips_distance(reconstruction, clean, lpips_net)
    return mse + lpips_weight * lpips_distance_to(reconstruction, clean_features, lpips_net)


class PGDEncoder(PixelAttack):
    name = "pgd-encoder"
    Config = PGDEncoderConfig

    def prepare(self, device: torch.device) -> PGDEncoder:
        if self.config.lpips_weight:
            lpips_network(self.config.lpips_net).to(device)
        return self

    def perturb(self, model: Defense, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cfg = self.config
        delta = uniform_start(images, cfg.eps, generator, cfg.random_start)
        with torch.no_grad():
            clean_features = lpips_features(images, cfg.lpips_net) if cfg.lpips_weight else None
        for _ in range(cfg.steps):
            delta.requires_grad_(True)
            loss = reconstruction_loss(model, images + delta, images, cfg.lpips_weight, cfg.lpips_net,
                                       clean_features).sum()
            (grad,) = torch.autograd.grad(loss, delta)
            delta = signed_step(delta, grad, cfg.step_size, images, cfg.eps)
        return images + delta

    def objective(self, model: Defense, adversarial: torch.Tensor, clean: torch.Tensor, seed: int) -> torch.Tensor:
        return reconstruction_loss(model, adversarial, clean, self.config.lpips_weight, self.config.lpips_net)
