"""An adversarial sampling perturbation: at each attacked step, an L-inf perturbation delta of x_t that
maximises the denoiser's loss, the adversarial variant of the VE-loss paper's sampling perturbation
(Li et al. 2026, arXiv 2603.21085) and of Robustadv's sampling attack (Briglia et al. 2025, arXiv
2505.21742).

The denoiser's loss at x_t is ``|| eps(x_t) - eps_true ||^2``. Moving x_t to x_t + delta adds
delta / sigma_t to the noise it carries (sigma_t = sqrt(1 - alpha_bar_t)), so at the perturbed point
the loss is ``|| eps(x_t + delta) - eps_true - delta / sigma_t ||^2``; the true noise is unknown while
sampling and is estimated by the prediction at the unperturbed point (``objective: loss``, the
default). A denoiser that treats the perturbation as the noise it is (equivariance, Robustadv's
regulariser) scores 0 on it. ``objective: deviation`` maximises ``|| eps(x_t + delta) - eps(x_t) ||^2``
instead, the change of the prediction alone: on ``ldm-t2i`` it harms less than Gaussian noise of the
same size, since the directions the denoiser reacts to most are those it then removes
(docs/reproductions/ve-loss.md).

Both gradients vanish at delta = 0 for the deviation, so the gradient is first taken at a uniform
random point of the ball (Madry et al. 2018, arXiv:1706.06083). With one iteration (the default) the
perturbation is then ``scale * sign(gradient)``: every element moves by exactly ``scale``, the RMS of
``sampling-noise`` at the same scale, so the two rows compare like for like. With more, it is PGD
from that random point.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.base import SamplerStep, SamplingAttack, SamplingAttackConfig

OBJECTIVES = ("loss", "deviation")


@dataclass(frozen=True)
class SamplingPGDConfig(SamplingAttackConfig):
    iterations: int = 1
    objective: str = "loss"

    def __post_init__(self):
        super().__post_init__()
        if self.iterations < 1:
            raise ValueError(f"iterations={self.iterations}: use at least 1")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective={self.objective!r}: use one of {', '.join(OBJECTIVES)}")


class SamplingPGD(SamplingAttack):
    """delta in [-scale, scale]^d maximising the denoiser's loss at x_t + delta (``objective``): one
    iteration is ``scale * sign`` of the gradient at a uniform random point of the ball; more are PGD
    steps of 2.5 scale / iterations from that point, each projected to the ball.

    Arguments: ``scale`` (L-inf radius in the diffusion model's latent units), ``iterations``,
    ``objective`` (``loss`` or ``deviation``), ``start`` / ``stop`` (the attacked fraction of the
    trajectory).
    """

    name = "sampling-pgd"
    uses_model = True
    Config = SamplingPGDConfig

    def perturb_latents(self, latents: torch.Tensor, step: SamplerStep, generator: torch.Generator) -> torch.Tensor:
        scale, iterations = self.config.scale, self.config.iterations
        shift = 1.0 / step.noise_std if self.config.objective == "loss" else 0.0
        with torch.no_grad():
            reference = step.predict_noise(latents).detach()
        delta = ((torch.rand(latents.shape, generator=generator) * 2 - 1) * scale).to(latents.device, latents.dtype)
        for _ in range(iterations):
            delta.requires_grad_(True)
            loss = (step.predict_noise(latents + delta) - reference - shift * delta).pow(2).sum()
            gradient, = torch.autograd.grad(loss, delta)
            if iterations == 1:
                return latents + scale * gradient.sign()
            delta = (delta.detach() + 2.5 * scale / iterations * gradient.sign()).clamp(-scale, scale)
        return latents + delta
