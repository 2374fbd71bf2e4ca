"""Prompt robustness of text-to-image models: AELIF's evaluation (arXiv:2506.07706, section on
adversarial prompts), with seeded typos instead of an LLM's.

Each image of the cell's data gives a prompt, its caption (``a photo of a {class}`` on
Fashion-MNIST), and a class. A ``prompts`` attack perturbs each batch's prompts (seeded per batch);
a ``conditioning`` attack (``aelif-probe``: AELIF's augmentation used as a probe at inference) leaves
the prompt as written and perturbs its token states inside the model (``generate(...,
condition=attack.hook(seed))``, the hook seeded per batch). Either way the defended model generates
the perturbed row and the clean row with the same seed and batch layout, so the two generations of a
row start from the same initial latents and differ only by the prompt or its states. A prompt that
appears on several rows is generated from several seeds.

Per row: the prompt the perturbed row was generated from (text column ``prompt``: the clean prompt
under a conditioning attack) and its measured budget (``prompt_edits``, ``prompt_edit_rate``: 0 under
a conditioning attack, whose budget ``p`` is in the cell's config); every paired metric of the
perturbed generation against the clean one (``clip-w1-raw``: AELIF's per-pair W1 as its code computes
it; ``clip-sim``: CLIP image-image cosine); every text metric of the perturbed generation against the
*clean* prompt (``clip-score``) and label metric against the prompt's class (``zero-shot``: class
accuracy), and the same for the clean generation (``clean_prompt_`` columns). Per set: set metrics between the perturbed and the
clean generations (``clip-w1-nd``: AELIF's distribution distance, ``clip-fd``); per prompt-set
metric (``clip-w1-nd-prompt``: the same distance between one prompt's generations across seeds, as
AELIF's code computes it, averaged over the prompts that appear on two or more rows); and per text/label
metric the robustness ratio ``{metric}_ratio`` = mean over perturbed / mean over clean generations,
with a paired bootstrap interval (1 = unaffected).

A defense that is fine-tuned inside a cell (``aelif``, ``aelif-none``: it has ``finetune_request``)
is fine-tuned here through ``CellContext.finetune``, cached in the run and shared by its cells
(``evaluated_model``). Clean generations are computed once per defense and data and reused by every
attack's cell.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import torch

from bench.base import Model, Scenario
from bench.errors import BenchError
from bench.measure import metric_columns, prompt_budget_columns, set_metric_estimates
from bench.metrics.kinds import BatchOutputs
from bench.scenario_api import CellContext, ScenarioResult
from bench.stats import CONFIDENCE, RESAMPLES, Estimate

CLEAN_PREFIX = "clean_prompt_"


def evaluated_model(context: CellContext, defense: Model) -> Model:
    """The defense as it generates: itself, or, for one that states a fine-tune, its fine-tuned model."""
    request = getattr(defense, "finetune_request", None)
    if request is None:
        return defense
    recipe, data = request()
    return defense.with_finetune(context.finetune(recipe, data))


def ratio_estimate(perturbed: np.ndarray, clean: np.ndarray, seed: int) -> Estimate:
    """mean(perturbed) / mean(clean) with a paired percentile bootstrap interval (rows resampled
    together, ``RESAMPLES`` draws); draws whose clean mean is 0 have no ratio and are left out."""
    perturbed, clean = np.asarray(perturbed, dtype=np.float64), np.asarray(clean, dtype=np.float64)
    value = float(perturbed.mean() / clean.mean()) if clean.mean() != 0 else float("nan")
    if len(perturbed) < 2 or not np.isfinite(value):
        return Estimate(value, value, value, len(perturbed))
    rows = np.random.default_rng(seed).integers(0, len(perturbed), (RESAMPLES, len(perturbed)))
    numerators, denominators = perturbed[rows].mean(1), clean[rows].mean(1)
    draws = numerators[denominators != 0] / denominators[denominators != 0]
    low, high = np.percentile(draws, [100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2])
    return Estimate(value, float(low), float(high), len(perturbed))


class PromptRobustness(Scenario):
    name = "prompt-robustness"
    model_kinds = frozenset({"text-to-image"})
    surfaces = frozenset({"prompts", "conditioning"})
    metric_kinds = ("paired", "set", "prompt-set", "text", "label")

    def check_data(self, images) -> None:
        if not len(images.captions) or not all(images.captions):
            raise BenchError("prompt-robustness: the prompts are the images' captions and these images have none; "
                             "use the fashion-mnist dataset or a folder with captions.json")

    def check_cell(self, context: CellContext) -> None:
        labelled = [label for label, metric in context.metrics.items() if metric.kind == "label"]
        if labelled and context.cell.data.dataset != "fashion-mnist":
            raise BenchError(f"prompt-robustness: {labelled[0]} scores generations against class labels, which only "
                             "the fashion-mnist dataset has; drop it from metrics: for this data")
        per_prompt = [label for label, metric in context.metrics.items() if metric.kind == "prompt-set"]
        if per_prompt and not prompt_groups(context.data.captions):
            raise BenchError(f"prompt-robustness: {per_prompt[0]} compares each prompt's generations across seeds, "
                             f"and no prompt of these {len(context.data.captions)} images appears twice; raise n "
                             "or drop it from metrics:")
        if context.attack.surface == "conditioning" and not hasattr(context.defense, "finetune_request"):
            check_takes_condition(context, context.defense)

    def evaluation_model(self, context: CellContext, defense: Model) -> Model:
        return evaluated_model(context, defense)

    def run(self, context: CellContext) -> ScenarioResult:
        model = self.evaluation_model(context, context.defense)
        if context.attack.surface == "conditioning":
            check_takes_condition(context, model)
        clean = clean_generations(context, model)
        columns: dict[str, list] = {}
        generated = []
        for stored in context.stored_batches(lambda index, batch: self._evaluate_batch(context, model, index,
                                                                                      batch, clean)):
            generated.append(stored.pop("generated"))
            for key, value in stored.items():
                columns.setdefault(key, []).extend(value if isinstance(value, list) else value.double().tolist())
        samples = pd.DataFrame({"index": range(len(context.data.images)), **columns})
        generated_all = torch.cat(generated)
        features = {space: metric.features(generated_all) for space, metric in feature_metrics(context.metrics).items()}
        estimates = set_metric_estimates(context.metrics, generated_all, clean["features"], context.cell.seed, features)
        groups = prompt_groups(context.data.captions)
        for label, metric in context.metrics.items():
            if metric.kind == "prompt-set":
                estimates[label] = metric.grouped_estimate(features[metric.feature_space],
                                                           clean["features"][metric.feature_space], groups,
                                                           context.cell.seed)
        for label, metric in context.metrics.items():
            if metric.kind in ("text", "label"):
                estimates[f"{label}_ratio"] = ratio_estimate(samples[label].to_numpy(),
                                                             samples[f"{CLEAN_PREFIX}{label}"].to_numpy(),
                                                             context.cell.seed)
        return ScenarioResult(samples, estimates, {"clean_generated": clean["images"], "generated": generated_all})

    def _evaluate_batch(self, context: CellContext, model: Model, index: int, batch: slice,
                        clean: dict) -> dict:
        prompts, seed = list(context.data.captions[batch]), context.batch_seed(index)
        conditioning = context.attack.surface == "conditioning"  # the clean prompt, its token states perturbed
        perturbed = prompts if conditioning else context.attack(prompts, seed=seed)
        hook = {"condition": context.attack.hook(seed)} if conditioning else {}
        with torch.no_grad():
            images = model.generate(perturbed, seed=seed, **hook).float().cpu()
        clean_images = clean["images"][batch]
        outputs = BatchOutputs(images, references={"": clean_images}, prompts=prompts,
                               labels=context.data.labels[batch], class_names=lambda: class_names(context))
        clean_outputs = BatchOutputs(clean_images, prompts=prompts, labels=context.data.labels[batch],
                                     class_names=lambda: class_names(context))
        scored = {label: metric for label, metric in context.metrics.items() if metric.kind in ("text", "label")}
        return {"generated": images, "prompt": perturbed, **prompt_budget_columns(perturbed, prompts),
                **metric_columns(context.metrics, outputs),
                **{f"{CLEAN_PREFIX}{k}": v for k, v in metric_columns(scored, clean_outputs).items()}}


def check_takes_condition(context: CellContext, model: Model) -> None:
    """Refuse a conditioning attack on a model whose ``generate`` has no ``condition`` hook."""
    if "condition" not in inspect.signature(model.generate).parameters:
        raise BenchError(f"prompt-robustness: attack {context.attack.name!r} perturbs the prompt states inside the "
                         f"model, and defense {context.cell.defense.name!r} takes no condition hook in generate; "
                         "use the t2i or aelif defenses")


def prompt_groups(captions) -> list[list[int]]:
    """The rows of each clean prompt that appears on two or more rows (its generations across seeds),
    in the order of first appearance."""
    rows: dict[str, list[int]] = {}
    for index, caption in enumerate(captions):
        rows.setdefault(caption, []).append(index)
    return [indices for indices in rows.values() if len(indices) > 1]


def feature_metrics(metrics: dict) -> dict:
    """One metric per feature space among the set and per-prompt set metrics (they share features)."""
    return {m.feature_space: m for m in metrics.values() if m.kind in ("set", "prompt-set")}


def class_names(context: CellContext) -> tuple[str, ...]:
    from bench.data import FASHION_MNIST_CLASSES

    if context.cell.data.dataset != "fashion-mnist":
        raise BenchError("label metrics (zero-shot) need class labels; use the fashion-mnist dataset")
    return FASHION_MNIST_CLASSES


def clean_generations(context: CellContext, model: Model) -> dict:
    """The clean prompts' generations (per-batch seeds, as the perturbed ones) and their features in
    every feature space the set metrics use; once per defense, data and seed in a run."""
    parts = {"what": "clean-generations", "defense": context.cell.defense.as_dict(), "weights": model.weights(),
             "data": context.data_identity(), "batch_size": context.cell.batch_size, "seed": context.cell.seed,
             "dtype": context.options.dtype, "device": context.device.type}

    def compute() -> dict[str, torch.Tensor]:
        with torch.no_grad():
            return {"images": torch.cat([model.generate(list(context.data.captions[batch]),
                                                        seed=context.batch_seed(index)).float().cpu()
                                         for index, batch in context.batches()])}

    stored = context.shared(parts, compute)
    features = {}
    for space, metric in feature_metrics(context.metrics).items():
        feature_parts = {**parts, "what": f"clean-generation-features-{space}"}
        features[space] = context.shared(feature_parts,
                                         lambda m=metric: {"features": m.features(stored["images"])})["features"]
    return {**stored, "features": features}
