import json

import pytest

from bench.errors import BenchError
from bench.tables import render


def summary(attack, psnr, fid, eps=0.03):
    return {"defense": "vae-kl", "attack": attack, "scenario": "reconstruction", "eps": eps, "metrics": {
        "psnr": {"value": psnr, "low": psnr - 1, "high": psnr + 1, "n": 8, "higher_is_better": True},
        "fid": {"value": fid, "low": fid - 5, "high": fid + 5, "n": 8, "higher_is_better": False},
        "linf": {"value": eps, "low": eps, "high": eps, "n": 8, "higher_is_better": False}}}


SUMMARIES = [summary("noise", 25.0, 100.0), summary("pgd-encoder", 20.0, 150.0)]


def test_markdown_has_rows_directions_and_intervals():
    table = render(SUMMARIES, "md")
    assert "psnr ↑" in table and "fid ↓" in table and "linf ↓" in table
    assert "| vae-kl    | pgd-encoder |" in table
    assert "20 [19, 21]" in table
    assert table.index("linf") < table.index("psnr")


def test_csv_and_json_are_long_and_numeric():
    rows = json.loads(render(SUMMARIES, "json"))
    assert len(rows) == 6
    assert {r["metric"] for r in rows} == {"psnr", "fid", "linf"}
    assert all(isinstance(r["value"], float) for r in rows)
    assert render(SUMMARIES, "csv").splitlines()[0].startswith("defense,attack,scenario,eps,metric,value")


def test_latex_uses_booktabs():
    latex = render(SUMMARIES, "latex")
    assert "\\toprule" in latex and "$\\uparrow$" in latex


def test_eps_becomes_a_column_when_it_varies():
    table = render(SUMMARIES + [summary("pgd-encoder", 18.0, 170.0, eps=0.06)], "md")
    assert "| eps" in table.splitlines()[0] or " eps " in table.splitlines()[0]


def test_unknown_format_and_empty_run_are_refused():
    with pytest.raises(BenchError, match="use one of"):
        render(SUMMARIES, "xlsx")
    with pytest.raises(BenchError, match="no finished cells"):
        render([], "md")
