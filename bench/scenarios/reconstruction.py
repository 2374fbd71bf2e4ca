"""Reconstruction under attack: how far D(E(x')) moves from x and from D(E(x)).

Per sample: the measured budgets ||x' - x||inf after 8-bit quantisation and LPIPS(x', x)
(``lpips_input``, AlexNet), the latent shift ||E(x') - E(x)||_2, and every paired metric of D(E(x'))
against x and against the clean reconstruction D(E(x)). Per set: rFID/KID of the reconstructions of
x' against x. Clean reconstructions and the reference Inception features are computed once per run
and reused. x' is crafted according to the cell's threat model (``bench.threats``); an adaptive
cell keeps per image the candidate whose reconstruction is farther from x in LPIPS (AlexNet), the
``selection_damage`` column. ``attack_objective`` is the attack's own objective on the defense
(higher: a more successful attack), where the attack defines one.
"""

from __future__ import annotations

import pandas as pd
import torch

from bench.base import Scenario
from bench.measure import (
    budget_columns,
    clean_reconstructions,
    metric_columns,
    objective_column,
    reference_features,
    sample_columns,
    set_metric_estimates,
)
from bench.metrics.kinds import BatchOutputs
from bench.metrics.lpips import lpips_distance
from bench.scenario_api import CellContext, ScenarioResult
from bench.threats import SELECTION_COLUMN, evaluate_worst_case


class Reconstruction(Scenario):
    name = "reconstruction"

    def run(self, context: CellContext) -> ScenarioResult:
        cell, images = context.cell, context.data.images
        clean = clean_reconstructions(context)
        columns: dict[str, list[torch.Tensor]] = {}
        adversarial, reconstructed = [], []
        for stored in context.stored_batches(lambda index, batch: self._evaluate_batch(context, index, batch, clean)):
            adversarial.append(stored["adversarial"])
            reconstructed.append(stored["reconstruction"])
            for key in sample_columns(context, stored):
                columns.setdefault(key, []).append(stored[key])
        samples = pd.DataFrame({"index": range(len(images)),
                                **{k: torch.cat(v).double().numpy() for k, v in columns.items()}})
        reconstructed_all = torch.cat(reconstructed)
        reference = reference_features(context)
        estimates = set_metric_estimates(context.metrics, reconstructed_all, reference, cell.seed)
        return ScenarioResult(samples, estimates, {"clean": images, "attacked": torch.cat(adversarial),
                                                   "reconstructed": reconstructed_all,
                                                   "clean_reconstructed": clean["reconstruction"]})

    def _evaluate_batch(self, context: CellContext, index: int, batch: slice,
                        clean: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        x = context.data.images[batch].to(context.device)
        return evaluate_worst_case(context, index, batch, lambda x_adv: self._measure(context, index, batch, x,
                                                                                     x_adv, clean))

    def _measure(self, context: CellContext, index: int, batch: slice, x: torch.Tensor, x_adv: torch.Tensor,
                 clean: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        device = context.device
        with torch.no_grad():
            latents = context.defense.encode(x_adv)
            reconstruction = context.defense.decode(latents)
            clean_latents = clean["latents"][batch].to(device)
            clean_reconstruction = clean["reconstruction"][batch].to(device)
            out = {"adversarial": x_adv.cpu(), "reconstruction": reconstruction.float().cpu(),
                   "clean_reconstruction": clean_reconstruction.float().cpu(),
                   **budget_columns(x_adv, x),
                   "latent_shift": (latents.float() - clean_latents).flatten(1).norm(dim=1).cpu(),
                   SELECTION_COLUMN: lpips_distance(reconstruction.float(), x, "alex").float().cpu(),
                   **objective_column(context, x_adv, x, index)}
            out.update(metric_columns(context.metrics, BatchOutputs(
                reconstruction.float(), references={"": x, "_vs_clean_rec": clean_reconstruction})))
        return out

