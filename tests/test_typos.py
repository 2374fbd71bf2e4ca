"""The `typos` prompt attack (issue 12): each edit kind does what it says at the stated budget, on
content words only by default, deterministically from the seed; bad configs are one error line;
truncation past the tokenizer's limit is stated; a frozen set is read only under its sha256; and
`typos-adaptive` beats random typos on its objective at the same budget and seed."""

from __future__ import annotations

import json
import logging

import pytest

from attacks.typos import KINDS, NEIGHBOURS, editable_positions
from bench.errors import BenchError
from bench.measure import edit_distance
from bench.plugins import ATTACKS

PROMPTS = ["a photo of a sneaker", "a picture of the ankle boot", "T-shirt on a black background",
           "an image of a handbag", "a photo of the pair of trousers"]
CLASS_WORDS = ["sneaker", "ankle boot", "T-shirt", "handbag", "pair of trousers"]


def typos(name="typos", **params):
    attack = ATTACKS.get(name)
    return attack(attack.make_config(params))


def changed_span(clean: str, perturbed: str) -> tuple[int, int]:
    """The first and last differing index (in the clean prompt), comparing from both ends."""
    start = next(i for i, (a, b) in enumerate(zip(clean, perturbed, strict=False)) if a != b) \
        if clean != perturbed else len(clean)
    end = 0
    while end < min(len(clean), len(perturbed)) - start and clean[-1 - end] == perturbed[-1 - end]:
        end += 1
    return start, len(clean) - end


@pytest.mark.parametrize("kind", KINDS)
def test_each_edit_kind_makes_its_edit_on_the_class_name(kind):
    attack = typos(edits=1, kinds=[kind])
    perturbed = attack(PROMPTS, seed=0)
    assert perturbed == attack(PROMPTS, seed=0)
    for clean, typo, word in zip(PROMPTS, perturbed, CLASS_WORDS, strict=True):
        assert typo != clean
        start, end = changed_span(clean, typo)
        word_start = clean.index(word)
        assert word_start <= start and end <= word_start + len(word) + 1, (clean, typo)  # inside the class name
        grown = len(typo) - len(clean)
        assert grown == {"delete": -1, "insert": 1, "duplicate": 1}.get(kind, 0)
        if kind == "swap":
            assert sorted(typo) == sorted(clean) and edit_distance(typo, clean) == 2
        elif kind == "substitute":
            [(old, new)] = [(a, b) for a, b in zip(clean, typo, strict=True) if a != b]
            assert new.lower() in NEIGHBOURS[old.lower()]
        elif kind == "case":
            assert typo.lower() == clean.lower()
        else:
            assert edit_distance(typo, clean) == 1


def test_seeded_and_different_across_seeds():
    attack = typos(edits=2)
    assert attack(PROMPTS, seed=1) == attack(PROMPTS, seed=1) != attack(PROMPTS, seed=2)


def test_rate_budget_counts_editable_letters():
    attack = typos(rate=0.5, kinds=["duplicate"])  # a duplicate always grows the prompt by one letter
    for clean, typo in zip(PROMPTS, attack(PROMPTS, seed=0), strict=True):
        assert len(typo) - len(clean) == max(1, round(0.5 * len(editable_positions(clean, "content"))))


def test_any_word_reaches_function_words_and_content_does_not():
    content = typos(edits=3)(PROMPTS * 4, seed=0)
    anywhere = typos(edits=3, words="any")(PROMPTS * 4, seed=0)
    assert all(t.startswith(c[: c.index(w)]) for c, t, w in zip(PROMPTS * 4, content, CLASS_WORDS * 4, strict=True))
    assert not all(t.startswith(c[: c.index(w)]) for c, t, w in zip(PROMPTS * 4, anywhere, CLASS_WORDS * 4, strict=True))


@pytest.mark.parametrize("params, message", [
    ({"edits": -1}, "the budget is -1"),
    ({"rate": 0.0}, "the budget is 0"),
    ({"kinds": ["swpa"]}, "unknown edit kind 'swpa'; did you mean 'swap'?"),
    ({"kinds": []}, "must be a non-empty list"),
    ({"words": "all"}, "use 'content'"),
    ({"frozen": "x.json"}, "frozen needs frozen_sha256"),
])
def test_bad_config_is_one_error(params, message):
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace("?", r"\?")):
        ATTACKS.get("typos").make_config(params)


def test_empty_prompt_list_is_refused():
    with pytest.raises(BenchError, match="the prompt list is empty"):
        typos(edits=1)([], seed=0)


def test_truncation_past_the_token_limit_is_stated(caplog):
    attack = typos(edits=3)
    long = "a photo of a sneaker next to a handbag and a pair of trousers with an ankle boot"
    with caplog.at_level(logging.WARNING, logger="attacks.typos"):
        attack([long, PROMPTS[0]], seed=0)
    assert attack.truncated == 1
    assert "1 of 2 perturbed prompts exceed the text encoder's 16 tokens" in caplog.text


def test_frozen_set_is_read_under_its_sha256(tmp_path):
    from bench.assets import sha256_file

    attack = typos(edits=1)
    path = tmp_path / "typos.json"
    path.write_text(json.dumps({"seed": 7, "sets": {attack.frozen_key(): dict(zip(PROMPTS, ["x"] * 5, strict=True))}}))
    frozen = typos(edits=1, frozen=str(path), frozen_sha256=sha256_file(path))
    assert frozen(PROMPTS[:2], seed=0) == ["x", "x"]
    with pytest.raises(BenchError, match="has no typo'd prompt for 'a bag'"):
        frozen(["a bag"], seed=0)
    with pytest.raises(BenchError, match="the config says 000000"):
        typos(edits=1, frozen=str(path), frozen_sha256="0" * 64)(PROMPTS, seed=0)


@pytest.mark.parametrize("edits", [1, 2])
def test_adaptive_beats_random_on_its_objective(edits):
    from attacks.typos_adaptive import token_state_shift

    random_typos = token_state_shift(typos(edits=edits)(PROMPTS, seed=0), PROMPTS)
    adaptive = typos("typos-adaptive", edits=edits)
    perturbed = adaptive(PROMPTS, seed=0)
    shift = token_state_shift(perturbed, PROMPTS)
    assert all(edit_distance(p, c) <= 2 * edits for p, c in zip(perturbed, PROMPTS, strict=True))
    if edits == 1:  # greedy over every single edit: at least as good as any one random edit
        assert (shift >= random_typos - 1e-7).all()
    assert shift.mean() > 1.2 * random_typos.mean()


def test_committed_frozen_set_matches_its_generator():
    """grids/data/typo-prompts.json is what `python -m bench.typo_sets` wrote from
    grids/data/typo-clean-prompts.txt (docs/zoo.md has the command)."""
    from pathlib import Path

    data = Path(__file__).resolve().parents[1] / "grids" / "data"
    document = json.loads((data / "typo-prompts.json").read_text())
    clean = (data / "typo-clean-prompts.txt").read_text().splitlines()
    for edits in (1, 2, 3):
        attack = typos(edits=edits)
        table = document["sets"][attack.frozen_key()]
        assert [table[p] for p in clean] == attack(clean, seed=document["seed"])
