"""Result tables from stored summaries: markdown, CSV, JSON and LaTeX (pandas + tabulate).

Markdown and LaTeX show a compact table by default: the identifying columns that vary and, per scenario,
its headline columns (``columns.SCENARIO_HEADLINES``), with a line naming what is left out;
``columns="all"`` shows every column, a list shows those. CSV and JSON always hold everything.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
from tabulate import tabulate

from bench.columns import LEADING_COLUMNS, SCENARIO_HEADLINES, budget_text
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


def headline_columns(scenario: str, measured: list[str]) -> list[str]:
    chosen = [m for m in SCENARIO_HEADLINES.get(scenario, ()) if m in measured]
    if chosen:
        return chosen
    plain = [m for m in measured if m not in LEADING_COLUMNS and "_vs_" not in m and not m.startswith("clean_rec_")]
    return [m for m in ("latent_shift",) if m in measured] + plain[:3]


def parse_columns(text: str | None) -> list[str] | str | None:
    """``--columns``: None (compact), ``"all"``, or a comma-separated list of column names."""
    if text is None or text.strip() == "all":
        return text and "all"
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise BenchError(f"--columns {text!r}: give all, or column names separated by commas (e.g. psnr,lpips)")
    return names


def wide_table(summaries: list[dict[str, Any]], columns: list[str] | str | None = "all",
               ) -> tuple[list[str], list[list[str]]]:
    """Headers and rows; ``columns`` as in :func:`render` (default: every column)."""
    headers, rows, _ = _wide(summaries, columns)
    return headers, rows


def _wide(summaries: list[dict[str, Any]], columns: list[str] | str | None) -> tuple[list[str], list[list[str]], str]:
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
    every = _ordered_metrics(frame)
    constant = ""
    if columns is None:
        shown = {s: headline_columns(s, list(dict.fromkeys(frame.loc[frame["scenario"] == s, "metric"])))
                 for s in dict.fromkeys(frame["scenario"])}
        metrics = [m for m in every if any(m in chosen for chosen in shown.values())]
        frame = frame[[row.metric in shown[row.scenario] for row in frame.itertuples()]]
        if frame["defense"].nunique() == 1 and len(index) > 2:
            constant = f"defense {frame['defense'].iloc[0]} in every row"
            index.remove("defense")
    elif columns == "all":
        metrics = every
    else:
        unknown = [m for m in columns if m not in every]
        if unknown:
            raise BenchError(f"--columns: {', '.join(unknown)} not measured in this run; choose from "
                             f"{', '.join(every)} (or all)")
        metrics = [m for m in columns if m in every]
        frame = frame[frame["metric"].isin(metrics)]
    directions = frame.drop_duplicates("metric").set_index("metric")["higher_is_better"]
    frame = frame.assign(text=frame.apply(_cell_text, axis=1))
    wide = frame.pivot_table(index=index, columns="metric", values="text", aggfunc="first", sort=False)
    headers = index + [f"{m} {'↑' if directions[m] else '↓'}" for m in metrics]
    rows = []
    for keys, row in wide.iterrows():
        keys = keys if isinstance(keys, tuple) else (keys,)
        labels = [_number(k) if isinstance(k, float) else str(k) for k in keys]
        rows.append(labels + [row.get(m, "") if isinstance(row.get(m, ""), str) else "" for m in metrics])
    left_out = [m for m in every if m not in metrics]
    note = ""
    if left_out:
        note = (f"Shown: {len(metrics)} of {len(every)} result columns{'; ' + constant if constant else ''}. "
                f"Every column: --columns all; chosen ones: --columns {','.join(left_out[:2])}; "
                "--format csv or json holds everything.")
    return headers, rows, note


def render(summaries: list[dict[str, Any]], fmt: str = "md", columns: list[str] | str | None = None) -> str:
    """The table; ``columns``: None (compact: per scenario its headline columns), ``"all"``, or a list of
    names. CSV and JSON always hold every column."""
    if fmt not in FORMATS:
        raise BenchError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not summaries:
        raise BenchError("no finished cells to tabulate; run `bench run GRID --out DIR` first")
    if fmt == "csv":
        return long_frame(summaries).to_csv(index=False)
    if fmt == "json":
        return json.dumps(long_frame(summaries).to_dict(orient="records"), indent=2)
    headers, rows, note = _wide(summaries, columns)
    if fmt == "latex":
        latex = tabulate(rows, headers=[h.replace("↑", "UPARROW").replace("↓", "DOWNARROW") for h in headers],
                         tablefmt="latex_booktabs")
        return latex.replace("UPARROW", r"$\uparrow$").replace("DOWNARROW", r"$\downarrow$")
    table = tabulate(rows, headers=headers, tablefmt="github")
    return f"{table}\n\n{note}" if note else table
