"""CI regression of robustness numbers: run a grid and compare every number with a stored baseline.

The tolerance of each number comes from the stored per-sample values. For a per-sample mean, the
baseline keeps the values themselves, and the tolerance is ``Z`` standard errors of the paired
per-image differences (the same images are measured each time, so a uniform shift is detected far
below the spread across images); for a set statistic (FID, KID) it is ``Z`` bootstrap standard
errors. A small absolute and relative floor absorbs floating-point noise across machines.

Any change beyond the tolerance fails, in either direction: a weakened attack makes every defense
look more robust, so "improved" is as suspicious as "regressed". The report says which way each
number moved. A deliberate change is accepted only by re-baselining (``--update --reason "..."``),
which appends to the baseline's ``history`` what changed (each number's old and new value and
direction), the git commit and the reason.
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

from bench.columns import DEFAULT_THREAT_MODEL
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
        if math.isnan(self.baseline) or math.isnan(self.measured):
            return "changed"
        better = self.delta > 0 if self.higher_is_better else self.delta < 0
        return "improved" if better else "regressed"

    def as_record(self) -> dict[str, Any]:
        return {"number": self.key, "baseline": self.baseline, "measured": self.measured,
                "tolerance": self.tolerance, "status": self.status}


@dataclass(frozen=True)
class Comparison:
    """Every number of the baseline compared with the run, plus numbers only one of them has."""

    changes: list[Change]
    missing: list[str]   # in the baseline, not in the run
    new: list[str]       # in the run, not in the baseline

    @property
    def changed(self) -> list[Change]:
        return [c for c in self.changes if c.status != "same"]

    @property
    def ok(self) -> bool:
        return not self.changed and not self.missing and not self.new

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for change in self.changed:
            counts[change.status] = counts.get(change.status, 0) + 1
        if self.missing:
            counts["missing"] = len(self.missing)
        if self.new:
            counts["new"] = len(self.new)
        return counts

    def summary(self) -> str:
        return ", ".join(f"{n} {status}" for status, n in self.counts().items()) or "none changed"


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
            budget = row.get("budget") or f"{row['eps']:.6g}"  # a prompt / poisoning budget where there is one
            name = (f"{row['defense']}|{row['attack']}|{row.get('threat_model', DEFAULT_THREAT_MODEL)}|{row['scenario']}|"
                    f"{budget}|{row['metric']}")
            entry = {"value": float(row["value"]), "standard_error": _standard_error(row),
                     "higher_is_better": bool(row["higher_is_better"]), "n": int(row["n"])}
            if summary["metrics"][row["metric"]].get("kind") == "mean" and row["metric"] in samples:
                entry["samples"] = [float(v) for v in samples[row["metric"]]]
            result[name] = entry
            if row.get("nan_count", 0):  # a metric whose NaN is meaningful: its count is a number of the run too
                result[f"{name}|nan_count"] = {"value": float(row["nan_count"]), "standard_error": 0.0,
                                               "higher_is_better": False, "n": int(row["n"] + row["nan_count"])}
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


def compare(baseline: dict[str, dict[str, Any]], measured: dict[str, dict[str, Any]]) -> Comparison:
    missing = sorted(set(baseline) - set(measured))
    new = sorted(set(measured) - set(baseline))
    changes = [Change(key, baseline[key]["value"], measured[key]["value"], tolerance(baseline[key], measured[key]),
                      baseline[key]["higher_is_better"]) for key in sorted(set(baseline) & set(measured))]
    return Comparison(changes, missing, new)


def load_baseline_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise BenchError(f"baseline {path} does not exist; create it with --update")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BenchError(f"baseline {path} is not valid JSON ({err.msg} at line {err.lineno}); "
                         "restore it from git or rewrite it with --update") from None
    if data.get("schema_version") != SCHEMA_VERSION or not isinstance(data.get("numbers"), dict):
        raise BenchError(f"baseline {path} is not a version-{SCHEMA_VERSION} baseline; rewrite it with --update")
    return data


def load_baseline(path: Path) -> dict[str, dict[str, Any]]:
    return load_baseline_file(path)["numbers"]


def history_entry(comparison: Comparison | None, reason: str, commit: str, date: str) -> dict[str, Any]:
    """What a re-baselining records: when, at which commit, why, and every number that changed."""
    entry: dict[str, Any] = {"date": date, "commit": commit, "reason": reason}
    if comparison is None:
        entry["changes"] = "created"
        return entry
    entry["summary"] = comparison.summary()
    entry["changes"] = [c.as_record() for c in comparison.changed]
    if comparison.missing:
        entry["removed"] = comparison.missing
    if comparison.new:
        entry["added"] = comparison.new
    return entry


def write_baseline(path: Path, grid: str, measured: dict[str, dict[str, Any]],
                   history: list[dict[str, Any]] | None = None) -> None:
    atomic_write_json(path, {"schema_version": SCHEMA_VERSION, "grid": grid, "history": history or [],
                             "numbers": measured})


def report(comparison: Comparison, show_all: bool = False) -> str:
    rows = [[c.key.replace("|", " / "), f"{c.baseline:.5g}", f"{c.measured:.5g}", f"{c.delta:+.3g}",
             f"{c.tolerance:.3g}", "↑" if c.higher_is_better else "↓", c.status]
            for c in comparison.changes if show_all or c.status != "same"]
    rows += [[key.replace("|", " / "), "", "", "", "", "", "missing from the run"] for key in comparison.missing]
    rows += [[key.replace("|", " / "), "", "", "", "", "", "new (not in the baseline)"] for key in comparison.new]
    if not rows:
        return f"all {len(comparison.changes)} numbers within tolerance"
    return tabulate(rows, headers=["number", "baseline", "measured", "delta", "tolerance", "better", "status"],
                    tablefmt="github")
