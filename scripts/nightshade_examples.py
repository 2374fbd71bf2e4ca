"""Example images of a poisoning run (docs/reproductions/nightshade.md): per cell, clean images of the
poisoned concept, their poisons, the anchor, and generations of the concept's prompt by the clean
(k = 0) fine-tune and by the poisoned one. Needs a run made with ``--save-images``.

    python scripts/nightshade_examples.py runs/nightshade-fig4b docs/reproductions/nightshade-examples.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

KINDS = (("clean", "clean C"), ("poison", "poisons"), ("anchor", "anchor A"), ("reference", "k=0 fine-tune"),
         ("generated", "poisoned fine-tune"))
PER_KIND = 4


def strip(folder: Path, count: int) -> np.ndarray:
    files = sorted(folder.glob("*.png"))[:count]
    tiles = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    blank = np.full_like(tiles[0] if tiles else np.zeros((32, 32, 3), np.uint8), 255)
    tiles += [blank] * (count - len(tiles))
    return np.concatenate([np.pad(t, ((1, 1), (1, 1), (0, 0)), constant_values=255) for t in tiles], axis=1)


def main(run: Path, out: Path) -> None:
    cells = []
    for summary_file in sorted(run.glob("cells/*/summary.json")):
        summary = json.loads(summary_file.read_text())
        if (summary_file.parent / "images").is_dir():
            cells.append((summary["defense"], summary["eps"], summary["budget"].get("count", 0), summary_file.parent))
    if not cells:
        sys.exit(f"error: {run} has no cell with saved images; rerun the grid with --save-images")
    cells.sort()
    figure, axes = plt.subplots(len(cells), len(KINDS), figsize=(2.4 * len(KINDS), 0.75 * len(cells) + 0.6),
                                squeeze=False)
    for row, (defense, eps, count, folder) in enumerate(cells):
        for column, (kind, title) in enumerate(KINDS):
            axis = axes[row][column]
            axis.imshow(strip(folder / "images" / kind, 1 if kind == "anchor" else PER_KIND), interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(title, fontsize=9)
            if column == 0:
                axis.set_ylabel(f"{defense}\n{round(eps * 255)}/255, k={count}", fontsize=8, rotation=0,
                                ha="right", va="center")
    figure.tight_layout()
    figure.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/nightshade_examples.py RUN_DIR OUT.png")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
