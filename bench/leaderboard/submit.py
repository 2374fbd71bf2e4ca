"""``bench submit RUN_DIR --track T``: one leaderboard entry from a finished run, provenance included.

A run may hold several defenses; an entry holds one (``--defense LABEL``), one scenario (the track's)
and one seed. Claimed numbers come from an optional JSON file, in either shape::

    {"pgd-encoder": {"psnr": 28.1, "ssim": 0.91}}                      # attack label -> metric -> number
    [{"attack": "pgd-encoder", "eps": 0.0314, "metric": "psnr", "claimed": 28.1}]
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

from bench.columns import DEFAULT_THREAT_MODEL
from bench.errors import BenchError
from bench.leaderboard import files, safety, schema, validate

log = logging.getLogger(__name__)

HF_CACHE_FILE = re.compile(r"models--([^/]+?)--([^/]+)/snapshots/([0-9a-f]+)/(.+)$")
EPS_TOLERANCE = 1e-6


def read_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's grid and the summaries of all its cells; an unfinished run is refused."""
    run_file = run_dir / "run.json"
    if not run_file.is_file():
        raise BenchError(f"{run_dir} is not a run folder (no run.json); run `bench run GRID --out {run_dir}` first")
    run = _read_stored_json(run_file, f"{run_dir} has a damaged run.json; rerun the grid into a new --out folder")
    if not isinstance(run, dict) or not isinstance(run.get("cells"), list):
        raise BenchError(f"{run_file} is not a run record this suite wrote; rerun the grid into a new --out folder")
    summaries, missing = [], []
    for key in run["cells"]:
        path = run_dir / "cells" / key / "summary.json"
        if path.is_file():
            summaries.append(_read_stored_json(path, f"cell {key} of {run_dir} is damaged; rerun the grid with "
                                                     f"`bench run GRID --out {run_dir}` to recompute it"))
        else:
            missing.append(key)
    if missing:
        raise BenchError(f"{run_dir}: {len(missing)} of {len(run['cells'])} cells are unfinished (e.g. {missing[0]}); "
                         f"finish the run with `bench run GRID --out {run_dir}` before submitting")
    return run["grid"], summaries


def _read_stored_json(path: Path, damaged: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BenchError(f"{damaged} ({path.name}: {type(err).__name__})") from None


def _grid_label(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("label", item.get("name", "")))
    return str(item)


def _grid_name(item: Any) -> str:
    return str(item.get("name", "")) if isinstance(item, dict) else str(item)


def pick_cells(summaries: list[dict[str, Any]], track: schema.Track, label: str | None) -> list[dict[str, Any]]:
    cells = [s for s in summaries if s["config"]["scenario"]["name"] == track.scenario]
    if not cells:
        raise BenchError(f"the run has no {track.scenario!r} cells, which track {track.name!r} holds; pick the "
                         "track of the run's scenario")
    labels = sorted({s["defense"] for s in cells})
    if label is None:
        if len(labels) > 1:
            raise BenchError(f"the run holds several defenses ({', '.join(labels)}); pick one with --defense LABEL")
        label = labels[0]
    if label not in labels:
        raise BenchError(f"the run has no defense labelled {label!r}; it has {', '.join(labels)}")
    cells = [s for s in cells if s["defense"] == label]
    for key in ("defense", "scenario", "data"):
        if len({json.dumps(s["config"][key], sort_keys=True) for s in cells}) > 1:
            raise BenchError(f"the cells of {label!r} differ in their {key} config; an entry holds one {key}, "
                             "so submit runs of separate grids")
    if len({s["config"]["seed"] for s in cells}) > 1:
        raise BenchError(f"the cells of {label!r} use several seeds; an entry holds one seed, so run one grid "
                         "per seed (seed: N) and submit each")
    if len({s["provenance"]["suite_version"] for s in cells}) > 1:
        raise BenchError("the cells were measured by different suite versions; rerun the grid in a new folder")
    return cells


def weights_location(path: str, repo: Path) -> str:
    """A weight file as an entry records it: relative to the repository, or an hf:// reference."""
    real = Path(os.path.realpath(path))
    if real.is_relative_to(Path(os.path.realpath(repo))):
        return real.relative_to(Path(os.path.realpath(repo))).as_posix()
    match = HF_CACHE_FILE.search(Path(path).as_posix())
    if match:
        owner, name, revision, file = match.groups()
        return f"hf://{owner}/{name}@{revision}/{file}"
    raise BenchError(f"weights {path} are outside the repository and not in the Hugging Face cache; commit "
                     "them inside the repository or publish them on the hub, rerun from there, and submit again")


def _is_finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def result_of(summary: dict[str, Any]) -> dict[str, Any]:
    """One cell as an entry result. A column whose value is not finite (PSNR of identical images, e.g. the
    clean row's ``psnr_vs_clean_rec``) cannot be written as a JSON number and is left out, with a warning."""
    metrics = {}
    for column, values in sorted(summary["metrics"].items()):
        if not all(_is_finite(values.get(key)) for key in ("value", "low", "high")):
            log.warning("cell %s (%s): %s is %r, not a finite number; left out of the entry", summary["key"],
                        summary["attack"], column, values.get("value"))
            continue
        metrics[column] = {"claimed": None, "measured": float(values["value"]), "low": float(values["low"]),
                           "high": float(values["high"]), "n": int(values["n"]),
                           "higher_is_better": bool(values["higher_is_better"]), "kind": values["kind"]}
    if not metrics:
        raise BenchError(f"cell {summary['key']} ({summary['attack']}) has no finite metric; check the run")
    return {"attack": {"label": summary["attack"], **summary["config"]["attack"]}, "eps": float(summary["eps"]),
            "threat_model": summary.get("threat_model", DEFAULT_THREAT_MODEL), "metrics": metrics}


def entry_grid(grid: dict[str, Any], label: str, track: schema.Track) -> dict[str, Any]:
    """The run's grid narrowed to this entry's defense and scenario: what ``bench verify`` reruns."""
    grid = json.loads(json.dumps(grid))
    grid["defenses"] = [d for d in grid.get("defenses", []) if _grid_label(d) == label]
    if len(grid["defenses"]) != 1:
        raise BenchError(f"run.json's grid lists {len(grid['defenses'])} defenses labelled {label!r}; an entry "
                         "needs exactly one, so rerun with a grid that gives each defense its own label")
    for key in ("scenario", "scenarios"):
        if isinstance(grid.get(key), list):
            grid[key] = [s for s in grid[key] if _grid_name(s) == track.scenario]
    return grid


def apply_claims(results: list[dict[str, Any]], claims: Any, where: str) -> None:
    """Fill ``claimed`` from a claims file; an unknown attack, eps, threat model or metric is an error.
    A claim without a threat model goes to the transfer row where the run has both, since papers
    report transfer numbers; the list form's ``threat_model`` key claims an adaptive number."""
    rows: list[tuple[str, float | None, str | None, str, Any, str]] = []
    if isinstance(claims, dict):
        for attack, metrics in claims.items():
            schema.free_mapping(metrics, f"{where}: {attack}")
            rows.extend((attack, None, None, metric, value, f"{where}: {attack}.{metric}")
                        for metric, value in metrics.items())
    elif isinstance(claims, list):
        for i, item in enumerate(claims):
            item = schema.mapping(item, f"{where}: [{i}]", {"attack", "metric", "claimed"}, {"eps", "threat_model"})
            eps = schema.number(item["eps"], f"{where}: [{i}].eps") if "eps" in item else None
            rows.append((item["attack"], eps, item.get("threat_model"), item["metric"], item["claimed"],
                         f"{where}: [{i}].claimed"))
    else:
        raise BenchError(f"{where}: expected {{attack: {{metric: number}}}} or a list of {{attack, eps, threat_model, "
                         "metric, claimed}} objects")
    for attack, eps, threat, metric, value, at in rows:
        matches = [r for r in results if r["attack"]["label"] == attack
                   and (eps is None or abs(r["eps"] - eps) <= EPS_TOLERANCE)]
        if not matches:
            known = sorted({f"{r['attack']['label']} (eps {r['eps']:g})" for r in results})
            raise BenchError(f"{at}: the run has no attack {attack!r}{'' if eps is None else f' at eps {eps:g}'}; "
                             f"it has {', '.join(known)}")
        threats = {r.get("threat_model", DEFAULT_THREAT_MODEL) for r in matches}
        if threat is not None and threat not in threats:
            raise BenchError(f"{at}: attack {attack!r} has no {threat!r} row in the run; it has {', '.join(sorted(threats))}")
        wanted = threat or ("transfer" if len(threats) > 1 else None)
        if wanted is not None:
            matches = [r for r in matches if r.get("threat_model", DEFAULT_THREAT_MODEL) == wanted]
        if len(matches) > 1:
            raise BenchError(f"{at}: attack {attack!r} ran at several eps; use the list form with an eps per claim")
        if metric not in matches[0]["metrics"]:
            raise BenchError(f"{at}: the run measured no {metric!r}; it has {', '.join(matches[0]['metrics'])}")
        if value is not None:
            value = schema.number(value, at)
        matches[0]["metrics"][metric]["claimed"] = value


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.") or "entry"


def build_entry(run_dir: Path, track_name: str, repo: Path, name: str | None = None, paper: str | None = None,
                claimed: Path | None = None, defense_label: str | None = None) -> dict[str, Any]:
    if track_name not in schema.TRACKS:
        raise BenchError(f"unknown track {track_name!r}; known tracks: {', '.join(sorted(schema.TRACKS))}")
    track = schema.TRACKS[track_name]
    grid, summaries = read_run(run_dir)
    cells = pick_cells(summaries, track, defense_label)
    first = cells[0]
    label = first["defense"]
    name = name or slug(label)
    files.check_slug(name, "entry name", "--name")
    weights = {}
    for summary in cells:
        for path, sha in summary.get("weights", {}).items():
            weights[weights_location(path, repo)] = sha
    results = sorted((result_of(s) for s in cells), key=lambda r: (r["attack"]["label"], r["eps"], r["threat_model"]))
    if claimed is not None:
        apply_claims(results, files.read_json_file(claimed, claimed.parent), files.shown(claimed))
    provenance = {k: v for k, v in first["provenance"].items() if k != "suite_version"}
    return {"schema_version": schema.SCHEMA_VERSION, "track": track.name, "name": name, "paper": paper,
            "defense": {"label": label, **first["config"]["defense"]},
            "weights": [{"path": path, "sha256": sha} for path, sha in sorted(weights.items())],
            "scenario": first["config"]["scenario"], "data": first["config"]["data"], "results": results,
            "grid": entry_grid(grid, label, track), "suite_version": first["provenance"]["suite_version"],
            "provenance": provenance, "verified": False}


def submit(run_dir: Path, track: str, root: Path = validate.DEFAULT_ROOT, name: str | None = None,
           paper: str | None = None, claimed: Path | None = None, defense_label: str | None = None,
           force: bool = False) -> Path:
    """Build, fully validate and write ``<root>/<track>/<name>.json``; returns its path."""
    root = Path(root)
    entry = build_entry(Path(run_dir), track, root.absolute().parent, name, paper, claimed, defense_label)
    path = root / entry["track"] / f"{entry['name']}.json"
    if path.exists() and not force:
        raise BenchError(f"{files.shown(path)} already exists; pick another --name or pass --force to replace it")
    where = files.shown(path)
    try:
        schema.check_entry(entry)
        safety.check_entry(entry, root.absolute().parent)
        validate.check_registered(entry)
        validate.check_weights(entry, root.absolute().parent)
    except BenchError as err:
        raise BenchError(f"{where}: {err}") from None
    duplicates = validate.duplicates_of(validate.LoadedEntry(path, entry), root)
    if duplicates:
        raise BenchError(duplicates[0])
    files.atomic_write_text(path, files.dumps_entry(entry))
    return path
