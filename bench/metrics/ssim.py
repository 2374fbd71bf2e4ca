"""Structural similarity per image, through torchmetrics."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from bench.metrics.kinds import PairedMetric


class SSIM(PairedMetric):
    """SSIM (Gaussian window 11, sigma 1.5, the Wang et al. 2004 constants), one value per image."""

    name = "ssim"
    higher_is_better = True

    def per_sample(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        return structural_similarity_index_measure(images, references, data_range=1.0, reduction="none")
