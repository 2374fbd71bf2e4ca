"""What AELIF's raw W1 (``clip-w1-raw``) is made of, per defense, for one attack and budget of a
prompt-robustness run: the mean norm of the unnormalised CLIP image embeddings of the perturbed and of
the clean generations, the raw W1, and the same W1 on L2-normalised embeddings. The 1-D W1 between
coordinate values moves with the embeddings' scale, so a defense can lower it by changing norms alone.

    python scripts/aelif_embedding_norms.py RUN_DIR --attack typos --edits 2
    python scripts/aelif_embedding_norms.py RUN_DIR --attack aelif-probe-mask --p 0.5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file
from scipy.stats import wasserstein_distance

from bench.clip_model import shared_image_text_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--attack", required=True)
    parser.add_argument("--edits", type=int, help="the budget of a prompt attack (typos)")
    parser.add_argument("--p", type=float, help="the budget of a conditioning attack (aelif-probe)")
    parser.add_argument("--model", default="clip-proxy")
    args = parser.parse_args(argv)
    if (args.edits is None) == (args.p is None):
        parser.error("give the cells' budget: --edits (prompt attacks) or --p (conditioning attacks)")
    budget = ("edits", args.edits) if args.edits is not None else ("p", args.p)
    model = shared_image_text_model(args.model)
    cleans = [load_file(f)["images"] for f in sorted(args.run.glob("shared/clean-generations-*.safetensors"))]
    rows = []
    for path in sorted(args.run.glob("cells/*/summary.json")):
        summary = json.loads(path.read_text())
        if summary["attack"] != args.attack or summary["budget"].get(budget[0]) != budget[1]:
            continue
        generated = torch.cat([load_file(b)["generated"] for b in sorted((path.parent / "batches").glob("*.safetensors"))])
        samples = pd.read_csv(path.parent / "samples.csv")
        with torch.no_grad():
            perturbed = model.encode_image(generated, normalize=False).double()
            for clean_images in cleans:  # the clean generations whose raw W1 reproduces the cell's first row
                clean = model.encode_image(clean_images, normalize=False).double()
                if abs(wasserstein_distance(perturbed[0], clean[0]) - samples["clip-w1-raw"][0]) < 1e-4:
                    break
            else:
                continue
        unit = [wasserstein_distance(a, b) for a, b in zip(torch.nn.functional.normalize(perturbed, dim=-1),
                                                           torch.nn.functional.normalize(clean, dim=-1), strict=True)]
        rows.append({"defense": summary["defense"], "norm perturbed": float(perturbed.norm(dim=-1).mean()),
                     "norm clean": float(clean.norm(dim=-1).mean()), "raw W1": float(samples["clip-w1-raw"].mean()),
                     "W1 normalised": sum(unit) / len(unit)})
    print(pd.DataFrame(rows).sort_values("defense").to_markdown(index=False, floatfmt=".4g"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
