"""Typos: seeded character-level edits of prompts, the perturbation AELIF measures robustness on
(arXiv:2506.07706; AELIF had an LLM write its typos, these are reproducible from the seed).

Edit kinds (``kinds``, any subset of ``KINDS``): ``swap`` two adjacent letters, ``delete`` a letter,
``insert`` a QWERTY neighbour of a letter after it, ``substitute`` a letter by a QWERTY neighbour,
``duplicate`` a letter, change a letter's ``case``. Budget: ``edits`` per prompt, or, where 0,
``rate`` times the number of editable letters (rounded, at least one). ``words="content"`` (default)
edits only content words: not function words and not the caption boilerplate of
``bench.zoo.captions``' templates ("photo", "picture", "background", ...), so on this suite's
captions the class name is the target; ``words="any"`` edits any word.

Each edit draws a kind uniformly among the selected kinds that apply somewhere in the prompt, then a
position uniformly among the letters where it applies, then (insert, substitute) a neighbour
uniformly; edits apply in sequence, so a later one may undo an earlier one (the scenario measures the
edit distance actually made). The uncased MiniLM tokenizer (and CLIP's, which lowercases) cannot see
``case`` edits. A perturbed prompt longer than the MiniLM's 16 tokens is truncated by the embedded
models: the attack logs a warning and keeps the count in ``truncated``.

``frozen``: a committed JSON file of typo'd prompts (``bench typos ... --out``) to read instead of
drawing (the seed it was drawn with is in the file; the cell's seed is then unused), checked against
``frozen_sha256``, which the results record with the config.
"""

from __future__ import annotations

import difflib
import logging
import re
from dataclasses import dataclass
from typing import NamedTuple

import torch

from bench.base import PromptAttack, check_unit_interval
from bench.errors import BenchError

KINDS = ("swap", "delete", "insert", "substitute", "duplicate", "case")
WORDS = ("content", "any")
FUNCTION_WORDS = frozenset(
    "a an the of on in at to for with and or but is are was were be this that these those there it its "
    "my your his her their our from by as into onto over under".split())
KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
WORD = re.compile(r"[A-Za-z]+(?:[-'][A-Za-z]+)*")
log = logging.getLogger(__name__)


def _keyboard_neighbours() -> dict[str, str]:
    """QWERTY neighbours: the keys beside a key in its row and the two touching it in the rows above
    and below (rows staggered by half a key)."""
    position = {key: (row, column + row / 2) for row, keys in enumerate(KEYBOARD_ROWS) for column, key in enumerate(keys)}
    return {key: "".join(other for other, (r, x) in position.items()
                         if (r == row and abs(x - col) == 1) or (abs(r - row) == 1 and abs(x - col) == 0.5))
            for key, (row, col) in position.items()}


NEIGHBOURS = _keyboard_neighbours()


def boilerplate_words() -> frozenset[str]:
    from bench.zoo.captions import HELD_OUT_TEMPLATES, TRAIN_TEMPLATES

    return frozenset(w.lower() for t in TRAIN_TEMPLATES + HELD_OUT_TEMPLATES for w in WORD.findall(t.replace("{name}", "")))


class Edit(NamedTuple):
    kind: str
    position: int
    char: str = ""


def editable_positions(prompt: str, words: str) -> list[int]:
    """Letter positions inside the words an attack may edit."""
    skip = FUNCTION_WORDS | boilerplate_words() if words == "content" else frozenset()
    return [i for match in WORD.finditer(prompt) if match.group().lower() not in skip
            for i in range(match.start(), match.end()) if prompt[i].isalpha()]


def _neighbours(char: str) -> str:
    keys = NEIGHBOURS.get(char.lower(), "")
    return keys.upper() if char.isupper() else keys


def candidate_edits(prompt: str, kinds: tuple[str, ...], words: str) -> dict[str, list[Edit]]:
    """Every edit of each kind that changes the prompt, at the editable letters."""
    positions = editable_positions(prompt, words)
    editable = set(positions)
    word_letters = {i: len(m.group()) for m in WORD.finditer(prompt) for i in range(m.start(), m.end())}
    candidates: dict[str, list[Edit]] = {kind: [] for kind in kinds}
    for i in positions:
        char = prompt[i]
        if "swap" in kinds and i + 1 in editable and prompt[i + 1] != char:
            candidates["swap"].append(Edit("swap", i))
        if "delete" in kinds and word_letters[i] > 1:
            candidates["delete"].append(Edit("delete", i))
        for kind in ("insert", "substitute"):
            if kind in kinds:
                candidates[kind].extend(Edit(kind, i, c) for c in _neighbours(char))
        if "duplicate" in kinds:
            candidates["duplicate"].append(Edit("duplicate", i))
        if "case" in kinds:
            candidates["case"].append(Edit("case", i))
    return {kind: edits for kind, edits in candidates.items() if edits}


def apply_edit(prompt: str, edit: Edit) -> str:
    i = edit.position
    if edit.kind == "swap":
        return prompt[:i] + prompt[i + 1] + prompt[i] + prompt[i + 2:]
    if edit.kind == "delete":
        return prompt[:i] + prompt[i + 1:]
    if edit.kind == "insert":
        return prompt[:i + 1] + edit.char + prompt[i + 1:]
    if edit.kind == "substitute":
        return prompt[:i] + edit.char + prompt[i + 1:]
    if edit.kind == "duplicate":
        return prompt[:i + 1] + prompt[i:]
    return prompt[:i] + prompt[i].swapcase() + prompt[i + 1:]


@dataclass(frozen=True)
class TyposConfig:
    rate: float = 0.1
    edits: int = 0
    kinds: tuple[str, ...] = KINDS
    words: str = "content"
    frozen: str = ""
    frozen_sha256: str = ""

    def __post_init__(self):
        check_unit_interval("attack", "rate", self.rate)
        if self.edits < 0 or (self.edits == 0 and self.rate <= 0):
            raise ValueError(f"the budget is {self.edits or self.rate}: set edits to 1 or more, or rate above 0")
        if isinstance(self.kinds, str) or not self.kinds:
            raise ValueError(f"kinds={self.kinds!r} must be a non-empty list of edit kinds from {', '.join(KINDS)}")
        for kind in self.kinds:
            if kind not in KINDS:
                close = difflib.get_close_matches(str(kind), KINDS, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"use {', '.join(KINDS)}"
                raise ValueError(f"unknown edit kind {kind!r}; {hint}")
        if self.words not in WORDS:
            raise ValueError(f"words={self.words!r}: use 'content' (default) or 'any'")
        if self.frozen and len(self.frozen_sha256) != 64:
            raise ValueError("frozen needs frozen_sha256, the file's sha256 (sha256sum FILE), recorded with results")

    def edit_count(self, prompt: str) -> int:
        return self.edits or max(1, round(self.rate * len(editable_positions(prompt, self.words))))


def token_counts(prompts: list[str]) -> list[int]:
    """Tokens of each prompt under the MiniLM tokenizer, special tokens included, before truncation."""
    from bench.text_encoder import load_text_encoder

    tokenizer, _ = load_text_encoder()
    return [len(ids) for ids in tokenizer(list(prompts), truncation=False)["input_ids"]]


class Typos(PromptAttack):
    name = "typos"
    Config = TyposConfig

    def __init__(self, config: TyposConfig | None = None):
        super().__init__(config)
        self.truncated = 0

    def __call__(self, prompts: list[str], seed: int) -> list[str]:
        if not prompts:
            raise BenchError(f"{self.name}: the prompt list is empty; give at least one prompt")
        perturbed = self._frozen(prompts) if self.config.frozen else super().__call__(prompts, seed)
        self._check_length(perturbed)
        return perturbed

    def perturb_prompts(self, prompts: list[str], generator: torch.Generator) -> list[str]:
        return [self.perturb_one(prompt, generator) for prompt in prompts]

    def perturb_one(self, prompt: str, generator: torch.Generator) -> str:
        for _ in range(self.config.edit_count(prompt)):
            candidates = candidate_edits(prompt, self.config.kinds, self.config.words)
            if not candidates:
                log.warning("%s: %r has no editable letters (words=%s); left as it is", self.name, prompt,
                            self.config.words)
                break
            kind = list(candidates)[_draw(len(candidates), generator)]
            positions = sorted({edit.position for edit in candidates[kind]})
            position = positions[_draw(len(positions), generator)]
            at_position = [edit for edit in candidates[kind] if edit.position == position]
            prompt = apply_edit(prompt, at_position[_draw(len(at_position), generator)])
        return prompt

    def _check_length(self, prompts: list[str]) -> None:
        from bench.text_encoder import MAX_TOKENS

        long = [(p, n) for p, n in zip(prompts, token_counts(prompts), strict=True) if n > MAX_TOKENS]
        self.truncated += len(long)
        if long:
            log.warning("%s: %d of %d perturbed prompts exceed the text encoder's %d tokens and will be truncated, "
                        "e.g. %r (%d tokens)", self.name, len(long), len(prompts), MAX_TOKENS, *long[0])

    def _frozen(self, prompts: list[str]) -> list[str]:
        table = load_frozen(self.config.frozen, self.config.frozen_sha256).get(self.frozen_key(), {})
        missing = [p for p in prompts if p not in table]
        if missing:
            raise BenchError(f"{self.name}: {self.config.frozen} has no typo'd prompt for {missing[0]!r} under "
                             f"{self.frozen_key()!r}; regenerate it with `bench typos` for these prompts")
        return [table[p] for p in prompts]

    def frozen_key(self) -> str:
        """The set of a frozen file this config reads (the file was drawn with one seed, stated in it)."""
        budget = f"edits={self.config.edits}" if self.config.edits else f"rate={self.config.rate}"
        return f"{self.name} {budget} kinds={','.join(self.config.kinds)} words={self.config.words}"


def _draw(n: int, generator: torch.Generator) -> int:
    return int(torch.randint(n, (1,), generator=generator))


def load_frozen(path: str, sha256: str) -> dict[str, dict[str, str]]:
    """A frozen typo set: {frozen_key: {clean prompt: perturbed prompt}}, checked by sha256."""
    import json
    from pathlib import Path

    from bench.assets import sha256_file

    file = Path(path)
    if not file.exists():
        raise BenchError(f"typos: frozen prompt file {file} does not exist; check the path or write it with `bench typos`")
    actual = sha256_file(file)
    if actual != sha256:
        raise BenchError(f"typos: {file} has sha256 {actual[:16]}..., the config says {sha256[:16]}...; restore the "
                         "file (git checkout) or put its new sha256 in the grid")
    return json.loads(file.read_text())["sets"]
