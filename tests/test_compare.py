"""``bench compare RUN_A RUN_B``: common cells side by side, the difference, interval overlap; bad input is
one error line and exit code 2."""

from __future__ import annotations

import json

import pytest

from bench.cli import main
from tests.test_leaderboard import make_run


def rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("| ")]


def test_compare_shows_the_common_cells_with_difference_and_overlap(tmp_path, capsys):
    a = make_run(tmp_path / "a", {"mine": 20.0}, name="run")
    b = make_run(tmp_path / "b", {"mine": 25.0}, name="run")
    assert main(["compare", str(a), str(b), "--columns", "psnr,fid"]) == 0
    out = capsys.readouterr().out
    header, *body = rows(out)
    assert header == ["defense", "attack", "threat", "eps", "metric", str(a), str(b), "B - A", "intervals overlap"]
    pgd_psnr = next(r for r in body if r[1] == "pgd-encoder" and r[4] == "psnr ↑")
    assert pgd_psnr[5] == "20 [19, 21]" and pgd_psnr[6] == "25 [23.8, 26.2]" and pgd_psnr[7:] == ["+5", "NO"]
    fid = next(r for r in body if r[1] == "pgd-encoder" and r[4] == "fid ↓")
    assert fid[7:] == ["+0", "yes"]
    assert "2 cells in both (0 only in" in out and "2 of 4 numbers moved beyond their 95% intervals" in out


def test_compare_matches_a_renamed_single_defense(tmp_path, capsys):
    a = make_run(tmp_path / "a", {"mine": 20.0})
    b = make_run(tmp_path / "b", {"mine-v2": 21.0})
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "mine / mine-v2" in out and "matched without the defense label" in out
    assert "--columns all" in out  # the compact default says how to see the rest


@pytest.mark.parametrize("damage, expected", [
    ("missing", "not a run folder (no run.json)"),
    ("other-eps", "have no cell in common"),
    ("bad-column", "--columns: nope not measured in both runs"),
])
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, capsys, damage, expected):
    a = make_run(tmp_path / "a", {"mine": 20.0})
    b = make_run(tmp_path / "b", {"mine": 20.0, "yours": 21.0})
    extra = []
    if damage == "missing":
        b = tmp_path / "nowhere"
    elif damage == "other-eps":
        for summary_path in (b / "cells").glob("*/summary.json"):
            summary = json.loads(summary_path.read_text())
            summary["eps"] += 0.5
            summary_path.write_text(json.dumps(summary))
    else:
        extra = ["--columns", "nope"]
    assert main(["compare", str(a), str(b), *extra]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
