"""Reconstruction quality and fragility of one autoencoder (a zoo name or a folder), for the study.

    nice -n 5 .venv/bin/python scripts/fragility_study/evaluate_candidate.py MODEL STEPS OUT.json

Reconstruction: the first 200 test images (32x32) resized to the model's sample_size, encoded to
the latent mean, decoded, resized back to 32x32 (bilinear, antialiased), against the 32x32 images:
PSNR, SSIM, LPIPS (alex) with bootstrap intervals. Fragility: bench.zoo.fragility with 16 pairs,
eps 4/8/16, STEPS steps.
"""
import json
import sys
import time

import torch

torch.set_num_threads(1)

from bench.data import load_fashion_mnist  # noqa: E402
from bench.metrics.lpips import LPIPS  # noqa: E402
from bench.metrics.psnr import PSNR  # noqa: E402
from bench.metrics.ssim import SSIM  # noqa: E402
from bench.stats import mean_interval  # noqa: E402
from bench.zoo.fragility import FragilityConfig, fragility, resize  # noqa: E402
from defenses.vae import AutoencoderKLDefense  # noqa: E402

model, steps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
began = time.time()
defense = AutoencoderKLDefense(AutoencoderKLDefense.make_config({"model": model}))
size = int(defense.vae.config.sample_size)
images = load_fashion_mnist("test", 200).images
with torch.no_grad():
    rec = torch.cat([defense.reconstruct(resize(chunk, size)) for chunk in images.split(50)])
rec = torch.nn.functional.interpolate(rec, size=(32, 32), mode="bilinear", antialias=True).clamp(0, 1) \
    if size != 32 else rec
quality = {m.name: mean_interval(m.per_sample(rec, images).numpy()).as_dict() for m in (PSNR(), SSIM(), LPIPS())}
result = {"model": model, "reconstruction_n": 200, "reconstruction": quality,
          "fragility": fragility(model, FragilityConfig(steps=steps)), "eval_seconds": None}
result["eval_seconds"] = round(time.time() - began, 1)
open(out, "w").write(json.dumps(result) + "\n")
print(json.dumps({"model": model, **{k: round(v["value"], 4) for k, v in quality.items()},
                  **{f"ns{r['eps_255']:g}": round(r["nightshade_fraction"]["value"], 4)
                     for r in result["fragility"]["per_eps"]},
                  **{f"pg{r['eps_255']:g}": round(r["photoguard_shift"]["value"], 4)
                     for r in result["fragility"]["per_eps"]}, "seconds": result["eval_seconds"]}))
