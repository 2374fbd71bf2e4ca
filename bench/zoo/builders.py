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


BUILDERS = {"vae-kl": _train_vae_kl}


def train(name: str | None, quiet: bool = False) -> dict[str, Any]:
    if name not in BUILDERS:
        raise BenchError(f"no recipe to train {name!r}; trainable: {', '.join(BUILDERS)}")
    info = BUILDERS[name](quiet)
    record(name, WEIGHTS_DIR / name, info)
    return info
