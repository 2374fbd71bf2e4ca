"""Generation under sampling perturbations: the property the VE-loss paper claims for its tokenizer
(Li et al. 2026, "Taming Sampling Perturbations with Variance Expansion Loss for Latent Diffusion
Models", arXiv 2603.21085). A latent space whose posterior variance collapsed is over-compact: small
errors on the sampling trajectory push latents where the decoder was never trained. The attack (a
``SamplingAttack``) perturbs the input x_t of the sampler's steps, by Gaussian noise
(``sampling-noise``) or adversarially (``sampling-pgd``), at a ``scale`` in the diffusion model's
scaled latent units, so tokenizers are compared at the same size relative to their latents' spread.

Each image of the cell's data gives a prompt (its caption) and a class; the model generates from the
prompt with the batch's seed, the attack's hook on its trajectory. Per row: every label metric
(``zero-shot``: class accuracy; ``zero-shot-unsure``: decoding failure, the image-text model cannot
name a class with confidence) and text metric (``clip-score`` against the caption) of the
generation, and the decoder-side check of the paper's toy analysis: ``latent_noise_psnr`` /
``latent_noise_lpips`` of D(mu + scale * n) against the image itself (the same scale, Gaussian n).
Per set: FID / KID of the generations against the cell's real images. Every row also carries the
label and text metrics of the unperturbed generation from the same prompt and seed
(``unperturbed_`` columns; generated once per defense and data in a run, shared with
prompt-robustness's clean generations), and per label / text metric the ratio perturbed over
unperturbed (``{metric}_ratio``, paired bootstrap interval; 1 = unaffected). The attack at scale 0 is
the unperturbed generation itself.
"""

from __future__ import annotations

import pandas as pd
import torch

from bench.base import Model, Scenario
from bench.errors import BenchError
from bench.measure import metric_columns, set_metric_estimates, set_metrics
from bench.metrics.kinds import BatchOutputs
from bench.metrics.lpips import lpips_distance
from bench.scenario_api import CellContext, ScenarioResult
from bench.scenarios.prompt_robustness import class_names, clean_generations, ratio_estimate

UNPERTURBED_PREFIX = "unperturbed_"


class SamplingPerturbation(Scenario):
    name = "sampling-perturbation"
    model_kinds = frozenset({"text-to-image"})
    surfaces = frozenset({"sampling"})
    metric_kinds = ("set", "text", "label")

    def check_data(self, images) -> None:
        if not len(images.captions) or not all(images.captions):
            raise BenchError("sampling-perturbation: the prompts are the images' captions and these images have "
                             "none; use the fashion-mnist dataset or a folder with captions.json")

    def check_cell(self, context: CellContext) -> None:
        if not hasattr(context.defense, "decode_perturbed_latents"):
            raise BenchError(f"sampling-perturbation: defense {context.cell.defense.name!r} exposes no latent "
                             "autoencoder; use the t2i defense (an ldm-* zoo model, a hub id or an SD folder)")
        labelled = [label for label, metric in context.metrics.items() if metric.kind == "label"]
        if labelled and context.cell.data.dataset != "fashion-mnist":
            raise BenchError(f"sampling-perturbation: {labelled[0]} scores generations against class labels, which "
                             "only the fashion-mnist dataset has; drop it from metrics: for this data")

    def run(self, context: CellContext) -> ScenarioResult:
        model = context.defense
        unperturbed = clean_generations(context, model)["images"]
        columns: dict[str, list] = {}
        generated = []
        for stored in context.stored_batches(lambda index, batch: self._evaluate_batch(context, model, index, batch,
                                                                                      unperturbed[batch])):
            generated.append(stored.pop("generated"))
            for key, value in stored.items():
                columns.setdefault(key, []).extend(value.double().tolist())
        samples = pd.DataFrame({"index": range(len(context.data.images)), **columns})
        images = torch.cat(generated)
        estimates = set_metric_estimates(context.metrics, images, real_features(context), context.cell.seed)
        for label, metric in context.metrics.items():
            if metric.kind in ("text", "label"):
                estimates[f"{label}_ratio"] = ratio_estimate(samples[label].to_numpy(),
                                                             samples[f"{UNPERTURBED_PREFIX}{label}"].to_numpy(),
                                                             context.cell.seed)
        return ScenarioResult(samples, estimates, {"generated": images})

    def _evaluate_batch(self, context: CellContext, model: Model, index: int, batch: slice,
                        unperturbed: torch.Tensor) -> dict:
        prompts = list(context.data.captions[batch])
        seed = context.batch_seed(index)
        images = model.generate(prompts, seed=seed, perturb=context.attack.hook(seed)).float().cpu()
        real = context.data.images[batch]
        decoded = model.decode_perturbed_latents(real.to(context.device), context.attack.config.scale, seed)
        scored = {label: metric for label, metric in context.metrics.items() if metric.kind in ("text", "label")}
        columns = {}
        for prefix, generations in (("", images), (UNPERTURBED_PREFIX, unperturbed)):
            outputs = BatchOutputs(generations, prompts=prompts, labels=context.data.labels[batch],
                                   class_names=lambda: class_names(context))
            columns.update({f"{prefix}{k}": v for k, v in metric_columns(scored, outputs).items()})
        with torch.no_grad():
            distance = lpips_distance(decoded, real, "alex").float().cpu()
        mse = (decoded - real).pow(2).flatten(1).mean(1).clamp(min=1e-10)
        return {"generated": images, **columns,
                "latent_noise_psnr": (-10 * torch.log10(mse)).double(), "latent_noise_lpips": distance.double()}


def real_features(context: CellContext) -> dict[str, torch.Tensor]:
    """The cell's real images in every feature space its set metrics use; once per data in a run."""
    features = {}
    for space, metric in set_metrics(context.metrics).items():
        parts = {"what": f"real-features-{space}", "data": context.data_identity()}
        features[space] = context.shared(parts, lambda m=metric: {"features": m.features(context.data.images)})["features"]
    return features
