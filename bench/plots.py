"""Figures of a finished run (matplotlib), written by ``bench plot RUN_DIR``:

- ``damage-vs-eps-<metric>.png``: a metric against the L-inf budget, one curve per defense (solid:
  adaptive, dashed: transfer), one panel per attack, 95% intervals as bars; the clean (``none``)
  row, where present, is the point at eps 0; a poisoning grid has a curve per poison count.
  Written where an attack was run at several budgets.
- ``damage-vs-scale-<metric>.png``: for sampling perturbations, a metric against the perturbation
  ``scale``, one curve per defense (tokenizer), one panel per attack, the unperturbed generation at 0.
- ``damage-vs-count-<metric>.png``: for training-data poisoning, a metric against the number of
  poisoned training pairs (the ``poisons`` the cell measured, else the attack's ``count``), one
  curve per defense and eps, one panel per attack; the clean fine-tune's ``reference_<metric>`` is
  the point at 0 poisons. Written where an attack was run at several counts (SRL-VAE Fig. 4(a)).
- ``examples.png``: a few test images through every defense: the clean image and what the defense
  makes of it (reconstruction, or edit in the img2img-edit scenario), then, per attack, the attacked
  image and what the defense makes of that. Adaptive rows where present, else transfer.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from bench.columns import DEFAULT_THREAT_MODEL
from bench.errors import BenchError
from bench.store import RunStore, atomic_write_json

OUTPUT_KEYS = {"reconstruction": ("reconstruction", "clean_reconstruction"), "img2img-edit": ("edited", "clean_edited")}


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, figure, axes, out_png: Path) -> Path:
    """The legend on the last panel, then the figure written to ``out_png`` and closed."""
    axes[0][-1].legend(fontsize=7, loc="best")
    figure.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, dpi=120)
    plt.close(figure)
    return out_png


def _curve(axis, xs: list[float], points: list[tuple[float, dict]], colour, **style) -> None:
    """One curve of estimates (``value`` with its ``low`` / ``high`` interval as error bars)."""
    error = [[v["value"] - v["low"] for _, v in points], [v["high"] - v["value"] for _, v in points]]
    axis.errorbar(xs, [v["value"] for _, v in points], yerr=error, color=colour, capsize=2, marker="o", markersize=3,
                  **style)


def damage_curves(summaries: list[dict[str, Any]], metric: str, out_png: Path) -> Path | None:
    """The metric against eps per attack and defense; None where no attack has several budgets."""
    curves: dict[str, dict[tuple, list[tuple[float, dict]]]] = defaultdict(lambda: defaultdict(list))
    clean: dict[str, dict] = {}
    for summary in summaries:
        values = summary["metrics"].get(metric)
        if values is None:
            continue
        if summary["attack"] == "none":
            clean[summary["defense"]] = values
        else:
            curves[summary["attack"]][(summary["defense"], summary.get("threat_model", DEFAULT_THREAT_MODEL),
                                       poison_count(summary))].append((summary["eps"], values))
    attacks = [a for a, lines in curves.items() if any(len({e for e, _ in pts}) > 1 for pts in lines.values())]
    if not attacks:
        return None
    plt = _matplotlib()
    figure, axes = plt.subplots(1, len(attacks), figsize=(4.5 * len(attacks), 3.6), squeeze=False)
    defenses = sorted({key[0] for a in attacks for key in curves[a]})
    colours = {d: plt.cm.tab10(i % 10) for i, d in enumerate(defenses)}
    for axis, attack in zip(axes[0], attacks, strict=True):
        for (defense, threat, count), points in sorted(curves[attack].items()):
            if defense in clean:
                points = [(0.0, clean[defense]), *points]
            points.sort(key=lambda p: p[0])
            _curve(axis, [e * 255 for e, _ in points], points, colours[defense],
                   linestyle="--" if threat == "transfer" else "-",
                   label=f"{defense}{f' {count:.0f} poisons' if count is not None else ''} ({threat})")
        arrow = "higher is better" if points and points[0][1].get("higher_is_better", True) else "lower is better"
        axis.set(title=attack, xlabel="eps (x/255, L-inf)", ylabel=f"{metric} ({arrow})")
        axis.grid(alpha=0.3)
    return _save(plt, figure, axes, out_png)


def poison_count(summary: dict[str, Any]) -> float | None:
    """The poisoned pairs a cell trained on: measured (``poisons``), else configured (``count``)."""
    measured = summary["metrics"].get("poisons")
    if measured is not None:
        return float(measured["value"])
    count = (summary.get("budget") or {}).get("count")
    return float(count) if count else None


def count_points(summaries: list[dict[str, Any]], metric: str) -> dict[str, dict[tuple, list[tuple[float, dict]]]]:
    """{attack: {(defense, threat model, eps): [(poisons, values), ...] by poisons}}, with the
    reference (the clean fine-tune, ``reference_<metric>``) at 0 where the cells report it; only
    attacks with a curve of several poisoned counts, as eps curves need several budgets."""
    curves: dict[str, dict[tuple, dict[float, dict]]] = defaultdict(lambda: defaultdict(dict))
    for summary in summaries:
        values, count = summary["metrics"].get(metric), poison_count(summary)
        if values is None or count is None:
            continue
        line = curves[summary["attack"]][(summary["defense"], summary.get("threat_model", DEFAULT_THREAT_MODEL),
                                          summary["eps"])]
        line[count] = values
        reference = summary["metrics"].get(f"reference_{metric}")
        if reference is not None:
            line.setdefault(0.0, {**reference, "higher_is_better": values.get("higher_is_better", True)})
    return {attack: {key: sorted(points.items()) for key, points in lines.items()}
            for attack, lines in curves.items() if any(len(set(points) - {0.0}) > 1 for points in lines.values())}


def count_curves(summaries: list[dict[str, Any]], metric: str, out_png: Path) -> Path | None:
    """The metric against the poison count per attack, defense and eps; None where no attack has
    several counts."""
    curves = count_points(summaries, metric)
    if not curves:
        return None
    plt = _matplotlib()
    figure, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.6), squeeze=False)
    defenses = sorted({key[0] for lines in curves.values() for key in lines})
    colours = {d: plt.cm.tab10(i % 10) for i, d in enumerate(defenses)}
    for axis, (attack, lines) in zip(axes[0], sorted(curves.items()), strict=True):
        for (defense, threat, eps), points in sorted(lines.items()):
            _curve(axis, [c for c, _ in points], points, colours[defense],
                   linestyle="--" if threat == "transfer" else "-",
                   label=f"{defense}{f' {eps * 255:.0f}/255' if eps else ''}{f' ({threat})' if threat != 'none' else ''}")
        arrow = "higher is better" if points[-1][1].get("higher_is_better", True) else "lower is better"
        axis.set(title=attack, xlabel="poisoned training pairs (0: clean fine-tune)", ylabel=f"{metric} ({arrow})")
        axis.grid(alpha=0.3)
    return _save(plt, figure, axes, out_png)


def example_grid(run: RunStore, out_png: Path, examples: int = 2) -> Path | None:
    """Clean / attacked images and what each defense makes of them, from the stored first batches;
    per defense and attack the adaptive cell at the largest budget."""
    chosen: dict[tuple[str, str], tuple[Any, dict]] = {}
    for key in run.cell_keys():
        store = run.cell(key)
        if not store.is_complete():
            continue
        summary = store.summary()
        pair = (summary["defense"], summary["attack"])
        rank = (summary.get("threat_model") == "adaptive", summary["eps"])
        if summary["config"]["scenario"]["name"] in OUTPUT_KEYS and (
                pair not in chosen or rank > (chosen[pair][1].get("threat_model") == "adaptive", chosen[pair][1]["eps"])):
            chosen[pair] = (store, summary)
    if not chosen:
        return None
    from bench import data as data_module
    from bench.data import DataSpec

    first = next(iter(chosen.values()))[1]
    clean = data_module.load(DataSpec(**first["config"]["data"])).images[:examples]
    defenses = list(dict.fromkeys(d for d, _ in chosen))
    attacks = [a for a in dict.fromkeys(a for _, a in chosen) if a != "none"]
    plt = _matplotlib()
    figure, axes = plt.subplots(len(defenses) * len(clean), 2 + 2 * len(attacks), squeeze=False,
                                figsize=(1.3 * (2 + 2 * len(attacks)), 1.4 * len(defenses) * len(clean)))
    for axis in axes.flat:
        axis.axis("off")
    for d, defense in enumerate(defenses):
        for (cell_defense, attack), (store, summary) in chosen.items():
            if cell_defense != defense:
                continue
            batch = store.load_batch(0)
            output_key, clean_key = OUTPUT_KEYS[summary["config"]["scenario"]["name"]]
            for e in range(len(clean)):
                row = axes[d * len(clean) + e]
                _show(row[0], clean[e], f"{defense}: clean" if e == 0 else "")
                if clean_key in batch:
                    _show(row[1], batch[clean_key][e], output_key if d == 0 and e == 0 else "")
                if attack != "none":
                    column = 2 + 2 * attacks.index(attack)
                    title = (f"{attack} {summary['eps'] * 255:.0f}/255 ({summary.get('threat_model', '')})"
                             if d == 0 and e == 0 else "")
                    _show(row[column], batch["adversarial"][e], title)
                    _show(row[column + 1], batch[output_key][e], "")
    figure.tight_layout(pad=0.2)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, dpi=110)
    plt.close(figure)
    return out_png


def _show(axis, image: torch.Tensor, title: str) -> None:
    axis.imshow(image.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
    if title:
        axis.set_title(title, fontsize=7)


SCALE_METRICS = ("zero-shot", "fid", "zero-shot-unsure", "latent_noise_psnr", "latent_noise_lpips")
PIXEL_SCALE_SCENARIOS = frozenset({"sampling-attack"})
"""Scenarios whose sampling attacks see x_t in [0, 1] pixel units (a pixel denoiser's sampler)."""


def scale_curves(summaries: list[dict[str, Any]], metric: str, out_png: Path) -> Path | None:
    """For sampling perturbations, the metric against the perturbation ``scale`` (latent units), one
    curve per defense, one panel per attack; an attack's scale-0 cell, or where it has none another
    attack's (the same unperturbed generations), is the point at 0. None where no attack has several
    scales."""
    lines: dict[str, dict[str, dict[float, dict]]] = defaultdict(lambda: defaultdict(dict))
    for summary in summaries:
        scale, values = (summary.get("budget") or {}).get("scale"), summary["metrics"].get(metric)
        if scale is not None and values is not None:
            lines[summary["attack"]][summary["defense"]][float(scale)] = values
    for attack in lines:
        for defense, points in lines[attack].items():
            unperturbed = next((other[defense][0.0] for other in lines.values() if 0.0 in other.get(defense, {})), None)
            if unperturbed is not None:
                points.setdefault(0.0, unperturbed)
    curves = {attack: {d: sorted(p.items()) for d, p in by.items()} for attack, by in lines.items()
              if any(len(set(p) - {0.0}) > 1 for p in by.values())}
    if not curves:
        return None
    pixels = {s.get("config", {}).get("scenario", {}).get("name") for s in summaries} <= PIXEL_SCALE_SCENARIOS
    unit = "[0, 1] pixels per step" if pixels else "scaled latent units"
    plt = _matplotlib()
    figure, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.6), squeeze=False)
    defenses = sorted({d for by in curves.values() for d in by})
    colours = {d: plt.cm.tab10(i % 10) for i, d in enumerate(defenses)}
    for axis, (attack, by) in zip(axes[0], sorted(curves.items()), strict=True):
        for defense, points in sorted(by.items()):
            _curve(axis, [x for x, _ in points], points, colours[defense], label=defense)
        arrow = "higher is better" if points[-1][1].get("higher_is_better", True) else "lower is better"
        axis.set(title=attack, xlabel=f"perturbation scale ({unit}; 0: unperturbed)",
                 ylabel=f"{metric} ({arrow})")
        axis.grid(alpha=0.3)
    return _save(plt, figure, axes, out_png)


def plot_run(run_dir: str | Path, out: str | Path | None = None, metrics: list[str] | None = None) -> list[Path]:
    run = RunStore(run_dir)
    summaries = run.summaries()
    if not summaries:
        raise BenchError(f"{run_dir} holds no finished cells; run `bench run GRID --out {run_dir}` first")
    out_dir = Path(out) if out else Path(run_dir) / "plots"
    wanted = metrics or [m for m in ("lpips", "psnr", "clip-sim", "latent_shift", "attack_success")
                         if m in summaries[0]["metrics"]]
    written = [damage_curves(summaries, metric, out_dir / f"damage-vs-eps-{metric}.png") for metric in wanted]
    written += [count_curves(summaries, metric, out_dir / f"damage-vs-count-{metric}.png") for metric in wanted]
    written += [scale_curves(summaries, metric, out_dir / f"damage-vs-scale-{metric}.png")
                for metric in (metrics or [m for m in SCALE_METRICS if m in summaries[0]["metrics"]])]
    written.append(example_grid(run, out_dir / "examples.png"))
    atomic_write_json(out_dir / "plots.json", [str(p) for p in written if p])
    return [p for p in written if p]
