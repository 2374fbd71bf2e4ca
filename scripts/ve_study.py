"""Issue 13's small study of the VE loss's unrecoverable choices (delta, reduction, clamp): short
trainings of the ``ve-vae`` recipe, each reporting the posterior variance and reconstruction PSNR on
500 validation images. Usage: ``python scripts/ve_study.py STEPS OUT.json`` (one torch thread)."""

import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from torchmetrics.functional.image import peak_signal_noise_ratio

from bench.data import load_fashion_mnist
from bench.zoo.train_vae import VAETrainConfig, train_vae

VARIANTS = {
    "latent sum, lambda_1 0.1/3072, delta 1e-4": {},
    "latent mean, lambda_1 0.1, delta 1e-4": {"ve_reduction": "mean", "ve_lambda_variance": 0.1,
                                               "ve_lambda_magnitude": 1e-6},
    "latent sum, lambda_1 0.1/3072, delta 1e-2": {"ve_delta": 1e-2},
    "KL beta 1e-6 (vae-kl recipe)": {"regulariser": "kl", "scale_on": "mean"},
}


def evaluate(folder: Path) -> dict:
    vae = AutoencoderKL.from_pretrained(folder).eval()
    images = load_fashion_mnist("val", 500).images
    with torch.no_grad():
        posterior = vae.encode(images * 2 - 1).latent_dist
        decoded = ((vae.decode(posterior.mean).sample + 1) / 2).clamp(0, 1)
    return {"variance_mean": float(posterior.var.mean()), "variance_median": float(posterior.var.median()),
            "latent_mean_std": float(posterior.mean.std()),
            "psnr": float(peak_signal_noise_ratio(decoded, images, data_range=1.0))}


def main(steps: int, out: Path) -> None:
    base = VAETrainConfig(steps=steps, regulariser="ve", ve_lambda_variance=0.1 / 3072, ve_lambda_magnitude=1e-6 / 3072,
                          scale_on="sample")  # the ve-vae recipe (bench.zoo.builders) at fewer steps
    results = json.loads(out.read_text()) if out.exists() else {}
    for name, change in VARIANTS.items():
        if name in results:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            info = train_vae(Path(tmp) / "vae", replace(base, **change), quiet=True)
            results[name] = {"steps": steps, **change, **evaluate(Path(tmp) / "vae"),
                             "variance_per_50_steps": info.get("variance_per_50_steps")}
        print(name, results[name], flush=True)
        out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(int(sys.argv[1]), Path(sys.argv[2]))
