"""Step times of candidate designs for the CPU pixel DDPM (issue 14, item 1), and of Robustadv's
objective on the chosen one: ``OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python
scripts/ddpm_design/step_timing.py [designs|objective]``. One Adam step on random inputs at batch 64
(best of three after a warm-up) and one no-grad forward of 250 images (the sampler's batch)."""

import sys
import time

import torch
from diffusers import DDPMScheduler, UNet2DModel

from bench.zoo.robustadv import RegulariserConfig, objective
from bench.zoo.train_ddpm import DDPM_CPU, SCHEDULER_KWARGS, build_unet

PLAIN, ATTN = ("DownBlock2D",) * 3, ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D")


def unet(size, channels, layers, down, groups=32):
    up = tuple(block.replace("Down", "Up") for block in reversed(down))
    return UNet2DModel(sample_size=size, in_channels=1, out_channels=1, block_out_channels=channels,
                       layers_per_block=layers, down_block_types=down, up_block_types=up, norm_num_groups=groups)


DESIGNS = {
    "A 32x32, (32, 64, 64) x2, attention 16x16 (ddpm-pixel's UNet, grey)":
        lambda: unet(32, (32, 64, 64), 2, ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D")),
    "B 32x32, (32, 64, 128) x1, attention 8x8": lambda: unet(32, (32, 64, 128), 1, ATTN),
    "C 28x28, (32, 64, 128) x1, attention 7x7": lambda: unet(28, (32, 64, 128), 1, ATTN),
    "D 28x28, (32, 64, 64) x1, no attention": lambda: unet(28, (32, 64, 64), 1, PLAIN),
    "E 28x28, (32, 64, 128) x1, no attention": lambda: unet(28, (32, 64, 128), 1, PLAIN),
    "F 28x28, (16, 32, 64) x1, attention 7x7 (chosen: ddpm)": lambda: build_unet(DDPM_CPU),
    "G 28x28, (16, 32, 64) x2, attention 7x7": lambda: unet(28, (16, 32, 64), 2, ATTN, 8),
    "H 28x28, (24, 48, 96) x1, attention 7x7": lambda: unet(28, (24, 48, 96), 1, ATTN, 8),
}


def designs(batch=64):
    for name, build in DESIGNS.items():
        torch.manual_seed(0)
        model = build()
        optimizer = torch.optim.Adam(model.parameters(), 2e-4)
        size = model.config.sample_size
        x, t = torch.randn(batch, 1, size, size), torch.randint(0, 1000, (batch,))
        times = []
        for _ in range(4):
            start = time.time()
            loss = torch.nn.functional.mse_loss(model(x, t).sample, x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times.append(time.time() - start)
        with torch.no_grad():
            start = time.time()
            model(torch.randn(250, 1, size, size), torch.full((250,), 500))
            forward = time.time() - start
        print(f"{name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, step {min(times[1:]):.3f} s,"
              f" forward of 250 {forward:.3f} s", flush=True)


def objectives(batch=64):
    torch.manual_seed(0)
    model = build_unet(DDPM_CPU)
    optimizer = torch.optim.Adam(model.parameters(), 5e-4)
    alphas = DDPMScheduler(**SCHEDULER_KWARGS).alphas_cumprod
    x = torch.rand(batch, 1, 28, 28) * 2 - 1
    configs = {"ddpm": RegulariserConfig(), "random": RegulariserConfig(kind="equivariant", perturbation="random"),
               "adversarial": RegulariserConfig(kind="equivariant")}
    times = {name: [] for name in configs}
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        for name, config in configs.items():
            start = time.time()
            loss = objective(model, alphas, x, generator, config)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            times[name].append(time.time() - start)
    best = {name: min(values[1:]) for name, values in times.items()}
    print({name: f"{value:.3f} s ({value / best['ddpm']:.2f}x)" for name, value in best.items()})


if __name__ == "__main__":
    objectives() if sys.argv[1:] == ["objective"] else designs()
