"""How fragile an autoencoder's encoder is: ``bench zoo fragility NAME [--steps N] [--json]``.

Issue 18. The protections and poisons this suite studies work on Stable Diffusion because a small
L-inf perturbation moves SD-VAE's latent far. Two numbers per budget eps, on a fixed, seeded set of
image pairs (source, anchor) of different classes from the test split:

- ``nightshade_fraction``: the fraction of the latent distance to the anchor's latent that
  Nightshade's optimisation closes, ``(d0 - d) / d0`` with ``d0 = ||E(x) - E(a)||_2`` and
  ``d = ||E(x') - E(a)||_2``, E the posterior mean. The schedule is nightshade-release ``opt.py``'s
  (``PoisonGeneration.generate_one``): the perturbation starts at zero, each step moves it by
  ``sign(grad)`` times a step that decays linearly from the full budget to 1/100 of it
  (``step_size - (step_size - step_size / 100) / t_size * i``), projected to the ball; the loss is
  the L2 distance of the latent mean to the anchor's; 500 steps in the release (``--steps``).
  1 means the poison encodes exactly like the anchor, 0 that it did not move toward it; it can be
  negative (an image moved away).
- ``photoguard_shift``: the latent shift of PhotoGuard's encoder attack (``attacks/photoguard.py``,
  target latent zero, its default step size) relative to the clean latent norm,
  ``||E(x') - E(x)||_2 / ||E(x)||_2``, with the same number of steps.

Both are measured on the 8-bit-quantised perturbed images (what a protected file holds);
``nightshade_fraction_unquantised`` gives the optimiser's own result. Images are resized (bilinear,
antialiased) to the model's ``sample_size`` unless ``size`` says otherwise, so a model trained at
64x64, or SD-VAE at 256x256, sees images of its size. Means carry bootstrap 95% intervals
(``bench.stats.mean_interval``) over the pairs.

Any diffusers AutoencoderKL works, through ``defenses.vae`` (a zoo name, a local folder or a hub id)::

    bench zoo fragility vae-kl --json
    bench zoo fragility stabilityai/sd-vae-ft-mse --size 256 --device cuda
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from bench.base import Defense, quantise_into_ball, signed_step
from bench.data import load_fashion_mnist
from bench.errors import BenchError
from bench.stats import mean_interval

DEFAULT_EPS = (4 / 255, 8 / 255, 16 / 255)


@dataclass(frozen=True)
class FragilityConfig:
    pairs: int = 16
    eps: tuple[float, ...] = DEFAULT_EPS
    steps: int = 500
    seed: int = 0
    size: int | None = None
    photoguard: bool = True
    pool: int = 1000

    def __post_init__(self):
        if self.pairs < 1 or self.steps < 1:
            raise ValueError("pairs and steps must be at least 1")
        if not all(0 < e <= 1 for e in self.eps):
            raise ValueError(f"eps={self.eps}: every budget must be in (0, 1]")


def image_pairs(pairs: int, seed: int = 0, pool: int = 1000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``pairs`` (source, anchor) test images of different classes, drawn by a seeded permutation of
    the first ``pool`` test images: (sources, anchors, (pairs, 2) labels)."""
    data = load_fashion_mnist("test", pool)
    order = np.random.default_rng(seed).permutation(pool).tolist()
    sources, anchors = [], []
    while len(sources) < pairs:
        if len(order) < 2:
            raise BenchError(f"fragility: {pool} images do not give {pairs} pairs; raise the pool")
        source = order.pop(0)
        anchor = next((i for i in order if data.labels[i] != data.labels[source]), None)
        if anchor is None:
            raise BenchError("fragility: no image of another class left for a pair")
        order.remove(anchor)
        sources.append(source)
        anchors.append(anchor)
    labels = torch.stack([data.labels[sources], data.labels[anchors]], dim=1)
    return data.images[sources], data.images[anchors], labels


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    resized = torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                                              align_corners=False)
    return (resized.clamp(0, 1) * 255).round() / 255


def _distance(model: Defense, images: torch.Tensor, anchor_latents: torch.Tensor) -> torch.Tensor:
    return (model.encode(images).float() - anchor_latents).flatten(1).norm(dim=1)


def nightshade_perturb(model: Defense, images: torch.Tensor, anchor_latents: torch.Tensor, eps: float,
                       steps: int) -> torch.Tensor:
    """nightshade-release opt.py's optimisation, batched (the loss is a per-image norm, so each image
    gets the gradient it would get alone): zero start, signed steps from ``eps`` decaying linearly to
    ``eps / 100``, L-inf projection and [0, 1] clamping. Returns the unquantised perturbed images."""
    delta = torch.zeros_like(images)
    for step in range(steps):
        step_size = eps - (eps - eps / 100) / steps * step
        delta.requires_grad_(True)
        with torch.enable_grad():
            loss = _distance(model, images + delta, anchor_latents).sum()
            (grad,) = torch.autograd.grad(loss, delta)
        delta = signed_step(delta, -grad, step_size, images, eps)
    return (images + delta).detach()


def _interval(values: torch.Tensor, seed: int) -> dict[str, float]:
    return mean_interval(values.double().numpy(), seed=seed).as_dict()


def measure(model: Defense, config: FragilityConfig = FragilityConfig(), batch_size: int = 16) -> dict[str, Any]:
    """Fragility of ``model`` (a Defense with ``encode``): per eps, the Nightshade fraction and the
    PhotoGuard shift, each as a mean with interval and per pair."""
    from attacks.photoguard import PhotoGuard

    sources, anchors, labels = image_pairs(config.pairs, config.seed, config.pool)
    size = config.size or getattr(getattr(getattr(model, "vae", None), "config", None), "sample_size", None) or 32
    sources, anchors = resize(sources, int(size)), resize(anchors, int(size))
    device = getattr(model, "device", torch.device("cpu"))
    sources, anchors = sources.to(device), anchors.to(device)
    with torch.no_grad():
        clean = torch.cat([model.encode(c).float() for c in sources.split(batch_size)])
        anchor_latents = torch.cat([model.encode(c).float() for c in anchors.split(batch_size)])
    start_distance = (clean - anchor_latents).flatten(1).norm(dim=1)
    clean_norm = clean.flatten(1).norm(dim=1)
    result: dict[str, Any] = {"config": {**asdict(config), "size": int(size)},
                              "pairs": labels.tolist(), "latent_shape": list(clean.shape[1:]),
                              "start_distance": _interval(start_distance.cpu(), config.seed),
                              "clean_latent_norm": _interval(clean_norm.cpu(), config.seed), "per_eps": []}
    for eps in config.eps:
        began = time.time()
        poisoned = torch.cat([nightshade_perturb(model, s, a, eps, config.steps)
                              for s, a in zip(sources.split(batch_size), anchor_latents.split(batch_size),
                                              strict=True)])
        quantised = quantise_into_ball(poisoned, sources, eps)
        with torch.no_grad():
            raw_distance = torch.cat([_distance(model, p, a) for p, a in
                                      zip(poisoned.split(batch_size), anchor_latents.split(batch_size), strict=True)])
            distance = torch.cat([_distance(model, p, a) for p, a in
                                  zip(quantised.split(batch_size), anchor_latents.split(batch_size), strict=True)])
        fraction = ((start_distance - distance) / start_distance).cpu()
        row: dict[str, Any] = {
            "eps": eps, "eps_255": round(eps * 255, 3),
            "nightshade_fraction": _interval(fraction, config.seed),
            "nightshade_fraction_unquantised": _interval(((start_distance - raw_distance) / start_distance).cpu(),
                                                         config.seed),
            "nightshade_distance": _interval(distance.cpu(), config.seed),
            "nightshade_fraction_per_pair": [round(float(v), 5) for v in fraction],
            "nightshade_seconds": round(time.time() - began, 1)}
        if config.photoguard:
            began = time.time()
            attack = PhotoGuard(PhotoGuard.make_config({"eps": eps, "steps": config.steps}))
            protected = torch.cat([attack(model, chunk, seed=config.seed + index)
                                   for index, chunk in enumerate(sources.split(batch_size))])
            with torch.no_grad():
                moved = torch.cat([model.encode(c).float() for c in protected.split(batch_size)])
            shift = ((moved - clean).flatten(1).norm(dim=1) / clean_norm).cpu()
            row["photoguard_shift"] = _interval(shift, config.seed)
            row["photoguard_shift_per_pair"] = [round(float(v), 5) for v in shift]
            row["photoguard_seconds"] = round(time.time() - began, 1)
        result["per_eps"].append(row)
    return result


def fragility(model: str, config: FragilityConfig = FragilityConfig(), device: str = "cpu") -> dict[str, Any]:
    """``measure`` for a zoo name, a local diffusers AutoencoderKL folder or a hub id."""
    from defenses.vae import AutoencoderKLDefense

    defense = AutoencoderKLDefense(AutoencoderKLDefense.make_config({"model": model})).to(device)
    return {"model": model, **measure(defense, config), "weights": defense.weights()}


def format_table(result: dict[str, Any]) -> str:
    """A markdown table: eps, Nightshade fraction, PhotoGuard relative shift (mean [interval])."""
    def cell(value: dict[str, float] | None) -> str:
        return "" if value is None else f"{value['value']:.3f} [{value['low']:.3f}, {value['high']:.3f}]"

    lines = [f"{result['model']}: {len(result['pairs'])} pairs, {result['config']['steps']} steps, "
             f"{result['config']['size']}x{result['config']['size']} input, latents {result['latent_shape']}, "
             f"start distance {result['start_distance']['value']:.2f}",
             "| eps | Nightshade fraction closed ↑ | PhotoGuard shift / clean norm ↑ |", "|---|---|---|"]
    for row in result["per_eps"]:
        lines.append(f"| {row['eps_255']:g}/255 | {cell(row['nightshade_fraction'])} | "
                     f"{cell(row.get('photoguard_shift'))} |")
    return "\n".join(lines)
