"""Typos: a control prompt attack (the surface AELIF's typo attacks use, arXiv:2506.07706), seeded
character substitutions.

Each prompt gets ``edits`` substitutions (where 0: ``rate`` x its length, rounded) at distinct
positions chosen uniformly, each by a lowercase letter other than the one there. A real prompt
attack must beat this at the same budget; the scenario measures the edits it actually made.
"""

from __future__ import annotations

import string

import torch

from bench.base import PromptAttack

LETTERS = string.ascii_lowercase


class Typo(PromptAttack):
    name = "typo"

    def perturb_prompts(self, prompts: list[str], generator: torch.Generator) -> list[str]:
        perturbed = []
        for prompt in prompts:
            count = min(len(prompt), self.config.edits or round(self.config.rate * len(prompt)))
            chars = list(prompt)
            for position in torch.randperm(len(prompt), generator=generator)[:count].tolist():
                choices = [c for c in LETTERS if c != chars[position]]
                chars[position] = choices[int(torch.randint(len(choices), (1,), generator=generator))]
            perturbed.append("".join(chars))
        return perturbed
