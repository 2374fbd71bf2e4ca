"""Result tables from stored summaries: markdown, CSV, JSON and LaTeX (pandas + tabulate)."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench.columns import LEADING_COLUMNS, budget_text
from bench.errors import BenchError

FORMATS = ("md", "csv", "json", "latex")


def long_frame(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (cell, metric), with value, interval, n and direction."""
    rows = []
    for summary in summaries:
        threat = summary.get("threat_model")
        budget = budget_text(summary.get("budget"))  # prompt / poisoning budgets; pixels: eps
        for metric, values in summary["metrics"].items():
            rows.append({"defense": summary["defense"], "attack": summary["attack"],
                         **({"threat_model": threat} if threat else {}),
                         "scenario": summary["scenario"], "eps": summary["eps"],
                         **({"budget": budget} if budget else {}), "metric": metric,
                         "value": values["value"], "low": values["low"], "high": values["high"],
                         "n": values["n"], "nan_count": int(values.get("nan_count", 0)),
                         "higher_is_better": values["higher_is_better"]})
    return pd.DataFrame(rows)


def _number(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.{digits - 2}e}"


def _cell_text(row: pd.Series) -> str:
    nan = f" ({row['nan_count']} NaN)" if row.get("nan_count", 0) else ""
    if _number(row["low"]) == _number(row["high"]):
        return _number(row["value"]) + nan
    return f"{_number(row['value'])} [{_number(row['low'], 3)}, {_number(row['high'], 3)}]{nan}"


def _ordered_metrics(frame: pd.DataFrame) -> list[str]:
    seen = list(dict.fromkeys(frame["metric"]))
    leading = [m for m in LEADING_COLUMNS if m in seen]
    trailing = [m for m in seen if m.startswith("clean_rec_")]
    plain = [m for m in seen if m not in leading and m not in trailing and "_vs_" not in m]
    versus = [m for m in seen if "_vs_" in m]
    return leading + plain + versus + trailing


def wide_table(summaries: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    frame = long_frame(summaries)
    index = ["defense", "attack"]
    if "threat_model" in frame:
        index.append("threat_model")
    if frame["eps"].nunique() > 1:
        index.append("eps")
    if "budget" in frame:
        frame = frame.assign(budget=frame["budget"].fillna(""))
        index.append("budget")
    if frame["scenario"].nunique() > 1:
        index.insert(0, "scenario")
    metrics = _ordered_metrics(frame)
    directions = frame.drop_duplicates("metric").set_index("metric")["higher_is_better"]
    frame = frame.assign(text=frame.apply(_cell_text, axis=1))
    wide = frame.pivot_table(index=index, columns="metric", values="text", aggfunc="first", sort=False)
    headers = index + [f"{m} {'↑' if directions[m] else '↓'}" for m in metrics]
    rows = []
    for keys, row in wide.iterrows():
        keys = keys if isinstance(keys, tuple) else (keys,)
        labels = [_number(k) if isinstance(k, float) else str(k) for k in keys]
        rows.append(labels + [row.get(m, "") if isinstance(row.get(m, ""), str) else "" for m in metrics])
    return headers, rows


def render(summaries: list[dict[str, Any]], fmt: str = "md") -> str:
    if fmt not in FORMATS:
        raise BenchError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not summaries:
        raise BenchError("no finished cells to tabulate; run `bench run GRID --out DIR` first")
    if fmt == "csv":
        return long_frame(summaries).to_csv(index=False)
    if fmt == "json":
        return json.dumps(long_frame(summaries).to_dict(orient="records"), indent=2)
    headers, rows = wide_table(summaries)
    if fmt == "latex":
        latex = tabulate(rows, headers=[h.replace("↑", "UPARROW").replace("↓", "DOWNARROW") for h in headers],
                         tablefmt="latex_booktabs")
        return latex.replace("UPARROW", r"$\uparrow$").replace("DOWNARROW", r"$\downarrow$")
    return tabulate(rows, headers=headers, tablefmt="github")
