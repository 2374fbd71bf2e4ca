"""Ranking a track from measured cells, the descriptive keys (paper, authors, ...) as hostile input outside
the verified part, and the trade-off plot."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.leaderboard import plot, ranking, record, render, schema, validate

HEADLINE = schema.Headline("psnr", (("pgd-encoder", 0.03), ("photoguard", 0.06)), clean_metric="psnr")
REPO = Path(__file__).resolve().parent.parent


def cell(attack: str, eps: float, psnr: float, width: float = 0.5, claimed=None, threat="adaptive") -> dict:
    return {"attack": {"label": attack, "name": attack}, "eps": eps, "threat_model": threat,
            "metrics": {"psnr": {"measured": psnr, "low": psnr - width, "high": psnr + width, "claimed": claimed,
                                 "higher_is_better": True}}}


def entry(name: str, pgd: float, photoguard: float | None, clean: float = 30.0, **extra) -> dict:
    results = [cell("none", 0.0, clean), cell("pgd-encoder", 0.03, pgd, **extra)]
    if photoguard is not None:
        results.append(cell("photoguard", 0.06, photoguard))
    return {"name": name, "results": results}


def test_the_robust_score_is_the_worst_measured_cell_not_the_claim():
    score, missing = ranking.robust_score(entry("a", 25.0, 22.0, claimed=40.0), HEADLINE)
    assert missing == () and (score.measured, score.attack, score.eps) == (22.0, "photoguard", 0.06)
    assert score.claimed == 40.0  # shown beside, never ranked on
    assert ranking.clean_score(entry("a", 25.0, 22.0), HEADLINE).measured == 30.0


def test_the_worst_case_covers_every_threat_model():
    item = entry("a", 25.0, 24.0)
    item["results"].append(cell("pgd-encoder", 0.03, 21.0, threat="transfer"))
    score, _ = ranking.robust_score(item, HEADLINE)
    assert (score.measured, score.threat_model) == (21.0, "transfer")


def test_ties_within_the_interval_share_a_rank_and_incomplete_entries_are_unranked():
    entries = [entry("d", 30.0, 20.0), entry("a", 30.0, 25.0), entry("b", 30.0, 24.6), entry("c", 30.0, 22.0),
               entry("e", 30.0, None)]
    ranked = ranking.rank(entries, HEADLINE)
    assert [(r.entry["name"], r.rank_text) for r in ranked] == [("a", "=1"), ("b", "=1"), ("c", "3"), ("d", "4"),
                                                               ("e", "—")]
    assert ranked[-1].missing == ("photoguard at 0.06",)


def test_a_track_budget_counts_only_cells_run_at_it():
    """The tokenizer track ranks at scale 0.2: an entry that ran a gentler scale is unranked, not flattered."""
    headline = schema.TRACKS["tokenizer"].headline

    def sampling_cell(attack: str, scale: float, accuracy: float) -> dict:
        values = {"measured": accuracy, "low": accuracy - 0.05, "high": accuracy + 0.05, "claimed": None,
                  "higher_is_better": True}
        return {"attack": {"label": attack, "name": attack, "config": {"scale": scale}}, "eps": 0.0,
                "metrics": {"zero-shot": values, "unperturbed_zero-shot": {**values, "measured": 0.9}}}

    honest = {"name": "honest", "results": [sampling_cell("sampling-noise", 0.2, 0.6),
                                            sampling_cell("sampling-pgd", 0.2, 0.7),
                                            sampling_cell("sampling-noise", 0.1, 0.8)]}
    gentle = {"name": "gentle", "results": [sampling_cell("sampling-noise", 0.05, 0.9),
                                            sampling_cell("sampling-pgd", 0.05, 0.9)]}
    score, _ = ranking.robust_score(honest, headline)
    assert (score.measured, score.attack) == (0.6, "sampling-noise")
    score, missing = ranking.robust_score(gentle, headline)
    assert score is None and missing == ("sampling-noise at 0 scale=0.2", "sampling-pgd at 0 scale=0.2")


def test_lower_is_better_ranks_the_smallest_worst_case_first():
    headline = schema.Headline("lpips", (("mist", 0.03),), clean_metric="psnr", clean_attack=None)

    def lpips_entry(name, value):
        return {"name": name, "results": [{"attack": {"label": "mist", "name": "mist"}, "eps": 0.03, "metrics": {
            "lpips": {"measured": value, "low": value * 0.99, "high": value * 1.01, "claimed": None,
                      "higher_is_better": False},
            "psnr": {"measured": 25.0, "low": 25.0, "high": 25.0, "claimed": None, "higher_is_better": True}}}]}
    ranked = ranking.rank([lpips_entry("worse", 0.5), lpips_entry("better", 0.1)], headline)
    assert [r.entry["name"] for r in ranked] == ["better", "worse"] and ranked[0].rank_text == "1"


@pytest.mark.parametrize("track", sorted(schema.TRACKS))
def test_every_committed_entry_gets_a_score_and_shows_on_the_pages(track):
    loaded = [e for e in validate.load_all(REPO / "leaderboards") if e.track == track]
    ranked = ranking.rank([e.entry for e in loaded], schema.TRACKS[track].headline)
    assert loaded and all(r.rank is not None and r.clean is not None for r in ranked)
    readme = (REPO / "leaderboards" / "README.md").read_text()
    assert all(f"| {r.rank_text:<6} | {r.entry['name']}" in readme for r in ranked)


# --- descriptive keys ----------------------------------------------------------------------------------


@pytest.fixture
def committed() -> dict:
    return json.loads((REPO / "leaderboards" / "vae-protection" / "srl-vae.json").read_text())


@pytest.mark.parametrize("key, value, expected", [
    ("paper", "javascript:alert(1)", r"is not an http\(s\) URL"),
    ("paper", "https://example.org/\"onmouseover=alert(1)", r"is not an http\(s\) URL"),
    ("paper", "https://example.org/" + "a" * 400, "at most 300 characters"),
    ("authors", "A" * 301, "keep it under 300"),
    ("venue", "line\nbreak", "control character"),
    ("footnote", 12, "expected a non-empty string"),
    ("unreliable", "yes", "expected true or false"),
])
def test_descriptive_keys_are_checked_as_hostile_input(committed, key, value, expected):
    committed[key] = value
    with pytest.raises(BenchError, match=expected):
        schema.check_entry(committed)


def test_unreliable_needs_a_footnote(committed):
    committed.pop("footnote")
    committed["unreliable"] = True
    with pytest.raises(BenchError, match="no footnote saying why"):
        schema.check_entry(committed)


def test_descriptive_keys_lie_outside_the_verified_part(committed):
    assert record.is_verified(committed)
    edited = copy.deepcopy(committed)
    edited.update(venue="CVPR 2099", footnote="corrected", paper="https://example.org/x", unreliable=True)
    assert record.is_verified(edited)
    edited["results"][0]["metrics"]["psnr"]["measured"] += 1.0
    assert not record.is_verified(edited)


def test_a_version_2_record_is_upgraded_only_when_it_matches(committed):
    old = copy.deepcopy(committed)
    for key in ("authors", "venue", "footnote"):
        old.pop(key)
    old["paper"] = None
    old["verification"] = {**old["verification"], "record_version": 2,
                           "entry_sha256": record.canonical_sha256(old, version=2)}
    assert record.is_verified(old)  # version 2 is still read: it hashed the paper too
    assert record.upgrade(old)["verification"]["entry_sha256"] == committed["verification"]["entry_sha256"]
    old["paper"] = "https://example.org/x"
    assert not record.is_verified(old)
    with pytest.raises(BenchError, match="does not match the entry"):
        record.upgrade(old)


# --- the page and the plot -----------------------------------------------------------------------------


def test_the_plot_is_byte_stable_and_carries_the_digest_of_its_numbers():
    loaded = validate.load_all(REPO / "leaderboards")
    ranked = render.ranked_tracks(loaded)["vae-protection"]
    track = schema.TRACKS["vae-protection"]
    svg = plot.render_svg(track, ranked)
    assert svg == plot.render_svg(track, ranked)
    assert plot.committed_digest(svg) == plot.data_digest(track, ranked)
    moved = [ranking.Ranked(ranked[0].entry, ranking.Score(1.0, 0.5, 1.5, True), ranked[0].clean, rank=1),
             *ranked[1:]]
    assert plot.data_digest(track, moved) != plot.data_digest(track, ranked)
