"""An adversarial sampling perturbation: at each attacked step, an L-inf PGD perturbation of x_t that
maximises the denoiser's error, the adversarial variant of the VE-loss paper's sampling perturbation
(Li et al. 2026, arXiv 2603.21085) and of Robustadv's sampling attack (Briglia et al. 2025, arXiv
2505.21742).

The true noise of x_t is unknown while sampling, so the denoiser's loss is measured against its own
prediction at the unperturbed x_t: ``|| eps(x_t + delta) - eps(x_t) ||^2``, the deviation that the
sampler's next update turns into a wrong step. The gradient of that loss is zero at delta = 0, so the
gradient is first taken at a uniform random point of the ball (Madry et al. 2018, arXiv:1706.06083).
With one iteration (the default) the perturbation is then ``scale * sign(gradient)``: every element
moves by exactly ``scale``, the RMS of ``sampling-noise`` at the same scale, so the two rows compare
like for like. With more, it is PGD from that random point.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.base import NoisePredictor, SamplingAttack, SamplingAttackConfig


@dataclass(frozen=True)
class SamplingPGDConfig(SamplingAttackConfig):
    iterations: int = 1

    def __post_init__(self):
        super().__post_init__()
        if self.iterations < 1:
            raise ValueError(f"iterations={self.iterations}: use at least 1")


class SamplingPGD(SamplingAttack):
    """delta in [-scale, scale]^d maximising ``||eps(x_t + delta) - eps(x_t)||^2``: one iteration is
    ``scale * sign`` of the gradient at a uniform random point of the ball; more are PGD steps of
    2.5 scale / iterations from that point, each projected to the ball.

    Arguments: ``scale`` (L-inf radius in the diffusion model's latent units), ``iterations``,
    ``start`` / ``stop`` (the attacked fraction of the trajectory).
    """

    name = "sampling-pgd"
    uses_model = True
    Config = SamplingPGDConfig

    def perturb_latents(self, latents: torch.Tensor, predict_noise: NoisePredictor,
                        generator: torch.Generator) -> torch.Tensor:
        scale, iterations = self.config.scale, self.config.iterations
        with torch.no_grad():
            reference = predict_noise(latents).detach()
        delta = ((torch.rand(latents.shape, generator=generator) * 2 - 1) * scale).to(latents.device, latents.dtype)
        for _ in range(iterations):
            delta.requires_grad_(True)
            deviation = (predict_noise(latents + delta) - reference).pow(2).sum()
            gradient, = torch.autograd.grad(deviation, delta)
            if iterations == 1:
                return latents + scale * gradient.sign()
            delta = (delta.detach() + 2.5 * scale / iterations * gradient.sign()).clamp(-scale, scale)
        return latents + delta
