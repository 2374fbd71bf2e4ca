"""``bench typos`` (issue 12): seeded typo'd variants printed per budget and seed, a frozen set written
for grids that redraws the committed one and that the attack reads back under the printed sha256,
and bad input as one ``error:`` line with exit 2 and nothing written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.cli import main
from bench.plugins import ATTACKS

DATA = Path(__file__).resolve().parents[1] / "grids" / "data"
PROMPTS = ["a photo of a sneaker", "a picture of the ankle boot"]


def listing(capsys, *argv):
    assert main(["typos", *argv]) == 0
    return capsys.readouterr().out.splitlines()


def test_listing_shows_each_prompts_variant_per_budget_and_seed(capsys):
    lines = listing(capsys, *PROMPTS, "--edits", "1", "2", "--seed", "0", "1")
    headers = [line for line in lines if not line.startswith("  ")]
    assert len(headers) == 4 and headers[0].startswith("typos edits=1 ") and headers[0].endswith("seed 0")
    variants = [line.split("  ->  ") for line in lines if line.startswith("  ")]
    assert [clean.strip() for clean, _ in variants] == PROMPTS * 4
    attack = ATTACKS.get("typos")
    expected = attack(attack.make_config({"edits": 2}))(PROMPTS, seed=1)
    assert [typo.rsplit("  (", 1)[0] for _, typo in variants[6:8]] == expected
    assert listing(capsys, *PROMPTS, "--edits", "1", "2", "--seed", "0", "1") == lines  # seeded
    assert variants[0] != variants[2]  # seed 1 draws other typos than seed 0 for the first prompt


def test_listing_states_truncation_past_the_token_limit(capsys):
    long = "a photo of a sneaker next to a handbag and a pair of trousers with an ankle boot"
    lines = listing(capsys, long, PROMPTS[0])
    assert re.search(r"truncated: 2\d tokens > 16\)$", lines[1]) and "truncated" not in lines[2]


def test_out_writes_the_frozen_set_the_attack_reads_under_the_printed_sha256(tmp_path, capsys):
    out = tmp_path / "sets" / "typos.json"
    lines = listing(capsys, "--from", str(DATA / "typo-clean-prompts.txt"), "--edits", "1", "2", "3",
                    "--seed", "0", "--out", str(out))
    from bench.assets import sha256_file

    digest = sha256_file(out)
    assert lines[0] == f"wrote {out} (sha256 {digest})"
    assert lines[-1] == f"  - {{name: typos, frozen: {out}, frozen_sha256: {digest}}}"
    written, committed = json.loads(out.read_text()), json.loads((DATA / "typo-prompts.json").read_text())
    assert written["sets"] == {k: v for k, v in committed["sets"].items() if k.startswith("typos ")}
    clean = (DATA / "typo-clean-prompts.txt").read_text().splitlines()
    attack = ATTACKS.get("typos")
    frozen = attack(attack.make_config({"edits": 2, "frozen": str(out), "frozen_sha256": digest}))
    assert frozen(clean, seed=123) == [written["sets"][frozen.frozen_key()][p] for p in clean]


def test_rate_budget_and_adaptive_search_settings_have_their_own_keys(capsys):
    document = json.loads("\n".join(listing(capsys, PROMPTS[0], "--attack", "typos", "typos-adaptive", "--rate",
                                            "0.5", "--beam", "2", "--kinds", "substitute", "--json")))
    assert sorted(document["sets"]) == [
        "typos rate=0.5 kinds=substitute words=content",
        "typos-adaptive rate=0.5 kinds=substitute words=content beam=2 candidates=0"]
    for typo in (s[PROMPTS[0]] for s in document["sets"].values()):
        assert len(typo) == len(PROMPTS[0]) and typo != PROMPTS[0]


@pytest.mark.parametrize("argv, message", [
    ([], "the prompt list is empty"),
    (["a bag", ""], "prompt 2 is empty"),
    (["a bag", "--edits", "0"], "--edits 0: give 1 or more edits"),
    (["a bag", "--edits", "-2"], "--edits -2"),
    (["a bag", "--rate", "0"], "--rate 0.0"),
    (["a bag", "--kinds", "swpa"], "unknown edit kind 'swpa'; did you mean 'swap'?"),
    (["a bag", "--words", "all"], "use 'content'"),
    (["a bag", "--attack", "pgd"], "'pgd' is not a typos attack"),
    (["a bag", "--beam", "2"], "--beam is an option of typos-adaptive"),
    (["a bag", "--attack", "typos-adaptive", "--candidates", "-1"], "candidates=-1"),
    (["a bag", "--seed", "-1"], "seeds are whole numbers from 0"),
    (["a bag", "--seed", "0", "1", "--out", "{tmp}/x.json"], "drawn with one seed"),
    (["a bag", "--out", "{tmp}"], "is a folder"),
    (["--from", "{tmp}/missing.txt"], "is not a file"),
])
def test_bad_input_is_one_error_line_and_nothing_written(argv, message, tmp_path, capsys):
    before = sorted(tmp_path.rglob("*"))
    assert main(["typos", *(a.replace("{tmp}", str(tmp_path)) for a in argv)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert sorted(tmp_path.rglob("*")) == before


def test_the_module_entry_point_is_the_same_command(capsys):
    from bench.typo_sets import main as module_main

    assert module_main([PROMPTS[0], "--seed", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == listing(capsys, PROMPTS[0], "--seed", "3")


@pytest.mark.slow
def test_the_committed_frozen_set_redraws_byte_for_byte(tmp_path, capsys):
    """The command grids/data/typo-prompts.json was written with (about a minute: the adaptive search)."""
    out = tmp_path / "typo-prompts.json"
    listing(capsys, "--from", str(DATA / "typo-clean-prompts.txt"), "--attack", "typos", "typos-adaptive",
            "--edits", "1", "2", "3", "--seed", "0", "--out", str(out))
    assert out.read_bytes() == (DATA / "typo-prompts.json").read_bytes()
