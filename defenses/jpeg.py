"""JPEG compression as a purifier: the cheapest counter-measure to image protections (quality 75,
as in Sandoval-Segura et al. 2023 and Hönig et al. 2024, arXiv:2406.12027), then the wrapped
autoencoder. Encoding and decoding use libjpeg through Pillow on 8-bit images (4:2:0 chroma
subsampling, Pillow's default, as most saved JPEGs have).

JPEG is not differentiable; the adaptive attacker sees it through BPDA with the identity
gradient (straight-through: the true JPEG in the forward pass). Arguments: ``quality`` (75), and
``model`` / ``subfolder`` / ``trust_pickle`` of the wrapped AutoencoderKL (``vae-kl``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from defenses.purifier import Purifier, PurifierConfig, straight_through


@dataclass(frozen=True)
class JPEGConfig(PurifierConfig):
    quality: int = 75

    def __post_init__(self):
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality={self.quality}; JPEG quality lies in 1..100")


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image saved as a JPEG of ``quality`` in memory and read back, (N, 3, H, W) in [0, 1]."""
    import io

    import numpy as np
    from PIL import Image

    pixels = (images.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    decoded = []
    for array in pixels:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
        with Image.open(buffer) as image:
            decoded.append(np.asarray(image.convert("RGB")))
    return (torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).float() / 255).to(images.device, images.dtype)


class JPEGPurifier(Purifier):
    name = "jpeg"
    Config = JPEGConfig

    def purify(self, images: torch.Tensor) -> torch.Tensor:
        return straight_through(images, jpeg(images, self.config.quality))
