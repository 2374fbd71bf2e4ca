"""Ranking a track: each entry's robust and clean scores from its measured cells, and ranks with ties.

The robust score is the worst measured value of the track's headline metric over the track's attacks
at their budgets (every threat model the entry ran), with the cell that gave it; an entry missing one
of those cells gets no score and no rank (its missing cells are named). Claims never rank anything:
the claimed score (the worst claimed value over the same cells) is only shown beside the measured one.

Ties: entries sorted best first; an entry whose 95% interval overlaps that of the first entry of the
current group joins the group and shares its rank (competition ranking: 1, =2, =2, 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.columns import DEFAULT_THREAT_MODEL
from bench.leaderboard.schema import Headline

EPS_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Score:
    measured: float
    low: float
    high: float
    higher_is_better: bool
    claimed: float | None = None
    attack: str = ""
    eps: float = 0.0
    threat_model: str = ""

    def overlaps(self, other: Score) -> bool:
        return self.low <= other.high and other.low <= self.high


@dataclass(frozen=True)
class Ranked:
    entry: dict[str, Any]
    robust: Score | None
    clean: Score | None
    missing: tuple[str, ...] = ()
    rank: int | None = None
    tied: bool = False

    @property
    def rank_text(self) -> str:
        if self.rank is None:
            return "—"
        return f"={self.rank}" if self.tied else str(self.rank)


def budget_text(eps: float) -> str:
    """``8/255`` where the budget is a whole number of 8-bit steps, else the number."""
    steps = eps * 255
    return f"{round(steps)}/255" if eps and abs(steps - round(steps)) < 1e-3 else f"{eps:.4g}"


def _at_budget(result: dict[str, Any], budget: tuple[tuple[str, float], ...]) -> bool:
    config = result["attack"].get("config") or {}
    return all(isinstance(config.get(key), (int, float)) and abs(config[key] - value) <= EPS_TOLERANCE
               for key, value in budget)


def _cells(entry: dict[str, Any], attack: str, eps: float,
           budget: tuple[tuple[str, float], ...] = ()) -> list[dict[str, Any]]:
    return [r for r in entry["results"] if r["attack"]["name"] == attack and abs(r["eps"] - eps) <= EPS_TOLERANCE
            and _at_budget(r, budget)]


def robust_score(entry: dict[str, Any], headline: Headline) -> tuple[Score | None, tuple[str, ...]]:
    """(the worst measured cell of the headline metric, the track's cells the entry lacks)."""
    candidates, missing = [], []
    for attack, eps in headline.attacks:
        found = [r for r in _cells(entry, attack, eps, headline.budget) if headline.metric in r["metrics"]]
        if not found:
            missing.append(f"{attack} at {budget_text(eps)}"
                           + "".join(f" {key}={value:g}" for key, value in headline.budget))
        candidates += found
    if missing or not candidates:
        return None, tuple(missing)
    higher = candidates[0]["metrics"][headline.metric]["higher_is_better"]

    def measured(result: dict[str, Any]) -> float:
        return result["metrics"][headline.metric]["measured"]

    worst = min(candidates, key=measured) if higher else max(candidates, key=measured)
    claims = [r["metrics"][headline.metric]["claimed"] for r in candidates
              if r["metrics"][headline.metric]["claimed"] is not None]
    claimed = (min(claims) if higher else max(claims)) if claims else None
    values = worst["metrics"][headline.metric]
    return Score(values["measured"], values["low"], values["high"], higher, claimed, worst["attack"]["label"],
                 worst["eps"], worst.get("threat_model", DEFAULT_THREAT_MODEL)), ()


def clean_score(entry: dict[str, Any], headline: Headline) -> Score | None:
    rows = [r for r in entry["results"] if headline.clean_metric in r["metrics"]
            and (headline.clean_attack is None or r["attack"]["name"] == headline.clean_attack)]
    if not rows:
        return None
    values = rows[0]["metrics"][headline.clean_metric]
    return Score(values["measured"], values["low"], values["high"], values["higher_is_better"], values["claimed"])


def rank(entries: list[dict[str, Any]], headline: Headline) -> list[Ranked]:
    """Every entry, ranked best first; entries without a robust score last, by name, unranked."""
    scored, unscored = [], []
    for entry in entries:
        robust, missing = robust_score(entry, headline)
        item = Ranked(entry, robust, clean_score(entry, headline), missing)
        (scored if robust else unscored).append(item)
    scored.sort(key=lambda r: (-r.robust.measured if r.robust.higher_is_better else r.robust.measured,
                               r.entry["name"]))
    ranked: list[Ranked] = []
    leader = 0
    for position, item in enumerate(scored):
        if position and not item.robust.overlaps(scored[leader].robust):
            leader = position
        ranked.append(Ranked(item.entry, item.robust, item.clean, item.missing, rank=leader + 1))
    sizes = {r.rank: sum(other.rank == r.rank for other in ranked) for r in ranked}
    ranked = [Ranked(r.entry, r.robust, r.clean, r.missing, r.rank, tied=sizes[r.rank] > 1) for r in ranked]
    return ranked + sorted(unscored, key=lambda r: r.entry["name"])
