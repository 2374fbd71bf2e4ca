"""AELIF's distribution distance (arXiv:2506.07706; Borismartirosyan/aelif_augmentation,
``compute_wasserstein_distance_on_matrices``): ``scipy.stats.wasserstein_distance_nd`` between two sets
of CLIP image embeddings, W1 with the Euclidean ground distance, as the reference computes it between
the generations of a prompt across seeds with and without a perturbation. Embeddings are the
unnormalised ``encode_image`` output, as the reference's (``normalize: true`` L2-normalises them, as
``clip-fd`` does). Set; lower is better.

For two sets of equal size with uniform weights W1 is an assignment problem, so the bootstrap's
statistic solves it with ``scipy.optimize.linear_sum_assignment`` (the same number, tested, in a
fraction of the linear program's time); sets of unequal size go to ``wasserstein_distance_nd``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from scipy.stats import wasserstein_distance_nd

from bench.metrics.clip_common import ClipMetric, ClipMetricConfig
from bench.metrics.kinds import SetMetric


@dataclass(frozen=True)
class ClipW1NDConfig(ClipMetricConfig):
    normalize: bool = False


def assignment_w1(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between two equal-size point sets with uniform weights (Euclidean ground distance)."""
    if len(a) != len(b):
        return float(wasserstein_distance_nd(a, b))
    cost = cdist(a, b)
    rows, columns = linear_sum_assignment(cost)
    return float(cost[rows, columns].mean())


class ClipW1ND(ClipMetric, SetMetric):
    name = "clip-w1-nd"
    Config = ClipW1NDConfig
    higher_is_better = False

    def __init__(self, config=None):
        super().__init__(config)
        self.feature_space = f"clip{'' if self.config.normalize else '-unnormalized'}:{self.config.model}"

    def features(self, images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([self.clip_model.encode_image(chunk, normalize=self.config.normalize).float().cpu()
                              for chunk in images.split(256)])

    def from_features(self, features: torch.Tensor, reference_features: torch.Tensor) -> float:
        return float(wasserstein_distance_nd(features.double().numpy(), reference_features.double().numpy()))

    @staticmethod
    def statistic(features: np.ndarray, reference: np.ndarray) -> float:
        return assignment_w1(features, reference)
