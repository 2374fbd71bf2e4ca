"""The latent regulariser of a tokenizer's training loss: the beta-VAE KL term, or the variance
expansion (VE) loss of Li et al. 2026, "Taming Sampling Perturbations with Variance Expansion Loss for
Latent Diffusion Models" (arXiv 2603.21085, eqs. 9-11 as recovered in
``../shared/notes/ve-loss-method.md``):

    L = L_rec + lambda_1 * 1 / (sigma^2 + delta) + lambda_2 * exp(|z| - tau)

The VE term pushes the posterior variance away from the collapse (sigma^2 ~ 1e-8) a small KL weight
allows; the magnitude term keeps the sampled latents z from drifting far from the origin instead.
What the paper does not give, and ``VAETrainConfig`` therefore exposes: ``delta``, how both terms are
reduced over the latent elements (``"sum"`` over C x H x W then the batch mean, as diffusers'
``DiagonalGaussianDistribution.kl`` reduces the KL term; or ``"mean"`` over every element), and
whether the magnitude term is clamped so that it only acts above tau (``exp(max(|z| - tau, 0))``, as
the summaries describe it) or is the bare ``exp(|z| - tau)`` (nonzero everywhere).
"""

from __future__ import annotations

import math

import torch

REGULARISERS = ("kl", "ve")
REDUCTIONS = ("sum", "mean")


def reduce_elements(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-element values (N, C, H, W) to a scalar: ``sum`` over each latent then the batch mean, or the
    mean over every element."""
    if reduction == "sum":
        return values.flatten(1).sum(1).mean()
    if reduction == "mean":
        return values.mean()
    raise ValueError(f"reduction must be one of {REDUCTIONS}, not {reduction!r}")


def variance_expansion(variance: torch.Tensor, delta: float, reduction: str) -> torch.Tensor:
    """Eq. 9: ``1 / (sigma^2 + delta)``, largest (1/delta) where the variance collapses."""
    return reduce_elements(1.0 / (variance + delta), reduction)


def magnitude_penalty(z: torch.Tensor, tau: float, reduction: str, clamp: bool) -> torch.Tensor:
    """Eq. 10 on the sampled latents: ``exp(|z| - tau)``, or ``exp(max(|z| - tau, 0))`` with ``clamp``
    (constant, so without gradient, while |z| <= tau)."""
    excess = z.abs() - tau
    return reduce_elements(torch.exp(excess.clamp(min=0) if clamp else excess), reduction)


def regulariser_terms(posterior, z: torch.Tensor, config) -> dict[str, torch.Tensor]:
    """The weighted regulariser ``reg`` of ``config`` (a ``VAETrainConfig``) for a diffusers posterior and
    the latents ``z`` sampled from it, with its parts for logging."""
    if config.regulariser == "kl":
        kl = posterior.kl().mean()
        return {"reg": config.kl_weight * kl, "kl": kl}
    if config.regulariser == "ve":
        expansion = variance_expansion(posterior.var, config.ve_delta, config.ve_reduction)
        magnitude = magnitude_penalty(z, config.ve_tau, config.ve_reduction, config.ve_clamp)
        return {"reg": config.ve_lambda_variance * expansion + config.ve_lambda_magnitude * magnitude,
                "ve": expansion, "magnitude": magnitude}
    raise ValueError(f"regulariser must be one of {REGULARISERS}, not {config.regulariser!r}")


def check_config(config) -> None:
    """Reject a regulariser configuration that cannot train (ValueError naming the field)."""
    if config.regulariser not in REGULARISERS:
        raise ValueError(f"regulariser must be one of {REGULARISERS}, not {config.regulariser!r}")
    if config.ve_reduction not in REDUCTIONS:
        raise ValueError(f"ve_reduction must be one of {REDUCTIONS}, not {config.ve_reduction!r}")
    for field in ("kl_weight", "ve_lambda_variance", "ve_lambda_magnitude", "ve_delta"):
        value = getattr(config, field)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{field} must be a finite number >= 0, not {value}")
    if config.regulariser == "ve" and config.ve_delta <= 0 and config.ve_lambda_variance > 0:
        raise ValueError("ve_delta must be > 0: 1 / (sigma^2 + delta) is unbounded as sigma^2 -> 0")
