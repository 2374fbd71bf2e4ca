"""Threat models: which model a perturbation is crafted against before it is fed to the defense.

- ``transfer``: crafted against the grid's ``transfer_source`` (the undefended baseline, as the
  SRL-VAE paper does), then evaluated on the defense.
- ``adaptive``: crafted against the defense itself, white-box, through its ``attack_view`` (BPDA
  where a defense is not differentiable). Where the grid names a transfer source, the transferred
  perturbation is a second candidate and each image keeps the one with the higher attack
  objective on the defense, so an adaptive row is never a weaker attack than the transfer row of
  the same defense (by the attack's own objective).
- ``none``: a model-free perturbation (noise), the same whatever the model.

Crafted batches are cached in the run's shared folder, keyed by what the attacked model computes,
so a transfer perturbation is crafted once for every defense it is fed to.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from bench.grid import PluginSpec
    from bench.runner import CellContext


def craft(context: CellContext, index: int, batch: slice) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The attacked images of one batch (on the context's device), and for adaptive cells with a
    transfer candidate, a (N,) tensor that is 1 where the transferred perturbation was kept."""
    cell = context.cell
    if cell.threat_model == "transfer":
        return _crafted(context, cell.transfer_source, index, batch), None
    own = _crafted(context, cell.defense, index, batch)
    if cell.threat_model != "adaptive" or cell.transfer_source is None:
        return own, None
    transferred = _crafted(context, cell.transfer_source, index, batch)
    if torch.equal(own, transferred):
        return own, torch.zeros(len(own))
    clean = context.data.images[batch].to(context.device)
    target = context.evaluation_model(cell.defense)
    seed = context.batch_seed(index)
    with torch.no_grad():
        own_score = context.attack.objective(target, own, clean, seed)
        transfer_score = context.attack.objective(target, transferred, clean, seed)
    if own_score is None or transfer_score is None:
        return own, torch.zeros(len(own))
    keep_transfer = (transfer_score > own_score).to(own.device)
    chosen = torch.where(keep_transfer.view(-1, 1, 1, 1), transferred, own)
    return chosen, keep_transfer.float().cpu()


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
