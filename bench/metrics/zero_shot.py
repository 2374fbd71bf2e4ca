"""Zero-shot classification (Radford et al. 2021, "Learning Transferable Visual Models From Natural
Language Supervision", arXiv:2103.00020): each image gets the class whose prompt "a photo of a
{class}" has the nearest CLIP text embedding. Kind ``label``: ``per_sample_labels(images, labels,
class_names)`` -> (N,) 1.0 correct, 0.0 wrong; its mean is the accuracy. Higher is better."""

from __future__ import annotations

import torch

from bench.clip_model import zero_shot_correct
from bench.errors import BenchError
from bench.metrics.clip_common import ClipMetric
from bench.metrics.kinds import LabelMetric


class ZeroShot(ClipMetric, LabelMetric):
    name = "zero-shot"
    higher_is_better = True

    def per_sample_labels(self, images: torch.Tensor, labels: torch.Tensor,
                          class_names: list[str] | tuple[str, ...]) -> torch.Tensor:
        labels = torch.as_tensor(labels)
        if len(labels) != len(images) or (labels < 0).any() or (labels >= len(class_names)).any():
            raise BenchError(f"zero-shot needs a label in [0, {len(class_names)}) for every image; use the "
                             "fashion-mnist dataset or a tensors file with a `labels` tensor")
        return zero_shot_correct(self.clip_model, images, labels, tuple(class_names))
