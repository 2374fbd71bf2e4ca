"""img2img editing of protected images: the SRL-VAE paper's Table 2 setting (its section 4.3).

The clean image x and the protected image x' are edited with the same prompt, seed and strength
(0.5 by default) by the defended editor (``bench.editing.Editor``: the defense encodes and decodes,
the text-to-image model denoises). Per sample: the measured budgets of x' (``linf``,
``lpips_input``), the latent shift ||E(x') - E(x)||_2, every paired metric of edit(x') against
edit(x) (CLIP image-image similarity, LPIPS, ...), text metrics of edit(x') against its prompt and
label metrics of edit(x') against x's class, and the attack's own objective on the defended editor
(``attack_objective``). Per set: FID / KID / CLIP-FD between the edits of the protected images and
the edits of the clean ones. A protection works when the edits move apart. An adaptive cell keeps
per image the candidate whose edit is farther from the clean edit in LPIPS (AlexNet).

Beside each row sit the defense's clean fidelity, the paper's Table 1: PSNR, SSIM and LPIPS of
D(E(x)) against x (``clean_rec_*``) and the rFID of the clean reconstructions (``clean_rec_fid``),
so a defense that buys robustness with fidelity shows it. Clean edits, clean reconstructions and
their features are computed once per defense and reused by every cell; the clean fidelity and the
Inception features also across runs (``bench.feature_cache``: keyed by the reconstructions' bytes).
"""

from __future__ import annotations

import dataclasses

import pandas as pd
import torch

from bench.base import Defense, Model, Scenario
from bench.editing import EditConfig, Editor, shared_pipeline
from bench.errors import BenchError
from bench.measure import (
    budget_columns,
    clean_reconstructions,
    cross_run_features,
    cross_run_per_sample,
    metric_columns,
    objective_column,
    sample_columns,
    set_metric_estimates,
    set_metrics,
)
from bench.metrics.kinds import BatchOutputs
from bench.metrics.lpips import lpips_distance
from bench.scenario_api import CellContext, ScenarioResult
from bench.threats import SELECTION_COLUMN, evaluate_worst_case

FIDELITY_PREFIX = "clean_rec_"


class Img2ImgEdit(Scenario):
    name = "img2img-edit"
    Config = EditConfig
    metric_kinds = ("paired", "set", "text", "label")

    @classmethod
    def provides(cls, defense_kind: str) -> frozenset[str]:
        return frozenset({defense_kind, "text-to-image"})

    def prepare(self, device: torch.device) -> Img2ImgEdit:
        shared_pipeline(self.config.pipeline, str(device), torch.float32, self.config.trust_pickle)
        return self

    def _editor(self, context: CellContext, defense: Defense) -> Editor:
        return Editor.for_defense(defense, self.config, context.device, context.options.torch_dtype)

    def attack_model(self, context: CellContext, defense: Defense) -> Model:
        """The defense's attack view, inside the editor for an attack on the text-to-image model."""
        if context.attack.differentiates() == "text-to-image":
            return self._editor(context, defense.attack_view())
        return defense.attack_view()

    def attack_model_identity(self, context: CellContext, defense: Defense) -> dict:
        """An attack that only needs the autoencoder crafts what it crafts in the reconstruction
        scenario, so the two share the cached perturbation."""
        if context.attack.differentiates() != "text-to-image":
            return defense.view_identity()
        return {"view": defense.view_identity(), "edit": dataclasses.asdict(self.config)}

    def evaluation_model(self, context: CellContext, defense: Defense) -> Editor:
        return self._editor(context, defense)

    def check_data(self, images) -> None:
        if not self.config.prompt and not all(images.captions):
            raise BenchError("img2img-edit: these images have no captions; set the scenario's prompt: "
                             "(e.g. scenario: {name: img2img-edit, prompt: 'a photo'})")

    def prompts(self, context: CellContext, batch: slice) -> list[str]:
        if self.config.prompt:
            return [self.config.prompt] * len(context.data.images[batch])
        return list(context.data.captions[batch])

    def run(self, context: CellContext) -> ScenarioResult:
        cell = context.cell
        editor = self.evaluation_model(context, context.defense)
        clean = clean_edits(context, editor)
        fidelity = clean_fidelity(context)
        columns: dict[str, list[torch.Tensor]] = {}
        attacked, edited = [], []
        for stored in context.stored_batches(
                lambda index, batch: self._evaluate_batch(context, editor, index, batch, clean)):
            attacked.append(stored["adversarial"])
            edited.append(stored["edited"])
            for key in sample_columns(context, stored):
                columns.setdefault(key, []).append(stored[key])
        per_sample = {k: torch.cat(v).double().numpy() for k, v in columns.items()}
        samples = pd.DataFrame({"index": range(len(context.data.images)), **per_sample,
                                **{k: v.double().numpy() for k, v in fidelity["per_sample"].items()}})
        edited_all = torch.cat(edited)
        estimates = set_metric_estimates(context.metrics, edited_all, clean["features"], cell.seed)
        estimates.update(fidelity["set"])
        return ScenarioResult(samples, estimates, {"clean": context.data.images, "attacked": torch.cat(attacked),
                                                   "edited": edited_all, "clean_edited": clean["edits"]})

    def _evaluate_batch(self, context: CellContext, editor: Editor, index: int, batch: slice,
                        clean: dict) -> dict[str, torch.Tensor]:
        x = context.data.images[batch].to(context.device)
        prompts = self.prompts(context, batch)
        return evaluate_worst_case(context, index, batch,
                                   lambda x_adv: self._measure(context, editor, index, batch, x, x_adv, prompts, clean))

    def _measure(self, context: CellContext, editor: Editor, index: int, batch: slice, x: torch.Tensor,
                 x_adv: torch.Tensor, prompts: list[str], clean: dict) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            latents = editor.encode(x_adv)
            edits = editor.edit(None, prompts, seed=context.batch_seed(index), latents=latents)
            latents = latents.float()
            clean_edits_batch = clean["edits"][batch].to(edits.device)
            out = {"adversarial": x_adv.cpu(), "edited": edits.cpu(), "clean_edited": clean_edits_batch.cpu(),
                   **budget_columns(x_adv, x),
                   "latent_shift": (latents - clean["latents"][batch].to(latents.device)).flatten(1).norm(dim=1).cpu(),
                   SELECTION_COLUMN: lpips_distance(edits, clean_edits_batch, "alex").float().cpu(),
                   **objective_column(context, x_adv, x, index)}
            out.update(metric_columns(context.metrics, BatchOutputs(
                edits, references={"": clean_edits_batch}, prompts=prompts,
                labels=context.data.labels[batch],
                class_names=lambda: class_names(context))))
        return out


def class_names(context: CellContext) -> tuple[str, ...]:
    from bench.data import FASHION_MNIST_CLASSES

    if context.cell.data.dataset != "fashion-mnist":
        raise BenchError("label metrics (zero-shot) need class labels; use the fashion-mnist dataset")
    return FASHION_MNIST_CLASSES


def clean_edits(context: CellContext, editor: Editor) -> dict[str, torch.Tensor]:
    """Edits of the clean images (same prompts and per-batch seeds as the protected ones), their
    latents (those of the clean reconstructions), and the features of the edits in every feature
    space the set metrics use; once per defense."""
    scenario: Img2ImgEdit = context.scenario
    parts = {"what": "clean-edits", "defense": context.cell.defense.as_dict(), "data": context.data_identity(),
             "edit": dataclasses.asdict(scenario.config), "batch_size": context.cell.batch_size,
             "seed": context.cell.seed, "dtype": context.options.dtype, "device": context.device.type}

    latents = clean_reconstructions(context)["latents"]

    def compute() -> dict[str, torch.Tensor]:
        edits = []
        with torch.no_grad():
            for index, batch in context.batches():
                edits.append(editor.edit(None, scenario.prompts(context, batch), seed=context.batch_seed(index),
                                         latents=latents[batch].to(context.device)).cpu())
        return {"edits": torch.cat(edits)}

    stored = context.shared(parts, compute)
    features = {}
    for space, metric in set_metrics(context.metrics).items():
        feature_parts = {**parts, "what": f"clean-edit-features-{space}"}
        features[space] = context.shared(feature_parts, lambda m=metric: {"features": m.features(stored["edits"])})["features"]
    return {**stored, "latents": latents, "features": features}


def clean_fidelity(context: CellContext) -> dict:
    """Table 1 beside Table 2: PSNR / SSIM / LPIPS of D(E(x)) against x per sample, and rFID."""
    from bench.metrics.fid import FID
    from bench.metrics.lpips import LPIPS
    from bench.metrics.psnr import PSNR
    from bench.metrics.ssim import SSIM

    images = context.data.images
    reconstructions = clean_reconstructions(context)["reconstruction"]
    per_sample = {f"{FIDELITY_PREFIX}{m.name}": cross_run_per_sample(context, m, reconstructions, images)
                  for m in (PSNR(), SSIM(), LPIPS())}
    fid = FID().prepare(context.device)
    parts = {"what": "clean-rec-features", "defense": context.cell.defense.as_dict(), "data": context.data_identity(),
             "batch_size": context.cell.batch_size, "dtype": context.options.dtype, "device": context.device.type}
    rec_features = context.shared(
        parts, lambda: {"features": cross_run_features(context, fid, reconstructions)})["features"]
    reference = context.shared({"what": "reference-fid-inception", "data": context.data_identity()},
                               lambda: {"features": cross_run_features(context, fid, images)})["features"]
    estimate = set_metric_estimates({"fid": fid}, reconstructions, {"fid-inception": reference}, context.cell.seed,
                                    features={"fid-inception": rec_features})["fid"]
    return {"per_sample": per_sample, "set": {f"{FIDELITY_PREFIX}fid": estimate}}
