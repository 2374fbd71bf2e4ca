"""Fréchet Inception Distance (Heusel et al. 2017, arXiv:1706.08500) through torchmetrics.

Features come from the real FID Inception. With fewer samples than feature dimensions (every grid
cell here: 16 to 1,000 images against 2,048 dimensions) the value and its bootstrap interval use
the Fréchet distance in its low-rank form, which is exact: tr sqrt(S1 S2) is the sum of the singular
values of A B^T / sqrt((n-1)(m-1)), with A, B the centred feature matrices. torchmetrics computes the
same number through the general eigenvalues of the 2,048 x 2,048 product S1 S2, which took 8-20 s a
cell on 2 CPU cores (the largest single cost of ``grids/default.yaml``; BENCHMARKS.md), against under
a second; it stays the path for larger sets and the reference the tests hold the low-rank form to.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from bench.metrics.inception import FEATURE_DIM, InceptionSetMetric


class PrecomputedFeatures(torch.nn.Module):
    """Lets torchmetrics take features already computed by the FID Inception (so they are cached)."""

    def __init__(self, dim: int = FEATURE_DIM):
        super().__init__()
        self.num_features = dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def frechet_distance(features: np.ndarray, reference: np.ndarray) -> float:
    a = features - features.mean(0)
    b = reference - reference.mean(0)
    mean_term = float(np.sum((features.mean(0) - reference.mean(0)) ** 2))
    trace_a = float(np.sum(a * a)) / (len(a) - 1)
    trace_b = float(np.sum(b * b)) / (len(b) - 1)
    cross = np.linalg.svd(a @ b.T, compute_uv=False).sum() / np.sqrt((len(a) - 1) * (len(b) - 1))
    return mean_term + trace_a + trace_b - 2 * float(cross)


class FID(InceptionSetMetric):
    name = "fid"

    def from_features(self, features: torch.Tensor, reference_features: torch.Tensor) -> float:
        if min(len(features), len(reference_features)) <= features.shape[1]:
            return frechet_distance(features.double().cpu().numpy(), reference_features.double().cpu().numpy())
        return self.torchmetrics_value(features, reference_features)

    @staticmethod
    def torchmetrics_value(features: torch.Tensor, reference_features: torch.Tensor) -> float:
        fid = FrechetInceptionDistance(feature=PrecomputedFeatures(features.shape[1]))
        fid.update(reference_features.double(), real=True)
        fid.update(features.double(), real=False)
        return float(fid.compute())

    @staticmethod
    def statistic(features: np.ndarray, reference: np.ndarray) -> float:
        return frechet_distance(features, reference)
