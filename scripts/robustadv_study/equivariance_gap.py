"""How equivariant a pixel denoiser already is: Robustadv's regulariser evaluated, not trained, on the first
512 clean test images (``bench.zoo.robustadv.objective`` with the recipe's defaults: lambda 0.3, r(t) =
(1 - abar_t) + 8/255), for the equivariant and the invariant target, random and adversarial w, beside
DDPM's own loss on the same draws (seed 0).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/robustadv_study/equivariance_gap.py ddpm ddpm-c90-s0.05 runs/x/ft-equi
"""

import argparse
from pathlib import Path

import torch
from diffusers import DDPMScheduler

from bench import zoo
from bench.data import load_fashion_mnist
from bench.zoo.robustadv import RegulariserConfig, objective
from bench.zoo.train_ddpm import SCHEDULER_KWARGS, load_unet, to_model_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="zoo names or denoiser folders")
    parser.add_argument("--n", type=int, default=512)
    args = parser.parse_args()
    alphas = DDPMScheduler(**SCHEDULER_KWARGS).alphas_cumprod
    images = load_fashion_mnist("test", args.n).images
    print("| model | DDPM loss | equivariant, random | equivariant, adversarial | invariant, random | invariant, adversarial |")
    print("|---|---|---|---|---|---|")
    for name in args.models:
        unet = load_unet(zoo.model_dir(name) if zoo.is_zoo_model(name) else Path(name)).eval()
        x = to_model_space(images, unet)
        cells, ddpm = [], 0.0
        for kind in ("equivariant", "invariant"):
            for perturbation in ("random", "adversarial"):
                generator = torch.Generator().manual_seed(0)
                terms = [objective(unet, alphas, chunk, generator, RegulariserConfig(kind=kind, perturbation=perturbation))
                         for chunk in x.split(128)]
                ddpm = float(sum(t["ddpm"] for t in terms) / len(terms))
                cells.append(float(sum(t["regulariser"] for t in terms) / len(terms)))
        print(f"| {name} | {ddpm:.4f} | " + " | ".join(f"{value:.4f}" for value in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
