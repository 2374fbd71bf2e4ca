"""The rendered leaderboard page in headless Chromium: every entry shows, and the inline script sorts.

A click cannot be scripted through ``--dump-dom``, so the page honours ``?sort=COLUMN&dir=asc|desc``
on load (the same sort a header click runs); the test loads that URL and reads the row order.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bench.leaderboard import render

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PSNR = {"alpha": 22.0, "beta": 18.0, "gamma": 25.0, "delta": 20.5}
PSNR_COLUMN = "pgd-encoder@0.0313725:psnr"


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium (/usr/bin/chromium) is not installed; apt-get install -y chromium")
    from test_leaderboard import write_entries

    root = write_entries(tmp_path_factory.mktemp("board"), PSNR, claimed={"pgd-encoder": {"psnr": 21.0}})
    render.write_renders(root)
    return root / "index.html"


def dump_dom(page: Path, tmp_path: Path, **query: str) -> str:
    url = page.as_uri() + (f"?{urlencode(query)}" if query else "")
    profile = tmp_path / "profile"
    try:
        result = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                                capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "<table" in result.stdout, result.stderr[-2000:]
    return result.stdout


def row_order(dom: str) -> list[str]:
    return re.findall(r'<tr data-entry="([^"]+)"', dom)


def sorted_header(dom: str) -> list[tuple[str, str]]:
    return re.findall(r'<th data-col="([^"]+)"[^>]*aria-sort="([a-z]+)"', dom)


def test_page_shows_every_entry_in_name_order(page, tmp_path):
    dom = dump_dom(page, tmp_path)
    assert row_order(dom) == sorted(PSNR)
    assert sorted_header(dom) == []
    assert "22 (21)" in dom and "25 (21)" in dom


def test_page_sorts_a_number_column_both_ways(page, tmp_path):
    best_first = sorted(PSNR, key=PSNR.get, reverse=True)
    dom = dump_dom(page, tmp_path, sort=PSNR_COLUMN, dir="desc")
    assert row_order(dom) == best_first
    assert sorted_header(dom) == [(PSNR_COLUMN, "descending")]
    assert row_order(dump_dom(page, tmp_path, sort=PSNR_COLUMN, dir="asc")) == best_first[::-1]


def test_page_sorts_a_text_column_and_ignores_unknown_columns(page, tmp_path):
    assert row_order(dump_dom(page, tmp_path, sort="entry", dir="desc")) == sorted(PSNR, reverse=True)
    assert row_order(dump_dom(page, tmp_path, sort="no-such-column", dir="desc")) == sorted(PSNR)
