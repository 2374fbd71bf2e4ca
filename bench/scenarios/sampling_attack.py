"""Sampling under attack for a pixel denoiser: Robustadv's robustness claim (Briglia et al. 2025, arXiv
2505.21742: a model trained for equivariance samples well while an iterative attack perturbs x_t).

A ``SamplingAttack`` (``sampling-noise``, ``sampling-pgd``) perturbs the input x_t of the sampler's
steps; its ``scale`` is a per-step L-inf (PGD) or per-element RMS (noise) budget in [0, 1] pixel
units (the sampler shows the attack x_t / 2: ``bench.zoo.train_ddpm.ddim_loop``), its ``start`` /
``stop`` select the attacked steps and ``iterations`` make PGD iterative. Per cell, the model draws
as many samples as the data has images, each with the seed of its unperturbed twin, and they are
compared with the cell's clean real images (FID / KID, the class mix as in ``corrupted-training``)
and with the twin: ``lpips_to_unperturbed`` (alex) and ``class_changed`` (1 where the classifier
files the two differently); the unperturbed samples' own FID / KID ride along (``unperturbed_fid``),
so every row carries its clean reference. The unperturbed samples (and their features) are drawn once
per defense and data in a run; the attack at scale 0 is that draw.
"""

from __future__ import annotations

import pandas as pd
import torch

from bench.base import Scenario
from bench.measure import set_metric_estimates, set_metrics
from bench.metrics.lpips import lpips_distance
from bench.scenario_api import CellContext, ScenarioResult
from bench.scenarios.corrupted_training import (
    GenerationConfig,
    check_classes,
    class_mix_estimates,
    classify,
    generate,
    real_features,
    training_data_text,
)
from bench.scenarios.sampling_perturbation import UNPERTURBED_PREFIX


class SamplingAttackScenario(Scenario):
    name = "sampling-attack"
    Config = GenerationConfig
    model_kinds = frozenset({"denoiser"})
    surfaces = frozenset({"sampling"})
    metric_kinds = ("set",)

    def check_cell(self, context: CellContext) -> None:
        check_classes(self.name, context)

    def run(self, context: CellContext) -> ScenarioResult:
        model = context.defense
        unperturbed = unperturbed_samples(context)
        images = torch.cat([stored["generated"] for stored in context.stored_batches(
            lambda index, batch: {"generated": generate(context, model, index, batch,
                                                        context.attack.hook(context.batch_seed(index)))})])
        predicted, twin_class = classify(self.config.classifier, torch.cat([images, unperturbed])).split(len(images))
        with torch.no_grad():
            distance = torch.cat([lpips_distance(a, b, "alex").float().cpu()
                                  for a, b in zip(images.split(100), unperturbed.split(100), strict=True)])
        samples = pd.DataFrame({"index": range(len(images)), "predicted_class": predicted.numpy(),
                                "lpips_to_unperturbed": distance.double().numpy(),
                                "class_changed": (predicted != twin_class).double().numpy(),
                                "training_data": training_data_text(model)})
        reference = real_features(context)
        estimates = {**set_metric_estimates(context.metrics, images, reference, context.cell.seed),
                     **class_mix_estimates(predicted.numpy(), context.cell.seed)}
        unperturbed_estimates = set_metric_estimates(context.metrics, unperturbed, reference, context.cell.seed,
                                                     unperturbed_features(context, unperturbed))
        estimates.update({f"{UNPERTURBED_PREFIX}{label}": value for label, value in unperturbed_estimates.items()})
        return ScenarioResult(samples, estimates, {"generated": images})


def unperturbed_samples(context: CellContext) -> torch.Tensor:
    return context.shared(unperturbed_parts(context),
                          lambda: {"images": torch.cat([generate(context, context.defense, index, batch)
                                                        for index, batch in context.batches()])})["images"]


def unperturbed_features(context: CellContext, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The unperturbed samples' features in every feature space the set metrics use; once per run."""
    features = {}
    for space, metric in set_metrics(context.metrics).items():
        parts = {**unperturbed_parts(context), "what": f"unperturbed-sample-features-{space}"}
        features[space] = context.shared(parts, lambda m=metric: {"features": m.features(images)})["features"]
    return features


def unperturbed_parts(context: CellContext) -> dict:
    return {"what": "unperturbed-samples", "defense": context.cell.defense.as_dict(),
             "weights": context.defense.weights(), "data": context.data_identity(),
             "batch_size": context.cell.batch_size, "seed": context.cell.seed}
