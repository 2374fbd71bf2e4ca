"""Peak signal-to-noise ratio per image, through torchmetrics."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import peak_signal_noise_ratio

from bench.metrics.kinds import PairedMetric


class PSNR(PairedMetric):
    """PSNR in dB for images in [0, 1], one value per image (data_range 1)."""

    name = "psnr"
    higher_is_better = True

    def per_sample(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        return peak_signal_noise_ratio(images, references, data_range=1.0, reduction="none",
                                       dim=(1, 2, 3))
