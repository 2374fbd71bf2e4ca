"""Decoding failure: the share of generations the image-text model cannot name with confidence, the
VE-loss paper's symptom of latents pushed off the manifold (arXiv 2603.21085) measured without a
human. Each image's class probabilities are CLIP's zero-shot softmax over "a photo of a {class}"
(cosines times the model's logit scale, Radford et al. 2021, arXiv:2103.00020); the row is 1.0 where
the top probability is below ``threshold``, else 0.0. Kind ``label`` (it needs the class names, not
the labels); its mean is the failure rate. Lower is better."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.metrics.clip_common import ClipMetric, ClipMetricConfig
from bench.metrics.kinds import LabelMetric


@dataclass(frozen=True)
class ZeroShotUnsureConfig(ClipMetricConfig):
    threshold: float = 0.5

    def __post_init__(self):
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold={self.threshold} must lie in (0, 1] (a probability)")


class ZeroShotUnsure(ClipMetric, LabelMetric):
    name = "zero-shot-unsure"
    higher_is_better = False
    Config = ZeroShotUnsureConfig

    def class_probabilities(self, images: torch.Tensor, class_names: tuple[str, ...]) -> torch.Tensor:
        """(N, K) zero-shot class probabilities."""
        model = self.clip_model
        with torch.no_grad():
            texts = model.encode_text([f"a photo of a {name}" for name in class_names]).float().cpu()
            logits = self.embed(images) @ texts.T * float(model.logit_scale.exp())
        return logits.softmax(-1)

    def per_sample_labels(self, images: torch.Tensor, labels: torch.Tensor,
                          class_names: list[str] | tuple[str, ...]) -> torch.Tensor:
        top = self.class_probabilities(images, tuple(class_names)).amax(-1)
        return (top < self.config.threshold).float()
