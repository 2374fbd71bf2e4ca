"""Dirty-label poisoning: a control training-data attack. ``count`` (where 0: ``ratio`` x the
training set) images of the ``target`` class, chosen uniformly (seeded), are captioned as the
``source`` class (Nightshade's setting, arXiv:2310.13828, without its optimised images: a poison
that Nightshade must beat at the same count). The images are unchanged."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.base import Model, Poison, PoisonConfig, PoisoningAttack
from bench.errors import BenchError


@dataclass(frozen=True)
class DirtyLabelConfig(PoisonConfig):
    """``source``: the class whose caption the poisons carry; ``target``: the class of their images."""

    source: int = 0
    target: int = 1


class DirtyLabel(PoisoningAttack):
    name = "dirty-label"
    Config = DirtyLabelConfig

    def poison(self, images: torch.Tensor, captions: list[str], labels: torch.Tensor,
               generator: torch.Generator, model: Model | None = None) -> Poison:
        source, target = self.config.source, self.config.target
        source_captions = [c for c, label in zip(captions, labels.tolist(), strict=True) if label == source]
        candidates = torch.nonzero(labels == target).flatten()
        if not source_captions or not len(candidates):
            raise BenchError(f"dirty-label: the training set needs images of both the source class {source} and "
                             f"the target class {target}; raise n or choose other classes")
        count = min(len(candidates), self.config.poison_count(len(images)))
        chosen = candidates[torch.randperm(len(candidates), generator=generator)[:count]].sort().values
        return Poison(chosen, images[chosen].clone(), [source_captions[0]] * count)
