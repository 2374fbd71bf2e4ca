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
from bench.metrics.lpips import lpips_distance
from bench.runner import CellContext, ScenarioResult, set_metric_estimates
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
            for label, metric in context.metrics.items():
                if metric.kind == "paired":
                    out[label] = metric.per_sample(reconstruction.float(), x).float().cpu()
                    out[f"{label}_vs_clean_rec"] = metric.per_sample(reconstruction.float(),
                                                                     clean_reconstruction).float().cpu()
        return out


def budget_columns(adversarial: torch.Tensor, clean: torch.Tensor) -> dict[str, torch.Tensor]:
    """The measured budget of each (quantised) attacked image: L-inf and LPIPS (alex) distance."""
    return {"linf": (adversarial - clean).abs().flatten(1).amax(1).cpu(),
            "lpips_input": lpips_distance(adversarial, clean, "alex").float().cpu()}


def objective_column(context: CellContext, adversarial: torch.Tensor, clean: torch.Tensor,
                     index: int) -> dict[str, torch.Tensor]:
    """The attack's own objective on the evaluated defense (seeded per batch), where it has one."""
    if not context.attack.uses_model:
        return {}
    model = context.evaluation_model(context.cell.defense)
    value = context.attack.objective(model, adversarial, clean, context.batch_seed(index))
    return {} if value is None else {"attack_objective": value.detach().float().cpu()}


def sample_columns(context: CellContext, stored: dict[str, torch.Tensor]) -> list[str]:
    """Every per-sample column of a stored batch (not its images): budgets, metrics in the grid's
    order, then the rest sorted."""
    labels = list(context.metrics)
    ordered = ["linf", "lpips_input", "latent_shift", *labels, *(f"{label}_vs_clean_rec" for label in labels)]
    rest = sorted(key for key, value in stored.items() if value.ndim == 1 and key not in ordered)
    return [key for key in ordered if key in stored] + rest


def clean_reconstructions(context: CellContext) -> dict[str, torch.Tensor]:
    """E(x) and D(E(x)) of the cell's images, computed once per (defense, data) in a run."""

    def compute() -> dict[str, torch.Tensor]:
        latents, reconstructions = [], []
        with torch.no_grad():
            for _, batch in context.batches():
                z = context.defense.encode(context.data.images[batch].to(context.device))
                latents.append(z.float().cpu())
                reconstructions.append(context.defense.decode(z).float().cpu())
        return {"latents": torch.cat(latents), "reconstruction": torch.cat(reconstructions)}

    parts = {"what": "clean-reconstruction", "defense": context.cell.defense.as_dict(),
             "data": context.data_identity(), "batch_size": context.cell.batch_size,
             "dtype": context.options.dtype, "device": context.device.type}
    return context.shared(parts, compute)


def reference_features(context: CellContext) -> dict[str, torch.Tensor]:
    """Features of the clean images x in each feature space the set metrics use, computed once."""
    spaces = {m.feature_space: m for m in context.metrics.values() if m.kind == "set"}
    result = {}
    for space, metric in spaces.items():
        parts = {"what": f"reference-{space}", "data": context.data_identity()}
        result[space] = context.shared(parts, lambda m=metric: {"features": m.features(context.data.images)})["features"]
    return result
