"""Adaptive typos: the same edits and budget as ``typos``, chosen by a beam search (``beam`` 1: greedy)
that maximises the shift of the frozen MiniLM's token states, the cross-attention input of the
embedded text-to-image models: ``token_state_shift`` = mean squared difference over all 16 x 384
states of the perturbed and the clean prompt. White-box on the text encoder only, so model-free as
far as the defended model goes; a transfer attack to any other text encoder.

Each step scores every candidate edit of every beam prompt (``candidates`` > 0: that many drawn
from the seeded generator per prompt, to bound the cost) and keeps the ``beam`` best distinct
prompts; ties go to the earlier candidate. ``case`` edits never help: the tokenizer is uncased.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from attacks.typos import Typos, TyposConfig, apply_edit, candidate_edits


@dataclass(frozen=True)
class AdaptiveTyposConfig(TyposConfig):
    beam: int = 1
    candidates: int = 0

    def __post_init__(self):
        super().__post_init__()
        if self.beam < 1 or self.candidates < 0:
            raise ValueError(f"beam={self.beam} must be 1 or more and candidates={self.candidates} 0 (all) or more")


def token_state_shift(perturbed: list[str], clean: list[str]) -> torch.Tensor:
    """(N,) mean squared difference of the MiniLM token states (16 x 384) of each pair."""
    from bench.text_encoder import token_states

    return (token_states(perturbed) - token_states(clean)).pow(2).mean((1, 2))


class AdaptiveTypos(Typos):
    name = "typos-adaptive"
    Config = AdaptiveTyposConfig

    def perturb_one(self, prompt: str, generator: torch.Generator) -> str:
        beam = [prompt]
        for _ in range(self.config.edit_count(prompt)):
            expanded = list(dict.fromkeys(p for current in beam for p in self._successors(current, generator)))
            if not expanded:
                break
            scores = torch.cat([token_state_shift(expanded[i:i + 256], [prompt] * len(expanded[i:i + 256]))
                                for i in range(0, len(expanded), 256)])
            order = sorted(range(len(expanded)), key=lambda i: (-float(scores[i]), i))
            beam = [expanded[i] for i in order[:self.config.beam]]
        return beam[0]

    def frozen_key(self) -> str:
        """The search settings join the key where they differ from greedy over every edit, so a frozen
        file holds beam and greedy sets apart (the default key is the one committed sets were written under)."""
        search = (self.config.beam, self.config.candidates)
        return super().frozen_key() + ("" if search == (1, 0) else f" beam={search[0]} candidates={search[1]}")

    def _successors(self, prompt: str, generator: torch.Generator) -> list[str]:
        edits = [e for kind_edits in candidate_edits(prompt, self.config.kinds, self.config.words).values()
                 for e in kind_edits]
        if self.config.candidates and len(edits) > self.config.candidates:
            chosen = torch.randperm(len(edits), generator=generator)[:self.config.candidates].sort().values
            edits = [edits[i] for i in chosen.tolist()]
        return [apply_edit(prompt, e) for e in edits]
