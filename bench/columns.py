"""One source for what result columns mean, shared by the runner, the grid, tables, regression and
the leaderboard: which columns a scenario measures itself and their direction, which are kept per
sample but never summarised, which lead a table, and the threat-model names.

Imports nothing from the suite, so any module may use it."""

from __future__ import annotations

SCENARIO_QUANTITIES: dict[str, bool] = {"linf": False, "latent_shift": False, "lpips_input": False,
                                        "attack_objective": False, "prompt_edits": False,
                                        "prompt_edit_rate": False, "poisoned": False,
                                        **{f"{prefix}{column}": higher for prefix in ("", "reference_")
                                           for column, higher in (("attack_success", False), ("not_source", False),
                                                                  ("is_target", False), ("source_similarity", True),
                                                                  ("collateral_accuracy", True),
                                                                  ("collateral_fid", False), ("fid", False))},
                                        "poison_latent_closed": False, "poisons": True, "tau": True,
                                        "largest_class_share": False, "class_entropy": True,
                                        "lpips_to_unperturbed": False, "class_changed": False}
"""Columns a scenario measures itself (not registered metrics), mapped to higher_is_better."""

LOWER_IS_BETTER_COLUMNS: tuple[str, ...] = tuple(c for c, higher in SCENARIO_QUANTITIES.items() if not higher)

RECORD_ONLY_COLUMNS: tuple[str, ...] = ("index", "transfer_kept", "selection_damage", "predicted_class")
"""Per-sample columns kept in samples.csv but not summarised as metrics."""

LEADING_COLUMNS: tuple[str, ...] = ("linf", "lpips_input", "prompt_edits", "prompt_edit_rate", "poisoned",
                                     "latent_shift")
"""Measured budgets (pixels, prompts, training data) and the latent shift, first in a table, in this order."""

SCENARIO_HEADLINES: dict[str, tuple[str, ...]] = {"reconstruction": ("latent_shift", "psnr", "lpips"),
                                                  "img2img-edit": ("clip-sim", "lpips"),
                                                  "prompt-robustness": ("clip-w1-raw", "zero-shot", "zero-shot_ratio"),
                                                  "poisoning": ("attack_success", "is_target", "collateral_accuracy"),
                                                  "corrupted-training": ("fid", "largest_class_share", "class_entropy"),
                                                  "sampling-attack": ("fid", "lpips_to_unperturbed", "class_changed")}
"""The columns a compact table shows per scenario (``bench run`` and ``bench table`` by default); a scenario
not listed shows its latent shift (where measured), then its first three plain metric columns."""

THREAT_MODELS: tuple[str, ...] = ("adaptive", "transfer")
"""Threat models a grid may list under ``threat_models:``."""
MODEL_FREE = "none"
"""The threat model of an attack that uses no model (``none``, ``noise``)."""
ALL_THREAT_MODELS: tuple[str, ...] = (*THREAT_MODELS, MODEL_FREE)
DEFAULT_THREAT_MODEL = "adaptive"
"""A summary or leaderboard result without ``threat_model`` (older runs) is adaptive."""


def budget_text(budget: dict | None) -> str:
    """A non-pixel budget as text (``rate=0.1 edits=0``, ``count=0 ratio=0.25``); empty for a pixel
    budget, which tables, regression and labels show as ``eps``."""
    budget = budget or {}
    if set(budget) <= {"eps"}:
        return ""
    return " ".join(f"{key}={value:.4g}" for key, value in budget.items())


def metric_base(column: str) -> str:
    """The metric or quantity a result column was computed with: ``psnr_vs_clean_rec`` and
    ``clean_rec_psnr`` are PSNR; prompt-robustness's ``clean_prompt_zero-shot`` (of the clean prompt's
    generations) and ``zero-shot_ratio`` (perturbed over clean) are zero-shot accuracy;
    sampling-perturbation's ``latent_noise_lpips`` (of D(mu + s n)) is LPIPS and
    ``unperturbed_zero-shot`` (of the unperturbed generations) zero-shot accuracy."""
    for prefix in ("clean_rec_", "clean_prompt_", "latent_noise_", "unperturbed_"):
        column = column.removeprefix(prefix)
    return column.split("_vs_")[0].removesuffix("_ratio")
