"""What a denoiser learned from its training data, read off its samples: Robustadv's headline experiment
(Briglia et al. 2025, "What is Adversarial Training for Diffusion Models?", arXiv:2505.21742, trained
DDPM and Robustadv on CIFAR-10 with 90% of the images noised, then compared samples' FID to clean data).

The corruption is the defended model's training data, not something a cell does: a grid lists the
models trained on each set (``ddpm-c90-s0.05``, ``robustadv-c90-s0.05``... ``bench.corrupted_data``;
each zoo model's manifest records its set's hash) under the ``none`` attack. Per cell, the model draws
as many samples as the cell's data has images (the data's batches give the seeds) and they are
compared with the cell's clean real images: FID / KID (the grid's set metrics), and the class mix as
the image-text model ``classifier`` files them (``largest_class_share``: mode collapse;
``class_entropy``: the mix's entropy over log(classes), 1 = uniform), with bootstrap intervals over
the samples. Per sample: the class it was filed as, and the training data the model saw (text).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.base import Model, Scenario
from bench.data import FASHION_MNIST_CLASSES
from bench.errors import BenchError
from bench.measure import set_metric_estimates
from bench.scenario_api import CellContext, ScenarioResult
from bench.stats import Estimate, set_interval


@dataclass(frozen=True)
class GenerationConfig:
    classifier: str = "clip-proxy"
    """The image-text model (zoo name or open_clip id) that files samples into the data's classes."""


class CorruptedTraining(Scenario):
    name = "corrupted-training"
    Config = GenerationConfig
    model_kinds = frozenset({"denoiser"})
    surfaces = frozenset({"pixels"})
    metric_kinds = ("set",)

    def check_cell(self, context: CellContext) -> None:
        if context.cell.attack.name != "none":
            raise BenchError(f"corrupted-training: the corruption is the model's training data, so the attack must "
                             f"be none (not {context.cell.attack.name!r}); list the models trained on each set as "
                             "defenses (e.g. {name: ddpm, model: ddpm-c90-s0.05}), or use scenario sampling-attack")
        check_classes(self.name, context)

    def run(self, context: CellContext) -> ScenarioResult:
        images = torch.cat([stored["generated"] for stored in context.stored_batches(
            lambda index, batch: {"generated": generate(context, context.defense, index, batch)})])
        predicted = classify(self.config.classifier, images)
        samples = pd.DataFrame({"index": range(len(images)), "predicted_class": predicted.numpy(),
                                "training_data": training_data_text(context.defense)})
        estimates = {**set_metric_estimates(context.metrics, images, real_features(context), context.cell.seed),
                     **class_mix_estimates(predicted.numpy(), context.cell.seed)}
        return ScenarioResult(samples, estimates, {"generated": images})


def check_classes(scenario: str, context: CellContext) -> None:
    if context.cell.data.dataset != "fashion-mnist":
        raise BenchError(f"{scenario}: the class mix files samples into Fashion-MNIST's classes; use the "
                         "fashion-mnist dataset")


def generate(context: CellContext, model: Model, index: int, batch: slice, perturb=None) -> torch.Tensor:
    with torch.no_grad():
        return model.sample(batch.stop - batch.start, seed=context.batch_seed(index), perturb=perturb).float().cpu()


def classify(classifier: str, images: torch.Tensor) -> torch.Tensor:
    from bench.clip_model import load_image_text_model, zero_shot_predict

    return zero_shot_predict(load_image_text_model(classifier), images, FASHION_MNIST_CLASSES)


def class_mix_estimates(predicted: np.ndarray, seed: int) -> dict[str, Estimate]:
    classes = len(FASHION_MNIST_CLASSES)

    def shares(values: np.ndarray) -> np.ndarray:
        return np.bincount(values.astype(int), minlength=classes) / len(values)

    def largest(values: np.ndarray) -> float:
        return float(shares(values).max())

    def entropy(values: np.ndarray) -> float:
        p = shares(values)
        p = p[p > 0]
        return float(-(p * np.log(p)).sum() / math.log(classes))

    reference = np.zeros(1)  # set_interval resamples two sets; these statistics read the first only
    return {column: set_interval(lambda values, _, f=statistic: f(values), predicted, reference, seed=seed)
            for column, statistic in (("largest_class_share", largest), ("class_entropy", entropy))}


def training_data_text(model: Model) -> str:
    """The training set a denoiser records (its corruption and hash): a zoo model's manifest entry, or a
    folder's ``training.json`` (``bench train-denoiser``); empty where neither says."""
    from bench import zoo
    from bench.zoo.denoiser_command import TRAINING_FILE

    name = getattr(model.config, "model", "")
    if zoo.is_zoo_model(name):
        data = zoo.manifest()[name].get("training", {}).get("training_data")
    else:
        record = Path(name).expanduser() / TRAINING_FILE
        data = json.loads(record.read_text()).get("training_data") if record.is_file() else None
    if not data:
        return ""
    return (f"{data['corrupted']} of {data['images']} noised, sigma {data['sigma_01']:g} in [0, 1] units, seed "
            f"{data['seed']}, sha256 {data['sha256'][:16]}")


def real_features(context: CellContext) -> dict[str, torch.Tensor]:
    from bench.scenarios.sampling_perturbation import real_features as features

    return features(context)
