"""``clip-w1`` on the unnormalised CLIP image embeddings: AELIF's per-pair distance exactly as its
reference code computes it (``scipy.stats.wasserstein_distance`` between the coordinate values of
``model.encode_image(...)``, which it never normalises; arXiv:2506.07706,
Borismartirosyan/aelif_augmentation ``w_distance``). ``clip-w1`` normalises first, so its values are
on another scale; see ``bench.metrics.clip_w1`` for what the number ignores. Paired; lower is better."""

from __future__ import annotations

import torch
from scipy.stats import wasserstein_distance

from bench.metrics.clip_w1 import ClipW1


class ClipW1Raw(ClipW1):
    name = "clip-w1-raw"

    def unnormalized(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self.clip_model.encode_image(chunk, normalize=False).float().cpu()
                              for chunk in images.split(256)])

    def per_sample(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        a, b = self.unnormalized(images).double().numpy(), self.unnormalized(references).double().numpy()
        return torch.tensor([wasserstein_distance(x, y) for x, y in zip(a, b, strict=True)], dtype=torch.float64)
