"""CLIP image-image similarity: the cosine of the CLIP image embeddings of each image and its
reference (as in the DINO/CLIP-I scores of DreamBooth, Ruiz et al. 2023, arXiv:2208.12242, and
AELIF's reported CLIP cosine, arXiv:2506.07706). Paired; 1 for identical images; higher is better."""

from __future__ import annotations

import torch

from bench.metrics.clip_common import ClipMetric
from bench.metrics.kinds import PairedMetric


class ClipSim(ClipMetric, PairedMetric):
    name = "clip-sim"
    higher_is_better = True

    def per_sample(self, images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
        return (self.embed(images) * self.embed(references)).sum(-1)
