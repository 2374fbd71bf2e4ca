"""``bench verify ENTRY``: rerun the entry's grid and check its numbers.

Each re-measured number is compared with the claimed one (or, where nothing was claimed, with the
number measured at submission): it passes when ``|measured - reference| <= max(1.96 * se, floor)``,
with ``se`` read off the fresh 95% interval, ``(high - low) / (2 * 1.96)``, and ``floor`` the larger of
1e-3 and 1% of the reference, so deterministic metrics (zero-width intervals) still get a tolerance.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.columns import DEFAULT_THREAT_MODEL
from bench.errors import BenchError
from bench.leaderboard import files, record, safety, schema, validate
from bench.leaderboard.record import ABSOLUTE_FLOOR, RELATIVE_FLOOR, Z95, Check, tolerance  # noqa: F401

EPS_TOLERANCE = 1e-6


def rerun_grid(grid: dict[str, Any], out: Path, device: str) -> list[dict[str, Any]]:
    """Run the grid through the suite's runner (heavy imports happen here only)."""
    import yaml

    from bench.runner import Runner, RunOptions

    with tempfile.TemporaryDirectory() as folder:
        grid_path = Path(folder) / "entry-grid.yaml"
        grid_path.write_text(yaml.safe_dump(grid, sort_keys=True))
        return Runner(out, RunOptions(device=device, quiet=True)).run_grid(grid_path)


def compare(entry: dict[str, Any], summaries: list[dict[str, Any]]) -> list[Check]:
    """One check per number in the entry; a cell or metric the rerun did not produce raises."""
    track = schema.TRACKS[entry["track"]]
    fresh = [s for s in summaries if s["defense"] == entry["defense"]["label"]
             and s["config"]["scenario"]["name"] == track.scenario]
    recorded = {item["sha256"] for item in entry["weights"]}
    loaded = {sha for summary in fresh for sha in summary.get("weights", {}).values()}
    if recorded and loaded and loaded != recorded:
        raise BenchError(f"weights: the rerun loaded weights with sha256 {', '.join(sorted(loaded))}, not the "
                         "entry's; point the grid's defense at the submitted weights")
    checks = []
    for i, result in enumerate(entry["results"]):
        label, eps = result["attack"]["label"], result["eps"]
        threat = result.get("threat_model", DEFAULT_THREAT_MODEL)
        match = [s for s in fresh if s["attack"] == label and abs(s["eps"] - eps) <= EPS_TOLERANCE
                 and s.get("threat_model", DEFAULT_THREAT_MODEL) == threat and same_budget(result, s)]
        if not match:
            raise BenchError(f"results[{i}]: the rerun produced no {label!r} cell at eps {eps:g} ({threat}); the "
                             "entry's grid no longer builds it, so resubmit from a fresh run")
        if len(match) > 1:
            raise BenchError(f"results[{i}]: the rerun produced {len(match)} {label!r} cells at eps {eps:g} ({threat}) "
                             "that this result cannot tell apart; give the grid's attacks distinct labels and resubmit")
        summary = match[0]
        rebuilt = summary["config"]["defense"]["config"]
        # keys a newer suite added to the resolved config are not a difference; a changed value is
        if any(key not in rebuilt or rebuilt[key] != value for key, value in entry["defense"]["config"].items()):
            raise BenchError("defense.config: the rerun built a different defense config than the entry records; "
                             "resubmit from a fresh run of this suite version")
        for column, values in sorted(result["metrics"].items()):
            where = f"results[{i}].metrics.{column}"
            if column not in summary["metrics"]:
                raise BenchError(f"{where}: the rerun did not measure {column}; resubmit from a fresh run")
            new = summary["metrics"][column]
            claimed = values["claimed"]
            reference, against = (claimed, "claimed") if claimed is not None else (values["measured"], "submitted")
            low, high = float(new["low"]), float(new["high"])
            checks.append(Check(where, against, float(reference), float(new["value"]),
                                tolerance(float(reference), low, high), low, high))
    return checks


def same_budget(result: dict[str, Any], summary: dict[str, Any]) -> bool:
    """Whether a rerun cell has the result's non-pixel budget (a sampling ``scale``, a poison ``count``),
    read from the result's attack config: cells of one attack at several such budgets share label and eps."""
    config = result["attack"].get("config") or {}
    return all(key == "eps" or (isinstance(config.get(key), (int, float)) and abs(config[key] - value) <= EPS_TOLERANCE)
               for key, value in (summary.get("budget") or {}).items())


def verification_record(entry: dict[str, Any], checks: list[Check], summaries: list[dict[str, Any]],
                        device: str) -> dict[str, Any]:
    provenance = summaries[0]["provenance"] if summaries else {}
    return record.build(entry, checks, provenance, device)


Rerun = Callable[[dict[str, Any], Path, str], list[dict[str, Any]]]


def verify(entry_path: Path, out: Path | None = None, device: str = "cpu",
           rerun: Rerun = rerun_grid) -> dict[str, Any]:
    """Validate, rerun, compare, and write the entry back atomically with ``verified`` and its record.

    Only what validation accepted runs: the grid handed to the rerun is the checked copy, run from the
    repository root (relative paths mean the same as when they were checked) in safetensors-only mode
    (:func:`safety.verify_mode`). A failed verification is written too (``verified: false``), so a stale
    mark never survives; the caller turns ``passed: false`` into exit code 2.
    """
    entry_path = Path(entry_path)
    root = entry_path.parent.parent
    repo = root.absolute().parent
    loaded = validate.load_entry(entry_path, root, full=True, verifying=True)
    entry, grid = loaded.entry, loaded.checked_grid
    with safety.verify_mode():
        if out is None:
            with tempfile.TemporaryDirectory(prefix="bench-verify-") as folder, safety.working_directory(repo):
                summaries = rerun(grid, Path(folder) / "run", device)
        else:
            out = Path(out).absolute()
            with safety.working_directory(repo):
                summaries = rerun(grid, out, device)
    try:
        checks = compare(entry, summaries)
    except BenchError as err:
        raise BenchError(f"{files.shown(entry_path)}: {err}") from None
    result = verification_record(entry, checks, summaries, device)
    updated = json.loads(json.dumps(entry))
    updated["verified"] = result["passed"]
    updated["verification"] = result
    schema.check_entry(updated)
    files.atomic_write_text(entry_path, files.dumps_entry(updated))
    return result
