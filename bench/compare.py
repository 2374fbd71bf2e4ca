"""``bench compare RUN_A RUN_B``: the cells both runs hold, side by side, with the difference and whether
the 95% intervals overlap (what a user looks at after changing a defense).

Cells match by scenario, defense label, attack label, threat model and budget; where that finds none and
each run holds one defense, they match without the defense label (a renamed defense). Metrics shown:
per scenario its headline columns (as ``bench table``), ``columns="all"``, or a list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tabulate import tabulate

from bench.columns import budget_text
from bench.errors import BenchError
from bench.tables import _number, _ordered_metrics, headline_columns, long_frame


def load(folder: str) -> list[dict[str, Any]]:
    from bench.runner import load_run

    path = Path(folder)
    if not (path / "run.json").is_file():
        raise BenchError(f"{folder}: not a run folder (no run.json); pass a folder `bench run GRID --out DIR` wrote")
    summaries = load_run(path)
    if not summaries:
        raise BenchError(f"{folder}: no finished cells yet; finish the run with `bench run GRID --out {folder}`")
    return summaries


def identity(summary: dict[str, Any], with_defense: bool = True) -> tuple:
    return (summary["scenario"], summary["defense"] if with_defense else "", summary["attack"],
            summary.get("threat_model") or "", round(float(summary["eps"]), 6), budget_text(summary.get("budget")))


def matched(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> tuple[list[tuple[dict, dict]], bool]:
    """Pairs of summaries of the same cell, and whether defense labels were ignored to find them."""
    for with_defense in (True, False):
        if not with_defense and not (len({s["defense"] for s in a}) == 1 == len({s["defense"] for s in b})):
            break
        right = {identity(s, with_defense): s for s in b}
        pairs = [(s, right[identity(s, with_defense)]) for s in a if identity(s, with_defense) in right]
        if pairs:
            return pairs, not with_defense
    return [], False


def _text(values: dict[str, Any]) -> str:
    if _number(values["low"]) == _number(values["high"]):
        return _number(values["value"])
    return f"{_number(values['value'])} [{_number(values['low'], 3)}, {_number(values['high'], 3)}]"


def compare(a: list[dict[str, Any]], b: list[dict[str, Any]], name_a: str = "A", name_b: str = "B",
            columns: list[str] | str | None = None) -> str:
    pairs, renamed = matched(a, b)
    if not pairs:
        raise BenchError(f"{name_a} and {name_b} have no cell in common (same scenario, defense, attack, threat "
                         "model and budget); compare two runs of the same grid")
    every = _ordered_metrics(long_frame([s for pair in pairs for s in pair]))
    if isinstance(columns, list):
        unknown = [m for m in columns if m not in every]
        if unknown:
            raise BenchError(f"--columns: {', '.join(unknown)} not measured in both runs; choose from "
                             f"{', '.join(every)} (or all)")
    scenarios = {s["scenario"] for pair in pairs for s in pair}
    rows, moved, total = [], 0, 0
    for left, right in pairs:
        common = [m for m in every if m in left["metrics"] and m in right["metrics"]]
        shown = (common if columns == "all" else [m for m in columns if m in common] if isinstance(columns, list)
                 else headline_columns(left["scenario"], common))
        for metric in shown:
            x, y = left["metrics"][metric], right["metrics"][metric]
            overlap = x["low"] <= y["high"] and y["low"] <= x["high"]
            moved, total = moved + (not overlap), total + 1
            defense = left["defense"] if left["defense"] == right["defense"] else f"{left['defense']} / {right['defense']}"
            rows.append([*([left["scenario"]] if len(scenarios) > 1 else []), defense, left["attack"],
                         left.get("threat_model") or "", _number(left["eps"]), metric + (" ↑" if x["higher_is_better"]
                                                                                          else " ↓"),
                         _text(x), _text(y), f"{y['value'] - x['value']:+.4g}", "yes" if overlap else "NO"])
    headers = [*(["scenario"] if len(scenarios) > 1 else []), "defense", "attack", "threat", "eps", "metric",
               name_a, name_b, "B - A", "intervals overlap"]
    only_a, only_b = len(a) - len(pairs), len(b) - len(pairs)
    note = (f"{len(pairs)} cells in both ({only_a} only in {name_a}, {only_b} only in {name_b})"
            + ("; matched without the defense label" if renamed else "")
            + f"; {moved} of {total} numbers moved beyond their 95% intervals.")
    if columns is None:
        note += " Every column: --columns all; chosen ones: --columns psnr,lpips."
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n\n" + note
