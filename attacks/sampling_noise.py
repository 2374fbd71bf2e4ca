"""Gaussian noise on a sampling trajectory: the VE-loss paper's sampling perturbation (Li et al. 2026,
"Taming Sampling Perturbations with Variance Expansion Loss for Latent Diffusion Models", arXiv
2603.21085). Small errors that accumulate along a diffusion sampler push the latents off the data
manifold; the paper's claim is that a tokenizer whose posterior variance has not collapsed decodes
such latents gracefully. This attack adds that error on purpose and is the control row of the
``sampling-perturbation`` scenario: the adversarial ``sampling-pgd`` must do more at the same scale.
"""

from __future__ import annotations

import torch

from bench.base import SamplerStep, SamplingAttack


class SamplingNoise(SamplingAttack):
    """x_t <- x_t + scale * n, n ~ N(0, I), seeded, at the attacked steps.

    Arguments: ``scale`` (latent units: the diffusion model's scaled, unit-variance latents),
    ``start`` / ``stop`` (the attacked fraction of the trajectory; default all of it).
    """

    name = "sampling-noise"
    uses_model = False

    def perturb_latents(self, latents: torch.Tensor, step: SamplerStep, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(latents.shape, generator=generator).to(latents.device, latents.dtype)
        return latents + self.config.scale * noise
