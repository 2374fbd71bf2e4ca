"""CI regression of robustness numbers: run a grid and compare every number with a stored baseline.

The tolerance of each number comes from the stored per-sample values. For a per-sample mean, the
baseline keeps the values themselves, and the tolerance is ``Z`` standard errors of the paired
per-image differences (the same images are measured each time, so a uniform shift is detected far
below the spread across images); for a set statistic (FID, KID) it is ``Z`` bootstrap standard
errors. A small absolute and relative floor absorbs floating-point noise across machines. Changes are direction-aware: a number moving the
worse way fails; one moving the better way is reported and ``--update`` records it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tabulate import tabulate

from bench.errors import BenchError
from bench.store import RunStore, atomic_write_json
from bench.tables import long_frame

SCHEMA_VERSION = 1
Z = 3.0
ABSOLUTE_FLOOR = 1e-3
RELATIVE_FLOOR = 0.01


@dataclass(frozen=True)
class Change:
    key: str
    baseline: float
    measured: float
    tolerance: float
    higher_is_better: bool

    @property
    def delta(self) -> float:
        return self.measured - self.baseline

    @property
    def status(self) -> str:
        if _same(self.baseline, self.measured) or abs(self.delta) <= self.tolerance:
            return "same"
        better = self.delta > 0 if self.higher_is_better else self.delta < 0
        return "improved" if better else "regressed"


def _same(a: float, b: float) -> bool:
    return (math.isinf(a) and a == b) or (math.isnan(a) and math.isnan(b))


def _standard_error(row: dict[str, Any]) -> float:
    return (row["high"] - row["low"]) / (2 * 1.959964) if math.isfinite(row["high"] - row["low"]) else 0.0


def numbers(run: RunStore) -> dict[str, dict[str, Any]]:
    """Every number of a finished run, keyed by ``defense|attack|threat model|scenario|eps|metric``,
    with the per-sample values of per-sample means."""
    result = {}
    for key in run.cell_keys():
        cell = run.cell(key)
        summary = cell.summary()
        samples = pd.read_csv(cell.folder / "samples.csv")
        for row in long_frame([summary]).to_dict(orient="records"):
            name = (f"{row['defense']}|{row['attack']}|{row.get('threat_model', 'adaptive')}|{row['scenario']}|"
                    f"{row['eps']:.6g}|{row['metric']}")
            entry = {"value": float(row["value"]), "standard_error": _standard_error(row),
                     "higher_is_better": bool(row["higher_is_better"]), "n": int(row["n"])}
            if summary["metrics"][row["metric"]].get("kind") == "mean" and row["metric"] in samples:
                entry["samples"] = [float(v) for v in samples[row["metric"]]]
            result[name] = entry
    return result


def _paired_standard_error(baseline: dict[str, Any], measured: dict[str, Any]) -> float | None:
    a, b = baseline.get("samples"), measured.get("samples")
    if a is None or b is None or len(a) != len(b) or len(a) < 2:
        return None
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    both_finite = np.isfinite(a) & np.isfinite(b)
    differences = b[both_finite] - a[both_finite]
    if len(differences) < 2:
        return 0.0
    return float(differences.std(ddof=1) / np.sqrt(len(differences)))


def tolerance(baseline: dict[str, Any], measured: dict[str, Any]) -> float:
    paired = _paired_standard_error(baseline, measured)
    standard_error = paired if paired is not None else max(baseline["standard_error"], measured["standard_error"])
    spread = Z * standard_error
    scale = abs(baseline["value"]) if math.isfinite(baseline["value"]) else 0.0
    return max(spread, ABSOLUTE_FLOOR, RELATIVE_FLOOR * scale)


def compare(baseline: dict[str, dict[str, Any]], measured: dict[str, dict[str, Any]]) -> list[Change]:
    missing = sorted(set(baseline) - set(measured))
    if missing:
        raise BenchError(f"the run lacks {len(missing)} baseline numbers (first: {missing[0]}); the grid "
                         "changed: rerun with --update to record a new baseline")
    return [Change(key, baseline[key]["value"], measured[key]["value"], tolerance(baseline[key], measured[key]),
                   baseline[key]["higher_is_better"]) for key in sorted(baseline)]


def load_baseline(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        raise BenchError(f"baseline {path} does not exist; create it with --update")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BenchError(f"baseline {path} is not valid JSON ({err.msg} at line {err.lineno}); "
                         "restore it from git or rewrite it with --update") from None
    if data.get("schema_version") != SCHEMA_VERSION or not isinstance(data.get("numbers"), dict):
        raise BenchError(f"baseline {path} is not a version-{SCHEMA_VERSION} baseline; rewrite it with --update")
    return data["numbers"]


def write_baseline(path: Path, grid: str, measured: dict[str, dict[str, Any]]) -> None:
    atomic_write_json(path, {"schema_version": SCHEMA_VERSION, "grid": grid, "numbers": measured})


def report(changes: list[Change], show_all: bool = False) -> str:
    rows = [[c.key.replace("|", " / "), f"{c.baseline:.5g}", f"{c.measured:.5g}", f"{c.delta:+.3g}",
             f"{c.tolerance:.3g}", "↑" if c.higher_is_better else "↓", c.status]
            for c in changes if show_all or c.status != "same"]
    if not rows:
        return f"all {len(changes)} numbers within tolerance"
    return tabulate(rows, headers=["number", "baseline", "measured", "delta", "tolerance", "better", "status"],
                    tablefmt="github")
