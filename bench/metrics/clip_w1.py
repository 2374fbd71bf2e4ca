"""AELIF's CLIP Wasserstein distance (arXiv:2506.07706; Borismartirosyan/aelif_augmentation), exactly
as its code computes it: ``scipy.stats.wasserstein_distance`` between the coordinate values of the
two CLIP image embeddings of a pair, i.e. a 1-D W1 between the empirical distributions of the D
numbers (384 for clip-proxy, 512 for ViT-B-32) of each vector. It ignores which coordinate holds
which value, so it is not a distance between images' distributions; report ``clip-sim`` and
``clip-fd`` beside it. Embeddings are L2-normalised. Paired; lower is better."""

from __future__ import annotations

import torch
from scipy.stats import wasserstein_distance

from bench.metrics.clip_common import ClipMetric
from bench.metrics.kinds import PairedMetric


class ClipW1(ClipMetric, PairedMetric):
    name = "clip-w1"
    higher_is_better = False

    def per_sample(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        a, b = self.embed(images).double().numpy(), self.embed(references).double().numpy()
        return torch.tensor([wasserstein_distance(x, y) for x, y in zip(a, b, strict=True)], dtype=torch.float64)
