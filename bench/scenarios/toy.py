"""A toy scenario that accepts every attack surface but ``sampling`` and ``conditioning`` (they need a
sampler and a text encoder): the smallest evaluation each surface plugs into, for tests and for
checking a new attack's plumbing end to end in seconds (not a benchmark).

The model is a nearest-class-mean classifier "trained" on the cell's images and captions (a caption
names its class): an image is classified by what the defended model makes of it nearest to a class
mean (L2), a prompt by the class caption nearest in character counts (cosine). What the model makes
of an image depends on its kind (the toy takes all three): an ``autoencoder``'s reconstruction
D(E(x)), a ``text-to-image`` model's img2img edit of x toward its caption, a ``denoiser``'s SDEdit of x
(noised to ``strength`` and sampled back); the last two seeded per batch. Per sample, ``correct``
(1 when the class is the image's label) and, by the attack's surface:

- ``pixels``: the attacked image x' is classified; the measured budget ``linf`` / ``lpips_input`` and
  the paired metrics of the model's rendition of x' (D(E(x')) for an autoencoder) against x;
- ``prompts``: the perturbed prompt (text column ``prompt``) is classified; its measured budget
  ``prompt_edits`` (Levenshtein distance from the clean prompt) and ``prompt_edit_rate``;
- ``training-data``: the attack poisons the training set once per cell (cached in the run's shared
  folder), the class means are fitted on the poisoned pairs, and every clean image is classified;
  ``poisoned`` (1 where the sample was substituted: its mean is the ratio used) and the caption it was
  trained with (text column ``caption``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch

from bench.base import MODEL_KINDS, SURFACES, Scenario, check_unit_interval
from bench.errors import BenchError
from bench.measure import budget_columns, metric_columns, prompt_budget_columns
from bench.metrics.kinds import BatchOutputs
from bench.scenario_api import CellContext, ScenarioResult, decode_texts, encode_texts
from bench.threats import SELECTION_COLUMN, evaluate_worst_case


def character_counts(texts: list[str]) -> torch.Tensor:
    """(N, 128) counts of each ASCII character (others in the last bin), L2-normalised."""
    counts = torch.zeros(len(texts), 128, dtype=torch.float64)
    for row, text in enumerate(texts):
        for char in text.lower():
            counts[row, min(ord(char), 127)] += 1
    return torch.nn.functional.normalize(counts, dim=1)


@dataclass(frozen=True)
class ToyConfig:
    """``strength``: how far a text-to-image model's edit or a denoiser's SDEdit noises the image."""

    strength: float = 0.3

    def __post_init__(self):
        check_unit_interval("toy", "strength", self.strength)


class ToyClassifier(Scenario):
    name = "toy"
    Config = ToyConfig
    model_kinds = frozenset(MODEL_KINDS)
    surfaces = frozenset(SURFACES) - {"sampling", "conditioning"}  # sampling-perturbation, prompt-robustness
    metric_kinds = ("paired",)

    def check_data(self, images) -> None:
        if (images.labels < 0).any() or not all(images.captions):
            raise BenchError("toy: every image needs a label and a caption; use the fashion-mnist dataset")

    def run(self, context: CellContext) -> ScenarioResult:
        data = context.data
        captions = list(data.captions)
        class_captions = {int(label): caption for label, caption in zip(data.labels.tolist(), captions, strict=True)}
        fit = self._fit(context, class_captions)
        columns: dict[str, list] = {}
        for stored in context.stored_batches(lambda index, batch: self._evaluate_batch(context, index, batch, fit,
                                                                                      class_captions)):
            for key, value in stored.items():
                if isinstance(value, list) or value.ndim == 1:
                    columns.setdefault(key, []).extend(value if isinstance(value, list) else value.double().tolist())
        samples = pd.DataFrame({"index": range(len(data.images)), **columns})
        return ScenarioResult(samples)

    def _fit(self, context: CellContext, class_captions: dict[int, str]) -> dict[str, torch.Tensor]:
        """Class means of the (poisoned, for a training-data attack) training set, once per cell."""
        data, cell = context.data, context.cell
        poisoning = context.attack.surface == "training-data"

        def compute() -> dict[str, torch.Tensor]:
            images, captions = data.images.clone(), list(data.captions)
            poisoned = torch.zeros(len(images))
            if poisoning:
                poison = context.attack(data.images, captions, data.labels, seed=cell.seed)
                images[poison.indices] = poison.images
                for i, caption in zip(poison.indices.tolist(), poison.captions, strict=True):
                    captions[i] = caption
                poisoned[poison.indices] = 1.0
            label_of = {caption: label for label, caption in class_captions.items()}
            trained_as = torch.tensor([label_of.get(c, -1) for c in captions])
            means = torch.stack([images[trained_as == c].mean(0) if (trained_as == c).any()
                                 else torch.full_like(images[0], float("inf")) for c in range(max(class_captions) + 1)])
            return {"means": means, "poisoned": poisoned, "captions": encode_texts(captions)}

        parts = {"what": "toy-fit", "attack": cell.attack.as_dict() if poisoning else None,
                 "data": context.data_identity(), "seed": cell.seed if poisoning else None}
        return context.shared(parts, compute)

    def _render(self, context: CellContext, images: torch.Tensor, captions: list[str], seed: int) -> torch.Tensor:
        """What the defended model makes of the images, by its kind."""
        model, images = context.defense, images.to(context.device)
        with torch.no_grad():
            if model.kind == "text-to-image":
                return model.edit(images, captions, seed=seed, strength=self.config.strength).float()
            if model.kind == "denoiser":
                return model.denoise(images, self.config.strength, seed=seed).float()
            return model.reconstruct(images).float()

    @staticmethod
    def _classify(rendered: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
        distances = torch.cdist(rendered.cpu().flatten(1).double(), means.flatten(1).double())
        return distances.nan_to_num(float("inf")).argmin(1)

    def _evaluate_batch(self, context: CellContext, index: int, batch: slice, fit: dict[str, torch.Tensor],
                        class_captions: dict[int, str]) -> dict:
        data, surface = context.data, context.attack.surface
        x, labels = data.images[batch].to(context.device), data.labels[batch]
        captions, seed = list(data.captions[batch]), context.batch_seed(index)
        if surface == "pixels":
            def measure(x_adv: torch.Tensor) -> dict[str, torch.Tensor]:
                rendered = self._render(context, x_adv, captions, seed)
                correct = (self._classify(rendered, fit["means"]) == labels).double()
                return {**budget_columns(x_adv, x), "correct": correct, SELECTION_COLUMN: 1 - correct,
                        **metric_columns(context.metrics, BatchOutputs(rendered, references={"": x}))}
            return evaluate_worst_case(context, index, batch, measure)
        if surface == "prompts":
            clean = list(data.captions[batch])
            perturbed = context.attack(clean, seed=context.batch_seed(index))
            names = sorted(class_captions)
            similarity = character_counts(perturbed) @ character_counts([class_captions[c] for c in names]).T
            predicted = torch.tensor(names)[similarity.argmax(1)]
            return {"prompt": perturbed, **prompt_budget_columns(perturbed, clean),
                    "correct": (predicted == labels).double()}
        if surface == "training-data":
            correct = (self._classify(self._render(context, x, captions, seed), fit["means"]) == labels).double()
            return {"caption": decode_texts(fit["captions"])[batch], "poisoned": fit["poisoned"][batch].double(),
                    "correct": correct}
        raise BenchError(f"toy: no evaluation for surface {surface!r}")
