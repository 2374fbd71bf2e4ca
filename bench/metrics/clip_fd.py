"""Fréchet distance between two sets of CLIP image embeddings (FD in CLIP space, Kynkäänniemi et
al. 2023, "The Role of ImageNet Classes in Fréchet Inception Distance", arXiv:2203.06026), with
FID's statistic (``bench.metrics.fid.frechet_distance``) on L2-normalised embeddings. Set; lower is
better."""

from __future__ import annotations

import numpy as np
import torch

from bench.metrics.clip_common import ClipMetric
from bench.metrics.fid import frechet_distance
from bench.metrics.kinds import SetMetric


class ClipFD(ClipMetric, SetMetric):
    name = "clip-fd"
    higher_is_better = False

    def __init__(self, config=None):
        super().__init__(config)
        self.feature_space = f"clip:{self.config.model}"

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed(images)

    def from_features(self, features: torch.Tensor, reference_features: torch.Tensor) -> float:
        return frechet_distance(features.double().numpy(), reference_features.double().numpy())

    @staticmethod
    def statistic(features: np.ndarray, reference: np.ndarray) -> float:
        return frechet_distance(features, reference)
