"""Metric kinds as classes: what a metric compares, and the one place a scenario's batch results are
turned into per-sample metric columns (``Metric.measure``, called by ``bench.measure.metric_columns``).

- ``PairedMetric``: ``per_sample(images, references) -> (N,)``, one column per reference the
  scenario names (``psnr`` against x, ``psnr_vs_clean_rec`` against D(E(x)));
- ``SetMetric``: ``features(images)`` + ``from_features(a, b)`` and a ``statistic`` for the
  bootstrap; no per-sample column (``bench.measure.set_metric_estimates``);
- ``PromptSetMetric``: a set metric computed per prompt across seeds and averaged over prompts;
- ``TextMetric``: ``per_sample_text(images, prompts) -> (N,)``;
- ``LabelMetric``: ``per_sample_labels(images, labels, class_names) -> (N,)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import torch

from bench.base import Metric
from bench.stats import Estimate, mean_interval


@dataclass
class BatchOutputs:
    """What a scenario evaluated for one batch, as the metric kinds read it. ``references`` maps a
    column suffix to the images paired metrics compare ``images`` with (``""``: the plain column);
    ``class_names`` is called only when a label metric needs it."""

    images: torch.Tensor
    references: dict[str, torch.Tensor] = field(default_factory=dict)
    prompts: Sequence[str] | None = None
    labels: torch.Tensor | None = None
    class_names: Callable[[], tuple[str, ...]] | None = None


class PairedMetric(Metric):
    kind: ClassVar[str] = "paired"

    def measure(self, label: str, outputs: BatchOutputs) -> dict[str, torch.Tensor]:
        return {f"{label}{suffix}": self.per_sample(outputs.images, reference).float().cpu()
                for suffix, reference in outputs.references.items()}


class SetMetric(Metric):
    kind: ClassVar[str] = "set"

    def measure(self, label: str, outputs: BatchOutputs) -> dict[str, torch.Tensor]:
        return {}  # a set statistic: estimated over the whole cell, with its own bootstrap


class PromptSetMetric(SetMetric):
    """A set statistic per prompt: the generations of one prompt across seeds against the reference
    generations of the same prompt and seeds (AELIF's ``calculate_distance_between_distributions``),
    averaged over prompts. Only a scenario that knows its rows' prompts computes it (prompt-robustness:
    ``grouped_estimate`` over the rows of each clean prompt); any other refuses the kind."""

    kind: ClassVar[str] = "prompt-set"

    def grouped_estimate(self, features: torch.Tensor, reference: torch.Tensor, groups: Sequence[Sequence[int]],
                         seed: int) -> Estimate:
        """Mean over groups of ``from_features`` on the group's rows of both sets, with a bootstrap
        interval over groups (``n``: the number of groups)."""
        values = [self.from_features(features[list(rows)], reference[list(rows)]) for rows in groups]
        return mean_interval(np.asarray(values, dtype=np.float64), seed=seed)


class TextMetric(Metric):
    kind: ClassVar[str] = "text"

    def per_sample_text(self, images: torch.Tensor, captions: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    def measure(self, label: str, outputs: BatchOutputs) -> dict[str, torch.Tensor]:
        if outputs.prompts is None:
            raise ValueError(f"text metric {label}: the scenario gave no prompts")
        return {label: self.per_sample_text(outputs.images, list(outputs.prompts)).float().cpu()}


class LabelMetric(Metric):
    kind: ClassVar[str] = "label"

    def per_sample_labels(self, images: torch.Tensor, labels: torch.Tensor,
                          class_names: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    def measure(self, label: str, outputs: BatchOutputs) -> dict[str, torch.Tensor]:
        if outputs.labels is None or outputs.class_names is None:
            raise ValueError(f"label metric {label}: the scenario gave no labels")
        return {label: self.per_sample_labels(outputs.images, outputs.labels, outputs.class_names()).float().cpu()}


KINDS: dict[str, type[Metric]] = {cls.kind: cls for cls in (PairedMetric, SetMetric, PromptSetMetric, TextMetric,
                                                              LabelMetric)}
