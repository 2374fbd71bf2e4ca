"""CLIPScore (Hessel et al. 2021, "CLIPScore: A Reference-free Evaluation Metric for Image
Captioning", arXiv:2104.08718), as torchmetrics' ``CLIPScore`` computes it: 100 x the cosine of the
image and caption embeddings, clamped at 0 (torchmetrics omits the paper's w = 2.5 rescaling)."""

from __future__ import annotations

import torch

from bench.errors import BenchError
from bench.metrics.clip_common import ClipMetric
from bench.metrics.kinds import TextMetric


class ClipScore(ClipMetric, TextMetric):
    """Kind ``text``: ``per_sample_text(images, captions)`` -> (N,) in [0, 100]; higher is better."""

    name = "clip-score"
    higher_is_better = True

    def per_sample_text(self, images: torch.Tensor, captions: list[str] | tuple[str, ...]) -> torch.Tensor:
        if len(captions) != len(images) or not all(captions):
            raise BenchError("clip-score needs one non-empty caption per image; use the fashion-mnist "
                             "dataset or give captions")
        image_embeddings = self.embed(images)
        with torch.no_grad():
            text_embeddings = self.clip_model.encode_text(list(captions)).float().cpu()
        return (100 * (image_embeddings * text_embeddings).sum(-1)).clamp(min=0)
