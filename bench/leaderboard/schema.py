"""The leaderboard entry schema (version 1): structure, types and value ranges, in plain Python.

This module imports nothing heavy; registry names, metric directions and weight hashes are checked
in ``bench.leaderboard.validate``. Every problem is reported as ``KEY.PATH: what is wrong; the fix``.
See leaderboards/SCHEMA.md for the layout.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from bench.columns import ALL_THREAT_MODELS, DEFAULT_THREAT_MODEL, SCENARIO_QUANTITIES  # noqa: F401 (validate.py reads schema.SCENARIO_QUANTITIES)
from bench.errors import BenchError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Headline:
    """How a track ranks: the worst case of ``metric`` over the track's attacks at their budgets (every
    threat model), read from the entry's measured cells, beside a clean-fidelity score."""

    metric: str
    attacks: tuple[tuple[str, float], ...]
    """(attack registry name, L-inf budget in [0, 1] pixels) pairs the worst case runs over."""
    clean_metric: str
    clean_attack: str | None = "none"
    """The row the clean score is read from (the ``none`` attack), or None where every row carries it."""
    explained: str = ""
    budget: tuple[tuple[str, float], ...] = ()
    """A non-pixel budget every headline cell must have been run at (attack config key, value), e.g. the
    sampling perturbation's ``scale``; a cell at any other budget does not count."""


@dataclass(frozen=True)
class Track:
    name: str
    scenario: str
    title: str
    headline: Headline


TRACKS = {track.name: track for track in (
    Track("vae-protection", "reconstruction", "Autoencoder robustness: attacked images through the VAE",
          Headline("psnr", (("noise", 0.0313725), ("pgd-encoder", 0.0313725), ("photoguard", 0.0627451)),
                   clean_metric="psnr",
                   explained="robust: the lowest PSNR of the reconstruction D(E(x')) of an attacked image x' "
                             "against the clean image x over the track's attacks (the analogue of robust "
                             "accuracy); clean: the PSNR of D(E(x)) against x")),
    Track("edit-protection", "img2img-edit",
          "Protected images under img2img editing: how far the edits of protected images move from the clean edits",
          Headline("lpips", (("noise", 0.0627451), ("photoguard", 0.0627451), ("mist", 0.0313725),
                             ("glaze-like", 0.0627451)),
                   clean_metric="clean_rec_psnr", clean_attack=None,
                   explained="robust: the largest LPIPS between the img2img edit of a protected (attacked) image "
                             "and the edit of the clean image over the track's protections (lower: the defense "
                             "undoes the protection); clean: the PSNR of the defense's reconstruction of clean "
                             "images")),
    Track("prompt-robustness", "prompt-robustness",
          "Text-to-image models under typo'd prompts: class accuracy of what they generate from perturbed prompts",
          Headline("zero-shot", (("typos", 0.0), ("typos-adaptive", 0.0)),
                   clean_metric="clean_prompt_zero-shot", clean_attack=None,
                   explained="robust: the lowest class accuracy (clip-proxy zero-shot) of the generations from "
                             "the suite's captions with one typo in the class name, random or adaptive (the "
                             "frozen set grids/data/typo-prompts.json), each generated with its clean prompt's "
                             "seed; clean: the class accuracy of the clean prompts' generations")),
    Track("poisoning", "poisoning",
          "Training-data poisoning: Nightshade against a text-to-image model fine-tuned through the defense's autoencoder",
          Headline("attack_success", (("nightshade", 0.0313725), ("nightshade", 0.1254902)),
                   clean_metric="reference_collateral_accuracy", clean_attack=None,
                   explained="robust: the highest Nightshade attack success (share of generations for the poisoned "
                             "concept whose image-text similarity to its prompt falls below tau, calibrated on the "
                             "clean fine-tune) over the track's budgets, 90 poisons (lower is better); clean: the "
                             "zero-shot accuracy of the clean fine-tune's generations of the other classes")),
    Track("tokenizer", "sampling-perturbation",
          "Tokenizers under sampling perturbations: class accuracy of a latent diffusion model's generations when "
          "its sampling trajectory is perturbed",
          Headline("zero-shot", (("sampling-noise", 0.0), ("sampling-pgd", 0.0)),
                   clean_metric="unperturbed_zero-shot", clean_attack=None, budget=(("scale", 0.2),),
                   explained="robust: the lowest class accuracy (clip-proxy zero-shot) of the generations of the "
                             "latent diffusion model trained on the tokenizer's latents when the input x_t of every "
                             "sampler step after the first is perturbed, by Gaussian noise or a one-step sign attack "
                             "on the denoiser, of size 0.2 in the model's scaled latent units (VE-loss, arXiv "
                             "2603.21085); clean: the class accuracy of its unperturbed generations from the same "
                             "prompts and seeds")),
    Track("denoiser", "sampling-attack",
          "Pixel diffusion models sampling under attack: FID of their samples when the sampling trajectory is perturbed",
          Headline("fid", (("sampling-noise", 0.0), ("sampling-pgd", 0.0)),
                   clean_metric="unperturbed_fid", clean_attack=None, budget=(("scale", 0.02),),
                   explained="robust: the highest FID (against clean test images) of the denoiser's samples when "
                             "the input x_t of its sampler's steps is perturbed by 0.02 in [0, 1] pixel units "
                             "(about 5/255) per step, by Gaussian noise or by PGD on its denoising loss, every "
                             "variant the entry ran (steps attacked, iterations; Robustadv, arXiv 2505.21742); "
                             "clean: the FID of its unperturbed samples from the same seeds")),
)}

ENTRY_KEYS = {"schema_version", "track", "name", "paper", "defense", "weights", "scenario", "data", "results",
              "grid", "suite_version", "provenance", "verified"}
OPTIONAL_ENTRY_KEYS = {"verification", "authors", "venue", "footnote", "unreliable"}
DESCRIPTIVE_KEYS = ("paper", "authors", "venue", "footnote", "unreliable")
"""What the pages say about an entry, not what was measured: outside the verification record's sha256."""
TEXT_LIMITS = {"authors": 300, "venue": 100, "footnote": 500}
URL_MAX = 300
DEFENSE_KEYS = {"name", "label", "version", "config"}
PLUGIN_KEYS = {"name", "version", "config"}
ATTACK_KEYS = {"label", "name", "version", "config"}
WEIGHT_KEYS = {"path", "sha256"}
RESULT_KEYS = {"attack", "eps", "metrics"}
OPTIONAL_RESULT_KEYS = {"threat_model"}
THREAT_MODELS = ALL_THREAT_MODELS
METRIC_KEYS = {"claimed", "measured", "low", "high", "n", "higher_is_better", "kind"}
PROVENANCE_KEYS = {"git", "python", "device", "dtype"}
OPTIONAL_PROVENANCE_KEYS = {"packages", "seed", "date"}

METRIC_RANGES = {"ssim": (-1.0, 1.0), "lpips": (0.0, math.inf), "psnr": (0.0, math.inf), "linf": (0.0, 1.0),
                 "latent_shift": (0.0, math.inf), "lpips_input": (0.0, math.inf), "clip-sim": (-1.0, 1.0),
                 "zero-shot": (0.0, 1.0), "clip-score": (0.0, 100.0), "lpips_to_unperturbed": (0.0, math.inf),
                 "class_changed": (0.0, 1.0)}
"""Known ranges by base metric name; any other metric (kid, which can be negative, ...) only has to be finite."""
VALUE_RANGES = {"fid": (0.0, math.inf), "largest_class_share": (0.0, 1.0), "class_entropy": (0.0, 1.0)}
"""Ranges of the value alone (measured, claimed): their bootstrap intervals, shifted by the bootstrap's
bias (``bench.stats.set_interval``), may cross the bound."""

def metric_range(name: str) -> tuple[float, float]:
    """The range of a metric column: its own or its base metric's; a ratio (``zero-shot_ratio``, perturbed
    over clean) is any finite number."""
    if name.endswith("_ratio"):
        return -math.inf, math.inf
    return METRIC_RANGES.get(name, METRIC_RANGES.get(base_metric(name), (-math.inf, math.inf)))


METRIC_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
REMOTE_WEIGHTS = ("hf://", "https://")


def base_metric(column: str) -> str:
    """``psnr_vs_clean_rec`` and ``clean_rec_psnr`` -> ``psnr``: the registered metric a result column
    was computed with (``bench.columns.metric_base``)."""
    from bench.columns import metric_base

    return metric_base(column)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "true/false", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "an object"}.get(type(value), type(value).__name__)


def fail(where: str, message: str) -> BenchError:
    return BenchError(f"{where}: {message}")


def mapping(value: Any, where: str, required: set[str], optional: frozenset[str] | set[str] = frozenset(),
            ) -> dict[str, Any]:
    """An object with exactly the ``required`` keys (plus any of ``optional``); a wrong key gets a hint."""
    if not isinstance(value, dict):
        raise fail(where, f"expected an object with keys {', '.join(sorted(required))}, got {_kind(value)}")
    allowed = required | set(optional)
    for key in value:
        if key not in allowed:
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(sorted(allowed))}"
            raise fail(f"{where}.{key}" if where else key, f"unknown key {key!r}; {hint}")
    for key in sorted(required):
        if key not in value:
            raise fail(where or "entry", f"the key {key!r} is missing; add it (see leaderboards/SCHEMA.md)")
    return value


def free_mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(where, f"expected an object, got {_kind(value)}")
    return value


def string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise fail(where, f"expected a non-empty string, got {_kind(value)} {value!r}")
    return value


def number(value: Any, where: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite JSON number in [low, high]; a number written as a string is named as such."""
    if isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            raise fail(where, f"{value!r} is a string; write a number") from None
        if math.isfinite(parsed):
            raise fail(where, f'"{value}" is a string; write the number {value.strip()}')
        raise fail(where, f'"{value}" is a string and not a finite number; write a finite number')
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(where, f"expected a number, got {_kind(value)} {value!r}")
    try:
        finite = math.isfinite(value)
    except OverflowError:
        raise fail(where, f"a {len(str(abs(value)))}-digit number is too large to be a measurement; check the "
                   "number") from None
    if not finite:
        raise fail(where, f"{value} is not a finite number; write a finite number")
    if not low <= value <= high:
        raise fail(where, f"{value} is outside [{low:g}, {high:g}], the range of this quantity; check the number")
    return float(value)


def whole(value: Any, where: str, low: int = 0, high: int = 10**12) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = value if not isinstance(value, int) or abs(value) < 10**20 else f"a {len(str(value))}-digit number"
        raise fail(where, f"expected a whole number in [{low}, {high}], got {_kind(value)} {shown!r}")
    return value


LABEL_MAX = 100
CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def label(value: Any, where: str) -> str:
    """A name shown on the pages: a non-empty string on one line (no control characters), at most 100
    characters; the renders escape it as well."""
    text = string(value, where)
    if CONTROL.search(text):
        raise fail(where, f"{text!r} holds a control character (newline, tab, ...); write it on one line")
    if len(text) > LABEL_MAX:
        raise fail(where, f"is {len(text)} characters long; keep it under {LABEL_MAX}")
    return text


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise fail(where, f"expected true or false, got {_kind(value)} {value!r}")
    return value


def check_entry(entry: Any, where: str = "") -> dict[str, Any]:
    """Structure, types and ranges of one entry; raises a BenchError naming the first bad key path."""
    entry = mapping(entry, where, ENTRY_KEYS, OPTIONAL_ENTRY_KEYS)
    if type(entry["schema_version"]) is not int or entry["schema_version"] != SCHEMA_VERSION:
        raise fail("schema_version", f"{entry['schema_version']!r} is not a known schema version; "
                   f"this suite reads version {SCHEMA_VERSION}")
    track = string(entry["track"], "track")
    if track not in TRACKS:
        raise fail("track", f"unknown track {track!r}; known tracks: {', '.join(sorted(TRACKS))}")
    string(entry["name"], "name")
    check_descriptive(entry)
    defense = mapping(entry["defense"], "defense", DEFENSE_KEYS)
    for key in ("name", "label", "version"):
        label(defense[key], f"defense.{key}")
    free_mapping(defense["config"], "defense.config")
    scenario = mapping(entry["scenario"], "scenario", PLUGIN_KEYS)
    label(scenario["name"], "scenario.name")
    if scenario["name"] != TRACKS[track].scenario:
        raise fail("scenario.name", f"track {track!r} holds {TRACKS[track].scenario!r} results, not "
                   f"{scenario['name']!r}; submit to the track of that scenario")
    string(scenario["version"], "scenario.version")
    free_mapping(scenario["config"], "scenario.config")
    free_mapping(entry["data"], "data")
    check_weights_list(entry["weights"])
    check_results(entry["results"])
    grid = free_mapping(entry["grid"], "grid")
    defenses = grid.get("defenses")
    if not isinstance(defenses, list) or len(defenses) != 1:
        raise fail("grid.defenses", "must list exactly the one defense of this entry")
    string(entry["suite_version"], "suite_version")
    provenance = mapping(entry["provenance"], "provenance", PROVENANCE_KEYS, OPTIONAL_PROVENANCE_KEYS)
    for key in sorted(PROVENANCE_KEYS):
        string(provenance[key], f"provenance.{key}")
    boolean(entry["verified"], "verified")
    verification = entry.get("verification")
    if verification is not None:
        free_mapping(verification, "verification")
    if entry["verified"] and verification is None:
        raise fail("verified", "is true but there is no verification record; run `bench verify ENTRY`")
    return entry


def check_grid_scenario(entry: dict[str, Any]) -> None:
    """The entry's grid runs its track's scenario alone: that rerun is what ``bench verify`` compares."""
    grid, expected = entry["grid"], TRACKS[entry["track"]].scenario
    scenarios = grid.get("scenarios", grid.get("scenario"))
    names = [item.get("name") if isinstance(item, dict) else item
             for item in (scenarios if isinstance(scenarios, list) else [scenarios])]
    if names != [expected]:
        raise fail("grid.scenario", f"the entry's grid must run the track's scenario {expected!r} alone, not "
                   f"{names!r}: its rerun is what verifies the results; resubmit from such a run")


def check_descriptive(entry: dict[str, Any]) -> None:
    """``paper``, ``authors``, ``venue``, ``footnote``, ``unreliable``: shown on the pages (escaped there too)."""
    paper = entry["paper"]
    if paper is not None and not (isinstance(paper, str) and len(paper) <= URL_MAX
                                  and re.match(r"^https?://[^\s<>\"'`]+$", paper)):
        shown = paper if not isinstance(paper, str) or len(paper) <= 80 else paper[:80] + "..."
        raise fail("paper", f"{shown!r} is not an http(s) URL of at most {URL_MAX} characters; write the "
                   "paper's URL or null")
    for key, limit in TEXT_LIMITS.items():
        if key in entry:
            text = string(entry[key], key)
            if CONTROL.search(text):
                raise fail(key, "holds a control character (newline, tab, ...); write it on one line")
            if len(text) > limit:
                raise fail(key, f"is {len(text)} characters long; keep it under {limit}")
    if boolean(entry.get("unreliable", False), "unreliable") and "footnote" not in entry:
        raise fail("unreliable", "is true but there is no footnote saying why; add a footnote")


def check_weights_list(weights: Any) -> None:
    if not isinstance(weights, list):
        raise fail("weights", f"expected a list of {{path, sha256}} objects, got {_kind(weights)}")
    for i, item in enumerate(weights):
        where = f"weights[{i}]"
        mapping(item, where, WEIGHT_KEYS)
        string(item["path"], f"{where}.path")
        if not (isinstance(item["sha256"], str) and SHA256.match(item["sha256"])):
            raise fail(f"{where}.sha256", f"{item['sha256']!r} is not a sha256; write 64 lower-case hex digits "
                       "(`sha256sum FILE`)")


NON_PIXEL_BUDGETS = ("scale", "edits", "rate", "count", "ratio", "p")
"""Attack config fields that are a budget beside eps (``bench.grid.BUDGET_AXES``): two results of one
attack may differ only by them (a sampling perturbation's curve over ``scale``)."""


def _budget_of(config: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The non-pixel budget as hashable text, whatever a hostile entry put there."""
    return tuple((key, json.dumps(config[key], sort_keys=True, default=str)) for key in NON_PIXEL_BUDGETS
                 if key in config)


def check_results(results: Any) -> None:
    if not isinstance(results, list) or not results:
        raise fail("results", "expected a non-empty list of {attack, eps, metrics} objects")
    seen: dict[tuple, int] = {}
    for i, result in enumerate(results):
        where = f"results[{i}]"
        mapping(result, where, RESULT_KEYS, OPTIONAL_RESULT_KEYS)
        threat = result.get("threat_model", DEFAULT_THREAT_MODEL)
        if threat not in THREAT_MODELS:
            raise fail(f"{where}.threat_model", f"{threat!r} is not a threat model; write one of "
                       f"{', '.join(THREAT_MODELS)}")
        attack = mapping(result["attack"], f"{where}.attack", ATTACK_KEYS)
        for key in ("label", "name", "version"):
            label(attack[key], f"{where}.attack.{key}")
        free_mapping(attack["config"], f"{where}.attack.config")
        eps = number(result["eps"], f"{where}.eps", 0.0, 1.0)
        budget = _budget_of(attack["config"])
        cell = (attack["label"], eps, threat, budget)
        if cell in seen:
            also = "".join(f" {key}={value}" for key, value in budget)
            raise fail(where, f"attack {attack['label']!r} at eps {eps:g}{also} ({threat}) already appears in "
                       f"results[{seen[cell]}]; keep one")
        seen[cell] = i
        metrics = result["metrics"]
        if not isinstance(metrics, dict) or not metrics:
            raise fail(f"{where}.metrics", "expected a non-empty object of metric name -> numbers")
        for name, values in metrics.items():
            check_metric(name, values, f"{where}.metrics.{name}")


def check_metric(name: str, values: Any, where: str) -> None:
    if not METRIC_NAME.match(name):
        raise fail(where, f"{name!r} is not a metric column name (lower-case letters, digits, '_', '-')")
    values = mapping(values, where, METRIC_KEYS)
    low, high = metric_range(name)
    value_low, value_high = VALUE_RANGES.get(name, VALUE_RANGES.get(base_metric(name), (low, high)))
    number(values["measured"], f"{where}.measured", value_low, value_high)
    interval_low = number(values["low"], f"{where}.low", low, high)
    interval_high = number(values["high"], f"{where}.high", low, high)
    if interval_low > interval_high:
        raise fail(f"{where}.low", f"{interval_low} is above high {interval_high}; write the interval in order")
    if values["claimed"] is not None:
        number(values["claimed"], f"{where}.claimed", value_low, value_high)
    whole(values["n"], f"{where}.n", low=1)
    boolean(values["higher_is_better"], f"{where}.higher_is_better")
    if values["kind"] not in ("mean", "set"):
        raise fail(f"{where}.kind", f"{values['kind']!r} is not 'mean' (per-sample average) or 'set' (FID, KID)")


def weights_are_remote(path: str) -> bool:
    return path.startswith(REMOTE_WEIGHTS)
