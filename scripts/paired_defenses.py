"""Paired difference of one per-sample column between two defenses of a run, cell by cell.

Cells are matched by scenario, attack label, threat model and budget; the rows of two matched cells
are the same samples (same prompts, seeds and perturbations in prompt-robustness), so the difference
is taken per row and its mean gets a bootstrap 95% interval (``bench.stats.mean_interval``), far
tighter than comparing the two cells' own intervals. ``relative`` is the mean difference over the
baseline defense's mean.

    python scripts/paired_defenses.py RUN_DIR --defense aelif-mask --baseline aelif-none --column clip-w1-raw
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from bench.columns import budget_text
from bench.runner import load_run
from bench.stats import mean_interval


def cell_key(summary: dict) -> tuple:
    return (summary["scenario"], summary["attack"], summary.get("threat_model"), budget_text(summary.get("budget")),
            summary["eps"])


def paired(run: Path, defense: str, baseline: str, column: str) -> pd.DataFrame:
    summaries = load_run(run)
    by_key = {(s["defense"], cell_key(s)): s for s in summaries}
    rows = []
    for (label, key), summary in sorted(by_key.items(), key=lambda item: item[0][1]):
        other = by_key.get((baseline, key))
        if label != defense or other is None:
            continue
        a = pd.read_csv(Path(run) / "cells" / summary["key"] / "samples.csv")
        b = pd.read_csv(Path(run) / "cells" / other["key"] / "samples.csv")
        if len(a) != len(b) or column not in a or column not in b:
            continue
        difference = mean_interval((a[column] - b[column]).to_numpy(), seed=0)
        rows.append({"attack": key[1], "budget": key[3] or f"eps={key[4]:.4g}", defense: a[column].mean(),
                     baseline: b[column].mean(), "difference": difference.value, "low": difference.low,
                     "high": difference.high, "relative": difference.value / b[column].mean()})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--defense", required=True)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--column", required=True)
    args = parser.parse_args(argv)
    frame = paired(args.run, args.defense, args.baseline, args.column)
    print(frame.to_markdown(index=False, floatfmt=".4g") if len(frame) else "no matched cells with that column")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
