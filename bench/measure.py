"""Measurement helpers every scenario shares: the measured budget of attacked images, the attack's
own objective, metric columns through the metric kinds (one dispatcher), set-metric estimates with
their bootstrap, and the clean computations cached once per run (reconstructions, reference
features). Scenarios import this and ``bench.scenario_api``; see README "Adding a scenario"."""

from __future__ import annotations

import dataclasses

import torch

from bench.base import Metric
from bench.feature_cache import cached_features, feature_key
from bench.metrics.kinds import KINDS, BatchOutputs
from bench.metrics.lpips import lpips_distance
from bench.scenario_api import CellContext
from bench.stats import Estimate, set_interval


def metric_columns(metrics: dict[str, Metric], outputs: BatchOutputs) -> dict[str, torch.Tensor]:
    """Every per-sample column the cell's metrics give for one batch, in the grid's order: the one
    place a metric's kind decides what it is handed (``bench.metrics.kinds``)."""
    columns: dict[str, torch.Tensor] = {}
    for label, metric in metrics.items():
        columns.update(KINDS[metric.kind].measure(metric, label, outputs))
    return columns


def set_metrics(metrics: dict[str, Metric]) -> dict[str, Metric]:
    """One set metric per feature space (FID and KID share the Inception's)."""
    return {m.feature_space: m for m in metrics.values() if m.kind == "set"}


def set_metric_estimates(metrics: dict[str, Metric], images: torch.Tensor,
                         reference_features: dict[str, torch.Tensor], seed: int,
                         features: dict[str, torch.Tensor] | None = None) -> dict[str, Estimate]:
    """FID/KID of ``images`` against reference features (one tensor per feature space), with intervals;
    ``features`` may hold the images' features already computed."""
    estimates = {}
    features_by_space: dict[str, torch.Tensor] = dict(features or {})
    for label, metric in metrics.items():
        if metric.kind != "set":
            continue
        if metric.feature_space not in features_by_space:
            features_by_space[metric.feature_space] = metric.features(images)
        features = features_by_space[metric.feature_space]
        reference = reference_features[metric.feature_space]
        value = metric.from_features(features, reference)
        interval = set_interval(metric.statistic, features.numpy(), reference.numpy(), seed=seed)
        estimates[label] = Estimate(value, interval.low, interval.high, len(features))
    return estimates


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
    rest = sorted(key for key, value in stored.items()
                  if isinstance(value, torch.Tensor) and value.ndim == 1 and key not in ordered)
    return [key for key in ordered if key in stored] + rest


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: the fewest character insertions, deletions and substitutions from a to b."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def prompt_budget_columns(perturbed: list[str], clean: list[str]) -> dict[str, torch.Tensor]:
    """The measured budget of each perturbed prompt: its edit distance from the clean prompt and that
    distance per character of the clean prompt."""
    edits = torch.tensor([edit_distance(p, c) for p, c in zip(perturbed, clean, strict=True)], dtype=torch.float64)
    lengths = torch.tensor([max(1, len(c)) for c in clean], dtype=torch.float64)
    return {"prompt_edits": edits, "prompt_edit_rate": edits / lengths}


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


def _cross_run_key(context: CellContext, metric: Metric, images: torch.Tensor,
                   references: torch.Tensor | None = None) -> str:
    return feature_key(metric, images, context.hasher.references(dataclasses.asdict(metric.config)),
                       context.options.dtype, context.device.type, references)


def cross_run_features(context: CellContext, metric: Metric, images: torch.Tensor) -> torch.Tensor:
    """``metric.features(images)``, from the asset cache across runs when it holds them."""
    key = _cross_run_key(context, metric, images)
    return cached_features(key, lambda: {"features": metric.features(images)})["features"]


def cross_run_per_sample(context: CellContext, metric: Metric, images: torch.Tensor,
                         references: torch.Tensor) -> torch.Tensor:
    """``metric.per_sample(images, references)`` as float32, from the asset cache across runs when it
    holds them (keyed by both tensors' bytes)."""
    key = _cross_run_key(context, metric, images, references)
    return cached_features(key, lambda: {"values": metric.per_sample(images, references).float()})["values"]


def reference_features(context: CellContext) -> dict[str, torch.Tensor]:
    """Features of the clean images x in each feature space the set metrics use, computed once."""
    result = {}
    for space, metric in set_metrics(context.metrics).items():
        parts = {"what": f"reference-{space}", "data": context.data_identity()}
        result[space] = context.shared(
            parts, lambda m=metric: {"features": cross_run_features(context, m, context.data.images)})["features"]
    return result
