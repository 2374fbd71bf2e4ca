"""The trade-off plot of a track: robust score against clean score, one point per ranked entry, as SVG.

The SVG is byte-stable for one matplotlib version (fixed ``svg.hashsalt``, no date, text kept as text),
and carries the sha256 of the numbers it plots in its description; ``bench leaderboard render --check``
compares that digest, so a newer matplotlib drawing the same numbers differently is not "out of date".
"""

from __future__ import annotations

import hashlib
import io
import json
import re

from bench.leaderboard.ranking import Ranked
from bench.leaderboard.schema import Track

DIGEST = re.compile(r"plot-data sha256 ([0-9a-f]{64})")


def file_name(track: str) -> str:
    return f"tradeoff-{track}.svg"


def plot_data(track: Track, ranked: list[Ranked]) -> list[dict]:
    return [{"entry": r.entry["name"], "clean": [r.clean.measured, r.clean.low, r.clean.high],
             "robust": [r.robust.measured, r.robust.low, r.robust.high], "rank": r.rank_text,
             "verified": r.entry.get("verified") is True, "unreliable": r.entry.get("unreliable", False)}
            for r in ranked if r.robust is not None and r.clean is not None]


def data_digest(track: Track, ranked: list[Ranked]) -> str:
    payload = {"track": track.name, "headline": [track.headline.metric, track.headline.clean_metric],
               "points": plot_data(track, ranked)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def committed_digest(svg: str) -> str | None:
    found = DIGEST.search(svg)
    return found.group(1) if found else None


def render_svg(track: Track, ranked: list[Ranked]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = plot_data(track, ranked)
    headline = track.headline
    with plt.rc_context({"svg.hashsalt": "latent-bench", "svg.fonttype": "none", "font.size": 9}):
        figure, axes = plt.subplots(figsize=(6.4, 4.2))
        for point in points:
            clean, robust = point["clean"], point["robust"]
            style = {"marker": "o", "markersize": 6, "capsize": 2, "linestyle": "none", "elinewidth": 0.8,
                     "color": "#b35806" if point["unreliable"] else "#2166ac",
                     "markerfacecolor": "white" if not point["verified"] else None}
            axes.errorbar([clean[0]], [robust[0]], xerr=[[clean[0] - clean[1]], [clean[2] - clean[0]]],
                          yerr=[[robust[0] - robust[1]], [robust[2] - robust[0]]], **style)
            axes.annotate(f"{point['rank']} {point['entry']}", (clean[0], robust[0]), textcoords="offset points",
                          xytext=(5, 4), fontsize=8)
        scored = [r for r in ranked if r.robust is not None and r.clean is not None]
        if scored and not scored[0].robust.higher_is_better:
            axes.invert_yaxis()  # better is up on both tracks
        better_clean = "→" if scored and scored[0].clean.higher_is_better else "←"
        axes.set_xlabel(f"clean: {headline.clean_metric} (better {better_clean})")
        axes.set_ylabel(f"robust: worst-case {headline.metric} (better ↑)")
        axes.set_title(f"{track.name}: robust vs clean (hollow: not verified; orange: unreliable)", fontsize=9)
        axes.grid(alpha=0.3)
        figure.tight_layout()
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": "bench leaderboard render",
                                                       "Description": f"plot-data sha256 "
                                                                      f"{data_digest(track, ranked)}"})
        plt.close(figure)
    return buffer.getvalue()
