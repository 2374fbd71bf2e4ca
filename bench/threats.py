"""Threat models: which model a perturbation is crafted against before it is fed to the defense.

- ``transfer``: crafted against the grid's ``transfer_source`` (the undefended baseline, as the
  SRL-VAE paper does), then evaluated on the defense.
- ``adaptive``: crafted against the defense itself, white-box, through its ``attack_view`` (BPDA
  where a defense is not differentiable). Where the grid names a transfer source, the transferred
  perturbation is a second candidate, and each image keeps whichever candidate does more damage to
  the defended system by the scenario's selection measure (as AutoAttack counts an image broken
  when any of its attacks breaks it), so an adaptive row is never a weaker attack than the transfer
  row of the same defense by that measure.
- ``none``: a model-free perturbation (noise), the same whatever the model.

Crafted batches are cached in the run's shared folder, keyed by what the attacked model computes,
so a transfer perturbation is crafted once for every defense it is fed to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from bench.grid import PluginSpec
    from bench.scenario_api import CellContext

SELECTION_COLUMN = "selection_damage"


def candidates(context: CellContext, index: int, batch: slice) -> list[torch.Tensor]:
    """The attacked images of one batch (on the context's device): one tensor, or for an adaptive
    cell with a transfer source, [white-box, transferred]."""
    cell = context.cell
    if cell.threat_model == "transfer":
        return [_crafted(context, cell.transfer_source, index, batch)]
    own = _crafted(context, cell.defense, index, batch)
    if cell.threat_model != "adaptive" or cell.transfer_source is None:
        return [own]
    transferred = _crafted(context, cell.transfer_source, index, batch)
    return [own] if torch.equal(own, transferred) else [own, transferred]


def evaluate_worst_case(context: CellContext, index: int, batch: slice,
                        measure: Callable[[torch.Tensor], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``measure`` (the scenario's per-batch evaluation, which must return ``selection_damage``) of
    each candidate; per image, the results of the candidate with the higher damage. Adaptive cells
    with a transfer source also get ``transfer_kept``: 1 where the transferred candidate won."""
    results = [measure(adversarial) for adversarial in candidates(context, index, batch)]
    chosen = results[0]
    if len(results) == 2:
        keep = results[1][SELECTION_COLUMN] > results[0][SELECTION_COLUMN]
        chosen = {key: torch.where(keep.view(-1, *([1] * (value.ndim - 1))), results[1][key], value)
                  for key, value in results[0].items()}
        chosen["transfer_kept"] = keep.float()
    elif context.cell.threat_model == "adaptive" and context.cell.transfer_source is not None:
        chosen["transfer_kept"] = torch.zeros(len(chosen[SELECTION_COLUMN]))
    return chosen


def _crafted(context: CellContext, spec: PluginSpec, index: int, batch: slice) -> torch.Tensor:
    cell = context.cell
    images = context.data.images[batch].to(context.device)
    if not context.attack.uses_model:
        return context.attack(context.attack_model(spec), images, seed=context.batch_seed(index))
    parts = {"what": "crafted", "attack": cell.attack.as_dict(), "model": context.attack_model_identity(spec),
             "data": context.data_identity(), "batch_size": cell.batch_size, "seed": cell.seed, "batch": index,
             "dtype": context.options.dtype, "device": context.device.type}

    def compute() -> dict[str, torch.Tensor]:
        return {"adversarial": context.attack(context.attack_model(spec), images, seed=context.batch_seed(index))}

    return context.shared(parts, compute)["adversarial"].to(context.device)
