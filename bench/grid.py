"""Grid files: YAML axes multiplied out into cells, with ``exclude:`` and per-cell ``overrides:``.

The whole grid is resolved and validated (plugin names, parameters, budgets, data) before anything
runs. A cell's key is a hash of its resolved configuration and the versions of its plugins.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.columns import DEFAULT_THREAT_MODEL, MODEL_FREE, THREAT_MODELS, budget_text
from bench.data import DataSpec
from bench.errors import NUMBER_HINT, BenchError
from bench.plugins import ATTACKS, DEFENSES, METRICS, SCENARIOS

GRID_KEYS = {"name", "description", "seed", "seeds", "batch_size", "data", "scenario", "scenarios",
             "metrics", "defenses", "attacks", "eps", "rate", "edits", "count", "ratio", "scale", "p", "exclude",
             "overrides", "threat_models", "transfer_source"}
CELL_KEYS = {"n", "seed", "batch_size"}
BUDGET_AXES = ("eps", "rate", "edits", "count", "ratio", "scale", "p")
"""The grid's budget axes, each injected into the attacks whose ``Attack.budgets`` name it: ``eps`` for
pixel attacks, ``rate`` / ``edits`` for prompt attacks, ``count`` / ``ratio`` for poisoning attacks,
``scale`` (latent units) for sampling attacks, ``p`` (a share of token positions) for conditioning
attacks."""
FRACTION_AXES = ("eps", "rate", "ratio", "p")
MATCH_KEYS = {"defense", "attack", "scenario", "seed", "threat_model", *BUDGET_AXES}
DEFAULT_TRANSFER_SOURCE = "vae-kl"
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class PluginSpec:
    """A registry name plus its resolved config (all defaults filled in) and code version."""

    name: str
    config: Any
    version: str
    label: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "config": dataclasses.asdict(self.config)}

    def build(self, registry):
        instance = registry.get(self.name)(self.config)
        instance.name = self.name
        return instance



@dataclass(frozen=True)
class Cell:
    """One evaluation. ``threat_model``: ``adaptive`` (crafted against ``defense`` itself, white-box;
    where the grid names a ``transfer_source`` the transferred perturbation is a second candidate),
    ``transfer`` (crafted against ``transfer_source``, then fed to ``defense``), or ``none`` for a
    model-free attack."""

    defense: PluginSpec
    attack: PluginSpec
    scenario: PluginSpec
    metrics: tuple[PluginSpec, ...]
    data: DataSpec
    seed: int
    batch_size: int
    threat_model: str = DEFAULT_THREAT_MODEL
    transfer_source: PluginSpec | None = None
    inputs: dict[str, Any] | None = dataclasses.field(default=None, hash=False)
    """Set by the runner (``Runner.bind``): dtype, device type and the content hash of every file the
    config names (``bench.identity``), so the key changes when any of them does."""

    def resolved(self) -> dict[str, Any]:
        return {"defense": self.defense.as_dict(), "attack": self.attack.as_dict(),
                "scenario": self.scenario.as_dict(), "metrics": [m.as_dict() for m in self.metrics],
                "data": dataclasses.asdict(self.data), "seed": self.seed, "batch_size": self.batch_size,
                "threat_model": self.threat_model,
                "transfer_source": self.transfer_source.as_dict() if self.transfer_source else None,
                **({"inputs": self.inputs} if self.inputs is not None else {})}

    @property
    def config_key(self) -> str:
        """The key of the resolved config alone (what the grid asks for, whatever it runs on)."""
        return dataclasses.replace(self, inputs=None).key if self.inputs is not None else self.key

    @property
    def label(self) -> str:
        return f"{self.defense.label} x {self.attack.label} [{self.threat_model}] ({self.scenario.label}) {self.budget_label}"

    @property
    def budget(self) -> dict[str, Any]:
        """The attack's configured budget (``eps``; ``rate`` / ``edits``; ``count`` / ``ratio``)."""
        return self.attack.build(ATTACKS).budget()

    @property
    def budget_label(self) -> str:
        return budget_text(self.budget) or f"eps={self.eps:.4g}"

    @property
    def key(self) -> str:
        canonical = json.dumps(self.resolved(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def eps(self) -> float:
        return float(getattr(self.attack.config, "eps", 0.0))


def _plugin(registry, entry: Any, where: str, extra: dict | None = None) -> PluginSpec:
    if isinstance(entry, str):
        name, params = entry, {}
    elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
        params = {k: v for k, v in entry.items() if k not in ("name", "label")}
        name = entry["name"]
    else:
        raise BenchError(f"{where}: each entry must be a name or a mapping with a `name:` key, got {entry!r}")
    cls = registry.get(name)
    label = entry.get("label", name) if isinstance(entry, dict) else name
    merged = {**registry.preset(name), **params, **(extra or {})}
    try:
        config = cls.make_config(merged)
    except BenchError as err:
        raise BenchError(f"{where}: {err}") from None
    return PluginSpec(name, config, cls.version, str(label))


def _a(kind: str) -> str:
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _check_differentiates(attack: PluginSpec, defense: PluginSpec, scenario: PluginSpec, where: str) -> None:
    kind = attack.build(ATTACKS).differentiates()
    defense_kind = DEFENSES.get(defense.name).kind
    if kind is not None and kind not in SCENARIOS.get(scenario.name).provides(defense_kind):
        raise BenchError(f"{where}: attack {attack.name!r} differentiates {_a(kind)} model, which scenario "
                         f"{scenario.name!r} does not provide for the {defense_kind} {defense.name!r}; use scenario "
                         "img2img-edit or change the attack's settings")


def _check_model_kind(defense: PluginSpec, scenario: PluginSpec, where: str, role: str = "defense") -> None:
    kind = DEFENSES.get(defense.name).kind
    evaluated = SCENARIOS.get(scenario.name).model_kinds
    if kind not in evaluated:
        raise BenchError(f"{where}: {role} {defense.name!r} is {_a(kind)} model, but scenario {scenario.name!r} "
                         f"evaluates only {' and '.join(sorted(evaluated))} models; pair it with a scenario that "
                         f"evaluates {kind} models (e.g. toy) or drop it")


def _check_surface(attack: PluginSpec, scenario: PluginSpec, where: str) -> None:
    surface = ATTACKS.get(attack.name).surface
    accepted = SCENARIOS.get(scenario.name).surfaces
    if surface not in accepted:
        raise BenchError(f"{where}: attack {attack.name!r} perturbs {surface}, but scenario {scenario.name!r} takes "
                         f"only {' and '.join(sorted(accepted))} attacks; pair it with a scenario that takes "
                         f"{surface} (e.g. toy) or drop it")


def _budget_points(entry: Any, axes: dict[str, list]) -> list[tuple[str, Any] | None]:
    """The grid's budget values that apply to an attack (its ``budgets``), one cell each; [None] when
    none does (the attack's own default)."""
    name = entry.get("name") if isinstance(entry, dict) else entry
    budgets = ATTACKS.get(name).budgets if isinstance(name, str) else ()
    points = [(key, value) for key in BUDGET_AXES if key in budgets for value in axes[key]]
    return points or [None]


def _uses_model(entry: Any) -> bool:
    name = entry.get("name") if isinstance(entry, dict) else entry
    return not isinstance(name, str) or ATTACKS.get(name).uses_model


def _threat_models(raw: dict[str, Any], source: str) -> list[str]:
    threats = _as_list(raw.get("threat_models", [DEFAULT_THREAT_MODEL]), "threat_models")
    for threat in threats:
        if threat not in THREAT_MODELS:
            close = difflib.get_close_matches(str(threat), THREAT_MODELS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"use {' or '.join(THREAT_MODELS)}"
            raise BenchError(f"{source}: unknown threat model {threat!r}; {hint}")
    if not threats:
        raise BenchError(f"{source}: `threat_models:` is empty; list adaptive and/or transfer")
    return threats


def _check_metric_kinds(metrics: tuple[PluginSpec, ...], scenario: PluginSpec, where: str) -> None:
    kinds = SCENARIOS.get(scenario.name).metric_kinds
    for metric in metrics:
        kind = METRICS.get(metric.name).kind
        if kind not in kinds:
            raise BenchError(f"{where}: scenario {scenario.name!r} does not compute {kind} metrics like "
                             f"{metric.name!r} (it computes {' and '.join(kinds)} metrics); drop it from metrics:")


def _as_list(value: Any, key: str) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _matches(match: dict, axes: dict) -> bool:
    for key, wanted in match.items():
        actual = axes[key]
        if isinstance(actual, float) and isinstance(wanted, (int, float)):
            if abs(actual - wanted) > 1e-9:
                return False
        elif actual != wanted:
            return False
    return True


def _check_keys(mapping: dict, allowed: set[str], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(sorted(allowed))}"
            raise BenchError(f"{where}: unknown key {key!r}; {hint}")


def _entry_name(entry: Any) -> str:
    return entry if isinstance(entry, str) else entry.get("label", entry.get("name")) if isinstance(entry, dict) else ""


def parse_grid(raw: dict[str, Any], source: str = "grid") -> list[Cell]:
    if not isinstance(raw, dict):
        raise BenchError(f"{source}: a grid file must be a YAML mapping (see grids/smoke.yaml)")
    _check_keys(raw, GRID_KEYS, source)
    for required in ("defenses", "attacks"):
        if not raw.get(required):
            raise BenchError(f"{source}: `{required}:` is missing or empty; list at least one")
    data_raw = raw.get("data", {}) or {}
    if not isinstance(data_raw, dict):
        raise BenchError(f"{source}: `data:` must be a mapping like {{dataset: fashion-mnist, n: 64}}")
    _check_keys(data_raw, {f.name for f in dataclasses.fields(DataSpec)}, f"{source}: data")
    scenarios = _as_list(raw.get("scenarios", raw.get("scenario", "reconstruction")), "scenarios")
    metrics_raw = _as_list(raw.get("metrics", ["psnr", "ssim", "lpips"]), "metrics")
    seeds = _as_list(raw.get("seeds", raw.get("seed", 0)), "seeds")
    budget_axes = {key: _as_list(raw.get(key), key) for key in BUDGET_AXES}
    for axis, values in (("seeds", seeds), ("scenarios", scenarios)):
        if not values:
            raise BenchError(f"{source}: `{axis}:` is empty; list at least one (or leave it out for the default)")
    for eps in budget_axes["eps"]:
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or math.isnan(eps):
            raise BenchError(f"{source}: eps {eps!r} is not a number; {NUMBER_HINT}")
        if not 0 <= eps <= 1:
            raise BenchError(f"{source}: eps {eps!r} is outside [0, 1]; budgets are in [0,1] pixel units "
                             "(8/255 = 0.0314)")
    for key in ("rate", "ratio", "p"):
        for value in budget_axes[key]:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
                    or not 0 <= value <= 1:
                raise BenchError(f"{source}: {key} {value!r} must be a number in [0, 1] (a fraction)")
    for value in budget_axes["scale"]:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise BenchError(f"{source}: scale {value!r} must be a finite number >= 0 (the sampling perturbation's "
                             "size in the diffusion model's latent units)")
    for key in ("edits", "count"):
        for value in budget_axes[key]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise BenchError(f"{source}: {key} {value!r} must be a non-negative whole number")
    excludes = _as_list(raw.get("exclude"), "exclude")
    overrides = _as_list(raw.get("overrides"), "overrides")
    for i, rule in enumerate(excludes):
        if not isinstance(rule, dict):
            raise BenchError(f"{source}: exclude[{i}] must be a mapping like {{defense: vae-kl, attack: noise}}")
        _check_keys(rule, MATCH_KEYS, f"{source}: exclude[{i}]")
    for i, rule in enumerate(overrides):
        if not isinstance(rule, dict) or not isinstance(rule.get("set"), dict) \
                or not isinstance(rule.get("match") or {}, dict):
            raise BenchError(f"{source}: overrides[{i}] needs `match:` and `set:` mappings")
        _check_keys(rule, {"match", "set"}, f"{source}: overrides[{i}]")
        _check_keys(rule.get("match") or {}, MATCH_KEYS, f"{source}: overrides[{i}].match")

    batch_size = raw.get("batch_size", 16)
    threats = _threat_models(raw, source)
    transfer_raw = raw.get("transfer_source", DEFAULT_TRANSFER_SOURCE if "transfer" in threats else None)
    if "transfer" in threats and not transfer_raw:
        raise BenchError(f"{source}: the transfer threat model needs `transfer_source:` (the undefended model the "
                         f"perturbations are crafted on, e.g. {DEFAULT_TRANSFER_SOURCE}); set it or drop transfer")
    transfer = _plugin(DEFENSES, transfer_raw, f"{source}: transfer_source") if transfer_raw else None
    cells: list[Cell] = []
    seen: set[str] = set()
    metric_specs = tuple(_plugin(METRICS, m, f"{source}: metrics") for m in metrics_raw)
    combinations = ((defense, attack, scenario, seed, point, threat)
                    for defense, attack, scenario, seed in itertools.product(
                        _as_list(raw["defenses"], "defenses"), _as_list(raw["attacks"], "attacks"), scenarios, seeds)
                    for point in _budget_points(attack, budget_axes) for threat in threats)
    for defense, attack, scenario, seed, point, threat in combinations:
        attack_name = _entry_name(attack)
        if not _uses_model(attack):
            threat = MODEL_FREE
        axes = {"defense": _entry_name(defense), "attack": attack_name, "scenario": _entry_name(scenario),
                "seed": seed, "threat_model": threat, **dict.fromkeys(BUDGET_AXES),
                **(dict([point]) if point else {})}
        if any(_matches(rule, axes) for rule in excludes):
            continue
        settings: dict[str, Any] = {"n": data_raw.get("n", 64), "seed": seed, "batch_size": batch_size}
        attack_extra: dict[str, Any] = {} if point is None or attack_name == "none" else dict([point])
        for rule in overrides:
            if _matches(rule.get("match") or {}, axes):
                for key, value in rule["set"].items():
                    (settings if key in CELL_KEYS else attack_extra)[key] = value
        where = f"{source}: cell {axes['defense']} x {attack_name}"
        for key in ("seed", "batch_size"):
            if isinstance(settings[key], bool) or not isinstance(settings[key], int) or settings[key] < 0:
                raise BenchError(f"{where}: {key} must be a non-negative whole number, got {settings[key]!r}")
        if settings["batch_size"] < 1:
            raise BenchError(f"{where}: batch_size must be at least 1")
        if settings["seed"] > MAX_SEED:  # batch seeds (seed * 1000003 + batch) must fit torch's 64-bit seed
            raise BenchError(f"{where}: seed must be at most {MAX_SEED}, got {settings['seed']}")
        data = DataSpec(**{**data_raw, "n": settings["n"]})
        set_metrics = [m.name for m in metric_specs if METRICS.get(m.name).kind == "set"]
        if set_metrics and data.n < 2:
            raise BenchError(f"{where}: {set_metrics[0]} compares two sets of images and needs n of at least 2, "
                             f"got n={data.n}; raise n or drop it from metrics:")
        scenario_spec = _plugin(SCENARIOS, scenario, where)
        _check_metric_kinds(metric_specs, scenario_spec, where)
        attack_spec = _plugin(ATTACKS, attack, where, attack_extra)
        _check_surface(attack_spec, scenario_spec, where)
        defense_spec = _plugin(DEFENSES, defense, where)
        _check_model_kind(defense_spec, scenario_spec, where)
        _check_differentiates(attack_spec, defense_spec, scenario_spec, where)
        if threat != MODEL_FREE and transfer is not None:
            _check_model_kind(transfer, scenario_spec, where, "transfer_source")
        cell = Cell(defense=defense_spec, attack=attack_spec,
                    scenario=scenario_spec, metrics=metric_specs, data=data,
                    seed=settings["seed"], batch_size=settings["batch_size"], threat_model=threat,
                    transfer_source=None if threat == MODEL_FREE else transfer)
        if cell.key not in seen:
            seen.add(cell.key)
            cells.append(cell)
    if not cells:
        raise BenchError(f"{source}: every cell is excluded; loosen `exclude:`")
    return cells


def _plain_yaml(value: Any, source: str, where: str = "") -> Any:
    """The YAML document with JSON's types only (the grid is stored in run.json): a date or time is
    kept as its ISO text; binary data and sets are refused."""
    if isinstance(value, dict):
        return {_plain_yaml(k, source, where): _plain_yaml(v, source, f"{where}.{k}" if where else str(k))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_yaml(v, source, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    kind = {bytes: "binary (!!binary) value", set: "set (!!set)"}.get(type(value), type(value).__name__)
    raise BenchError(f"{source}: {where or 'the document'} is a YAML {kind}, which a grid cannot hold; write a "
                     "string, number, list or mapping")


def load_grid(path: str | Path) -> tuple[dict[str, Any], list[Cell]]:
    path = Path(path)
    if not path.exists():
        raise BenchError(f"grid file {path} does not exist; see grids/ for examples")
    if not path.is_file():
        raise BenchError(f"grid file {path} is not a file; name a YAML grid file (see grids/ for examples)")
    try:
        raw = _plain_yaml(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
    except UnicodeDecodeError:
        raise BenchError(f"{path} is not a UTF-8 text file; a grid is a YAML text file (see grids/smoke.yaml)") from None
    except RecursionError:
        raise BenchError(f"{path}: the YAML is nested too deeply to be a grid; see grids/smoke.yaml") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise BenchError(f"{path}: malformed YAML{where} ({getattr(err, 'problem', err)}); fix the syntax") from None
    return raw, parse_grid(raw, str(path))
