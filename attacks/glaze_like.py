"""A Glaze-style cloak: an open approximation of a closed tool. Glaze (Shan et al. 2023, "Glaze:
Protecting Artists from Style Mimicry by Text-to-Image Models", arXiv:2302.04222) is released only as
an application; this follows the open re-implementation in IMPRESS (Cao et al. 2023, ``glaze.py``),
which minimises, with Adam,

    MSE(E(x + delta), E(Omega(x, T)))  +  alpha * max(LPIPS(x + delta, x) - p, 0)

where Omega(x, T) is x rendered toward a target style T by the text-to-image model itself (here:
img2img of x toward ``style_prompt`` at ``style_strength``, seed fixed per batch), so the cloak
pulls the image's latent toward a style-shifted version while an LPIPS penalty keeps it close to x.
The budget is perceptual (penalty form), not L-inf: ``eps`` defaults to 1 (no L-inf limit), and a
grid may set it to add one. Measured budgets (L-inf and LPIPS) are recorded for every image.

Defaults from the reference: p 0.05, alpha 30, 500 iterations, Adam lr 0.01 in its [-1, 1] pixels,
0.005 here in [0, 1]; LPIPS with the AlexNet network (the ``lpips`` package's default). The
style prompt's default ("a photo of a bag") is this suite's choice for Fashion-MNIST, which has no
artistic styles. Needs a diffusion model (the img2img-edit scenario).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.base import AttackConfig, LatentTextToImage, PixelAttack, check_unit_interval
from bench.metrics.lpips import check_lpips_net, lpips_distance, lpips_distance_to, lpips_features, lpips_network


@dataclass(frozen=True)
class GlazeLikeConfig(AttackConfig):
    eps: float = 1.0
    steps: int = 500
    lr: float = 0.005
    lpips_bound: float = 0.05
    lpips_weight: float = 30.0
    lpips_net: str = "alex"
    style_prompt: str = "a photo of a bag"
    style_strength: float = 0.6

    def __post_init__(self):
        super().__post_init__()
        check_unit_interval("glaze-like", "style_strength", self.style_strength)
        check_lpips_net("lpips_net", self.lpips_net)
        if self.steps < 1:
            raise ValueError(f"steps={self.steps}; use at least 1")


class GlazeLike(PixelAttack):
    name = "glaze-like"
    Config = GlazeLikeConfig

    def differentiates(self) -> str:
        return "text-to-image"

    def prepare(self, device: torch.device) -> GlazeLike:
        lpips_network(self.config.lpips_net).to(device)
        return self

    def _style_latent(self, model: LatentTextToImage, images: torch.Tensor, seed: int) -> torch.Tensor:
        with torch.no_grad():
            styled = model.edit(images, [self.config.style_prompt] * len(images), seed=seed,
                                strength=self.config.style_strength)
            return model.encode(styled.to(images.device)).float()

    def _loss(self, model: LatentTextToImage, adversarial: torch.Tensor, clean: torch.Tensor,
              target: torch.Tensor, clean_features: list[torch.Tensor] | None = None) -> torch.Tensor:
        cfg = self.config
        feature = (model.encode(adversarial).float() - target).pow(2).flatten(1).mean(1)
        perceptual = (lpips_distance(adversarial, clean, cfg.lpips_net) if clean_features is None
                      else lpips_distance_to(adversarial, clean_features, cfg.lpips_net))
        excess = (perceptual - cfg.lpips_bound).clamp(min=0)
        return feature + cfg.lpips_weight * excess

    def perturb(self, model: LatentTextToImage, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        cfg = self.config
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        target = self._style_latent(model, images, seed)
        delta = torch.zeros_like(images, requires_grad=True)
        optimizer = torch.optim.Adam([delta], lr=cfg.lr)
        with torch.no_grad():
            clean_features = lpips_features(images, cfg.lpips_net)
        for _ in range(cfg.steps):
            loss = self._loss(model, (images + delta).clamp(0, 1), images, target, clean_features).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                delta.clamp_(-cfg.eps, cfg.eps)
        return (images + delta.detach()).clamp(0, 1)

    def objective(self, model: LatentTextToImage, adversarial: torch.Tensor, clean: torch.Tensor, seed: int) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=torch.Generator().manual_seed(seed)))
        return -self._loss(model, adversarial, clean, self._style_latent(model, clean, seed))
