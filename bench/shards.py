"""``--shard i/n``: a deterministic partition of a grid's cells, for Slurm job arrays and plain
multi-machine runs into one shared folder (one cell, one writer: ``bench.claims``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from bench.errors import BenchError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as Slurm's SLURM_ARRAY_TASK_ID usually is
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise BenchError(f"--shard {text!r}: write i/n with 1 <= i <= n, e.g. --shard 2/4 for the second of "
                             "four shards (in a Slurm array: --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)")
        return cls(int(match[1]), int(match[2]))

    def select(self, cells: list[T]) -> list[T]:
        """The cells at positions i-1, i-1+n, ... of the grid's order: fixed by the grid alone, so shards
        started at different times, or after some cells finished, never overlap and never miss one."""
        return cells[self.index - 1::self.count]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
