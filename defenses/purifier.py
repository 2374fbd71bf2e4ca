"""The base of purification defenses: transform the input image, then encode it with an autoencoder.

Cheap purification is what image protections lose to in practice (Hönig et al. 2024, "Adversarial
Perturbations Cannot Reliably Protect Artists From Generative AI", arXiv:2406.12027); a benchmark that
omits it overstates them. Each purifier wraps any diffusers ``AutoencoderKL`` (``model``: a zoo
name such as ``vae-kl`` or ``srl-vae``, a folder or a hub id) and differs only in ``purify``.

A white-box (adaptive) attacker differentiates ``attack_view``: the purifier itself where it is
differentiable, otherwise a stated BPDA approximation (Athalye et al. 2018, arXiv:1802.00420).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

import torch

from bench.base import Defense
from defenses.vae import AutoencoderKLDefense, VAEConfig


@dataclass(frozen=True)
class PurifierConfig:
    model: str = "vae-kl"
    subfolder: str = ""
    trust_pickle: bool = False


class Purifier(Defense):
    Config = PurifierConfig

    def __init__(self, config=None):
        super().__init__(config)
        self.inner = AutoencoderKLDefense(VAEConfig(model=self.config.model, subfolder=self.config.subfolder,
                                                    trust_pickle=self.config.trust_pickle))

    def purify(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def to(self, device, dtype: torch.dtype = torch.float32) -> Purifier:
        self.inner.to(device, dtype)
        return self

    def check_images(self, images: torch.Tensor) -> None:
        self.inner.check_images(images)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.inner.encode(self.purify(images))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.inner.decode(latents)

    def weights(self) -> dict[str, str]:
        return self.inner.weights()

    def view_identity(self) -> dict:
        return {"purifier": self.name, "config": dataclasses.asdict(self.config)}


def straight_through(images: torch.Tensor, purified: torch.Tensor) -> torch.Tensor:
    """``purified`` in the forward pass, the identity's gradient in the backward pass (BPDA)."""
    return images + (purified - images).detach()


def content_generator(image: torch.Tensor, seed: int) -> torch.Generator:
    """A generator seeded by an image's 8-bit content: the same image always gets the same noise,
    whatever else ran before (so resumed runs match), and a changed image gets fresh noise."""
    pixels = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy().tobytes()
    digest = hashlib.sha256(pixels).digest()
    return torch.Generator().manual_seed((int.from_bytes(digest[:8], "little") ^ seed) & (2**63 - 1))
