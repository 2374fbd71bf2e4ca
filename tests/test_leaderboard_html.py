"""The rendered leaderboard page in headless Chromium: the ranking order, every entry, hostile text shown
as text, the details one click away, and the inline script's sorting.

A click cannot be scripted through ``--dump-dom``, so the page honours ``?sort=COLUMN&dir=asc|desc``
on load (the same sort a header click runs); the test loads that URL and reads the row order.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlencode

import pytest

from bench.leaderboard import files, render

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PSNR = {"alpha": 22.0, "beta": 18.0, "gamma": 25.0, "delta": 20.5}
RANKED = [("gamma", "1"), ("alpha", "=2"), ("delta", "=2"), ("beta", "4")]  # intervals are +-5%
HOSTILE = "<script>document.body.className='pwned'</script>"


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    if not CHROMIUM.exists():
        pytest.skip("headless Chromium (/usr/bin/chromium) is not installed; apt-get install -y chromium")
    from test_leaderboard import TRACK, rank_on_pgd, write_entries

    with pytest.MonkeyPatch.context() as monkeypatch:
        rank_on_pgd(monkeypatch)
        root = write_entries(tmp_path_factory.mktemp("board"), PSNR, claimed={"pgd-encoder": {"psnr": 21.0}})
        path = root / TRACK / "beta.json"
        entry = json.loads(path.read_text())
        entry.update(venue=HOSTILE, authors=f"{HOSTILE}, B. Author", footnote=HOSTILE,
                     paper="https://example.org/paper?a=1&b=2")
        files.atomic_write_text(path, files.dumps_entry(entry))
        render.write_renders(root)
    return root / "index.html"


def dump_dom(page: Path, tmp_path: Path, fragment: str = "", **query: str) -> str:
    url = page.as_uri() + (f"?{urlencode(query)}" if query else "") + (f"#{fragment}" if fragment else "")
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


def ranks(dom: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr data-entry="([^"]+)"><td data-value="[^"]*">([^<]*)</td>', dom)


def sorted_header(dom: str) -> list[tuple[str, str]]:
    return re.findall(r'<th data-col="([^"]+)"[^>]*aria-sort="([a-z]+)"', dom)


def test_page_ranks_every_entry_best_first_with_shared_ranks(page, tmp_path):
    dom = dump_dom(page, tmp_path)
    assert ranks(dom) == RANKED
    assert sorted_header(dom) == []
    assert "25 [23.75, 26.25]" in dom and "pgd-encoder ε=8/255" in dom
    assert all(f'<details id="entry-vae-protection-{name}"' in dom for name in PSNR)


def test_page_shows_hostile_text_as_text(page, tmp_path):
    dom = dump_dom(page, tmp_path)
    assert 'class="pwned"' not in dom and "<script>document" not in dom
    assert dom.count("&lt;script&gt;document.body.className='pwned'&lt;/script&gt;") >= 3
    assert '<a href="https://example.org/paper?a=1&amp;b=2">' in dom


def test_an_entry_link_opens_its_details(page, tmp_path):
    dom = dump_dom(page, tmp_path, fragment="entry-vae-protection-beta")
    opened = re.findall(r'<details id="([^"]+)"[^>]*open', dom)
    assert opened == ["entry-vae-protection-beta"]


def test_page_sorts_a_number_column_both_ways(page, tmp_path):
    best_first = [name for name, _ in RANKED]
    dom = dump_dom(page, tmp_path, sort="robust", dir="asc")
    assert row_order(dom) == best_first[::-1]
    assert sorted_header(dom) == [("robust", "ascending")]
    assert row_order(dump_dom(page, tmp_path, sort="robust", dir="desc")) == best_first


def test_page_sorts_a_text_column_and_ignores_unknown_columns(page, tmp_path):
    assert row_order(dump_dom(page, tmp_path, sort="entry", dir="desc")) == sorted(PSNR, reverse=True)
    assert row_order(dump_dom(page, tmp_path, sort="no-such-column", dir="desc")) == [n for n, _ in RANKED]
