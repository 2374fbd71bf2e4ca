"""The training objective of Robustadv (Briglia et al., arXiv:2505.21742, "What is Adversarial Training
for Diffusion Models?"): DDPM's epsilon loss plus an *equivariance* regulariser,

    L = ||eps_theta(x_t, t) - eps||^2 + lambda ||eps_theta(x_t + sqrt(1 - abar_t) w, t) - (eps_theta(x_t, t) + w)||^2,

with w an eps-space perturbation in the box [-r(t), r(t)]: a shift of the noise by w moves x_t by
sqrt(1 - abar_t) w, and the predicted noise must move by w with it (a classifier's invariance would ask
it not to move; ``kind="invariant"`` is that ablation, the paper's negative control). ``random``
draws w uniformly in the box (Robust_ran); ``adversarial`` starts there and takes one FGSM step of
``step_size * r(t)`` up the gradient of ||eps_theta(x_t^w) - eps_theta(x_t)||^2 (detached), projected
back into the box (Robust_adv).

What the paper's text fixes and what is ours (``shared/notes/robustadv-method.md``): the equivariant
target, eps-space w, one FGSM step from a random start, lambda 0.3, exponent rho 2 and a minimum bias
8/255 come from third-party summaries. The radius formula r(t) = scale (1 - abar_t)^(rho/2) + b with
b ~ U[bias_min, bias_max] per image, a constant lambda (the paper's lambda_t form was not found), the
FGSM step (a full radius) and no stop-gradient on eps_theta(x_t) in the target are our choices, all
exposed here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.errors import BenchError

KINDS = ("none", "equivariant", "invariant")
PERTURBATIONS = ("adversarial", "random")


@dataclass(frozen=True)
class RegulariserConfig:
    kind: str = "none"
    perturbation: str = "adversarial"
    weight: float = 0.3
    rho: float = 2.0
    radius_scale: float = 1.0
    bias_min: float = 8 / 255
    bias_max: float = 8 / 255
    step_size: float = 1.0
    detach_target: bool = False


def check(config: RegulariserConfig, alphas_cumprod: torch.Tensor) -> None:
    """Reject unknown kinds and any schedule whose radius is negative at some timestep."""
    if config.kind not in KINDS:
        raise BenchError(f"regulariser kind {config.kind!r} is unknown; use one of {', '.join(KINDS)}")
    if config.perturbation not in PERTURBATIONS:
        raise BenchError(f"regulariser perturbation {config.perturbation!r} is unknown; use "
                         f"{' or '.join(PERTURBATIONS)}")
    if config.kind == "none":
        return
    if config.weight < 0 or config.step_size < 0:
        raise BenchError(f"regulariser weight {config.weight} and step_size {config.step_size} must be >= 0")
    if config.bias_max < config.bias_min:
        raise BenchError(f"regulariser bias_max {config.bias_max} is below bias_min {config.bias_min}; swap them")
    smallest = float(radius(alphas_cumprod, config, torch.full_like(alphas_cumprod, config.bias_min)).min())
    if smallest < 0:
        raise BenchError(f"the radius schedule (scale {config.radius_scale}, rho {config.rho}, bias_min "
                         f"{config.bias_min}) makes r(t) negative ({smallest:.4g}); use a scale and bias >= 0")


def radius(abar: torch.Tensor, config: RegulariserConfig, bias: torch.Tensor) -> torch.Tensor:
    return config.radius_scale * (1 - abar).clamp(min=0) ** (config.rho / 2) + bias


def objective(unet, alphas_cumprod: torch.Tensor, clean: torch.Tensor, generator: torch.Generator,
              config: RegulariserConfig) -> dict[str, torch.Tensor]:
    """The loss for clean images in [-1, 1], with the noise, timesteps, bias and perturbation drawn from
    ``generator``: ``loss`` (to minimise), and its ``ddpm`` and ``regulariser`` terms (logged)."""
    noise = torch.randn(clean.shape, generator=generator).to(clean.device)
    timesteps = torch.randint(0, len(alphas_cumprod), (len(clean),), generator=generator).to(clean.device)
    a = alphas_cumprod.to(clean.device)[timesteps].view(-1, 1, 1, 1)
    noisy = a.sqrt() * clean + (1 - a).sqrt() * noise
    predicted = unet(noisy, timesteps).sample
    ddpm = torch.nn.functional.mse_loss(predicted, noise)
    if config.kind == "none":
        return {"loss": ddpm}
    low, high = config.bias_min, config.bias_max
    bias = (low + (high - low) * torch.rand((len(clean), 1, 1, 1), generator=generator)).to(clean.device)
    r = radius(a, config, bias)
    w = (torch.rand(clean.shape, generator=generator).to(clean.device) * 2 - 1) * r
    if config.perturbation == "adversarial":
        w = adversarial_step(unet, noisy, timesteps, a, predicted.detach(), w, r, config.step_size)
    perturbed = unet(noisy + (1 - a).sqrt() * w, timesteps).sample
    reference = predicted.detach() if config.detach_target else predicted
    target = reference + w if config.kind == "equivariant" else reference
    regulariser = torch.nn.functional.mse_loss(perturbed, target)
    return {"loss": ddpm + config.weight * regulariser, "ddpm": ddpm.detach(), "regulariser": regulariser.detach()}


def adversarial_step(unet, noisy: torch.Tensor, timesteps: torch.Tensor, a: torch.Tensor, predicted: torch.Tensor,
                     start: torch.Tensor, r: torch.Tensor, step_size: float) -> torch.Tensor:
    """One FGSM step from ``start`` that increases ||eps_theta(x_t + sqrt(1 - a) w) - eps_theta(x_t)||^2,
    projected into [-r, r]; the weights get no gradient from it."""
    w = start.detach().requires_grad_(True)
    with torch.enable_grad():
        gap = (unet(noisy.detach() + (1 - a).sqrt() * w, timesteps).sample - predicted).pow(2).sum()
        (gradient,) = torch.autograd.grad(gap, w)
    return torch.maximum(torch.minimum(w.detach() + step_size * r * gradient.sign(), r), -r)
