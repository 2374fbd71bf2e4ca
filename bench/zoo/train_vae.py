"""Train the zoo's ``vae-kl``: a diffusers AutoencoderKL (32x32 RGB -> 4x8x8 latents) on Fashion-MNIST.

The objective is Stable Diffusion's first-stage recipe without the GAN term: pixel MSE (in [-1, 1])
plus LPIPS plus a small KL weight, on posterior samples. LPIPS uses the AlexNet backbone rather than
SD's VGG16 to fit a 2-core CPU budget.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from bench.data import load_fashion_mnist
from bench.metrics.lpips import lpips_distance
from bench.zoo.training import publish_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VAETrainConfig:
    seed: int = 0
    steps: int = 1500
    batch_size: int = 32
    learning_rate: float = 1e-3
    final_learning_rate: float = 1e-4
    lpips_weight: float = 1.0
    kl_weight: float = 1e-6
    lpips_net: str = "alex"
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    latent_channels: int = 4


def build_vae(config: VAETrainConfig):
    from diffusers import AutoencoderKL

    levels = len(config.block_out_channels)
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * levels,
                         up_block_types=("UpDecoderBlock2D",) * levels,
                         block_out_channels=config.block_out_channels, layers_per_block=1,
                         latent_channels=config.latent_channels, norm_num_groups=32, sample_size=32)


def train_vae(output: Path, config: VAETrainConfig = VAETrainConfig(), quiet: bool = False) -> dict:
    torch.manual_seed(config.seed)
    train = load_fashion_mnist("train").images
    vae = build_vae(config)
    optimizer = torch.optim.Adam(vae.parameters(), lr=config.learning_rate)
    ratio = config.final_learning_rate / config.learning_rate
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * step / config.steps)))
    generator = torch.Generator().manual_seed(config.seed)
    progress = tqdm(range(config.steps), desc="train vae-kl", disable=quiet)
    for _ in progress:
        batch = train[torch.randint(0, len(train), (config.batch_size,), generator=generator)]
        posterior = vae.encode(batch * 2 - 1).latent_dist
        reconstruction = vae.decode(posterior.sample(generator=generator)).sample
        mse = torch.mean((reconstruction - (batch * 2 - 1)) ** 2)
        perceptual = lpips_distance((reconstruction + 1) / 2, batch, config.lpips_net).mean()
        loss = mse + config.lpips_weight * perceptual + config.kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        progress.set_postfix(mse=f"{mse.item():.4f}", lpips=f"{perceptual.item():.3f}")

    vae.eval()
    with torch.no_grad():
        sample = load_fashion_mnist("val", 2000).images
        latents = torch.cat([vae.encode(chunk * 2 - 1).latent_dist.mean for chunk in sample.split(250)])
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    publish_folder(output, lambda folder: vae.save_pretrained(folder, safe_serialization=True))
    info = asdict(config)
    info["latent_std_on_val"] = float(latents.std())
    return info
